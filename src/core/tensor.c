/*
 * tensor.c - tensor descriptors: allocation, host transfers, and the
 * descriptor-only rewrites (reshape, flatten, unflatten, view).
 *
 * This is the one file that turns (offset, shape) into byte ranges of a buffer.
 * The rewrites below never call the backend: they cannot queue a kernel.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

#define ELEM_BYTES sizeof(float)

int64_t nncl_tensor_numel(const nncl_tensor *t)
{
    if (t == NULL || t->ndim < 0 || t->ndim > NNCL_MAX_DIMS) return 0;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        /* A descriptor no nncl function made (a negative size, an overflowing product) counts as empty. */
        if (t->shape[i] < 0) return 0;
        if (t->shape[i] == 0) n = 0;
        else if (n > INT64_MAX / t->shape[i]) return 0;
        else n *= t->shape[i];
    }
    return n;
}

int64_t nncl__shape_elements(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || shape[i] > NNCL_MAX_ELEMENTS / n) return -1; /* checked before it can overflow */
        n *= shape[i];
    }
    return n;
}

const char *nncl_shape_format(int ndim, const int64_t *shape, char *buf, size_t size)
{
    if (buf == NULL || size == 0) return "";
    size_t len = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, i ? ", %" PRId64 : "%" PRId64, shape[i]);
    if (len < size) snprintf(buf + len, size - len, ")");
    return buf;
}

/* Checks a rank and a shape; sizes must be >= 1 and the product must not overflow. */
static nncl_status check_shape(nncl_context *ctx, int ndim, const int64_t *shape, const char *func)
{
    if (ndim < 0 || ndim > NNCL_MAX_DIMS)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: ndim %d is outside 0..%d", func, ndim,
                          NNCL_MAX_DIMS);
    if (ndim > 0 && shape == NULL)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: shape is NULL", func);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || shape[i] > INT64_MAX / n) {
            char s[160];
            return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: bad shape %s (dimension %d)", func,
                              nncl_shape_format(ndim, shape, s, sizeof s), i);
        }
        n *= shape[i];
    }
    return NNCL_OK;
}

nncl_status nncl__extent_check(nncl_context *ctx, const nncl_tensor *t, uint64_t elems,
                               const char *what, const char *func)
{
    uint64_t cap = t->buf->bytes / ELEM_BYTES;
    if (t->offset > cap || elems > cap - t->offset)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG,
                          "%s: %s needs elements [%zu, %zu + %" PRIu64 ") but its buffer holds %" PRIu64,
                          func, what, t->offset, t->offset, elems, cap);
    return NNCL_OK;
}

nncl_status nncl__tensor_check(nncl_context *ctx, const nncl_tensor *t, const char *what,
                               const char *func)
{
    if (t == NULL) return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: %s is NULL", func, what);
    if (t->buf == NULL)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: %s has no buffer", func, what);
    if (t->buf->ctx != ctx)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: %s belongs to another context", func, what);
    NNCL_TRY(check_shape(ctx, t->ndim, t->shape, func));
    return nncl__extent_check(ctx, t, (uint64_t)nncl_tensor_numel(t), what, func);
}

/* ---- lifecycle ------------------------------------------------------------------ */

nncl_status nncl_tensor_create(nncl_context *ctx, int ndim, const int64_t *shape, nncl_tensor *out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, out);
    NNCL_TRY(check_shape(ctx, ndim, shape, __func__));
    nncl_tensor t = {.ndim = ndim};
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    uint64_t n = (uint64_t)nncl_tensor_numel(&t);
    /* The limit also keeps a backend's rounding of the byte size from wrapping around. */
    if (n > (uint64_t)NNCL_MAX_ELEMENTS || n > SIZE_MAX / ELEM_BYTES)
        return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY,
                          "%s: %" PRIu64 " elements do not fit in memory (nncl's limit is 2^40 per tensor)",
                          __func__, n);

    nncl_buffer *buf = calloc(1, sizeof *buf);
    if (buf == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "%s: out of host memory", __func__);
    buf->ctx = ctx;
    buf->bytes = (size_t)n * ELEM_BYTES;
    nncl_status st = ctx->ops->buffer_alloc(ctx, buf);
    if (st != NNCL_OK) {
        free(buf);
        return st;
    }
    t.buf = buf;
    *out = t;
    return NNCL_OK;
}

