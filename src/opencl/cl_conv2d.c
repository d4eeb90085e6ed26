/*
 * cl_conv2d.c - 2-D convolution on OpenCL, by one of two paths
 * (kernels_cl/conv2d.cl describes the kernels and layouts):
 *
 * Direct (the default on CPU devices, NNCL_CONV=direct): conv_pack lays the
 * weight out tap-major, padded to whole vectors, and conv_direct computes the
 * output from x in place, with the bias added as it stores: two launches,
 * no column matrix. The input gradient of a stride-1 convolution is the same
 * kernel run on dy with the flipped, transposed weight. On PoCL this beats
 * building the column matrix, which costs more memory traffic than the GEMM
 * it feeds.
 *
 * im2col + GEMM (NNCL_CONV=im2col; and the passes too large for the
 * direct kernels' 32-bit indices), for the whole batch at once. With R =
 * C kh kw rows of the column matrix, Q = N oh ow columns, and per group g the
 * slices W_g (OCg x Rg), col_g (Rg x Q), Y'_g (OCg x Q):
 *   forward:          col = im2col(x);  Y'_g = W_g col_g;  y = permute(Y') + b
 *   backward data:    dY' = permute(dy);  dcol_g = W_g^T dY'_g;  dx = col2im(dcol)
 *   backward params:  col = im2col(x);  dY' = permute(dy);  dW_g += dY'_g col_g^T
 * Scratch slot 0 holds col (R x Q) or the packed weight, slot 1 holds Y':
 * reused by every convolution, grown once to the largest.
 *
 * Which path: on devices other than CPUs (and on any under NNCL_CONV=measure)
 * the layer's geometry is timed on both when a network is planned
 * (nncl__cl_conv2d_prepare), and the faster is kept, also for later
 * processes (cl_choices.c); unmeasured geometries take im2col there, and
 * CPU devices take the direct kernels.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "opencl/cl.h"

/* The geometry as the 14 int kernel arguments of CONV_GEOM. */
static void arg_geom(nncl__cl_args *a, const nncl_conv_geom *g)
{
    const int64_t v[14] = {g->n, g->c, g->h, g->w, g->oh, g->ow, g->kh, g->kw, g->sh, g->sw, g->ph, g->pw, g->dh, g->dw};
    for (int i = 0; i < 14; i++) nncl__cl_arg_i32(a, (int32_t)v[i]);
}

/* The kernels index with 32-bit ints: every buffer they touch must stay below 2^31 elements. */
static nncl_status check_size(nncl_context *ctx, const nncl_conv_geom *g)
{
    const int64_t limit = INT32_MAX;
    const int64_t col = g->c * g->kh * g->kw * g->n * g->oh * g->ow;
    if (col > limit || g->n * g->c * g->h * g->w > limit || g->n * g->oc * g->oh * g->ow > limit)
        return NNCL_ERROR(ctx, NNCL_ERR_UNSUPPORTED,
                          "conv2d on OpenCL: the column matrix of %lld elements reaches 2^31; use a smaller batch",
                          (long long)col);
    return NNCL_OK;
}

/* Scratch memory viewed as a 1-D tensor, so that GEMM can take it. */
static nncl_status scratch_tensor(nncl_context *ctx, int slot, int64_t n, nncl_buffer *holder, nncl_tensor *t)
{
    cl_mem mem;
    NNCL_TRY(nncl__cl_scratch(ctx, slot, (size_t)n * sizeof(float), &mem));
    holder->ctx = ctx;
    holder->bytes = (size_t)n * sizeof(float);
    holder->mem = mem;
    *t = (nncl_tensor){.buf = holder, .offset = 0, .ndim = 1, .shape = {n}};
    return NNCL_OK;
}

/*
 * What all three passes share: the sizes Rg, OCg, Q of the group GEMMs and
 * the two scratch matrices, col (slot 0) and Y' (slot 1). The tensors point
 * at the buffer holders inside the struct, so it lives where it is filled.
 */
typedef struct {
    int64_t rg, ocg, q;
    nncl_buffer col_buf, yt_buf;
    nncl_tensor col, yt;
} conv_work;

