/*
 * test_errors.c - bad input on one backend (argument: cpu | opencl).
 *
 * Each bad call must return the right status and leave a non-empty message,
 * and the same context must then still compute a correct GEMM.
 */
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv */

#include "test_util.h"

#include <stdlib.h>
#include <string.h>

static nncl_context *ctx;
static const char *backend;

/* The call returned `want`, recorded it, left a message, and the context still works. */
#define EXPECT(want, call)                                                                         \
    do {                                                                                           \
        nncl_status got_ = (call);                                                                 \
        if (got_ != (want))                                                                        \
            fail_msg("%s returned %s, expected %s (%s)", #call, nncl_status_name(got_),            \
                     nncl_status_name(want), nncl_context_last_error(ctx));                        \
        assert_int_equal(nncl_context_last_status(ctx), (want));                                   \
        assert_true(strlen(nncl_context_last_error(ctx)) > 0);                                     \
        test_assert_context_works(ctx);                                                              \
    } while (0)

static void test_null_context(void **state)
{
    (void)state;
    const int64_t n = 4;
    nncl_tensor t;
    assert_int_equal(nncl_tensor_create(NULL, 1, &n, &t), NNCL_ERR_INVALID_ARG);
    assert_non_null(strstr(nncl_context_last_error(NULL), "ctx is NULL"));
    assert_int_equal(nncl_context_last_status(NULL), NNCL_ERR_INVALID_ARG);
    assert_int_equal(nncl_context_finish(NULL), NNCL_ERR_INVALID_ARG);
    assert_int_equal(nncl_context_destroy(NULL), NNCL_OK);
    assert_int_equal(nncl_context_create(NULL, NULL), NNCL_ERR_INVALID_ARG);
    assert_int_equal(nncl_device_list(NULL, 0, NULL), NNCL_ERR_INVALID_ARG);
    test_assert_context_works(ctx);
}

static void test_bad_context_options(void **state)
{
    (void)state;
    nncl_context *other = (nncl_context *)&other;
    nncl_context_options opt = nncl_context_options_default();
    opt.backend = (nncl_backend_kind)7;
    assert_int_equal(nncl_context_create(&opt, &other), NNCL_ERR_INVALID_ARG);
    assert_null(other);
    assert_non_null(strstr(nncl_context_last_error(NULL), "unknown backend"));
    /* An index below -1 is neither an index nor "choose": refused on either backend, never taken as -1. */
    for (int which = 0; which < 2; which++) {
        opt = nncl_context_options_default();
        opt.backend = strcmp(backend, "opencl") == 0 ? NNCL_BACKEND_OPENCL : NNCL_BACKEND_CPU;
        *(which ? &opt.device : &opt.platform) = -7;
        assert_int_equal(nncl_context_create(&opt, &other), NNCL_ERR_INVALID_ARG);
        assert_null(other);
        assert_non_null(strstr(nncl_context_last_error(NULL), "-1 to choose"));
    }
    if (strcmp(backend, "opencl") == 0) {
        opt = nncl_context_options_default();
        opt.platform = 99;
        opt.device = 0;
        assert_int_equal(nncl_context_create(&opt, &other), NNCL_ERR_NO_DEVICE);
        assert_non_null(strstr(nncl_context_last_error(NULL), "platform 99"));
        opt.platform = 0;
        opt.device = 999;
        assert_int_equal(nncl_context_create(&opt, &other), NNCL_ERR_NO_DEVICE);
        assert_non_null(strstr(nncl_context_last_error(NULL), "0:999"));
        const char *bad_env[] = {"x", "0", "0:", ":0", "0:0:0", "-1:0", "0:1x"};
        for (size_t i = 0; i < sizeof bad_env / sizeof bad_env[0]; i++) {
            setenv("NNCL_DEVICE", bad_env[i], 1);
            assert_int_equal(nncl_context_create(NULL, &other), NNCL_ERR_INVALID_ARG);
            assert_non_null(strstr(nncl_context_last_error(NULL), "NNCL_DEVICE"));
        }
        unsetenv("NNCL_DEVICE");
    }
    test_assert_context_works(ctx);
}

