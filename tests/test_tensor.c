/*
 * test_tensor.c - tensor descriptors on one backend (argument: cpu | opencl):
 * create, write, read, fill, copy, views, and the descriptor-only rewrites.
 *
 * Flatten and unflatten, in both directions, must leave the kernel-launch and
 * GEMM counters (and every other transfer counter) unchanged: they rewrite the
 * descriptor on the host and never reach the device.
 */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

static nncl_context *ctx;

static void test_write_read_roundtrip(void **state)
{
    (void)state;
    const int64_t shapes[][4] = {{1, 1, 1, 1}, {2, 3, 5, 7}, {64, 1, 28, 28}, {1, 93, 1, 65}};
    for (size_t s = 0; s < 4; s++) {
        nncl_tensor t;
        TEST_OK(ctx, nncl_tensor_create(ctx, 4, shapes[s], &t));
        size_t n = (size_t)nncl_tensor_numel(&t);
        float *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
        test_rng r = test_rng_seed(s);
        test_rng_fill(&r, in, n, -3.0f, 3.0f);
        nncl_stats before, after;
        TEST_OK(ctx, nncl_context_stats(ctx, &before));
        TEST_OK(ctx, nncl_tensor_write(ctx, &t, in, n));
        TEST_OK(ctx, nncl_tensor_read(ctx, &t, out, n));
        TEST_OK(ctx, nncl_context_stats(ctx, &after));
        test_assert_bitwise(out, in, n, "write then read");
        assert_int_equal(after.h2d_bytes - before.h2d_bytes, n * sizeof(float));
        assert_int_equal(after.d2h_bytes - before.d2h_bytes, n * sizeof(float));
        assert_int_equal(after.host_waits, before.host_waits + 2); /* a blocking write, a read: on both backends */
        free(in);
        free(out);
        TEST_OK(ctx, nncl_tensor_destroy(ctx, &t));
        assert_null(t.buf);
    }
}

static void test_fill_and_copy_at_offsets(void **state)
{
    (void)state;
    const int64_t sizes[] = {1, 7, 31, 32, 33, 63, 64, 65, 93, 4099};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        float *src = malloc((size_t)n * sizeof *src), *out = malloc((size_t)n * sizeof *out);
        test_rng r = test_rng_seed(100 + s);
        test_rng_fill(&r, src, (size_t)n, -1.0f, 1.0f);
        test_guarded a, b;
        test_guarded_create(ctx, &a, 1, &n, src);
        test_guarded_create(ctx, &b, 1, &n, NULL);
        TEST_OK(ctx, nncl_tensor_copy(ctx, &b.view, &a.view));
        test_guarded_read(ctx, &b, out, "copy");
        test_assert_bitwise(out, src, (size_t)n, "copy");
        TEST_OK(ctx, nncl_tensor_fill(ctx, &a.view, 0.625f));
        test_guarded_read(ctx, &a, out, "fill");
        for (int64_t i = 0; i < n; i++) assert_true(out[i] == 0.625f);
        test_guarded_destroy(ctx, &a);
        test_guarded_destroy(ctx, &b);
        free(src);
        free(out);
    }
}

/* Reads the counters that a descriptor rewrite must not move. */
static void assert_no_device_work(const nncl_stats *a, const nncl_stats *b)
{
    assert_int_equal(a->kernel_launches, b->kernel_launches);
    assert_int_equal(a->gemm_calls, b->gemm_calls);
    assert_int_equal(a->h2d_bytes, b->h2d_bytes);
    assert_int_equal(a->d2h_bytes, b->d2h_bytes);
    assert_int_equal(a->host_waits, b->host_waits);
    assert_int_equal(a->device_allocs, b->device_allocs);
}