static nncl_status work_begin(nncl_context *ctx, const nncl_conv_geom *g, conv_work *wk)
{
    NNCL_TRY(check_size(ctx, g));
    wk->rg = g->c / g->groups * g->kh * g->kw;
    wk->ocg = g->oc / g->groups;
    wk->q = g->n * g->oh * g->ow;
    NNCL_TRY(scratch_tensor(ctx, 0, wk->rg * g->groups * wk->q, &wk->col_buf, &wk->col));
    return scratch_tensor(ctx, 1, g->oc * wk->q, &wk->yt_buf, &wk->yt);
}

/* The 1-D view of n elements of t starting `off` elements in. */
static nncl_tensor slice(const nncl_tensor *t, int64_t off, int64_t n)
{
    nncl_tensor v = {.buf = t->buf, .offset = t->offset + (size_t)off, .ndim = 1, .shape = {n}};
    return v;
}

static nncl_status im2col(nncl_context *ctx, const nncl_tensor *col, const nncl_tensor *x, const nncl_conv_geom *g)
{
    const nncl__cl_kernel *k;
    const int ew = nncl__cl_state(ctx)->gpu_shapes;
    NNCL_TRY(nncl__cl_kernel_get(ctx, ew ? "im2col_ew" : "im2col", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, col);
    nncl__cl_arg_tensor(&a, x);
    arg_geom(&a, g);
    const size_t segments = (size_t)(g->c * g->kh * g->kw * g->n * g->oh);
    return nncl__cl_launch_1d(&a, ew ? segments * (size_t)g->ow : segments); /* per element, or row segment */
}

/* to_nchw: dst (N, C, P) from src (C, N, P); else the inverse. */
static nncl_status permute(nncl_context *ctx, int to_nchw, const nncl_tensor *dst, const nncl_tensor *src,
                           int64_t n, int64_t c, int64_t p)
{
    const nncl__cl_kernel *k;
    const int ew = nncl__cl_state(ctx)->gpu_shapes;
    NNCL_TRY(nncl__cl_kernel_get(ctx, ew ? "swap_outer_ew" : "swap_outer", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, dst);
    nncl__cl_arg_tensor(&a, src);
    nncl__cl_arg_i32(&a, (int32_t)(to_nchw ? n : c)); /* dst's outer two dimensions */
    nncl__cl_arg_i32(&a, (int32_t)(to_nchw ? c : n));
    nncl__cl_arg_i32(&a, (int32_t)p);
    return nncl__cl_launch_1d(&a, (size_t)(ew ? n * c * p : n * c)); /* per element, or per row */
}

/* ---- direct ---------------------------------------------------------------------------- */

#define CONV_PB 6  /* output pixels per work-item: CONV_PB in kernels_cl/conv2d.cl */
#define CONV_OB 16 /* output channels per work-item: CONV_OB in kernels_cl/conv2d.cl */

#define CONV_FEW_TAPS 11 /* taps conv_weight_grad_few keeps in registers: CONV_FEW_ROWS in kernels_cl/conv2d.cl */

/* The weight gradient by conv_weight_grad_few (few taps, stride 1 along rows), else by conv_weight_grad. */
static int few_taps(const nncl_conv_geom *g)
{
    return g->sw == 1 && g->c / g->groups * g->kh * g->kw <= CONV_FEW_TAPS;
}

/* The extent of the input the windows reach: the padded input's rows and columns. */
static void padded_extent(const nncl_conv_geom *g, int64_t *hp, int64_t *wp)
{
    *hp = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    *wp = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1;
}

/*
 * The largest buffer a direct pass indexes with 32-bit ints: x, y and the
 * padded input, and for the weight gradient by conv_weight_grad dy with its
 * channels last, each group's padded to whole vectors.
 */
static int64_t direct_largest(const nncl_conv_geom *g, int params)
{
    int64_t hp, wp;
    padded_extent(g, &hp, &wp);
    const int64_t ldp = (g->oc / g->groups + CONV_OB - 1) / CONV_OB * CONV_OB;
    const int64_t sizes[4] = {g->n * g->c * g->h * g->w, g->n * g->oc * g->oh * g->ow, g->n * g->c * hp * wp,
                              params && !few_taps(g) ? g->n * g->oh * g->ow * g->groups * ldp : 0};
    int64_t m = 0;
    for (int i = 0; i < 4; i++) m = sizes[i] > m ? sizes[i] : m;
    return m;
}

/* ---- choosing the path ---------------------------------------------------------------- */

/* The key of a geometry's choice: all of it but the batch size, which a last batch may change. */
static void choice_key(const nncl_conv_geom *g, int64_t key[13])
{
    const int64_t k[13] = {g->c, g->h, g->w, g->oc, g->kh, g->kw, g->sh, g->sw, g->ph, g->pw, g->dh, g->dw, g->groups};
    memcpy(key, k, sizeof k);
}

/*
 * Whether a pass of the convolution `layer` runs on the direct kernels, the
 * pass being of geometry g (the layer's, or for the input gradient the
 * flipped one) and params != 0 for the weight gradient: forced by
 * NNCL_CONV=direct or im2col (or by a measurement under way), else the path
 * measured for the layer's geometry (any batch size), else the device's
 * default, direct on CPU devices. Only passes whose buffers stay below 2^31
 * elements can run direct; a default or a measured choice falls back to
 * im2col for the others.
 */
static nncl_status use_direct(nncl_context *ctx, const nncl_conv_geom *layer, const nncl_conv_geom *g, int params,
                              int *direct)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    *direct = 0;
    const int by_policy = cl->conv_policy == 1 || cl->conv_policy == 2 ? cl->conv_policy : 0;
    const int forced = cl->conv_force ? cl->conv_force : by_policy;
    const int64_t largest = direct_largest(g, params);
    if (forced == 2 && largest > INT32_MAX)
        return NNCL_ERROR(ctx, NNCL_ERR_UNSUPPORTED,
                          "conv2d on OpenCL (NNCL_CONV=direct): a buffer of %lld elements reaches 2^31; use a smaller "
                          "batch",
                          (long long)largest);
    if (forced) {
        *direct = forced == 2;
        return NNCL_OK;
    }
    int chosen = -1;
    if (!cl->cpu_device || cl->conv_policy == 3) { /* only measured there (nncl__cl_conv2d_prepare) */
        int64_t key[13];
        choice_key(layer, key);
        NNCL_TRY(nncl__cl_choice_find(ctx, &cl->conv_choices, key, &chosen));
    }
    *direct = (chosen >= 0 ? chosen : cl->cpu_device) && largest <= INT32_MAX;
    return NNCL_OK;
}

/*
 * x, padded into scratch slot 1 to exactly the extent the windows reach
 * (hp x wp per image), so that the direct kernels read without bounds checks.
 */
static nncl_status pad_input(nncl_context *ctx, const nncl_tensor *x, const nncl_conv_geom *g, cl_mem *xp,
                             int64_t *hp, int64_t *wp)
{
    padded_extent(g, hp, wp);
    NNCL_TRY(nncl__cl_scratch(ctx, 1, (size_t)(g->n * g->c * *hp * *wp) * sizeof(float), xp));
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "conv_pad", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_mem(&a, *xp);
    nncl__cl_arg_tensor(&a, x);
    const int64_t v[7] = {g->n * g->c, g->h, g->w, *hp, *wp, g->ph, g->pw};
    for (int i = 0; i < 7; i++) nncl__cl_arg_i32(&a, (int32_t)v[i]);
    return nncl__cl_launch_1d(&a, (size_t)(g->n * g->c * *hp)); /* one per row of xp */
}

/*
 * y (n, oc, oh, ow) = conv(x (n, c, h, w), w) + b by conv_direct, with the
 * weight packed first (flip: the input-gradient form, see conv_pack). `g`
 * describes the convolution conv_direct runs, `wg` the weight's own layer.
 */
static nncl_status direct(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x, const nncl_tensor *w,
                          const nncl_tensor *b, int relu, const nncl_conv_geom *g, const nncl_conv_geom *wg, int flip)
{
    const int64_t ocg = g->oc / g->groups, cg = g->c / g->groups, taps = g->kh * g->kw;
    const int64_t oblocks = (ocg + CONV_OB - 1) / CONV_OB, ldp = oblocks * CONV_OB;
    const int64_t npix = g->oh * g->ow, pblocks = (npix + CONV_PB - 1) / CONV_PB;
    const int64_t packed = g->groups * cg * taps * ldp;
    cl_mem p;
    NNCL_TRY(nncl__cl_scratch(ctx, 0, (size_t)packed * sizeof(float), &p));

    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "conv_pack", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_mem(&a, p);
    nncl__cl_arg_tensor(&a, w);
    nncl__cl_arg_i32(&a, (int32_t)wg->oc);
    nncl__cl_arg_i32(&a, (int32_t)(wg->c / wg->groups));
    nncl__cl_arg_i32(&a, (int32_t)wg->kh);
    nncl__cl_arg_i32(&a, (int32_t)wg->kw);
    nncl__cl_arg_i32(&a, (int32_t)wg->groups);
    nncl__cl_arg_i32(&a, (int32_t)ldp);
    nncl__cl_arg_i32(&a, flip);
    NNCL_TRY(nncl__cl_launch_1d(&a, (size_t)packed));

    int64_t hp, wp;
    cl_mem xp;
    NNCL_TRY(pad_input(ctx, x, g, &xp, &hp, &wp));

    NNCL_TRY(nncl__cl_kernel_get(ctx, "conv_direct", &k));
    a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, y);
    nncl__cl_arg_mem(&a, xp);
    nncl__cl_arg_mem(&a, p);
    nncl__cl_arg_i32(&a, (int32_t)ldp);
    nncl__cl_arg_tensor(&a, b); /* NULL: (NULL, 0), not read */
    nncl__cl_arg_i32(&a, b != NULL);
    nncl__cl_arg_i32(&a, relu);
    const int64_t v[14] = {g->n,  g->c,  hp,    wp,    g->oc, g->oh, g->ow,
                           g->kh, g->kw, g->sh, g->sw, g->dh, g->dw, g->groups};
    for (int i = 0; i < 14; i++) nncl__cl_arg_i32(&a, (int32_t)v[i]);
    const size_t global[2] = {(size_t)(g->groups * oblocks), (size_t)(g->n * pblocks)};
    /* A work-group is a column of pixel blocks: they share one block of the packed weight, which stays in cache. */
    const size_t local[2] = {1, 16};
    return nncl__cl_launch(&a, 2, global, local);
}