nncl_status nncl__tensor_create_owned(nncl_context *ctx, int ndim, const int64_t *shape, nncl_tensor *out)
{
    NNCL_TRY(nncl_tensor_create(ctx, ndim, shape, out));
    out->buf->owned = 1;
    return NNCL_OK;
}

void nncl__tensor_release(nncl_context *ctx, nncl_tensor *t)
{
    if (t == NULL || t->buf == NULL) return;
    ctx->ops->buffer_release(ctx, t->buf);
    free(t->buf);
    memset(t, 0, sizeof *t);
}

nncl_status nncl_tensor_destroy(nncl_context *ctx, nncl_tensor *t)
{
    NNCL_CHECK_CTX(ctx);
    if (t == NULL || t->buf == NULL) return NNCL_OK;
    if (t->buf->ctx != ctx)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: tensor belongs to another context", __func__);
    if (t->buf->owned)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG,
                          "%s: the tensor belongs to a layer, a loss or a network, which releases it when it is "
                          "destroyed", __func__);
    const size_t elements = t->buf->bytes / ELEM_BYTES;
    const int64_t numel = nncl_tensor_numel(t);
    if (t->offset != 0 || (size_t)numel != elements)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG,
                          "%s: a view (%" PRId64 " elements at offset %zu of a buffer of %zu): destroy the tensor "
                          "it views, or the network that owns it", __func__, numel, t->offset, elements);
    nncl__tensor_release(ctx, t);
    return NNCL_OK;
}

/* ---- data movement ---------------------------------------------------------------- */

/* Checks that a host transfer of `count` floats matches the tensor exactly. */
static nncl_status check_count(nncl_context *ctx, const nncl_tensor *t, size_t count, const char *func)
{
    if ((uint64_t)nncl_tensor_numel(t) != count) {
        char s[160];
        return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: tensor %s has %" PRId64 " elements, count is %zu",
                          func, nncl_shape_format(t->ndim, t->shape, s, sizeof s),
                          nncl_tensor_numel(t), count);
    }
    return NNCL_OK;
}

typedef nncl_status (*host_to_device_fn)(nncl_context *ctx, nncl_buffer *dst, size_t dst_byte_off,
                                         const void *src, size_t bytes);

/* The checks and the transfer count shared by nncl_tensor_write and nncl_tensor_upload;
   `func` names the caller in errors. */
static nncl_status host_to_device(nncl_context *ctx, const nncl_tensor *dst, const float *src, size_t count,
                                  host_to_device_fn copy, const char *func)
{
    NNCL_TRY(nncl__tensor_check(ctx, dst, "dst", func));
    if (src == NULL) return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: src is NULL", func);
    NNCL_TRY(check_count(ctx, dst, count, func));
    size_t bytes = count * ELEM_BYTES;
    NNCL_TRY(copy(ctx, dst->buf, dst->offset * ELEM_BYTES, src, bytes));
    ctx->stats.h2d_bytes += bytes;
    return NNCL_OK;
}

nncl_status nncl_tensor_write(nncl_context *ctx, const nncl_tensor *dst, const float *src, size_t count)
{
    NNCL_CHECK_CTX(ctx);
    return host_to_device(ctx, dst, src, count, ctx->ops->write, __func__);
}

nncl_status nncl_tensor_upload(nncl_context *ctx, const nncl_tensor *dst, const float *src, size_t count)
{
    NNCL_CHECK_CTX(ctx);
    return host_to_device(ctx, dst, src, count, ctx->ops->upload, __func__);
}

nncl_status nncl_tensor_read(nncl_context *ctx, const nncl_tensor *src, float *dst, size_t count)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_TRY(nncl__tensor_check(ctx, src, "src", __func__));
    NNCL_CHECK_ARG(ctx, dst);
    NNCL_TRY(check_count(ctx, src, count, __func__));
    size_t bytes = count * ELEM_BYTES;
    NNCL_TRY(ctx->ops->read(ctx, src->buf, src->offset * ELEM_BYTES, dst, bytes));
    ctx->stats.d2h_bytes += bytes;
    return NNCL_OK;
}

