/*
 * gemm.cl - nncl's own GEMM for devices where CLBlast is slow (PoCL on CPUs):
 * C = alpha op(A) B + beta C, row-major, op(A) = A (m x k, rows lda apart) or
 * A^T (A stored k x m); B is k x n (rows ldb apart); with trans_c the result
 * is stored transposed (C^T, n x m). src/opencl/cl_gemm.c turns the other
 * transpositions into these with gemm_transpose, and computes narrow products
 * (n below one block) as their transposes.
 *
 * Shape of the work (it is what PoCL's vectoriser turns into SIMD code): each
 * work-item computes a block of GEMM_MR = 6 rows by GEMM_NR = 2 GEMM_V columns
 * of C in twelve vector accumulators. Per step of k it loads one row of B as
 * two vectors, broadcasts six scalars of A, and does twelve vector fma. No
 * local memory and no barriers. Rows past the bottom edge are computed on a
 * copy of the last row and dropped; blocks at the right edge take a plain
 * scalar path. global = (ceil(n / GEMM_NR), ceil(m / GEMM_MR)).
 * GEMM_V is the vector width: 8 fills AVX2's sixteen 256-bit registers (12
 * accumulators, 2 rows of B, 1 broadcast); 16 suits AVX-512.
 *
 * Epilogue (a linear layer's bias and fused relu, saving their own pass over
 * C): epilogue & 1 adds bias[j] to column j, then epilogue & 2 applies
 * nncl_relu, then epilogue & 4 zeroes C[i][j] unless mask[i][j] > 0 (the
 * backward of the relu before a linear layer, in its input gradient; mask is
 * laid out as C), each rounded as a separate op would round it
 * (nncl_gemm_epilogue, common.h, shared with gemm_tiled.cl).
 */

#define GEMM_MR 6
#ifndef GEMM_V
#define GEMM_V 8
#endif
#define GEMM_NR (2 * GEMM_V)
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define floatV CAT(float, GEMM_V)
#define vloadV CAT(vload, GEMM_V)
#define vstoreV CAT(vstore, GEMM_V)


/*
 * Writes row r of the block: C = alpha acc (+ beta C), then the epilogue. With
 * beta == 0, C is not read. With trans_c, element (i, j) lives at
 * C[j * ldc + i] (the caller asked for the transposed product): the row is
 * written element by element, and its bias is that of C's column i0 + r.
 */
#define STORE_ROW(r, lo, hi)                                                                                       \
    do {                                                                                                           \
        __global float *cr = C + (i0 + (r)) * ldc + j0;                                                            \
        if (trans_c) {                                                                                             \
            float vals[GEMM_NR];                                                                                   \
            vstoreV(lo, 0, vals);                                                                                  \
            vstoreV(hi, 0, vals + GEMM_V);                                                                         \
            const float bi = epilogue & 1 ? bias[i0 + (r)] : 0.0f;                                                 \
            for (int e = 0; e < GEMM_NR; e++) {                                                                    \
                const ulong at = (j0 + e) * ldc + i0 + (r);                                                        \
                const float v = beta == 0.0f ? alpha * vals[e] : alpha * vals[e] + beta * C[at];                   \
                C[at] = nncl_gemm_epilogue(epilogue, v, bi, epilogue & 4 ? mask[at] : 0.0f);                       \
            }                                                                                                      \
        } else {                                                                                                   \
            floatV v0 = alpha * (lo), v1 = alpha * (hi);                                                           \
            if (beta != 0.0f) {                                                                                    \
                v0 += beta * vloadV(0, cr);                                                                        \
                v1 += beta * vloadV(0, cr + GEMM_V);                                                               \
            }                                                                                                      \
            if (epilogue & 1) {                                                                                    \
                v0 += vloadV(0, bias + j0);                                                                        \
                v1 += vloadV(0, bias + j0 + GEMM_V);                                                               \
            }                                                                                                      \
            if (epilogue & 2) { /* nncl_relu: x > 0 ? x : 0 */                                                     \
                v0 = select((floatV)(0.0f), v0, isgreater(v0, (floatV)(0.0f)));                                    \
                v1 = select((floatV)(0.0f), v1, isgreater(v1, (floatV)(0.0f)));                                    \
            }                                                                                                      \
            if (epilogue & 4) { /* the relu backward: mask > 0 ? v : 0 */                                          \
                __global const float *mr = mask + (i0 + (r)) * ldc + j0;                                           \
                v0 = select((floatV)(0.0f), v0, isgreater(vloadV(0, mr), (floatV)(0.0f)));                         \
                v1 = select((floatV)(0.0f), v1, isgreater(vloadV(0, mr + GEMM_V), (floatV)(0.0f)));                \
            }                                                                                                      \
            vstoreV(v0, 0, cr);                                                                                    \
            vstoreV(v1, 0, cr + GEMM_V);                                                                           \
        }                                                                                                          \
    } while (0)

