/*
 * cpu_batchnorm.c - reference batch normalisation over x viewed as
 * (n, c, inner), statistics per channel over the m = n * inner values:
 *   mean = sum x / m,  var = sum (x - mean)^2 / m,  invstd = 1 / sqrt(var + eps)
 *   y = (x - mean) invstd gamma + beta
 *   running_mean = (1 - momentum) running_mean + momentum mean
 *   running_var  = (1 - momentum) running_var  + momentum var m / (m - 1)
 * Backward with batch statistics (xhat = (x - mean) invstd):
 *   dbeta += sum dy,  dgamma += sum dy xhat,
 *   dx = gamma invstd / m (m dy - sum dy - xhat sum dy xhat)
 * and with running statistics (evaluation): dx = gamma invstd dy.
 */
#include <math.h>

#include "cpu/cpu.h"

#define AT(x, g, n, c, i) (x)[((n) * (g)->c + (c)) * (g)->inner + (i)]

void nncl__ref_batchnorm_forward_train(double *y, double *mean, double *invstd, double *running_mean,
                                       double *running_var, const double *x, const double *gamma,
                                       const double *beta, const nncl_bn_geom *g)
{
    const double m = (double)(g->n * g->inner);
    for (int64_t c = 0; c < g->c; c++) {
        double sum = 0.0, sq = 0.0;
        for (int64_t n = 0; n < g->n; n++)
            for (int64_t i = 0; i < g->inner; i++) sum += AT(x, g, n, c, i);
        double mu = sum / m;
        for (int64_t n = 0; n < g->n; n++)
            for (int64_t i = 0; i < g->inner; i++) sq += (AT(x, g, n, c, i) - mu) * (AT(x, g, n, c, i) - mu);
        double var = sq / m, is = 1.0 / sqrt(var + g->eps);
        for (int64_t n = 0; n < g->n; n++)
            for (int64_t i = 0; i < g->inner; i++)
                AT(y, g, n, c, i) = (AT(x, g, n, c, i) - mu) * is * gamma[c] + beta[c];
        mean[c] = mu;
        invstd[c] = is;
        running_mean[c] = (1.0 - g->momentum) * running_mean[c] + g->momentum * mu;
        running_var[c] = (1.0 - g->momentum) * running_var[c] + g->momentum * var * m / (m - 1.0);
    }
}

void nncl__ref_batchnorm_forward_eval(double *y, const double *x, const double *running_mean,
                                      const double *running_var, const double *gamma, const double *beta,
                                      const nncl_bn_geom *g)
{
    for (int64_t c = 0; c < g->c; c++) {
        double is = 1.0 / sqrt(running_var[c] + g->eps);
        for (int64_t n = 0; n < g->n; n++)
            for (int64_t i = 0; i < g->inner; i++)
                AT(y, g, n, c, i) = (AT(x, g, n, c, i) - running_mean[c]) * is * gamma[c] + beta[c];
    }
}

void nncl__ref_batchnorm_backward(double *dx, double *dgamma, double *dbeta, const double *dy, const double *x,
                                  const double *mean, const double *invstd, const double *gamma,
                                  const nncl_bn_geom *g, int train)
{
    const double m = (double)(g->n * g->inner);
    for (int64_t c = 0; c < g->c; c++) {
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int64_t n = 0; n < g->n; n++) {
            for (int64_t i = 0; i < g->inner; i++) {
                double xhat = (AT(x, g, n, c, i) - mean[c]) * invstd[c];
                sum_dy += AT(dy, g, n, c, i);
                sum_dy_xhat += AT(dy, g, n, c, i) * xhat;
            }
        }
        dbeta[c] += sum_dy;
        dgamma[c] += sum_dy_xhat;
        for (int64_t n = 0; n < g->n; n++) {
            for (int64_t i = 0; i < g->inner; i++) {
                double xhat = (AT(x, g, n, c, i) - mean[c]) * invstd[c];
                double d = AT(dy, g, n, c, i);
                AT(dx, g, n, c, i) = train ? gamma[c] * invstd[c] / m * (m * d - sum_dy - xhat * sum_dy_xhat)
                                           : gamma[c] * invstd[c] * d;
            }
        }
    }
}