nncl_status nncl_tensor_fill(nncl_context *ctx, const nncl_tensor *t, float value)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_TRY(nncl__tensor_check(ctx, t, "t", __func__));
    return ctx->ops->fill(ctx, t, value);
}

nncl_status nncl_tensor_copy(nncl_context *ctx, const nncl_tensor *dst, const nncl_tensor *src)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_TRY(nncl__tensor_check(ctx, dst, "dst", __func__));
    NNCL_TRY(nncl__tensor_check(ctx, src, "src", __func__));
    int64_t n = nncl_tensor_numel(src);
    if (nncl_tensor_numel(dst) != n) {
        char a[160], b[160];
        return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: dst %s and src %s differ in element count", __func__,
                          nncl_shape_format(dst->ndim, dst->shape, a, sizeof a),
                          nncl_shape_format(src->ndim, src->shape, b, sizeof b));
    }
    if (dst->buf == src->buf && dst->offset < src->offset + (size_t)n &&
        src->offset < dst->offset + (size_t)n)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: dst and src overlap", __func__);
    return ctx->ops->copy(ctx, dst->buf, dst->offset * ELEM_BYTES, src->buf, src->offset * ELEM_BYTES,
                          (size_t)n * ELEM_BYTES);
}

/* ---- descriptor rewrites (never touch the device) ------------------------------------ */

/* Writes `src` with a new shape into *out; the element counts must agree. */
static nncl_status rewrite(nncl_context *ctx, const nncl_tensor *src, int ndim, const int64_t *shape,
                           nncl_tensor *out, const char *func)
{
    NNCL_TRY(check_shape(ctx, ndim, shape, func));
    nncl_tensor t = {.buf = src->buf, .offset = src->offset, .ndim = ndim};
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    if (nncl_tensor_numel(&t) != nncl_tensor_numel(src)) {
        char a[160], b[160];
        return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: cannot view %s (%" PRId64 " elements) as %s (%" PRId64 ")",
                          func, nncl_shape_format(src->ndim, src->shape, a, sizeof a),
                          nncl_tensor_numel(src), nncl_shape_format(ndim, shape, b, sizeof b),
                          nncl_tensor_numel(&t));
    }
    *out = t;
    return NNCL_OK;
}

/*
 * Replaces a single -1 in shape[0..n) by the size that makes the product equal
 * `total`. Returns NNCL_ERR_SHAPE when that is impossible.
 */
static nncl_status infer_minus_one(nncl_context *ctx, int n, int64_t *shape, int64_t total,
                                   const char *func)
{
    int hole = -1;
    int64_t known = 1;
    for (int i = 0; i < n; i++) {
        if (shape[i] == -1 && hole < 0) {
            hole = i;
        } else if (shape[i] >= 1 && shape[i] <= INT64_MAX / known) {
            known *= shape[i];
        } else {
            char s[160];
            return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: bad size %" PRId64 " in %s", func, shape[i],
                              nncl_shape_format(n, shape, s, sizeof s));
        }
    }
    if (hole < 0) return NNCL_OK;
    if (total % known != 0) {
        char s[160];
        return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: %s cannot hold %" PRId64 " elements", func,
                          nncl_shape_format(n, shape, s, sizeof s), total);
    }
    shape[hole] = total / known;
    return NNCL_OK;
}

nncl_status nncl_tensor_reshape(nncl_context *ctx, const nncl_tensor *src, int ndim,
                                const int64_t *shape, nncl_tensor *out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_TRY(nncl__tensor_check(ctx, src, "src", __func__));
    NNCL_CHECK_ARG(ctx, out);
    if (ndim < 0 || ndim > NNCL_MAX_DIMS || (ndim > 0 && shape == NULL))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: bad ndim %d or NULL shape", __func__, ndim);
    int64_t s[NNCL_MAX_DIMS];
    for (int i = 0; i < ndim; i++) s[i] = shape[i];
    NNCL_TRY(infer_minus_one(ctx, ndim, s, nncl_tensor_numel(src), __func__));
    return rewrite(ctx, src, ndim, s, out, __func__);
}

