/*
 * batchnorm.c - torch.nn.BatchNorm1d and BatchNorm2d: affine, momentum 0.1,
 * eps 1e-5, running variance updated with the unbiased batch variance.
 *
 * x is viewed as (N, C, inner): (N, C) or (N, C, L) for 1-d, (N, C, H, W) for
 * 2-d. Training normalises with the batch statistics (kept for backward) and
 * updates the running ones; evaluation normalises with the running ones.
 */
#include <stdio.h>

#include "layers/layer.h"

/* The statistics the last forward normalised with: none (no forward yet, or it failed), the running
   ones (evaluation) or the batch's (training, kept in mean and invstd). */
typedef enum bn_stats { STATS_NONE, STATS_RUNNING, STATS_BATCH } bn_stats;

typedef struct batchnorm {
    nncl_layer base;
    int64_t c;
    int spatial_dims;          /* 1: BatchNorm1d, 2: BatchNorm2d */
    nncl_tensor mean, invstd;  /* (C): statistics of the last forward */
    bn_stats last;
    int64_t batches_tracked;
} batchnorm;

static nncl_status geometry(const nncl_layer *l, int ndim, const int64_t *in, nncl_bn_geom *g)
{
    const batchnorm *s = (const batchnorm *)l;
    int ok = s->spatial_dims == 1 ? (ndim == 2 || ndim == 3) : ndim == 4;
    if (!ok || in[1] != s->c) {
        char reason[96];
        snprintf(reason, sizeof reason, "is not %s with C = %lld",
                 s->spatial_dims == 1 ? "(N, C) or (N, C, L)" : "(N, C, H, W)", (long long)s->c);
        return nncl__layer_shape_error(l, ndim, in, reason);
    }
    g->n = in[0];
    g->c = in[1];
    g->inner = 1;
    for (int i = 2; i < ndim; i++) g->inner *= in[i];
    g->momentum = 0.1f;
    g->eps = 1e-5f;
    return NNCL_OK;
}

static nncl_status batchnorm_shape(const nncl_layer *l, int ndim, const int64_t *in, int *ond, int64_t *out)
{
    nncl_bn_geom g = {0};
    NNCL_TRY(geometry(l, ndim, in, &g));
    return nncl__layer_same_shape(l, ndim, in, ond, out);
}

static nncl_status batchnorm_forward(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y)
{
    batchnorm *s = (batchnorm *)l;
    nncl_context *ctx = l->ctx;
    nncl_bn_geom g = {0};
    NNCL_TRY(geometry(l, x->ndim, x->shape, &g));
    const nncl_tensor *gamma = &l->params[0].value, *beta = &l->params[1].value;
    const nncl_tensor *rm = &l->params[2].value, *rv = &l->params[3].value;
    if (mode != NNCL_TRAIN) { /* a failure forgets the last forward's statistics (batchnorm_forget) */
        NNCL_TRY(ctx->ops->batchnorm_forward_eval(ctx, y, x, rm, rv, gamma, beta, &g));
        s->last = STATS_RUNNING;
        return NNCL_OK;
    }
    if (g.n * g.inner < 2)
        return nncl__layer_shape_error(l, x->ndim, x->shape, "has one value per channel: training needs more");
    NNCL_TRY(ctx->ops->batchnorm_forward_train(ctx, y, &s->mean, &s->invstd, rm, rv, x, gamma, beta, &g));
    s->last = STATS_BATCH;
    s->batches_tracked++;
    return NNCL_OK;
}

static nncl_status batchnorm_backward(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y,
                                      const nncl_tensor *dy, nncl_tensor *dx)
{
    (void)y;
    batchnorm *s = (batchnorm *)l;
    nncl_context *ctx = l->ctx;
    nncl_bn_geom g = {0};
    NNCL_TRY(geometry(l, x->ndim, x->shape, &g));
    const nncl_tensor *gamma = &l->params[0].value;
    const nncl_tensor *dgamma = &l->params[0].grad, *dbeta = &l->params[1].grad;
    const nncl_tensor *mean = &s->mean;
    if (s->last == STATS_NONE)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: backward without a successful forward", l->desc);
    if (s->last == STATS_RUNNING) { /* statistics were the running ones: constants */
        NNCL_TRY(ctx->ops->batchnorm_invstd(ctx, &s->invstd, &l->params[3].value, g.eps));
        mean = &l->params[2].value;
    }
    /* The backend always writes dx; without one, a scratch gradient would be
       needed, so batch norm requires dx. */
    if (dx == NULL) return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: backward needs dx", l->desc);
    return ctx->ops->batchnorm_backward(ctx, dx, dgamma, dbeta, dy, x, mean, &s->invstd, gamma, &g,
                                        s->last == STATS_BATCH);
}

