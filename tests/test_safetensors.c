/*
 * test_safetensors.c - the safetensors reader and writer (src/io/safetensors.c),
 * on the CPU only.
 *
 * Everything happens in a fresh mkdtemp directory under /tmp that the group
 * teardown removes. The checks: a round trip of tensors of every loadable
 * dtype and rank 0 to 2 with metadata; the exact bytes the Python safetensors
 * library writes for a two-tensor model, both read and reproduced; every
 * proper prefix of a valid file; a table of hand-made corrupt headers, each
 * with its expected status and a fragment of its message; seeded random byte
 * flips in a header; and write failures, which must leave nothing behind.
 */
#define _POSIX_C_SOURCE 200809L

#include "test_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"

static char dir[64];

/* Writes "<dir>/<name>" into out. */
static void tpath(char *out, size_t size, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < size);
}

/* Counts the directory's entries (other than . and ..) whose name contains `part`. */
static int count_entries(const char *path, const char *part)
{
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 && strstr(e->d_name, part) != NULL) n++;
    closedir(d);
    return n;
}

static void put_u64_le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static float get_f32_le(const void *p)
{
    const unsigned char *b = p;
    uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/*
 * Builds a file image: the 8-byte length (`hlen`, or the JSON's length when
 * hlen is UINT64_MAX), the JSON, and `data_len` bytes of a fixed pattern.
 */
static unsigned char *build(const char *json, uint64_t hlen, size_t data_len, size_t *size)
{
    size_t jl = strlen(json);
    *size = 8 + jl + data_len;
    unsigned char *b = malloc(*size);
    assert_non_null(b);
    put_u64_le(b, hlen == UINT64_MAX ? jl : hlen);
    memcpy(b + 8, json, jl);
    for (size_t i = 0; i < data_len; i++) b[8 + jl + i] = (unsigned char)(i * 7 + 1);
    return b;
}

/*
 * Writes the image as "case.safetensors", reads it, and checks the status, that
 * a failure leaves the output cleared, and that its message names the file
 * and contains `fragment`. Prints the message.
 */
static void check_image(const char *label, const unsigned char *img, size_t size, nncl_status want,
                        const char *fragment)
{
    char path[128];
    tpath(path, sizeof path, "case.safetensors");
    test_write_file(path, img, size);
    nncl__st_file f;
    nncl_status st = nncl__st_read(path, &f);
    const char *msg = nncl_context_last_error(NULL);
    if (st != want)
        fail_msg("%s: got %s (%s), want %s", label, nncl_status_name(st), st ? msg : "", nncl_status_name(want));
    if (st != NNCL_OK) {
        print_message("  %-28s %s: %s\n", label, nncl_status_name(st), msg);
        assert_null(f.tensors);
        assert_null(f.image);
        assert_null(f.meta_keys);
        assert_int_equal(f.n_tensors, 0);
        if (strstr(msg, path) == NULL) fail_msg("%s: the message does not name the file: %s", label, msg);
        if (fragment != NULL && strstr(msg, fragment) == NULL)
            fail_msg("%s: the message lacks \"%s\": %s", label, fragment, msg);
    }
    nncl__st_free(&f);
}

/* check_image for a header with the right length and `data_len` bytes of data. */
static void check_header(const char *label, const char *json, size_t data_len, nncl_status want,
                         const char *fragment)
{
    size_t size;
    unsigned char *img = build(json, UINT64_MAX, data_len, &size);
    check_image(label, img, size, want, fragment);
    free(img);
}

/* ---- fixtures ---------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/nncl_st_XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_dir(dir);
}

/* The tensors of the round trip: every loadable dtype, ranks 0 to 2, an empty one. */
static const float W[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.125f, 1e-3f};
static const float B[3] = {0.5f, -1.0f, 2.0f};
static const int64_t STEP = -1234567890123LL;
static const unsigned char MASK[5] = {0, 1, 255, 7, 128};

static void round_trip_tensors(nncl__st_tensor t[5])
{
    memset(t, 0, 5 * sizeof *t);
    strcpy(t[0].name, "layer.0/weight \"odd\"\n\xc3\xa9");
    t[0].dtype = NNCL_DTYPE_F32, t[0].ndim = 2, t[0].shape[0] = 2, t[0].shape[1] = 3, t[0].data = W;
    strcpy(t[1].name, "layer.0.bias");
    t[1].dtype = NNCL_DTYPE_F32, t[1].ndim = 1, t[1].shape[0] = 3, t[1].data = B;
    strcpy(t[2].name, "step");
    t[2].dtype = NNCL_DTYPE_I64, t[2].ndim = 0, t[2].data = &STEP;
    strcpy(t[3].name, "mask");
    t[3].dtype = NNCL_DTYPE_U8, t[3].ndim = 1, t[3].shape[0] = 5, t[3].data = MASK;
    strcpy(t[4].name, "empty");
    t[4].dtype = NNCL_DTYPE_F32, t[4].ndim = 2, t[4].shape[0] = 0, t[4].shape[1] = 3, t[4].data = NULL;
}

static const char *const META_KEYS[] = {"format", "note \\ \"key\""};
static const char *const META_VALUES[] = {"pt", "tab\t ctrl\x01 nl\n \xe2\x82\xac end"};

/* ---- tests --------------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    char path[128];
    tpath(path, sizeof path, "round.safetensors");
    nncl__st_tensor t[5];
    round_trip_tensors(t);
    TEST_OK(NULL, nncl__st_write(path, t, 5, META_KEYS, META_VALUES, 2));
    assert_int_equal(count_entries(dir, ".tmp."), 0);

    nncl__st_file f;
    TEST_OK(NULL, nncl__st_read(path, &f));
    assert_int_equal(f.n_tensors, 5);
    assert_int_equal(f.n_meta, 2);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f.image[i];
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(f.image_size, 8 + hlen + 24 + 12 + 8 + 5);
    size_t offset = 0;
    for (int i = 0; i < 5; i++) {
        const nncl__st_tensor *r = &f.tensors[i];
        assert_string_equal(r->name, t[i].name);
        assert_int_equal(r->dtype, t[i].dtype);
        assert_int_equal(r->ndim, t[i].ndim);
        for (int d = 0; d < r->ndim; d++) assert_int_equal(r->shape[d], t[i].shape[d]);
        assert_int_equal(r->begin, offset);
        size_t bytes = r->end - r->begin;
        if (bytes > 0) assert_memory_equal(r->data, t[i].data, bytes);
        assert_ptr_equal(r->data, f.image + 8 + hlen + r->begin);
        assert_ptr_equal(nncl__st_find(&f, t[i].name), r);
        offset = r->end;
    }
    assert_int_equal(f.tensors[2].end - f.tensors[2].begin, 8);
    assert_int_equal(f.tensors[4].end, f.tensors[4].begin);
    assert_null(nncl__st_find(&f, "absent"));
    assert_string_equal(nncl__st_meta(&f, "format"), "pt");
    assert_string_equal(nncl__st_meta(&f, META_KEYS[1]), META_VALUES[1]);
    assert_null(nncl__st_meta(&f, "absent"));
    nncl__st_free(&f);
    assert_null(f.image);
    nncl__st_free(&f);
    nncl__st_free(NULL);

    /* Overwriting replaces the file whole; no metadata means no __metadata__ key. */
    TEST_OK(NULL, nncl__st_write(path, &t[3], 1, NULL, NULL, 0));
    TEST_OK(NULL, nncl__st_read(path, &f));
    assert_int_equal(f.n_tensors, 1);
    assert_int_equal(f.n_meta, 0);
    assert_string_equal(f.tensors[0].name, "mask");
    assert_memory_equal(f.tensors[0].data, MASK, 5);
    assert_null(strstr((const char *)f.image + 8, "__metadata__"));
    nncl__st_free(&f);

    /* No tensors at all: the header "{}" padded to 8 bytes, and no data. */
    TEST_OK(NULL, nncl__st_write(path, NULL, 0, NULL, NULL, 0));
    TEST_OK(NULL, nncl__st_read(path, &f));
    assert_int_equal(f.n_tensors, 0);
    assert_int_equal(f.image_size, 16);
    assert_memory_equal(f.image + 8, "{}      ", 8);
    nncl__st_free(&f);
    assert_int_equal(count_entries(dir, ".tmp."), 0);
}

