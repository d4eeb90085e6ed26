/*
 * conv2d.c - torch.nn.Conv2d: NCHW cross-correlation with stride, zero
 * padding, dilation, groups and an optional bias.
 *
 * x (N, C, H, W) -> y (N, OC, OH, OW), OH = (H + 2 ph - dh (kh - 1) - 1) / sh + 1.
 * W is (OC, C / groups, kh, kw), b is (OC).
 */
#include <math.h>
#include <stdio.h>

#include "layers/layer.h"

typedef struct conv2d {
    nncl_layer base;
    nncl_conv2d_options opt;
} conv2d;

nncl_conv2d_options nncl_conv2d_options_default(int64_t in_channels, int64_t out_channels, int64_t kernel)
{
    nncl_conv2d_options o = {
        .in_channels = in_channels, .out_channels = out_channels,
        .kernel_h = kernel, .kernel_w = kernel,
        .stride_h = 1, .stride_w = 1,
        .padding_h = 0, .padding_w = 0,
        .dilation_h = 1, .dilation_w = 1,
        .groups = 1, .bias = 1,
    };
    return o;
}

/* The geometry for an input shape, or NNCL_ERR_SHAPE. */
static nncl_status geometry(const nncl_layer *l, int ndim, const int64_t *in, nncl_conv_geom *g)
{
    const nncl_conv2d_options *o = &((const conv2d *)l)->opt;
    char reason[160];
    if (ndim != 4 || in[1] != o->in_channels) {
        snprintf(reason, sizeof reason, "is not (N, %lld, H, W)", (long long)o->in_channels);
        return nncl__layer_shape_error(l, ndim, in, reason);
    }
    int64_t span_h = o->dilation_h * (o->kernel_h - 1) + 1, span_w = o->dilation_w * (o->kernel_w - 1) + 1;
    if (in[2] + 2 * o->padding_h < span_h || in[3] + 2 * o->padding_w < span_w) {
        snprintf(reason, sizeof reason, "is smaller than the dilated kernel %lldx%lld after padding %lldx%lld",
                 (long long)span_h, (long long)span_w, (long long)o->padding_h, (long long)o->padding_w);
        return nncl__layer_shape_error(l, ndim, in, reason);
    }
    *g = (nncl_conv_geom){
        .n = in[0], .c = in[1], .h = in[2], .w = in[3],
        .oc = o->out_channels,
        .oh = (in[2] + 2 * o->padding_h - span_h) / o->stride_h + 1,
        .ow = (in[3] + 2 * o->padding_w - span_w) / o->stride_w + 1,
        .kh = o->kernel_h, .kw = o->kernel_w,
        .sh = o->stride_h, .sw = o->stride_w,
        .ph = o->padding_h, .pw = o->padding_w,
        .dh = o->dilation_h, .dw = o->dilation_w,
        .groups = o->groups,
    };
    return NNCL_OK;
}

static nncl_status conv2d_shape(const nncl_layer *l, int ndim, const int64_t *in, int *ond, int64_t *out)
{
    nncl_conv_geom g = {0};
    NNCL_TRY(geometry(l, ndim, in, &g));
    *ond = 4;
    out[0] = g.n, out[1] = g.oc, out[2] = g.oh, out[3] = g.ow;
    return NNCL_OK;
}

/* y = conv(x) + bias, then relu when asked: the backend applies both as it stores y. */
static nncl_status forward(nncl_layer *l, const nncl_tensor *x, nncl_tensor *y, int relu)
{
    nncl_context *ctx = l->ctx;
    nncl_conv_geom g = {0};
    NNCL_TRY(geometry(l, x->ndim, x->shape, &g));
    const nncl_tensor *b = ((conv2d *)l)->opt.bias ? &l->params[1].value : NULL;
    return ctx->ops->conv2d_forward(ctx, y, x, &l->params[0].value, b, relu, &g);
}

static nncl_status conv2d_forward(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y)
{
    (void)mode;
    return forward(l, x, y, 0);
}

static nncl_status conv2d_forward_relu(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y)
{
    (void)mode;
    return forward(l, x, y, 1);
}

static nncl_status conv2d_backward(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                                   nncl_tensor *dx)
{
    (void)y;
    nncl_context *ctx = l->ctx;
    nncl_conv_geom g = {0};
    NNCL_TRY(geometry(l, x->ndim, x->shape, &g));
    if (dx != NULL) NNCL_TRY(ctx->ops->conv2d_backward_data(ctx, dx, dy, &l->params[0].value, &g));
    const nncl_tensor *db = ((conv2d *)l)->opt.bias ? &l->params[1].grad : NULL;
    return ctx->ops->conv2d_backward_params(ctx, &l->params[0].grad, db, dy, x, &g);
}

