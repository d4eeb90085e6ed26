/*
 * pool2d.c - torch.nn.MaxPool2d, AvgPool2d and AdaptiveAvgPool2d(1).
 *
 * Square kernel k, stride s, padding p, floor output sizes:
 * OH = (H + 2p - k) / s + 1. Global average pooling is average pooling with
 * the kernel the size of the input. Max pooling keeps, in a workspace the
 * size of y, where each maximum came from, for the backward pass.
 */
#include <stdio.h>
#include <string.h>

#include "layers/layer.h"

typedef struct pool2d {
    nncl_layer base;
    nncl_pool_kind kind;
    int global;            /* kernel = the whole input plane */
    int64_t k, s, p;
    nncl_tensor idx;       /* max pooling: argmax positions, (numel of y) */
    int64_t idx_capacity;
    int64_t idx_shape[4];  /* max pooling: the x whose positions idx holds; zeros before a forward */
} pool2d;

static nncl_status geometry(const nncl_layer *l, int ndim, const int64_t *in, nncl_pool_geom *g)
{
    const pool2d *s = (const pool2d *)l;
    if (ndim != 4) return nncl__layer_shape_error(l, ndim, in, "is not (N, C, H, W)");
    int64_t kh = s->global ? in[2] : s->k, kw = s->global ? in[3] : s->k;
    if (in[2] + 2 * s->p < kh || in[3] + 2 * s->p < kw) {
        char reason[128];
        snprintf(reason, sizeof reason, "is smaller than the kernel %lldx%lld after padding %lld", (long long)kh,
                 (long long)kw, (long long)s->p);
        return nncl__layer_shape_error(l, ndim, in, reason);
    }
    if (s->kind == NNCL_POOL_MAX && in[2] * in[3] > (1 << 24))
        return nncl__layer_shape_error(l, ndim, in, "has planes of more than 2^24 elements");
    int64_t stride = s->global ? 1 : s->s;
    *g = (nncl_pool_geom){
        .n = in[0], .c = in[1], .h = in[2], .w = in[3],
        .oh = (in[2] + 2 * s->p - kh) / stride + 1,
        .ow = (in[3] + 2 * s->p - kw) / stride + 1,
        .kh = kh, .kw = kw, .sh = stride, .sw = stride, .ph = s->p, .pw = s->p,
        .kind = s->kind,
    };
    return NNCL_OK;
}

static nncl_status pool2d_shape(const nncl_layer *l, int ndim, const int64_t *in, int *ond, int64_t *out)
{
    nncl_pool_geom g = {0};
    NNCL_TRY(geometry(l, ndim, in, &g));
    *ond = 4;
    out[0] = g.n, out[1] = g.c, out[2] = g.oh, out[3] = g.ow;
    return NNCL_OK;
}

static nncl_status pool2d_forward(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y)
{
    (void)mode;
    pool2d *s = (pool2d *)l;
    nncl_pool_geom g = {0};
    NNCL_TRY(geometry(l, x->ndim, x->shape, &g));
    const nncl_tensor *idx = NULL;
    if (s->kind == NNCL_POOL_MAX) { /* a failure leaves no positions to go back to (pool2d_forget) */
        NNCL_TRY(nncl__workspace(l->ctx, &s->idx, &s->idx_capacity, nncl_tensor_numel(y)));
        idx = &s->idx;
    }
    NNCL_TRY(l->ctx->ops->pool2d_forward(l->ctx, y, idx, x, &g));
    if (idx != NULL) memcpy(s->idx_shape, x->shape, sizeof s->idx_shape);
    return NNCL_OK;
}

/* dx from dy; with relu, also the backward of the relu that produced x (max pooling: masked by y > 0). */
static nncl_status backward(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                            nncl_tensor *dx, int relu)
{
    pool2d *s = (pool2d *)l;
    if (dx == NULL) return NNCL_OK; /* no parameters: nothing else to compute */
    nncl_pool_geom g = {0};
    NNCL_TRY(geometry(l, x->ndim, x->shape, &g));
    const nncl_tensor *idx = NULL;
    if (s->kind == NNCL_POOL_MAX) {
        /* The positions index planes of the last forward's x: any other shape would read and write
           outside this x's planes. */
        if (memcmp(s->idx_shape, x->shape, sizeof s->idx_shape) != 0)
            return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: backward without a forward of this x", l->desc);
        idx = &s->idx;
    }
    return l->ctx->ops->pool2d_backward(l->ctx, dx, dy, idx, relu ? y : NULL, &g);
}