/* What Python's safetensors (0.8.0) writes for save({"0.weight": 2x3 f32, "0.bias": 3 f32}). */
static void test_python_bytes(void **state)
{
    (void)state;
    static const char header[] = "{\"0.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                                 "\"0.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[12,36]}}"
                                 "    ";
    static const unsigned char data[36] = {
        0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x80, 0xbf, 0x00, 0x00, 0x00, 0x40,  /* 0.5, -1, 2 */
        0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x40, 0x40,  /* 1, 2, 3 */
        0x00, 0x00, 0x80, 0x40, 0x00, 0x00, 0xa0, 0x40, 0x00, 0x00, 0xc0, 0x40}; /* 4, 5, 6 */
    size_t hl = sizeof header - 1, size = 8 + hl + sizeof data;
    assert_int_equal(hl, 128);
    unsigned char *img = malloc(size);
    assert_non_null(img);
    put_u64_le(img, hl);
    memcpy(img + 8, header, hl);
    memcpy(img + 8 + hl, data, sizeof data);
    assert_int_equal(size, 172);

    char path[128];
    tpath(path, sizeof path, "python.safetensors");
    test_write_file(path, img, size);
    nncl__st_file f;
    TEST_OK(NULL, nncl__st_read(path, &f));
    assert_int_equal(f.n_tensors, 2);
    assert_int_equal(f.n_meta, 0);
    const nncl__st_tensor *w = nncl__st_find(&f, "0.weight"), *b = nncl__st_find(&f, "0.bias");
    assert_non_null(w);
    assert_non_null(b);
    assert_int_equal(w->dtype, NNCL_DTYPE_F32);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 2);
    assert_int_equal(w->shape[1], 3);
    assert_int_equal(w->begin, 12);
    assert_int_equal(w->end, 36);
    assert_int_equal(b->ndim, 1);
    assert_int_equal(b->shape[0], 3);
    assert_int_equal(b->begin, 0);
    assert_int_equal(b->end, 12);
    const float want_w[6] = {1, 2, 3, 4, 5, 6}, want_b[3] = {0.5f, -1, 2};
    for (int i = 0; i < 6; i++) assert_true(get_f32_le((const unsigned char *)w->data + 4 * i) == want_w[i]);
    for (int i = 0; i < 3; i++) assert_true(get_f32_le((const unsigned char *)b->data + 4 * i) == want_b[i]);

    /* The writer, given the same tensors in the same order, produces the same bytes. */
    nncl__st_tensor t[2] = {*b, *w};
    char out[128];
    tpath(out, sizeof out, "python_rewritten.safetensors");
    TEST_OK(NULL, nncl__st_write(out, t, 2, NULL, NULL, 0));
    size_t n;
    unsigned char *again = test_read_file(out, &n);
    assert_int_equal(n, size);
    assert_memory_equal(again, img, size);
    free(again);
    nncl__st_free(&f);
    free(img);
}

