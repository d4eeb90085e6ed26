/*
 * test_parity.c - the parity table: every layer and loss, forward and
 * backward, on the CPU reference and on OpenCL from the same seeded inputs.
 *
 * Usage: test_parity [FAMILY...]   (no argument: every family)
 *
 * Each family generates at least 20 cases from the sizes 1, 7, 31, 32, 33,
 * 63, 64, 65 and 93 and seeded random configurations. They go through the
 * leading dimension of every family; element-wise families take them modulo
 * 17, plus one, in their trailing dimensions, and batches of up to 5,000 in
 * some cases; convolutions take them through batch and channels, with
 * spatial sizes of 5 to 16 and 93. Activations with a parameter (leaky relu,
 * elu) draw it per case. Every tensor the op reads or writes (x, y, dy, dx)
 * is a view at a non-zero offset inside a guarded buffer, so the test also
 * catches writes outside a tensor. Parameter gradients start from the same
 * random values on both backends, not zero, so that a backward which
 * overwrites them instead of adding to them differs. Compared per case: the
 * output, the input gradient, every parameter gradient, and every buffer
 * after the forward (batch norm's running statistics). A share of the conv2d
 * and max pooling cases also run the fused relu paths of a network
 * (network.c), compared in the same way: conv2d's forward with the relu
 * applied as it stores (which must also be relu of the plain output, bit for
 * bit, on each backend), and max pooling's backward with the backward of the
 * relu that produced its input folded in (relu_y), on a relu's output.
 *
 * Tolerance, per element: |opencl - cpu| <= atol + rtol * |cpu|, stated per
 * family in FAMILIES below. Families with atol = rtol = 0 must match bit for
 * bit: they have no transcendental functions and nncl computes them in the
 * same order on both backends (relu, leaky_relu, max/avg/global pooling,
 * flatten, unflatten, dropout, add). Flatten and unflatten are alias layers
 * that change descriptors on the host and run no op on either backend: their
 * rows check that both backends give the same views and gradients, not a
 * kernel (test_layers checks that they launch none).
 *
 * The harness can fail: test_parity_perturbed is this file built with
 * NNCL_TEST_PERTURB, which builds the OpenCL kernels with -DNNCL_PERTURB
 * (activation_forward then adds 1e-3 to its first output); CTest expects it
 * to fail (WILL_FAIL).
 */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h" /* the network's loss step, ctx->ops->loss_step */
#include "layers/layer.h"    /* the fused relu paths, nncl__layer_forward_relu and nncl__layer_backward_relu */
#ifdef NNCL_TEST_PERTURB
#include "opencl/cl.h"
#endif

static nncl_context *cpu, *ocl;

static const int64_t SIZES[] = {1, 7, 31, 32, 33, 63, 64, 65, 93};
#define N_SIZES ((int)(sizeof SIZES / sizeof SIZES[0]))
#define CASES_PER_FAMILY 24

/* ---- a case: which layer, its configuration, the input shape ---------------------------- */

typedef struct layer_config {
    int64_t a, b, c;            /* linear: in, out, bias; batchnorm: features, spatial dims */
    nncl_conv2d_options conv;
    nncl_pool_kind pool;
    int64_t k, s, p;            /* pooling */
    nncl_activation act;
    float param;                /* activation parameter, dropout p */
    int flag;                   /* softmax: log; layernorm: affine; pooling: global */
    int ln_ndim;                /* layernorm: trailing dimensions normalised */
    nncl_loss_kind loss;
    float smoothing;
    nncl_mode mode;
    int relu;                   /* also run the layer's fused relu path (conv2d: forward, max pooling: backward) */
} layer_config;

typedef struct parity_case {
    layer_config cfg;
    int ndim;
    int64_t shape[4];
} parity_case;

typedef struct family {
    const char *name;
    double atol, rtol; /* 0, 0: bit for bit */
    void (*generate)(parity_case *cases, test_rng *r);
    nncl_status (*create)(nncl_context *ctx, const parity_case *c, nncl_layer **out); /* NULL: loss or add */
} family;

static int64_t pick(int i)
{
    return SIZES[i % N_SIZES];
}

/* ---- generators: CASES_PER_FAMILY cases each ---------------------------------------------- */

static void gen_linear(parity_case *c, test_rng *r)
{
    for (int i = 0; i < CASES_PER_FAMILY; i++) {
        int64_t batch = i < N_SIZES ? pick(i) : 1 + test_rng_below(r, 40);
        int64_t in = i < N_SIZES ? pick(i + 3) : 1 + test_rng_below(r, 100);
        int64_t out = i < N_SIZES ? pick(i + 6) : 1 + test_rng_below(r, 100);
        c[i].cfg = (layer_config){.a = in, .b = out, .c = i % 3 != 2, .mode = NNCL_TRAIN};
        if (i % 4 == 3) { /* a 3-D input: linear applies to the last dimension */
            c[i].ndim = 3;
            c[i].shape[0] = batch, c[i].shape[1] = 1 + i % 3, c[i].shape[2] = in;
        } else {
            c[i].ndim = 2;
            c[i].shape[0] = batch, c[i].shape[1] = in;
        }
    }
}

static nncl_status create_linear(nncl_context *ctx, const parity_case *c, nncl_layer **out)
{
    const layer_config *cfg = &c->cfg;
    return nncl_linear_create(ctx, cfg->a, cfg->b, (int)cfg->c, out);
}

