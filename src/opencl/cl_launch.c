/*
 * cl_launch.c - the single path by which nncl's kernels reach the queue:
 * argument setting and nncl__cl_launch.
 */
#include <stdio.h>

#include "opencl/cl.h"

nncl__cl_args nncl__cl_args_begin(nncl_context *ctx, const nncl__cl_kernel *k)
{
    nncl__cl_args a = {.ctx = ctx, .k = k, .next = 0, .status = NNCL_OK};
    return a;
}

void nncl__cl_arg(nncl__cl_args *a, size_t size, const void *value)
{
    if (a->status != NNCL_OK) return;
    cl_int err = clSetKernelArg(a->k->kernel, a->next, size, value);
    if (err != CL_SUCCESS)
        a->status = NNCL_CL_FAIL(a->ctx, err, "clSetKernelArg(%s, %u)", a->k->name, a->next);
    a->next++;
}

void nncl__cl_arg_mem(nncl__cl_args *a, cl_mem mem)
{
    nncl__cl_arg(a, sizeof mem, &mem);
}

void nncl__cl_arg_u64(nncl__cl_args *a, uint64_t v)
{
    cl_ulong x = v;
    nncl__cl_arg(a, sizeof x, &x);
}

void nncl__cl_arg_u32(nncl__cl_args *a, uint32_t v)
{
    cl_uint x = v;
    nncl__cl_arg(a, sizeof x, &x);
}

void nncl__cl_arg_f32(nncl__cl_args *a, float v)
{
    cl_float x = v;
    nncl__cl_arg(a, sizeof x, &x);
}

void nncl__cl_arg_view(nncl__cl_args *a, const nncl_buffer *buf, size_t offset)
{
    nncl__cl_arg_mem(a, (cl_mem)buf->mem);
    nncl__cl_arg_u64(a, offset);
}

void nncl__cl_arg_tensor(nncl__cl_args *a, const nncl_tensor *t)
{
    if (t == NULL) {
        nncl__cl_arg(a, sizeof(cl_mem), NULL);
        nncl__cl_arg_u64(a, 0);
        return;
    }
    nncl__cl_arg_view(a, t->buf, t->offset);
}

void nncl__cl_arg_i32(nncl__cl_args *a, int32_t v)
{
    cl_int x = v;
    nncl__cl_arg(a, sizeof x, &x);
}

void nncl__cl_arg_i64(nncl__cl_args *a, int64_t v)
{
    cl_long x = v;
    nncl__cl_arg(a, sizeof x, &x);
}

nncl_status nncl__cl_launch_1d(nncl__cl_args *a, size_t n)
{
    const size_t local = NNCL_CL_WG;
    return nncl__cl_launch(a, 1, &n, &local);
}

nncl_status nncl__cl_launch_ew(nncl__cl_args *a, size_t n)
{
    const size_t ew = (size_t)nncl__cl_state(a->ctx)->ew;
    return nncl__cl_launch_1d(a, (n + ew - 1) / ew);
}

nncl_status nncl__cl_launch(nncl__cl_args *a, cl_uint dims, const size_t *global, const size_t *local)
{
    if (a->status != NNCL_OK) return a->status;
    nncl_context *ctx = a->ctx;
    size_t rounded[3] = {1, 1, 1}, folded_local[2];
    for (cl_uint d = 0; d < dims; d++) {
        if (local[d] == 0 || global[d] == 0)
            return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "launch of %s: zero global or local size in dimension %u",
                              a->k->name, d);
        rounded[d] = (global[d] + local[d] - 1) / local[d] * local[d];
    }
    /* A grid's second dimension holds fewer than `fold` work-groups (NNCL_CL_FOLD): a GPU's may stop at
       65,535, while its first goes to 2^31 work-groups. */
    const size_t fold = nncl__cl_state(ctx)->fold, max_rows = fold > 1 ? fold - 1 : 1;
    /* A one-dimensional grid of `fold` work-items or more runs as rows of whole work-groups, narrower than
       the fold, or wider when that would take more than max_rows rows (over 4e9 work-items); the kernel takes
       its index from NNCL_GID and guards the tail of the last row as it guards any rounded-up tail. */
    if (dims == 1 && rounded[0] >= fold) {
        size_t width = fold > local[0] ? (fold - 1) / local[0] * local[0] : local[0];
        if ((rounded[0] + width - 1) / width > max_rows)
            width = ((rounded[0] + max_rows - 1) / max_rows + local[0] - 1) / local[0] * local[0];
        rounded[1] = (rounded[0] + width - 1) / width;
        rounded[0] = width;
        folded_local[0] = local[0];
        folded_local[1] = 1;
        local = folded_local;
        dims = 2;
    }
    /* A taller grid of two or three dimensions runs as bands of max_rows work-groups, each queued at its
       offset in the second dimension. Such kernels index themselves with get_global_id, which counts the
       offset (get_group_id would not); a folded grid never needs a second band. */
    const size_t band = dims > 1 ? max_rows * local[1] : 1;
    size_t offset[3] = {0, 0, 0}, part[3] = {rounded[0], rounded[1], rounded[2]};
    for (; offset[1] < rounded[1]; offset[1] += band) {
        part[1] = rounded[1] - offset[1] < band ? rounded[1] - offset[1] : band;
        cl_event ev = NULL;
        cl_int err = clEnqueueNDRangeKernel(nncl__cl_state(ctx)->queue, a->k->kernel, dims,
                                            offset[1] != 0 ? offset : NULL, part, local, 0, NULL,
                                            ctx->profiling ? &ev : NULL);
        if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clEnqueueNDRangeKernel(%s)", a->k->name);
        ctx->stats.kernel_launches++;
        if (ev != NULL) NNCL_TRY(nncl__cl_profile_event(ctx, ev, a->k->name));
    }
    return NNCL_OK;
}
