/*
 * cpu_blas1.c - reference element-wise vector ops: fill, scale, axpy, add.
 */
#include <math.h>

#include "cpu/cpu.h"

nncl_status nncl__cpu_fill(nncl_context *ctx, const nncl_tensor *x, float value)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    float *p = nncl__cpu_tensor(x);
    int64_t n = nncl_tensor_numel(x);
    for (int64_t i = 0; i < n; i++) p[i] = value;
    return nncl__cpu_op_end(ctx, "fill", t0);
}

nncl_status nncl__cpu_scale(nncl_context *ctx, const nncl_tensor *x, float alpha)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    float *p = nncl__cpu_tensor(x);
    int64_t n = nncl_tensor_numel(x);
    for (int64_t i = 0; i < n; i++) p[i] = alpha * p[i];
    return nncl__cpu_op_end(ctx, "scale", t0);
}

nncl_status nncl__cpu_axpy(nncl_context *ctx, const nncl_tensor *y, float alpha, const nncl_tensor *x)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    const float *px = nncl__cpu_tensor(x);
    float *py = nncl__cpu_tensor(y);
    int64_t n = nncl_tensor_numel(x);
    /* fmaf: one rounding, the same as the OpenCL kernel's fma. */
    for (int64_t i = 0; i < n; i++) py[i] = fmaf(alpha, px[i], py[i]);
    return nncl__cpu_op_end(ctx, "axpy", t0);
}

nncl_status nncl__cpu_add(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *a, const nncl_tensor *b)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    const float *pa = nncl__cpu_tensor(a), *pb = nncl__cpu_tensor(b);
    float *py = nncl__cpu_tensor(y);
    int64_t n = nncl_tensor_numel(y);
    for (int64_t i = 0; i < n; i++) py[i] = pa[i] + pb[i];
    return nncl__cpu_op_end(ctx, "add", t0);
}
