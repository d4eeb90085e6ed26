/*
 * cl_loss.c - host side of kernels_cl/loss.cl: the loss API's forward and
 * backward, and a network's loss step.
 */
#include "opencl/cl.h"

/* What the summed row losses are divided by: the elements (mse, bce_with_logits) or the rows. */
static float mean_denominator(nncl_loss_kind kind, int64_t n, int64_t c)
{
    return (float)(kind == NNCL_LOSS_MSE || kind == NNCL_LOSS_BCE_WITH_LOGITS ? n * c : n);
}

/* The kernel <prefix>_<kind> (loss.cl instantiates each per kind). */
static nncl_status kind_kernel(nncl_context *ctx, const char *prefix, nncl_loss_kind kind, const nncl__cl_kernel **k)
{
    const char *kind_name = nncl__loss_name(kind);
    if (kind_name == NULL) return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "unknown loss kind %d", (int)kind);
    return nncl__cl_kernel_getf(ctx, k, "%s_%s", prefix, kind_name);
}

/* loss_rows_<kind> or loss_backward_<kind>: the same arguments, one work-item per row of the input. */
static nncl_status per_row(nncl_context *ctx, const char *direction, const nncl_tensor *dst, const nncl_tensor *input,
                           const nncl_tensor *target, nncl_loss_kind kind, int64_t n, int64_t c, float smoothing)
{
    const nncl__cl_kernel *k;
    NNCL_TRY(kind_kernel(ctx, direction, kind, &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, dst);
    nncl__cl_arg_tensor(&a, input);
    nncl__cl_arg_tensor(&a, target);
    nncl__cl_arg_u64(&a, (uint64_t)n);
    nncl__cl_arg_u64(&a, (uint64_t)c);
    nncl__cl_arg_f32(&a, smoothing);
    return nncl__cl_launch_1d(&a, (size_t)n);
}

nncl_status nncl__cl_loss_forward(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *out,
                                  const nncl_tensor *work, const nncl_tensor *input, const nncl_tensor *target,
                                  int64_t n, int64_t c, float smoothing)
{
    NNCL_TRY(per_row(ctx, "loss_rows", work, input, target, kind, n, c, smoothing));
    const nncl__cl_kernel *km;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "loss_mean", &km));

    size_t one = 1;
    nncl__cl_args b = nncl__cl_args_begin(ctx, km);
    nncl__cl_arg_tensor(&b, out);
    nncl__cl_arg_tensor(&b, work);
    nncl__cl_arg_u64(&b, (uint64_t)n);
    nncl__cl_arg_f32(&b, mean_denominator(kind, n, c));
    return nncl__cl_launch(&b, 1, &one, &one);
}

nncl_status nncl__cl_loss_backward(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *dinput,
                                   const nncl_tensor *input, const nncl_tensor *target, int64_t n, int64_t c,
                                   float smoothing)
{
    return per_row(ctx, "loss_backward", dinput, input, target, kind, n, c, smoothing);
}

nncl_status nncl__cl_loss_step(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *metrics,
                               const nncl_tensor *sum, const nncl_tensor *dinput, const nncl_tensor *work,
                               const nncl_tensor *input, const nncl_tensor *target, int64_t n, int64_t c,
                               float smoothing)
{
    const nncl__cl_kernel *k, *kf;
    NNCL_TRY(kind_kernel(ctx, "loss_step", kind, &k));
    NNCL_TRY(nncl__cl_kernel_get(ctx, "loss_step_finish", &kf));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, work);
    nncl__cl_arg_tensor(&a, dinput ? dinput : work); /* not written without the gradient */
    nncl__cl_arg_i32(&a, dinput != NULL);
    nncl__cl_arg_tensor(&a, input);
    nncl__cl_arg_tensor(&a, target);
    nncl__cl_arg_u64(&a, (uint64_t)n);
    nncl__cl_arg_u64(&a, (uint64_t)c);
    nncl__cl_arg_f32(&a, smoothing);
    NNCL_TRY(nncl__cl_launch_1d(&a, (size_t)n));

    const size_t one = 1;
    nncl__cl_args b = nncl__cl_args_begin(ctx, kf);
    nncl__cl_arg_tensor(&b, metrics);
    nncl__cl_arg_tensor(&b, sum);
    nncl__cl_arg_tensor(&b, work);
    nncl__cl_arg_u64(&b, (uint64_t)n);
    nncl__cl_arg_f32(&b, mean_denominator(kind, n, c));
    nncl__cl_arg_f32(&b, (float)n);
    return nncl__cl_launch(&b, 1, &one, &one);
}
