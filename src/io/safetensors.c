/*
 * safetensors.c - reading and writing safetensors files; see safetensors.h.
 *
 * The reader loads the whole file, then parses the header with a strict
 * recursive-descent parser for exactly the JSON the format uses: objects,
 * arrays, strings (escapes included, \uXXXX with surrogate pairs, raw bytes
 * checked to be UTF-8) and non-negative integers. Floats, booleans, null,
 * leading zeros, unknown keys in a tensor entry, duplicate keys and non-string
 * metadata values are refused. The header must begin with '{', and only JSON
 * whitespace may follow the closing '}'. Then, as the reference
 * implementation does, it checks every tensor's dtype, shape and offsets
 * (with overflow-checked arithmetic), that names are unique, and that the
 * tensors, sorted by offset, cover the data buffer exactly: no overlap, no
 * gap, no slack at the end.
 *
 * Known dtypes that nncl cannot load (F16, BF16, F64, ...) are validated like
 * the others and reported with NNCL_ERR_UNSUPPORTED only once the whole file
 * has proved well-formed, so that NNCL_ERR_FORMAT always means a broken file.
 *
 * The writer builds the header as the reference does (compact JSON, then
 * spaces to a multiple of 8 bytes) and writes it with nncl__atomic_write,
 * through a temporary file that is synced and renamed into place.
 */
#define _POSIX_C_SOURCE 200809L /* fileno, fstat */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "io/safetensors.h"
#include "io/stream.h"

/* ---- dtypes ------------------------------------------------------------------ */

typedef struct dtype_info {
    const char *name;
    unsigned bits;    /* bits per element */
    int supported;    /* whether nncl can load it */
    nncl_dtype dtype; /* when supported */
} dtype_info;

/* Every dtype of the format; only the first three can be loaded. */
static const dtype_info DTYPES[] = {
    {"F32", 32, 1, NNCL_DTYPE_F32},    {"I64", 64, 1, NNCL_DTYPE_I64},
    {"U8", 8, 1, NNCL_DTYPE_U8},       {"BOOL", 8, 0, NNCL_DTYPE_U8},
    {"I8", 8, 0, NNCL_DTYPE_U8},       {"F8_E5M2", 8, 0, NNCL_DTYPE_U8},
    {"F8_E4M3", 8, 0, NNCL_DTYPE_U8},  {"F8_E8M0", 8, 0, NNCL_DTYPE_U8},
    {"I16", 16, 0, NNCL_DTYPE_U8},     {"U16", 16, 0, NNCL_DTYPE_U8},
    {"F16", 16, 0, NNCL_DTYPE_U8},     {"BF16", 16, 0, NNCL_DTYPE_U8},
    {"I32", 32, 0, NNCL_DTYPE_U8},     {"U32", 32, 0, NNCL_DTYPE_U8},
    {"F64", 64, 0, NNCL_DTYPE_U8},     {"U64", 64, 0, NNCL_DTYPE_U8},
    {"C64", 64, 0, NNCL_DTYPE_U8},     {"F4", 4, 0, NNCL_DTYPE_U8},
    {"F6_E2M3", 6, 0, NNCL_DTYPE_U8},  {"F6_E3M2", 6, 0, NNCL_DTYPE_U8},
};

static const dtype_info *dtype_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (strcmp(DTYPES[i].name, name) == 0) return &DTYPES[i];
    return NULL;
}

/* The header name of a loadable dtype, or NULL. */
static const char *dtype_name(nncl_dtype dtype)
{
    switch (dtype) {
    case NNCL_DTYPE_F32: return "F32";
    case NNCL_DTYPE_U8: return "U8";
    case NNCL_DTYPE_I64: return "I64";
    }
    return NULL;
}

/* ---- UTF-8 ------------------------------------------------------------------- */