/* The convolution whose output is dx: run on dy with the flipped weight (stride 1 only). */
static nncl_conv_geom input_gradient_geom(const nncl_conv_geom *g)
{
    nncl_conv_geom t = *g;
    t.c = g->oc, t.h = g->oh, t.w = g->ow;
    t.oc = g->c, t.oh = g->h, t.ow = g->w;
    t.ph = g->dh * (g->kh - 1) - g->ph;
    t.pw = g->dw * (g->kw - 1) - g->pw;
    return t;
}

/* ---- the backend's entry points ---------------------------------------------------------- */

nncl_status nncl__cl_conv2d_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                    const nncl_tensor *w, const nncl_tensor *b, int relu, const nncl_conv_geom *g)
{
    int use;
    NNCL_TRY(use_direct(ctx, g, g, 0, &use));
    if (use) return direct(ctx, y, x, w, b, relu, g, g, 0);
    conv_work wk;
    NNCL_TRY(work_begin(ctx, g, &wk));
    const int64_t rg = wk.rg, ocg = wk.ocg, q = wk.q;
    NNCL_TRY(im2col(ctx, &wk.col, x, g));
    for (int64_t gi = 0; gi < g->groups; gi++) {
        nncl_tensor wg = slice(w, gi * ocg * rg, ocg * rg), cg = slice(&wk.col, gi * rg * q, rg * q);
        nncl_tensor yg = slice(&wk.yt, gi * ocg * q, ocg * q);
        NNCL_TRY(nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_NO_TRANS, ocg, q, rg, 1.0f, &wg, rg, &cg, q, 0.0f, &yg, q));
    }
    NNCL_TRY(permute(ctx, 1, y, &wk.yt, g->n, g->oc, g->oh * g->ow));
    if (b != NULL) return nncl__cl_bias_add(ctx, y, b, g->n, g->oc, g->oh * g->ow, relu);
    return relu ? nncl__cl_activation_forward(ctx, y, y, NNCL_ACT_RELU, 0.0f) : NNCL_OK;
}

