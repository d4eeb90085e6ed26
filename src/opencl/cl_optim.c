/*
 * cl_optim.c - host side of kernels_cl/optim.cl.
 */
#include "opencl/cl.h"

nncl_status nncl__cl_optimizer_step(nncl_context *ctx, const nncl_tensor *p, const nncl_tensor *g,
                                    const nncl_tensor *s1, const nncl_tensor *s2, const nncl_optim_args *a)
{
    static const char *const kernels[] = {"optimizer_step_sgd", "optimizer_step_adam", "optimizer_step_adamw"};
    if ((int)a->kind < 0 || (int)a->kind >= (int)(sizeof kernels / sizeof kernels[0]))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "unknown optimizer kind %d", (int)a->kind);
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, kernels[a->kind], &k));
    size_t n = (size_t)nncl_tensor_numel(p);
    nncl__cl_args args = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&args, p);
    nncl__cl_arg_tensor(&args, g);
    nncl__cl_arg_tensor(&args, s1);
    nncl__cl_arg_tensor(&args, s2);
    nncl__cl_arg_u64(&args, n);
    nncl__cl_arg_f32(&args, a->lr);
    nncl__cl_arg_f32(&args, a->momentum);
    nncl__cl_arg_f32(&args, a->dampening);
    nncl__cl_arg_f32(&args, a->weight_decay);
    nncl__cl_arg_i32(&args, a->nesterov);
    nncl__cl_arg_i32(&args, a->first_step);
    nncl__cl_arg_f32(&args, a->beta1);
    nncl__cl_arg_f32(&args, a->beta2);
    nncl__cl_arg_f32(&args, a->eps);
    nncl__cl_arg_f32(&args, a->step_size);
    nncl__cl_arg_f32(&args, a->bc2_sqrt);
    nncl__cl_arg_f32(&args, a->max_norm);
    nncl__cl_arg_tensor(&args, a->max_norm > 0.0f ? a->norm : NULL);
    return nncl__cl_launch_ew(&args, n);
}