/*
 * Returns the length (1..4) of the well-formed UTF-8 sequence at s, which has
 * `avail` bytes, or 0 when it is malformed: overlong forms, surrogates and
 * code points above U+10FFFF are malformed.
 */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    if (avail == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* the range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else return 0;
    if (avail < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

static int utf8_valid(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len(s + i, n - i);
        if (k == 0) return 0;
        i += k;
    }
    return 1;
}

/* Encodes code point cp (at most U+10FFFF, not a surrogate) into out; returns the length. */
static size_t utf8_encode(uint32_t cp, unsigned char out[4])
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- the header parser --------------------------------------------------------- */

typedef struct parser {
    const char *path;
    const unsigned char *s; /* the header */
    size_t n;               /* its length */
    size_t pos;             /* the cursor, relative to the header */
} parser;

/* Records a format error at the cursor; positions are file offsets. */
#define SYNTAX(ps, fmt, ...)                                                                       \
    NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: bad safetensors header at byte %zu: " fmt, (ps)->path,   \
               (ps)->pos + 8, __VA_ARGS__)

static int peek(const parser *ps) { return ps->pos < ps->n ? ps->s[ps->pos] : -1; }

static void skip_ws(parser *ps)
{
    while (ps->pos < ps->n) {
        unsigned char c = ps->s[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        ps->pos++;
    }
}

/* Describes what the cursor is on, for messages. */
static const char *found(const parser *ps, char buf[32])
{
    int c = peek(ps);
    if (c < 0) snprintf(buf, 32, "the end of the header");
    else if (c >= 0x20 && c < 0x7F) snprintf(buf, 32, "'%c'", c);
    else snprintf(buf, 32, "byte 0x%02x", (unsigned)c);
    return buf;
}

/* Skips whitespace and consumes `c`; `where` says what it belongs to. */
static nncl_status expect(parser *ps, char c, const char *where)
{
    char f[32];
    skip_ws(ps);
    if (peek(ps) != (unsigned char)c) return SYNTAX(ps, "expected '%c' %s, found %s", c, where, found(ps, f));
    ps->pos++;
    return NNCL_OK;
}

/* Skips whitespace and consumes ',' (returns 1) or `close` (returns 0); anything else is an error. */
static nncl_status next_or_close(parser *ps, char close, const char *where, int *more)
{
    char f[32];
    skip_ws(ps);
    int c = peek(ps);
    if (c == ',' || c == (unsigned char)close) {
        ps->pos++;
        *more = c == ',';
        return NNCL_OK;
    }
    return SYNTAX(ps, "expected ',' or '%c' %s, found %s", close, where, found(ps, f));
}

static int hex4(const parser *ps, size_t at, uint32_t *v)
{
    if (at > ps->n || ps->n - at < 4) return 0;
    uint32_t x = 0;
    for (size_t i = 0; i < 4; i++) {
        unsigned char c = ps->s[at + i];
        uint32_t d;
        if (c >= '0' && c <= '9') d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') d = (uint32_t)(c - 'A' + 10);
        else return 0;
        x = x * 16 + d;
    }
    *v = x;
    return 1;
}

/*
 * Parses a string into dst (cap bytes, NUL included). `what` names it in
 * messages. Refuses control characters, malformed UTF-8, bad escapes, unpaired
 * surrogates, NUL characters, and strings of cap bytes or more.
 */
static nncl_status parse_string(parser *ps, char *dst, size_t cap, const char *what)
{
    char f[32];
    skip_ws(ps);
    if (peek(ps) != '"') return SYNTAX(ps, "expected a string for %s, found %s", what, found(ps, f));
    size_t start = ps->pos, len = 0;
    ps->pos++;
    for (;;) {
        if (ps->pos >= ps->n)
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                              "%s: bad safetensors header: the string for %s starting at byte %zu is unterminated",
                              ps->path, what, start + 8);
        unsigned char c = ps->s[ps->pos], enc[4];
        size_t k;
        if (c == '"') {
            ps->pos++;
            break;
        }
        if (c == '\\') {
            if (ps->n - ps->pos < 2)
                return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                                  "%s: bad safetensors header: the string for %s starting at byte %zu is unterminated",
                                  ps->path, what, start + 8);
            size_t used = 2;
            k = 1;
            switch (ps->s[ps->pos + 1]) {
            case '"': enc[0] = '"'; break;
            case '\\': enc[0] = '\\'; break;
            case '/': enc[0] = '/'; break;
            case 'b': enc[0] = '\b'; break;
            case 'f': enc[0] = '\f'; break;
            case 'n': enc[0] = '\n'; break;
            case 'r': enc[0] = '\r'; break;
            case 't': enc[0] = '\t'; break;
            case 'u': {
                uint32_t cp, lo;
                if (!hex4(ps, ps->pos + 2, &cp))
                    return SYNTAX(ps, "%s", "a \\u escape needs four hexadecimal digits");
                used = 6;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    size_t at = ps->pos + 6;
                    if (ps->n - at < 2 || ps->s[at] != '\\' || ps->s[at + 1] != 'u' || !hex4(ps, at + 2, &lo) ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return SYNTAX(ps, "%s", "a high surrogate escape is not followed by a low one");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    used = 12;
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return SYNTAX(ps, "%s", "a low surrogate escape without a high one");
                }
                if (cp == 0) return SYNTAX(ps, "%s", "\\u0000 is not allowed in a string");
                k = utf8_encode(cp, enc);
                break;
            }
            default:
                return SYNTAX(ps, "%s", "unknown escape sequence in a string");
            }
            ps->pos += used;
        } else if (c < 0x20) {
            return SYNTAX(ps, "control character 0x%02x in the string for %s", (unsigned)c, what);
        } else {
            k = utf8_len(ps->s + ps->pos, ps->n - ps->pos);
            if (k == 0) return SYNTAX(ps, "invalid UTF-8 in the string for %s", what);
            memcpy(enc, ps->s + ps->pos, k);
            ps->pos += k;
        }
        if (k >= cap - len)
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                              "%s: bad safetensors header: %s starting at byte %zu is longer than %zu bytes",
                              ps->path, what, start + 8, cap - 1);
        memcpy(dst + len, enc, k);
        len += k;
    }
    dst[len] = '\0';
    return NNCL_OK;
}

