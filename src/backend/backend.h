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
#include "nncl/network.h"

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
    /* Epilogue (a linear layer's): C[i][j] += bias[j] when bias is not NULL, then relu
       (x > 0 ? x : 0) when relu is set, then, when mask is not NULL, C[i][j] = 0 where
       mask[i][j] is not > 0 (the backward of the relu whose output is mask: the input
       gradient of a linear layer that follows a relu); each after C is complete, as
       separate ops would. */
    const nncl_buffer *bias; /* n elements from bias_off */
    size_t bias_off;
    int relu;
    const nncl_buffer *mask; /* laid out as C: element (i, j) at mask_off + i ldc + j */
    size_t mask_off;
} nncl_gemm_args;

/*
 * Geometry of a 2-D convolution, NCHW. The weight is (oc, c / groups, kh, kw).
 * oh = (h + 2 ph - dh (kh - 1) - 1) / sh + 1, likewise ow.
 */
typedef struct nncl_conv_geom {
    int64_t n, c, h, w;     /* input */
    int64_t oc, oh, ow;     /* output channels and size */
    int64_t kh, kw;         /* kernel */
    int64_t sh, sw;         /* stride */
    int64_t ph, pw;         /* zero padding */
    int64_t dh, dw;         /* dilation */
    int64_t groups;
} nncl_conv_geom;

/*
 * Geometry of a 2-D pooling, NCHW, floor output sizes:
 * oh = (h + 2 ph - kh) / sh + 1. Average pooling divides by kh * kw (padded
 * zeros count, PyTorch's count_include_pad=True).
 */
typedef struct nncl_pool_geom {
    int64_t n, c, h, w;
    int64_t oh, ow;
    int64_t kh, kw, sh, sw, ph, pw;
    nncl_pool_kind kind;
} nncl_pool_geom;

/* Batch norm over x viewed as (n, c, inner): statistics per channel c. */
typedef struct nncl_bn_geom {
    int64_t n, c, inner;
    float momentum, eps;
} nncl_bn_geom;

/* Key of the counter-based generator that draws dropout masks. */
typedef struct nncl_rng_key {
    uint64_t seed, step;
    uint32_t layer;
} nncl_rng_key;

