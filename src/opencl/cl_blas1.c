/*
 * cl_blas1.c - host side of kernels_cl/blas1.cl: fill, scale, axpy, add.
 */
#include "opencl/cl.h"


nncl_status nncl__cl_fill(nncl_context *ctx, const nncl_tensor *x, float value)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "fill", &k));
    size_t n = (size_t)nncl_tensor_numel(x);
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_view(&a, x->buf, x->offset);
    nncl__cl_arg_u64(&a, n);
    nncl__cl_arg_f32(&a, value);
    return nncl__cl_launch_ew(&a, n);
}

nncl_status nncl__cl_scale(nncl_context *ctx, const nncl_tensor *x, float alpha)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "scale", &k));
    size_t n = (size_t)nncl_tensor_numel(x);
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_view(&a, x->buf, x->offset);
    nncl__cl_arg_u64(&a, n);
    nncl__cl_arg_f32(&a, alpha);
    return nncl__cl_launch_ew(&a, n);
}

nncl_status nncl__cl_axpy(nncl_context *ctx, const nncl_tensor *y, float alpha, const nncl_tensor *x)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "axpy", &k));
    size_t n = (size_t)nncl_tensor_numel(x);
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_view(&a, y->buf, y->offset);
    nncl__cl_arg_view(&a, x->buf, x->offset);
    nncl__cl_arg_u64(&a, n);
    nncl__cl_arg_f32(&a, alpha);
    return nncl__cl_launch_ew(&a, n);
}

nncl_status nncl__cl_add(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *a, const nncl_tensor *b)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "add", &k));
    size_t n = (size_t)nncl_tensor_numel(y);
    nncl__cl_args args = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&args, y);
    nncl__cl_arg_tensor(&args, a);
    nncl__cl_arg_tensor(&args, b);
    nncl__cl_arg_u64(&args, n);
    return nncl__cl_launch_ew(&args, n);
}