/* Parses a non-negative integer without leading zeros, fraction or exponent. */
static nncl_status parse_uint(parser *ps, uint64_t *v, const char *what)
{
    char f[32];
    skip_ws(ps);
    int c = peek(ps);
    if (c == '-') return SYNTAX(ps, "%s has a negative entry", what);
    if (c < '0' || c > '9') return SYNTAX(ps, "expected a non-negative integer in %s, found %s", what, found(ps, f));
    uint64_t x = 0;
    if (c == '0') {
        ps->pos++;
        c = peek(ps);
        if (c >= '0' && c <= '9') return SYNTAX(ps, "%s has an integer with a leading zero", what);
    } else {
        while (c >= '0' && c <= '9') {
            uint64_t d = (uint64_t)(c - '0');
            if (x > (UINT64_MAX - d) / 10) return SYNTAX(ps, "%s has an integer too large for 64 bits", what);
            x = x * 10 + d;
            ps->pos++;
            c = peek(ps);
        }
    }
    if (c == '.' || c == 'e' || c == 'E')
        return SYNTAX(ps, "%s has a number with a fraction or exponent where an integer belongs", what);
    *v = x;
    return NNCL_OK;
}

/* Parses an array of at most `max` non-negative integers. */
static nncl_status parse_uint_array(parser *ps, uint64_t *vals, size_t max, size_t *count, const char *what)
{
    char where[NNCL__ST_NAME_SIZE + 96];
    snprintf(where, sizeof where, "to open %s", what);
    NNCL_TRY(expect(ps, '[', where));
    *count = 0;
    skip_ws(ps);
    if (peek(ps) == ']') {
        ps->pos++;
        return NNCL_OK;
    }
    for (int more = 1; more;) {
        if (*count == max) return SYNTAX(ps, "%s has more than %zu entries", what, max);
        NNCL_TRY(parse_uint(ps, &vals[*count], what));
        (*count)++;
        NNCL_TRY(next_or_close(ps, ']', what, &more));
    }
    return NNCL_OK;
}

/* The first tensor of a dtype nncl cannot load, reported once the file is known to be well-formed. */
typedef struct unsupported {
    int found;
    char tensor[NNCL__ST_NAME_SIZE];
    const char *dtype;
} unsupported;

/*
 * Parses the entry of tensor t (whose name is already set) and checks it
 * against the data buffer of `data_size` bytes at `data`.
 */