static void gen_conv2d(parity_case *c, test_rng *r)
{
    for (int i = 0; i < CASES_PER_FAMILY; i++) {
        /* Fixed sizes go through batch, then channels, then spatial; the rest is random. */
        int64_t n = 2, ch = 3, hw = 9;
        if (i < N_SIZES) n = pick(i);
        else if (i < 2 * N_SIZES) ch = pick(i);
        else hw = 5 + test_rng_below(r, 12);
        if (i == 2 * N_SIZES) hw = 93;
        int64_t k = 1 + test_rng_below(r, 3);
        /* Mostly few output channels; every fourth case more than one block of 16 (the direct kernels' width). */
        const int64_t oc = i % 4 == 3 ? 17 + test_rng_below(r, 24) : 1 + test_rng_below(r, 6);
        nncl_conv2d_options o = nncl_conv2d_options_default(ch, oc, k);
        o.stride_h = 1 + test_rng_below(r, 2), o.stride_w = 1 + test_rng_below(r, 2);
        o.padding_h = test_rng_below(r, k + 1), o.padding_w = test_rng_below(r, k + 1);
        o.dilation_h = 1 + (i % 5 == 4), o.dilation_w = 1 + (i % 7 == 6);
        o.kernel_w = i % 6 == 5 ? k + 1 : k; /* some non-square kernels */
        o.bias = i % 4 != 1;
        if (i % 3 == 2 && ch % 3 == 0) { /* grouped */
            o.groups = 3;
            o.out_channels = 3 * (1 + test_rng_below(r, 2));
        }
        /* Output channels per group in whole blocks of the direct kernels (16) and of vectors (8): 32 in
           one group, and 8 in each of 3 groups. */
        if (i == 19) o.out_channels = 32;
        if (i == 14 && o.groups == 3) o.out_channels = 24;
        if (i == 22) { /* depthwise */
            o.in_channels = o.out_channels = o.groups = ch = 8;
        }
        if (i == 20) { /* one input channel and rows shorter than a vector (the few-taps weight gradient) */
            o.in_channels = ch = 1, o.groups = 1, o.out_channels = 1 + test_rng_below(r, 6);
            o.stride_w = 1, o.padding_w = 0;
            hw = 5;
        }
        if (i == 21 || i == 23) { /* few taps (7 and 10), which the weight gradient rounds up to 9 and 11 */
            o.in_channels = ch = i == 21 ? 7 : 5, o.groups = 1;
            o.kernel_h = 1, o.kernel_w = i == 21 ? 1 : 2;
            o.stride_w = 1, o.padding_h = o.padding_w = 0, o.dilation_h = o.dilation_w = 1;
        }
        /* Every other case also runs the forward with the relu fused: with and without bias, grouped, more
           than 16 output channels, few taps. */
        c[i].cfg = (layer_config){.conv = o, .mode = NNCL_TRAIN, .relu = i % 2};
        c[i].ndim = 4;
        c[i].shape[0] = n, c[i].shape[1] = ch, c[i].shape[2] = hw, c[i].shape[3] = hw + i % 3;
        /* Keep every input at least as large as the dilated kernel. */
        int64_t need = o.dilation_h * (o.kernel_h - 1) + 1;
        if (c[i].shape[2] + 2 * o.padding_h < need) c[i].shape[2] = need;
        need = o.dilation_w * (o.kernel_w - 1) + 1;
        if (c[i].shape[3] + 2 * o.padding_w < need) c[i].shape[3] = need;
    }
}

static nncl_status create_conv2d(nncl_context *ctx, const parity_case *c, nncl_layer **out)
{
    const layer_config *cfg = &c->cfg;
    return nncl_conv2d_create(ctx, &cfg->conv, out);
}

/* Pooling (max, avg, global avg): batch, channels and spatial sizes from the table. */
static void gen_pool(parity_case *c, test_rng *r, nncl_pool_kind kind, int global)
{
    for (int i = 0; i < CASES_PER_FAMILY; i++) {
        int64_t n = 2, ch = 3, h = 8, w = 9;
        if (i < N_SIZES) n = pick(i);
        else if (i < 2 * N_SIZES) ch = pick(i);
        else h = w = pick(i) < 4 ? 4 : pick(i);
        if (i % 5 == 4) w = pick(i + 2) < 3 ? 3 : pick(i + 2);
        int64_t k = 2 + test_rng_below(r, 2), s = 1 + test_rng_below(r, 3), p = test_rng_below(r, k / 2 + 1);
        if (i % 4 == 1) { /* windows that tile the input exactly, as in the reference CNN */
            s = k, p = 0;
            h -= h % k;
            w -= w % k;
        }
        if (i == 21) k = s = 2, p = 0, w = 6; /* 2 x 2 windows on rows of fewer than 4 outputs */
        /* Max pooling of a relu's output, whose backward folds in the relu's, in every third case and in the
           tiling ones: overlapping windows, disjoint ones, and 2 x 2 stride-2 ones on rows of 4 or more
           outputs and of fewer, which have kernels of their own. */
        const int relu = kind == NNCL_POOL_MAX && !global && (i % 3 == 0 || i % 4 == 1);
        c[i].cfg = (layer_config){.pool = kind, .k = k, .s = s, .p = p, .flag = global, .mode = NNCL_TRAIN,
                                  .relu = relu};
        c[i].ndim = 4;
        c[i].shape[0] = n, c[i].shape[1] = ch, c[i].shape[2] = h, c[i].shape[3] = w;
    }
}

static void gen_maxpool(parity_case *c, test_rng *r) { gen_pool(c, r, NNCL_POOL_MAX, 0); }
static void gen_avgpool(parity_case *c, test_rng *r) { gen_pool(c, r, NNCL_POOL_AVG, 0); }
static void gen_global_avgpool(parity_case *c, test_rng *r) { gen_pool(c, r, NNCL_POOL_AVG, 1); }

