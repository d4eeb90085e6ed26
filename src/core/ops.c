/*
 * ops.c - the public entry points of the basic operations.
 *
 * Each one validates its arguments completely (so that a backend never sees a
 * NULL, a bad size or an access outside a buffer) and then hands the call to
 * the context's backend.
 */
#include <inttypes.h>

#include "backend/backend.h"

/* Whether [a_off, a_off + a_n) and [b_off, b_off + b_n) of the same buffer intersect. */
static int overlaps(const nncl_buffer *a_buf, uint64_t a_off, uint64_t a_n,
                    const nncl_buffer *b_buf, uint64_t b_off, uint64_t b_n)
{
    return a_buf == b_buf && a_off < b_off + b_n && b_off < a_off + a_n;
}

/* Elements spanned by a rows x cols matrix with leading dimension ld. */
static uint64_t matrix_extent(int64_t rows, int64_t cols, int64_t ld)
{
    return (uint64_t)(rows - 1) * (uint64_t)ld + (uint64_t)cols;
}

/*
 * Checks a matrix operand of a GEMM: stored as `rows` x `cols` with leading
 * dimension ld, starting at t's offset, all inside t's elements.
 */
static nncl_status check_matrix(nncl_context *ctx, const nncl_tensor *t, const char *what,
                                int64_t rows, int64_t cols, int64_t ld)
{
    NNCL_TRY(nncl__tensor_check(ctx, t, what, "nncl_gemm"));
    if (ld < cols)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG,
                          "nncl_gemm: leading dimension of %s is %" PRId64 ", less than its %" PRId64 " columns",
                          what, ld, cols);
    /* rows, cols and ld <= INT32_MAX were checked by the caller: no overflow. */
    uint64_t extent = matrix_extent(rows, cols, ld);
    if (extent > (uint64_t)nncl_tensor_numel(t))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG,
                          "nncl_gemm: %s is %" PRId64 " x %" PRId64 " with ld %" PRId64
                          ", which needs %" PRIu64 " elements, but the tensor has %" PRId64,
                          what, rows, cols, ld, extent, nncl_tensor_numel(t));
    return NNCL_OK;
}

/* Checks nncl_gemm's arguments and gathers them for the backend. */
static nncl_status gemm_args(nncl_context *ctx, nncl_transpose trans_a, nncl_transpose trans_b, int64_t m, int64_t n,
                             int64_t k, float alpha, const nncl_tensor *a, int64_t lda, const nncl_tensor *b,
                             int64_t ldb, float beta, const nncl_tensor *c, int64_t ldc, nncl_gemm_args *g)
{
    if ((trans_a != NNCL_NO_TRANS && trans_a != NNCL_TRANS) ||
        (trans_b != NNCL_NO_TRANS && trans_b != NNCL_TRANS))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "nncl_gemm: bad transpose flag (%d, %d)",
                          (int)trans_a, (int)trans_b);
    if (m < 1 || n < 1 || k < 1 || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG,
                          "nncl_gemm: sizes m=%" PRId64 " n=%" PRId64 " k=%" PRId64 " must be in 1..%d",
                          m, n, k, INT32_MAX);
    if (lda < 1 || ldb < 1 || ldc < 1 || lda > INT32_MAX || ldb > INT32_MAX || ldc > INT32_MAX)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG,
                          "nncl_gemm: leading dimensions lda=%" PRId64 " ldb=%" PRId64 " ldc=%" PRId64
                          " must be in 1..%d", lda, ldb, ldc, INT32_MAX);
    int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
    int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
    NNCL_TRY(check_matrix(ctx, a, "A", a_rows, a_cols, lda));
    NNCL_TRY(check_matrix(ctx, b, "B", b_rows, b_cols, ldb));
    NNCL_TRY(check_matrix(ctx, c, "C", m, n, ldc));
    uint64_t c_n = matrix_extent(m, n, ldc);
    if (overlaps(c->buf, c->offset, c_n, a->buf, a->offset, matrix_extent(a_rows, a_cols, lda)) ||
        overlaps(c->buf, c->offset, c_n, b->buf, b->offset, matrix_extent(b_rows, b_cols, ldb)))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "nncl_gemm: C overlaps A or B");

    *g = (nncl_gemm_args){
        .trans_a = trans_a, .trans_b = trans_b,
        .m = (size_t)m, .n = (size_t)n, .k = (size_t)k,
        .alpha = alpha, .beta = beta,
        .a = a->buf, .a_off = a->offset, .lda = (size_t)lda,
        .b = b->buf, .b_off = b->offset, .ldb = (size_t)ldb,
        .c = c->buf, .c_off = c->offset, .ldc = (size_t)ldc,
    };
    return NNCL_OK;
}

