/*
 * test_data.c - host arrays and the IDX and .npy readers and writer.
 *
 * Every file is written by the test itself into a fresh directory under /tmp
 * (removed at the end), so it is hermetic; the one exception is a check of the
 * real Fashion-MNIST test set, skipped when it is not installed. Bad inputs
 * must return the right status with a message that names the file, leave the
 * output array cleared, and never crash or leak (the suite runs under ASan).
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include "test_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static char tmpdir[64];

/* ---- helpers ------------------------------------------------------------------- */

/* Returns tmpdir/name in a buffer that lives until the next call with the same slot. */
static const char *tmp_path(int slot, const char *name)
{
    static char paths[4][512];
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", tmpdir, name);
    return paths[slot];
}

static void write_gz(const char *path, const void *bytes, size_t n)
{
    gzFile gz = gzopen(path, "wb");
    assert_non_null(gz);
    if (n > 0) assert_int_equal(gzwrite(gz, bytes, (unsigned)n), (int)n);
    assert_int_equal(gzclose(gz), Z_OK);
}

/* Whether any file in `dir` has ".tmp." in its name (a leftover of nncl_npy_write). */
static int has_temp_file(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int found = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strstr(e->d_name, ".tmp.") != NULL) found = 1;
    closedir(d);
    return found;
}

/*
 * The call returned `want`, recorded it with a message that names `path`, and
 * left `out` cleared. `out` is filled with garbage first.
 */
#define EXPECT_FAIL(want, path, out, call)                                                         \
    do {                                                                                           \
        memset(&(out), 0xA5, sizeof(out));                                                         \
        nncl_status got_ = (call);                                                                 \
        if (got_ != (want))                                                                        \
            fail_msg("%s on %s returned %s, expected %s (%s)", #call, (path),                      \
                     nncl_status_name(got_), nncl_status_name(want), nncl_context_last_error(NULL)); \
        assert_int_equal(nncl_context_last_status(NULL), (want));                                  \
        assert_true(strlen(nncl_context_last_error(NULL)) > 0);                                    \
        if (strstr(nncl_context_last_error(NULL), (path)) == NULL)                                 \
            fail_msg("message does not name %s: %s", (path), nncl_context_last_error(NULL));       \
        assert_null((out).data);                                                                   \
        assert_int_equal((out).ndim, 0);                                                           \
    } while (0)

/* The message of the last failure contains `part`. */
static void expect_message(const char *part)
{
    if (strstr(nncl_context_last_error(NULL), part) == NULL)
        fail_msg("expected \"%s\" in the message: %s", part, nncl_context_last_error(NULL));
}

/* Builds an IDX file of unsigned bytes: header for `shape` followed by `ndata` bytes. */
static size_t make_idx(unsigned char *buf, int ndim, const uint32_t *shape, const unsigned char *data,
                       size_t ndata)
{
    size_t n = 0;
    buf[n++] = 0;
    buf[n++] = 0;
    buf[n++] = 0x08;
    buf[n++] = (unsigned char)ndim;
    for (int i = 0; i < ndim; i++) {
        buf[n++] = (unsigned char)(shape[i] >> 24);
        buf[n++] = (unsigned char)(shape[i] >> 16);
        buf[n++] = (unsigned char)(shape[i] >> 8);
        buf[n++] = (unsigned char)shape[i];
    }
    if (ndata > 0) memcpy(buf + n, data, ndata);
    return n + ndata;
}

/* A (2, 3, 4) IDX file with bytes (7 * i + 3) mod 256. */
static size_t make_small_idx(unsigned char *buf)
{
    const uint32_t shape[3] = {2, 3, 4};
    unsigned char data[24];
    for (int i = 0; i < 24; i++) data[i] = (unsigned char)(7 * i + 3);
    return make_idx(buf, 3, shape, data, sizeof data);
}

static void check_small_idx(const nncl_array *a)
{
    assert_int_equal(a->dtype, NNCL_DTYPE_U8);
    assert_int_equal(a->ndim, 3);
    assert_int_equal(a->shape[0], 2);
    assert_int_equal(a->shape[1], 3);
    assert_int_equal(a->shape[2], 4);
    assert_int_equal(nncl_array_numel(a), 24);
    const unsigned char *d = a->data;
    for (int i = 0; i < 24; i++) assert_int_equal(d[i], (unsigned char)(7 * i + 3));
}

