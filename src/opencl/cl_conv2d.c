/*
 * cl_conv2d.c - 2-D convolution on OpenCL as im2col plus CLBlast GEMMs, for
 * the whole batch at once (kernels_cl/conv2d.cl describes the layouts).
 *
 * With R = C kh kw rows of the column matrix, Q = N oh ow columns, and per
 * group g the slices W_g (OCg x Rg), col_g (Rg x Q), Y'_g (OCg x Q):
 *   forward:          col = im2col(x);  Y'_g = W_g col_g;  y = permute(Y')
 *   backward data:    dY' = permute(dy);  dcol_g = W_g^T dY'_g;  dx = col2im(dcol)
 *   backward params:  col = im2col(x);  dY' = permute(dy);  dW_g += dY'_g col_g^T
 * Scratch slot 0 holds col (R x Q), slot 1 holds Y' (OC x Q): reused by every
 * convolution, grown once to the largest.
 */
#include <stdint.h>

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
    NNCL_TRY(nncl__cl_kernel_get(ctx, "conv2d", "", "im2col", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, col);
    nncl__cl_arg_tensor(&a, x);
    arg_geom(&a, g);
    return nncl__cl_launch_1d(&a, (size_t)(g->c * g->kh * g->kw * g->n * g->oh)); /* one per row segment */
}

/* to_nchw: dst (N, C, P) from src (C, N, P); else the inverse. */
static nncl_status permute(nncl_context *ctx, int to_nchw, const nncl_tensor *dst, const nncl_tensor *src,
                           int64_t n, int64_t c, int64_t p)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "conv2d", "", to_nchw ? "cnhw_to_nchw" : "nchw_to_cnhw", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, dst);
    nncl__cl_arg_tensor(&a, src);
    nncl__cl_arg_i32(&a, (int32_t)n);
    nncl__cl_arg_i32(&a, (int32_t)c);
    nncl__cl_arg_i32(&a, (int32_t)p);
    return nncl__cl_launch_1d(&a, (size_t)(n * c)); /* one work-item per row */
}

nncl_status nncl__cl_conv2d_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                    const nncl_tensor *w, const nncl_conv_geom *g)
{
    conv_work wk;
    NNCL_TRY(work_begin(ctx, g, &wk));
    const int64_t rg = wk.rg, ocg = wk.ocg, q = wk.q;
    NNCL_TRY(im2col(ctx, &wk.col, x, g));
    for (int64_t gi = 0; gi < g->groups; gi++) {
        nncl_tensor wg = slice(w, gi * ocg * rg, ocg * rg), cg = slice(&wk.col, gi * rg * q, rg * q);
        nncl_tensor yg = slice(&wk.yt, gi * ocg * q, ocg * q);
        NNCL_TRY(nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_NO_TRANS, ocg, q, rg, 1.0f, &wg, rg, &cg, q, 0.0f, &yg, q));
    }
    return permute(ctx, 1, y, &wk.yt, g->n, g->oc, g->oh * g->ow);
}

nncl_status nncl__cl_conv2d_backward_data(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dy,
                                          const nncl_tensor *w, const nncl_conv_geom *g)
{
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
    NNCL_TRY(nncl__cl_kernel_get(ctx, "conv2d", "", "col2im", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, dx);
    nncl__cl_arg_tensor(&a, &wk.col);
    arg_geom(&a, g);
    return nncl__cl_launch_1d(&a, (size_t)(g->n * g->c * g->h)); /* one per input row */
}

nncl_status nncl__cl_conv2d_backward_params(nncl_context *ctx, const nncl_tensor *dw, const nncl_tensor *dy,
                                            const nncl_tensor *x, const nncl_conv_geom *g)
{
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
    return NNCL_OK;
}
