/*
 * cpu_backend.c - the CPU reference backend: memory, ordering and its op table.
 *
 * Everything runs synchronously on the calling thread, so "queued" work is
 * already done when a call returns and finish has nothing to wait for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/cpu.h"

#define CPU_ALIGN 64

static uint64_t now_ns(void)
{
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t nncl__cpu_op_begin(const nncl_context *ctx)
{
    return ctx->profiling ? now_ns() : 0;
}

nncl_status nncl__cpu_op_end(nncl_context *ctx, const char *name, uint64_t start_ns)
{
    ctx->stats.kernel_launches++;
    if (!ctx->profiling) return NNCL_OK;
    return nncl__profile_add(ctx, name, now_ns() - start_ns);
}

static void cpu_destroy(nncl_context *ctx)
{
    (void)ctx; /* the CPU backend keeps no state of its own */
}

static nncl_status cpu_buffer_alloc(nncl_context *ctx, nncl_buffer *buf)
{
    size_t bytes = (buf->bytes + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    buf->mem = aligned_alloc(CPU_ALIGN, bytes ? bytes : CPU_ALIGN);
    if (buf->mem == NULL)
        return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "aligned_alloc(%zu bytes) failed", bytes);
    ctx->stats.device_allocs++;
    ctx->stats.device_bytes_live += buf->bytes;
    return NNCL_OK;
}

static void cpu_buffer_release(nncl_context *ctx, nncl_buffer *buf)
{
    free(buf->mem);
    buf->mem = NULL;
    ctx->stats.device_bytes_live -= buf->bytes;
}

static nncl_status cpu_write(nncl_context *ctx, nncl_buffer *dst, size_t off, const void *src, size_t bytes)
{
    (void)ctx;
    memcpy((char *)dst->mem + off, src, bytes);
    return NNCL_OK;
}

static nncl_status cpu_read(nncl_context *ctx, const nncl_buffer *src, size_t off, void *dst, size_t bytes)
{
    ctx->stats.host_waits++;
    memcpy(dst, (const char *)src->mem + off, bytes);
    return NNCL_OK;
}

static nncl_status cpu_copy(nncl_context *ctx, nncl_buffer *dst, size_t dst_off, const nncl_buffer *src,
                            size_t src_off, size_t bytes)
{
    (void)ctx;
    memcpy((char *)dst->mem + dst_off, (const char *)src->mem + src_off, bytes);
    return NNCL_OK;
}

static nncl_status cpu_finish(nncl_context *ctx)
{
    ctx->stats.host_waits++;
    return NNCL_OK;
}

static const nncl_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_release = cpu_buffer_release,
    .write = cpu_write,
    .read = cpu_read,
    .copy = cpu_copy,
    .finish = cpu_finish,
    .fill = nncl__cpu_fill,
    .scale = nncl__cpu_scale,
    .axpy = nncl__cpu_axpy,
    .sum = nncl__cpu_sum,
    .gemm = nncl__cpu_gemm,
};

nncl_status nncl__cpu_backend_init(nncl_context *ctx, const nncl_context_options *opt)
{
    (void)opt;
    ctx->ops = &cpu_ops;
    ctx->impl = NULL;
    snprintf(ctx->description, sizeof ctx->description, "CPU reference backend (plain C, one thread)");
    return NNCL_OK;
}