/* Every proper prefix of a valid file, and the file with one byte appended, must fail cleanly. */
static void test_every_prefix(void **state)
{
    (void)state;
    char path[128];
    tpath(path, sizeof path, "full.safetensors");
    nncl__st_tensor t[5];
    round_trip_tensors(t);
    TEST_OK(NULL, nncl__st_write(path, t, 5, META_KEYS, META_VALUES, 2));
    size_t size;
    unsigned char *img = test_read_file(path, &size);
    char cut[128];
    tpath(cut, sizeof cut, "cut.safetensors");
    for (size_t len = 0; len < size; len++) {
        test_write_file(cut, img, len);
        nncl__st_file f;
        nncl_status st = nncl__st_read(cut, &f);
        if (st != NNCL_ERR_FORMAT && st != NNCL_ERR_IO)
            fail_msg("prefix of %zu of %zu bytes: got %s", len, size, nncl_status_name(st));
        assert_null(f.image);
        assert_null(f.tensors);
        nncl__st_free(&f);
    }
    img[size] = 0;
    check_image("one byte appended", img, size + 1, NNCL_ERR_FORMAT, "last 1 bytes");
    free(img);
}

typedef struct corrupt_case {
    const char *label;
    const char *json;
    size_t data_len;
    nncl_status want;
    const char *fragment; /* must appear in the message */
} corrupt_case;