static nncl_status parse_tensor(parser *ps, nncl__st_tensor *t, const unsigned char *data,
                                size_t data_size, unsupported *unsup)
{
    char key[NNCL__ST_NAME_SIZE], dtype[32], what[NNCL__ST_NAME_SIZE + 64];
    uint64_t shape[NNCL_MAX_DIMS], offs[3];
    size_t ndim = 0, noffs = 0;
    int have_dtype = 0, have_shape = 0, have_offs = 0;
    const char *name = t->name, *path = ps->path;

    snprintf(what, sizeof what, "the entry of tensor \"%s\"", name);
    NNCL_TRY(expect(ps, '{', what));
    skip_ws(ps);
    int more = 1;
    if (peek(ps) == '}') {
        ps->pos++;
        more = 0;
    }
    while (more) {
        snprintf(what, sizeof what, "a key in the entry of tensor \"%s\"", name);
        NNCL_TRY(parse_string(ps, key, sizeof key, what));
        NNCL_TRY(expect(ps, ':', "after a key"));
        int *have;
        if (strcmp(key, "dtype") == 0) {
            have = &have_dtype;
            snprintf(what, sizeof what, "the dtype of tensor \"%s\"", name);
            if (!*have) NNCL_TRY(parse_string(ps, dtype, sizeof dtype, what));
        } else if (strcmp(key, "shape") == 0) {
            have = &have_shape;
            snprintf(what, sizeof what, "the shape of tensor \"%s\"", name);
            if (!*have) NNCL_TRY(parse_uint_array(ps, shape, NNCL_MAX_DIMS, &ndim, what));
        } else if (strcmp(key, "data_offsets") == 0) {
            have = &have_offs;
            snprintf(what, sizeof what, "the data_offsets of tensor \"%s\"", name);
            if (!*have) NNCL_TRY(parse_uint_array(ps, offs, 2, &noffs, what));
        } else {
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                              "%s: tensor \"%s\" has an unknown key \"%s\" (allowed: dtype, shape, data_offsets)",
                              path, name, key);
        }
        if (*have)
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: tensor \"%s\" has the key \"%s\" twice", path, name, key);
        *have = 1;
        snprintf(what, sizeof what, "in the entry of tensor \"%s\"", name);
        NNCL_TRY(next_or_close(ps, '}', what, &more));
    }
    if (!have_dtype || !have_shape || !have_offs)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: tensor \"%s\" has no %s", path, name,
                          !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    if (noffs != 2)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: the data_offsets of tensor \"%s\" are not a [begin, end] pair (%zu entries)", path,
                          name, noffs);

    const dtype_info *info = dtype_by_name(dtype);
    if (info == NULL)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: tensor \"%s\" has an unknown dtype \"%s\"", path, name, dtype);
    unsigned bits = info->supported ? 8 * (unsigned)nncl_dtype_size(info->dtype) : info->bits;

    /* The element count and byte size, refusing any overflow as the reference does. */
    uint64_t numel = 1;
    for (size_t i = 0; i < ndim; i++) {
        if (shape[i] > (uint64_t)INT64_MAX)
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: dimension %zu of tensor \"%s\" is too large (%" PRIu64 ")",
                              path, i, name, shape[i]);
        if (shape[i] != 0 && numel > UINT64_MAX / shape[i])
            return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: the element count of tensor \"%s\" overflows", path, name);
        numel *= shape[i];
    }
    if (numel > UINT64_MAX / bits)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: the byte size of tensor \"%s\" overflows", path, name);
    if (numel * bits % 8 != 0)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: tensor \"%s\" has %" PRIu64 " elements of %s, which is not a whole number of bytes",
                          path, name, numel, dtype);
    uint64_t bytes = numel * bits / 8, begin = offs[0], end = offs[1];
    if (end < begin)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: the data_offsets [%" PRIu64 ", %" PRIu64 "] of tensor \"%s\" end before they begin",
                          path, begin, end, name);
    if (end > data_size)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: the data_offsets [%" PRIu64 ", %" PRIu64
                          "] of tensor \"%s\" run past the end of the %zu-byte data buffer",
                          path, begin, end, name, data_size);
    if (end - begin != bytes) {
        char s[200];
        int64_t sh[NNCL_MAX_DIMS];
        for (size_t i = 0; i < ndim; i++) sh[i] = (int64_t)shape[i];
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: tensor \"%s\" of dtype %s and shape %s needs %" PRIu64
                          " bytes, but its data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64,
                          path, name, dtype, nncl_shape_format((int)ndim, sh, s, sizeof s), bytes, begin, end,
                          end - begin);
    }
    if (!info->supported && !unsup->found) {
        unsup->found = 1;
        memcpy(unsup->tensor, name, sizeof unsup->tensor);
        unsup->dtype = info->name;
    }
    t->dtype = info->dtype;
    t->ndim = (int)ndim;
    for (size_t i = 0; i < ndim; i++) t->shape[i] = (int64_t)shape[i];
    t->begin = (size_t)begin;
    t->end = (size_t)end;
    t->data = data + begin;
    return NNCL_OK;
}