/*
 * Writes a .npy file: the preamble for `major`.0, then `dict` padded with
 * spaces and '\n' to a multiple of 64 bytes, then `ndata` bytes of data.
 */
static void write_npy(const char *path, int major, const char *dict, const void *data, size_t ndata)
{
    size_t pre = major == 1 ? 10 : 12;
    size_t dlen = strlen(dict);
    size_t total = (pre + dlen + 1 + 63) / 64 * 64;
    size_t hlen = total - pre;
    unsigned char *buf = malloc(total + ndata);
    assert_non_null(buf);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)(hlen & 0xFF);
    buf[9] = (unsigned char)(hlen >> 8);
    if (major != 1) {
        buf[10] = (unsigned char)(hlen >> 16);
        buf[11] = (unsigned char)(hlen >> 24);
    }
    memcpy(buf + pre, dict, dlen);
    memset(buf + pre + dlen, ' ', hlen - dlen - 1);
    buf[total - 1] = '\n';
    if (ndata > 0) memcpy(buf + total, data, ndata);
    test_write_file(path, buf, total + ndata);
    free(buf);
}

/*
 * np.save of np.arange(6, dtype='<i8').reshape(2, 3) as NumPy 1.x writes it:
 * a 118-byte header (58 spaces of padding and '\n'), then 48 bytes of data.
 */
static const char NUMPY_ARANGE[] =
    "\x93NUMPY\x01\x00\x76\x00"
    "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }"
    "                                                          \n"
    "\0\0\0\0\0\0\0\0" "\1\0\0\0\0\0\0\0" "\2\0\0\0\0\0\0\0"
    "\3\0\0\0\0\0\0\0" "\4\0\0\0\0\0\0\0" "\5\0\0\0\0\0\0\0";
#define NUMPY_ARANGE_LEN (sizeof NUMPY_ARANGE - 1)

/* ---- setup ------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nncl-test-data-XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    return test_remove_dir(tmpdir);
}

/* ---- arrays -------------------------------------------------------------------- */

static void test_array_create_free(void **state)
{
    (void)state;
    assert_int_equal(nncl_dtype_size(NNCL_DTYPE_F32), 4);
    assert_int_equal(nncl_dtype_size(NNCL_DTYPE_U8), 1);
    assert_int_equal(nncl_dtype_size(NNCL_DTYPE_I64), 8);
    assert_int_equal(nncl_dtype_size((nncl_dtype)9), 0);

    nncl_array a;
    const int64_t shape[3] = {2, 3, 4};
    TEST_OK(NULL, nncl_array_create(NNCL_DTYPE_I64, 3, shape, &a));
    assert_int_equal(nncl_array_numel(&a), 24);
    assert_non_null(a.data);
    for (int i = 0; i < 24; i++) assert_int_equal(((int64_t *)a.data)[i], 0);
    TEST_OK(NULL, nncl_array_free(&a));
    assert_null(a.data);
    assert_int_equal(a.ndim, 0);
    TEST_OK(NULL, nncl_array_free(&a));
    TEST_OK(NULL, nncl_array_free(NULL));

    /* A scalar has one element; an array with a zero dimension has none and no allocation. */
    TEST_OK(NULL, nncl_array_create(NNCL_DTYPE_F32, 0, NULL, &a));
    assert_int_equal(nncl_array_numel(&a), 1);
    assert_non_null(a.data);
    nncl_array_free(&a);
    const int64_t empty[2] = {INT64_MAX, 0};
    TEST_OK(NULL, nncl_array_create(NNCL_DTYPE_F32, 2, empty, &a));
    assert_int_equal(nncl_array_numel(&a), 0);
    assert_null(a.data);
    nncl_array_free(&a);
    assert_int_equal(nncl_array_numel(NULL), 0);
}

