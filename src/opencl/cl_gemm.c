/*
 * cl_gemm.c - GEMM on OpenCL: CLBlast, or one of nncl's own kernels
 * (kernels_cl/gemm.cl's register blocks for CPUs, gemm_tiled.cl's
 * local-memory tiles for GPUs), whichever is fastest for the device and shape.
 *
 * On CPU devices gemm.cl serves every shape: CLBlast's kernels are not built
 * for them (2 to 15 times slower on PoCL, bench/bench_gemm), nor is the tiled
 * kernel (its barriers spill PoCL's accumulators), and even measuring them
 * costs seconds of compilation at startup. On other devices, each shape (m,
 * n, k, transpositions) is measured once: each implementation runs into a
 * scratch output, twice, timed around a finish, and the fastest is kept for
 * that shape from then on. A network measures its shapes when it is planned
 * (nncl__cl_gemm_prepare, called through the layers' prepare); a shape met
 * for the first time later (a direct nncl_gemm call, a smaller last batch) is
 * measured at its first call. NNCL_GEMM=clblast, nncl or tiled forces one;
 * NNCL_GEMM=measure measures on CPU devices too.
 * The choices are also kept in the cache folder (cl_choices.c), so later
 * processes on the same device and driver skip the measurement (and, on
 * PoCL, CLBlast's compilation).
 *
 * Why a tiled kernel of our own next to CLBlast: on an H100 (NVIDIA's OpenCL,
 * CLBlast 1.5.3 with no tuning for the card) CLBlast's GEMM spent 3.1 of the
 * 5.0 ms of device time of a CNN training step at batch 256. Its kernels tile
 * C only, so a product with few tiles of C and a long k (a convolution's
 * weight gradient: 64 x 288 summed over 50,176 positions) runs on a handful
 * of the card's 132 multiprocessors. gemm_tiled splits such a k over the
 * grid's third dimension (split_of) and adds the parts in a second kernel.
 *
 * Buffers go to CLBlast as (cl_mem, element offset) pairs, as they do to our
 * own kernels. CLBlast's indirect GEMM needs temporary matrices; we hand it a
 * buffer owned by the context (grown when a larger GEMM needs more) so that a
 * steady-state step allocates nothing. Calls are serialised by a process-wide
 * mutex: CLBlast 1.5 races when two threads trigger its first compilation for
 * a device at once.
 */
#include <clblast_c.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

#include "opencl/cl.h"

static once_flag clblast_once = ONCE_FLAG_INIT;
static mtx_t clblast_mutex;
static int clblast_mutex_ok;

static void clblast_mutex_init(void)
{
    clblast_mutex_ok = mtx_init(&clblast_mutex, mtx_plain) == thrd_success;
}

/* Name of a CLBlast status: its own codes, else an OpenCL error code. */
static const char *clblast_status_name(CLBlastStatusCode s)
{
    switch (s) {
    case CLBlastNotImplemented: return "CLBlastNotImplemented";
    case CLBlastInvalidMatrixA: return "CLBlastInvalidMatrixA";
    case CLBlastInvalidMatrixB: return "CLBlastInvalidMatrixB";
    case CLBlastInvalidMatrixC: return "CLBlastInvalidMatrixC";
    case CLBlastInvalidVectorX: return "CLBlastInvalidVectorX";
    case CLBlastInvalidVectorY: return "CLBlastInvalidVectorY";
    case CLBlastInvalidDimension: return "CLBlastInvalidDimension";
    case CLBlastInvalidLeadDimA: return "CLBlastInvalidLeadDimA";
    case CLBlastInvalidLeadDimB: return "CLBlastInvalidLeadDimB";
    case CLBlastInvalidLeadDimC: return "CLBlastInvalidLeadDimC";
    case CLBlastInvalidIncrementX: return "CLBlastInvalidIncrementX";
    case CLBlastInvalidIncrementY: return "CLBlastInvalidIncrementY";
    case CLBlastInsufficientMemoryA: return "CLBlastInsufficientMemoryA";
    case CLBlastInsufficientMemoryB: return "CLBlastInsufficientMemoryB";
    case CLBlastInsufficientMemoryC: return "CLBlastInsufficientMemoryC";
    case CLBlastInsufficientMemoryX: return "CLBlastInsufficientMemoryX";
    case CLBlastInsufficientMemoryY: return "CLBlastInsufficientMemoryY";
    case CLBlastInsufficientMemoryTemp: return "CLBlastInsufficientMemoryTemp";
    case CLBlastInvalidBatchCount: return "CLBlastInvalidBatchCount";
    case CLBlastInvalidOverrideKernel: return "CLBlastInvalidOverrideKernel";
    case CLBlastMissingOverrideParameter: return "CLBlastMissingOverrideParameter";
    case CLBlastInvalidLocalMemUsage: return "CLBlastInvalidLocalMemUsage";
    case CLBlastNoHalfPrecision: return "CLBlastNoHalfPrecision";
    case CLBlastNoDoublePrecision: return "CLBlastNoDoublePrecision";
    case CLBlastInvalidVectorScalar: return "CLBlastInvalidVectorScalar";
    case CLBlastInsufficientMemoryScalar: return "CLBlastInsufficientMemoryScalar";
    case CLBlastDatabaseError: return "CLBlastDatabaseError";
    case CLBlastUnknownError: return "CLBlastUnknownError";
    case CLBlastUnexpectedError: return "CLBlastUnexpectedError";
    default: return nncl__cl_error_name((cl_int)s);
    }
}