/* Parses the __metadata__ object into f's metadata arrays. */
static nncl_status parse_meta(parser *ps, nncl__st_file *f)
{
    char fd[32], what[NNCL__ST_NAME_SIZE + 64];
    size_t cap = 0;
    NNCL_TRY(expect(ps, '{', "to open __metadata__"));
    skip_ws(ps);
    if (peek(ps) == '}') {
        ps->pos++;
        return NNCL_OK;
    }
    for (int more = 1; more;) {
        if (f->n_meta == cap) {
            if (cap == NNCL__ST_MAX_META)
                return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: __metadata__ has more than %zu entries", ps->path,
                                  (size_t)NNCL__ST_MAX_META);
            size_t grown = cap ? 2 * cap : 8;
            if (grown > NNCL__ST_MAX_META) grown = NNCL__ST_MAX_META;
            char(*keys)[NNCL__ST_NAME_SIZE] = realloc(f->meta_keys, grown * sizeof *keys);
            if (keys == NULL) goto oom;
            f->meta_keys = keys;
            char(*values)[NNCL__ST_VALUE_SIZE] = realloc(f->meta_values, grown * sizeof *values);
            if (values == NULL) goto oom;
            f->meta_values = values;
            cap = grown;
        }
        char *key = f->meta_keys[f->n_meta], *value = f->meta_values[f->n_meta];
        NNCL_TRY(parse_string(ps, key, NNCL__ST_NAME_SIZE, "a __metadata__ key"));
        NNCL_TRY(expect(ps, ':', "after a __metadata__ key"));
        skip_ws(ps);
        if (peek(ps) != '"')
            return SYNTAX(ps, "the __metadata__ value for \"%s\" is not a string (found %s)", key, found(ps, fd));
        snprintf(what, sizeof what, "the __metadata__ value for \"%s\"", key);
        NNCL_TRY(parse_string(ps, value, NNCL__ST_VALUE_SIZE, what));
        f->n_meta++;
        NNCL_TRY(next_or_close(ps, '}', "in __metadata__", &more));
    }
    return NNCL_OK;
oom:
    return NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "%s: out of memory reading __metadata__", ps->path);
}

/* ---- checks across tensors ------------------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
    const nncl__st_tensor *x = *(const nncl__st_tensor *const *)a, *y = *(const nncl__st_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_offsets(const void *a, const void *b)
{
    const nncl__st_tensor *x = *(const nncl__st_tensor *const *)a, *y = *(const nncl__st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Checks that tensor names are unique and that the tensors, sorted by offset,
 * tile the data buffer exactly; then that metadata keys are unique.
 */
static nncl_status check_layout(const char *path, const nncl__st_file *f, size_t data_size)
{
    nncl_status st = NNCL_OK;
    const nncl__st_tensor **idx = NULL;
    const char **keys = NULL;
    if (f->n_tensors > 0) {
        idx = malloc(f->n_tensors * sizeof *idx);
        if (idx == NULL) goto oom;
        for (size_t i = 0; i < f->n_tensors; i++) idx[i] = &f->tensors[i];
        qsort(idx, f->n_tensors, sizeof *idx, cmp_name);
        for (size_t i = 1; i < f->n_tensors; i++)
            if (strcmp(idx[i - 1]->name, idx[i]->name) == 0) {
                st = NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: the tensor name \"%s\" appears more than once", path,
                                idx[i]->name);
                goto done;
            }
        qsort(idx, f->n_tensors, sizeof *idx, cmp_offsets);
    }
    size_t covered = 0;
    for (size_t i = 0; i < f->n_tensors; i++) {
        const nncl__st_tensor *t = idx[i];
        if (t->begin < covered) {
            st = NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: tensors \"%s\" [%zu, %zu) and \"%s\" [%zu, %zu) overlap", path,
                            idx[i - 1]->name, idx[i - 1]->begin, idx[i - 1]->end, t->name, t->begin, t->end);
            goto done;
        }
        if (t->begin > covered) {
            st = NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                            "%s: data buffer bytes [%zu, %zu), before tensor \"%s\", belong to no tensor", path,
                            covered, t->begin, t->name);
            goto done;
        }
        covered = t->end;
    }
    if (covered != data_size) {
        st = NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                        "%s: the last %zu bytes of the %zu-byte data buffer belong to no tensor", path,
                        data_size - covered, data_size);
        goto done;
    }
    if (f->n_meta > 1) {
        keys = malloc(f->n_meta * sizeof *keys);
        if (keys == NULL) goto oom;
        for (size_t i = 0; i < f->n_meta; i++) keys[i] = f->meta_keys[i];
        qsort(keys, f->n_meta, sizeof *keys, cmp_str);
        for (size_t i = 1; i < f->n_meta; i++)
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                st = NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: the __metadata__ key \"%s\" appears more than once",
                                path, keys[i]);
                goto done;
            }
    }
    goto done;
