/*
 * cpu_layernorm.c - reference layer normalisation of x viewed as (rows, cols):
 *   mean, var = biased statistics of the row,  rstd = 1 / sqrt(var + eps)
 *   xhat = (x - mean) rstd,  y = xhat gamma + beta   (gamma, beta optional)
 * Backward, with g = dy gamma (or dy):
 *   dx = rstd (g - mean_j g - xhat mean_j (g xhat)),
 *   dgamma += sum_rows dy xhat,  dbeta += sum_rows dy.
 */
#include <math.h>

#include "cpu/cpu.h"

void nncl__ref_layernorm_forward(double *y, double *mean, double *rstd, const double *x, const double *gamma,
                                 const double *beta, int64_t rows, int64_t cols, double eps)
{
    for (int64_t r = 0; r < rows; r++) {
        const double *xr = x + r * cols;
        double sum = 0.0, sq = 0.0;
        for (int64_t j = 0; j < cols; j++) sum += xr[j];
        double mu = sum / (double)cols;
        for (int64_t j = 0; j < cols; j++) sq += (xr[j] - mu) * (xr[j] - mu);
        double rs = 1.0 / sqrt(sq / (double)cols + eps);
        for (int64_t j = 0; j < cols; j++) {
            double v = (xr[j] - mu) * rs;
            if (gamma) v = v * gamma[j];
            if (beta) v = v + beta[j];
            y[r * cols + j] = v;
        }
        mean[r] = mu;
        rstd[r] = rs;
    }
}

void nncl__ref_layernorm_backward(double *dx, double *dgamma, double *dbeta, const double *dy, const double *x,
                                  const double *mean, const double *rstd, const double *gamma, int64_t rows,
                                  int64_t cols)
{
    for (int64_t r = 0; r < rows; r++) {
        const double *xr = x + r * cols, *dyr = dy + r * cols;
        double mean_g = 0.0, mean_gx = 0.0;
        for (int64_t j = 0; j < cols; j++) {
            double xhat = (xr[j] - mean[r]) * rstd[r];
            double gj = gamma ? dyr[j] * gamma[j] : dyr[j];
            mean_g += gj;
            mean_gx += gj * xhat;
            if (dgamma) dgamma[j] += dyr[j] * xhat;
            if (dbeta) dbeta[j] += dyr[j];
        }
        mean_g /= (double)cols;
        mean_gx /= (double)cols;
        for (int64_t j = 0; j < cols; j++) {
            double xhat = (xr[j] - mean[r]) * rstd[r];
            double gj = gamma ? dyr[j] * gamma[j] : dyr[j];
            dx[r * cols + j] = rstd[r] * (gj - mean_g - xhat * mean_gx);
        }
    }
}

nncl_status nncl__cpu_layernorm_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *mean,
                                        const nncl_tensor *rstd, const nncl_tensor *x, const nncl_tensor *gamma,
                                        const nncl_tensor *beta, int64_t rows, int64_t cols, float eps)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *py, *pm, *pr, *px, *pg, *pb;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)(rows * cols), &py));
    NNCL_TRY(nncl__cpu_scratch(ctx, 1, (size_t)rows, &pm));
    NNCL_TRY(nncl__cpu_scratch(ctx, 2, (size_t)rows, &pr));
    NNCL_TRY(nncl__cpu_stage(ctx, 3, x, &px));
    NNCL_TRY(nncl__cpu_stage(ctx, 4, gamma, &pg));
    NNCL_TRY(nncl__cpu_stage(ctx, 5, beta, &pb));
    nncl__ref_layernorm_forward(py, pm, pr, px, pg, pb, rows, cols, eps);
    nncl__cpu_unstage(y, py);
    nncl__cpu_unstage(mean, pm);
    nncl__cpu_unstage(rstd, pr);
    return nncl__cpu_op_end(ctx, "layernorm_forward", t0);
}

nncl_status nncl__cpu_layernorm_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dgamma,
                                         const nncl_tensor *dbeta, const nncl_tensor *dy, const nncl_tensor *x,
                                         const nncl_tensor *mean, const nncl_tensor *rstd,
                                         const nncl_tensor *gamma, int64_t rows, int64_t cols)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *pdx, *pdg, *pdb, *pdy, *px, *pm, *pr, *pg;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)(rows * cols), &pdx));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, dgamma, &pdg));
    NNCL_TRY(nncl__cpu_stage(ctx, 2, dbeta, &pdb));
    NNCL_TRY(nncl__cpu_stage(ctx, 3, dy, &pdy));
    NNCL_TRY(nncl__cpu_stage(ctx, 4, x, &px));
    NNCL_TRY(nncl__cpu_stage(ctx, 5, mean, &pm));
    NNCL_TRY(nncl__cpu_stage(ctx, 6, rstd, &pr));
    NNCL_TRY(nncl__cpu_stage(ctx, 7, gamma, &pg));
    nncl__ref_layernorm_backward(pdx, pdg, pdb, pdy, px, pm, pr, pg, rows, cols);
    nncl__cpu_unstage(dx, pdx);
    nncl__cpu_unstage(dgamma, pdg);
    nncl__cpu_unstage(dbeta, pdb);
    return nncl__cpu_op_end(ctx, "layernorm_backward", t0);
}