static nncl_status clblast_fail(nncl_context *ctx, CLBlastStatusCode s, const char *what, const nncl_gemm_args *g,
                                const char *file, int line)
{
    return nncl__error(ctx, NNCL_ERR_CLBLAST, file, line, "%s(m=%zu, n=%zu, k=%zu) failed: %s (%d)", what, g->m,
                       g->n, g->k, clblast_status_name(s), (int)s);
}

/* CLBlast's offsets are 32-bit: larger ones go to nncl's kernel, whatever the shape's choice. */
static int clblast_takes(const nncl_gemm_args *g)
{
    return g->a_off <= INT32_MAX && g->b_off <= INT32_MAX && g->c_off <= INT32_MAX;
}

static int has_epilogue(const nncl_gemm_args *g)
{
    return g->bias != NULL || g->relu || g->mask != NULL;
}

/* Checked before CLBlast writes C: the passes below take C as one dense vector. */
static nncl_status epilogue_apart_check(nncl_context *ctx, const nncl_gemm_args *g)
{
    if (has_epilogue(g) && g->ldc != g->n) /* the layers that ask for an epilogue write C densely */
        return NNCL_ERROR(ctx, NNCL_ERR_UNSUPPORTED, "a GEMM epilogue after CLBlast needs ldc (%zu) = n (%zu)",
                          g->ldc, g->n);
    return NNCL_OK;
}

/* The epilogue as passes of their own over C, for CLBlast, which has none. */
static nncl_status epilogue_apart(nncl_context *ctx, const nncl_gemm_args *g)
{
    if (!has_epilogue(g)) return NNCL_OK;
    const int64_t elems = (int64_t)(g->m * g->n);
    const nncl_tensor c = {.buf = g->c, .offset = g->c_off, .ndim = 1, .shape = {elems}};
    if (g->bias != NULL) {
        const nncl_tensor bias = {.buf = (nncl_buffer *)g->bias, .offset = g->bias_off, .ndim = 1,
                                  .shape = {(int64_t)g->n}};
        NNCL_TRY(nncl__cl_bias_add(ctx, &c, &bias, (int64_t)g->m, (int64_t)g->n, 1, g->relu));
    } else if (g->relu) {
        NNCL_TRY(nncl__cl_activation_forward(ctx, &c, &c, NNCL_ACT_RELU, 0.0f));
    }
    if (g->mask == NULL) return NNCL_OK;
    const nncl_tensor mask = {.buf = (nncl_buffer *)g->mask, .offset = g->mask_off, .ndim = 1, .shape = {elems}};
    return nncl__cl_activation_backward(ctx, &c, &mask, &mask, &c, NNCL_ACT_RELU, 0.0f); /* in place */
}

