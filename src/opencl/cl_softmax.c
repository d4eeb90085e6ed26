/*
 * cl_softmax.c - host side of kernels_cl/softmax.cl.
 */
#include "opencl/cl.h"

nncl_status nncl__cl_softmax_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x, int64_t rows,
                                     int64_t cols, int log)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "softmax_forward", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, y);
    nncl__cl_arg_tensor(&a, x);
    nncl__cl_arg_u64(&a, (uint64_t)rows);
    nncl__cl_arg_u64(&a, (uint64_t)cols);
    nncl__cl_arg_i32(&a, log);
    return nncl__cl_launch_1d(&a, (size_t)rows);
}

nncl_status nncl__cl_softmax_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *y,
                                      const nncl_tensor *dy, int64_t rows, int64_t cols, int log)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "softmax_backward", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, dx);
    nncl__cl_arg_tensor(&a, y);
    nncl__cl_arg_tensor(&a, dy);
    nncl__cl_arg_u64(&a, (uint64_t)rows);
    nncl__cl_arg_u64(&a, (uint64_t)cols);
    nncl__cl_arg_i32(&a, log);
    return nncl__cl_launch_1d(&a, (size_t)rows);
}
