/*
 * nncl/ops.h - basic linear algebra on tensors, on either backend.
 *
 * These are the primitives the layers are built from, exposed for users who
 * write their own layers. Each call is checked on the host (shapes, extents
 * inside the buffers, NULLs) and then queued on the context's backend without
 * waiting. Results are read with nncl_tensor_read.
 */
#ifndef NNCL_OPS_H
#define NNCL_OPS_H

#include "nncl/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nncl_transpose {
    NNCL_NO_TRANS = 0,
    NNCL_TRANS = 1,
} nncl_transpose;

/*
 * C = alpha * op(A) * op(B) + beta * C, row-major, where op(X) is X or X^T.
 *
 *   op(A) is m x k, op(B) is k x n, C is m x n.
 *   A is stored as m rows of k (NNCL_NO_TRANS) or k rows of m (NNCL_TRANS)
 *   with leading dimension lda (the distance between rows, in elements), and
 *   likewise B (k x n or n x k, ldb) and C (m x n, ldc).
 *   a, b, c give the buffers and the element offsets where the matrices
 *   start; only their buffer and offset are used, and every element the call
 *   touches must lie inside the tensor's elements (for A: (rows-1)*lda + cols
 *   <= numel(a)).
 *   m, n, k >= 1. When beta == 0, C is overwritten and its old values may be
 *   anything, NaN included.
 *
 * Counts one GEMM. Returns NNCL_ERR_INVALID_ARG for a bad size, leading
 * dimension or extent, and NNCL_ERR_CLBLAST when CLBlast fails.
 */
nncl_status nncl_gemm(nncl_context *ctx, nncl_transpose trans_a, nncl_transpose trans_b,
                      int64_t m, int64_t n, int64_t k, float alpha,
                      const nncl_tensor *a, int64_t lda,
                      const nncl_tensor *b, int64_t ldb, float beta,
                      const nncl_tensor *c, int64_t ldc);

/* y = alpha * x + y. x and y must have the same number of elements. */
nncl_status nncl_axpy(nncl_context *ctx, float alpha, const nncl_tensor *x, const nncl_tensor *y);

/* x = alpha * x. */
nncl_status nncl_scale(nncl_context *ctx, float alpha, const nncl_tensor *x);

/*
 * out[0] = sum of all elements of x. `out` must hold exactly one element. The
 * order of summation is fixed for a given size and device, so the result is
 * reproducible from run to run.
 */
nncl_status nncl_sum(nncl_context *ctx, const nncl_tensor *x, const nncl_tensor *out);

#ifdef __cplusplus
}
#endif

#endif /* NNCL_OPS_H */