/* A valid two-tensor header over 12 bytes of data, and variations of it. */
#define ENTRY_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"
#define ENTRY_B "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}"
#define NAME_127                                                                                  \
    "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn" \
    "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
#define NAME_200 NAME_127 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

static const corrupt_case CASES[] = {
    /* Valid headers: the controls. */
    {"valid", "{" ENTRY_A "," ENTRY_B "}", 12, NNCL_OK, NULL},
    {"valid, whitespace", "{ " ENTRY_A " ,\n\t" ENTRY_B "\r\n }  \n", 12, NNCL_OK, NULL},
    {"valid, empty object", "{}", 0, NNCL_OK, NULL},
    {"valid, 8 dims", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,2],\"data_offsets\":[0,2]}}", 2, NNCL_OK,
     NULL},
    {"valid, 127-byte name", "{\"" NAME_127 "\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
     NNCL_OK, NULL},
    {"valid, escapes", "{\"\\u00e9\\ud83d\\ude00\\/\\\"\":{\"data_offsets\":[0,2],\"shape\":[2],\"dtype\":\"U8\"}}",
     2, NNCL_OK, NULL},
    {"valid, metadata", "{\"__metadata__\":{\"k\":\"v\",\"e\":\"\"}," ENTRY_A "," ENTRY_B "}", 12, NNCL_OK, NULL},
    {"valid, zero-size tensors",
     "{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}," ENTRY_A ","
     "\"y\":{\"dtype\":\"I64\",\"shape\":[3,0],\"data_offsets\":[8,8]}," ENTRY_B "}",
     12, NNCL_OK, NULL},
    /* JSON syntax. */
    {"missing closing brace", "{" ENTRY_A "," ENTRY_B, 12, NNCL_ERR_FORMAT, "expected ',' or '}'"},
    {"unterminated string", "{\"a\":{\"dtype\":\"F32", 0, NNCL_ERR_FORMAT, "unterminated"},
    {"trailing garbage", "{" ENTRY_A "," ENTRY_B "}x", 12, NNCL_ERR_FORMAT, "after the header object"},
    {"second object", "{" ENTRY_A "," ENTRY_B "}{}", 12, NNCL_ERR_FORMAT, "after the header object"},
    {"trailing comma", "{" ENTRY_A "," ENTRY_B ",}", 12, NNCL_ERR_FORMAT, "expected a string"},
    {"missing colon", "{\"a\" {}}", 0, NNCL_ERR_FORMAT, "expected ':'"},
    {"leading whitespace", " {" ENTRY_A "," ENTRY_B "}", 12, NNCL_ERR_FORMAT, "does not begin with '{'"},
    {"array at top", "[]", 0, NNCL_ERR_FORMAT, "does not begin with '{'"},
    {"unknown escape", "{\"a\\x\":{}}", 0, NNCL_ERR_FORMAT, "unknown escape"},
    {"short \\u escape", "{\"a\\u12\":{}}", 0, NNCL_ERR_FORMAT, "four hexadecimal digits"},
    {"lone low surrogate", "{\"a\\udc00\":{}}", 0, NNCL_ERR_FORMAT, "low surrogate"},
    {"lone high surrogate", "{\"a\\ud800x\":{}}", 0, NNCL_ERR_FORMAT, "high surrogate"},
    {"\\u0000 in a name", "{\"a\\u0000\":{}}", 0, NNCL_ERR_FORMAT, "not allowed"},
    {"raw newline in a name", "{\"a\nb\":{}}", 0, NNCL_ERR_FORMAT, "control character 0x0a"},
    {"invalid UTF-8", "{\"a\xff\":{}}", 0, NNCL_ERR_FORMAT, "invalid UTF-8"},
    {"overlong UTF-8", "{\"a\xc0\xaf\":{}}", 0, NNCL_ERR_FORMAT, "invalid UTF-8"},
    {"UTF-8 surrogate", "{\"a\xed\xa0\x80\":{}}", 0, NNCL_ERR_FORMAT, "invalid UTF-8"},
    {"boolean shape", "{\"a\":{\"dtype\":\"F32\",\"shape\":true,\"data_offsets\":[0,0]}}", 0, NNCL_ERR_FORMAT,
     "expected '[' to open the shape"},
    {"null dtype", "{\"a\":{\"dtype\":null,\"shape\":[],\"data_offsets\":[0,4]}}", 4, NNCL_ERR_FORMAT,
     "expected a string"},
    {"float in data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", 8,
     NNCL_ERR_FORMAT, "fraction or exponent"},
    {"exponent in data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8e0]}}", 8,
     NNCL_ERR_FORMAT, "fraction or exponent"},
    {"leading zero", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,08]}}", 8, NNCL_ERR_FORMAT,
     "leading zero"},
    {"integer over 64 bits", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551616]}}",
     8, NNCL_ERR_FORMAT, "too large for 64 bits"},
    /* Entries. */
    {"missing data_offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, NNCL_ERR_FORMAT, "no data_offsets"},
    {"missing dtype", "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NNCL_ERR_FORMAT, "no dtype"},
    {"unknown key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, NNCL_ERR_FORMAT,
     "unknown key \"x\""},
    {"key twice", "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     NNCL_ERR_FORMAT, "twice"},
    {"one offset", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8, NNCL_ERR_FORMAT,
     "not a [begin, end] pair"},
    {"three offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, NNCL_ERR_FORMAT,
     "more than 2 entries"},
    {"unknown dtype", "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NNCL_ERR_FORMAT,
     "unknown dtype \"F33\""},
    {"dtype BF16", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, NNCL_ERR_UNSUPPORTED,
     "BF16"},
    {"dtype F16", "{" ENTRY_A ",\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]}}", 12,
     NNCL_ERR_UNSUPPORTED, "F16"},
    {"dtype F64", "{\"d\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, NNCL_ERR_UNSUPPORTED, "F64"},
    {"BF16 with a bad size", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     NNCL_ERR_FORMAT, "needs 4 bytes"},
    {"shape/size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, NNCL_ERR_FORMAT,
     "needs 12 bytes"},
    {"9-dim shape", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,2]}}", 2,
     NNCL_ERR_FORMAT, "more than 8 entries"},
    {"negative shape entry", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
     NNCL_ERR_FORMAT, "negative"},
    {"dimension over int64", "{\"a\":{\"dtype\":\"U8\",\"shape\":[9223372036854775808,0],\"data_offsets\":[0,0]}}",
     0, NNCL_ERR_FORMAT, "too large"},
    {"element count overflow",
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0, NNCL_ERR_FORMAT,
     "overflows"},
    {"byte size overflow", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", 0,
     NNCL_ERR_FORMAT, "overflows"},
    {"200-byte name", "{\"" NAME_200 "\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
     NNCL_ERR_FORMAT, "longer than 127 bytes"},
    {"duplicate names", "{" ENTRY_A "," ENTRY_A "}", 8, NNCL_ERR_FORMAT, "\"a\" appears more than once"},
    /* Offsets and layout. */
    {"end before begin", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, NNCL_ERR_FORMAT,
     "end before they begin"},
    {"offsets past the end", "{" ENTRY_A "," ENTRY_B "}", 10, NNCL_ERR_FORMAT, "run past the end"},
    {"offsets far past the end",
     "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[18446744073709551614,18446744073709551615]}}", 2,
     NNCL_ERR_FORMAT, "run past the end"},
    {"overlapping offsets",
     "{" ENTRY_A ",\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8, NNCL_ERR_FORMAT, "overlap"},
    {"identical offsets", "{" ENTRY_A ",\"c\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
     NNCL_ERR_FORMAT, "overlap"},
    {"gap between tensors", "{" ENTRY_A ",\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[9,13]}}", 13,
     NNCL_ERR_FORMAT, "[8, 9)"},
    {"gap at the start", "{\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[1,5]}}", 5, NNCL_ERR_FORMAT,
     "[0, 1)"},
    {"slack after the tensors", "{" ENTRY_A "," ENTRY_B "}", 13, NNCL_ERR_FORMAT, "last 1 bytes"},
    {"data but no tensors", "{}", 4, NNCL_ERR_FORMAT, "last 4 bytes"},
    /* Metadata. */
    {"metadata number", "{\"__metadata__\":{\"k\":1}}", 0, NNCL_ERR_FORMAT, "not a string"},
    {"metadata null", "{\"__metadata__\":{\"k\":null}}", 0, NNCL_ERR_FORMAT, "not a string"},
    {"metadata not an object", "{\"__metadata__\":\"x\"}", 0, NNCL_ERR_FORMAT, "expected '{'"},
    {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, NNCL_ERR_FORMAT, "twice"},
    {"metadata key twice", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, NNCL_ERR_FORMAT,
     "\"k\" appears more than once"},
};

static void test_corrupt_headers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        check_header(CASES[i].label, CASES[i].json, CASES[i].data_len, CASES[i].want, CASES[i].fragment);

    /* The length field itself, and files too short to hold it. */
    size_t size;
    unsigned char *img = build("{" ENTRY_A "," ENTRY_B "}", (uint64_t)1 << 63, 12, &size);
    check_image("header length 2^63", img, size, NNCL_ERR_FORMAT, "exceeds the limit");
    put_u64_le(img, UINT64_MAX);
    check_image("header length 2^64-1", img, size, NNCL_ERR_FORMAT, "exceeds the limit");
    put_u64_le(img, size - 8 + 1);
    check_image("header length past the end", img, size, NNCL_ERR_FORMAT, "runs past the end");
    put_u64_le(img, 0);
    check_image("header length 0", img, size, NNCL_ERR_FORMAT, "does not begin with '{'");
    check_image("empty file", img, 0, NNCL_ERR_FORMAT, "shorter than the 8-byte");
    check_image("7-byte file", img, 7, NNCL_ERR_FORMAT, "shorter than the 8-byte");
    free(img);

    /* A valid case's tensors resolve to the right bytes. */
    char path[128];
    tpath(path, sizeof path, "case.safetensors");
    check_header("valid", CASES[0].json, 12, NNCL_OK, NULL);
    nncl__st_file f;
    TEST_OK(NULL, nncl__st_read(path, &f));
    const nncl__st_tensor *b = nncl__st_find(&f, "b");
    assert_non_null(b);
    assert_int_equal(((const unsigned char *)b->data)[0], 8 * 7 + 1);
    nncl__st_free(&f);
    check_header("valid, escapes", CASES[5].json, 2, NNCL_OK, NULL);
    TEST_OK(NULL, nncl__st_read(path, &f));
    assert_string_equal(f.tensors[0].name, "\xc3\xa9\xf0\x9f\x98\x80/\"");
    nncl__st_free(&f);
}