oom:
    st = NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "%s: out of memory checking the tensor layout", path);
done:
    free(idx);
    free(keys);
    return st;
}

/* ---- reading ------------------------------------------------------------------- */

/* Reads the whole file into a fresh allocation. */
static nncl_status read_image(const char *path, unsigned char **image, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) return NNCL_ERROR(NULL, NNCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) {
        int err = errno;
        fclose(fp);
        return NNCL_ERROR(NULL, NNCL_ERR_IO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(sb.st_mode)) {
        fclose(fp);
        return NNCL_ERROR(NULL, NNCL_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 0 || (uintmax_t)sb.st_size >= SIZE_MAX) {
        fclose(fp);
        return NNCL_ERROR(NULL, NNCL_ERR_IO, "%s: the file is too large to load", path);
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (buf == NULL) {
        fclose(fp);
        return NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes to load it", path, n);
    }
    size_t got = fread(buf, 1, n, fp);
    if (got != n || fgetc(fp) != EOF) {
        int err = ferror(fp) ? errno : 0;
        free(buf);
        fclose(fp);
        return NNCL_ERROR(NULL, NNCL_ERR_IO, "%s: read %zu of %zu bytes: %s", path, got, n,
                          err ? strerror(err) : "the file changed size while being read");
    }
    fclose(fp);
    *image = buf;
    *size = n;
    return NNCL_OK;
}

/* Parses and checks the header of f->image, filling f's tensors and metadata. */
static nncl_status parse_file(const char *path, nncl__st_file *f)
{
    const unsigned char *img = f->image;
    if (f->image_size < 8)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: the file is %zu bytes, shorter than the 8-byte header length",
                          path, f->image_size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | img[i];
    if (hlen > NNCL__ST_MAX_HEADER)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: the header length %" PRIu64 " exceeds the limit of %" PRIu64
                          " bytes", path, hlen, NNCL__ST_MAX_HEADER);
    if (hlen > f->image_size - 8)
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                          "%s: the header length %" PRIu64 " runs past the end of the file (%zu bytes follow it)", path,
                          hlen, f->image_size - 8);
    parser ps = {path, img + 8, (size_t)hlen, 0};
    const unsigned char *data = img + 8 + ps.n;
    size_t data_size = f->image_size - 8 - ps.n, cap = 0;
    unsupported unsup = {0};
    int have_meta = 0;

    if (ps.n == 0 || ps.s[0] != '{')
        return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: the header does not begin with '{'", path);
    ps.pos = 1;
    skip_ws(&ps);
    int more = 1;
    if (peek(&ps) == '}') {
        ps.pos++;
        more = 0;
    }
    while (more) {
        char name[NNCL__ST_NAME_SIZE];
        NNCL_TRY(parse_string(&ps, name, sizeof name, "a tensor name"));
        NNCL_TRY(expect(&ps, ':', "after a tensor name"));
        if (strcmp(name, "__metadata__") == 0) {
            if (have_meta)
                return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: the header has __metadata__ twice", path);
            have_meta = 1;
            NNCL_TRY(parse_meta(&ps, f));
        } else {
            if (f->n_tensors == cap) {
                if (cap == NNCL__ST_MAX_TENSORS)
                    return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: the header has more than %zu tensors", path,
                                      (size_t)NNCL__ST_MAX_TENSORS);
                size_t grown = cap ? 2 * cap : 16;
                if (grown > NNCL__ST_MAX_TENSORS) grown = NNCL__ST_MAX_TENSORS;
                nncl__st_tensor *t = realloc(f->tensors, grown * sizeof *t);
                if (t == NULL)
                    return NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "%s: out of memory reading the header", path);
                f->tensors = t;
                cap = grown;
            }
            nncl__st_tensor *t = &f->tensors[f->n_tensors];
            memset(t, 0, sizeof *t);
            memcpy(t->name, name, strlen(name) + 1);
            NNCL_TRY(parse_tensor(&ps, t, data, data_size, &unsup));
            f->n_tensors++;
        }
        NNCL_TRY(next_or_close(&ps, '}', "in the header object", &more));
    }
    skip_ws(&ps);
    if (ps.pos != ps.n) {
        char fd[32];
        return SYNTAX(&ps, "unexpected %s after the header object", found(&ps, fd));
    }
    NNCL_TRY(check_layout(path, f, data_size));
    if (unsup.found)
        return NNCL_ERROR(NULL, NNCL_ERR_UNSUPPORTED,
                          "%s: tensor \"%s\" has dtype %s; only F32, I64 and U8 can be loaded", path, unsup.tensor,
                          unsup.dtype);
    return NNCL_OK;
}