static void test_array_bad_args(void **state)
{
    (void)state;
    nncl_array a;
    const int64_t ok[2] = {2, 3}, neg[2] = {2, -1}, huge[2] = {INT64_MAX / 2, 4};
    const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    const struct {
        nncl_dtype dtype;
        int ndim;
        const int64_t *shape;
        nncl_status want;
        const char *part;
    } cases[] = {
        {(nncl_dtype)7, 2, ok, NNCL_ERR_INVALID_ARG, "unknown dtype 7"},
        {NNCL_DTYPE_F32, 9, nine, NNCL_ERR_INVALID_ARG, "ndim 9"},
        {NNCL_DTYPE_F32, -1, ok, NNCL_ERR_INVALID_ARG, "ndim -1"},
        {NNCL_DTYPE_F32, 2, NULL, NNCL_ERR_INVALID_ARG, "shape is NULL"},
        {NNCL_DTYPE_F32, 2, neg, NNCL_ERR_INVALID_ARG, "negative"},
        {NNCL_DTYPE_F32, 2, huge, NNCL_ERR_INVALID_ARG, "too many elements"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&a, 0xA5, sizeof a);
        assert_int_equal(nncl_array_create(cases[i].dtype, cases[i].ndim, cases[i].shape, &a), cases[i].want);
        assert_null(a.data);
        assert_int_equal(a.ndim, 0);
        expect_message(cases[i].part);
    }
    /* The element count fits in int64 but the bytes do not fit in memory. */
    const int64_t big[2] = {INT64_MAX / 4, 2};
    assert_int_equal(nncl_array_create(NNCL_DTYPE_I64, 2, big, &a), NNCL_ERR_OUT_OF_MEMORY);
    assert_null(a.data);
    assert_int_equal(nncl_array_create(NNCL_DTYPE_F32, 2, ok, NULL), NNCL_ERR_INVALID_ARG);
}

/* ---- IDX ----------------------------------------------------------------------- */

static void test_idx_raw_and_gzip(void **state)
{
    (void)state;
    unsigned char buf[64];
    size_t n = make_small_idx(buf);
    nncl_array a;
    const char *raw = tmp_path(0, "small.idx");
    test_write_file(raw, buf, n);
    TEST_OK(NULL, nncl_idx_read(raw, &a));
    check_small_idx(&a);
    nncl_array_free(&a);

    const char *gz = tmp_path(1, "small.idx.gz");
    write_gz(gz, buf, n);
    TEST_OK(NULL, nncl_idx_read(gz, &a));
    check_small_idx(&a);
    nncl_array_free(&a);

    /* A one-dimensional file larger than the reader's first allocation (1 MiB). */
    const uint32_t big_shape[1] = {3u << 20};
    size_t nbig = (size_t)big_shape[0];
    unsigned char *data = malloc(nbig), *file = malloc(nbig + 8);
    assert_non_null(data);
    assert_non_null(file);
    for (size_t i = 0; i < nbig; i++) data[i] = (unsigned char)(i * 2654435761u >> 13);
    size_t nfile = make_idx(file, 1, big_shape, data, nbig);
    const char *bigpath = tmp_path(2, "big.idx.gz");
    write_gz(bigpath, file, nfile);
    TEST_OK(NULL, nncl_idx_read(bigpath, &a));
    assert_int_equal(a.ndim, 1);
    assert_int_equal(a.shape[0], (int64_t)nbig);
    assert_memory_equal(a.data, data, nbig);
    nncl_array_free(&a);
    free(data);
    free(file);

    /* A zero dimension: a valid, empty array. */
    const uint32_t empty_shape[2] = {0, 28};
    n = make_idx(buf, 2, empty_shape, NULL, 0);
    const char *empty = tmp_path(3, "empty.idx");
    test_write_file(empty, buf, n);
    TEST_OK(NULL, nncl_idx_read(empty, &a));
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[0], 0);
    assert_int_equal(a.shape[1], 28);
    assert_null(a.data);
    nncl_array_free(&a);
}

