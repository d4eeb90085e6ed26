/*
 * backend.h - the op table that every backend fills.
 *
 * A backend is a table of function pointers plus the state it keeps in
 * ctx->impl. There are two: the plain-C CPU reference (src/cpu) and OpenCL
 * (src/opencl). The public entry points in src/core validate every argument
 * (NULLs, shapes, extents inside buffers) before they call an entry here, so
 * a backend may assume well-formed input and only reports failures of its own
 * runtime (an OpenCL call, an allocation).
 *
 * Conventions for every entry:
 *   - ctx comes first, then outputs, then inputs, then sizes and scalars.
 *   - Tensors are views: (buffer, element offset, shape). A backend turns a
 *     view into memory in exactly one place (nncl__cpu_ptr, nncl__cl_arg_view).
 *   - Entries queue work and return without waiting, except `read`, `write`
 *     and `finish`, the only places the host waits.
 *   - Each kernel queued (CPU: each operation run) increments
 *     ctx->stats.kernel_launches; each GEMM increments ctx->stats.gemm_calls.
 */
#ifndef NNCL_BACKEND_H
#define NNCL_BACKEND_H

#include "internal.h"

/* Arguments of a row-major GEMM: C = alpha * op(A) * op(B) + beta * C. */
typedef struct nncl_gemm_args {
    nncl_transpose trans_a, trans_b;
    size_t m, n, k;       /* op(A) is m x k, op(B) is k x n, C is m x n */
    float alpha, beta;    /* beta == 0: C is overwritten, never read */
    const nncl_buffer *a; /* A starts at element a_off, rows lda apart */
    size_t a_off, lda;
    const nncl_buffer *b; /* B starts at element b_off, rows ldb apart */
    size_t b_off, ldb;
    nncl_buffer *c;       /* C starts at element c_off, rows ldc apart */
    size_t c_off, ldc;
} nncl_gemm_args;

typedef struct nncl_backend_ops {
    const char *name; /* "cpu" or "opencl" */

    /* Waits for queued work and releases everything in ctx->impl. */
    void (*destroy)(nncl_context *ctx);

    /* ---- memory ---- */

    /* Allocates buf->bytes bytes into buf->mem. Counts one device allocation
       and adds to device_bytes_live, as every allocation the backend makes for
       itself (scratch memory) also does. */
    nncl_status (*buffer_alloc)(nncl_context *ctx, nncl_buffer *buf);
    /* Releases buf->mem (queued work that uses it completes first) and
       subtracts it from device_bytes_live. */
    void (*buffer_release)(nncl_context *ctx, nncl_buffer *buf);
    /* Copies bytes from host memory; returns when src may be reused. */
    nncl_status (*write)(nncl_context *ctx, nncl_buffer *dst, size_t dst_byte_off,
                         const void *src, size_t bytes);
    /* Copies bytes to host memory after all queued work; a host wait. */
    nncl_status (*read)(nncl_context *ctx, const nncl_buffer *src, size_t src_byte_off,
                        void *dst, size_t bytes);
    /* Device-to-device copy of non-overlapping ranges. Queued. */
    nncl_status (*copy)(nncl_context *ctx, nncl_buffer *dst, size_t dst_byte_off,
                        const nncl_buffer *src, size_t src_byte_off, size_t bytes);
    /* Blocks until all queued work has finished; a host wait. */
    nncl_status (*finish)(nncl_context *ctx);

    /* ---- ops (all queued) ---- */

    /* x[i] = value for every element of x. */
    nncl_status (*fill)(nncl_context *ctx, const nncl_tensor *x, float value);
    /* x[i] = alpha * x[i]. */
    nncl_status (*scale)(nncl_context *ctx, const nncl_tensor *x, float alpha);
    /* y[i] = alpha * x[i] + y[i]; x and y have the same element count. */
    nncl_status (*axpy)(nncl_context *ctx, const nncl_tensor *y, float alpha,
                        const nncl_tensor *x);
    /* out[0] = sum of x, in a fixed order for a given size. */
    nncl_status (*sum)(nncl_context *ctx, const nncl_tensor *out, const nncl_tensor *x);
    /* See nncl_gemm_args. */
    nncl_status (*gemm)(nncl_context *ctx, const nncl_gemm_args *args);
} nncl_backend_ops;

#endif /* NNCL_BACKEND_H */