static nncl_status gemm_clblast(nncl_context *ctx, const nncl_gemm_args *g)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    const CLBlastLayout layout = CLBlastLayoutRowMajor;
    const CLBlastTranspose ta = g->trans_a ? CLBlastTransposeYes : CLBlastTransposeNo;
    const CLBlastTranspose tb = g->trans_b ? CLBlastTransposeYes : CLBlastTransposeNo;

    if (!clblast_takes(g))
        return NNCL_ERROR(ctx, NNCL_ERR_UNSUPPORTED,
                          "CLBlast takes element offsets below 2^31; got A %zu, B %zu, C %zu", g->a_off, g->b_off,
                          g->c_off);
    NNCL_TRY(epilogue_apart_check(ctx, g));
    size_t temp_bytes = 0;
    CLBlastStatusCode s = CLBlastSGemmTempBufferSize(layout, ta, tb, g->m, g->n, g->k, g->a_off, g->lda, g->b_off,
                                                     g->ldb, g->c_off, g->ldc, &cl->queue, &temp_bytes);
    if (s != CLBlastSuccess) return clblast_fail(ctx, s, "CLBlastSGemmTempBufferSize", g, __FILE__, __LINE__);
    /* CLBlast wants a valid buffer even when it needs no temporary space. */
    if (cl->gemm_temp == NULL || temp_bytes > cl->gemm_temp_bytes) {
        size_t bytes = temp_bytes > 4096 ? temp_bytes : 4096;
        nncl__cl_free(ctx, &cl->gemm_temp, cl->gemm_temp_bytes);
        cl->gemm_temp_bytes = 0;
        NNCL_TRY(nncl__cl_alloc(ctx, bytes, &cl->gemm_temp));
        cl->gemm_temp_bytes = bytes;
    }

    call_once(&clblast_once, clblast_mutex_init);
    if (!clblast_mutex_ok) return NNCL_ERROR(ctx, NNCL_ERR_CLBLAST, "could not create the CLBlast mutex");
    cl_event ev = NULL;
    mtx_lock(&clblast_mutex);
    s = CLBlastSgemmWithTempBuffer(layout, ta, tb, g->m, g->n, g->k, g->alpha, (cl_mem)g->a->mem, g->a_off, g->lda,
                                   (cl_mem)g->b->mem, g->b_off, g->ldb, g->beta, (cl_mem)g->c->mem, g->c_off,
                                   g->ldc, &cl->queue, ctx->profiling ? &ev : NULL, cl->gemm_temp);
    mtx_unlock(&clblast_mutex);
    if (s != CLBlastSuccess) return clblast_fail(ctx, s, "CLBlastSgemm", g, __FILE__, __LINE__);
    ctx->stats.gemm_calls++;
    if (ev != NULL) NNCL_TRY(nncl__cl_profile_event(ctx, ev, "clblast_sgemm"));
    return epilogue_apart(ctx, g);
}

/* ---- nncl's own kernel ------------------------------------------------------------------ */

/* The epilogue's kernel arguments, as gemm.cl and gemm_tiled.cl take them: the bias and the mask (each C,
   unread, when there is none) and the flags (1: add the bias, 2: relu, 4: the mask). */
static void arg_epilogue(nncl__cl_args *a, const nncl_gemm_args *g)
{
    if (g->bias != NULL) nncl__cl_arg_view(a, g->bias, g->bias_off);
    else nncl__cl_arg_view(a, g->c, 0);
    if (g->mask != NULL) nncl__cl_arg_view(a, g->mask, g->mask_off);
    else nncl__cl_arg_view(a, g->c, 0);
    nncl__cl_arg_i32(a, (g->bias != NULL) | (g->relu ? 2 : 0) | (g->mask != NULL ? 4 : 0));
}

#define GEMM_MR 6  /* rows per work-item: GEMM_MR in kernels_cl/gemm.cl */
#define GEMM_NR 16 /* columns per work-item: 2 GEMM_V in kernels_cl/gemm.cl */

/* Transposes the rows x cols matrix at (src, off, ld) into scratch slot `slot`, dense cols x rows. */
static nncl_status transpose_to_scratch(nncl_context *ctx, int slot, const nncl_buffer *src, size_t off, size_t ld,
                                        size_t rows, size_t cols, cl_mem *out)
{
    const nncl__cl_kernel *kt;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "gemm_transpose", &kt));
    NNCL_TRY(nncl__cl_scratch(ctx, slot, rows * cols * sizeof(float), out));
    nncl__cl_args t = nncl__cl_args_begin(ctx, kt);
    nncl__cl_arg_mem(&t, *out);
    nncl__cl_arg_u64(&t, 0);
    nncl__cl_arg_view(&t, src, off);
    nncl__cl_arg_u64(&t, ld);
    nncl__cl_arg_u64(&t, rows);
    nncl__cl_arg_u64(&t, cols);
    return nncl__cl_launch_1d(&t, cols); /* one work-item per row of the result */
}

