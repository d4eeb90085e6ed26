/*
 * array.c - host arrays: element sizes, element counts, allocation and release.
 *
 * An nncl_array is a dense, row-major block of host memory with a dtype and a
 * shape of 0 to NNCL_MAX_DIMS dimensions, each >= 0. Creation validates all of
 * these, checks that the byte size fits in size_t, and zero-fills the data; an
 * array with no elements has no allocation (data is NULL).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

size_t nncl_dtype_size(nncl_dtype dtype)
{
    switch (dtype) {
    case NNCL_DTYPE_F32: return 4;
    case NNCL_DTYPE_U8: return 1;
    case NNCL_DTYPE_I64: return 8;
    }
    return 0;
}

int64_t nncl_array_numel(const nncl_array *a)
{
    if (a == NULL || a->ndim < 0 || a->ndim > NNCL_MAX_DIMS) return 0;
    int64_t n = 1;
    for (int i = 0; i < a->ndim; i++) {
        /* A malformed shape (a negative size, an overflowing product) counts as empty. */
        if (a->shape[i] < 0) return 0;
        if (a->shape[i] == 0) n = 0;
        else if (n > INT64_MAX / a->shape[i]) return 0;
        else n *= a->shape[i];
    }
    return n;
}

nncl_status nncl_array_create(nncl_dtype dtype, int ndim, const int64_t *shape, nncl_array *out)
{
    NNCL_CHECK_ARG(NULL, out);
    memset(out, 0, sizeof *out);
    size_t elem = nncl_dtype_size(dtype);
    if (elem == 0)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: unknown dtype %d", __func__, (int)dtype);
    if (ndim < 0 || ndim > NNCL_MAX_DIMS)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: ndim %d is outside 0..%d", __func__, ndim,
                          NNCL_MAX_DIMS);
    if (ndim > 0 && shape == NULL)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: shape is NULL", __func__);

    /* The product is computed with a zero dimension short-circuiting, so that
     * (huge, 0) is a valid empty shape rather than an overflow. */
    int has_zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            char s[160];
            return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: bad shape %s (dimension %d is negative)",
                              __func__, nncl_shape_format(ndim, shape, s, sizeof s), i);
        }
        if (shape[i] == 0) has_zero = 1;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim && !has_zero; i++) {
        if (n > INT64_MAX / shape[i]) {
            char s[160];
            return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: shape %s has too many elements",
                              __func__, nncl_shape_format(ndim, shape, s, sizeof s));
        }
        n *= shape[i];
    }
    if (has_zero) n = 0;
    if ((uint64_t)n > SIZE_MAX / elem)
        return NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "%s: %" PRId64 " elements of %zu bytes do not fit in memory",
                          __func__, n, elem);

    void *data = NULL;
    if (n > 0) {
        data = calloc((size_t)n, elem);
        if (data == NULL)
            return NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "%s: cannot allocate %" PRId64 " x %zu bytes",
                              __func__, n, elem);
    }
    out->dtype = dtype;
    out->ndim = ndim;
    for (int i = 0; i < ndim; i++) out->shape[i] = shape[i];
    out->data = data;
    return NNCL_OK;
}

nncl_status nncl_array_free(nncl_array *a)
{
    if (a == NULL) return NNCL_OK;
    free(a->data);
    memset(a, 0, sizeof *a);
    return NNCL_OK;
}
