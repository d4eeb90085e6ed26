/*
 * cpu_reduce.c - reference reductions.
 */
#include "cpu/cpu.h"

nncl_status nncl__cpu_sum(nncl_context *ctx, const nncl_tensor *out, const nncl_tensor *x)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    const float *px = nncl__cpu_tensor(x);
    int64_t n = nncl_tensor_numel(x);
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++) acc += px[i];
    *nncl__cpu_tensor(out) = (float)acc;
    return nncl__cpu_op_end(ctx, "sum", t0);
}
