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

nncl_status nncl__cpu_profile_end(nncl_context *ctx, const char *name, uint64_t start_ns)
{
    if (!ctx->profiling) return NNCL_OK;
    return nncl__profile_add(ctx, name, ctx->scope, start_ns, now_ns());
}

nncl_status nncl__cpu_op_end(nncl_context *ctx, const char *name, uint64_t start_ns)
{
    ctx->stats.kernel_launches++;
    return nncl__cpu_profile_end(ctx, name, start_ns);
}

/* The backend's own state: the staging slots. */
typedef struct nncl__cpu {
    double *slot[NNCL_CPU_SLOTS];
    size_t slot_cap[NNCL_CPU_SLOTS]; /* in doubles */
} nncl__cpu;

nncl_status nncl__cpu_scratch(nncl_context *ctx, int slot, size_t n, double **out)
{
    nncl__cpu *cpu = ctx->impl;
    if (n > cpu->slot_cap[slot]) {
        double *grown = realloc(cpu->slot[slot], n * sizeof(double));
        if (grown == NULL)
            return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "cpu backend: cannot stage %zu values", n);
        ctx->stats.device_allocs++;
        ctx->stats.device_bytes_live += (n - cpu->slot_cap[slot]) * sizeof(double);
        cpu->slot[slot] = grown;
        cpu->slot_cap[slot] = n;
    }
    *out = cpu->slot[slot];
    return NNCL_OK;
}

nncl_status nncl__cpu_stage(nncl_context *ctx, int slot, const nncl_tensor *t, double **out)
{
    if (t == NULL) {
        *out = NULL;
        return NNCL_OK;
    }
    size_t n = (size_t)nncl_tensor_numel(t);
    NNCL_TRY(nncl__cpu_scratch(ctx, slot, n, out));
    const float *p = nncl__cpu_tensor(t);
    for (size_t i = 0; i < n; i++) (*out)[i] = p[i];
    return NNCL_OK;
}

void nncl__cpu_unstage(const nncl_tensor *t, const double *v)
{
    if (t == NULL) return;
    float *p = nncl__cpu_tensor(t);
    size_t n = (size_t)nncl_tensor_numel(t);
    for (size_t i = 0; i < n; i++) p[i] = (float)v[i];
}

static void cpu_destroy(nncl_context *ctx)
{
    nncl__cpu *cpu = ctx->impl;
    if (cpu == NULL) return;
    for (int i = 0; i < NNCL_CPU_SLOTS; i++) {
        free(cpu->slot[i]);
        ctx->stats.device_bytes_live -= cpu->slot_cap[i] * sizeof(double);
    }
    free(cpu);
    ctx->impl = NULL;
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

/* Uploads are done on return, as everything here; on OpenCL they are queued and wait for nothing. */
static nncl_status cpu_upload(nncl_context *ctx, nncl_buffer *dst, size_t off, const void *src, size_t bytes)
{
    (void)ctx;
    memcpy((char *)dst->mem + off, src, bytes);
    return NNCL_OK;
}

/* A blocking write: counted as a host wait, as on OpenCL, so that both backends' counters agree. */
static nncl_status cpu_write(nncl_context *ctx, nncl_buffer *dst, size_t off, const void *src, size_t bytes)
{
    ctx->stats.host_waits++;
    return cpu_upload(ctx, dst, off, src, bytes);
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

static nncl_status cpu_flush(nncl_context *ctx)
{
    (void)ctx; /* every call has already run */
    return NNCL_OK;
}

static const nncl_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_release = cpu_buffer_release,
    .write = cpu_write,
    .upload = cpu_upload,
    .read = cpu_read,
    .copy = cpu_copy,
    .finish = cpu_finish,
    .flush = cpu_flush,
    .fill = nncl__cpu_fill,
    .scale = nncl__cpu_scale,
    .axpy = nncl__cpu_axpy,
    .sum = nncl__cpu_sum,
    .gemm = nncl__cpu_gemm,
    .add = nncl__cpu_add,
    .bias_add = nncl__cpu_bias_add,
    .bias_backward = nncl__cpu_bias_backward,
    .conv2d_forward = nncl__cpu_conv2d_forward,
    .conv2d_backward_data = nncl__cpu_conv2d_backward_data,
    .conv2d_backward_params = nncl__cpu_conv2d_backward_params,
    .pool2d_forward = nncl__cpu_pool2d_forward,
    .pool2d_backward = nncl__cpu_pool2d_backward,
    .activation_forward = nncl__cpu_activation_forward,
    .activation_backward = nncl__cpu_activation_backward,
    .softmax_forward = nncl__cpu_softmax_forward,
    .softmax_backward = nncl__cpu_softmax_backward,
    .dropout = nncl__cpu_dropout,
    .batchnorm_forward_train = nncl__cpu_batchnorm_forward_train,
    .batchnorm_forward_eval = nncl__cpu_batchnorm_forward_eval,
    .batchnorm_backward = nncl__cpu_batchnorm_backward,
    .batchnorm_invstd = nncl__cpu_batchnorm_invstd,
    .layernorm_forward = nncl__cpu_layernorm_forward,
    .layernorm_backward = nncl__cpu_layernorm_backward,
    .loss_forward = nncl__cpu_loss_forward,
    .loss_backward = nncl__cpu_loss_backward,
    .loss_step = nncl__cpu_loss_step,
    .norm2 = nncl__cpu_norm2,
    .optimizer_step = nncl__cpu_optimizer_step,
};

nncl_status nncl__cpu_backend_init(nncl_context *ctx, const nncl_context_options *opt)
{
    (void)opt;
    ctx->ops = &cpu_ops;
    ctx->impl = calloc(1, sizeof(nncl__cpu));
    if (ctx->impl == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "out of host memory");
    snprintf(ctx->description, sizeof ctx->description, "CPU reference backend (plain C, one thread)");
    return NNCL_OK;
}