nncl_status nncl__cl_conv2d_backward_data(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dy,
                                          const nncl_tensor *w, const nncl_conv_geom *g)
{
    if (g->sh == 1 && g->sw == 1) { /* the convolution of dy with the flipped weight */
        const nncl_conv_geom t = input_gradient_geom(g);
        int use;
        NNCL_TRY(use_direct(ctx, g, &t, 0, &use));
        if (use) return direct(ctx, dx, dy, w, NULL, 0, &t, g, 1);
    }
    conv_work wk; /* col holds dcol, Y' holds dY' */
    NNCL_TRY(work_begin(ctx, g, &wk));
    const int64_t rg = wk.rg, ocg = wk.ocg, q = wk.q;
    NNCL_TRY(permute(ctx, 0, &wk.yt, dy, g->n, g->oc, g->oh * g->ow));
    for (int64_t gi = 0; gi < g->groups; gi++) {
        nncl_tensor wg = slice(w, gi * ocg * rg, ocg * rg), cg = slice(&wk.col, gi * rg * q, rg * q);
        nncl_tensor yg = slice(&wk.yt, gi * ocg * q, ocg * q);
        NNCL_TRY(nncl_gemm(ctx, NNCL_TRANS, NNCL_NO_TRANS, rg, q, ocg, 1.0f, &wg, rg, &yg, q, 0.0f, &cg, q));
    }
    const nncl__cl_kernel *k;
    const int ew = nncl__cl_state(ctx)->gpu_shapes;
    NNCL_TRY(nncl__cl_kernel_get(ctx, ew ? "col2im_ew" : "col2im", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, dx);
    nncl__cl_arg_tensor(&a, &wk.col);
    arg_geom(&a, g);
    const size_t rows = (size_t)(g->n * g->c * g->h);
    return nncl__cl_launch_1d(&a, ew ? rows * (size_t)g->w : rows); /* per input element, or row */
}

/* dw += the weight gradient, db += the bias gradient (db may be NULL): few taps, stride 1 along rows. */
static nncl_status direct_params_few(nncl_context *ctx, const nncl_tensor *dw, const nncl_tensor *db,
                                     const nncl_tensor *dy, const nncl_tensor *x, const nncl_conv_geom *g)
{
    const int64_t rows = g->c / g->groups * g->kh * g->kw;
    int64_t hp, wp;
    cl_mem xp, part;
    NNCL_TRY(pad_input(ctx, x, g, &xp, &hp, &wp));
    NNCL_TRY(nncl__cl_scratch(ctx, 0, (size_t)(g->n * g->oc * (rows + 1)) * sizeof(float), &part));

    /* The kernel for the smallest instantiated tap count R >= rows, whose loops over R taps unroll
       (kernels_cl/conv2d.cl). */
    static const int instantiated[] = {3, 6, 9, CONV_FEW_TAPS};
    int r = 0;
    while (instantiated[r] < rows) r++;
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_getf(ctx, &k, "conv_weight_grad_few_%d", instantiated[r]));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_mem(&a, part);
    nncl__cl_arg_mem(&a, xp);
    nncl__cl_arg_tensor(&a, dy);
    nncl__cl_arg_i32(&a, (int32_t)rows);
    const int64_t v[13] = {g->n, g->c, hp, wp, g->oc, g->oh, g->ow, g->kh, g->kw, g->sh, g->dh, g->dw, g->groups};
    for (int i = 0; i < 13; i++) nncl__cl_arg_i32(&a, (int32_t)v[i]);
    NNCL_TRY(nncl__cl_launch_1d(&a, (size_t)(g->n * g->oc))); /* one per (image, output channel) */

    NNCL_TRY(nncl__cl_kernel_get(ctx, "conv_grad_reduce", &k));
    a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, dw);
    nncl__cl_arg_tensor(&a, db); /* NULL: (NULL, 0), not read */
    nncl__cl_arg_i32(&a, db != NULL);
    nncl__cl_arg_mem(&a, part);
    nncl__cl_arg_i32(&a, (int32_t)g->n);
    nncl__cl_arg_i32(&a, (int32_t)g->oc);
    nncl__cl_arg_i32(&a, (int32_t)rows);
    return nncl__cl_launch_1d(&a, (size_t)(g->oc * (rows + 1)));
}