__kernel void gemm_block(__global float *C, ulong c_off, ulong ldc, int trans_c, __global const float *A,
                         ulong a_off, ulong lda, int trans_a, __global const float *B, ulong b_off, ulong ldb, ulong m,
                         ulong n, ulong k, float alpha, float beta, __global const float *bias, ulong bias_off,
                         __global const float *mask, ulong mask_off, int epilogue)
{
    const ulong j0 = get_global_id(0) * GEMM_NR, i0 = get_global_id(1) * GEMM_MR;
    if (j0 >= n || i0 >= m) return;
    C += c_off;
    A += a_off;
    B += b_off;
    bias += bias_off;
    mask += mask_off;
    /* op(A)[i][p] = A[i * ra + p * ca] */
    const ulong ra = trans_a ? 1 : lda, ca = trans_a ? lda : 1;
    if (j0 + GEMM_NR <= n) {
        /* Rows past the bottom edge read the last row (valid memory) and are not stored. */
        const ulong last = m - 1;
        __global const float *a0p = A + min(i0 + 0, last) * ra;
        __global const float *a1p = A + min(i0 + 1, last) * ra;
        __global const float *a2p = A + min(i0 + 2, last) * ra;
        __global const float *a3p = A + min(i0 + 3, last) * ra;
        __global const float *a4p = A + min(i0 + 4, last) * ra;
        __global const float *a5p = A + min(i0 + 5, last) * ra;
        NNCL_BLOCK_ZERO(floatV);
        NNCL_NO_AUTOVEC
        for (ulong p = 0; p < k; p++) {
            __global const float *bp = B + p * ldb + j0;
            const floatV b0 = vloadV(0, bp), b1 = vloadV(0, bp + GEMM_V);
            const floatV a0 = (floatV)(a0p[p * ca]), a1 = (floatV)(a1p[p * ca]), a2 = (floatV)(a2p[p * ca]);
            const floatV a3 = (floatV)(a3p[p * ca]), a4 = (floatV)(a4p[p * ca]), a5 = (floatV)(a5p[p * ca]);
            NNCL_BLOCK_FMA(a0, a1, a2, a3, a4, a5, b0, b1);
        }
        /* One store loop over the rows, not six copies of it: the stores are a sliver of the time, and
           one copy compiles in half the time. */
        const floatV block[2 * GEMM_MR] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
        NNCL_NO_AUTOVEC
        for (int r = 0; r < GEMM_MR && i0 + r < m; r++) STORE_ROW(r, block[2 * r], block[2 * r + 1]);
        return;
    }
    /* A block at the right edge: one dot product per element, in the same order. */
    NNCL_NO_AUTOVEC
    for (ulong r = 0; r < GEMM_MR && i0 + r < m; r++) {
        NNCL_NO_AUTOVEC
        for (ulong c = 0; c < GEMM_NR && j0 + c < n; c++) {
            float acc = 0.0f;
            NNCL_NO_AUTOVEC
            for (ulong p = 0; p < k; p++) acc = fma(A[(i0 + r) * ra + p * ca], B[p * ldb + j0 + c], acc);
            const ulong at = trans_c ? (j0 + c) * ldc + i0 + r : (i0 + r) * ldc + j0 + c;
            const float v = beta == 0.0f ? alpha * acc : alpha * acc + beta * C[at];
            C[at] = nncl_gemm_epilogue(epilogue, v, epilogue & 1 ? bias[trans_c ? i0 + r : j0 + c] : 0.0f,
                                       epilogue & 4 ? mask[at] : 0.0f);
        }
    }
}

/* dst (cols x rows, dense) = transpose of src (rows x cols, rows ld apart). One work-item per row of dst. */
__kernel void gemm_transpose(__global float *dst, ulong dst_off, __global const float *src, ulong src_off, ulong ld,
                             ulong rows, ulong cols)
{
    const size_t c = NNCL_GID();
    if (c >= cols) return;
    __global float *d = dst + dst_off + c * rows;
    __global const float *s = src + src_off + c;
    for (ulong r = 0; r < rows; r++) d[r] = s[r * ld];
}