static nncl_status create_pool(nncl_context *ctx, const parity_case *c, nncl_layer **out)
{
    const layer_config *cfg = &c->cfg;
    if (cfg->flag) return nncl_global_avgpool_create(ctx, out);
    return nncl_pool2d_create(ctx, cfg->pool, cfg->k, cfg->s, cfg->p, out);
}

/* Element-wise layers: any shape; sizes from the table in every position. */
static void gen_elementwise(parity_case *c, test_rng *r, nncl_activation act, float param)
{
    for (int i = 0; i < CASES_PER_FAMILY; i++) {
        /* A parameter (leaky relu's slope, elu's alpha) drawn per case around the family's value. */
        const float p = param > 0.0f ? param * test_rng_uniform(r, 0.25f, 2.0f) : param;
        c[i].cfg = (layer_config){.act = act, .param = p, .mode = NNCL_TRAIN};
        c[i].ndim = 1 + i % 4;
        for (int d = 0; d < c[i].ndim; d++) c[i].shape[d] = d == 0 ? pick(i + d) : pick(i + 2 * d) % 17 + 1;
        if (i >= 20) c[i].shape[0] = 1 + test_rng_below(r, 5000); /* large and odd */
    }
}

#define ACTIVATION_FAMILY(fn, act, param)                                                          \
    static void gen_##fn(parity_case *c, test_rng *r) { gen_elementwise(c, r, act, param); }
ACTIVATION_FAMILY(relu, NNCL_ACT_RELU, 0.0f)
ACTIVATION_FAMILY(leaky_relu, NNCL_ACT_LEAKY_RELU, 0.1f)
ACTIVATION_FAMILY(sigmoid, NNCL_ACT_SIGMOID, 0.0f)
ACTIVATION_FAMILY(tanh, NNCL_ACT_TANH, 0.0f)
ACTIVATION_FAMILY(gelu, NNCL_ACT_GELU, 0.0f)
ACTIVATION_FAMILY(silu, NNCL_ACT_SILU, 0.0f)
ACTIVATION_FAMILY(elu, NNCL_ACT_ELU, 1.0f)

static nncl_status create_activation(nncl_context *ctx, const parity_case *c, nncl_layer **out)
{
    const layer_config *cfg = &c->cfg;
    return nncl_activation_create(ctx, cfg->act, cfg->param, out);
}

static void gen_softmax_flag(parity_case *c, test_rng *r, int log)
{
    gen_elementwise(c, r, NNCL_ACT_RELU, 0.0f);
    for (int i = 0; i < CASES_PER_FAMILY; i++) {
        c[i].cfg.flag = log;
        c[i].shape[c[i].ndim - 1] = pick(i + 4); /* the softmax dimension takes the table's sizes */
    }
}

static void gen_softmax(parity_case *c, test_rng *r) { gen_softmax_flag(c, r, 0); }
static void gen_log_softmax(parity_case *c, test_rng *r) { gen_softmax_flag(c, r, 1); }

static nncl_status create_softmax(nncl_context *ctx, const parity_case *c, nncl_layer **out)
{
    const layer_config *cfg = &c->cfg;
    return nncl_softmax_create(ctx, cfg->flag, out);
}

static void gen_dropout(parity_case *c, test_rng *r)
{
    gen_elementwise(c, r, NNCL_ACT_RELU, 0.0f);
    static const float ps[] = {0.0f, 0.1f, 0.5f, 0.9f};
    for (int i = 0; i < CASES_PER_FAMILY; i++) {
        c[i].cfg.param = ps[i % 4];
        c[i].cfg.mode = i % 6 == 5 ? NNCL_EVAL : NNCL_TRAIN;
    }
}

static nncl_status create_dropout(nncl_context *ctx, const parity_case *c, nncl_layer **out)
{
    const layer_config *cfg = &c->cfg;
    return nncl_dropout_create(ctx, cfg->param, 0x5eed, 3, out);
}

static void gen_flatten(parity_case *c, test_rng *r)
{
    gen_elementwise(c, r, NNCL_ACT_RELU, 0.0f);
    for (int i = 0; i < CASES_PER_FAMILY; i++) c[i].cfg.flag = i % c[i].ndim; /* start_dim */
}

static nncl_status create_flatten(nncl_context *ctx, const parity_case *c, nncl_layer **out)
{
    const layer_config *cfg = &c->cfg;
    return nncl_flatten_create(ctx, cfg->flag, out);
}

static void gen_unflatten(parity_case *c, test_rng *r)
{
    gen_elementwise(c, r, NNCL_ACT_RELU, 0.0f);
    for (int i = 0; i < CASES_PER_FAMILY; i++) {
        c[i].shape[0] = pick(i) * 6; /* dimension 0 is split into (-1, 6) or (2, -1) ... */
        c[i].cfg.flag = i % 3;
    }
}

static nncl_status create_unflatten(nncl_context *ctx, const parity_case *c, nncl_layer **out)
{
    const layer_config *cfg = &c->cfg;
    static const int64_t splits[3][2] = {{-1, 6}, {2, -1}, {3, -1}};
    return nncl_unflatten_create(ctx, 0, 2, splits[cfg->flag], out);
}

