/*
 * cl_reduce.c - host side of kernels_cl/reduce.cl: the sum and the Euclidean
 * norm of a vector.
 */
#include "opencl/cl.h"

nncl_status nncl__cl_partials(nncl_context *ctx, cl_mem *out)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    if (cl->partials == NULL) /* once per context, reused by every reduction */
        NNCL_TRY(nncl__cl_alloc(ctx, NNCL_CL_PARTIALS * sizeof(float), &cl->partials));
    *out = cl->partials;
    return NNCL_OK;
}

/* Two passes of the kernels <what>_partials and <what>_finish ("sum" or "norm"), through the context's partials. */
static nncl_status reduce(nncl_context *ctx, const nncl_tensor *out, const nncl_tensor *x, const char *partials_kernel,
                          const char *finish_kernel)
{
    cl_mem partials;
    NNCL_TRY(nncl__cl_partials(ctx, &partials));

    const nncl__cl_kernel *k_partials, *k_finish;
    NNCL_TRY(nncl__cl_kernel_get(ctx, partials_kernel, &k_partials));
    NNCL_TRY(nncl__cl_kernel_get(ctx, finish_kernel, &k_finish));

    size_t parts = NNCL_CL_PARTIALS, local = NNCL_CL_WG;
    nncl__cl_args a = nncl__cl_args_begin(ctx, k_partials);
    nncl__cl_arg_mem(&a, partials);
    nncl__cl_arg_view(&a, x->buf, x->offset);
    nncl__cl_arg_u64(&a, (uint64_t)nncl_tensor_numel(x));
    nncl__cl_arg_u32(&a, (uint32_t)parts);
    NNCL_TRY(nncl__cl_launch(&a, 1, &parts, &local));

    size_t one = 1;
    nncl__cl_args b = nncl__cl_args_begin(ctx, k_finish);
    nncl__cl_arg_view(&b, out->buf, out->offset);
    nncl__cl_arg_mem(&b, partials);
    nncl__cl_arg_u32(&b, (uint32_t)parts);
    return nncl__cl_launch(&b, 1, &one, &one);
}

nncl_status nncl__cl_sum(nncl_context *ctx, const nncl_tensor *out, const nncl_tensor *x)
{
    return reduce(ctx, out, x, "sum_partials", "sum_finish");
}

nncl_status nncl__cl_norm2(nncl_context *ctx, const nncl_tensor *out, const nncl_tensor *x)
{
    return reduce(ctx, out, x, "norm_partials", "norm_finish");
}
