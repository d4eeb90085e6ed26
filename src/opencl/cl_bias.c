/*
 * cl_bias.c - host side of kernels_cl/bias.cl.
 */
#include <stdint.h>

#include "opencl/cl.h"

nncl_status nncl__cl_bias_add(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *b, int64_t outer,
                              int64_t channels, int64_t inner, int relu)
{
    const int ew = nncl__cl_state(ctx)->gpu_shapes;
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, ew ? "bias_add_ew" : "bias_add", &k));
    const size_t rows = (size_t)(outer * channels), n = ew ? rows * (size_t)inner : rows;
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, y);
    nncl__cl_arg_tensor(&a, b);
    nncl__cl_arg_u64(&a, (uint64_t)channels);
    nncl__cl_arg_u64(&a, (uint64_t)inner);
    nncl__cl_arg_u64(&a, n);
    nncl__cl_arg_i32(&a, relu);
    return nncl__cl_launch_1d(&a, n); /* one work-item per element (GPUs) or per row */
}

/* The GPUs' two passes (bias.cl), through the context's partial sums (channels <= NNCL_CL_PARTIALS). */
static nncl_status bias_backward_gpu(nncl_context *ctx, const nncl_tensor *db, const nncl_tensor *dy, int64_t outer,
                                     int64_t channels, int64_t inner)
{
    const int64_t m = outer * inner;
    /* Enough work-groups for eight per compute unit, each with at least four terms per work-item. */
    int64_t groups = NNCL_CL_PARTIALS / channels;
    const int64_t busy = (8 * (int64_t)nncl__cl_state(ctx)->compute_units + channels - 1) / channels;
    const int64_t useful = (m + 4 * NNCL_CL_WG - 1) / (4 * NNCL_CL_WG);
    if (groups > busy) groups = busy;
    if (groups > useful) groups = useful;
    if (groups < 1) groups = 1;
    cl_mem partials;
    const nncl__cl_kernel *kp, *kf;
    NNCL_TRY(nncl__cl_partials(ctx, &partials));
    NNCL_TRY(nncl__cl_kernel_get(ctx, "bias_backward_part", &kp));
    NNCL_TRY(nncl__cl_kernel_get(ctx, "bias_backward_finish", &kf));
    nncl__cl_args a = nncl__cl_args_begin(ctx, kp);
    nncl__cl_arg_mem(&a, partials);
    nncl__cl_arg_tensor(&a, dy);
    nncl__cl_arg_u32(&a, (uint32_t)outer);
    nncl__cl_arg_u32(&a, (uint32_t)channels);
    nncl__cl_arg_u32(&a, (uint32_t)inner);
    nncl__cl_arg_u32(&a, (uint32_t)groups);
    NNCL_TRY(nncl__cl_launch_1d(&a, (size_t)(channels * groups) * NNCL_CL_WG)); /* one work-group per (c, g) */
    nncl__cl_args f = nncl__cl_args_begin(ctx, kf);
    nncl__cl_arg_tensor(&f, db);
    nncl__cl_arg_mem(&f, partials);
    nncl__cl_arg_u32(&f, (uint32_t)channels);
    nncl__cl_arg_u32(&f, (uint32_t)groups);
    return nncl__cl_launch_1d(&f, (size_t)channels);
}

nncl_status nncl__cl_bias_backward(nncl_context *ctx, const nncl_tensor *db, const nncl_tensor *dy, int64_t outer,
                                   int64_t channels, int64_t inner)
{
    /* GPU shapes, where the partial sums hold a part per channel and the kernel's 32-bit indices reach. */
    if (nncl__cl_state(ctx)->gpu_shapes && channels <= NNCL_CL_PARTIALS && outer * inner <= INT32_MAX)
        return bias_backward_gpu(ctx, db, dy, outer, channels, inner);
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