static void test_idx_bad_header(void **state)
{
    (void)state;
    nncl_array a;
    const char *missing = tmp_path(0, "no-such-file.idx");
    EXPECT_FAIL(NNCL_ERR_IO, missing, a, nncl_idx_read(missing, &a));
    expect_message("No such file");
    EXPECT_FAIL(NNCL_ERR_IO, tmpdir, a, nncl_idx_read(tmpdir, &a));

    unsigned char buf[64];
    size_t n = make_small_idx(buf);
    const char *path = tmp_path(1, "bad.idx");

    buf[0] = 0x12;
    test_write_file(path, buf, n);
    EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_idx_read(path, &a));
    expect_message("bad magic number 0x12000803");
    buf[0] = 0;

    const unsigned char types[] = {0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07};
    const char *names[] = {"0x09 (signed byte)", "0x0B (short)", "0x0C (int)", "0x0D (float)",
                           "0x0E (double)", "unknown IDX element type 0x07"};
    for (size_t i = 0; i < sizeof types; i++) {
        buf[2] = types[i];
        test_write_file(path, buf, n);
        EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_idx_read(path, &a));
        expect_message(names[i]);
    }
    buf[2] = 0x08;

    const unsigned char ranks[] = {0, 9, 255};
    for (size_t i = 0; i < sizeof ranks; i++) {
        buf[3] = ranks[i];
        test_write_file(path, buf, n);
        EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_idx_read(path, &a));
        expect_message("outside 1..8");
    }

    /* Shapes past the 2^31-element cap are refused before any allocation. */
    const uint32_t huge[3] = {65536, 65536, 1};
    n = make_idx(buf, 3, huge, (const unsigned char *)"abc", 3);
    test_write_file(path, buf, n);
    EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_idx_read(path, &a));
    expect_message("more than 2147483648 elements");
    const uint32_t max[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    n = make_idx(buf, 4, max, NULL, 0);
    test_write_file(path, buf, n);
    EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_idx_read(path, &a));
    /* Exactly 2^31 elements passes the cap, then fails as truncated without a 2 GiB allocation. */
    const uint32_t cap[2] = {1u << 16, 1u << 15};
    n = make_idx(buf, 2, cap, (const unsigned char *)"xy", 2);
    test_write_file(path, buf, n);
    EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_idx_read(path, &a));
    expect_message("truncated: expected 2147483648 bytes of data, found 2");
}

static void test_idx_truncated_and_trailing(void **state)
{
    (void)state;
    unsigned char buf[64];
    size_t n = make_small_idx(buf);
    nncl_array a;
    const char *path = tmp_path(0, "cut.idx");
    const char *gzpath = tmp_path(1, "cut.idx.gz");
    for (size_t len = 0; len < n; len++) {
        test_write_file(path, buf, len);
        EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_idx_read(path, &a));
        expect_message("truncated");
        write_gz(gzpath, buf, len);
        EXPECT_FAIL(NNCL_ERR_FORMAT, gzpath, a, nncl_idx_read(gzpath, &a));
        expect_message("truncated");
    }
    test_write_file(path, buf, 20);
    EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_idx_read(path, &a));
    expect_message("truncated: expected 24 bytes of data, found 4");

    /* Every prefix of a valid .gz file: the stream itself is cut short. */
    write_gz(gzpath, buf, n);
    size_t gzlen;
    unsigned char *gz = test_read_file(gzpath, &gzlen);
    for (size_t len = 0; len < gzlen; len++) {
        test_write_file(gzpath, gz, len);
        EXPECT_FAIL(NNCL_ERR_FORMAT, gzpath, a, nncl_idx_read(gzpath, &a));
    }
    free(gz);

    /* Bytes after the data, raw and compressed. */
    unsigned char longer[80];
    memcpy(longer, buf, n);
    memset(longer + n, 0x42, 5);
    test_write_file(path, longer, n + 5);
    EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_idx_read(path, &a));
    expect_message("has 5 trailing bytes");
    write_gz(gzpath, longer, n + 1);
    EXPECT_FAIL(NNCL_ERR_FORMAT, gzpath, a, nncl_idx_read(gzpath, &a));
    expect_message("has 1 trailing bytes");
}

static void test_idx_corrupt_gzip(void **state)
{
    (void)state;
    const uint32_t shape[3] = {20, 28, 28};
    size_t ndata = 20 * 28 * 28;
    unsigned char *data = malloc(ndata), *file = malloc(ndata + 16);
    assert_non_null(data);
    assert_non_null(file);
    test_rng r = test_rng_seed(5);
    for (size_t i = 0; i < ndata; i++) data[i] = (unsigned char)(test_rng_below(&r, 16) * 16);
    size_t nfile = make_idx(file, 3, shape, data, ndata);
    const char *path = tmp_path(0, "corrupt.idx.gz");
    write_gz(path, file, nfile);
    size_t gzlen;
    unsigned char *gz = test_read_file(path, &gzlen);
    assert_true(gzlen > 200);

    nncl_array a;
    TEST_OK(NULL, nncl_idx_read(path, &a));
    assert_memory_equal(a.data, data, ndata);
    nncl_array_free(&a);

    /* One flipped byte at each of 32 positions around the middle, then a flipped run. */
    for (size_t pos = gzlen / 2 - 16; pos < gzlen / 2 + 16; pos++) {
        gz[pos] ^= 0x55;
        test_write_file(path, gz, gzlen);
        EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_idx_read(path, &a));
        gz[pos] ^= 0x55;
    }
    for (size_t pos = gzlen / 2 - 8; pos < gzlen / 2 + 8; pos++) gz[pos] = (unsigned char)~gz[pos];
    test_write_file(path, gz, gzlen);
    EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_idx_read(path, &a));
    expect_message("corrupt gzip stream");
    free(gz);
    free(data);
    free(file);
}