static void gen_batchnorm(parity_case *c, test_rng *r)
{
    for (int i = 0; i < CASES_PER_FAMILY; i++) {
        int spatial = 1 + i % 2;
        int64_t n = i < N_SIZES ? pick(i) : 2 + test_rng_below(r, 6);
        int64_t ch = i >= N_SIZES && i < 2 * N_SIZES ? pick(i) : 1 + test_rng_below(r, 5);
        if (n == 1 && spatial == 1) n = 2; /* training needs more than one value per channel */
        c[i].cfg = (layer_config){.a = ch, .b = spatial, .mode = i % 5 == 4 ? NNCL_EVAL : NNCL_TRAIN};
        c[i].shape[0] = n, c[i].shape[1] = ch;
        if (spatial == 2) {
            c[i].ndim = 4;
            c[i].shape[2] = i >= 2 * N_SIZES ? pick(i) % 33 + 1 : 3 + i % 4;
            c[i].shape[3] = 2 + i % 5;
        } else {
            c[i].ndim = i % 4 == 2 ? 3 : 2; /* (N, C, L) in every other BatchNorm1d case, else (N, C) */
            c[i].shape[2] = 1 + i % 7;
        }
    }
}

static nncl_status create_batchnorm(nncl_context *ctx, const parity_case *c, nncl_layer **out)
{
    const layer_config *cfg = &c->cfg;
    return nncl_batchnorm_create(ctx, cfg->a, (int)cfg->b, out);
}

static void gen_layernorm(parity_case *c, test_rng *r)
{
    gen_elementwise(c, r, NNCL_ACT_RELU, 0.0f);
    for (int i = 0; i < CASES_PER_FAMILY; i++) {
        c[i].cfg.flag = i % 3 != 2; /* affine */
        c[i].cfg.ln_ndim = 1 + (c[i].ndim > 1 && i % 2);
        c[i].shape[c[i].ndim - 1] = pick(i + 5);
    }
}

static nncl_status create_layernorm(nncl_context *ctx, const parity_case *c, nncl_layer **out)
{
    return nncl_layernorm_create(ctx, c->cfg.ln_ndim, c->shape + c->ndim - c->cfg.ln_ndim, c->cfg.flag, out);
}

/* Losses and add: (n, c) inputs with the table's sizes. */
static void gen_loss(parity_case *c, test_rng *r, nncl_loss_kind kind)
{
    for (int i = 0; i < CASES_PER_FAMILY; i++) {
        c[i].cfg = (layer_config){.loss = kind, .smoothing = kind == NNCL_LOSS_CROSS_ENTROPY && i % 2 ? 0.1f : 0.0f};
        c[i].ndim = 2;
        c[i].shape[0] = i < N_SIZES ? pick(i) : 1 + test_rng_below(r, 100);
        c[i].shape[1] = i >= N_SIZES && i < 2 * N_SIZES ? pick(i) : 1 + test_rng_below(r, 20);
    }
}

static void gen_mse(parity_case *c, test_rng *r) { gen_loss(c, r, NNCL_LOSS_MSE); }
static void gen_cross_entropy(parity_case *c, test_rng *r) { gen_loss(c, r, NNCL_LOSS_CROSS_ENTROPY); }
static void gen_bce(parity_case *c, test_rng *r) { gen_loss(c, r, NNCL_LOSS_BCE_WITH_LOGITS); }
static void gen_nll(parity_case *c, test_rng *r) { gen_loss(c, r, NNCL_LOSS_NLL); }
static void gen_add(parity_case *c, test_rng *r) { gen_elementwise(c, r, NNCL_ACT_RELU, 0.0f); }

/*
 * The table. Tolerances: linear and conv2d reduce up to ~10^4 products of O(1)
 * values (weight gradients sum over the batch and every output position) in
 * CLBlast's order, so the absolute error scales with the sum of |terms| and
 * not with the result: atol 1e-4. Normalisations divide by a standard
 * deviation computed from float sums; transcendental functions may differ by
 * a few ulp between devices.
 */
static const family FAMILIES[] = {
    {"linear", 1e-4, 1e-4, gen_linear, create_linear},
    {"conv2d", 1e-4, 1e-4, gen_conv2d, create_conv2d},
    {"maxpool2d", 0, 0, gen_maxpool, create_pool},
    {"avgpool2d", 0, 0, gen_avgpool, create_pool},
    {"global_avgpool", 0, 0, gen_global_avgpool, create_pool},
    {"flatten", 0, 0, gen_flatten, create_flatten},
    {"unflatten", 0, 0, gen_unflatten, create_unflatten},
    {"relu", 0, 0, gen_relu, create_activation},
    {"leaky_relu", 0, 0, gen_leaky_relu, create_activation},
    {"sigmoid", 1e-7, 1e-5, gen_sigmoid, create_activation},
    {"tanh", 1e-7, 1e-5, gen_tanh, create_activation},
    {"gelu", 1e-7, 1e-5, gen_gelu, create_activation},
    {"silu", 1e-7, 1e-5, gen_silu, create_activation},
    {"elu", 1e-7, 1e-5, gen_elu, create_activation},
    {"softmax", 1e-7, 1e-5, gen_softmax, create_softmax},
    {"log_softmax", 1e-6, 1e-5, gen_log_softmax, create_softmax},
    {"dropout", 0, 0, gen_dropout, create_dropout},
    {"batchnorm", 1e-5, 1e-4, gen_batchnorm, create_batchnorm},
    {"layernorm", 1e-5, 1e-4, gen_layernorm, create_layernorm},
    {"add", 0, 0, gen_add, NULL},
    {"mse", 1e-7, 1e-5, gen_mse, NULL},
    {"cross_entropy", 1e-7, 1e-5, gen_cross_entropy, NULL},
    {"bce_with_logits", 1e-7, 1e-5, gen_bce, NULL},
    {"nll", 1e-7, 1e-5, gen_nll, NULL},
};
#define N_FAMILIES ((int)(sizeof FAMILIES / sizeof FAMILIES[0]))

