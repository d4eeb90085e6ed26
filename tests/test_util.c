/*
 * test_util.c - see test_util.h.
 */
#include "test_util.h"

#include <dirent.h>
#include <unistd.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *test_backend_arg(int argc, char **argv)
{
    const char *b = argc > 1 ? argv[1] : "cpu";
    if (strcmp(b, "cpu") != 0 && strcmp(b, "opencl") != 0) {
        fprintf(stderr, "usage: %s [cpu|opencl]\n", argv[0]);
        exit(2);
    }
    return b;
}

nncl_context *test_context(const char *backend)
{
    nncl_context_options opt = nncl_context_options_default();
    opt.backend = strcmp(backend, "cpu") == 0 ? NNCL_BACKEND_CPU : NNCL_BACKEND_OPENCL;
    nncl_context *ctx = NULL;
    nncl_status st = nncl_context_create(&opt, &ctx);
    if (st == NNCL_OK) return ctx;
    const char *require = getenv("NNCL_REQUIRE_OPENCL");
    if (st == NNCL_ERR_NO_DEVICE && !(require && strcmp(require, "1") == 0)) {
        fprintf(stderr, "SKIPPED: no OpenCL device: %s\n", nncl_context_last_error(NULL));
        exit(TEST_SKIP);
    }
    fprintf(stderr, "cannot create a %s context: %s: %s\n", backend, nncl_status_name(st),
            nncl_context_last_error(NULL));
    exit(1);
}

void test_assert_context_works(nncl_context *ctx)
{
    const float a[] = {1, 2, 3, 4, 5, 6}, b[] = {7, 8, 9, 10, 11, 12}, want[] = {58, 64, 139, 154};
    const int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s22[2] = {2, 2};
    nncl_tensor ta, tb, tc;
    float got[4];
    TEST_OK(ctx, nncl_tensor_create(ctx, 2, s23, &ta));
    TEST_OK(ctx, nncl_tensor_create(ctx, 2, s32, &tb));
    TEST_OK(ctx, nncl_tensor_create(ctx, 2, s22, &tc));
    TEST_OK(ctx, nncl_tensor_write(ctx, &ta, a, 6));
    TEST_OK(ctx, nncl_tensor_write(ctx, &tb, b, 6));
    TEST_OK(ctx, nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_NO_TRANS, 2, 2, 3, 1.0f, &ta, 3, &tb, 2, 0.0f, &tc, 2));
    TEST_OK(ctx, nncl_tensor_read(ctx, &tc, got, 4));
    for (int i = 0; i < 4; i++)
        if (got[i] != want[i]) fail_msg("the context no longer computes a correct GEMM: %g != %g", (double)got[i], (double)want[i]);
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &ta));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &tb));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &tc));
}

void test_write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n > 0) assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

int test_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (remove(path) != 0) rmdir(path);
    }
    closedir(d);
    return rmdir(dir);
}

unsigned char *test_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    if (len > 0) assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

test_rng test_rng_seed(uint64_t seed)
{
    test_rng r = {seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull};
    return r;
}

uint64_t test_rng_next(test_rng *r)
{
    /* splitmix64: good enough statistics, and fully portable */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float test_rng_uniform(test_rng *r, float lo, float hi)
{
    double u = (double)(test_rng_next(r) >> 40) / (double)(1ull << 24);
    return (float)(lo + (hi - lo) * u);
}

int64_t test_rng_below(test_rng *r, int64_t n)
{
    return (int64_t)(test_rng_next(r) % (uint64_t)n);
}

void test_rng_fill(test_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = test_rng_uniform(r, lo, hi);
}

/* ---- guarded tensors ---- */

void test_guarded_create(nncl_context *ctx, test_guarded *g, int ndim, const int64_t *shape, const float *data)
{
    nncl_tensor probe = {.ndim = ndim};
    for (int i = 0; i < ndim; i++) probe.shape[i] = shape[i];
    size_t n = (size_t)nncl_tensor_numel(&probe);
    int64_t total = (int64_t)(n + 2 * TEST_GUARD);
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &total, &g->whole));
    TEST_OK(ctx, nncl_tensor_view(ctx, &g->whole, TEST_GUARD, ndim, shape, &g->view));
    float *init = malloc(sizeof(float) * (size_t)total);
    assert_non_null(init);
    for (int64_t i = 0; i < total; i++) init[i] = TEST_CANARY;
    if (data) memcpy(init + TEST_GUARD, data, n * sizeof(float));
    TEST_OK(ctx, nncl_tensor_write(ctx, &g->whole, init, (size_t)total));
    free(init);
}

void test_guarded_read(nncl_context *ctx, const test_guarded *g, float *out, const char *what)
{
    size_t total = (size_t)nncl_tensor_numel(&g->whole), n = (size_t)nncl_tensor_numel(&g->view);
    float *all = malloc(sizeof(float) * total);
    assert_non_null(all);
    TEST_OK(ctx, nncl_tensor_read(ctx, &g->whole, all, total));
    for (size_t i = 0; i < total; i++) {
        if (i >= TEST_GUARD && i < TEST_GUARD + n) continue;
        if (memcmp(&all[i], &(float){TEST_CANARY}, sizeof(float)) != 0) {
            float v = all[i];
            free(all);
            fail_msg("%s: guard element %zu (%s the view) was overwritten with %g", what, i,
                     i < TEST_GUARD ? "before" : "after", (double)v);
        }
    }
    memcpy(out, all + TEST_GUARD, n * sizeof(float));
    free(all);
}

void test_guarded_destroy(nncl_context *ctx, test_guarded *g)
{
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &g->whole));
    memset(&g->view, 0, sizeof g->view);
}

/* ---- comparisons ---- */

void test_assert_close(const float *got, const float *ref, size_t n, double atol, double rtol, const char *what)
{
    size_t worst = 0, bad = 0;
    double worst_excess = -1.0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        double excess;
        if (isnan(g) || isnan(r)) {
            excess = (isnan(g) && isnan(r)) ? -1.0 : INFINITY;
        } else if (isinf(g) || isinf(r)) {
            excess = g == r ? -1.0 : INFINITY;
        } else {
            excess = fabs(g - r) - (atol + rtol * fabs(r));
        }
        if (excess > 0) bad++;
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    if (bad > 0)
        fail_msg("%s: %zu of %zu elements outside atol %.3g + rtol %.3g; worst [%zu] got %.9g want %.9g", what, bad,
                 n, atol, rtol, worst, (double)got[worst], (double)ref[worst]);
}

void test_assert_bitwise(const float *got, const float *ref, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &ref[i], sizeof(float)) != 0)
            fail_msg("%s: element %zu differs: got %.9g want %.9g (bitwise comparison)", what, i, (double)got[i],
                     (double)ref[i]);
}
