/*
 * idx.c - reading IDX files (the MNIST format), gzipped or raw.
 *
 * The file is read through zlib's gz* functions, which decompress a gzip
 * stream and pass any other content through unchanged. The rules enforced:
 *   - the magic number is the bytes 0x00 0x00 TYPE NDIM;
 *   - TYPE must be 0x08 (unsigned byte); the other IDX types (0x09 signed
 *     byte, 0x0B short, 0x0C int, 0x0D float, 0x0E double) are refused by
 *     name, anything else as unknown;
 *   - NDIM is 1..NNCL_MAX_DIMS, followed by NDIM big-endian uint32 sizes whose
 *     product is at most IDX_MAX_ELEMS;
 *   - the data is exactly that many bytes: a short file is truncated, and a
 *     file with bytes after the data is refused;
 *   - a corrupt or cut-off gzip stream is a format error.
 * The data buffer grows as bytes actually arrive, so a tiny file that claims
 * a huge shape fails as truncated without a huge allocation first.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "internal.h"

/* The largest element count accepted (2^31): 2 GiB of unsigned bytes. */
#define IDX_MAX_ELEMS ((uint64_t)1 << 31)

/* The largest single gzread request; gzread takes an unsigned int length. */
#define IDX_READ_CHUNK ((size_t)1 << 30)

/* The first allocation for the data; it doubles up to the full size as data arrives. */
#define IDX_FIRST_ALLOC ((size_t)1 << 20)

/* Records the error of a failed gz* call: a system error, memory, or a bad stream. */
static nncl_status stream_error(const char *path, gzFile gz, int read_errno)
{
    int errnum = Z_OK;
    const char *msg = gzerror(gz, &errnum);
    if (errnum == Z_ERRNO)
        return NNCL_ERROR(NULL, NNCL_ERR_IO, "%s: read failed: %s", path, strerror(read_errno));
    if (errnum == Z_MEM_ERROR)
        return NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "%s: out of memory while decompressing", path);
    if (msg == NULL || msg[0] == '\0') msg = "unknown zlib error";
    /* zlib prefixes its message with the path and ": "; the message here has the path already. */
    size_t plen = strlen(path);
    if (strncmp(msg, path, plen) == 0 && msg[plen] == ':' && msg[plen + 1] == ' ') msg += plen + 2;
    return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: corrupt gzip stream: %s", path, msg);
}

/*
 * Reads up to n bytes into buf, stopping early only at the end of the data;
 * *got receives the count. Any zlib error, including a gzip stream that ends
 * before its trailer, is recorded and returned.
 */
static nncl_status read_up_to(const char *path, gzFile gz, unsigned char *buf, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        size_t want = n - *got;
        if (want > IDX_READ_CHUNK) want = IDX_READ_CHUNK;
        errno = 0;
        int r = gzread(gz, buf + *got, (unsigned)want);
        int read_errno = errno;
        int errnum = Z_OK;
        gzerror(gz, &errnum);
        if (r < 0 || errnum != Z_OK) return stream_error(path, gz, read_errno);
        if (r == 0) break;
        *got += (size_t)r;
    }
    return NNCL_OK;
}

/* Counts the bytes left in the stream (for the trailing-bytes message). */
static nncl_status count_rest(const char *path, gzFile gz, uint64_t *count)
{
    unsigned char scratch[4096];
    size_t got;
    do {
        NNCL_TRY(read_up_to(path, gz, scratch, sizeof scratch, &got));
        *count += got;
    } while (got == sizeof scratch);
    return NNCL_OK;
}

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
static nncl_status read_header(const char *path, gzFile gz, nncl_array *a, uint64_t *numel)
{
    unsigned char magic[4];
    size_t got;
    NNCL_TRY(read_up_to(path, gz, magic, sizeof magic, &got));
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
    NNCL_TRY(read_up_to(path, gz, dims, need, &got));
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

/*
 * Reads exactly `total` bytes of data and checks that nothing follows. The
 * buffer starts small and doubles (never past `total`) only as data arrives.
 */
static nncl_status read_data(const char *path, gzFile gz, size_t total, unsigned char **data)
{
    *data = NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, have = 0;
    nncl_status st = NNCL_OK;
    while (have < total) {
        if (have == cap) {
            size_t grown = cap == 0 ? IDX_FIRST_ALLOC : (cap > total / 2 ? total : cap * 2);
            if (grown > total) grown = total;
            unsigned char *p = realloc(buf, grown);
            if (p == NULL) {
                st = NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes of data",
                                path, grown);
                goto fail;
            }
            buf = p;
            cap = grown;
        }
        size_t got;
        st = read_up_to(path, gz, buf + have, cap - have, &got);
        if (st != NNCL_OK) goto fail;
        have += got;
        if (have < cap) break;
    }
    if (have < total) {
        st = NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: truncated: expected %zu bytes of data, found %zu",
                        path, total, have);
        goto fail;
    }
    uint64_t extra = 0;
    st = count_rest(path, gz, &extra);
    if (st != NNCL_OK) goto fail;
    if (extra > 0) {
        st = NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                        "%s: has %" PRIu64 " trailing bytes after the %zu bytes of data", path, extra,
                        total);
        goto fail;
    }
    *data = buf;
    return NNCL_OK;

fail:
    free(buf);
    return st;
}

nncl_status nncl_idx_read(const char *path, nncl_array *out)
{
    NNCL_CHECK_ARG(NULL, out);
    memset(out, 0, sizeof *out);
    NNCL_CHECK_ARG(NULL, path);

    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (gz == NULL)
        return NNCL_ERROR(NULL, NNCL_ERR_IO, "%s: cannot open: %s", path,
                          errno != 0 ? strerror(errno) : "out of memory");
    /* A larger buffer than zlib's 8 KiB default; a failure here only keeps the default. */
    gzbuffer(gz, 1u << 17);

    nncl_array a = {.dtype = NNCL_DTYPE_U8};
    uint64_t numel = 0;
    unsigned char *data = NULL;
    nncl_status st = read_header(path, gz, &a, &numel);
    if (st == NNCL_OK) st = read_data(path, gz, (size_t)numel, &data);
    gzclose_r(gz);
    if (st != NNCL_OK) return st;
    a.data = data;
    *out = a;
    return NNCL_OK;
}
