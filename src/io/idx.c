/*
 * idx.c - reading IDX files (the MNIST format), gzipped or raw.
 *
 * The file is read through the shared stream of stream.h, which decompresses
 * a gzip stream and passes any other content through unchanged. The rules
 * enforced:
 *   - the magic number is the bytes 0x00 0x00 TYPE NDIM;
 *   - TYPE must be 0x08 (unsigned byte); the other IDX types (0x09 signed
 *     byte, 0x0B short, 0x0C int, 0x0D float, 0x0E double) are refused by
 *     name, anything else as unknown;
 *   - NDIM is 1..NNCL_MAX_DIMS, followed by NDIM big-endian uint32 sizes whose
 *     product is at most IDX_MAX_ELEMS;
 *   - the data is exactly that many bytes: a short file is truncated, and a
 *     file with bytes after the data is refused;
 *   - a corrupt or cut-off gzip stream is a format error.
 * The data buffer grows as bytes actually arrive (nncl__stream_read_data), so
 * a tiny file that claims a huge shape fails as truncated without a huge
 * allocation first.
 */
#include <inttypes.h>
#include <string.h>

#include "internal.h"
#include "io/stream.h"

/* The largest element count accepted (2^31): 2 GiB of unsigned bytes. */
#define IDX_MAX_ELEMS ((uint64_t)1 << 31)

/* The name of an IDX element type, or NULL for a code the format does not define. */
static const char *idx_type_name(unsigned code)
{
    switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    }
    return NULL;
}

/* Parses and checks the header; fills the shape of *a and the element count. */
static nncl_status read_header(nncl__stream *in, nncl_array *a, uint64_t *numel)
{
    const char *path = in->path;
    unsigned char magic[4];
    size_t got;
    NNCL_TRY(nncl__stream_read_up_to(in, magic, sizeof magic, &got));
    if (got < sizeof magic)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: truncated: the IDX magic number needs 4 bytes, found %zu", path, got);
    if (magic[0] != 0 || magic[1] != 0)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: bad magic number 0x%02X%02X%02X%02X (an IDX file starts with 0x0000)",
                          path, magic[0], magic[1], magic[2], magic[3]);
    unsigned type = magic[2];
    if (type != 0x08) {
        const char *name = idx_type_name(type);
        if (name != NULL)
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                              "%s: IDX element type 0x%02X (%s) is not supported; only 0x08 (unsigned byte) is",
                              path, type, name);
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: unknown IDX element type 0x%02X", path, type);
    }
    int ndim = magic[3];
    if (ndim < 1 || ndim > NNCL_MAX_DIMS)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: IDX rank %d is outside 1..%d", path, ndim,
                          NNCL_MAX_DIMS);

    unsigned char dims[4 * NNCL_MAX_DIMS];
    size_t need = 4 * (size_t)ndim;
    NNCL_TRY(nncl__stream_read_up_to(in, dims, need, &got));
    if (got < need)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: truncated: the %d dimensions need %zu bytes, found %zu", path, ndim,
                          need, got);
    int has_zero = 0;
    for (int i = 0; i < ndim; i++) {
        const unsigned char *p = dims + 4 * i;
        uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
        a->shape[i] = d;
        if (d == 0) has_zero = 1;
    }
    a->ndim = ndim;

    /* Every size is below 2^32 and the running product is at most 2^31 before
     * each step, so the product cannot overflow 64 bits. */
    uint64_t n = 1;
    for (int i = 0; i < ndim && !has_zero; i++) {
        n *= (uint64_t)a->shape[i];
        if (n > IDX_MAX_ELEMS) {
            char s[160];
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                              "%s: shape %s has more than %" PRIu64 " elements, the most this reader accepts",
                              path, nncl_shape_format(ndim, a->shape, s, sizeof s), IDX_MAX_ELEMS);
        }
    }
    *numel = has_zero ? 0 : n;
    return NNCL_OK;
}

nncl_status nncl_idx_read(const char *path, nncl_array *out)
{
    NNCL_CHECK_ARG(NULL, out);
    memset(out, 0, sizeof *out);
    NNCL_CHECK_ARG(NULL, path);

    nncl__stream in;
    NNCL_TRY(nncl__stream_open(path, &in));
    nncl_array a = {.dtype = NNCL_DTYPE_U8};
    uint64_t numel = 0;
    void *data = NULL;
    nncl_status st = read_header(&in, &a, &numel);
    if (st == NNCL_OK) st = nncl__stream_read_data(&in, (size_t)numel, &data);
    nncl__stream_close(&in);
    if (st != NNCL_OK) return st;
    a.data = data;
    *out = a;
    return NNCL_OK;
}
