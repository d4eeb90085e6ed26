/*
 * gemm_tiled.cl - GEMM shaped for GPUs: C = alpha op(A) op(B) + beta C,
 * row-major, every transposition read in place (op(A) is m x k, op(B) k x n).
 * gemm.cl's register blocks suit a CPU's vector units; a GPU wants the
 * classic shape instead (src/opencl/cl_gemm.c measures which wins a shape).
 *
 * A work-group of 16 x 16 work-items computes a TILE x TILE tile of C. Per
 * step of TILE_K it copies a TILE x TILE_K slab of op(A) and a TILE_K x TILE
 * slab of op(B) into local memory (each work-item four elements of each,
 * neighbouring work-items reading neighbouring addresses whatever the
 * transposition), waits at a barrier, and accumulates its 4 x 4 elements:
 * rows ty + 16 r and columns tx + 16 c of the tile, so that a row of
 * work-items stores 16 neighbouring columns. Elements past the edges of the
 * matrices load as zeros and are not stored.
 *
 * Split k (for products with few tiles of C and a long k, such as the weight
 * gradient of a convolution, 64 x 288 summed over 50,176 positions): the
 * third dimension of the grid cuts k into get_num_groups(2) chunks of
 * k_chunk (a multiple of TILE_K). With more than one chunk, each writes its
 * raw sums to part[chunk][m][n] and gemm_split_reduce adds them in chunk
 * order, then applies alpha, beta and the epilogue; with one, the tile is
 * finished here. Epilogue as in gemm.cl: epilogue & 1 adds bias[j] to
 * column j, then epilogue & 2 applies nncl_relu, then epilogue & 4 zeroes
 * C[i][j] unless mask[i][j] (laid out as C) is > 0.
 */

#define TILE 64
#define TILE_K 16
#define TILE_PAD 1 /* a row of local memory is TILE + 1 floats long: stores by columns spread over banks */

/* The finished value of C's element at (i, j) (with beta == 0, C is not read); C and mask point at row 0. */
float gemm_tiled_finish(float acc, float alpha, float beta, __global const float *C, ulong ldc, ulong i, ulong j,
                        int epilogue, __global const float *bias, __global const float *mask)
{
    const ulong at = i * ldc + j;
    const float v = beta == 0.0f ? alpha * acc : alpha * acc + beta * C[at];
    return nncl_gemm_epilogue(epilogue, v, epilogue & 1 ? bias[j] : 0.0f, epilogue & 4 ? mask[at] : 0.0f);
}

__kernel __attribute__((reqd_work_group_size(16, 16, 1))) void
gemm_tiled(__global float *C, ulong c_off, ulong ldc, __global const float *A, ulong a_off, ulong lda, int trans_a,
           __global const float *B, ulong b_off, ulong ldb, int trans_b, ulong m, ulong n, ulong k, ulong k_chunk,
           float alpha, float beta, __global const float *bias, ulong bias_off, __global const float *mask,
           ulong mask_off, int epilogue, __global float *part)
{
    __local float As[TILE_K][TILE + TILE_PAD]; /* As[p][i] = op(A)[i0 + i][p0 + p] */
    __local float Bs[TILE_K][TILE + TILE_PAD]; /* Bs[p][j] = op(B)[p0 + p][j0 + j] */
    const int tx = get_local_id(0), ty = get_local_id(1), tid = ty * 16 + tx;
    /* Row tiles from the global id: the host may queue a tall grid in bands offset in dimension 1. */
    const ulong j0 = get_group_id(0) * TILE, i0 = (get_global_id(1) - ty) / 16 * TILE;
    const ulong k_begin = get_group_id(2) * k_chunk, k_end = min(k, k_begin + k_chunk);
    A += a_off;
    B += b_off;
    float acc[4][4] = {{0.0f}};
    for (ulong p0 = k_begin; p0 < k_end; p0 += TILE_K) {
        for (int e = 0; e < 4; e++) {
            const int l = tid + 256 * e;
            /* op(A)[i][p]: A[i * lda + p], or A[p * lda + i] transposed; the fastest index follows the
               stored rows, so that neighbouring work-items read neighbouring floats. */
            const int ai = trans_a ? l % TILE : l / TILE_K, ap = trans_a ? l / TILE : l % TILE_K;
            const ulong gi = i0 + ai, gp = p0 + ap;
            As[ap][ai] = gi < m && gp < k_end ? A[trans_a ? gp * lda + gi : gi * lda + gp] : 0.0f;
            /* op(B)[p][j]: B[p * ldb + j], or B[j * ldb + p] transposed. */
            const int bj = trans_b ? l / TILE_K : l % TILE, bp = trans_b ? l % TILE_K : l / TILE;
            const ulong gj = j0 + bj, gq = p0 + bp;
            Bs[bp][bj] = gj < n && gq < k_end ? B[trans_b ? gj * ldb + gq : gq * ldb + gj] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int p = 0; p < TILE_K; p++) {
            float a[4], b[4];
            for (int r = 0; r < 4; r++) a[r] = As[p][ty + 16 * r];
            for (int c = 0; c < 4; c++) b[c] = Bs[p][tx + 16 * c];
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 4; c++) acc[r][c] = fma(a[r], b[c], acc[r][c]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const int split = get_num_groups(2) > 1;
    part += get_group_id(2) * m * n;
    for (int r = 0; r < 4; r++) {
        const ulong i = i0 + ty + 16 * r;
        if (i >= m) break;
        for (int c = 0; c < 4; c++) {
            const ulong j = j0 + tx + 16 * c;
            if (j >= n) break;
            if (split) part[i * n + j] = acc[r][c];
            else C[c_off + i * ldc + j] = gemm_tiled_finish(acc[r][c], alpha, beta, C + c_off, ldc, i, j, epilogue,
                                                            bias + bias_off, mask + mask_off);
        }
    }
}

/* C = alpha sum_z part[z] + beta C, then the epilogue: one work-item per element, columns fastest. */
__kernel void gemm_split_reduce(__global float *C, ulong c_off, ulong ldc, __global const float *part, ulong m,
                                ulong n, ulong splits, float alpha, float beta, __global const float *bias,
                                ulong bias_off, __global const float *mask, ulong mask_off, int epilogue)
{
    const ulong j = get_global_id(0), i = get_global_id(1);
    if (i >= m || j >= n) return;
    float acc = 0.0f;
    for (ulong z = 0; z < splits; z++) acc += part[(z * m + i) * n + j];
    C[c_off + i * ldc + j] = gemm_tiled_finish(acc, alpha, beta, C + c_off, ldc, i, j, epilogue, bias + bias_off,
                                               mask + mask_off);
}
