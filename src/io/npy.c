/*
 * npy.c - reading and writing NumPy .npy files.
 *
 * Reading goes through the shared stream of stream.h and enforces:
 *   - a plain file: a gzip-compressed one is refused as not a .npy file;
 *   - the magic string "\x93NUMPY", then format version 1.x (a 2-byte
 *     little-endian header length) or 2.x / 3.x (a 4-byte length);
 *   - a header length of at most NPY_MAX_HEADER bytes, all of them present;
 *   - a header that is a Python dict literal with exactly the keys 'descr',
 *     'fortran_order' and 'shape', in any order, with any whitespace and an
 *     optional trailing comma; it is parsed by the small scanner below, never
 *     evaluated;
 *   - descr '<f4', '|u1' or '<u1', or '<i8'; anything else is refused by name;
 *   - fortran_order False;
 *   - a shape tuple of 0..NNCL_MAX_DIMS non-negative integers whose product is
 *     at most NPY_MAX_ELEMS;
 *   - exactly numel * itemsize bytes of data after the header: a short file is
 *     truncated, and bytes after the data are refused.
 * The data is copied as is, so the host must be little-endian; a big-endian
 * host gets NNCL_ERR_UNSUPPORTED.
 *
 * Writing produces format version 1.0 as NumPy does: the dict, padded with
 * spaces and ended by '\n' so that the whole header is a multiple of 64 bytes.
 * The file is written atomically by nncl__atomic_write: to "<path>.tmp.<pid>",
 * flushed and fsynced, then renamed over `path`; on failure the temporary
 * file is removed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "io/stream.h"

/* The largest header accepted; NumPy's own limit is far smaller by default. */
#define NPY_MAX_HEADER ((uint32_t)1 << 20)

/* The largest element count accepted (2^31). */
#define NPY_MAX_ELEMS ((uint64_t)1 << 31)

/* Headers are padded so that the data starts at a multiple of this. */
#define NPY_ALIGN 64

static const char NPY_MAGIC[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* ---- the header scanner ------------------------------------------------------ */

/* A cursor over the header text; `path` is for messages. */
typedef struct scanner {
    const char *path;
    const char *p, *end;
} scanner;

static void skip_space(scanner *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

/* Consumes `c` (after whitespace) if it is next; returns whether it was. */
static int accept_char(scanner *s, char c)
{
    skip_space(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return 1;
    }
    return 0;
}

/* The byte offset of the cursor in the header, for messages. */
static long offset_of(const scanner *s, const char *start)
{
    return (long)(s->p - start);
}

/* Parses a quoted Python string without escapes into buf (size bytes). */
static nncl_status scan_string(scanner *s, const char *start, char *buf, size_t size)
{
    skip_space(s);
    if (s->p >= s->end || (*s->p != '\'' && *s->p != '"'))
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: header: expected a quoted string at offset %ld",
                          s->path, offset_of(s, start));
    char quote = *s->p++;
    const char *close = memchr(s->p, quote, (size_t)(s->end - s->p));
    if (close == NULL)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: header: unterminated string at offset %ld",
                          s->path, offset_of(s, start) - 1);
    size_t len = (size_t)(close - s->p);
    if (len >= size)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: header: string at offset %ld is too long",
                          s->path, offset_of(s, start) - 1);
    for (size_t i = 0; i < len; i++) {
        if (s->p[i] == '\\' || s->p[i] == '\n')
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                              "%s: header: unsupported character in a string at offset %ld", s->path,
                              offset_of(s, start) + (long)i);
    }
    memcpy(buf, s->p, len);
    buf[len] = '\0';
    s->p = close + 1;
    return NNCL_OK;
}

/* Parses the Python literal True or False. */
static nncl_status scan_bool(scanner *s, const char *start, int *value)
{
    skip_space(s);
    size_t left = (size_t)(s->end - s->p);
    if (left >= 4 && memcmp(s->p, "True", 4) == 0) {
        s->p += 4;
        *value = 1;
    } else if (left >= 5 && memcmp(s->p, "False", 5) == 0) {
        s->p += 5;
        *value = 0;
    } else {
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: header: fortran_order must be True or False (offset %ld)", s->path,
                          offset_of(s, start));
    }
    return NNCL_OK;
}