/* dw += the weight gradient and db += the bias gradient (db may be NULL), by conv_weight_grad. */
static nncl_status direct_params(nncl_context *ctx, const nncl_tensor *dw, const nncl_tensor *db,
                                 const nncl_tensor *dy, const nncl_tensor *x, const nncl_conv_geom *g)
{
    if (few_taps(g)) return direct_params_few(ctx, dw, db, dy, x, g);
    const int64_t ocg = g->oc / g->groups, cg = g->c / g->groups, rows = cg * g->kh * g->kw;
    const int64_t oblocks = (ocg + CONV_OB - 1) / CONV_OB, ldp = oblocks * CONV_OB, q = g->n * g->oh * g->ow;
    int64_t hp, wp;
    cl_mem xp, dyt;
    NNCL_TRY(pad_input(ctx, x, g, &xp, &hp, &wp));
    NNCL_TRY(nncl__cl_scratch(ctx, 0, (size_t)(q * g->groups * ldp) * sizeof(float), &dyt));

    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "conv_channels_last", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_mem(&a, dyt);
    nncl__cl_arg_tensor(&a, dy);
    const int64_t t[5] = {g->n, g->oc, g->oh * g->ow, g->groups, ldp};
    for (int i = 0; i < 5; i++) nncl__cl_arg_i32(&a, (int32_t)t[i]);
    NNCL_TRY(nncl__cl_launch_1d(&a, (size_t)q)); /* one per pixel of the batch */

    NNCL_TRY(nncl__cl_kernel_get(ctx, "conv_weight_grad", &k));
    a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, dw);
    nncl__cl_arg_mem(&a, xp);
    nncl__cl_arg_mem(&a, dyt);
    nncl__cl_arg_i32(&a, (int32_t)ldp);
    const int64_t v[14] = {g->n,  g->c,  hp,    wp,    g->oc, g->oh, g->ow,
                           g->kh, g->kw, g->sh, g->sw, g->dh, g->dw, g->groups};
    for (int i = 0; i < 14; i++) nncl__cl_arg_i32(&a, (int32_t)v[i]);
    const size_t global[2] = {(size_t)(g->groups * oblocks), (size_t)((rows + CONV_PB - 1) / CONV_PB)};
    const size_t local[2] = {1, 1};
    NNCL_TRY(nncl__cl_launch(&a, 2, global, local));
    if (db == NULL) return NNCL_OK;

    NNCL_TRY(nncl__cl_kernel_get(ctx, "conv_bias_grad", &k));
    a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, db);
    nncl__cl_arg_mem(&a, dyt);
    const int64_t b[4] = {q, g->oc, g->groups, ldp};
    for (int i = 0; i < 4; i++) nncl__cl_arg_i32(&a, (int32_t)b[i]);
    const size_t one = 1, blocks = (size_t)(g->groups * oblocks);
    return nncl__cl_launch(&a, 1, &blocks, &one);
}

