/*
 * cpu.h - shared pieces of the CPU reference backend.
 *
 * The CPU backend is the yardstick every other backend is measured against:
 * plain loops in the obvious order, double accumulators for every sum, no
 * blocking, no vectors, no threads. Its buffers are host arrays.
 */
#ifndef NNCL_CPU_H
#define NNCL_CPU_H

#include "backend/backend.h"

/* The one place a CPU view becomes a pointer: buffer start + element offset. */
static inline float *nncl__cpu_ptr(const nncl_buffer *buf, size_t offset)
{
    return (float *)buf->mem + offset;
}

static inline float *nncl__cpu_tensor(const nncl_tensor *t)
{
    return nncl__cpu_ptr(t->buf, t->offset);
}

/* Starts timing an op when the context profiles; returns the start time. */
uint64_t nncl__cpu_op_begin(const nncl_context *ctx);

/* Counts one "kernel launch" for op `name` and profiles it when enabled. */
nncl_status nncl__cpu_op_end(nncl_context *ctx, const char *name, uint64_t start_ns);

nncl_status nncl__cpu_fill(nncl_context *ctx, const nncl_tensor *x, float value);
nncl_status nncl__cpu_scale(nncl_context *ctx, const nncl_tensor *x, float alpha);
nncl_status nncl__cpu_axpy(nncl_context *ctx, const nncl_tensor *y, float alpha, const nncl_tensor *x);
nncl_status nncl__cpu_sum(nncl_context *ctx, const nncl_tensor *out, const nncl_tensor *x);
nncl_status nncl__cpu_gemm(nncl_context *ctx, const nncl_gemm_args *g);

#endif /* NNCL_CPU_H */
