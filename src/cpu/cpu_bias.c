/*
 * cpu_bias.c - reference bias: y (outer, channels, inner) += b (channels),
 * and its gradient db[c] += sum over outer and inner of dy.
 */
#include "cpu/cpu.h"

void nncl__ref_bias_add(double *y, const double *b, int64_t outer, int64_t channels, int64_t inner)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < channels; c++)
            for (int64_t i = 0; i < inner; i++) y[(o * channels + c) * inner + i] += b[c];
}

void nncl__ref_bias_backward(double *db, const double *dy, int64_t outer, int64_t channels, int64_t inner)
{
    for (int64_t c = 0; c < channels; c++) {
        double acc = 0.0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) acc += dy[(o * channels + c) * inner + i];
        db[c] += acc;
    }
}

nncl_status nncl__cpu_bias_add(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *b, int64_t outer,
                               int64_t channels, int64_t inner, int relu)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *py, *pb;
    NNCL_TRY(nncl__cpu_stage(ctx, 0, y, &py));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, b, &pb));
    nncl__ref_bias_add(py, pb, outer, channels, inner);
    if (relu) /* on the rounded sums: rounding keeps the sign, so relu commutes with it */
        for (int64_t i = 0; i < outer * channels * inner; i++) py[i] = py[i] > 0.0 ? py[i] : 0.0;
    nncl__cpu_unstage(y, py);
    return nncl__cpu_op_end(ctx, "bias_add", t0);
}

nncl_status nncl__cpu_bias_backward(nncl_context *ctx, const nncl_tensor *db, const nncl_tensor *dy, int64_t outer,
                                    int64_t channels, int64_t inner)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *pdb, *pdy;
    NNCL_TRY(nncl__cpu_stage(ctx, 0, db, &pdb));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, dy, &pdy));
    nncl__ref_bias_backward(pdb, pdy, outer, channels, inner);
    nncl__cpu_unstage(db, pdb);
    return nncl__cpu_op_end(ctx, "bias_backward", t0);
}
