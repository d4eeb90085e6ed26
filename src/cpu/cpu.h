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
#include "cpu/ref.h"

/* The one place a CPU view becomes a pointer: buffer start + element offset. */
static inline float *nncl__cpu_ptr(const nncl_buffer *buf, size_t offset)
{
    return (float *)buf->mem + offset;
}

static inline float *nncl__cpu_tensor(const nncl_tensor *t)
{
    return nncl__cpu_ptr(t->buf, t->offset);
}

/* ---- staging through double precision ----
   The layer ops run the double-precision reference (cpu/ref.h) on float
   tensors: inputs are converted into scratch arrays, results rounded back.
   Scratch arrays live in numbered slots owned by the backend, grow when a
   larger tensor comes, and are reused, so a steady state allocates nothing. */

#define NNCL_CPU_SLOTS 12

/* OUT: *out = slot `slot` holding t's elements as doubles; NULL when t is NULL. */
nncl_status nncl__cpu_stage(nncl_context *ctx, int slot, const nncl_tensor *t, double **out);

/* OUT: *out = slot `slot` with room for n doubles (contents unspecified). */
nncl_status nncl__cpu_scratch(nncl_context *ctx, int slot, size_t n, double **out);

/* Rounds v back into the elements of t (nothing when t is NULL). */
void nncl__cpu_unstage(const nncl_tensor *t, const double *v);

/* Starts timing an op when the context profiles; returns the start time. */
uint64_t nncl__cpu_op_begin(const nncl_context *ctx);

/* Counts one "kernel launch" for op `name` and profiles it when enabled. */
nncl_status nncl__cpu_op_end(nncl_context *ctx, const char *name, uint64_t start_ns);

/* Profiles op `name` without counting a launch (GEMM counts in gemm_calls only, as on OpenCL). */
nncl_status nncl__cpu_profile_end(nncl_context *ctx, const char *name, uint64_t start_ns);

nncl_status nncl__cpu_fill(nncl_context *ctx, const nncl_tensor *x, float value);
nncl_status nncl__cpu_scale(nncl_context *ctx, const nncl_tensor *x, float alpha);
nncl_status nncl__cpu_axpy(nncl_context *ctx, const nncl_tensor *y, float alpha, const nncl_tensor *x);
nncl_status nncl__cpu_sum(nncl_context *ctx, const nncl_tensor *out, const nncl_tensor *x);
nncl_status nncl__cpu_gemm(nncl_context *ctx, const nncl_gemm_args *g);
nncl_status nncl__cpu_norm2(nncl_context *ctx, const nncl_tensor *out, const nncl_tensor *x);
nncl_status nncl__cpu_optimizer_step(nncl_context *ctx, const nncl_tensor *p, const nncl_tensor *g,
                                     const nncl_tensor *s1, const nncl_tensor *s2, const nncl_optim_args *a);
nncl_status nncl__cpu_add(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *a, const nncl_tensor *b);

nncl_status nncl__cpu_bias_add(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *b, int64_t outer,
                               int64_t channels, int64_t inner, int relu);
nncl_status nncl__cpu_bias_backward(nncl_context *ctx, const nncl_tensor *db, const nncl_tensor *dy, int64_t outer,
                                    int64_t channels, int64_t inner);
nncl_status nncl__cpu_conv2d_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                     const nncl_tensor *w, const nncl_tensor *b, int relu, const nncl_conv_geom *g);
nncl_status nncl__cpu_conv2d_backward_data(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dy,
                                           const nncl_tensor *w, const nncl_conv_geom *g);
nncl_status nncl__cpu_conv2d_backward_params(nncl_context *ctx, const nncl_tensor *dw, const nncl_tensor *db,
                                             const nncl_tensor *dy, const nncl_tensor *x, const nncl_conv_geom *g);
nncl_status nncl__cpu_pool2d_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *idx,
                                     const nncl_tensor *x, const nncl_pool_geom *g);
nncl_status nncl__cpu_pool2d_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dy,
                                      const nncl_tensor *idx, const nncl_tensor *relu_y, const nncl_pool_geom *g);
nncl_status nncl__cpu_activation_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                         nncl_activation act, float param);
nncl_status nncl__cpu_activation_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *x,
                                          const nncl_tensor *y, const nncl_tensor *dy, nncl_activation act,
                                          float param);
nncl_status nncl__cpu_softmax_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x, int64_t rows,
                                      int64_t cols, int log);
nncl_status nncl__cpu_softmax_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *y,
                                       const nncl_tensor *dy, int64_t rows, int64_t cols, int log);
nncl_status nncl__cpu_dropout(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x, float p,
                              nncl_rng_key key);
nncl_status nncl__cpu_batchnorm_forward_train(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *mean,
                                              const nncl_tensor *invstd, const nncl_tensor *running_mean,
                                              const nncl_tensor *running_var, const nncl_tensor *x,
                                              const nncl_tensor *gamma, const nncl_tensor *beta,
                                              const nncl_bn_geom *g);
nncl_status nncl__cpu_batchnorm_forward_eval(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                             const nncl_tensor *running_mean, const nncl_tensor *running_var,
                                             const nncl_tensor *gamma, const nncl_tensor *beta,
                                             const nncl_bn_geom *g);
nncl_status nncl__cpu_batchnorm_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dgamma,
                                         const nncl_tensor *dbeta, const nncl_tensor *dy, const nncl_tensor *x,
                                         const nncl_tensor *mean, const nncl_tensor *invstd,
                                         const nncl_tensor *gamma, const nncl_bn_geom *g, int train);
nncl_status nncl__cpu_batchnorm_invstd(nncl_context *ctx, const nncl_tensor *invstd, const nncl_tensor *var,
                                       float eps);
nncl_status nncl__cpu_layernorm_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *mean,
                                        const nncl_tensor *rstd, const nncl_tensor *x, const nncl_tensor *gamma,
                                        const nncl_tensor *beta, int64_t rows, int64_t cols, float eps);
nncl_status nncl__cpu_layernorm_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dgamma,
                                         const nncl_tensor *dbeta, const nncl_tensor *dy, const nncl_tensor *x,
                                         const nncl_tensor *mean, const nncl_tensor *rstd,
                                         const nncl_tensor *gamma, int64_t rows, int64_t cols);
nncl_status nncl__cpu_loss_forward(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *out,
                                   const nncl_tensor *work, const nncl_tensor *input, const nncl_tensor *target,
                                   int64_t n, int64_t c, float smoothing);
nncl_status nncl__cpu_loss_backward(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *dinput,
                                    const nncl_tensor *input, const nncl_tensor *target, int64_t n, int64_t c,
                                    float smoothing);
nncl_status nncl__cpu_loss_step(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *metrics,
                                const nncl_tensor *sum, const nncl_tensor *dinput, const nncl_tensor *work,
                                const nncl_tensor *input, const nncl_tensor *target, int64_t n, int64_t c,
                                float smoothing);

#endif /* NNCL_CPU_H */
