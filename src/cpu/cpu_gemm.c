/*
 * cpu_gemm.c - reference GEMM: three loops and a double accumulator.
 */
#include "cpu/cpu.h"

nncl_status nncl__cpu_gemm(nncl_context *ctx, const nncl_gemm_args *g)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    const float *a = nncl__cpu_ptr(g->a, g->a_off);
    const float *b = nncl__cpu_ptr(g->b, g->b_off);
    float *c = nncl__cpu_ptr(g->c, g->c_off);
    const float *bias = g->bias != NULL ? nncl__cpu_ptr(g->bias, g->bias_off) : NULL;
    const float *mask = g->mask != NULL ? nncl__cpu_ptr(g->mask, g->mask_off) : NULL;
    /* Element (row, col) of op(X) lives at X[row * ld + col], or at
       X[col * ld + row] when X is stored transposed. */
    for (size_t i = 0; i < g->m; i++) {
        for (size_t j = 0; j < g->n; j++) {
            double acc = 0.0;
            for (size_t p = 0; p < g->k; p++) {
                double aip = g->trans_a ? a[p * g->lda + i] : a[i * g->lda + p];
                double bpj = g->trans_b ? b[j * g->ldb + p] : b[p * g->ldb + j];
                acc += aip * bpj;
            }
            float *cij = &c[i * g->ldc + j];
            /* BLAS semantics: with beta == 0, C is written without being read. */
            double old = g->beta == 0.0f ? 0.0 : (double)g->beta * *cij;
            float v = (float)(g->alpha * acc + old);
            if (g->bias != NULL) v += bias[j]; /* in float, as a separate bias add */
            if (g->relu && !(v > 0.0f)) v = 0.0f;
            if (mask != NULL && !(mask[i * g->ldc + j] > 0.0f)) v = 0.0f; /* the relu backward's test */
            *cij = v;
        }
    }
    ctx->stats.gemm_calls++;
    return nncl__cpu_profile_end(ctx, "gemm", t0);
}