/*
 * Parses a shape tuple: "()", "(3,)", "(2, 3)", "(2, 3,)". Python 2's long
 * suffix ("3L") is accepted; signs are not. A single element needs its comma,
 * as in Python, since "(3)" is the integer 3, not a tuple.
 */
static nncl_status scan_shape(scanner *s, const char *start, int *ndim, int64_t *shape)
{
    if (!accept_char(s, '('))
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: header: shape must be a tuple (offset %ld)",
                          s->path, offset_of(s, start));
    int n = 0, trailing_comma = 0;
    while (!accept_char(s, ')')) {
        skip_space(s);
        if (s->p < s->end && (*s->p == '-' || *s->p == '+'))
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                              "%s: header: shape dimension %d is signed; sizes must be non-negative integers",
                              s->path, n);
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                              "%s: header: expected a dimension or ')' in the shape at offset %ld",
                              s->path, offset_of(s, start));
        if (n == NNCL_MAX_DIMS)
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: shape has more than %d dimensions", s->path,
                              NNCL_MAX_DIMS);
        uint64_t v = 0;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
            v = v * 10 + (uint64_t)(*s->p++ - '0');
            if (v > NPY_MAX_ELEMS)
                return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                                  "%s: shape dimension %d is larger than %" PRIu64 " elements", s->path,
                                  n, NPY_MAX_ELEMS);
        }
        if (s->p < s->end && (*s->p == 'L' || *s->p == 'l')) s->p++;
        shape[n++] = (int64_t)v;
        trailing_comma = accept_char(s, ',');
        if (!trailing_comma) {
            if (accept_char(s, ')')) break;
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                              "%s: header: expected ',' or ')' in the shape at offset %ld", s->path,
                              offset_of(s, start));
        }
    }
    if (n == 1 && !trailing_comma)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: header: shape (%" PRId64 ") is an integer, not a tuple; write (%" PRId64 ",)",
                          s->path, shape[0], shape[0]);
    *ndim = n;
    return NNCL_OK;
}

/* The parsed header dict. */
typedef struct npy_header {
    char descr[32];
    int fortran_order;
    int ndim;
    int64_t shape[NNCL_MAX_DIMS];
} npy_header;

/* Parses the dict literal of `len` bytes at `text`. */
static nncl_status parse_header(const char *path, const char *text, size_t len, npy_header *h)
{
    scanner sc = {.path = path, .p = text, .end = text + len};
    scanner *s = &sc;
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (!accept_char(s, '{'))
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: header does not start with '{'", path);
    while (!accept_char(s, '}')) {
        char key[32];
        NNCL_TRY(scan_string(s, text, key, sizeof key));
        if (!accept_char(s, ':'))
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: header: expected ':' after '%s'", path, key);
        int *seen;
        if (strcmp(key, "descr") == 0) {
            seen = &seen_descr;
            NNCL_TRY(scan_string(s, text, h->descr, sizeof h->descr));
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = &seen_fortran;
            NNCL_TRY(scan_bool(s, text, &h->fortran_order));
        } else if (strcmp(key, "shape") == 0) {
            seen = &seen_shape;
            NNCL_TRY(scan_shape(s, text, &h->ndim, h->shape));
        } else {
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: header has an unexpected key '%s'", path, key);
        }
        if (*seen)
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: header repeats the key '%s'", path, key);
        *seen = 1;
        if (!accept_char(s, ',')) {
            if (accept_char(s, '}')) break;
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: header: expected ',' or '}' at offset %ld",
                              path, offset_of(s, text));
        }
    }
    skip_space(s);
    if (s->p != s->end)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: header has text after the closing '}' (offset %ld)",
                          path, offset_of(s, text));
    if (!seen_descr || !seen_fortran || !seen_shape)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: header lacks the key '%s'", path,
                          !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
    return NNCL_OK;
}

/* ---- dtypes ---------------------------------------------------------------------- */

/* The descrs this library reads; the first one listed for a dtype is the one NumPy writes. */
static const struct {
    const char *descr;
    nncl_dtype dtype;
} DESCRS[] = {
    {"<f4", NNCL_DTYPE_F32},
    {"|u1", NNCL_DTYPE_U8},
    {"<u1", NNCL_DTYPE_U8},
    {"<i8", NNCL_DTYPE_I64},
};