static void batchnorm_forget(nncl_layer *l)
{
    ((batchnorm *)l)->last = STATS_NONE;
}

static void batchnorm_destroy(nncl_layer *l)
{
    batchnorm *s = (batchnorm *)l;
    nncl__tensor_release(l->ctx, &s->mean);
    nncl__tensor_release(l->ctx, &s->invstd);
}

/* weight 1, bias 0, running mean 0, running variance 1, as PyTorch; the counter restarts. */
static nncl_status batchnorm_reset(nncl_layer *l, uint64_t seed, uint32_t layer)
{
    (void)seed, (void)layer;
    static const float initial[4] = {1.0f, 0.0f, 0.0f, 1.0f};
    for (size_t i = 0; i < 4; i++) NNCL_TRY(nncl_tensor_fill(l->ctx, &l->params[i].value, initial[i]));
    ((batchnorm *)l)->batches_tracked = 0;
    return NNCL_OK;
}

static const nncl_layer_ops batchnorm_ops = {
    .reset = batchnorm_reset,
    .needs_dx = 1,
    .kind = "batchnorm",
    .output_shape = batchnorm_shape,
    .forward = batchnorm_forward,
    .forget = batchnorm_forget,
    .backward = batchnorm_backward,
    .destroy = batchnorm_destroy,
};

nncl_status nncl_batchnorm_create(nncl_context *ctx, int64_t num_features, int spatial_dims, nncl_layer **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, out);
    *out = NULL;
    if (spatial_dims != 1 && spatial_dims != 2)
        return NNCL_LAYER_CONFIG_ERROR(ctx, "batchnorm", "spatial_dims %d must be 1 or 2", spatial_dims);
    if (num_features < 1 || num_features > INT32_MAX)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "batchnorm%dd: num_features %lld must be at least 1",
                          spatial_dims, (long long)num_features);
    nncl_layer *l;
    NNCL_TRY(nncl__layer_alloc(ctx, &batchnorm_ops, sizeof(batchnorm), &l));
    batchnorm *s = (batchnorm *)l;
    s->c = num_features;
    s->spatial_dims = spatial_dims;
    snprintf(l->desc, sizeof l->desc, "batchnorm%dd(num_features=%lld)", spatial_dims, (long long)num_features);
    nncl_status st = nncl__layer_add_param(l, "weight", 1, &num_features, 1, 1.0f);
    if (st == NNCL_OK) st = nncl__layer_add_param(l, "bias", 1, &num_features, 1, 0.0f);
    if (st == NNCL_OK) st = nncl__layer_add_param(l, "running_mean", 1, &num_features, 0, 0.0f);
    if (st == NNCL_OK) st = nncl__layer_add_param(l, "running_var", 1, &num_features, 0, 1.0f);
    if (st == NNCL_OK) st = nncl__tensor_create_owned(ctx, 1, &num_features, &s->mean);
    if (st == NNCL_OK) st = nncl__tensor_create_owned(ctx, 1, &num_features, &s->invstd);
    if (st != NNCL_OK) {
        nncl_layer_destroy(l);
        return st;
    }
    *out = l;
    return NNCL_OK;
}

int nncl__layer_is_batchnorm(const nncl_layer *l)
{
    return l->ops == &batchnorm_ops;
}

nncl_status nncl_layer_batches_tracked(const nncl_layer *l, int64_t *count)
{
    if (l == NULL) return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: layer is NULL", __func__);
    NNCL_CHECK_ARG(l->ctx, count);
    if (l->ops != &batchnorm_ops)
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: %s is not batch norm", __func__, l->desc);
    *count = ((const batchnorm *)l)->batches_tracked;
    return NNCL_OK;
}

nncl_status nncl_layer_set_batches_tracked(nncl_layer *l, int64_t count)
{
    if (l == NULL) return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: layer is NULL", __func__);
    if (l->ops != &batchnorm_ops)
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: %s is not batch norm", __func__, l->desc);
    if (count < 0) return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: count %lld is negative", __func__, (long long)count);
    ((batchnorm *)l)->batches_tracked = count;
    return NNCL_OK;
}