static void test_flatten_unflatten_touch_nothing(void **state)
{
    (void)state;
    const int64_t shape[4] = {5, 3, 7, 9}; /* N, C, H, W */
    const size_t n = 5 * 3 * 7 * 9;
    float *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    test_rng r = test_rng_seed(42);
    test_rng_fill(&r, in, n, -1.0f, 1.0f);
    test_guarded g;
    test_guarded_create(ctx, &g, 4, shape, in);
    TEST_OK(ctx, nncl_context_finish(ctx));

    nncl_stats s0, s1;
    TEST_OK(ctx, nncl_context_stats(ctx, &s0));
    /* Forward: (N, C, H, W) -> (N, C*H*W). */
    nncl_tensor flat, back, flat_all, unflat;
    TEST_OK(ctx, nncl_tensor_flatten(ctx, &g.view, 1, &flat));
    /* Backward of flatten: the gradient's descriptor rewritten back to (N, C, H, W). */
    const int64_t chw[3] = {3, 7, 9};
    TEST_OK(ctx, nncl_tensor_unflatten(ctx, &flat, 1, 3, chw, &back));
    /* And the other direction: unflatten forward, flatten as its backward. */
    TEST_OK(ctx, nncl_tensor_flatten(ctx, &g.view, 0, &flat_all));
    const int64_t split[2] = {-1, 63};
    TEST_OK(ctx, nncl_tensor_unflatten(ctx, &flat_all, 0, 2, split, &unflat));
    nncl_tensor unflat_back;
    TEST_OK(ctx, nncl_tensor_flatten(ctx, &unflat, 0, &unflat_back));
    TEST_OK(ctx, nncl_context_stats(ctx, &s1));
    assert_no_device_work(&s0, &s1);

    assert_int_equal(flat.ndim, 2);
    assert_int_equal(flat.shape[0], 5);
    assert_int_equal(flat.shape[1], 3 * 7 * 9);
    assert_int_equal(back.ndim, 4);
    assert_memory_equal(back.shape, shape, sizeof shape);
    assert_int_equal(unflat.ndim, 2);
    assert_int_equal(unflat.shape[0], 15);
    assert_int_equal(unflat.shape[1], 63);
    assert_int_equal(unflat_back.ndim, 1);
    /* Every view is the same memory: buffer and offset are untouched. */
    const nncl_tensor *views[] = {&flat, &back, &flat_all, &unflat, &unflat_back};
    for (int i = 0; i < 5; i++) {
        assert_ptr_equal(views[i]->buf, g.view.buf);
        assert_int_equal(views[i]->offset, g.view.offset);
        TEST_OK(ctx, nncl_tensor_read(ctx, views[i], out, n));
        test_assert_bitwise(out, in, n, "data read through a flattened or unflattened view");
    }
    test_guarded_destroy(ctx, &g);
    free(in);
    free(out);
}

static void test_reshape_and_views(void **state)
{
    (void)state;
    const int64_t shape[3] = {4, 6, 5};
    nncl_tensor t, v;
    TEST_OK(ctx, nncl_tensor_create(ctx, 3, shape, &t));
    const int64_t s2[2] = {-1, 10};
    TEST_OK(ctx, nncl_tensor_reshape(ctx, &t, 2, s2, &v));
    assert_int_equal(v.shape[0], 12);
    assert_int_equal(v.shape[1], 10);
    /* In-place rewrite (out aliases src) is allowed. */
    const int64_t s3[1] = {120};
    TEST_OK(ctx, nncl_tensor_reshape(ctx, &v, 1, s3, &v));
    assert_int_equal(v.ndim, 1);
    /* A view in the middle of the buffer. */
    const int64_t s4[2] = {3, 5};
    TEST_OK(ctx, nncl_tensor_view(ctx, &t, 100, 2, s4, &v));
    assert_int_equal(v.offset, 100);
    /* Destroying a view, at an offset or of part of the buffer, is refused: it would free the buffer under
       the tensor it views (a network's parameters, say). The tensor stays usable. */
    assert_int_equal(nncl_tensor_destroy(ctx, &v), NNCL_ERR_INVALID_ARG);
    assert_non_null(strstr(nncl_context_last_error(ctx), "a view"));
    nncl_tensor head;
    TEST_OK(ctx, nncl_tensor_view(ctx, &t, 0, 2, s4, &head));
    assert_int_equal(nncl_tensor_destroy(ctx, &head), NNCL_ERR_INVALID_ARG);
    TEST_OK(ctx, nncl_tensor_fill(ctx, &v, 2.0f));
    float back[15];
    TEST_OK(ctx, nncl_tensor_read(ctx, &v, back, 15));
    for (int i = 0; i < 15; i++) assert_true(back[i] == 2.0f);
    /* Scalars: rank 0, one element; flatten makes a vector of one. */
    nncl_tensor sc, sc_flat;
    TEST_OK(ctx, nncl_tensor_view(ctx, &t, 7, 0, NULL, &sc));
    assert_int_equal(nncl_tensor_numel(&sc), 1);
    /* A descriptor no nncl function made: a product past INT64_MAX or a negative size counts as empty. */
    const nncl_tensor overflowing = {.ndim = 2, .shape = {INT64_MAX, 4}}, negative = {.ndim = 2, .shape = {3, -2}};
    assert_int_equal(nncl_tensor_numel(&overflowing), 0);
    assert_int_equal(nncl_tensor_numel(&negative), 0);
    TEST_OK(ctx, nncl_tensor_flatten(ctx, &sc, 0, &sc_flat));
    assert_int_equal(sc_flat.ndim, 1);
    assert_int_equal(sc_flat.shape[0], 1);
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &t));
}