/* Maps a descr to a dtype; returns 0 for one this library does not read. */
static int descr_dtype(const char *descr, nncl_dtype *dtype)
{
    for (size_t i = 0; i < sizeof DESCRS / sizeof DESCRS[0]; i++) {
        if (strcmp(descr, DESCRS[i].descr) == 0) {
            *dtype = DESCRS[i].dtype;
            return 1;
        }
    }
    return 0;
}

/* The descr NumPy writes for a dtype, or NULL for an unknown dtype. */
static const char *dtype_descr(nncl_dtype dtype)
{
    for (size_t i = 0; i < sizeof DESCRS / sizeof DESCRS[0]; i++)
        if (DESCRS[i].dtype == dtype) return DESCRS[i].descr;
    return NULL;
}

/* ---- reading --------------------------------------------------------------------- */

/* Reads and checks the preamble and header of an open file; fills the array's shape. */
static nncl_status read_header(nncl__stream *in, nncl_array *a, size_t *bytes)
{
    const char *path = in->path;
    unsigned char pre[12];
    size_t got = 0;
    /* A gzip stream starts with 0x1F 0x8B, not the magic string: it is refused unread. */
    if (!in->compressed) NNCL_TRY(nncl__stream_read_up_to(in, pre, 8, &got));
    if (!in->compressed && got < sizeof NPY_MAGIC && memcmp(pre, NPY_MAGIC, got) == 0)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: truncated: the file has %zu bytes, the magic string alone needs 6", path, got);
    if (in->compressed || got < sizeof NPY_MAGIC || memcmp(pre, NPY_MAGIC, sizeof NPY_MAGIC) != 0)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: not a .npy file (it does not start with \"\\x93NUMPY\")", path);
    if (got < 8)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: truncated: the format version is missing", path);
    int major = pre[6], minor = pre[7];
    size_t len_bytes;
    if (major == 1) len_bytes = 2;
    else if (major == 2 || major == 3) len_bytes = 4;
    else
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: unsupported .npy format version %d.%d", path,
                          major, minor);
    NNCL_TRY(nncl__stream_read_up_to(in, pre + 8, len_bytes, &got));
    if (got < len_bytes)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: truncated: the header length is missing", path);
    uint32_t hlen = (uint32_t)pre[8] | (uint32_t)pre[9] << 8;
    if (len_bytes == 4) hlen |= (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
    if (hlen > NPY_MAX_HEADER)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: header length %" PRIu32 " is over the limit of %" PRIu32,
                          path, hlen, NPY_MAX_HEADER);

    char *text = malloc(hlen > 0 ? hlen : 1);
    if (text == NULL)
        return NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "%s: cannot allocate the %" PRIu32 "-byte header",
                          path, hlen);
    npy_header h = {.ndim = 0};
    nncl_status st = nncl__stream_read_up_to(in, text, hlen, &got);
    if (st == NNCL_OK && got < hlen)
        st = NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: truncated: expected a %" PRIu32 "-byte header, found %zu bytes",
                        path, hlen, got);
    if (st == NNCL_OK) st = parse_header(path, text, hlen, &h);
    free(text);
    NNCL_TRY(st);

    if (!descr_dtype(h.descr, &a->dtype))
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: unsupported dtype '%s' (supported: '<f4', '|u1', '<u1', '<i8')", path,
                          h.descr);
    if (h.fortran_order)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: Fortran-order arrays are not supported (fortran_order is True)", path);
    a->ndim = h.ndim;
    uint64_t n = 1;
    int has_zero = 0;
    for (int i = 0; i < h.ndim; i++) {
        a->shape[i] = h.shape[i];
        if (h.shape[i] == 0) has_zero = 1;
    }
    /* Each size is at most 2^31 and the running product at most 2^31, so no overflow. */
    for (int i = 0; i < h.ndim && !has_zero; i++) {
        n *= (uint64_t)h.shape[i];
        if (n > NPY_MAX_ELEMS) {
            char s[160];
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                              "%s: shape %s has more than %" PRIu64 " elements, the most this reader accepts",
                              path, nncl_shape_format(h.ndim, h.shape, s, sizeof s), NPY_MAX_ELEMS);
        }
    }
    if (has_zero) n = 0;
    *bytes = (size_t)n * nncl_dtype_size(a->dtype);
    return NNCL_OK;
}

