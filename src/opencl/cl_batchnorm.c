/*
 * cl_batchnorm.c - host side of kernels_cl/batchnorm.cl.
 */
#include "opencl/cl.h"

/*
 * y = (x - mean) invstd gamma + beta per channel. In evaluation `invstd`
 * holds the running variance instead (invstd_is_var = 1) and the kernel
 * takes 1 / sqrt(var + eps) itself.
 */
static nncl_status bn_apply(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x, const nncl_tensor *mean,
                            const nncl_tensor *invstd, const nncl_tensor *gamma, const nncl_tensor *beta,
                            const nncl_bn_geom *g, int invstd_is_var)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "bn_apply", &k));
    size_t total = (size_t)(g->n * g->c * g->inner);
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, y);
    nncl__cl_arg_tensor(&a, x);
    nncl__cl_arg_tensor(&a, mean);
    nncl__cl_arg_tensor(&a, invstd);
    nncl__cl_arg_tensor(&a, gamma);
    nncl__cl_arg_tensor(&a, beta);
    nncl__cl_arg_u64(&a, (uint64_t)g->c);
    nncl__cl_arg_u64(&a, (uint64_t)g->inner);
    nncl__cl_arg_u64(&a, total);
    nncl__cl_arg_i32(&a, invstd_is_var);
    nncl__cl_arg_f32(&a, g->eps);
    return nncl__cl_launch_1d(&a, total);
}

nncl_status nncl__cl_batchnorm_forward_train(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *mean,
                                             const nncl_tensor *invstd, const nncl_tensor *running_mean,
                                             const nncl_tensor *running_var, const nncl_tensor *x,
                                             const nncl_tensor *gamma, const nncl_tensor *beta,
                                             const nncl_bn_geom *g)
{
    const nncl__cl_kernel *ks;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "bn_stats", &ks));
    nncl__cl_args a = nncl__cl_args_begin(ctx, ks);
    nncl__cl_arg_tensor(&a, mean);
    nncl__cl_arg_tensor(&a, invstd);
    nncl__cl_arg_tensor(&a, running_mean);
    nncl__cl_arg_tensor(&a, running_var);
    nncl__cl_arg_tensor(&a, x);
    nncl__cl_arg_u64(&a, (uint64_t)g->n);
    nncl__cl_arg_u64(&a, (uint64_t)g->c);
    nncl__cl_arg_u64(&a, (uint64_t)g->inner);
    nncl__cl_arg_f32(&a, g->momentum);
    nncl__cl_arg_f32(&a, g->eps);
    NNCL_TRY(nncl__cl_launch_1d(&a, (size_t)g->c * NNCL_CL_WG)); /* one work-group per channel */

    return bn_apply(ctx, y, x, mean, invstd, gamma, beta, g, 0);
}

nncl_status nncl__cl_batchnorm_forward_eval(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                            const nncl_tensor *running_mean, const nncl_tensor *running_var,
                                            const nncl_tensor *gamma, const nncl_tensor *beta,
                                            const nncl_bn_geom *g)
{
    return bn_apply(ctx, y, x, running_mean, running_var, gamma, beta, g, 1);
}

nncl_status nncl__cl_batchnorm_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dgamma,
                                        const nncl_tensor *dbeta, const nncl_tensor *dy, const nncl_tensor *x,
                                        const nncl_tensor *mean, const nncl_tensor *invstd, const nncl_tensor *gamma,
                                        const nncl_bn_geom *g, int train)
{
    const nncl__cl_kernel *kr, *ka;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "bn_backward_reduce", &kr));
    NNCL_TRY(nncl__cl_kernel_get(ctx, "bn_backward_apply", &ka));
    cl_mem sums;
    NNCL_TRY(nncl__cl_scratch(ctx, 2, (size_t)(2 * g->c) * sizeof(float), &sums));
    nncl__cl_args a = nncl__cl_args_begin(ctx, kr);
    nncl__cl_arg_tensor(&a, dgamma);
    nncl__cl_arg_tensor(&a, dbeta);
    nncl__cl_arg_mem(&a, sums);
    nncl__cl_arg_tensor(&a, dy);
    nncl__cl_arg_tensor(&a, x);
    nncl__cl_arg_tensor(&a, mean);
    nncl__cl_arg_tensor(&a, invstd);
    nncl__cl_arg_u64(&a, (uint64_t)g->n);
    nncl__cl_arg_u64(&a, (uint64_t)g->c);
    nncl__cl_arg_u64(&a, (uint64_t)g->inner);
    NNCL_TRY(nncl__cl_launch_1d(&a, (size_t)g->c * NNCL_CL_WG));

    nncl__cl_args b = nncl__cl_args_begin(ctx, ka);
    nncl__cl_arg_tensor(&b, dx);
    nncl__cl_arg_tensor(&b, dy);
    nncl__cl_arg_tensor(&b, x);
    nncl__cl_arg_tensor(&b, mean);
    nncl__cl_arg_tensor(&b, invstd);
    nncl__cl_arg_tensor(&b, gamma);
    nncl__cl_arg_mem(&b, sums);
    nncl__cl_arg_u64(&b, (uint64_t)g->n);
    nncl__cl_arg_u64(&b, (uint64_t)g->c);
    nncl__cl_arg_u64(&b, (uint64_t)g->inner);
    nncl__cl_arg_i32(&b, train);
    return nncl__cl_launch_1d(&b, (size_t)(g->n * g->c * g->inner));
}

nncl_status nncl__cl_batchnorm_invstd(nncl_context *ctx, const nncl_tensor *invstd, const nncl_tensor *var,
                                      float eps)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "bn_invstd", &k));
    size_t c = (size_t)nncl_tensor_numel(var);
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, invstd);
    nncl__cl_arg_tensor(&a, var);
    nncl__cl_arg_u64(&a, c);
    nncl__cl_arg_f32(&a, eps);
    return nncl__cl_launch_1d(&a, c);
}
