/*
 * layernorm.c - torch.nn.LayerNorm(normalized_shape, eps=1e-5,
 * elementwise_affine): normalises over the trailing dimensions, which must
 * equal normalized_shape. x is viewed as (rows, cols) with cols the product
 * of normalized_shape; per-row mean and 1/std are kept for backward.
 */
#include <stdio.h>
#include <string.h>

#include "layers/layer.h"

typedef struct layernorm {
    nncl_layer base;
    int nd;
    int64_t shape[NNCL_MAX_DIMS];
    int64_t cols;
    int affine;
    nncl_tensor mean, rstd; /* (rows) of the last forward */
    int64_t mean_cap, rstd_cap;
} layernorm;

static nncl_status layernorm_shape(const nncl_layer *l, int ndim, const int64_t *in, int *ond, int64_t *out)
{
    const layernorm *s = (const layernorm *)l;
    int ok = ndim >= s->nd;
    for (int i = 0; ok && i < s->nd; i++) ok = in[ndim - s->nd + i] == s->shape[i];
    if (!ok) {
        char want[160], reason[200];
        snprintf(reason, sizeof reason, "does not end in %s", nncl_shape_format(s->nd, s->shape, want, sizeof want));
        return nncl__layer_shape_error(l, ndim, in, reason);
    }
    return nncl__layer_same_shape(l, ndim, in, ond, out);
}

static nncl_status layernorm_forward(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y)
{
    (void)mode;
    layernorm *s = (layernorm *)l;
    int64_t rows = nncl_tensor_numel(x) / s->cols;
    NNCL_TRY(nncl__workspace(l->ctx, &s->mean, &s->mean_cap, rows));
    NNCL_TRY(nncl__workspace(l->ctx, &s->rstd, &s->rstd_cap, rows));
    const nncl_tensor *gamma = s->affine ? &l->params[0].value : NULL;
    const nncl_tensor *beta = s->affine ? &l->params[1].value : NULL;
    return l->ctx->ops->layernorm_forward(l->ctx, y, &s->mean, &s->rstd, x, gamma, beta, rows, s->cols, 1e-5f);
}

static nncl_status layernorm_backward(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y,
                                      const nncl_tensor *dy, nncl_tensor *dx)
{
    (void)y;
    layernorm *s = (layernorm *)l;
    int64_t rows = nncl_tensor_numel(x) / s->cols;
    if (s->mean_cap < rows)
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: backward without a forward of this x", l->desc);
    if (dx == NULL) return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: backward needs dx", l->desc);
    NNCL_TRY(nncl__workspace(l->ctx, &s->mean, &s->mean_cap, rows));
    NNCL_TRY(nncl__workspace(l->ctx, &s->rstd, &s->rstd_cap, rows));
    const nncl_tensor *gamma = s->affine ? &l->params[0].value : NULL;
    const nncl_tensor *dgamma = s->affine ? &l->params[0].grad : NULL;
    const nncl_tensor *dbeta = s->affine ? &l->params[1].grad : NULL;
    return l->ctx->ops->layernorm_backward(l->ctx, dx, dgamma, dbeta, dy, x, &s->mean, &s->rstd, gamma, rows,
                                           s->cols);
}

static void layernorm_destroy(nncl_layer *l)
{
    layernorm *s = (layernorm *)l;
    nncl__tensor_release(l->ctx, &s->mean);
    nncl__tensor_release(l->ctx, &s->rstd);
}

static nncl_status layernorm_reset(nncl_layer *l, uint64_t seed, uint32_t layer)
{
    (void)seed, (void)layer;
    for (size_t i = 0; i < l->n_params; i++) NNCL_TRY(nncl_tensor_fill(l->ctx, &l->params[i].value, i == 0 ? 1.0f : 0.0f));
    return NNCL_OK;
}

static const nncl_layer_ops layernorm_ops = {
    .reset = layernorm_reset,
    .needs_dx = 1,
    .kind = "layernorm",
    .output_shape = layernorm_shape,
    .forward = layernorm_forward,
    .backward = layernorm_backward,
    .destroy = layernorm_destroy,
};

nncl_status nncl_layernorm_create(nncl_context *ctx, int ndim, const int64_t *normalized_shape, int affine,
                                  nncl_layer **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, normalized_shape);
    NNCL_CHECK_ARG(ctx, out);
    *out = NULL;
    if (ndim < 1 || ndim > NNCL_MAX_DIMS)
        return NNCL_LAYER_CONFIG_ERROR(ctx, "layernorm", "normalized_shape has %d dimensions (1..8)", ndim);
    int64_t cols = 1;
    for (int i = 0; i < ndim; i++) {
        if (normalized_shape[i] < 1 || normalized_shape[i] > INT32_MAX / cols) {
            char s[160];
            return NNCL_LAYER_CONFIG_ERROR(ctx, "layernorm", "bad normalized_shape %s",
                                           nncl_shape_format(ndim, normalized_shape, s, sizeof s));
        }
        cols *= normalized_shape[i];
    }
    nncl_layer *l;
    NNCL_TRY(nncl__layer_alloc(ctx, &layernorm_ops, sizeof(layernorm), &l));
    layernorm *s = (layernorm *)l;
    s->nd = ndim;
    memcpy(s->shape, normalized_shape, sizeof(int64_t) * (size_t)ndim);
    s->cols = cols;
    s->affine = affine != 0;
    char sh[160];
    snprintf(l->desc, sizeof l->desc, "layernorm(normalized_shape=%s, affine=%d)",
             nncl_shape_format(ndim, normalized_shape, sh, sizeof sh), s->affine);
    nncl_status st = NNCL_OK;
    if (s->affine) {
        st = nncl__layer_add_param(l, "weight", ndim, normalized_shape, 1, 1.0f);
        if (st == NNCL_OK) st = nncl__layer_add_param(l, "bias", ndim, normalized_shape, 1, 0.0f);
    }
    if (st != NNCL_OK) {
        nncl_layer_destroy(l);
        return st;
    }
    *out = l;
    return NNCL_OK;
}