static nncl_status pool2d_backward(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                                   nncl_tensor *dx)
{
    return backward(l, x, y, dy, dx, 0);
}

/* A relu's output x has its maximum > 0 exactly where the relu's input did: y > 0 is the relu's mask. */
static nncl_status maxpool_backward_relu(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y,
                                         const nncl_tensor *dy, nncl_tensor *dx)
{
    return backward(l, x, y, dy, dx, 1);
}

/* After a failed forward: no shape, so no backward, until the positions are those of an x. */
static void pool2d_forget(nncl_layer *l)
{
    pool2d *s = (pool2d *)l;
    memset(s->idx_shape, 0, sizeof s->idx_shape);
}

static void pool2d_destroy(nncl_layer *l)
{
    nncl__tensor_release(l->ctx, &((pool2d *)l)->idx);
}

static const nncl_layer_ops maxpool_ops = {
    .kind = "maxpool2d",
    .output_shape = pool2d_shape,
    .forward = pool2d_forward,
    .forget = pool2d_forget,
    .backward = pool2d_backward,
    .backward_relu = maxpool_backward_relu,
    .destroy = pool2d_destroy,
};

static const nncl_layer_ops avgpool_ops = {
    .kind = "avgpool2d",
    .output_shape = pool2d_shape,
    .forward = pool2d_forward,
    .backward = pool2d_backward,
    .destroy = pool2d_destroy,
};

static const nncl_layer_ops global_avgpool_ops = {
    .kind = "global_avgpool",
    .output_shape = pool2d_shape,
    .forward = pool2d_forward,
    .backward = pool2d_backward,
    .destroy = pool2d_destroy,
};

nncl_status nncl_pool2d_create(nncl_context *ctx, nncl_pool_kind kind, int64_t kernel, int64_t stride,
                               int64_t padding, nncl_layer **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, out);
    *out = NULL;
    if (kind != NNCL_POOL_MAX && kind != NNCL_POOL_AVG)
        return NNCL_LAYER_CONFIG_ERROR(ctx, "pool2d", "unknown kind %d", (int)kind);
    const char *name = kind == NNCL_POOL_MAX ? "maxpool2d" : "avgpool2d";
    if (stride == 0) stride = kernel;
    if (kernel < 1 || kernel > 1024 || stride < 1 || stride > INT32_MAX)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: kernel %lld must be in 1..1024 and stride %lld at least 1",
                          name, (long long)kernel, (long long)stride);
    if (padding < 0 || padding > kernel / 2)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: padding %lld must be in 0..kernel/2 = %lld", name,
                          (long long)padding, (long long)(kernel / 2));
    nncl_layer *l;
    NNCL_TRY(nncl__layer_alloc(ctx, kind == NNCL_POOL_MAX ? &maxpool_ops : &avgpool_ops, sizeof(pool2d), &l));
    pool2d *s = (pool2d *)l;
    s->kind = kind;
    s->k = kernel, s->s = stride, s->p = padding;
    snprintf(l->desc, sizeof l->desc, "%s(kernel=%lld, stride=%lld, padding=%lld)", name, (long long)kernel,
             (long long)stride, (long long)padding);
    *out = l;
    return NNCL_OK;
}

nncl_status nncl_global_avgpool_create(nncl_context *ctx, nncl_layer **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, out);
    *out = NULL;
    nncl_layer *l;
    NNCL_TRY(nncl__layer_alloc(ctx, &global_avgpool_ops, sizeof(pool2d), &l));
    pool2d *s = (pool2d *)l;
    s->kind = NNCL_POOL_AVG;
    s->global = 1;
    snprintf(l->desc, sizeof l->desc, "global_avgpool()");
    *out = l;
    return NNCL_OK;
}