nncl_status nncl__cl_conv2d_backward_params(nncl_context *ctx, const nncl_tensor *dw, const nncl_tensor *db,
                                            const nncl_tensor *dy, const nncl_tensor *x, const nncl_conv_geom *g)
{
    int use;
    NNCL_TRY(use_direct(ctx, g, g, 1, &use));
    if (use) return direct_params(ctx, dw, db, dy, x, g);
    conv_work wk; /* Y' holds dY' */
    NNCL_TRY(work_begin(ctx, g, &wk));
    const int64_t rg = wk.rg, ocg = wk.ocg, q = wk.q;
    NNCL_TRY(im2col(ctx, &wk.col, x, g));
    NNCL_TRY(permute(ctx, 0, &wk.yt, dy, g->n, g->oc, g->oh * g->ow));
    for (int64_t gi = 0; gi < g->groups; gi++) {
        nncl_tensor wg = slice(dw, gi * ocg * rg, ocg * rg), cg = slice(&wk.col, gi * rg * q, rg * q);
        nncl_tensor yg = slice(&wk.yt, gi * ocg * q, ocg * q);
        NNCL_TRY(nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_TRANS, ocg, rg, q, 1.0f, &yg, q, &cg, q, 1.0f, &wg, rg));
    }
    return db == NULL ? NNCL_OK : nncl__cl_bias_backward(ctx, db, dy, g->n, g->oc, g->oh * g->ow);
}

/* ---- measuring ------------------------------------------------------------------------- */

/* Seconds for `reps` runs of the layer's passes (forward, input gradient when dx, weight gradient). */
static nncl_status time_passes(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x, const nncl_tensor *w,
                               const nncl_tensor *b, const nncl_tensor *dy, const nncl_tensor *dx,
                               const nncl_tensor *dw, const nncl_tensor *db, const nncl_conv_geom *g, int reps,
                               double *seconds)
{
    NNCL_TRY(ctx->ops->finish(ctx));
    const double t0 = nncl__cl_now();
    for (int r = 0; r < reps; r++) {
        NNCL_TRY(nncl__cl_conv2d_forward(ctx, y, x, w, b, 0, g));
        if (dx != NULL) NNCL_TRY(nncl__cl_conv2d_backward_data(ctx, dx, dy, w, g));
        NNCL_TRY(nncl__cl_conv2d_backward_params(ctx, dw, db, dy, x, g));
    }
    NNCL_TRY(ctx->ops->finish(ctx));
    *seconds = nncl__cl_now() - t0;
    return NNCL_OK;
}

