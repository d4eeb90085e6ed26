/*
 * cl_activation.c - host side of kernels_cl/activation.cl.
 */
#include "opencl/cl.h"

/* The kernel `<direction>_<function>` of kernels_cl/activation.cl, e.g. activation_forward_relu. */
static nncl_status act_kernel(nncl_context *ctx, nncl_activation act, const char *direction,
                              const nncl__cl_kernel **k)
{
    const char *fn = nncl__activation_name(act);
    if (fn == NULL) return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "unknown activation %d", (int)act);
    return nncl__cl_kernel_getf(ctx, k, "%s_%s", direction, fn);
}

nncl_status nncl__cl_activation_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                        nncl_activation act, float param)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(act_kernel(ctx, act, "activation_forward", &k));
    size_t n = (size_t)nncl_tensor_numel(x);
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, y);
    nncl__cl_arg_tensor(&a, x);
    nncl__cl_arg_u64(&a, n);
    nncl__cl_arg_f32(&a, param);
    return nncl__cl_launch_ew(&a, n);
}

nncl_status nncl__cl_activation_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *x,
                                         const nncl_tensor *y, const nncl_tensor *dy, nncl_activation act,
                                         float param)
{
    (void)y; /* the derivatives are computed from x */
    const nncl__cl_kernel *k;
    NNCL_TRY(act_kernel(ctx, act, "activation_backward", &k));
    size_t n = (size_t)nncl_tensor_numel(x);
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, dx);
    nncl__cl_arg_tensor(&a, x);
    nncl__cl_arg_tensor(&a, dy);
    nncl__cl_arg_u64(&a, n);
    nncl__cl_arg_f32(&a, param);
    return nncl__cl_launch_ew(&a, n);
}