nncl_status nncl_npy_read(const char *path, nncl_array *out)
{
    NNCL_CHECK_ARG(NULL, out);
    memset(out, 0, sizeof *out);
    NNCL_CHECK_ARG(NULL, path);
    if (!host_is_little_endian())
        return NNCL_ERROR(NULL, NNCL_ERR_UNSUPPORTED, "%s: .npy files need a little-endian host", path);

    nncl__stream in;
    NNCL_TRY(nncl__stream_open(path, &in));
    nncl_array a = {.ndim = 0};
    size_t bytes = 0;
    void *data = NULL;
    nncl_status st = read_header(&in, &a, &bytes);
    if (st == NNCL_OK) st = nncl__stream_read_data(&in, bytes, &data);
    nncl__stream_close(&in);
    if (st != NNCL_OK) return st;
    a.data = data;
    *out = a;
    return NNCL_OK;
}

/* ---- writing --------------------------------------------------------------------- */

/*
 * Formats the whole header (magic, version, length, padded dict) into buf and
 * returns its length, a multiple of NPY_ALIGN.
 */
static size_t format_header(const nncl_array *a, char *buf, size_t size)
{
    char dict[512];
    size_t len = (size_t)snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                                  dtype_descr(a->dtype));
    for (int i = 0; i < a->ndim; i++)
        len += (size_t)snprintf(dict + len, sizeof dict - len, i ? ", %" PRId64 : "%" PRId64, a->shape[i]);
    len += (size_t)snprintf(dict + len, sizeof dict - len, "%s), }", a->ndim == 1 ? "," : "");

    /* The preamble is 10 bytes; the dict, its padding and '\n' fill up to the next multiple of 64. */
    size_t total = (10 + len + 1 + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    if (total > size) return 0;
    size_t hlen = total - 10;
    memcpy(buf, NPY_MAGIC, sizeof NPY_MAGIC);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)(hlen & 0xFF);
    buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, dict, len);
    memset(buf + 10 + len, ' ', hlen - len - 1);
    buf[total - 1] = '\n';
    return total;
}

nncl_status nncl_npy_write(const char *path, const nncl_array *a)
{
    NNCL_CHECK_ARG(NULL, path);
    NNCL_CHECK_ARG(NULL, a);
    if (!host_is_little_endian())
        return NNCL_ERROR(NULL, NNCL_ERR_UNSUPPORTED, "%s: .npy files need a little-endian host", path);
    if (dtype_descr(a->dtype) == NULL)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: unknown dtype %d", path, (int)a->dtype);
    if (a->ndim < 0 || a->ndim > NNCL_MAX_DIMS)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: ndim %d is outside 0..%d", path, a->ndim,
                          NNCL_MAX_DIMS);
    uint64_t n = 1;
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] < 0) {
            char s[160];
            return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: bad shape %s", path,
                              nncl_shape_format(a->ndim, a->shape, s, sizeof s));
        }
    }
    for (int i = 0; i < a->ndim && n != 0; i++) {
        if (a->shape[i] != 0 && n > (uint64_t)INT64_MAX / (uint64_t)a->shape[i]) {
            char s[160];
            return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: shape %s has too many elements", path,
                              nncl_shape_format(a->ndim, a->shape, s, sizeof s));
        }
        n *= (uint64_t)a->shape[i];
    }
    size_t elem = nncl_dtype_size(a->dtype);
    if (n > SIZE_MAX / elem)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: the array is larger than memory", path);
    size_t bytes = (size_t)n * elem;
    if (bytes > 0 && a->data == NULL)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: the array has no data", path);

    char header[1024];
    size_t header_len = format_header(a, header, sizeof header);
    if (header_len == 0)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: the header does not fit", path);

    const void *const parts[2] = {header, a->data};
    const size_t sizes[2] = {header_len, bytes};
    return nncl__atomic_write(path, parts, sizes, 2);
}
