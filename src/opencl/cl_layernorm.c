/*
 * cl_layernorm.c - host side of kernels_cl/layernorm.cl.
 */
#include "opencl/cl.h"

nncl_status nncl__cl_layernorm_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *mean,
                                       const nncl_tensor *rstd, const nncl_tensor *x, const nncl_tensor *gamma,
                                       const nncl_tensor *beta, int64_t rows, int64_t cols, float eps)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "layernorm_forward", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, y);
    nncl__cl_arg_tensor(&a, mean);
    nncl__cl_arg_tensor(&a, rstd);
    nncl__cl_arg_tensor(&a, x);
    nncl__cl_arg_tensor(&a, gamma);
    nncl__cl_arg_tensor(&a, beta);
    nncl__cl_arg_u64(&a, (uint64_t)rows);
    nncl__cl_arg_u64(&a, (uint64_t)cols);
    nncl__cl_arg_f32(&a, eps);
    nncl__cl_arg_i32(&a, gamma != NULL);
    return nncl__cl_launch_1d(&a, (size_t)rows * NNCL_CL_WG); /* one work-group per row */
}

nncl_status nncl__cl_layernorm_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dgamma,
                                        const nncl_tensor *dbeta, const nncl_tensor *dy, const nncl_tensor *x,
                                        const nncl_tensor *mean, const nncl_tensor *rstd, const nncl_tensor *gamma,
                                        int64_t rows, int64_t cols)
{
    const nncl__cl_kernel *kd, *kp;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "layernorm_backward_data", &kd));
    nncl__cl_args a = nncl__cl_args_begin(ctx, kd);
    nncl__cl_arg_tensor(&a, dx);
    nncl__cl_arg_tensor(&a, dy);
    nncl__cl_arg_tensor(&a, x);
    nncl__cl_arg_tensor(&a, mean);
    nncl__cl_arg_tensor(&a, rstd);
    nncl__cl_arg_tensor(&a, gamma);
    nncl__cl_arg_u64(&a, (uint64_t)rows);
    nncl__cl_arg_u64(&a, (uint64_t)cols);
    nncl__cl_arg_i32(&a, gamma != NULL);
    NNCL_TRY(nncl__cl_launch_1d(&a, (size_t)rows * NNCL_CL_WG)); /* one work-group per row */
    if (dgamma == NULL) return NNCL_OK;

    NNCL_TRY(nncl__cl_kernel_get(ctx, "layernorm_backward_params", &kp));
    nncl__cl_args b = nncl__cl_args_begin(ctx, kp);
    nncl__cl_arg_tensor(&b, dgamma);
    nncl__cl_arg_tensor(&b, dbeta);
    nncl__cl_arg_tensor(&b, dy);
    nncl__cl_arg_tensor(&b, x);
    nncl__cl_arg_tensor(&b, mean);
    nncl__cl_arg_tensor(&b, rstd);
    nncl__cl_arg_u64(&b, (uint64_t)rows);
    nncl__cl_arg_u64(&b, (uint64_t)cols);
    return nncl__cl_launch_1d(&b, (size_t)cols);
}