/*
 * Whether to compute C as its transpose C^T = op(B)^T op(A)^T, stored
 * transposed. The kernel wants its right operand k x n with rows contiguous,
 * so a right operand stored the other way is copied transposed first: C
 * copies B when trans_b, C^T copies A unless trans_a, and pays a scalar
 * store per element of C. A side narrower than one block of columns would
 * run on the kernel's scalar edge path, so it goes on the left.
 */
static int compute_transposed(const nncl_gemm_args *g)
{
    if (g->n < GEMM_NR) return g->m >= GEMM_NR;
    if (g->m < GEMM_NR) return 0;
    const size_t copy_c = g->trans_b ? g->n * g->k : 0, copy_ct = (g->trans_a ? 0 : g->m * g->k) + g->m * g->n;
    return copy_ct < copy_c;
}

/* Runs gemm_block, on C or on C^T (compute_transposed), copying a transposed right operand first. */
static nncl_status gemm_nncl(nncl_context *ctx, const nncl_gemm_args *g)
{
    nncl_gemm_args s = *g;
    int trans_c = 0;
    if (compute_transposed(g)) {
        trans_c = 1;
        s.m = g->n, s.n = g->m;
        s.a = g->b, s.a_off = g->b_off, s.lda = g->ldb, s.trans_a = g->trans_b ? NNCL_NO_TRANS : NNCL_TRANS;
        s.b = g->a, s.b_off = g->a_off, s.ldb = g->lda, s.trans_b = g->trans_a ? NNCL_NO_TRANS : NNCL_TRANS;
    }
    cl_mem b = (cl_mem)s.b->mem;
    size_t b_off = s.b_off, ldb = s.ldb;
    if (s.trans_b) { /* B is stored n x k: make it k x n */
        NNCL_TRY(transpose_to_scratch(ctx, 3, s.b, s.b_off, s.ldb, s.n, s.k, &b));
        b_off = 0;
        ldb = s.n;
    }
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "gemm_block", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_view(&a, g->c, g->c_off);
    nncl__cl_arg_u64(&a, g->ldc);
    nncl__cl_arg_i32(&a, trans_c);
    nncl__cl_arg_view(&a, s.a, s.a_off);
    nncl__cl_arg_u64(&a, s.lda);
    nncl__cl_arg_i32(&a, s.trans_a == NNCL_TRANS);
    nncl__cl_arg_mem(&a, b);
    nncl__cl_arg_u64(&a, b_off);
    nncl__cl_arg_u64(&a, ldb);
    nncl__cl_arg_u64(&a, s.m);
    nncl__cl_arg_u64(&a, s.n);
    nncl__cl_arg_u64(&a, s.k);
    nncl__cl_arg_f32(&a, g->alpha);
    nncl__cl_arg_f32(&a, g->beta);
    arg_epilogue(&a, g);
    const size_t global[2] = {(s.n + GEMM_NR - 1) / GEMM_NR, (s.m + GEMM_MR - 1) / GEMM_MR};
    /* A work-group is a column of row blocks: they share one block of B, which stays in cache. */
    const size_t local[2] = {1, 16};
    NNCL_TRY(nncl__cl_launch(&a, 2, global, local));
    ctx->stats.gemm_calls++;
    return NNCL_OK;
}

/* ---- the tiled kernel, for GPUs ------------------------------------------------------------ */

#define TILE 64   /* TILE in kernels_cl/gemm_tiled.cl */
#define TILE_K 16 /* TILE_K in kernels_cl/gemm_tiled.cl */

/*
 * How many chunks gemm_tiled cuts k into: enough work-groups for two per
 * compute unit, each chunk at least 256 long (so that a chunk's sums
 * outweigh writing and re-reading its partial C), and the partial results
 * within 64 MiB. One chunk when the tiles of C alone fill the device.
 */
static size_t split_of(const nncl__cl *cl, const nncl_gemm_args *g, size_t *k_chunk)
{
    const size_t tiles = ((g->m + TILE - 1) / TILE) * ((g->n + TILE - 1) / TILE);
    const size_t want = 2 * (size_t)(cl->compute_units ? cl->compute_units : 1);
    size_t splits = tiles >= want ? 1 : (want + tiles - 1) / tiles;
    if (splits > g->k / 256) splits = g->k / 256;
    const size_t max_parts = ((size_t)64 << 20) / sizeof(float) / (g->m * g->n); /* m, n, k >= 1 (nncl_gemm) */
    if (splits > max_parts) splits = max_parts;
    if (splits < 1) splits = 1;
    *k_chunk = ((g->k + splits - 1) / splits + TILE_K - 1) / TILE_K * TILE_K;
    return (g->k + *k_chunk - 1) / *k_chunk; /* rounding the chunk up may leave fewer */
}

