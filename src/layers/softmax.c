/*
 * softmax.c - torch.nn.Softmax(dim=-1) and LogSoftmax(dim=-1): over the last
 * dimension of any input shape.
 */
#include <stdio.h>

#include "layers/layer.h"

typedef struct softmax {
    nncl_layer base;
    int log;
} softmax;

static nncl_status softmax_shape(const nncl_layer *l, int ndim, const int64_t *in, int *ond, int64_t *out)
{
    if (ndim < 1) return nncl__layer_shape_error(l, ndim, in, "has no last dimension");
    return nncl__layer_same_shape(l, ndim, in, ond, out);
}

static nncl_status softmax_forward(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y)
{
    (void)mode;
    int64_t cols = x->shape[x->ndim - 1];
    return l->ctx->ops->softmax_forward(l->ctx, y, x, nncl_tensor_numel(x) / cols, cols, ((softmax *)l)->log);
}

static nncl_status softmax_backward(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                                    nncl_tensor *dx)
{
    if (dx == NULL) return NNCL_OK;
    int64_t cols = x->shape[x->ndim - 1];
    return l->ctx->ops->softmax_backward(l->ctx, dx, y, dy, nncl_tensor_numel(x) / cols, cols, ((softmax *)l)->log);
}

static const nncl_layer_ops softmax_ops = {
    .kind = "softmax",
    .output_shape = softmax_shape,
    .forward = softmax_forward,
    .backward = softmax_backward,
};

nncl_status nncl_softmax_create(nncl_context *ctx, int log, nncl_layer **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, out);
    *out = NULL;
    nncl_layer *l;
    NNCL_TRY(nncl__layer_alloc(ctx, &softmax_ops, sizeof(softmax), &l));
    ((softmax *)l)->log = log != 0;
    snprintf(l->desc, sizeof l->desc, "%s(dim=-1)", log ? "log_softmax" : "softmax");
    *out = l;
    return NNCL_OK;
}