static void test_shape_errors_name_both_shapes(void **state)
{
    (void)state;
    const int64_t shape[3] = {4, 6, 5};
    nncl_tensor t, v;
    TEST_OK(ctx, nncl_tensor_create(ctx, 3, shape, &t));
    const int64_t bad[2] = {7, 17};
    assert_int_equal(nncl_tensor_reshape(ctx, &t, 2, bad, &v), NNCL_ERR_SHAPE);
    const char *msg = nncl_context_last_error(ctx);
    assert_non_null(strstr(msg, "(4, 6, 5)"));
    assert_non_null(strstr(msg, "(7, 17)"));
    assert_int_equal(nncl_context_last_status(ctx), NNCL_ERR_SHAPE);

    const int64_t bad_split[2] = {4, 4};
    assert_int_equal(nncl_tensor_unflatten(ctx, &t, 1, 2, bad_split, &v), NNCL_ERR_SHAPE);
    msg = nncl_context_last_error(ctx);
    assert_non_null(strstr(msg, "(4, 4)"));
    assert_non_null(strstr(msg, "(4, 6, 5)"));

    const int64_t no_fit[2] = {-1, 7};
    assert_int_equal(nncl_tensor_reshape(ctx, &t, 2, no_fit, &v), NNCL_ERR_SHAPE);
    assert_int_equal(nncl_tensor_flatten(ctx, &t, 3, &v), NNCL_ERR_INVALID_ARG);
    assert_int_equal(nncl_tensor_flatten(ctx, &t, -4, &v), NNCL_ERR_INVALID_ARG);
    TEST_OK(ctx, nncl_tensor_flatten(ctx, &t, -2, &v)); /* negative dims count from the end */
    assert_int_equal(v.ndim, 2);
    assert_int_equal(v.shape[1], 30);

    nncl_tensor copy_dst;
    const int64_t other[1] = {119};
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, other, &copy_dst));
    assert_int_equal(nncl_tensor_copy(ctx, &copy_dst, &t), NNCL_ERR_SHAPE);
    assert_non_null(strstr(nncl_context_last_error(ctx), "(119)"));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &copy_dst));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &t));
}

static void test_stats_count_allocations(void **state)
{
    (void)state;
    nncl_stats a, b, c;
    TEST_OK(ctx, nncl_context_stats(ctx, &a));
    const int64_t n = 1000;
    nncl_tensor t;
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &n, &t));
    TEST_OK(ctx, nncl_context_stats(ctx, &b));
    assert_int_equal(b.device_allocs, a.device_allocs + 1);
    assert_int_equal(b.device_bytes_live, a.device_bytes_live + 4000);
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &t));
    TEST_OK(ctx, nncl_context_reset_stats(ctx));
    TEST_OK(ctx, nncl_context_stats(ctx, &c));
    assert_int_equal(c.device_bytes_live, a.device_bytes_live);
    assert_int_equal(c.device_allocs, 0);
    assert_int_equal(c.kernel_launches, 0);
    assert_int_equal(c.host_waits, 0);
}

int main(int argc, char **argv)
{
    const char *backend = test_backend_arg(argc, argv);
    ctx = test_context(backend);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_read_roundtrip),
        cmocka_unit_test(test_fill_and_copy_at_offsets),
        cmocka_unit_test(test_flatten_unflatten_touch_nothing),
        cmocka_unit_test(test_reshape_and_views),
        cmocka_unit_test(test_shape_errors_name_both_shapes),
        cmocka_unit_test(test_stats_count_allocations),
    };
    int failed = cmocka_run_group_tests_name(backend, tests, NULL, NULL);
    nncl_context_destroy(ctx);
    return failed;
}
