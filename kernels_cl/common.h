/*
 * common.h - prepended to every kernels_cl/<op>.cl before it is compiled.
 * It holds defaults and helpers and no kernels.
 *
 * Conventions of every kernel:
 *   - A tensor is passed as two arguments: (global float *x, ulong x_off),
 *     the buffer and the element offset where the view starts.
 *   - Element counts are explicit ulong arguments, and every kernel guards
 *     its tail (`if (i >= n) return;`), because the host rounds the global
 *     size up to a multiple of the local size.
 *   - OpenCL C 1.2, no fast-math: results must be reproducible and comparable
 *     with the CPU reference.
 */

/* No contraction of a * b + c into fma: kernels must round exactly as written,
   so that the CPU reference can reproduce them bit for bit where promised. */
#pragma OPENCL FP_CONTRACT OFF

/* The default work-group size of one-dimensional element-wise kernels. */
#ifndef NNCL_WG
#define NNCL_WG 64
#endif

/*
 * The index of this work-item, and of its work-group, in a one-dimensional
 * launch. A kernel queued in one dimension uses these, never get_global_id(0)
 * or get_group_id(0): the host (nncl__cl_launch) folds a grid of
 * NNCL_CL_FOLD work-items or more into rows of a second dimension. PoCL
 * compiles each kernel for grids narrower than 65,535 in every dimension
 * (its "smallgrid" specialisation) and once more for any wider, so without
 * the fold a kernel launched on both a small and a large tensor is compiled
 * twice. In an unfolded launch get_global_id(1) and get_group_id(1) are 0.
 */
#define NNCL_GID() (get_global_id(1) * get_global_size(0) + get_global_id(0))
#define NNCL_GROUP() (get_group_id(1) * get_num_groups(0) + get_group_id(0))

/*
 * Elements per work-item of the streaming element-wise kernels, set by the
 * host per device (-DNNCL_EW; launched with nncl__cl_launch_ew). On CPU
 * devices (32) a work-item per element costs more in scheduling than the
 * element's work, and a short contiguous run per work-item is a loop the
 * compiler vectorises; GPUs (1) want neighbouring work-items on neighbouring
 * elements. NNCL_EW_RANGE(n) declares the run [i0, i1) of this work-item, or
 * returns.
 */
#ifndef NNCL_EW
#define NNCL_EW 1
#endif

/*
 * The body of kernels instantiated per value of a constant (activation_*,
 * loss_*, optimizer_step_*, conv_weight_grad_few_*): inlined into every
 * instantiation when the program is built, so that each copy folds its
 * constant and unrolls its loops then, and with no generic copy of its own,
 * which could not unroll them ("loop not unrolled" in the build log).
 */
#define NNCL_INSTANTIATED static __attribute__((always_inline))

/*
 * NNCL_NO_AUTOVEC goes before a loop that clang's loop vectoriser should
 * leave alone: one whose body is written in vector types already (the GEMM's
 * and the convolutions' register blocks, the pooling's float4 lanes), a
 * scalar edge loop of such a kernel, or a loop over one row of a loss's few
 * class scores. PoCL runs the vectoriser when a kernel is first launched, and
 * on such loops it spent up to 0.4 s per kernel for no faster code
 * (pool2d_backward_max2 took 0.65 s to compile, 0.25 s without; the loss
 * step 0.3 s, 0.2 s without). The streaming kernels' plain loops keep it: it
 * is what makes their code SIMD. Compilers without clang's loop pragmas
 * ignore it.
 */
#ifdef __clang__
#define NNCL_NO_AUTOVEC _Pragma("clang loop vectorize(disable)")
#else
#define NNCL_NO_AUTOVEC
#endif

/* relu as every kernel rounds it, fused or not: x if x > 0, else +0 (NaN and -0 included). */
float nncl_relu(float x)
{
    return x > 0.0f ? x : 0.0f;
}

/* The epilogue of one element of a GEMM's C, given its column's bias and its element of the mask (gemm.cl,
   gemm_tiled.cl): epilogue & 1 adds the bias, then epilogue & 2 applies nncl_relu, then epilogue & 4 zeroes
   the element unless the mask's is > 0 (the backward of the relu whose output the mask is). */
float nncl_gemm_epilogue(int epilogue, float v, float bias, float mask)
{
    if (epilogue & 1) v += bias;
    if (epilogue & 2) v = nncl_relu(v);
    return epilogue & 4 && !(mask > 0.0f) ? 0.0f : v;
}

/*
 * The register block of nncl's GEMM and direct convolutions (gemm.cl,
 * conv2d.cl): six rows of two vectors, c00 c01 .. c50 c51, which fill
 * AVX2's sixteen registers with the two vectors of the right operand and a
 * broadcast. One reduction step multiplies six scalars a0 .. a5 (one per
 * row) into the two vectors b0, b1.
 */
#define NNCL_BLOCK_ZERO(type)                                                                                      \
    type c00 = 0.0f, c01 = 0.0f, c10 = 0.0f, c11 = 0.0f, c20 = 0.0f, c21 = 0.0f, c30 = 0.0f, c31 = 0.0f,           \
         c40 = 0.0f, c41 = 0.0f, c50 = 0.0f, c51 = 0.0f
#define NNCL_BLOCK_FMA(a0, a1, a2, a3, a4, a5, b0, b1)                                                             \
    (c00 = fma(a0, b0, c00), c01 = fma(a0, b1, c01), c10 = fma(a1, b0, c10), c11 = fma(a1, b1, c11),               \
     c20 = fma(a2, b0, c20), c21 = fma(a2, b1, c21), c30 = fma(a3, b0, c30), c31 = fma(a3, b1, c31),               \
     c40 = fma(a4, b0, c40), c41 = fma(a4, b1, c41), c50 = fma(a5, b0, c50), c51 = fma(a5, b1, c51))
#define NNCL_EW_RANGE(n)                                                                                           \
    const ulong i0 = NNCL_GID() * NNCL_EW;                                                                         \
    if (i0 >= (n)) return;                                                                                         \
    const ulong i1 = min(i0 + NNCL_EW, (ulong)(n))

/*
 * Philox4x32-10, the counter-based generator of src/core/rng.c, word for word:
 * a uniform float in [0, 1) with 24 random bits for element `index` under the
 * key (seed, step, layer). Counter = (index, layer, step low, step high).
 */
float nncl_rng_uniform(ulong seed, ulong step, uint layer, uint index)
{
    uint c0 = index, c1 = layer, c2 = (uint)step, c3 = (uint)(step >> 32);
    uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint hi0 = mul_hi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        uint hi1 = mul_hi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return (float)(c0 >> 8) * 0x1p-24f;
}

/* Kahan-compensated running sum: sum + c carries about twice float's precision. */
typedef struct nncl_kahan {
    float sum, c;
} nncl_kahan;

void nncl_kahan_add(nncl_kahan *k, float v)
{
    float y = v - k->c;
    float t = k->sum + y;
    k->c = (t - k->sum) - y;
    k->sum = t;
}

/*
 * Sum of v over a one-dimensional work-group of NNCL_WG work-items, by a tree
 * in local memory (a fixed order, so the result is reproducible). Every
 * work-item of the group must call it; all of them receive the sum.
 */
float nncl_group_sum(float v, __local float *scratch)
{
    const uint lid = get_local_id(0);
    scratch[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint step = NNCL_WG / 2; step > 0; step >>= 1) {
        if (lid < step) scratch[lid] += scratch[lid + step];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float total = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE); /* scratch may be reused right after */
    return total;
}