/* The backend's choice of path for this geometry (by measuring, where it measures). */
static nncl_status conv2d_prepare(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                                  nncl_tensor *dx)
{
    nncl_context *ctx = l->ctx;
    if (ctx->ops->conv2d_prepare == NULL) return NNCL_OK;
    nncl_conv_geom g = {0};
    NNCL_TRY(geometry(l, x->ndim, x->shape, &g));
    const int bias = ((conv2d *)l)->opt.bias;
    return ctx->ops->conv2d_prepare(ctx, y, x, &l->params[0].value, bias ? &l->params[1].value : NULL, dy, dx,
                                    &l->params[0].grad, bias ? &l->params[1].grad : NULL, &g);
}

/* PyTorch: kaiming_uniform(a = sqrt 5) for W and U(+-1/sqrt(fan_in)) for b; both bounds are 1/sqrt(fan_in). */
static nncl_status conv2d_reset(nncl_layer *l, uint64_t seed, uint32_t layer)
{
    const nncl_conv2d_options *o = &((conv2d *)l)->opt;
    const float bound = 1.0f / sqrtf((float)(o->in_channels / o->groups * o->kernel_h * o->kernel_w));
    for (size_t i = 0; i < l->n_params; i++) NNCL_TRY(nncl__layer_init_uniform(l, i, bound, seed, layer));
    return NNCL_OK;
}

static const nncl_layer_ops conv2d_ops = {
    .kind = "conv2d",
    .reset = conv2d_reset,
    .output_shape = conv2d_shape,
    .forward = conv2d_forward,
    .forward_relu = conv2d_forward_relu,
    .backward = conv2d_backward,
    .prepare = conv2d_prepare,
};

nncl_status nncl_conv2d_create(nncl_context *ctx, const nncl_conv2d_options *opt, nncl_layer **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, opt);
    NNCL_CHECK_ARG(ctx, out);
    *out = NULL;
    const nncl_conv2d_options *o = opt;
    const int64_t limit = INT32_MAX;
    if (o->in_channels < 1 || o->out_channels < 1 || o->in_channels > limit || o->out_channels > limit)
        return NNCL_LAYER_CONFIG_ERROR(ctx, "conv2d", "in_channels %lld and out_channels %lld must be at least 1",
                                       (long long)o->in_channels, (long long)o->out_channels);
    if (o->kernel_h < 1 || o->kernel_w < 1 || o->stride_h < 1 || o->stride_w < 1 || o->dilation_h < 1 ||
        o->dilation_w < 1 || o->kernel_h > 1024 || o->kernel_w > 1024 || o->stride_h > limit || o->stride_w > limit ||
        o->dilation_h > limit || o->dilation_w > limit)
        return NNCL_LAYER_CONFIG_ERROR(ctx, "conv2d", "kernel %lldx%lld, stride %lldx%lld and dilation %lldx%lld must be "
                                       "in 1..2^31-1 (kernel at most 1024)",
                                       (long long)o->kernel_h, (long long)o->kernel_w, (long long)o->stride_h,
                                       (long long)o->stride_w, (long long)o->dilation_h, (long long)o->dilation_w);
    if (o->padding_h < 0 || o->padding_w < 0 || o->padding_h > limit || o->padding_w > limit)
        return NNCL_LAYER_CONFIG_ERROR(ctx, "conv2d", "padding %lldx%lld must not be negative", (long long)o->padding_h,
                                       (long long)o->padding_w);
    if (o->groups < 1 || o->in_channels % o->groups != 0 || o->out_channels % o->groups != 0)
        return NNCL_LAYER_CONFIG_ERROR(ctx, "conv2d", "groups %lld must divide in_channels %lld and out_channels %lld",
                                       (long long)o->groups, (long long)o->in_channels, (long long)o->out_channels);
    nncl_layer *l;
    NNCL_TRY(nncl__layer_alloc(ctx, &conv2d_ops, sizeof(conv2d), &l));
    ((conv2d *)l)->opt = *o;
    ((conv2d *)l)->opt.bias = o->bias != 0;
    snprintf(l->desc, sizeof l->desc,
             "conv2d(in=%lld, out=%lld, kernel=%lldx%lld, stride=%lldx%lld, padding=%lldx%lld, dilation=%lldx%lld, "
             "groups=%lld, bias=%d)",
             (long long)o->in_channels, (long long)o->out_channels, (long long)o->kernel_h, (long long)o->kernel_w,
             (long long)o->stride_h, (long long)o->stride_w, (long long)o->padding_h, (long long)o->padding_w,
             (long long)o->dilation_h, (long long)o->dilation_w, (long long)o->groups, o->bias != 0);
    const int64_t wshape[4] = {o->out_channels, o->in_channels / o->groups, o->kernel_h, o->kernel_w};
    nncl_status st = nncl__layer_add_param(l, "weight", 4, wshape, 1, 0.0f);
    if (st == NNCL_OK && o->bias) st = nncl__layer_add_param(l, "bias", 1, &o->out_channels, 1, 0.0f);
    if (st == NNCL_OK) st = conv2d_reset(l, 0, 0);
    if (st != NNCL_OK) {
        nncl_layer_destroy(l);
        return st;
    }
    *out = l;
    return NNCL_OK;
}
