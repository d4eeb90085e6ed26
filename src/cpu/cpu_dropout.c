/*
 * cpu_dropout.c - reference dropout. Element i is kept when the counter-based
 * generator's uniform draw for (key, i) is at least p, and then scaled; the
 * same function gives the backward pass (dy in place of x), so no mask is
 * stored.
 */
#include "core/rng.h"
#include "cpu/cpu.h"

void nncl__ref_dropout(double *y, const double *x, int64_t n, double p, double scale, nncl_rng_key key)
{
    for (int64_t i = 0; i < n; i++) y[i] = nncl__rng_uniform(key, (uint32_t)i) >= p ? x[i] * scale : 0.0;
}

nncl_status nncl__cpu_dropout(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x, float p,
                              nncl_rng_key key)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *py, *px;
    int64_t n = nncl_tensor_numel(x);
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)n, &py));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, x, &px));
    /* The kept values are x * scale with scale rounded to float, exactly as the
       OpenCL kernel computes them: the product of two floats is exact in double. */
    nncl__ref_dropout(py, px, n, p, (double)(1.0f / (1.0f - p)), key);
    nncl__cpu_unstage(y, py);
    return nncl__cpu_op_end(ctx, "dropout", t0);
}