/* ---- running a case on both backends --------------------------------------------------- */

static int64_t numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

static float *random_array(test_rng *r, int64_t n, float lo, float hi)
{
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    assert_non_null(v);
    test_rng_fill(r, v, (size_t)n, lo, hi);
    return v;
}

/* Compares got (OpenCL) with want (CPU) under the family's tolerance. */
static void compare(const family *f, const float *got, const float *want, int64_t n, const char *what)
{
    if (f->atol == 0 && f->rtol == 0)
        test_assert_bitwise(got, want, (size_t)n, what);
    else
        test_assert_close(got, want, (size_t)n, f->atol, f->rtol, what);
}

/* Everything one backend produced for a case, read back to the host (y_relu, dx_relu: NULL unless run). */
typedef struct results {
    float *y, *dx, *grads[4], *buffers[4];
    float *y_relu, *dx_relu; /* the output with the relu fused, the input gradient through the folded relu */
    int64_t ny, nx, ngrad[4], nbuf[4];
    size_t n_params, n_total;
} results;

static void results_free(results *r)
{
    free(r->y);
    free(r->dx);
    free(r->y_relu);
    free(r->dx_relu);
    for (int i = 0; i < 4; i++) {
        free(r->grads[i]);
        free(r->buffers[i]);
    }
}

/*
 * The fused relu paths a network takes (network.c), after the plain forward
 * and backward: a layer with a forward_relu (conv2d) writes the output with
 * the relu applied, which on one backend must be relu(y) bit for bit (the
 * same sums, then the relu); a layer with a backward_relu (max pooling) takes
 * the gradient through the relu that produced x, masked where y is not > 0.
 */
static void run_fused_relu(nncl_context *ctx, nncl_layer *l, const parity_case *c, test_guarded *gx, test_guarded *gy,
                           test_guarded *gdy, const char *what, results *out)
{
    test_guarded gf;
    char part[320];
    if (l->ops->forward_relu != NULL) {
        test_guarded_create(ctx, &gf, gy->view.ndim, gy->view.shape, NULL);
        TEST_OK(ctx, nncl__layer_forward_relu(l, c->cfg.mode, &gx->view, &gf.view));
        out->y_relu = malloc(sizeof(float) * (size_t)out->ny);
        test_guarded_read(ctx, &gf, out->y_relu, what);
        float *want = malloc(sizeof(float) * (size_t)out->ny);
        assert_non_null(want);
        for (int64_t i = 0; i < out->ny; i++) want[i] = out->y[i] > 0.0f ? out->y[i] : 0.0f;
        snprintf(part, sizeof part, "%s: output with the relu fused against relu(output), on %s", what,
                 ctx->ops->name);
        test_assert_bitwise(out->y_relu, want, (size_t)out->ny, part);
        free(want);
    } else {
        test_guarded_create(ctx, &gf, c->ndim, c->shape, NULL);
        TEST_OK(ctx, nncl__layer_backward_relu(l, &gx->view, &gy->view, &gdy->view, &gf.view));
        out->dx_relu = malloc(sizeof(float) * (size_t)out->nx);
        test_guarded_read(ctx, &gf, out->dx_relu, what);
    }
    test_guarded_destroy(ctx, &gf);
}

