/*
 * cl_bias.c - host side of kernels_cl/bias.cl.
 */
#include "opencl/cl.h"

nncl_status nncl__cl_bias_add(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *b, int64_t outer,
                              int64_t channels, int64_t inner, int relu)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "bias_add", &k));
    size_t rows = (size_t)(outer * channels);
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, y);
    nncl__cl_arg_tensor(&a, b);
    nncl__cl_arg_u64(&a, (uint64_t)channels);
    nncl__cl_arg_u64(&a, (uint64_t)inner);
    nncl__cl_arg_u64(&a, rows);
    nncl__cl_arg_i32(&a, relu);
    return nncl__cl_launch_1d(&a, rows);
}

nncl_status nncl__cl_bias_backward(nncl_context *ctx, const nncl_tensor *db, const nncl_tensor *dy, int64_t outer,
                                   int64_t channels, int64_t inner)
{
    /* Sums of up to this many terms run serially, one work-item per channel (no barriers). */
    const int64_t serial_max = 1024;
    const int serial = outer * inner <= serial_max;
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, serial ? "bias_backward_serial" : "bias_backward", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, db);
    nncl__cl_arg_tensor(&a, dy);
    nncl__cl_arg_u64(&a, (uint64_t)outer);
    nncl__cl_arg_u64(&a, (uint64_t)channels);
    nncl__cl_arg_u64(&a, (uint64_t)inner);
    if (serial) return nncl__cl_launch_1d(&a, (size_t)channels);
    return nncl__cl_launch_1d(&a, (size_t)channels * NNCL_CL_WG); /* one work-group per channel */
}
