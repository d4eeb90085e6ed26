/*
 * cpu_softmax.c - reference softmax and log-softmax over the last dimension:
 *   softmax      y_j = e^(x_j - m) / sum_k e^(x_k - m),   m = max_k x_k
 *   log-softmax  y_j = x_j - m - log sum_k e^(x_k - m)
 *   backward     softmax:      dx_j = y_j (dy_j - sum_k dy_k y_k)
 *                log-softmax:  dx_j = dy_j - e^(y_j) sum_k dy_k
 */
#include <math.h>

#include "cpu/cpu.h"

void nncl__ref_softmax_forward(double *y, const double *x, int64_t rows, int64_t cols, int log_)
{
    for (int64_t r = 0; r < rows; r++) {
        const double *xr = x + r * cols;
        double *yr = y + r * cols;
        double m = -INFINITY;
        for (int64_t j = 0; j < cols; j++) m = xr[j] > m ? xr[j] : m;
        double s = 0.0;
        for (int64_t j = 0; j < cols; j++) s += exp(xr[j] - m);
        for (int64_t j = 0; j < cols; j++) yr[j] = log_ ? xr[j] - m - log(s) : exp(xr[j] - m) / s;
    }
}

void nncl__ref_softmax_backward(double *dx, const double *y, const double *dy, int64_t rows, int64_t cols, int log_)
{
    for (int64_t r = 0; r < rows; r++) {
        const double *yr = y + r * cols, *dyr = dy + r * cols;
        double *dxr = dx + r * cols;
        double dot = 0.0;
        for (int64_t j = 0; j < cols; j++) dot += log_ ? dyr[j] : dyr[j] * yr[j];
        for (int64_t j = 0; j < cols; j++) dxr[j] = log_ ? dyr[j] - exp(yr[j]) * dot : yr[j] * (dyr[j] - dot);
    }
}

nncl_status nncl__cpu_softmax_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x, int64_t rows,
                                      int64_t cols, int log)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *py, *px;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)(rows * cols), &py));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, x, &px));
    nncl__ref_softmax_forward(py, px, rows, cols, log);
    nncl__cpu_unstage(y, py);
    return nncl__cpu_op_end(ctx, "softmax_forward", t0);
}

nncl_status nncl__cpu_softmax_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *y,
                                       const nncl_tensor *dy, int64_t rows, int64_t cols, int log)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *pdx, *py, *pdy;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)(rows * cols), &pdx));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, y, &py));
    NNCL_TRY(nncl__cpu_stage(ctx, 2, dy, &pdy));
    nncl__ref_softmax_backward(pdx, py, pdy, rows, cols, log);
    nncl__cpu_unstage(dx, pdx);
    return nncl__cpu_op_end(ctx, "softmax_backward", t0);
}