nncl_status nncl_tensor_flatten(nncl_context *ctx, const nncl_tensor *src, int start_dim, nncl_tensor *out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_TRY(nncl__tensor_check(ctx, src, "src", __func__));
    NNCL_CHECK_ARG(ctx, out);
    int d = start_dim < 0 ? start_dim + src->ndim : start_dim;
    if (src->ndim == 0 && (start_dim == 0 || start_dim == -1)) {
        int64_t one = 1; /* torch.flatten of a scalar is a 1-element vector */
        return rewrite(ctx, src, 1, &one, out, __func__);
    }
    if (d < 0 || d >= src->ndim)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: start_dim %d is out of range for rank %d",
                          __func__, start_dim, src->ndim);
    int64_t s[NNCL_MAX_DIMS];
    for (int i = 0; i < d; i++) s[i] = src->shape[i];
    s[d] = 1;
    for (int i = d; i < src->ndim; i++) s[d] *= src->shape[i];
    return rewrite(ctx, src, d + 1, s, out, __func__);
}

nncl_status nncl_tensor_unflatten(nncl_context *ctx, const nncl_tensor *src, int dim, int n,
                                  const int64_t *sizes, nncl_tensor *out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_TRY(nncl__tensor_check(ctx, src, "src", __func__));
    NNCL_CHECK_ARG(ctx, sizes);
    NNCL_CHECK_ARG(ctx, out);
    int d = dim < 0 ? dim + src->ndim : dim;
    if (d < 0 || d >= src->ndim)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: dim %d is out of range for rank %d", __func__,
                          dim, src->ndim);
    if (n < 1 || src->ndim - 1 + n > NNCL_MAX_DIMS)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: %d sizes would give rank %d (max %d)", __func__,
                          n, src->ndim - 1 + n, NNCL_MAX_DIMS);
    int64_t split[NNCL_MAX_DIMS];
    for (int i = 0; i < n; i++) split[i] = sizes[i];
    NNCL_TRY(infer_minus_one(ctx, n, split, src->shape[d], __func__));
    int64_t prod = 1;
    for (int i = 0; i < n; i++) prod *= split[i];
    if (prod != src->shape[d]) {
        char a[160], b[160];
        return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: sizes %s do not multiply to dimension %d of %s",
                          __func__, nncl_shape_format(n, split, a, sizeof a), d,
                          nncl_shape_format(src->ndim, src->shape, b, sizeof b));
    }
    int64_t s[NNCL_MAX_DIMS];
    int r = 0;
    for (int i = 0; i < d; i++) s[r++] = src->shape[i];
    for (int i = 0; i < n; i++) s[r++] = split[i];
    for (int i = d + 1; i < src->ndim; i++) s[r++] = src->shape[i];
    return rewrite(ctx, src, r, s, out, __func__);
}

nncl_status nncl_tensor_view(nncl_context *ctx, const nncl_tensor *base, size_t offset, int ndim,
                             const int64_t *shape, nncl_tensor *out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_TRY(nncl__tensor_check(ctx, base, "base", __func__));
    NNCL_CHECK_ARG(ctx, out);
    NNCL_TRY(check_shape(ctx, ndim, shape, __func__));
    nncl_tensor t = {.buf = base->buf, .offset = base->offset + offset, .ndim = ndim};
    if (t.offset < base->offset)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: offset %zu overflows", __func__, offset);
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    NNCL_TRY(nncl__extent_check(ctx, &t, (uint64_t)nncl_tensor_numel(&t), "view", __func__));
    *out = t;
    return NNCL_OK;
}

nncl_status nncl__workspace(nncl_context *ctx, nncl_tensor *ws, int64_t *capacity, int64_t n)
{
    if (n > *capacity) {
        nncl__tensor_release(ctx, ws);
        *capacity = 0;
        NNCL_TRY(nncl__tensor_create_owned(ctx, 1, &n, ws));
        *capacity = n;
    }
    ws->ndim = 1;
    ws->shape[0] = n;
    return NNCL_OK;
}

void *nncl__grow(void *items, size_t len, size_t *cap, size_t size, size_t first)
{
    if (len < *cap) return items;
    const size_t want = *cap ? 2 * *cap : first;
    void *grown = realloc(items, want * size);
    if (grown != NULL) *cap = want;
    return grown;
}