static nncl_status gemm_tiled(nncl_context *ctx, const nncl_gemm_args *g)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    size_t k_chunk;
    const size_t splits = split_of(cl, g, &k_chunk);
    cl_mem part = (cl_mem)g->c->mem; /* not written with one chunk */
    if (splits > 1) NNCL_TRY(nncl__cl_scratch(ctx, 3, splits * g->m * g->n * sizeof(float), &part));
    const nncl__cl_kernel *k;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "gemm_tiled", &k));
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_view(&a, g->c, g->c_off);
    nncl__cl_arg_u64(&a, g->ldc);
    nncl__cl_arg_view(&a, g->a, g->a_off);
    nncl__cl_arg_u64(&a, g->lda);
    nncl__cl_arg_i32(&a, g->trans_a == NNCL_TRANS);
    nncl__cl_arg_view(&a, g->b, g->b_off);
    nncl__cl_arg_u64(&a, g->ldb);
    nncl__cl_arg_i32(&a, g->trans_b == NNCL_TRANS);
    nncl__cl_arg_u64(&a, g->m);
    nncl__cl_arg_u64(&a, g->n);
    nncl__cl_arg_u64(&a, g->k);
    nncl__cl_arg_u64(&a, k_chunk);
    nncl__cl_arg_f32(&a, g->alpha);
    nncl__cl_arg_f32(&a, g->beta);
    arg_epilogue(&a, g);
    nncl__cl_arg_mem(&a, part);
    const size_t global[3] = {(g->n + TILE - 1) / TILE * 16, (g->m + TILE - 1) / TILE * 16, splits};
    const size_t local[3] = {16, 16, 1};
    NNCL_TRY(nncl__cl_launch(&a, 3, global, local));
    ctx->stats.gemm_calls++;
    if (splits == 1) return NNCL_OK;
    const nncl__cl_kernel *kr;
    NNCL_TRY(nncl__cl_kernel_get(ctx, "gemm_split_reduce", &kr));
    nncl__cl_args r = nncl__cl_args_begin(ctx, kr);
    nncl__cl_arg_view(&r, g->c, g->c_off);
    nncl__cl_arg_u64(&r, g->ldc);
    nncl__cl_arg_mem(&r, part);
    nncl__cl_arg_u64(&r, g->m);
    nncl__cl_arg_u64(&r, g->n);
    nncl__cl_arg_u64(&r, splits);
    nncl__cl_arg_f32(&r, g->alpha);
    nncl__cl_arg_f32(&r, g->beta);
    arg_epilogue(&r, g);
    const size_t rglobal[2] = {g->n, g->m}, rlocal[2] = {NNCL_CL_WG, 1};
    return nncl__cl_launch(&r, 2, rglobal, rlocal);
}

/* ---- choosing per shape ------------------------------------------------------------------ */

/* Seconds for `reps` runs of one implementation into the scratch output `probe`. */
typedef nncl_status (*gemm_impl)(nncl_context *, const nncl_gemm_args *);

static nncl_status time_gemm(nncl_context *ctx, gemm_impl impl, const nncl_gemm_args *probe, int reps,
                             double *seconds)
{
    NNCL_TRY(ctx->ops->finish(ctx));
    const double t0 = nncl__cl_now();
    for (int r = 0; r < reps; r++) NNCL_TRY(impl(ctx, probe));
    NNCL_TRY(ctx->ops->finish(ctx));
    *seconds = nncl__cl_now() - t0;
    return NNCL_OK;
}

static const gemm_impl IMPLS[NNCL_CL_GEMM_KINDS] = {gemm_clblast, gemm_nncl, gemm_tiled};

/*
 * Measures every implementation on this shape (the first run of each excluded: compilation). CLBlast
 * may fail on a shape (its kernel does not build, say), and the tiled kernel on a device that cannot
 * run its 256 work-items per group: the others serve it, and the failure, handled here, is not the
 * caller's. gemm.cl must work. A candidate out of memory counts in measured_oom: the choice may be
 * another when memory is free again.
 */