/*
 * The passes on one path (force: 1 im2col, 2 direct): a first run (compiling,
 * and making the im2col path's GEMM choices), then, with seconds, two timed.
 * The work is not counted in the context's statistics: it is not the caller's.
 */
static nncl_status time_path(nncl_context *ctx, int force, const nncl_tensor *y, const nncl_tensor *x,
                             const nncl_tensor *w, const nncl_tensor *b, const nncl_tensor *dy, const nncl_tensor *dx,
                             const nncl_tensor *dw, const nncl_tensor *db, const nncl_conv_geom *g, double *seconds)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    const uint64_t launches = ctx->stats.kernel_launches, gemms = ctx->stats.gemm_calls;
    double warm;
    cl->conv_force = force;
    nncl_status st = time_passes(ctx, y, x, w, b, dy, dx, dw, db, g, 1, &warm);
    if (st == NNCL_OK && seconds != NULL) st = time_passes(ctx, y, x, w, b, dy, dx, dw, db, g, 2, seconds);
    cl->conv_force = 0;
    ctx->stats.kernel_launches = launches;
    ctx->stats.gemm_calls = gemms;
    return st;
}

nncl_status nncl__cl_conv2d_prepare(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                    const nncl_tensor *w, const nncl_tensor *b, const nncl_tensor *dy,
                                    const nncl_tensor *dx, const nncl_tensor *dw, const nncl_tensor *db,
                                    const nncl_conv_geom *g)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    /* Measured under NNCL_CONV=measure, and by default on devices other than CPUs, where the direct
       kernels (register-blocked for CPU vector units) may or may not beat CLBlast's GEMM. */
    if (!(cl->conv_policy == 3 || (cl->conv_policy == 0 && !cl->cpu_device))) return NNCL_OK;
    int64_t key[13];
    choice_key(g, key);
    int chosen;
    NNCL_TRY(nncl__cl_choice_find(ctx, &cl->conv_choices, key, &chosen));
    if (chosen == 1) return NNCL_OK;
    /* im2col, chosen in an earlier plan: its GEMMs' shapes change with the batch (the choice's key does not
       hold it), so one untimed run makes their choices now, not in the first step. */
    if (chosen == 0) return time_path(ctx, 1, y, x, w, b, dy, dx, dw, db, g, NULL);
    /* Passes too large for the direct kernels' indices take im2col whatever is chosen (use_direct). */
    const nncl_conv_geom t = input_gradient_geom(g);
    if (direct_largest(g, 0) > INT32_MAX || direct_largest(g, 1) > INT32_MAX ||
        (dx != NULL && g->sh == 1 && g->sw == 1 && direct_largest(&t, 0) > INT32_MAX))
        return NNCL_OK;
    double t_direct = 0.0, t_im2col;
    /* A device that cannot run the direct kernels (their scratch, their work-group shape) keeps im2col;
       the failure, handled here, is not the caller's. */
    const uint64_t oom = cl->measured_oom;
    nncl__error_mark mark = nncl__error_mark_save(ctx);
    const nncl_status direct = time_path(ctx, 2, y, x, w, b, dy, dx, dw, db, g, &t_direct);
    nncl__error_mark_restore(ctx, &mark);
    if (direct == NNCL_ERR_OUT_OF_MEMORY) cl->measured_oom++;
    if (direct != NNCL_OK) NNCL_TRY(ctx->ops->finish(ctx));
    NNCL_TRY(time_path(ctx, 1, y, x, w, b, dy, dx, dw, db, g, &t_im2col));
    /* Out of memory may pass (other work held it), in either path or in a GEMM the im2col path measured:
       a choice made meanwhile is this context's only. */
    return nncl__cl_choice_add(ctx, &cl->conv_choices, key, direct == NNCL_OK && t_direct < t_im2col,
                               cl->measured_oom == oom);
}
