/*
 * test_blas1.c - fill, scale, axpy and sum: OpenCL against the CPU reference.
 *
 * Sizes are the awkward ones (1, 7, 31, 32, 33, 63, 64, 65, 93) plus large and
 * seeded random ones, at non-zero offsets inside guarded buffers.
 * Tolerances:
 *   fill, scale, axpy: bit for bit (one rounding each; axpy uses fma on both).
 *   sum: |s_cl - s_ref| <= gamma(n) * sum |x_i|, the forward error bound of a
 *        float32 sum of n terms in any order (the reference sums in double).
 */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static nncl_context *cpu, *ocl;

#define N_FIXED 12
static const int64_t FIXED[N_FIXED] = {1, 7, 31, 32, 33, 63, 64, 65, 93, 1024, 4099, 100003};

/* The sizes of every case: the fixed ones, then seeded random ones. */
static int64_t case_size(int i)
{
    if (i < N_FIXED) return FIXED[i];
    test_rng r = test_rng_seed((uint64_t)i);
    return 1 + test_rng_below(&r, 20000);
}
#define N_CASES (N_FIXED + 10)

typedef enum { OP_FILL, OP_SCALE, OP_AXPY } op_kind;

/* Runs one element-wise op on both backends and compares bitwise. */
static void elementwise(op_kind op, int64_t n, uint64_t seed)
{
    float *x = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)n);
    float *out[2] = {malloc(sizeof(float) * (size_t)n), malloc(sizeof(float) * (size_t)n)};
    test_rng r = test_rng_seed(seed);
    test_rng_fill(&r, x, (size_t)n, -10.0f, 10.0f);
    test_rng_fill(&r, y, (size_t)n, -10.0f, 10.0f);
    float alpha = test_rng_uniform(&r, -3.0f, 3.0f);
    nncl_context *ctxs[2] = {cpu, ocl};
    for (int side = 0; side < 2; side++) {
        nncl_context *ctx = ctxs[side];
        test_guarded gx, gy;
        test_guarded_create(ctx, &gx, 1, &n, x);
        test_guarded_create(ctx, &gy, 1, &n, y);
        if (op == OP_FILL) TEST_OK(ctx, nncl_tensor_fill(ctx, &gy.view, alpha));
        if (op == OP_SCALE) TEST_OK(ctx, nncl_scale(ctx, alpha, &gy.view));
        if (op == OP_AXPY) TEST_OK(ctx, nncl_axpy(ctx, alpha, &gx.view, &gy.view));
        test_guarded_read(ctx, &gy, out[side], "blas1 output");
        test_guarded_read(ctx, &gx, y, "blas1 input"); /* inputs stay untouched too */
        test_assert_bitwise(y, x, (size_t)n, "blas1 input unchanged");
        test_rng r2 = test_rng_seed(seed);
        test_rng_fill(&r2, x, (size_t)n, -10.0f, 10.0f);
        test_rng_fill(&r2, y, (size_t)n, -10.0f, 10.0f);
        test_guarded_destroy(ctx, &gx);
        test_guarded_destroy(ctx, &gy);
    }
    char what[64];
    snprintf(what, sizeof what, "%s n=%lld", op == OP_FILL ? "fill" : op == OP_SCALE ? "scale" : "axpy",
             (long long)n);
    test_assert_bitwise(out[1], out[0], (size_t)n, what);
    free(x);
    free(y);
    free(out[0]);
    free(out[1]);
}

static void test_fill(void **state) { (void)state; for (int i = 0; i < N_CASES; i++) elementwise(OP_FILL, case_size(i), 10 + i); }
static void test_scale(void **state) { (void)state; for (int i = 0; i < N_CASES; i++) elementwise(OP_SCALE, case_size(i), 20 + i); }
static void test_axpy(void **state) { (void)state; for (int i = 0; i < N_CASES; i++) elementwise(OP_AXPY, case_size(i), 30 + i); }

static double gamma_n(double n)
{
    const double u = 0x1p-24;
    return n * u / (1.0 - n * u);
}

static void sum_case(int64_t n, float lo, float hi, uint64_t seed)
{
    float *x = malloc(sizeof(float) * (size_t)n);
    test_rng r = test_rng_seed(seed);
    test_rng_fill(&r, x, (size_t)n, lo, hi);
    double mag = 0.0;
    for (int64_t i = 0; i < n; i++) mag += fabs(x[i]);
    float result[2];
    nncl_context *ctxs[2] = {cpu, ocl};
    const int64_t one = 1;
    for (int side = 0; side < 2; side++) {
        nncl_context *ctx = ctxs[side];
        test_guarded gx, gs;
        test_guarded_create(ctx, &gx, 1, &n, x);
        test_guarded_create(ctx, &gs, 1, &one, NULL);
        TEST_OK(ctx, nncl_sum(ctx, &gx.view, &gs.view));
        test_guarded_read(ctx, &gs, &result[side], "sum");
        test_guarded_destroy(ctx, &gx);
        test_guarded_destroy(ctx, &gs);
    }
    double bound = gamma_n((double)n) * mag + 1e-30;
    double err = fabs((double)result[1] - (double)result[0]);
    if (!(err <= bound))
        fail_msg("sum n=%lld in [%g, %g): OpenCL %.9g, reference %.9g, error %.3g > bound %.3g", (long long)n,
                 (double)lo, (double)hi, (double)result[1], (double)result[0], err, bound);
    free(x);
}

static void test_sum(void **state)
{
    (void)state;
    for (int i = 0; i < N_CASES; i++) {
        sum_case(case_size(i), -1.0f, 1.0f, 40 + i); /* cancelling */
        sum_case(case_size(i), 0.0f, 100.0f, 60 + i); /* all positive */
    }
}

/* The reduction's order is fixed: the same input gives the same bits every time. */
static void test_sum_is_reproducible(void **state)
{
    (void)state;
    const int64_t n = 77777, one = 1;
    float *x = malloc(sizeof(float) * n);
    test_rng r = test_rng_seed(5);
    test_rng_fill(&r, x, n, -1.0f, 1.0f);
    nncl_tensor tx, ts;
    TEST_OK(ocl, nncl_tensor_create(ocl, 1, &n, &tx));
    TEST_OK(ocl, nncl_tensor_create(ocl, 1, &one, &ts));
    TEST_OK(ocl, nncl_tensor_write(ocl, &tx, x, n));
    float first = 0, again = 0;
    for (int rep = 0; rep < 5; rep++) {
        TEST_OK(ocl, nncl_sum(ocl, &tx, &ts));
        TEST_OK(ocl, nncl_tensor_read(ocl, &ts, rep ? &again : &first, 1));
        if (rep) test_assert_bitwise(&again, &first, 1, "repeated sum");
    }
    TEST_OK(ocl, nncl_tensor_destroy(ocl, &tx));
    TEST_OK(ocl, nncl_tensor_destroy(ocl, &ts));
    free(x);
}

int main(void)
{
    cpu = test_context("cpu");
    ocl = test_context("opencl");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fill),
        cmocka_unit_test(test_scale),
        cmocka_unit_test(test_axpy),
        cmocka_unit_test(test_sum),
        cmocka_unit_test(test_sum_is_reproducible),
    };
    int failed = cmocka_run_group_tests_name("blas1 parity (CPU reference vs OpenCL)", tests, NULL, NULL);
    nncl_context_destroy(cpu);
    nncl_context_destroy(ocl);
    return failed;
}