nncl_status nncl__st_read(const char *path, nncl__st_file *out)
{
    NNCL_CHECK_ARG(NULL, out);
    memset(out, 0, sizeof *out);
    NNCL_CHECK_ARG(NULL, path);
    nncl__st_file f = {0};
    NNCL_TRY(read_image(path, &f.image, &f.image_size));
    nncl_status st = parse_file(path, &f);
    if (st != NNCL_OK) {
        nncl__st_free(&f);
        return st;
    }
    *out = f;
    return NNCL_OK;
}

const nncl__st_tensor *nncl__st_find(const nncl__st_file *f, const char *name)
{
    if (f == NULL || name == NULL) return NULL;
    for (size_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *nncl__st_meta(const nncl__st_file *f, const char *key)
{
    if (f == NULL || key == NULL) return NULL;
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

void nncl__st_free(nncl__st_file *f)
{
    if (f == NULL) return;
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->image);
    memset(f, 0, sizeof *f);
}

/* ---- writing ------------------------------------------------------------------- */

/* A growing byte buffer; `failed` is set when an allocation fails. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->failed) return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->failed = 1;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    sb_str(b, s);
}

/* Appends s as a JSON string, escaped as serde_json (the reference) escapes it. */
static void sb_json(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        switch (*p) {
        case '"': sb_put(b, "\\\"", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        case '\b': sb_put(b, "\\b", 2); break;
        case '\f': sb_put(b, "\\f", 2); break;
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(e, sizeof e, "\\u%04x", (unsigned)*p);
                sb_put(b, e, 6);
            } else {
                sb_put(b, (const char *)p, 1);
            }
        }
    }
    sb_put(b, "\"", 1);
}

/* Checks that a name or metadata string fits `size` bytes and is UTF-8. */
static nncl_status check_text(const char *s, size_t size, const char *what, size_t index)
{
    if (s == NULL) return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: %s %zu is NULL", what, index);
    if (strnlen(s, size) >= size)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: %s %zu is longer than %zu bytes", what, index,
                          size - 1);
    if (!utf8_valid(s))
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: %s %zu (\"%s\") is not valid UTF-8", what,
                          index, s);
    return NNCL_OK;
}

/* Checks tensor t and returns its byte size. */
static nncl_status check_tensor(const nncl__st_tensor *t, size_t i, uint64_t *bytes)
{
    NNCL_TRY(check_text(t->name, NNCL__ST_NAME_SIZE, "tensor name", i));
    if (strcmp(t->name, "__metadata__") == 0)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: tensor %zu is named __metadata__", i);
    if (dtype_name(t->dtype) == NULL)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: tensor \"%s\" has unknown dtype %d", t->name,
                          (int)t->dtype);
    if (t->ndim < 0 || t->ndim > NNCL_MAX_DIMS)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: tensor \"%s\" has ndim %d, outside 0..%d",
                          t->name, t->ndim, NNCL_MAX_DIMS);
    uint64_t numel = 1, size = nncl_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0)
            return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: tensor \"%s\" has a negative dimension %d",
                              t->name, d);
        uint64_t s = (uint64_t)t->shape[d];
        if (s != 0 && numel > UINT64_MAX / s)
            return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: the size of tensor \"%s\" overflows",
                              t->name);
        numel *= s;
    }
    if (numel > UINT64_MAX / size || numel * size > SIZE_MAX)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: the size of tensor \"%s\" overflows", t->name);
    *bytes = numel * size;
    if (*bytes > 0 && t->data == NULL)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: tensor \"%s\" has no data", t->name);
    return NNCL_OK;
}

/* The byte size of a tensor that check_tensor accepted. */
static size_t tensor_bytes(const nncl__st_tensor *t)
{
    size_t bytes = nncl_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++) bytes *= (size_t)t->shape[d];
    return bytes;
}

