/*
 * linear.c - torch.nn.Linear: y = x W^T + b.
 *
 * x is (..., in) and is treated as (rows, in) with rows the product of the
 * leading dimensions; y is (..., out). W is (out, in), b is (out).
 *   forward:   y  = x W^T + b        GEMM (rows x out x in), the bias (and a
 *                                    fused relu) in its epilogue
 *   backward:  dx = dy W             GEMM (rows x in x out); after a relu
 *                                    (backward_relu), its backward in the
 *                                    epilogue: dx = 0 where x is not > 0
 *              dW += dy^T x          GEMM (out x in x rows), beta = 1
 *              db += column sums of dy
 */
#include <math.h>
#include <stdio.h>

#include "layers/layer.h"

typedef struct linear {
    nncl_layer base;
    int64_t in, out;
    int bias;
} linear;

static nncl_status linear_shape(const nncl_layer *l, int ndim, const int64_t *in, int *ond, int64_t *out)
{
    const linear *s = (const linear *)l;
    if (ndim < 1 || in[ndim - 1] != s->in) {
        char reason[96];
        snprintf(reason, sizeof reason, "does not end in %lld features", (long long)s->in);
        return nncl__layer_shape_error(l, ndim, in, reason);
    }
    *ond = ndim;
    for (int i = 0; i < ndim - 1; i++) out[i] = in[i];
    out[ndim - 1] = s->out;
    return NNCL_OK;
}

/* A GEMM with an epilogue (bias, relu, mask), run or prepared: the layer's GEMMs are written once, for both. */
typedef nncl_status (*gemm_fn)(nncl_context *ctx, nncl_transpose ta, nncl_transpose tb, int64_t m, int64_t n,
                               int64_t k, float alpha, const nncl_tensor *a, int64_t lda, const nncl_tensor *b,
                               int64_t ldb, float beta, const nncl_tensor *c, int64_t ldc, const nncl_tensor *bias,
                               int relu, const nncl_tensor *mask);

/* nncl__gemm_prepare under gemm_fn: the choice is measured without the epilogue, which nncl's kernels apply
   as they store C and CLBlast as passes of their own after it. */