static void test_idx_fashion_mnist(void **state)
{
    (void)state;
    const char *images = FASHION_DIR "/t10k-images-idx3-ubyte.gz";
    const char *labels = FASHION_DIR "/t10k-labels-idx1-ubyte.gz";
    if (access(images, R_OK) != 0 || access(labels, R_OK) != 0) {
        print_message("Fashion-MNIST is not in " FASHION_DIR "\n");
        /* cmocka reports this test as skipped (the executable, with its other tests, still passes in CTest);
           where the data must be there (CI), a failure */
        const char *require = getenv("NNCL_REQUIRE_DATA");
        if (require != NULL && strcmp(require, "1") == 0) fail_msg("NNCL_REQUIRE_DATA=1 and the data set is missing");
        skip();
    }
    nncl_array a;
    TEST_OK(NULL, nncl_idx_read(images, &a));
    assert_int_equal(a.dtype, NNCL_DTYPE_U8);
    assert_int_equal(a.ndim, 3);
    assert_int_equal(a.shape[0], 10000);
    assert_int_equal(a.shape[1], 28);
    assert_int_equal(a.shape[2], 28);
    int nonzero = 0;
    for (int64_t i = 0; i < nncl_array_numel(&a); i++) nonzero |= ((unsigned char *)a.data)[i] != 0;
    assert_true(nonzero);
    nncl_array_free(&a);

    TEST_OK(NULL, nncl_idx_read(labels, &a));
    assert_int_equal(a.dtype, NNCL_DTYPE_U8);
    assert_int_equal(a.ndim, 1);
    assert_int_equal(a.shape[0], 10000);
    int count[10] = {0};
    for (int64_t i = 0; i < 10000; i++) {
        unsigned v = ((unsigned char *)a.data)[i];
        assert_in_range(v, 0, 9);
        count[v]++;
    }
    /* The test set is balanced: 1000 of each class. */
    for (int c = 0; c < 10; c++) assert_int_equal(count[c], 1000);
    nncl_array_free(&a);
}

/* ---- .npy ---------------------------------------------------------------------- */

/* Fills element i of an array with a value that depends on dtype and i. */
static void fill_pattern(nncl_array *a)
{
    int64_t n = nncl_array_numel(a);
    for (int64_t i = 0; i < n; i++) {
        switch (a->dtype) {
        case NNCL_DTYPE_F32: ((float *)a->data)[i] = 0.25f * (float)i - 3.0f; break;
        case NNCL_DTYPE_U8: ((unsigned char *)a->data)[i] = (unsigned char)(37 * i + 1); break;
        case NNCL_DTYPE_I64: ((int64_t *)a->data)[i] = i * 1000000000007LL - 5; break;
        }
    }
}