/* Runs a one-input layer case on ctx: parameters, x and dy come from seed. */
static void run_layer(nncl_context *ctx, const family *f, const parity_case *c, uint64_t seed, const char *what,
                      results *out)
{
    memset(out, 0, sizeof *out);
    nncl_layer *l = NULL;
    TEST_OK(ctx, f->create(ctx, c, &l));
    test_rng r = test_rng_seed(seed);
    TEST_OK(ctx, nncl_layer_param_count(l, &out->n_total));
    for (size_t i = 0; i < out->n_total; i++) {
        const char *name;
        nncl_tensor v, g;
        TEST_OK(ctx, nncl_layer_param(l, i, &name, &v, &g));
        if (g.buf != NULL) out->n_params = i + 1;
        int64_t n = nncl_tensor_numel(&v);
        /* Positive running variances; everything else in [-1, 1). */
        float *vals = random_array(&r, n, strcmp(name, "running_var") == 0 ? 0.5f : -1.0f, 1.0f);
        TEST_OK(ctx, nncl_tensor_write(ctx, &v, vals, (size_t)n));
        free(vals);
        if (g.buf != NULL) { /* the backward adds to the gradient: start it away from zero */
            vals = random_array(&r, n, -1.0f, 1.0f);
            TEST_OK(ctx, nncl_tensor_write(ctx, &g, vals, (size_t)n));
            free(vals);
        }
    }
    int ond, alias;
    int64_t os[NNCL_MAX_DIMS];
    TEST_OK(ctx, nncl_layer_output_shape(l, c->ndim, c->shape, &ond, os));
    TEST_OK(ctx, nncl_layer_is_alias(l, &alias));
    out->nx = numel(c->ndim, c->shape);
    out->ny = numel(ond, os);
    float *x = random_array(&r, out->nx, -2.0f, 2.0f), *dy = random_array(&r, out->ny, -1.0f, 1.0f);
    if (c->cfg.relu && l->ops->backward_relu != NULL) {
        /* A relu's output, three quarters zeros: windows of zeros alone, whose maximum (the first zero) passes
           no gradient through the relu, and ties. */
        for (int64_t i = 0; i < out->nx; i++) x[i] = x[i] > 1.0f ? x[i] - 1.0f : 0.0f;
    }
    if (strcmp(f->name, "maxpool2d") == 0 && seed % 2) {
        /* NaN wins its window, and a window of -inf alone (the top-left one) passes no gradient: the same on
           both backends, whichever kernel runs. */
        const int64_t w = c->shape[3];
        for (int64_t i = 0; i < out->nx; i += 11) x[i] = NAN;
        for (int64_t i = 5; i < out->nx; i += 13) x[i] = -INFINITY;
        for (int64_t yy = 0; yy < 3 && yy < c->shape[2]; yy++)
            for (int64_t xx = 0; xx < 3 && xx < w; xx++) x[yy * w + xx] = -INFINITY;
    }
    test_guarded gx, gy, gdy, gdx;
    test_guarded_create(ctx, &gx, c->ndim, c->shape, x);
    test_guarded_create(ctx, &gdy, ond, os, dy);
    out->y = malloc(sizeof(float) * (size_t)out->ny);
    out->dx = malloc(sizeof(float) * (size_t)out->nx);
    if (alias) { /* y and dx are descriptors of x and dy: read the data through them */
        nncl_tensor y, dx;
        TEST_OK(ctx, nncl_layer_forward(l, c->cfg.mode, &gx.view, &y));
        TEST_OK(ctx, nncl_layer_backward(l, &gx.view, &y, &gdy.view, &dx));
        TEST_OK(ctx, nncl_tensor_read(ctx, &y, out->y, (size_t)out->ny));
        TEST_OK(ctx, nncl_tensor_read(ctx, &dx, out->dx, (size_t)out->nx));
    } else {
        test_guarded_create(ctx, &gy, ond, os, NULL);
        test_guarded_create(ctx, &gdx, c->ndim, c->shape, NULL);
        TEST_OK(ctx, nncl_layer_forward(l, c->cfg.mode, &gx.view, &gy.view));
        TEST_OK(ctx, nncl_layer_backward(l, &gx.view, &gy.view, &gdy.view, &gdx.view));
        test_guarded_read(ctx, &gy, out->y, what);
        test_guarded_read(ctx, &gdx, out->dx, what);
        if (c->cfg.relu) run_fused_relu(ctx, l, c, &gx, &gy, &gdy, what, out);
        test_guarded_destroy(ctx, &gy);
        test_guarded_destroy(ctx, &gdx);
    }
    for (size_t i = 0; i < out->n_total; i++) {
        nncl_tensor v, g;
        TEST_OK(ctx, nncl_layer_param(l, i, NULL, &v, &g));
        nncl_tensor *t = i < out->n_params ? &g : &v;
        int64_t n = nncl_tensor_numel(t);
        float **dst = i < out->n_params ? &out->grads[i] : &out->buffers[i];
        *dst = malloc(sizeof(float) * (size_t)n);
        (i < out->n_params ? out->ngrad : out->nbuf)[i] = n;
        TEST_OK(ctx, nncl_tensor_read(ctx, t, *dst, (size_t)n));
    }
    test_guarded_destroy(ctx, &gx);
    test_guarded_destroy(ctx, &gdy);
    free(x);
    free(dy);
    TEST_OK(ctx, nncl_layer_destroy(l));
}

/*
 * The network's loss step (the backend's loss_step, which nncl_network_forward
 * runs) on the case's tensors: on the same backend, its loss and gradient must
 * be those of nncl_loss_forward and nncl_loss_backward bit for bit, its
 * correct count the host's count of rows whose first largest entry is at the
 * label, and its running sums the previous ones plus n loss (one fma) and
 * the count; without a gradient it must leave dinput alone. OpenCL does it
 * in two launches (the CPU backend counts one operation). metrics receives [loss, correct].
 */
