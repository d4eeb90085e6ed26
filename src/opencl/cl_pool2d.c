/*
 * cl_pool2d.c - host side of kernels_cl/pool2d.cl.
 */
#include <stdint.h>

#include "opencl/cl.h"

static void arg_geom(nncl__cl_args *a, const nncl_pool_geom *g)
{
    const int64_t v[11] = {g->n * g->c, g->h, g->w, g->oh, g->ow, g->kh, g->kw, g->sh, g->sw, g->ph, g->pw};
    for (int i = 0; i < 11; i++) nncl__cl_arg_i32(a, (int32_t)v[i]);
    nncl__cl_arg_i32(a, g->kind == NNCL_POOL_MAX);
    /* The reciprocal of the window area, rounded once here, as the reference rounds it. */
    nncl__cl_arg_f32(a, 1.0f / (float)(g->kh * g->kw));
}

/* The kernels index with 32-bit ints, the input and the output alike (with padding, the output can be the
   larger). */
static nncl_status check_size(nncl_context *ctx, const nncl_pool_geom *g)
{
    if (g->n * g->c * g->h * g->w > INT32_MAX || g->n * g->c * g->oh * g->ow > INT32_MAX)
        return NNCL_ERROR(ctx, NNCL_ERR_UNSUPPORTED,
                          "pool2d on OpenCL: inputs or outputs of 2^31 elements or more");
    return NNCL_OK;
}

/* 2 x 2 max pooling with stride 2 and no padding, on CPU devices: the kernels for it alone (pool2d.cl). */
static int is_max2(nncl_context *ctx, const nncl_pool_geom *g)
{
    return !nncl__cl_state(ctx)->gpu_shapes && g->kind == NNCL_POOL_MAX && g->kh == 2 && g->kw == 2 && g->sh == 2 &&
           g->sw == 2 && g->ph == 0 && g->pw == 0;
}

nncl_status nncl__cl_pool2d_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *idx,
                                    const nncl_tensor *x, const nncl_pool_geom *g)
{
    NNCL_TRY(check_size(ctx, g));
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, is_max2(ctx, g) ? "pool2d_forward_max2" : "pool2d_forward", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, y);
    nncl__cl_arg_tensor(&a, idx);
    nncl__cl_arg_tensor(&a, x);
    arg_geom(&a, g);
    return nncl__cl_launch_1d(&a, (size_t)(g->n * g->c * g->oh)); /* one work-item per output row */
}

nncl_status nncl__cl_pool2d_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dy,
                                     const nncl_tensor *idx, const nncl_tensor *relu_y, const nncl_pool_geom *g)
{
    NNCL_TRY(check_size(ctx, g));
    /* 2 x 2 max pooling that tiles the input, on CPU devices: rows of vectors, no zeroing. Other disjoint
       windows: zero dx, then scatter one work-item per output. Overlapping ones: gather one per input. */
    const int max2 = is_max2(ctx, g) && g->h == 2 * g->oh && g->w == 2 * g->ow;
    const int disjoint = g->sh >= g->kh && g->sw >= g->kw;
    if (disjoint && !max2) NNCL_TRY(nncl__cl_fill(ctx, dx, 0.0f));
    const char *name = max2 ? "pool2d_backward_max2" : disjoint ? "pool2d_backward_disjoint" : "pool2d_backward";
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, name, &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_tensor(&a, dx);
    nncl__cl_arg_tensor(&a, dy);
    nncl__cl_arg_tensor(&a, idx);
    arg_geom(&a, g);
    nncl__cl_arg_tensor(&a, relu_y); /* NULL: (NULL, 0), not read */
    nncl__cl_arg_i32(&a, relu_y != NULL);
    const size_t items = (size_t)(g->n * g->c) * (size_t)(max2 ? g->oh : disjoint ? g->oh * g->ow : g->h * g->w);
    return nncl__cl_launch_1d(&a, items); /* per output row, per output, or per input */
}
