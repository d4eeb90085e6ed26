/*
 * cl_dropout.c - host side of kernels_cl/dropout.cl.
 */
#include "opencl/cl.h"

nncl_status nncl__cl_dropout(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x, float p,
                             nncl_rng_key key)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "dropout", &k));
    size_t n = (size_t)nncl_tensor_numel(x);
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, y);
    nncl__cl_arg_tensor(&a, x);
    nncl__cl_arg_u64(&a, n);
    nncl__cl_arg_f32(&a, p);
    nncl__cl_arg_f32(&a, 1.0f / (1.0f - p)); /* rounded once, here, as the reference does */
    nncl__cl_arg_u64(&a, key.seed);
    nncl__cl_arg_u64(&a, key.step);
    nncl__cl_arg_u32(&a, key.layer);
    return nncl__cl_launch_1d(&a, n);
}