static void test_bad_tensors(void **state)
{
    (void)state;
    nncl_tensor t;
    const int64_t zero[2] = {3, 0}, neg[1] = {-2}, ok[2] = {3, 4}, nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_create(ctx, 2, zero, &t));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_create(ctx, 1, neg, &t));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_create(ctx, 9, nine, &t));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_create(ctx, 2, NULL, &t));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_create(ctx, 2, ok, NULL));
    const int64_t huge[2] = {INT64_MAX / 2, 4};
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_create(ctx, 2, huge, &t));
    /* Sizes whose bytes a backend's rounding up to its alignment would wrap around to 0; and just over 2^40. */
    const int64_t wrap[1] = {((int64_t)1 << 62) - 1}, over[2] = {((int64_t)1 << 20) + 1, (int64_t)1 << 20};
    EXPECT(NNCL_ERR_OUT_OF_MEMORY, nncl_tensor_create(ctx, 1, wrap, &t));
    EXPECT(NNCL_ERR_OUT_OF_MEMORY, nncl_tensor_create(ctx, 2, over, &t));

    TEST_OK(ctx, nncl_tensor_create(ctx, 2, ok, &t));
    float buf[13] = {0};
    EXPECT(NNCL_ERR_SHAPE, nncl_tensor_write(ctx, &t, buf, 13));
    EXPECT(NNCL_ERR_SHAPE, nncl_tensor_read(ctx, &t, buf, 11));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_write(ctx, &t, NULL, 12));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_read(ctx, &t, NULL, 12));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_fill(ctx, NULL, 1.0f));
    nncl_tensor v;
    const int64_t s5[1] = {5};
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_view(ctx, &t, 8, 1, s5, &v)); /* 8 + 5 > 12 */
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_view(ctx, &t, SIZE_MAX - 2, 1, s5, &v));
    /* A descriptor that claims more elements than its buffer holds. */
    nncl_tensor forged = t;
    forged.shape[0] = 30;
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_fill(ctx, &forged, 1.0f));
    forged = t;
    forged.offset = 1;
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_read(ctx, &forged, buf, 12));
    forged = t;
    forged.ndim = -1;
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_fill(ctx, &forged, 1.0f));
    /* A -1 whose known sizes overflow int64 is a shape error, not a division by zero. */
    const int64_t huge3[3] = {-1, (int64_t)1 << 32, (int64_t)1 << 32};
    EXPECT(NNCL_ERR_SHAPE, nncl_tensor_reshape(ctx, &t, 3, huge3, &v));
    /* Overlapping copy. */
    nncl_tensor lo, hi;
    const int64_t s8[1] = {8};
    TEST_OK(ctx, nncl_tensor_view(ctx, &t, 0, 1, s8, &lo));
    TEST_OK(ctx, nncl_tensor_view(ctx, &t, 4, 1, s8, &hi));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_copy(ctx, &hi, &lo));

    /* A tensor of another context. */
    nncl_context_options cpu_opt = nncl_context_options_default();
    cpu_opt.backend = NNCL_BACKEND_CPU;
    nncl_context *other;
    TEST_OK(NULL, nncl_context_create(&cpu_opt, &other));
    nncl_tensor foreign;
    TEST_OK(other, nncl_tensor_create(other, 2, ok, &foreign));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_fill(ctx, &foreign, 1.0f));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_destroy(ctx, &foreign));
    TEST_OK(other, nncl_tensor_destroy(other, &foreign));
    nncl_context_destroy(other);

    TEST_OK(ctx, nncl_tensor_destroy(ctx, &t));
    /* A destroyed tensor is an empty descriptor: rejected, and destroying it again is harmless. */
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_tensor_fill(ctx, &t, 1.0f));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &t));
}

static void test_bad_ops(void **state)
{
    (void)state;
    const int64_t s12[1] = {12}, s5[1] = {5}, s2[1] = {2};
    nncl_tensor a, b, c, x5, out2;
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, s12, &a));
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, s12, &b));
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, s12, &c));
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, s5, &x5));
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, s2, &out2));

    EXPECT(NNCL_ERR_INVALID_ARG, nncl_gemm(ctx, (nncl_transpose)3, NNCL_NO_TRANS, 3, 4, 3, 1, &a, 3, &b, 4, 0, &c, 4));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_NO_TRANS, 0, 4, 3, 1, &a, 3, &b, 4, 0, &c, 4));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_NO_TRANS, 3, 4, -3, 1, &a, 3, &b, 4, 0, &c, 4));
    /* lda smaller than the columns of A. */
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_NO_TRANS, 3, 4, 3, 1, &a, 2, &b, 4, 0, &c, 4));
    /* C of 4 x 4 does not fit in 12 elements. */
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_NO_TRANS, 4, 4, 3, 1, &a, 3, &b, 4, 0, &c, 4));
    /* Transposed A of 3 x 5 (k x m) needs 15 elements. */
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_gemm(ctx, NNCL_TRANS, NNCL_NO_TRANS, 5, 2, 3, 1, &a, 5, &b, 2, 0, &c, 2));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_NO_TRANS, 3, 4, 3, 1, NULL, 3, &b, 4, 0, &c, 4));
    /* C overlapping A. */
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_NO_TRANS, 3, 4, 3, 1, &a, 3, &b, 4, 0, &a, 4));
    EXPECT(NNCL_ERR_SHAPE, nncl_axpy(ctx, 1.0f, &x5, &a));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_scale(ctx, 2.0f, NULL));
    EXPECT(NNCL_ERR_SHAPE, nncl_sum(ctx, &a, &out2));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_sum(ctx, &a, NULL));

    nncl_tensor *all[] = {&a, &b, &c, &x5, &out2};
    for (int i = 0; i < 5; i++) TEST_OK(ctx, nncl_tensor_destroy(ctx, all[i]));
}

static void test_misc_queries(void **state)
{
    (void)state;
    char desc[16];
    TEST_OK(ctx, nncl_context_describe(ctx, desc, sizeof desc)); /* truncates, never overflows */
    assert_true(strlen(desc) < sizeof desc);
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_context_describe(ctx, desc, 0));
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_context_stats(ctx, NULL));
    size_t count;
    EXPECT(NNCL_ERR_INVALID_ARG, nncl_context_profile(ctx, NULL, 0, &count)); /* profiling is off */
    nncl_backend_kind kind;
    TEST_OK(ctx, nncl_context_backend(ctx, &kind));
    assert_int_equal(kind, strcmp(backend, "cpu") == 0 ? NNCL_BACKEND_CPU : NNCL_BACKEND_OPENCL);
}

int main(int argc, char **argv)
{
    backend = test_backend_arg(argc, argv);
    ctx = test_context(backend);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_context),
        cmocka_unit_test(test_bad_context_options),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_bad_ops),
        cmocka_unit_test(test_misc_queries),
    };
    int failed = cmocka_run_group_tests_name(backend, tests, NULL, NULL);
    nncl_context_destroy(ctx);
    return failed;
}
