/*
 * nncl/tensor.h - tensor descriptors.
 *
 * A tensor descriptor is a plain value: a buffer, an element offset into it, a
 * rank and a shape. It is contiguous and row-major (NCHW for images). A
 * descriptor never owns memory: nncl_tensor_create allocates a buffer and
 * returns the first descriptor of it; every view made from that descriptor
 * (reshape, flatten, unflatten, view) borrows the same buffer and is valid
 * until nncl_tensor_destroy is called on the descriptor that create returned.
 *
 * Reshape, flatten, unflatten and view only rewrite the descriptor on the
 * host. They never touch the device and never queue a kernel.
 *
 * Dimension letters used across nncl: N batch, C channels, H height, W width,
 * K kernel size, F features.
 */
#ifndef NNCL_TENSOR_H
#define NNCL_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "nncl/context.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NNCL_MAX_DIMS 8

/* Memory owned by a context: a cl_mem on OpenCL, an aligned array on the CPU. */
typedef struct nncl_buffer nncl_buffer;

typedef struct nncl_tensor {
    nncl_buffer *buf;              /* borrowed; NULL for an empty descriptor */
    size_t offset;                 /* in elements (float32), never in bytes */
    int ndim;                      /* 0 .. NNCL_MAX_DIMS; 0 is a scalar */
    int64_t shape[NNCL_MAX_DIMS];  /* shape[0] is the slowest dimension */
} nncl_tensor;

/* Number of elements: the product of the shape (1 for a scalar); 0 for a malformed descriptor (a negative
   size, a product past INT64_MAX). */
int64_t nncl_tensor_numel(const nncl_tensor *t);

/*
 * Allocates an uninitialised float32 tensor of the given shape.
 *   ndim   0 .. NNCL_MAX_DIMS.
 *   shape  ndim sizes, each >= 1.
 *   out    OUT: the descriptor; release with nncl_tensor_destroy.
 * Returns NNCL_ERR_INVALID_ARG for a bad rank or size (a product of sizes
 * that overflows int64 included), NNCL_ERR_OUT_OF_MEMORY for more than 2^40
 * elements or when allocation fails, NNCL_ERR_OPENCL when the OpenCL runtime
 * fails.
 */
nncl_status nncl_tensor_create(nncl_context *ctx, int ndim, const int64_t *shape,
                               nncl_tensor *out);

/*
 * Releases the buffer of a tensor returned by nncl_tensor_create and clears
 * the descriptor. Pass only that descriptor, never a view: one at an offset
 * or of fewer elements than its buffer is refused with NNCL_ERR_INVALID_ARG
 * (a reshaped copy of the whole descriptor cannot be told apart from it), as
 * is any tensor that a layer, loss or network owns (its parameters,
 * gradients, optimizer state and activations), which its owner releases.
 * Accepts a cleared descriptor (buf == NULL) and does nothing, given a
 * context.
 */
nncl_status nncl_tensor_destroy(nncl_context *ctx, nncl_tensor *t);

/*
 * Copies `count` floats from host memory into the tensor; count must equal
 * nncl_tensor_numel(dst). Returns when `src` may be reused (one host wait on
 * OpenCL).
 */
nncl_status nncl_tensor_write(nncl_context *ctx, const nncl_tensor *dst, const float *src,
                              size_t count);

/*
 * Like nncl_tensor_write, but returns without waiting: the data is first
 * copied into a staging area owned by the context (so `src` may be reused at
 * once) and the transfer is queued. The staging area grows on first use and is
 * then reused; the host waits only if the transfer of four uploads ago is
 * still in flight, and then also for the one after it. This is how a training
 * step uploads its batch (two uploads): a step that reads nothing back waits
 * only while the host is two steps ahead of the device, and then once, which
 * bounds both the staging memory and how far the queue runs ahead.
 */
nncl_status nncl_tensor_upload(nncl_context *ctx, const nncl_tensor *dst, const float *src, size_t count);

/*
 * Copies the tensor into host memory; count must equal nncl_tensor_numel(src).
 * Waits for all queued work that precedes it (one host wait).
 */
nncl_status nncl_tensor_read(nncl_context *ctx, const nncl_tensor *src, float *dst,
                             size_t count);

/* Sets every element to `value`. Queued; does not wait. */
nncl_status nncl_tensor_fill(nncl_context *ctx, const nncl_tensor *t, float value);

/*
 * Copies src into dst on the device. The two must have the same number of
 * elements (shapes may differ) and must not overlap. Queued; does not wait.
 */
nncl_status nncl_tensor_copy(nncl_context *ctx, const nncl_tensor *dst, const nncl_tensor *src);

/*
 * Writes into *out a descriptor of `src`'s data with a new shape. One entry of
 * `shape` may be -1 and is then inferred. Returns NNCL_ERR_SHAPE, naming both
 * shapes, when the element counts differ. `out` may alias `src`.
 */
nncl_status nncl_tensor_reshape(nncl_context *ctx, const nncl_tensor *src, int ndim,
                                const int64_t *shape, nncl_tensor *out);

/*
 * torch.flatten(src, start_dim): merges dimensions start_dim .. ndim-1 into one.
 * start_dim may be negative (counted from the end). `out` may alias `src`.
 */
nncl_status nncl_tensor_flatten(nncl_context *ctx, const nncl_tensor *src, int start_dim,
                                nncl_tensor *out);

/*
 * torch.unflatten(src, dim, sizes): splits dimension `dim` into `n` dimensions
 * of the given sizes, one of which may be -1. Returns NNCL_ERR_SHAPE when the
 * sizes do not multiply to src->shape[dim]. `out` may alias `src`.
 */
nncl_status nncl_tensor_unflatten(nncl_context *ctx, const nncl_tensor *src, int dim, int n,
                                  const int64_t *sizes, nncl_tensor *out);

/*
 * Writes into *out a descriptor of the given shape that starts `offset`
 * elements after the start of `base` and lies inside base's buffer. Used for
 * slices of a batch, parameters inside an arena, and tests at odd offsets.
 */
nncl_status nncl_tensor_view(nncl_context *ctx, const nncl_tensor *base, size_t offset,
                             int ndim, const int64_t *shape, nncl_tensor *out);

/*
 * Formats a shape as "(2, 3, 4)" into buf (always NUL-terminated). Returns
 * buf, for use inside messages.
 */
const char *nncl_shape_format(int ndim, const int64_t *shape, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* NNCL_TENSOR_H */