nncl_status nncl__cpu_batchnorm_forward_train(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *mean,
                                              const nncl_tensor *invstd, const nncl_tensor *running_mean,
                                              const nncl_tensor *running_var, const nncl_tensor *x,
                                              const nncl_tensor *gamma, const nncl_tensor *beta,
                                              const nncl_bn_geom *g)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *py, *pm, *pis, *prm, *prv, *px, *pg, *pb;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)nncl_tensor_numel(y), &py));
    NNCL_TRY(nncl__cpu_scratch(ctx, 1, (size_t)g->c, &pm));
    NNCL_TRY(nncl__cpu_scratch(ctx, 2, (size_t)g->c, &pis));
    NNCL_TRY(nncl__cpu_stage(ctx, 3, running_mean, &prm));
    NNCL_TRY(nncl__cpu_stage(ctx, 4, running_var, &prv));
    NNCL_TRY(nncl__cpu_stage(ctx, 5, x, &px));
    NNCL_TRY(nncl__cpu_stage(ctx, 6, gamma, &pg));
    NNCL_TRY(nncl__cpu_stage(ctx, 7, beta, &pb));
    nncl__ref_batchnorm_forward_train(py, pm, pis, prm, prv, px, pg, pb, g);
    nncl__cpu_unstage(y, py);
    nncl__cpu_unstage(mean, pm);
    nncl__cpu_unstage(invstd, pis);
    nncl__cpu_unstage(running_mean, prm);
    nncl__cpu_unstage(running_var, prv);
    return nncl__cpu_op_end(ctx, "batchnorm_forward_train", t0);
}

nncl_status nncl__cpu_batchnorm_forward_eval(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                             const nncl_tensor *running_mean, const nncl_tensor *running_var,
                                             const nncl_tensor *gamma, const nncl_tensor *beta,
                                             const nncl_bn_geom *g)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *py, *px, *prm, *prv, *pg, *pb;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)nncl_tensor_numel(y), &py));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, x, &px));
    NNCL_TRY(nncl__cpu_stage(ctx, 2, running_mean, &prm));
    NNCL_TRY(nncl__cpu_stage(ctx, 3, running_var, &prv));
    NNCL_TRY(nncl__cpu_stage(ctx, 4, gamma, &pg));
    NNCL_TRY(nncl__cpu_stage(ctx, 5, beta, &pb));
    nncl__ref_batchnorm_forward_eval(py, px, prm, prv, pg, pb, g);
    nncl__cpu_unstage(y, py);
    return nncl__cpu_op_end(ctx, "batchnorm_forward_eval", t0);
}

nncl_status nncl__cpu_batchnorm_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dgamma,
                                         const nncl_tensor *dbeta, const nncl_tensor *dy, const nncl_tensor *x,
                                         const nncl_tensor *mean, const nncl_tensor *invstd,
                                         const nncl_tensor *gamma, const nncl_bn_geom *g, int train)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *pdx, *pdg, *pdb, *pdy, *px, *pm, *pis, *pg;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)nncl_tensor_numel(dy), &pdx));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, dgamma, &pdg));
    NNCL_TRY(nncl__cpu_stage(ctx, 2, dbeta, &pdb));
    NNCL_TRY(nncl__cpu_stage(ctx, 3, dy, &pdy));
    NNCL_TRY(nncl__cpu_stage(ctx, 4, x, &px));
    NNCL_TRY(nncl__cpu_stage(ctx, 5, mean, &pm));
    NNCL_TRY(nncl__cpu_stage(ctx, 6, invstd, &pis));
    NNCL_TRY(nncl__cpu_stage(ctx, 7, gamma, &pg));
    nncl__ref_batchnorm_backward(pdx, pdg, pdb, pdy, px, pm, pis, pg, g, train);
    nncl__cpu_unstage(dx, pdx);
    nncl__cpu_unstage(dgamma, pdg);
    nncl__cpu_unstage(dbeta, pdb);
    return nncl__cpu_op_end(ctx, "batchnorm_backward", t0);
}

nncl_status nncl__cpu_batchnorm_invstd(nncl_context *ctx, const nncl_tensor *invstd, const nncl_tensor *var,
                                       float eps)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *pv;
    NNCL_TRY(nncl__cpu_stage(ctx, 0, var, &pv));
    for (int64_t c = 0; c < nncl_tensor_numel(var); c++) pv[c] = 1.0 / sqrt(pv[c] + (double)eps);
    nncl__cpu_unstage(invstd, pv);
    return nncl__cpu_op_end(ctx, "batchnorm_invstd", t0);
}