static void check_loss_step(nncl_context *ctx, const parity_case *c, test_guarded *gx, test_guarded *gt,
                            const float *x, const int64_t *labels, float loss, const float *dx, float metrics[2],
                            const char *what)
{
    const int64_t n = c->shape[0], k = c->shape[1], two = 2, work_n = 2 * n;
    const nncl_loss_kind kind = c->cfg.loss;
    const int classes = kind == NNCL_LOSS_CROSS_ENTROPY || kind == NNCL_LOSS_NLL;
    int64_t want_correct = 0;
    for (int64_t i = 0; classes && i < n; i++) {
        int64_t best = 0;
        for (int64_t j = 1; j < k; j++)
            if (x[i * k + j] > x[i * k + best]) best = j;
        want_correct += best == labels[i];
    }
    const float sum0[2] = {0.75f, 3.0f};
    float *untouched = calloc((size_t)(n * k), sizeof(float)), *got_dx = malloc(sizeof(float) * (size_t)(n * k));
    assert_non_null(untouched);
    assert_non_null(got_dx);
    test_guarded gm, gs, gw, gdx;
    test_guarded_create(ctx, &gm, 1, &two, NULL);
    test_guarded_create(ctx, &gs, 1, &two, sum0);
    test_guarded_create(ctx, &gw, 1, &work_n, NULL);
    test_guarded_create(ctx, &gdx, 2, c->shape, untouched);
    nncl_stats before, after;
    nncl_backend_kind backend;
    TEST_OK(ctx, nncl_context_backend(ctx, &backend));
    for (int grad = 0; grad < 2; grad++) {
        TEST_OK(ctx, nncl_context_stats(ctx, &before));
        TEST_OK(ctx, ctx->ops->loss_step(ctx, kind, &gm.view, &gs.view, grad ? &gdx.view : NULL, &gw.view, &gx->view,
                                         &gt->view, n, k, c->cfg.smoothing));
        TEST_OK(ctx, nncl_context_stats(ctx, &after));
        assert_int_equal(after.kernel_launches - before.kernel_launches, backend == NNCL_BACKEND_OPENCL ? 2 : 1);
        float m[2], sum[2];
        test_guarded_read(ctx, &gm, m, what);
        test_guarded_read(ctx, &gs, sum, what);
        test_guarded_read(ctx, &gdx, got_dx, what);
        char part[320];
        snprintf(part, sizeof part, "%s: loss step%s, loss", what, grad ? " with the gradient" : "");
        test_assert_bitwise(&m[0], &loss, 1, part);
        if (m[1] != (float)want_correct)
            fail_msg("%s: %g correct, expected %lld", part, (double)m[1], (long long)want_correct);
        /* The running sums after grad + 1 steps: fma, then fma again on the first's result. */
        const float want_sum0 = fmaf((float)n, loss, grad ? fmaf((float)n, loss, sum0[0]) : sum0[0]);
        const float want_sum1 = sum0[1] + (float)want_correct * (float)(grad + 1);
        if (sum[0] != want_sum0 || sum[1] != want_sum1)
            fail_msg("%s: running sums %g, %g, expected %g, %g", part, (double)sum[0], (double)sum[1],
                     (double)want_sum0, (double)want_sum1);
        snprintf(part, sizeof part, "%s: loss step%s, dinput", what,
                 grad ? " with the gradient" : " without a gradient");
        test_assert_bitwise(got_dx, grad ? dx : untouched, (size_t)(n * k), part);
        memcpy(metrics, m, sizeof m);
    }
    test_guarded *all[] = {&gm, &gs, &gw, &gdx};
    for (int i = 0; i < 4; i++) test_guarded_destroy(ctx, all[i]);
    free(untouched);
    free(got_dx);
}

/* Runs a loss case on ctx: out->y is the loss, out->dx the input gradient, out->buffers[0] the loss step's
   [loss, correct count] (check_loss_step). */