static nncl_status measure(nncl_context *ctx, const nncl_gemm_args *g, int *impl)
{
    cl_mem out;
    NNCL_TRY(nncl__cl_scratch(ctx, 4, g->m * g->ldc * sizeof(float), &out));
    nncl_buffer holder = {.ctx = ctx, .bytes = g->m * g->ldc * sizeof(float), .mem = out};
    nncl_gemm_args probe = *g;
    probe.c = &holder;
    probe.c_off = 0;
    probe.beta = 0.0f;
    const uint64_t calls = ctx->stats.gemm_calls, launches = ctx->stats.kernel_launches;
    nncl_status st = NNCL_OK;
    double best = 0.0;
    *impl = NNCL_CL_GEMM_BLOCK;
    nncl__error_mark mark = nncl__error_mark_save(ctx);
    for (int i = 0; i < NNCL_CL_GEMM_KINDS && st == NNCL_OK; i++) {
        double warm, t;
        nncl_status run = time_gemm(ctx, IMPLS[i], &probe, 1, &warm);
        if (run == NNCL_OK) run = time_gemm(ctx, IMPLS[i], &probe, 2, &t);
        if (run != NNCL_OK && i == NNCL_CL_GEMM_BLOCK) st = run;
        else if (run == NNCL_ERR_OUT_OF_MEMORY) nncl__cl_state(ctx)->measured_oom++; /* may pass: no verdict */
        else if (run == NNCL_OK && (best == 0.0 || t < best)) best = t, *impl = i;
    }
    if (st == NNCL_OK) nncl__error_mark_restore(ctx, &mark); /* the others' failures are not the caller's */
    else nncl__error_mark_drop(&mark);
    /* The probe's output is as large as C (a convolution's whole column matrix, when a plan measures its
       input gradient): not held for the life of the context. */
    nncl__cl_scratch_release(ctx, 4);
    ctx->stats.gemm_calls = calls; /* the probes are not the caller's work */
    ctx->stats.kernel_launches = launches;
    return st;
}

/* The implementation, unmeasured, for a GEMM that CLBlast cannot take: the tiled kernel with GPU shapes where
   the device runs its work-groups, else gemm.cl. */
static int without_clblast(const nncl__cl *cl)
{
    return cl->gpu_shapes && cl->max_work_group_size >= NNCL_CL_TILED_ITEMS ? NNCL_CL_GEMM_TILED : NNCL_CL_GEMM_BLOCK;
}

/*
 * The implementation for g's shape (an NNCL_CL_GEMM_*): forced by NNCL_GEMM,
 * the CPU devices' default, a choice remembered from this or an earlier
 * process, or else measured now and remembered.
 */
static nncl_status choose(nncl_context *ctx, const nncl_gemm_args *g, int *impl)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    if (cl->gemm_policy == 2) {
        *impl = cl->gemm_forced;
        return NNCL_OK;
    }
    /* On CPU devices CLBlast lost every shape measured, by 2 to 15 times, and timing it costs its
       compilation (seconds per kernel on PoCL): gemm.cl serves them without a measurement. */
    if (cl->gemm_policy == 0 && cl->cpu_device) {
        *impl = NNCL_CL_GEMM_BLOCK;
        return NNCL_OK;
    }
    const int64_t key[5] = {(int64_t)g->m, (int64_t)g->n, (int64_t)g->k, g->trans_a, g->trans_b};
    NNCL_TRY(nncl__cl_choice_find(ctx, &cl->gemm_choices, key, impl));
    if (*impl >= 0 && *impl < NNCL_CL_GEMM_KINDS) return NNCL_OK;
    if (!clblast_takes(g)) { /* a choice without CLBlast would be remembered for every offset: none made */
        *impl = without_clblast(cl);
        return NNCL_OK;
    }
    const uint64_t oom = cl->measured_oom;
    NNCL_TRY(measure(ctx, g, impl));
    return nncl__cl_choice_add(ctx, &cl->gemm_choices, key, *impl, cl->measured_oom == oom);
}

nncl_status nncl__cl_gemm(nncl_context *ctx, const nncl_gemm_args *g)
{
    int impl;
    NNCL_TRY(choose(ctx, g, &impl));
    if (impl == NNCL_CL_GEMM_CLBLAST && !clblast_takes(g)) /* CLBlast's offsets are 32-bit */
        impl = without_clblast(nncl__cl_state(ctx));
    return IMPLS[impl](ctx, g);
}

nncl_status nncl__cl_gemm_prepare(nncl_context *ctx, const nncl_gemm_args *g)
{
    int impl;
    return choose(ctx, g, &impl);
}
