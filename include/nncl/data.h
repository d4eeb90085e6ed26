/*
 * nncl/data.h - host arrays and the files they come from: IDX (the MNIST
 * format, gzipped or raw) and NumPy .npy.
 *
 * These functions take no context: on failure they record the message in the
 * calling thread's slot, read with nncl_context_last_error(NULL).
 */
#ifndef NNCL_DATA_H
#define NNCL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "nncl/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum nncl_dtype {
    NNCL_DTYPE_F32 = 0,
    NNCL_DTYPE_U8 = 1,
    NNCL_DTYPE_I64 = 2,
} nncl_dtype;

/* A dense, row-major array in host memory. Owns `data` (release with nncl_array_free). */
typedef struct nncl_array {
    nncl_dtype dtype;
    int ndim;                     /* 0 .. NNCL_MAX_DIMS */
    int64_t shape[NNCL_MAX_DIMS];
    void *data;                   /* numel * element size bytes; NULL for an empty array */
} nncl_array;

/* Bytes per element of a dtype (4, 1, 8). */
size_t nncl_dtype_size(nncl_dtype dtype);

/* Product of the shape. */
int64_t nncl_array_numel(const nncl_array *a);

/* Allocates a zero-filled array. */
nncl_status nncl_array_create(nncl_dtype dtype, int ndim, const int64_t *shape, nncl_array *out);

/* Frees a->data and clears the array. Accepts NULL and cleared arrays. */
nncl_status nncl_array_free(nncl_array *a);

/*
 * Reads an IDX file (http://yann.lecun.com/exdb/mnist/ format: magic 0x0000TTDD,
 * big-endian dimensions), gzipped or not (detected from the content). Element
 * types: unsigned byte (0x08) becomes NNCL_DTYPE_U8; the others are refused.
 * Returns NNCL_ERR_IO when the file cannot be opened or read, NNCL_ERR_FORMAT
 * (naming the file and what is wrong) for a bad magic number, type, rank,
 * size, or a truncated or overlong file.
 */
nncl_status nncl_idx_read(const char *path, nncl_array *out);

/*
 * Reads a NumPy .npy file, format version 1.0 to 3.0, C order, little-endian,
 * dtype '<f4', '|u1' (or '<u1') or '<i8'. Errors as for nncl_idx_read.
 */
nncl_status nncl_npy_read(const char *path, nncl_array *out);

/*
 * Writes a .npy file (version 1.0) atomically: a temporary file in the same
 * directory, fsync, then rename.
 */
nncl_status nncl_npy_write(const char *path, const nncl_array *a);

#ifdef __cplusplus
}
#endif

#endif /* NNCL_DATA_H */