static void run_loss(nncl_context *ctx, const parity_case *c, uint64_t seed, const char *what, results *out)
{
    memset(out, 0, sizeof *out);
    test_rng r = test_rng_seed(seed);
    const int64_t n = c->shape[0], k = c->shape[1], one = 1;
    nncl_loss_kind kind = c->cfg.loss;
    int classes = kind == NNCL_LOSS_CROSS_ENTROPY || kind == NNCL_LOSS_NLL;
    out->nx = n * k;
    out->ny = 1;
    float *x = random_array(&r, out->nx, -3.0f, 3.0f);
    float *t = random_array(&r, classes ? n : n * k, kind == NNCL_LOSS_MSE ? -3.0f : 0.0f, 1.0f);
    int64_t *labels = malloc(sizeof(int64_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) labels[i] = test_rng_below(&r, k);
    nncl_loss *loss;
    TEST_OK(ctx, nncl_loss_create(ctx, kind, c->cfg.smoothing, &loss));
    test_guarded gx, gt, gl, gdx;
    test_guarded_create(ctx, &gx, 2, c->shape, x);
    test_guarded_create(ctx, &gt, 1, classes ? &n : &out->nx, classes ? NULL : t);
    if (classes) TEST_OK(ctx, nncl_tensor_write_labels(ctx, &gt.view, labels, (size_t)n, k));
    test_guarded_create(ctx, &gl, 1, &one, NULL);
    test_guarded_create(ctx, &gdx, 2, c->shape, NULL);
    TEST_OK(ctx, nncl_loss_forward(loss, &gx.view, &gt.view, &gl.view));
    TEST_OK(ctx, nncl_loss_backward(loss, &gx.view, &gt.view, &gdx.view));
    out->y = malloc(sizeof(float));
    out->dx = malloc(sizeof(float) * (size_t)out->nx);
    test_guarded_read(ctx, &gl, out->y, what);
    test_guarded_read(ctx, &gdx, out->dx, what);
    out->buffers[0] = malloc(2 * sizeof(float));
    out->nbuf[0] = 2;
    out->n_total = 1;
    check_loss_step(ctx, c, &gx, &gt, x, labels, out->y[0], out->dx, out->buffers[0], what);
    test_guarded_destroy(ctx, &gx);
    test_guarded_destroy(ctx, &gt);
    test_guarded_destroy(ctx, &gl);
    test_guarded_destroy(ctx, &gdx);
    TEST_OK(ctx, nncl_loss_destroy(loss));
    free(x);
    free(t);
    free(labels);
}

/* Runs add: y = a + b, and its backward (both input gradients equal dy). */
static void run_add(nncl_context *ctx, const parity_case *c, uint64_t seed, const char *what, results *out)
{
    memset(out, 0, sizeof *out);
    test_rng r = test_rng_seed(seed);
    out->nx = out->ny = numel(c->ndim, c->shape);
    float *a = random_array(&r, out->nx, -2.0f, 2.0f), *b = random_array(&r, out->nx, -2.0f, 2.0f);
    float *dy = random_array(&r, out->nx, -1.0f, 1.0f);
    nncl_layer *l;
    TEST_OK(ctx, nncl_add_create(ctx, &l));
    test_guarded ga, gb, gy, gdy, gda, gdb;
    test_guarded_create(ctx, &ga, c->ndim, c->shape, a);
    test_guarded_create(ctx, &gb, c->ndim, c->shape, b);
    test_guarded_create(ctx, &gy, c->ndim, c->shape, NULL);
    test_guarded_create(ctx, &gdy, c->ndim, c->shape, dy);
    test_guarded_create(ctx, &gda, c->ndim, c->shape, NULL);
    test_guarded_create(ctx, &gdb, c->ndim, c->shape, NULL);
    TEST_OK(ctx, nncl_add_forward(l, &ga.view, &gb.view, &gy.view));
    TEST_OK(ctx, nncl_add_backward(l, &gdy.view, &gda.view, &gdb.view));
    out->y = malloc(sizeof(float) * (size_t)out->ny);
    out->dx = malloc(sizeof(float) * (size_t)out->nx);
    out->grads[0] = malloc(sizeof(float) * (size_t)out->nx);
    out->ngrad[0] = out->nx;
    out->n_params = out->n_total = 1; /* db compared like a parameter gradient */
    test_guarded_read(ctx, &gy, out->y, what);
    test_guarded_read(ctx, &gda, out->dx, what);
    test_guarded_read(ctx, &gdb, out->grads[0], what);
    test_assert_bitwise(out->dx, dy, (size_t)out->nx, "add: da == dy");
    test_guarded *all[] = {&ga, &gb, &gy, &gdy, &gda, &gdb};
    for (int i = 0; i < 6; i++) test_guarded_destroy(ctx, all[i]);
    TEST_OK(ctx, nncl_layer_destroy(l));
    free(a);
    free(b);
    free(dy);
}

static int n_compared; /* cases compared in this run, for the summary */

static void run_case(const family *f, const parity_case *c, int index)
{
    char what[256], shape[96];
    snprintf(what, sizeof what, "%s case %d, input %s", f->name, index,
             nncl_shape_format(c->ndim, c->shape, shape, sizeof shape));
    results res[2];
    nncl_context *ctxs[2] = {cpu, ocl};
    uint64_t seed = 1000u * (uint64_t)(f - FAMILIES) + (uint64_t)index;
    for (int side = 0; side < 2; side++) {
        if (f->create == NULL && strcmp(f->name, "add") == 0) run_add(ctxs[side], c, seed, what, &res[side]);
        else if (f->create == NULL) run_loss(ctxs[side], c, seed, what, &res[side]);
        else run_layer(ctxs[side], f, c, seed, what, &res[side]);
    }
    char part[320];
    snprintf(part, sizeof part, "%s: output", what);
    compare(f, res[1].y, res[0].y, res[0].ny, part);
    snprintf(part, sizeof part, "%s: input gradient", what);
    compare(f, res[1].dx, res[0].dx, res[0].nx, part);
    if (res[0].y_relu) {
        snprintf(part, sizeof part, "%s: output with the relu fused", what);
        compare(f, res[1].y_relu, res[0].y_relu, res[0].ny, part);
    }
    if (res[0].dx_relu) {
        snprintf(part, sizeof part, "%s: input gradient through the folded relu", what);
        compare(f, res[1].dx_relu, res[0].dx_relu, res[0].nx, part);
    }
    for (size_t i = 0; i < res[0].n_total; i++) {
        snprintf(part, sizeof part, "%s: %s %zu", what, i < res[0].n_params ? "parameter gradient" : "buffer", i);
        if (i < res[0].n_params) compare(f, res[1].grads[i], res[0].grads[i], res[0].ngrad[i], part);
        else compare(f, res[1].buffers[i], res[0].buffers[i], res[0].nbuf[i], part);
    }
    results_free(&res[0]);
    results_free(&res[1]);
    n_compared++;
}

/* One cmocka test per family; its state is the family. */
static void test_family(void **state)
{
    const family *f = *state;
    parity_case cases[CASES_PER_FAMILY];
    memset(cases, 0, sizeof cases);
    test_rng r = test_rng_seed(77u + (uint64_t)(f - FAMILIES));
    f->generate(cases, &r);
    for (int i = 0; i < CASES_PER_FAMILY; i++) run_case(f, &cases[i], i);
    print_message("parity %-15s %d cases, tolerance %s\n", f->name, CASES_PER_FAMILY,
                  f->atol == 0 && f->rtol == 0 ? "bit for bit" : "atol + rtol |cpu|");
}

int main(int argc, char **argv)
{
    cpu = test_context("cpu");
    ocl = test_context("opencl");
#ifdef NNCL_TEST_PERTURB
    TEST_OK(ocl, nncl__cl_set_extra_defines(ocl, "-DNNCL_PERTURB"));
#endif
    struct CMUnitTest tests[N_FAMILIES];
    size_t n = 0;
    for (int i = 0; i < N_FAMILIES; i++) { /* every family, or those named on the command line */
        int named = argc == 1;
        for (int a = 1; a < argc; a++) named |= strcmp(argv[a], FAMILIES[i].name) == 0;
        if (named) tests[n++] = (struct CMUnitTest){FAMILIES[i].name, test_family, NULL, NULL, (void *)&FAMILIES[i]};
    }
    for (int a = 1; a < argc; a++) {
        int known = 0;
        for (int i = 0; i < N_FAMILIES; i++) known |= strcmp(argv[a], FAMILIES[i].name) == 0;
        if (!known) {
            fprintf(stderr, "test_parity: %s is not a parity family\n", argv[a]);
            return 1;
        }
    }
    int failed = _cmocka_run_group_tests("parity (CPU reference vs OpenCL)", tests, n, NULL, NULL);
    printf("parity: %d cases compared\n", n_compared);
    nncl_context_destroy(cpu);
    nncl_context_destroy(ocl);
    return failed;
}
