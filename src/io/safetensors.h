/*
 * safetensors.h - reading and writing the safetensors format
 * (https://github.com/huggingface/safetensors), for the library's own use.
 *
 * A safetensors file is an 8-byte little-endian unsigned header length N, then
 * N bytes of UTF-8 JSON, then the data buffer. The JSON is an object mapping
 * each tensor name to {"dtype": "F32", "shape": [2, 3], "data_offsets":
 * [begin, end]}, the offsets being relative to the start of the data buffer,
 * plus an optional "__metadata__" object of string keys and string values.
 *
 * The reader is strict: it accepts exactly the JSON the format needs, and it
 * requires the tensors, sorted by offset, to cover the data buffer exactly, as
 * the reference implementation does. Only F32, I64 and U8 tensors can be
 * loaded; a well-formed file holding any other dtype of the format is refused
 * with NNCL_ERR_UNSUPPORTED. Errors are recorded in the calling thread's slot
 * (read with nncl_context_last_error(NULL)) and name the file.
 *
 * Tensor data is stored little-endian and is not necessarily aligned for its
 * element type: copy it out with memcpy.
 */
#ifndef NNCL_IO_SAFETENSORS_H
#define NNCL_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "nncl.h"

/* The largest header accepted or written: 100 MiB. */
#define NNCL__ST_MAX_HEADER ((uint64_t)100 << 20)

/* The most tensors and metadata entries one file may hold. */
#define NNCL__ST_MAX_TENSORS ((size_t)1 << 20)
#define NNCL__ST_MAX_META ((size_t)4096)

/* Sizes of the fixed text fields, terminating NUL included. */
#define NNCL__ST_NAME_SIZE 128
#define NNCL__ST_VALUE_SIZE 1024

typedef struct nncl__st_tensor {
    char name[NNCL__ST_NAME_SIZE];
    nncl_dtype dtype;
    int ndim;
    int64_t shape[NNCL_MAX_DIMS];
    size_t begin, end; /* byte offsets into the data buffer */
    const void *data;  /* reading: points into the file image; writing: the caller's bytes */
} nncl__st_tensor;

typedef struct nncl__st_file {
    nncl__st_tensor *tensors; /* in the order of the header */
    size_t n_tensors;
    char (*meta_keys)[NNCL__ST_NAME_SIZE]; /* __metadata__, in the order of the header */
    char (*meta_values)[NNCL__ST_VALUE_SIZE];
    size_t n_meta;
    unsigned char *image; /* the whole file */
    size_t image_size;
} nncl__st_file;

/*
 * Reads and validates a whole file into `out`, which is cleared first and
 * stays cleared on failure. Returns NNCL_ERR_IO when the file cannot be opened
 * or read, NNCL_ERR_FORMAT (naming the file and the problem) when it is not a
 * valid safetensors file, NNCL_ERR_UNSUPPORTED when it is valid but holds a
 * dtype other than F32, I64 and U8, and NNCL_ERR_OUT_OF_MEMORY.
 */
nncl_status nncl__st_read(const char *path, nncl__st_file *out);

/* Finds a tensor by name (NULL if absent). A linear search. */
const nncl__st_tensor *nncl__st_find(const nncl__st_file *f, const char *name);

/* Finds a metadata value by key (NULL if absent). */
const char *nncl__st_meta(const nncl__st_file *f, const char *key);

/* Releases what nncl__st_read allocated and clears *f. Accepts NULL and cleared files. */
void nncl__st_free(nncl__st_file *f);

/*
 * Writes `n` tensors (their name, dtype, shape and data; begin and end are
 * ignored and computed: the tensors are laid out contiguously in the order
 * given) and `n_meta` metadata entries, atomically: a temporary file
 * "<path>.tmp.<pid>" in the same directory is written, flushed, synced and
 * renamed over `path`. The header lists "__metadata__" first (when n_meta >
 * 0), then the tensors in order, and is padded with spaces to a multiple of 8
 * bytes, byte for byte as the reference implementation writes it.
 * Returns NNCL_ERR_INVALID_ARG for arguments that would not make a file this
 * reader accepts (a bad name, dtype or shape, duplicate names, a metadata
 * value of 1024 bytes or more), and NNCL_ERR_IO naming the path and the system
 * error, after removing the temporary file, when writing fails.
 */
nncl_status nncl__st_write(const char *path, const nncl__st_tensor *tensors, size_t n,
                           const char *const *meta_keys, const char *const *meta_values, size_t n_meta);

#endif /* NNCL_IO_SAFETENSORS_H */
