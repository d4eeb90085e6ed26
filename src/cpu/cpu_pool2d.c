/*
 * cpu_pool2d.c - reference max and average pooling, NCHW, floor output sizes.
 *
 * Max pooling takes the first maximum of each window in row-major order and
 * lets NaN win, as PyTorch does (a window of -inf: its first element); it
 * records the position ih * w + iw of the winner so that backward sends the
 * gradient there. Average pooling divides
 * by kh * kw, padded zeros included (PyTorch's count_include_pad=True).
 *
 * With round32, every partial sum is rounded to float32 and the average is a
 * multiplication by the float32 reciprocal, in the same order as
 * kernels_cl/pool2d.cl: the float backends then agree bit for bit. (Rounding
 * a double sum of two floats to float equals the float sum: double has more
 * than 2 * 24 + 2 bits, so double rounding is innocuous.)
 */
#include <math.h>
#include <string.h>

#include "cpu/cpu.h"

static double round_to(double v, int round32)
{
    return round32 ? (double)(float)v : v;
}

static double inverse_area(const nncl_pool_geom *g, int round32)
{
    return round32 ? (double)(1.0f / (float)(g->kh * g->kw)) : 1.0 / (double)(g->kh * g->kw);
}

void nncl__ref_pool2d_forward(double *y, double *idx, const double *x, const nncl_pool_geom *g, int round32)
{
    const double inv = inverse_area(g, round32);
    for (int64_t p = 0; p < g->n * g->c; p++) { /* one (n, c) plane at a time */
        const double *xp = x + p * g->h * g->w;
        for (int64_t oh = 0; oh < g->oh; oh++) {
            for (int64_t ow = 0; ow < g->ow; ow++) {
                double best = -INFINITY, sum = 0.0;
                int64_t at = -1;
                for (int64_t kh = 0; kh < g->kh; kh++) {
                    for (int64_t kw = 0; kw < g->kw; kw++) {
                        int64_t ih = oh * g->sh - g->ph + kh, iw = ow * g->sw - g->pw + kw;
                        if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                        double v = xp[ih * g->w + iw];
                        if (v > best || isnan(v) || at < 0) { /* a window of -inf: its first element */
                            best = v;
                            at = ih * g->w + iw;
                        }
                        sum = round_to(sum + v, round32);
                    }
                }
                int64_t o = (p * g->oh + oh) * g->ow + ow;
                if (g->kind == NNCL_POOL_MAX) {
                    y[o] = best;
                    idx[o] = (double)at;
                } else {
                    y[o] = round_to(sum * inv, round32);
                }
            }
        }
    }
}

void nncl__ref_pool2d_backward(double *dx, const double *dy, const double *idx, const double *relu_y,
                               const nncl_pool_geom *g, int round32)
{
    const double inv = inverse_area(g, round32);
    memset(dx, 0, sizeof(double) * (size_t)(g->n * g->c * g->h * g->w));
    for (int64_t p = 0; p < g->n * g->c; p++) {
        double *dxp = dx + p * g->h * g->w;
        /* Outputs in increasing order, so each dx sums its terms in that order. */
        for (int64_t oh = 0; oh < g->oh; oh++) {
            for (int64_t ow = 0; ow < g->ow; ow++) {
                int64_t o = (p * g->oh + oh) * g->ow + ow;
                if (g->kind == NNCL_POOL_MAX) {
                    int64_t at = (int64_t)idx[o];
                    /* The relu's backward: a maximum that is not > 0 was not > 0 at the relu's input either. */
                    if (at >= 0 && (relu_y == NULL || relu_y[o] > 0.0)) dxp[at] = round_to(dxp[at] + dy[o], round32);
                    continue;
                }
                double share = round_to(dy[o] * inv, round32);
                for (int64_t kh = 0; kh < g->kh; kh++) {
                    for (int64_t kw = 0; kw < g->kw; kw++) {
                        int64_t ih = oh * g->sh - g->ph + kh, iw = ow * g->sw - g->pw + kw;
                        if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w) continue;
                        dxp[ih * g->w + iw] = round_to(dxp[ih * g->w + iw] + share, round32);
                    }
                }
            }
        }
    }
}

nncl_status nncl__cpu_pool2d_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *idx,
                                     const nncl_tensor *x, const nncl_pool_geom *g)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *py, *pidx = NULL, *px;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)nncl_tensor_numel(y), &py));
    if (idx) NNCL_TRY(nncl__cpu_scratch(ctx, 1, (size_t)nncl_tensor_numel(idx), &pidx));
    NNCL_TRY(nncl__cpu_stage(ctx, 2, x, &px));
    nncl__ref_pool2d_forward(py, pidx, px, g, 1);
    nncl__cpu_unstage(y, py);
    nncl__cpu_unstage(idx, pidx);
    return nncl__cpu_op_end(ctx, "pool2d_forward", t0);
}

nncl_status nncl__cpu_pool2d_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dy,
                                      const nncl_tensor *idx, const nncl_tensor *relu_y, const nncl_pool_geom *g)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *pdx, *pdy, *pidx, *py = NULL;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)nncl_tensor_numel(dx), &pdx));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, dy, &pdy));
    NNCL_TRY(nncl__cpu_stage(ctx, 2, idx, &pidx));
    if (relu_y != NULL) NNCL_TRY(nncl__cpu_stage(ctx, 3, relu_y, &py));
    nncl__ref_pool2d_backward(pdx, pdy, pidx, py, g, 1);
    nncl__cpu_unstage(dx, pdx);
    return nncl__cpu_op_end(ctx, "pool2d_backward", t0);
}