/* Random byte flips in the length and header of a valid file: each read fails cleanly or succeeds. */
static void test_random_flips(void **state)
{
    (void)state;
    char path[128];
    tpath(path, sizeof path, "flip_base.safetensors");
    nncl__st_tensor t[5];
    round_trip_tensors(t);
    TEST_OK(NULL, nncl__st_write(path, t, 5, META_KEYS, META_VALUES, 2));
    size_t size;
    unsigned char *img = test_read_file(path, &size), *copy = malloc(size);
    assert_non_null(copy);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | img[i];
    char flip[128];
    tpath(flip, sizeof flip, "flip.safetensors");
    test_rng r = test_rng_seed(20240607);
    int counts[16] = {0};
    for (int trial = 0; trial < 400; trial++) {
        memcpy(copy, img, size);
        int flips = 1 + (int)test_rng_below(&r, 3);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)test_rng_below(&r, (int64_t)(8 + hlen));
            copy[at] ^= (unsigned char)(1 + test_rng_below(&r, 255));
        }
        test_write_file(flip, copy, size);
        nncl__st_file f;
        nncl_status st = nncl__st_read(flip, &f);
        if (st != NNCL_OK && st != NNCL_ERR_FORMAT && st != NNCL_ERR_UNSUPPORTED)
            fail_msg("trial %d: unexpected %s: %s", trial, nncl_status_name(st), nncl_context_last_error(NULL));
        counts[st]++;
        if (st == NNCL_OK) {
            /* Whatever parsed must describe bytes inside the image. */
            for (size_t i = 0; i < f.n_tensors; i++) {
                const nncl__st_tensor *x = &f.tensors[i];
                assert_true(x->begin <= x->end);
                assert_true((const unsigned char *)x->data >= f.image);
                assert_true((const unsigned char *)x->data + (x->end - x->begin) <= f.image + f.image_size);
                assert_true(x->ndim >= 0 && x->ndim <= NNCL_MAX_DIMS);
            }
        } else {
            assert_null(f.image);
        }
        nncl__st_free(&f);
    }
    print_message("  400 trials: %d read, %d format errors, %d unsupported\n", counts[NNCL_OK],
                  counts[NNCL_ERR_FORMAT], counts[NNCL_ERR_UNSUPPORTED]);
    assert_true(counts[NNCL_ERR_FORMAT] > 200);
    free(copy);
    free(img);
}