static void test_npy_round_trip(void **state)
{
    (void)state;
    const nncl_dtype dtypes[3] = {NNCL_DTYPE_F32, NNCL_DTYPE_U8, NNCL_DTYPE_I64};
    const char *descrs[3] = {"'<f4'", "'|u1'", "'<i8'"};
    const struct {
        int ndim;
        int64_t shape[3];
        const char *text;
    } shapes[] = {
        {0, {0}, "'shape': (), }"},
        {1, {0}, "'shape': (0,), }"},
        {1, {7}, "'shape': (7,), }"},
        {3, {2, 3, 4}, "'shape': (2, 3, 4), }"},
    };
    const char *path = tmp_path(0, "round.npy");
    for (int d = 0; d < 3; d++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            nncl_array a, b;
            TEST_OK(NULL, nncl_array_create(dtypes[d], shapes[s].ndim, shapes[s].shape, &a));
            fill_pattern(&a);
            TEST_OK(NULL, nncl_npy_write(path, &a));

            /* The header is what NumPy writes: version 1.0, padded to 64 bytes, ended by '\n'. */
            size_t flen;
            unsigned char *file = test_read_file(path, &flen);
            size_t bytes = (size_t)nncl_array_numel(&a) * nncl_dtype_size(a.dtype);
            assert_true(flen >= 10 + bytes);
            size_t hlen = (size_t)file[8] | (size_t)file[9] << 8;
            assert_int_equal(file[6], 1);
            assert_int_equal(file[7], 0);
            assert_int_equal((10 + hlen) % 64, 0);
            assert_int_equal(10 + hlen + bytes, flen);
            assert_int_equal(file[10 + hlen - 1], '\n');
            file[10 + hlen - 1] = '\0';
            const char *header = (const char *)file + 10;
            assert_true(strncmp(header, "{'descr': ", 10) == 0);
            assert_non_null(strstr(header, descrs[d]));
            assert_non_null(strstr(header, "'fortran_order': False, "));
            assert_non_null(strstr(header, shapes[s].text));
            free(file);

            TEST_OK(NULL, nncl_npy_read(path, &b));
            assert_int_equal(b.dtype, a.dtype);
            assert_int_equal(b.ndim, a.ndim);
            for (int i = 0; i < a.ndim; i++) assert_int_equal(b.shape[i], a.shape[i]);
            if (bytes > 0) assert_memory_equal(b.data, a.data, bytes);
            else assert_null(b.data);
            nncl_array_free(&a);
            nncl_array_free(&b);
        }
    }
    assert_false(has_temp_file(tmpdir));
}

static void test_npy_numpy_files(void **state)
{
    (void)state;
    const char *path = tmp_path(0, "arange.npy");
    nncl_array a;
    test_write_file(path, NUMPY_ARANGE, NUMPY_ARANGE_LEN);
    assert_int_equal(NUMPY_ARANGE_LEN, 128 + 48);
    TEST_OK(NULL, nncl_npy_read(path, &a));
    assert_int_equal(a.dtype, NNCL_DTYPE_I64);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 3);
    for (int i = 0; i < 6; i++) assert_int_equal(((int64_t *)a.data)[i], i);

    /* Writing it back gives NumPy's bytes exactly. */
    const char *again = tmp_path(1, "again.npy");
    TEST_OK(NULL, nncl_npy_write(again, &a));
    size_t n;
    unsigned char *bytes = test_read_file(again, &n);
    assert_int_equal(n, NUMPY_ARANGE_LEN);
    assert_memory_equal(bytes, NUMPY_ARANGE, n);
    free(bytes);
    nncl_array_free(&a);

    /* Headers written differently but meaning the same: key order, quotes, spacing, versions. */
    const int64_t values[6] = {10, 11, 12, 13, 14, 15};
    const struct {
        int major;
        const char *dict;
        int ndim;
        int64_t shape[2];
    } variants[] = {
        {1, "{\"shape\":(6 ,) ,'fortran_order' :False,\t'descr':\"<i8\"}", 1, {6}},
        {2, "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3)}", 2, {2, 3}},
        {3, "{ 'shape' : ( 3 , 2 , ) , 'descr' : '<i8' , 'fortran_order' : False , }", 2, {3, 2}},
        {1, "{'descr': '<i8', 'fortran_order': False, 'shape': (6L,), }", 1, {6}},
    };
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        write_npy(path, variants[v].major, variants[v].dict, values, sizeof values);
        TEST_OK(NULL, nncl_npy_read(path, &a));
        assert_int_equal(a.dtype, NNCL_DTYPE_I64);
        assert_int_equal(a.ndim, variants[v].ndim);
        for (int i = 0; i < a.ndim; i++) assert_int_equal(a.shape[i], variants[v].shape[i]);
        assert_memory_equal(a.data, values, sizeof values);
        nncl_array_free(&a);
    }

    /* '<u1' is accepted as well as NumPy's '|u1'. */
    write_npy(path, 1, "{'descr': '<u1', 'fortran_order': False, 'shape': (3,), }", "abc", 3);
    TEST_OK(NULL, nncl_npy_read(path, &a));
    assert_int_equal(a.dtype, NNCL_DTYPE_U8);
    assert_memory_equal(a.data, "abc", 3);
    nncl_array_free(&a);
}

