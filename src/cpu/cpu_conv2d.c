/*
 * cpu_conv2d.c - reference 2-D convolution (cross-correlation, as PyTorch),
 * NCHW, with stride, zero padding, dilation and groups.
 *
 * All three functions visit the same index space,
 *     (n, oc, oh, ow, icg, kh, kw)  with  ih = oh sh - ph + kh dh,  iw = ow sw - pw + kw dw,
 * where icg is the input channel within the group of oc, and skip the taps
 * that fall into the padding:
 *     forward          y[n, oc, oh, ow]     += x[n, ic, ih, iw] * w[oc, icg, kh, kw]
 *     backward data    dx[n, ic, ih, iw]    += dy[n, oc, oh, ow] * w[oc, icg, kh, kw]
 *     backward params  dw[oc, icg, kh, kw]  += dy[n, oc, oh, ow] * x[n, ic, ih, iw]
 */
#include <string.h>

#include "cpu/cpu.h"

/* Calls BODY for every tap of the convolution that lies inside the input. */
#define FOR_EACH_TAP(g, BODY)                                                                      \
    do {                                                                                           \
        const int64_t cg_ = (g)->c / (g)->groups, ocg_ = (g)->oc / (g)->groups;                    \
        for (int64_t n = 0; n < (g)->n; n++)                                                       \
            for (int64_t oc = 0; oc < (g)->oc; oc++)                                               \
                for (int64_t oh = 0; oh < (g)->oh; oh++)                                           \
                    for (int64_t ow = 0; ow < (g)->ow; ow++)                                       \
                        for (int64_t icg = 0; icg < cg_; icg++)                                    \
                            for (int64_t kh = 0; kh < (g)->kh; kh++)                               \
                                for (int64_t kw = 0; kw < (g)->kw; kw++) {                         \
                                    const int64_t ic = (oc / ocg_) * cg_ + icg;                    \
                                    const int64_t ih = oh * (g)->sh - (g)->ph + kh * (g)->dh;      \
                                    const int64_t iw = ow * (g)->sw - (g)->pw + kw * (g)->dw;      \
                                    if (ih < 0 || ih >= (g)->h || iw < 0 || iw >= (g)->w) continue; \
                                    const int64_t yi = ((n * (g)->oc + oc) * (g)->oh + oh) * (g)->ow + ow; \
                                    const int64_t xi = ((n * (g)->c + ic) * (g)->h + ih) * (g)->w + iw;   \
                                    const int64_t wi = ((oc * cg_ + icg) * (g)->kh + kh) * (g)->kw + kw;  \
                                    BODY;                                                          \
                                }                                                                  \
    } while (0)

void nncl__ref_conv2d_forward(double *y, const double *x, const double *w, const nncl_conv_geom *g)
{
    memset(y, 0, sizeof(double) * (size_t)(g->n * g->oc * g->oh * g->ow));
    FOR_EACH_TAP(g, y[yi] += x[xi] * w[wi]);
}

void nncl__ref_conv2d_backward_data(double *dx, const double *dy, const double *w, const nncl_conv_geom *g)
{
    memset(dx, 0, sizeof(double) * (size_t)(g->n * g->c * g->h * g->w));
    FOR_EACH_TAP(g, dx[xi] += dy[yi] * w[wi]);
}

void nncl__ref_conv2d_backward_params(double *dw, const double *dy, const double *x, const nncl_conv_geom *g)
{
    FOR_EACH_TAP(g, dw[wi] += dy[yi] * x[xi]);
}

nncl_status nncl__cpu_conv2d_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                     const nncl_tensor *w, const nncl_tensor *b, int relu, const nncl_conv_geom *g)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *py, *px, *pw;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)nncl_tensor_numel(y), &py));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, x, &px));
    NNCL_TRY(nncl__cpu_stage(ctx, 2, w, &pw));
    nncl__ref_conv2d_forward(py, px, pw, g);
    nncl__cpu_unstage(y, py);
    NNCL_TRY(nncl__cpu_op_end(ctx, "conv2d_forward", t0));
    if (b != NULL) return nncl__cpu_bias_add(ctx, y, b, g->n, g->oc, g->oh * g->ow, relu);
    return relu ? nncl__cpu_activation_forward(ctx, y, y, NNCL_ACT_RELU, 0.0f) : NNCL_OK;
}

nncl_status nncl__cpu_conv2d_backward_data(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dy,
                                           const nncl_tensor *w, const nncl_conv_geom *g)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *pdx, *pdy, *pw;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)nncl_tensor_numel(dx), &pdx));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, dy, &pdy));
    NNCL_TRY(nncl__cpu_stage(ctx, 2, w, &pw));
    nncl__ref_conv2d_backward_data(pdx, pdy, pw, g);
    nncl__cpu_unstage(dx, pdx);
    return nncl__cpu_op_end(ctx, "conv2d_backward_data", t0);
}

nncl_status nncl__cpu_conv2d_backward_params(nncl_context *ctx, const nncl_tensor *dw, const nncl_tensor *db,
                                             const nncl_tensor *dy, const nncl_tensor *x, const nncl_conv_geom *g)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *pdw, *pdy, *px;
    NNCL_TRY(nncl__cpu_stage(ctx, 0, dw, &pdw));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, dy, &pdy));
    NNCL_TRY(nncl__cpu_stage(ctx, 2, x, &px));
    nncl__ref_conv2d_backward_params(pdw, pdy, px, g);
    nncl__cpu_unstage(dw, pdw);
    NNCL_TRY(nncl__cpu_op_end(ctx, "conv2d_backward_params", t0));
    return db == NULL ? NNCL_OK : nncl__cpu_bias_backward(ctx, db, dy, g->n, g->oc, g->oh * g->ow);
}