nncl_status nncl__gemm_epilogue(nncl_context *ctx, nncl_transpose trans_a, nncl_transpose trans_b, int64_t m,
                                int64_t n, int64_t k, float alpha, const nncl_tensor *a, int64_t lda,
                                const nncl_tensor *b, int64_t ldb, float beta, const nncl_tensor *c, int64_t ldc,
                                const nncl_tensor *bias, int relu, const nncl_tensor *mask)
{
    NNCL_CHECK_CTX(ctx);
    nncl_gemm_args g;
    NNCL_TRY(gemm_args(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, &g));
    if (bias != NULL) {
        NNCL_TRY(nncl__tensor_check(ctx, bias, "bias", "nncl_gemm"));
        if (nncl_tensor_numel(bias) < n)
            return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "nncl_gemm: the bias has %" PRId64 " elements, C %" PRId64
                              " columns", nncl_tensor_numel(bias), n);
        if (overlaps(c->buf, c->offset, matrix_extent(m, n, ldc), bias->buf, bias->offset, (uint64_t)n))
            return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "nncl_gemm: C overlaps the bias");
        g.bias = bias->buf;
        g.bias_off = bias->offset;
    }
    g.relu = relu != 0;
    if (mask != NULL) {
        NNCL_TRY(nncl__tensor_check(ctx, mask, "mask", "nncl_gemm"));
        const uint64_t extent = matrix_extent(m, n, ldc);
        if ((uint64_t)nncl_tensor_numel(mask) < extent)
            return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "nncl_gemm: the mask has %" PRId64 " elements, C spans %" PRIu64,
                              nncl_tensor_numel(mask), extent);
        if (overlaps(c->buf, c->offset, extent, mask->buf, mask->offset, extent))
            return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "nncl_gemm: C overlaps the mask");
        g.mask = mask->buf;
        g.mask_off = mask->offset;
    }
    return ctx->ops->gemm(ctx, &g);
}

nncl_status nncl_gemm(nncl_context *ctx, nncl_transpose trans_a, nncl_transpose trans_b,
                      int64_t m, int64_t n, int64_t k, float alpha,
                      const nncl_tensor *a, int64_t lda,
                      const nncl_tensor *b, int64_t ldb, float beta,
                      const nncl_tensor *c, int64_t ldc)
{
    return nncl__gemm_epilogue(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL, 0, NULL);
}

nncl_status nncl__gemm_prepare(nncl_context *ctx, nncl_transpose trans_a, nncl_transpose trans_b, int64_t m,
                               int64_t n, int64_t k, float alpha, const nncl_tensor *a, int64_t lda,
                               const nncl_tensor *b, int64_t ldb, float beta, const nncl_tensor *c, int64_t ldc)
{
    NNCL_CHECK_CTX(ctx);
    nncl_gemm_args g;
    NNCL_TRY(gemm_args(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, &g));
    return ctx->ops->gemm_prepare ? ctx->ops->gemm_prepare(ctx, &g) : NNCL_OK;
}

nncl_status nncl_axpy(nncl_context *ctx, float alpha, const nncl_tensor *x, const nncl_tensor *y)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_TRY(nncl__tensor_check(ctx, x, "x", __func__));
    NNCL_TRY(nncl__tensor_check(ctx, y, "y", __func__));
    if (nncl_tensor_numel(x) != nncl_tensor_numel(y)) {
        char sx[160], sy[160];
        return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: x %s and y %s differ in element count", __func__,
                          nncl_shape_format(x->ndim, x->shape, sx, sizeof sx),
                          nncl_shape_format(y->ndim, y->shape, sy, sizeof sy));
    }
    uint64_t n = (uint64_t)nncl_tensor_numel(x);
    if (x->offset != y->offset && overlaps(x->buf, x->offset, n, y->buf, y->offset, n))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: x and y partially overlap", __func__);
    return ctx->ops->axpy(ctx, y, alpha, x);
}

nncl_status nncl_scale(nncl_context *ctx, float alpha, const nncl_tensor *x)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_TRY(nncl__tensor_check(ctx, x, "x", __func__));
    return ctx->ops->scale(ctx, x, alpha);
}

nncl_status nncl_sum(nncl_context *ctx, const nncl_tensor *x, const nncl_tensor *out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_TRY(nncl__tensor_check(ctx, x, "x", __func__));
    NNCL_TRY(nncl__tensor_check(ctx, out, "out", __func__));
    if (nncl_tensor_numel(out) != 1) {
        char s[160];
        return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: out %s must hold exactly one element", __func__,
                          nncl_shape_format(out->ndim, out->shape, s, sizeof s));
    }
    return ctx->ops->sum(ctx, out, x);
}