static void test_npy_bad_headers(void **state)
{
    (void)state;
    nncl_array a;
    const char *missing = tmp_path(0, "missing.npy");
    EXPECT_FAIL(NNCL_ERR_IO, missing, a, nncl_npy_read(missing, &a));
    EXPECT_FAIL(NNCL_ERR_IO, tmpdir, a, nncl_npy_read(tmpdir, &a));

    const char *path = tmp_path(1, "bad.npy");
    unsigned char bytes[NUMPY_ARANGE_LEN];
    memcpy(bytes, NUMPY_ARANGE, NUMPY_ARANGE_LEN);
    bytes[1] = 'n';
    test_write_file(path, bytes, NUMPY_ARANGE_LEN);
    EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_npy_read(path, &a));
    expect_message("not a .npy file");
    bytes[1] = 'N';
    bytes[6] = 4;
    test_write_file(path, bytes, NUMPY_ARANGE_LEN);
    EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_npy_read(path, &a));
    expect_message("version 4.0");
    bytes[6] = 1;

    /* A header length larger than the file, and one over the 1 MiB cap (version 2.0). */
    bytes[8] = 0xFF;
    bytes[9] = 0x7F;
    test_write_file(path, bytes, NUMPY_ARANGE_LEN);
    EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_npy_read(path, &a));
    expect_message("truncated: expected a 32767-byte header, found 166 bytes");
    const unsigned char v2[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0xFF, 0xFF, 0xFF, 0xFF};
    test_write_file(path, v2, sizeof v2);
    EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_npy_read(path, &a));
    expect_message("header length 4294967295 is over the limit");

    const int64_t six[6] = {0, 1, 2, 3, 4, 5};
    const struct {
        const char *dict;
        const char *part;
    } cases[] = {
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", "unsupported dtype '<f8'"},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (12,), }", "unsupported dtype '>f4'"},
        {"{'descr': '|i1', 'fortran_order': False, 'shape': (48,), }", "unsupported dtype '|i1'"},
        {"{'descr': '<i8', 'fortran_order': True, 'shape': (2, 3), }", "Fortran-order"},
        {"{'descr': '<i8', 'fortran_order': false, 'shape': (6,), }", "True or False"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (-1,), }", "signed"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (2, -3), }", "signed"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (99999999999999999999999999,), }", "larger than"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (100000, 100000, 100000), }", "more than 2147483648"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 6), }", "more than 8 dimensions"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (6), }", "not a tuple"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': [6], }", "must be a tuple"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (6,,), }", "expected a dimension"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (6 7,), }", "expected ',' or ')'"},
        {"{'descr': '<i8', 'fortran_order': False}", "lacks the key 'shape'"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (6,), 'extra': 1}", "unexpected key 'extra'"},
        {"{'descr': '<i8', 'descr': '<i8', 'fortran_order': False, 'shape': (6,)}", "repeats the key 'descr'"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (6,)} x", "after the closing"},
        {"{'descr': '<i8' 'fortran_order': False, 'shape': (6,)}", "expected ',' or '}'"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (6,)", "expected ',' or '}'"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (6,), ", "expected a quoted string"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (6,), 'x", "unterminated string"},
        {"{'descr: '<i8', 'fortran_order': False, 'shape': (6,)}", "expected ':'"},
        {"{'de\\scr': '<i8', 'fortran_order': False, 'shape': (6,)}", "unsupported character"},
        {"['descr', '<i8']", "does not start with '{'"},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (6,), 'descr_with_a_very_long_name_of_more_than_32': 1}", "too long"},
        {"", "does not start with '{'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_npy(path, 1, cases[i].dict, six, sizeof six);
        EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_npy_read(path, &a));
        expect_message(cases[i].part);
    }
}

static void test_npy_truncated_and_trailing(void **state)
{
    (void)state;
    const char *path = tmp_path(0, "cut.npy");
    nncl_array a;
    for (size_t len = 0; len < NUMPY_ARANGE_LEN; len++) {
        test_write_file(path, NUMPY_ARANGE, len);
        EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_npy_read(path, &a));
        expect_message("truncated");
    }
    test_write_file(path, NUMPY_ARANGE, NUMPY_ARANGE_LEN - 8);
    EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_npy_read(path, &a));
    expect_message("truncated: expected 48 bytes of data, found 40");

    unsigned char longer[NUMPY_ARANGE_LEN + 3];
    memcpy(longer, NUMPY_ARANGE, NUMPY_ARANGE_LEN);
    memset(longer + NUMPY_ARANGE_LEN, 0, 3);
    test_write_file(path, longer, sizeof longer);
    EXPECT_FAIL(NNCL_ERR_FORMAT, path, a, nncl_npy_read(path, &a));
    expect_message("has 3 trailing bytes");
}