/* Checks the arguments and builds the padded header into b. */
static nncl_status build_header(const nncl__st_tensor *tensors, size_t n, const char *const *meta_keys,
                                const char *const *meta_values, size_t n_meta, sbuf *b)
{
    if (n > 0 && tensors == NULL)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: tensors is NULL");
    if (n_meta > 0 && (meta_keys == NULL || meta_values == NULL))
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: meta_keys or meta_values is NULL");
    if (n > NNCL__ST_MAX_TENSORS || n_meta > NNCL__ST_MAX_META)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: %zu tensors and %zu metadata entries exceed "
                          "the limits of %zu and %zu", n, n_meta, (size_t)NNCL__ST_MAX_TENSORS,
                          (size_t)NNCL__ST_MAX_META);
    for (size_t i = 0; i < n_meta; i++) {
        NNCL_TRY(check_text(meta_keys[i], NNCL__ST_NAME_SIZE, "metadata key", i));
        NNCL_TRY(check_text(meta_values[i], NNCL__ST_VALUE_SIZE, "metadata value", i));
        for (size_t j = 0; j < i; j++)
            if (strcmp(meta_keys[i], meta_keys[j]) == 0)
                return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: metadata key \"%s\" appears twice",
                                  meta_keys[i]);
    }
    uint64_t offset = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        NNCL_TRY(check_tensor(&tensors[i], i, &bytes));
        if (bytes > SIZE_MAX - offset)
            return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: the total data size overflows");
        offset += bytes;
    }
    if (n > 1) {
        const nncl__st_tensor **idx = malloc(n * sizeof *idx);
        if (idx == NULL) return NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "nncl__st_write: out of memory");
        for (size_t i = 0; i < n; i++) idx[i] = &tensors[i];
        qsort(idx, n, sizeof *idx, cmp_name);
        for (size_t i = 1; i < n; i++)
            if (strcmp(idx[i - 1]->name, idx[i]->name) == 0) {
                nncl_status st = NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG,
                                            "nncl__st_write: the tensor name \"%s\" appears twice", idx[i]->name);
                free(idx);
                return st;
            }
        free(idx);
    }

    sb_put(b, "{", 1);
    if (n_meta > 0) {
        sb_str(b, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta; i++) {
            if (i) sb_put(b, ",", 1);
            sb_json(b, meta_keys[i]);
            sb_put(b, ":", 1);
            sb_json(b, meta_values[i]);
        }
        sb_put(b, "}", 1);
    }
    offset = 0;
    for (size_t i = 0; i < n; i++) {
        const nncl__st_tensor *t = &tensors[i];
        if (i || n_meta > 0) sb_put(b, ",", 1);
        sb_json(b, t->name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, dtype_name(t->dtype));
        sb_str(b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_put(b, ",", 1);
            sb_u64(b, (uint64_t)t->shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, offset);
        sb_put(b, ",", 1);
        offset += tensor_bytes(t);
        sb_u64(b, offset);
        sb_str(b, "]}");
    }
    sb_put(b, "}", 1);
    while (!b->failed && b->len % 8 != 0) sb_put(b, " ", 1);
    if (b->failed) return NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "nncl__st_write: out of memory building the header");
    if (b->len > NNCL__ST_MAX_HEADER)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl__st_write: the header would be %zu bytes, over the "
                          "limit of %" PRIu64, b->len, NNCL__ST_MAX_HEADER);
    return NNCL_OK;
}

nncl_status nncl__st_write(const char *path, const nncl__st_tensor *tensors, size_t n,
                           const char *const *meta_keys, const char *const *meta_values, size_t n_meta)
{
    NNCL_CHECK_ARG(NULL, path);
    sbuf b = {0};
    nncl_status st = build_header(tensors, n, meta_keys, meta_values, n_meta, &b);
    if (st != NNCL_OK) {
        free(b.p);
        return st;
    }

    /* The parts, in order: the 8-byte little-endian header length, the header, each tensor's data. */
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)b.len >> (8 * i));
    const void **parts = malloc((n + 2) * sizeof *parts);
    size_t *sizes = malloc((n + 2) * sizeof *sizes);
    if (parts == NULL || sizes == NULL) {
        st = NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    } else {
        parts[0] = len8;
        sizes[0] = sizeof len8;
        parts[1] = b.p;
        sizes[1] = b.len;
        for (size_t i = 0; i < n; i++) {
            parts[2 + i] = tensors[i].data;
            sizes[2 + i] = tensor_bytes(&tensors[i]);
        }
        st = nncl__atomic_write(path, parts, sizes, n + 2);
    }
    free(parts);
    free(sizes);
    free(b.p);
    return st;
}