static void test_write_errors(void **state)
{
    (void)state;
    nncl__st_tensor t[5];
    round_trip_tensors(t);

    /* A directory that does not exist: an I/O error naming the path, and nothing created. */
    char missing[128], path[160];
    tpath(missing, sizeof missing, "no_such_dir");
    snprintf(path, sizeof path, "%s/model.safetensors", missing);
    int before = count_entries(dir, "");
    nncl_status st = nncl__st_write(path, t, 5, META_KEYS, META_VALUES, 2);
    assert_int_equal(st, NNCL_ERR_IO);
    print_message("  %-28s %s\n", "missing directory", nncl_context_last_error(NULL));
    assert_non_null(strstr(nncl_context_last_error(NULL), path));
    assert_non_null(strstr(nncl_context_last_error(NULL), "No such file or directory"));
    struct stat sb;
    assert_int_not_equal(stat(missing, &sb), 0);
    assert_int_equal(count_entries(dir, ""), before);

    /* The target is a directory: the rename fails after the data is written; the temporary goes. */
    char sub[128];
    tpath(sub, sizeof sub, "a_directory");
    assert_int_equal(mkdir(sub, 0700), 0);
    before = count_entries(dir, "");
    st = nncl__st_write(sub, t, 5, META_KEYS, META_VALUES, 2);
    assert_int_equal(st, NNCL_ERR_IO);
    print_message("  %-28s %s\n", "target is a directory", nncl_context_last_error(NULL));
    assert_non_null(strstr(nncl_context_last_error(NULL), sub));
    assert_int_equal(count_entries(dir, ".tmp."), 0);
    assert_int_equal(count_entries(dir, ""), before);
    assert_int_equal(rmdir(sub), 0);

    /* Arguments the reader would refuse are refused before any file is made. */
    tpath(path, sizeof path, "bad_args.safetensors");
    before = count_entries(dir, "");
    nncl__st_tensor bad[2];
    memcpy(bad, t, sizeof bad);
    strcpy(bad[1].name, bad[0].name);
    assert_int_equal(nncl__st_write(path, bad, 2, NULL, NULL, 0), NNCL_ERR_INVALID_ARG);
    assert_non_null(strstr(nncl_context_last_error(NULL), "appears twice"));
    memcpy(bad, t, sizeof bad);
    memset(bad[0].name, 'x', sizeof bad[0].name); /* no terminating NUL within 128 bytes */
    assert_int_equal(nncl__st_write(path, bad, 2, NULL, NULL, 0), NNCL_ERR_INVALID_ARG);
    memcpy(bad, t, sizeof bad);
    bad[1].shape[0] = -3;
    assert_int_equal(nncl__st_write(path, bad, 2, NULL, NULL, 0), NNCL_ERR_INVALID_ARG);
    memcpy(bad, t, sizeof bad);
    bad[1].ndim = NNCL_MAX_DIMS + 1;
    assert_int_equal(nncl__st_write(path, bad, 2, NULL, NULL, 0), NNCL_ERR_INVALID_ARG);
    memcpy(bad, t, sizeof bad);
    bad[1].dtype = (nncl_dtype)7;
    assert_int_equal(nncl__st_write(path, bad, 2, NULL, NULL, 0), NNCL_ERR_INVALID_ARG);
    memcpy(bad, t, sizeof bad);
    bad[1].data = NULL;
    assert_int_equal(nncl__st_write(path, bad, 2, NULL, NULL, 0), NNCL_ERR_INVALID_ARG);
    memcpy(bad, t, sizeof bad);
    strcpy(bad[1].name, "__metadata__");
    assert_int_equal(nncl__st_write(path, bad, 2, NULL, NULL, 0), NNCL_ERR_INVALID_ARG);
    strcpy(bad[1].name, "bad \xff utf-8");
    assert_int_equal(nncl__st_write(path, bad, 2, NULL, NULL, 0), NNCL_ERR_INVALID_ARG);
    const char *dup_keys[] = {"k", "k"}, *values[] = {"1", "2"};
    assert_int_equal(nncl__st_write(path, t, 1, dup_keys, values, 2), NNCL_ERR_INVALID_ARG);
    char *long_value = malloc(NNCL__ST_VALUE_SIZE + 1);
    assert_non_null(long_value);
    memset(long_value, 'v', NNCL__ST_VALUE_SIZE);
    long_value[NNCL__ST_VALUE_SIZE] = '\0';
    const char *key[] = {"long"}, *value[] = {long_value};
    assert_int_equal(nncl__st_write(path, t, 1, key, value, 1), NNCL_ERR_INVALID_ARG);
    assert_int_equal(count_entries(dir, ""), before);

    /* The longest value that fits (1023 bytes) round-trips. */
    long_value[NNCL__ST_VALUE_SIZE - 1] = '\0';
    TEST_OK(NULL, nncl__st_write(path, t, 1, key, value, 1));
    nncl__st_file f;
    TEST_OK(NULL, nncl__st_read(path, &f));
    assert_string_equal(nncl__st_meta(&f, "long"), long_value);
    nncl__st_free(&f);
    free(long_value);
}

static void test_read_io_errors(void **state)
{
    (void)state;
    char path[128];
    tpath(path, sizeof path, "does_not_exist.safetensors");
    nncl__st_file f;
    assert_int_equal(nncl__st_read(path, &f), NNCL_ERR_IO);
    assert_non_null(strstr(nncl_context_last_error(NULL), path));
    assert_null(f.image);
    print_message("  %-28s %s\n", "missing file", nncl_context_last_error(NULL));
    assert_int_equal(nncl__st_read(dir, &f), NNCL_ERR_IO);
    assert_null(f.image);
    assert_int_equal(nncl__st_read(NULL, &f), NNCL_ERR_INVALID_ARG);
    assert_int_equal(nncl__st_read(path, NULL), NNCL_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_python_bytes),
        cmocka_unit_test(test_every_prefix),    cmocka_unit_test(test_corrupt_headers),
        cmocka_unit_test(test_random_flips),    cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_read_io_errors),
    };
    return cmocka_run_group_tests_name("safetensors", tests, setup, teardown);
}