static void test_npy_write_errors(void **state)
{
    (void)state;
    nncl_array a;
    const int64_t shape[1] = {5};
    TEST_OK(NULL, nncl_array_create(NNCL_DTYPE_F32, 1, shape, &a));
    fill_pattern(&a);

    /* A directory that does not exist: nothing is created anywhere. */
    const char *nodir = tmp_path(0, "no-such-dir/out.npy");
    assert_int_equal(nncl_npy_write(nodir, &a), NNCL_ERR_IO);
    assert_int_equal(nncl_context_last_status(NULL), NNCL_ERR_IO);
    expect_message(nodir);
    expect_message("No such file or directory");
    assert_int_equal(access(tmp_path(1, "no-such-dir"), F_OK), -1);
    assert_false(has_temp_file(tmpdir));

    /* The target is a directory: the rename fails and the temporary file is removed. */
    const char *dir = tmp_path(1, "a-directory");
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(nncl_npy_write(dir, &a), NNCL_ERR_IO);
    expect_message(dir);
    expect_message("rename");
    assert_false(has_temp_file(tmpdir));
    assert_int_equal(rmdir(dir), 0);

    /* Overwriting replaces the old contents atomically. */
    const char *path = tmp_path(2, "over.npy");
    TEST_OK(NULL, nncl_npy_write(path, &a));
    ((float *)a.data)[4] = 123.5f;
    TEST_OK(NULL, nncl_npy_write(path, &a));
    nncl_array b;
    TEST_OK(NULL, nncl_npy_read(path, &b));
    assert_true(((float *)b.data)[4] == 123.5f);
    nncl_array_free(&b);
    assert_false(has_temp_file(tmpdir));

    /* Malformed arrays are refused before any file is touched. */
    const char *never = tmp_path(3, "never.npy");
    nncl_array bad = a;
    bad.dtype = (nncl_dtype)5;
    assert_int_equal(nncl_npy_write(never, &bad), NNCL_ERR_INVALID_ARG);
    bad = a;
    bad.ndim = 9;
    assert_int_equal(nncl_npy_write(never, &bad), NNCL_ERR_INVALID_ARG);
    bad = a;
    bad.shape[0] = -5;
    assert_int_equal(nncl_npy_write(never, &bad), NNCL_ERR_INVALID_ARG);
    bad = a;
    bad.data = NULL;
    assert_int_equal(nncl_npy_write(never, &bad), NNCL_ERR_INVALID_ARG);
    assert_int_equal(nncl_npy_write(never, NULL), NNCL_ERR_INVALID_ARG);
    assert_int_equal(nncl_npy_write(NULL, &a), NNCL_ERR_INVALID_ARG);
    assert_int_equal(access(never, F_OK), -1);
    assert_int_equal(nncl_npy_read(NULL, &b), NNCL_ERR_INVALID_ARG);
    assert_int_equal(nncl_npy_read(never, NULL), NNCL_ERR_INVALID_ARG);
    assert_int_equal(nncl_idx_read(NULL, &b), NNCL_ERR_INVALID_ARG);
    assert_int_equal(nncl_idx_read(never, NULL), NNCL_ERR_INVALID_ARG);
    nncl_array_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_array_create_free),
        cmocka_unit_test(test_array_bad_args),
        cmocka_unit_test(test_idx_raw_and_gzip),
        cmocka_unit_test(test_idx_bad_header),
        cmocka_unit_test(test_idx_truncated_and_trailing),
        cmocka_unit_test(test_idx_corrupt_gzip),
        cmocka_unit_test(test_idx_fashion_mnist),
        cmocka_unit_test(test_npy_round_trip),
        cmocka_unit_test(test_npy_numpy_files),
        cmocka_unit_test(test_npy_bad_headers),
        cmocka_unit_test(test_npy_truncated_and_trailing),
        cmocka_unit_test(test_npy_write_errors),
    };
    return cmocka_run_group_tests_name("data", tests, setup, teardown);
}