/* One optimizer update (see kernels_cl/optim.cl for the formulas). */
typedef struct nncl_optim_args {
    nncl_optimizer_kind kind;
    float lr, momentum, dampening, weight_decay;
    int nesterov;
    int first_step;          /* SGD: the momentum buffer starts as the gradient */
    float beta1, beta2, eps;
    float step_size;         /* Adam: lr / (1 - beta1^t) */
    float bc2_sqrt;          /* Adam: sqrt(1 - beta2^t) */
    float max_norm;          /* > 0: gradients scaled by min(1, max_norm / (norm[0] + 1e-6)) */
    const nncl_tensor *norm; /* the global gradient norm (norm2's), with max_norm > 0 */
} nncl_optim_args;

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
    /* Stages bytes from host memory and queues the copy; returns at once. */
    nncl_status (*upload)(nncl_context *ctx, nncl_buffer *dst, size_t dst_byte_off, const void *src, size_t bytes);
    /* Copies bytes to host memory after all queued work; a host wait. */
    nncl_status (*read)(nncl_context *ctx, const nncl_buffer *src, size_t src_byte_off,
                        void *dst, size_t bytes);
    /* Device-to-device copy of non-overlapping ranges. Queued. */
    nncl_status (*copy)(nncl_context *ctx, nncl_buffer *dst, size_t dst_byte_off,
                        const nncl_buffer *src, size_t src_byte_off, size_t bytes);
    /* Blocks until all queued work has finished; a host wait. */
    nncl_status (*finish)(nncl_context *ctx);
    /* Submits the queued work to the device without waiting (a driver may hold it until then). */
    nncl_status (*flush)(nncl_context *ctx);

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
    /* out[0] = ||x||_2, in a fixed order for a given size; finite whenever the exact norm fits a float. */
    nncl_status (*norm2)(nncl_context *ctx, const nncl_tensor *out, const nncl_tensor *x);
    /* See nncl_gemm_args. */
    nncl_status (*gemm)(nncl_context *ctx, const nncl_gemm_args *args);
    /*
     * Optional: makes the choice of implementation the backend would make
     * for a GEMM of this shape (by measuring, on backends that measure),
     * without computing it. C is not written; A and B are only read.
     */
    nncl_status (*gemm_prepare)(nncl_context *ctx, const nncl_gemm_args *args);
    /* y = a + b, element-wise; all three have the same element count. */
    nncl_status (*add)(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *a, const nncl_tensor *b);

    /* ---- layers (all queued) ----
       Input gradients (dx) are overwritten; parameter gradients (dw, db,
       dgamma, dbeta) are accumulated into. */

    /* y viewed as (outer, channels, inner): y[o][c][i] += b[c], then relu(y) when relu != 0. */
    nncl_status (*bias_add)(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *b, int64_t outer,
                            int64_t channels, int64_t inner, int relu);
    /* db[c] += sum over o, i of dy[o][c][i]. */
    nncl_status (*bias_backward)(nncl_context *ctx, const nncl_tensor *db, const nncl_tensor *dy, int64_t outer,
                                 int64_t channels, int64_t inner);

    /* y = conv(x, w) + b, then relu(y) when relu != 0; b (oc) may be NULL: no bias. */
    nncl_status (*conv2d_forward)(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                  const nncl_tensor *w, const nncl_tensor *b, int relu, const nncl_conv_geom *g);
    /* dx = conv_transpose(dy, w). */
    nncl_status (*conv2d_backward_data)(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dy,
                                        const nncl_tensor *w, const nncl_conv_geom *g);
    /* dw += correlation of dy with x; db (oc) += dy summed over batch and pixels, when db is not NULL. */
    nncl_status (*conv2d_backward_params)(nncl_context *ctx, const nncl_tensor *dw, const nncl_tensor *db,
                                          const nncl_tensor *dy, const nncl_tensor *x, const nncl_conv_geom *g);
    /*
     * Optional: chooses how convolutions of this geometry run (by measuring,
     * on backends that measure), running the three entries above on these
     * tensors: y and dx are overwritten and dw, db accumulated into (dx, b
     * and db may be NULL).
     */
    nncl_status (*conv2d_prepare)(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                  const nncl_tensor *w, const nncl_tensor *b, const nncl_tensor *dy,
                                  const nncl_tensor *dx, const nncl_tensor *dw, const nncl_tensor *db,
                                  const nncl_conv_geom *g);

    /* y = pool(x). For max pooling, idx (same shape as y) receives the
       position h * w_in + w of each maximum within its (n, c) plane; for
       average pooling idx is NULL. */
    nncl_status (*pool2d_forward)(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *idx,
                                  const nncl_tensor *x, const nncl_pool_geom *g);
    /* relu_y (max pooling only, may be NULL): the pooled input came out of a relu, whose backward is
       folded in: an output's gradient reaches dx only where its maximum relu_y is > 0. */
    nncl_status (*pool2d_backward)(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dy,
                                   const nncl_tensor *idx, const nncl_tensor *relu_y, const nncl_pool_geom *g);

    /* y = f(x), element-wise. */
    nncl_status (*activation_forward)(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                      nncl_activation act, float param);
    /* dx = f'(x) dy; y = f(x) is given for the activations that use it. */
    nncl_status (*activation_backward)(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *x,
                                       const nncl_tensor *y, const nncl_tensor *dy, nncl_activation act,
                                       float param);

    /* Row-wise (log-)softmax of x viewed as (rows, cols). */
    nncl_status (*softmax_forward)(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x, int64_t rows,
                                   int64_t cols, int log);
    nncl_status (*softmax_backward)(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *y,
                                    const nncl_tensor *dy, int64_t rows, int64_t cols, int log);

    /* y = x * mask / (1 - p), mask drawn from key; dx likewise from dy. */
    nncl_status (*dropout)(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x, float p,
                           nncl_rng_key key);

    /* Training forward: batch statistics (saved as mean and invstd, c each),
       running statistics updated. */
    nncl_status (*batchnorm_forward_train)(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *mean,
                                           const nncl_tensor *invstd, const nncl_tensor *running_mean,
                                           const nncl_tensor *running_var, const nncl_tensor *x,
                                           const nncl_tensor *gamma, const nncl_tensor *beta,
                                           const nncl_bn_geom *g);
    /* Evaluation forward with the running statistics. */
    nncl_status (*batchnorm_forward_eval)(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                          const nncl_tensor *running_mean, const nncl_tensor *running_var,
                                          const nncl_tensor *gamma, const nncl_tensor *beta,
                                          const nncl_bn_geom *g);
    /* Backward through the statistics of the forward (train = 1: batch
       statistics, whose mean and invstd are given; 0: running statistics,
       passed as mean and invstd = 1 / sqrt(var + eps)). */
    nncl_status (*batchnorm_backward)(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dgamma,
                                      const nncl_tensor *dbeta, const nncl_tensor *dy, const nncl_tensor *x,
                                      const nncl_tensor *mean, const nncl_tensor *invstd,
                                      const nncl_tensor *gamma, const nncl_bn_geom *g, int train);
    /* invstd[c] = 1 / sqrt(var[c] + eps), for the evaluation backward. */
    nncl_status (*batchnorm_invstd)(nncl_context *ctx, const nncl_tensor *invstd, const nncl_tensor *var,
                                    float eps);

    /* Layer norm of x viewed as (rows, cols); gamma and beta (cols) may be NULL. */
    nncl_status (*layernorm_forward)(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *mean,
                                     const nncl_tensor *rstd, const nncl_tensor *x, const nncl_tensor *gamma,
                                     const nncl_tensor *beta, int64_t rows, int64_t cols, float eps);
    nncl_status (*layernorm_backward)(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dgamma,
                                      const nncl_tensor *dbeta, const nncl_tensor *dy, const nncl_tensor *x,
                                      const nncl_tensor *mean, const nncl_tensor *rstd, const nncl_tensor *gamma,
                                      int64_t rows, int64_t cols);

    /* ---- losses (all queued) ----
       input is (n, c) for the class losses, n * c elements otherwise; work
       holds n elements of per-sample (or per-row) losses. */
    nncl_status (*loss_forward)(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *out,
                                const nncl_tensor *work, const nncl_tensor *input, const nncl_tensor *target,
                                int64_t n, int64_t c, float smoothing);
    nncl_status (*loss_backward)(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *dinput,
                                 const nncl_tensor *input, const nncl_tensor *target, int64_t n, int64_t c,
                                 float smoothing);
    /* A network's loss step: metrics[0] = the mean loss (loss_forward's
       value), metrics[1] = how many rows of input have their first largest
       entry at the column their class target names (class losses; else 0);
       sum[0] += n metrics[0] in one rounding, sum[1] += metrics[1]; and, when
       dinput is not NULL, loss_backward's gradient in it. work: scratch of
       2 n elements. */
    nncl_status (*loss_step)(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *metrics,
                             const nncl_tensor *sum, const nncl_tensor *dinput, const nncl_tensor *work,
                             const nncl_tensor *input, const nncl_tensor *target, int64_t n, int64_t c,
                             float smoothing);

    /* ---- training (all queued) ---- */

    /* Updates parameters p from gradients g; s1, s2 are the optimizer state
       (SGD: s1 the momentum buffer; Adam: s1, s2 the moments). */
    nncl_status (*optimizer_step)(nncl_context *ctx, const nncl_tensor *p, const nncl_tensor *g,
                                  const nncl_tensor *s1, const nncl_tensor *s2, const nncl_optim_args *a);
} nncl_backend_ops;