static nncl_status gemm_prepare(nncl_context *ctx, nncl_transpose ta, nncl_transpose tb, int64_t m, int64_t n,
                                int64_t k, float alpha, const nncl_tensor *a, int64_t lda, const nncl_tensor *b,
                                int64_t ldb, float beta, const nncl_tensor *c, int64_t ldc, const nncl_tensor *bias,
                                int relu, const nncl_tensor *mask)
{
    (void)bias, (void)relu, (void)mask;
    return nncl__gemm_prepare(ctx, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* y = x W^T + b, then relu when asked */
static nncl_status gemm_forward(const nncl_layer *l, gemm_fn gemm, const nncl_tensor *x, const nncl_tensor *y,
                                int relu)
{
    const linear *s = (const linear *)l;
    const int64_t rows = nncl_tensor_numel(x) / s->in;
    return gemm(l->ctx, NNCL_NO_TRANS, NNCL_TRANS, rows, s->out, s->in, 1.0f, x, s->in, &l->params[0].value, s->in,
                0.0f, y, s->out, s->bias ? &l->params[1].value : NULL, relu, NULL);
}

/* dx = dy W (when dx is not NULL), zero where x is not > 0 when relu_before is set; dW += dy^T x */
static nncl_status gemm_backward(const nncl_layer *l, gemm_fn gemm, const nncl_tensor *x, const nncl_tensor *dy,
                                 const nncl_tensor *dx, int relu_before)
{
    const linear *s = (const linear *)l;
    const int64_t rows = nncl_tensor_numel(x) / s->in;
    if (dx != NULL)
        NNCL_TRY(gemm(l->ctx, NNCL_NO_TRANS, NNCL_NO_TRANS, rows, s->in, s->out, 1.0f, dy, s->out, &l->params[0].value,
                      s->in, 0.0f, dx, s->in, NULL, 0, relu_before ? x : NULL));
    return gemm(l->ctx, NNCL_TRANS, NNCL_NO_TRANS, s->out, s->in, rows, 1.0f, dy, s->out, x, s->in, 1.0f,
                &l->params[0].grad, s->in, NULL, 0, NULL);
}

static nncl_status forward(nncl_layer *l, const nncl_tensor *x, nncl_tensor *y, int relu)
{
    return gemm_forward(l, nncl__gemm_epilogue, x, y, relu);
}

static nncl_status linear_forward(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y)
{
    (void)mode;
    return forward(l, x, y, 0);
}

static nncl_status linear_forward_relu(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y)
{
    (void)mode;
    return forward(l, x, y, 1);
}

static nncl_status backward(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *dy, nncl_tensor *dx,
                            int relu_before)
{
    const linear *s = (const linear *)l;
    nncl_context *ctx = l->ctx;
    int64_t rows = nncl_tensor_numel(x) / s->in;
    NNCL_TRY(gemm_backward(l, nncl__gemm_epilogue, x, dy, dx, relu_before));
    if (s->bias) NNCL_TRY(ctx->ops->bias_backward(ctx, &l->params[1].grad, dy, rows, s->out, 1));
    return NNCL_OK;
}

static nncl_status linear_backward(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                                   nncl_tensor *dx)
{
    (void)y;
    return backward(l, x, dy, dx, 0);
}

/* The backward of a relu before the layer (x is its output) and of the layer, in the same GEMM. */
static nncl_status linear_backward_relu(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y,
                                        const nncl_tensor *dy, nncl_tensor *dx)
{
    (void)y;
    return backward(l, x, dy, dx, 1);
}

/* The backend's choice of implementation for each of the three GEMMs' shapes. */
static nncl_status linear_prepare(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                                  nncl_tensor *dx)
{
    NNCL_TRY(gemm_forward(l, gemm_prepare, x, y, 0));
    return gemm_backward(l, gemm_prepare, x, dy, dx, 0);
}

/* PyTorch: kaiming_uniform(a = sqrt 5) for W and U(+-1/sqrt(in)) for b: both bounds are 1/sqrt(in). */
static nncl_status linear_reset(nncl_layer *l, uint64_t seed, uint32_t layer)
{
    const float bound = 1.0f / sqrtf((float)((linear *)l)->in);
    for (size_t i = 0; i < l->n_params; i++) NNCL_TRY(nncl__layer_init_uniform(l, i, bound, seed, layer));
    return NNCL_OK;
}

static const nncl_layer_ops linear_ops = {
    .kind = "linear",
    .reset = linear_reset,
    .output_shape = linear_shape,
    .forward = linear_forward,
    .forward_relu = linear_forward_relu,
    .backward = linear_backward,
    .backward_relu = linear_backward_relu,
    .prepare = linear_prepare,
};

nncl_status nncl_linear_create(nncl_context *ctx, int64_t in_features, int64_t out_features, int bias,
                               nncl_layer **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, out);
    *out = NULL;
    if (in_features < 1 || out_features < 1 || in_features > INT32_MAX || out_features > INT32_MAX)
        return NNCL_LAYER_CONFIG_ERROR(ctx, "linear", "in_features %lld and out_features %lld must be in 1..2^31-1",
                                       (long long)in_features, (long long)out_features);
    nncl_layer *l;
    NNCL_TRY(nncl__layer_alloc(ctx, &linear_ops, sizeof(linear), &l));
    linear *s = (linear *)l;
    s->in = in_features;
    s->out = out_features;
    s->bias = bias != 0;
    snprintf(l->desc, sizeof l->desc, "linear(in=%lld, out=%lld, bias=%d)", (long long)in_features,
             (long long)out_features, s->bias);
    const int64_t wshape[2] = {out_features, in_features};
    nncl_status st = nncl__layer_add_param(l, "weight", 2, wshape, 1, 0.0f);
    if (st == NNCL_OK && s->bias) st = nncl__layer_add_param(l, "bias", 1, &out_features, 1, 0.0f);
    if (st == NNCL_OK) st = linear_reset(l, 0, 0);
    if (st != NNCL_OK) {
        nncl_layer_destroy(l);
        return st;
    }
    *out = l;
    return NNCL_OK;
}
