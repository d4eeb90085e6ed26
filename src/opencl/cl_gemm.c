/*
 * cl_gemm.c - GEMM on OpenCL through CLBlast.
 *
 * Buffers go to CLBlast as (cl_mem, element offset) pairs, as they do to our
 * own kernels. CLBlast's indirect GEMM needs temporary matrices; we hand it a
 * buffer owned by the context (grown when a larger GEMM needs more) so that a
 * steady-state step allocates nothing. Calls are serialised by a process-wide
 * mutex: CLBlast 1.5 races when two threads trigger its first compilation for
 * a device at once.
 */
#include <clblast_c.h>
#include <stdint.h>
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

nncl_status nncl__cl_gemm(nncl_context *ctx, const nncl_gemm_args *g)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    const CLBlastLayout layout = CLBlastLayoutRowMajor;
    const CLBlastTranspose ta = g->trans_a ? CLBlastTransposeYes : CLBlastTransposeNo;
    const CLBlastTranspose tb = g->trans_b ? CLBlastTransposeYes : CLBlastTransposeNo;

    if (g->a_off > INT32_MAX || g->b_off > INT32_MAX || g->c_off > INT32_MAX)
        return NNCL_ERROR(ctx, NNCL_ERR_UNSUPPORTED,
                          "CLBlast takes element offsets below 2^31; got A %zu, B %zu, C %zu", g->a_off, g->b_off,
                          g->c_off);
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
    return NNCL_OK;
}