/*
 * nncl_gemm with the epilogue of nncl_gemm_args: C += bias (n elements, NULL
 * for none) broadcast over the rows, then relu when `relu` is set, then C = 0
 * where mask (NULL for none; m rows of n, ldc apart, like C) is not > 0.
 */
nncl_status nncl__gemm_epilogue(nncl_context *ctx, nncl_transpose trans_a, nncl_transpose trans_b, int64_t m,
                                int64_t n, int64_t k, float alpha, const nncl_tensor *a, int64_t lda,
                                const nncl_tensor *b, int64_t ldb, float beta, const nncl_tensor *c, int64_t ldc,
                                const nncl_tensor *bias, int relu, const nncl_tensor *mask);

/*
 * nncl_gemm's checks, then the backend's gemm_prepare (when it has one):
 * the choice of implementation for the shape, made ahead of the first call.
 * Layers call it, with the arguments of their own GEMMs, from their prepare.
 */
nncl_status nncl__gemm_prepare(nncl_context *ctx, nncl_transpose trans_a, nncl_transpose trans_b, int64_t m,
                               int64_t n, int64_t k, float alpha, const nncl_tensor *a, int64_t lda,
                               const nncl_tensor *b, int64_t ldb, float beta, const nncl_tensor *c, int64_t ldc);

#endif /* NNCL_BACKEND_H */
