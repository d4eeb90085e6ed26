/*
 * test_layers.c - layer behaviour on one backend (argument: cpu | opencl):
 *   - parameter gradients accumulate: a second backward doubles them
 *     (rtol 1e-6), while the input gradient is overwritten;
 *   - flatten and unflatten layers, forward and backward, do no device work;
 *   - flatten, unflatten and add pass central finite differences through the
 *     public API, h = 2^-10, |analytic - numeric| <= 1e-5 + 1e-3 |numeric|
 *     (the other layers are checked on the double reference in
 *     test_gradcheck);
 *   - parameter names, shapes and default initialisation follow PyTorch;
 *   - dropout and batch norm in training and evaluation modes; dropout's
 *     backward applies the mask of its forward, exactly; batch norm's
 *     backward is refused without a forward that succeeded (as max
 *     pooling's is, below);
 *   - the cases random data never reaches: softmax of logits near 1000 (the
 *     max shift), batch norm of a channel with zero running variance (eps),
 *     max pooling over equal values (the first maximum takes the gradient),
 *     cross-entropy over a masked class (a logit of -inf);
 *   - max pooling's backward is refused for an input its last forward did
 *     not see; a -0 gradient through any pooling gives +0, as the reference;
 *   - bad configurations and bad inputs return NNCL_ERR_INVALID_ARG or
 *     NNCL_ERR_SHAPE with a message naming the layer and the values, and the
 *     context keeps working.
 */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static nncl_context *ctx;

/* Allocates a tensor of the given shape filled with seeded values in [lo, hi). */
static void random_tensor(nncl_tensor *t, int ndim, const int64_t *shape, uint64_t seed, float lo, float hi)
{
    TEST_OK(ctx, nncl_tensor_create(ctx, ndim, shape, t));
    size_t n = (size_t)nncl_tensor_numel(t);
    float *v = malloc(n * sizeof *v);
    test_rng r = test_rng_seed(seed);
    test_rng_fill(&r, v, n, lo, hi);
    TEST_OK(ctx, nncl_tensor_write(ctx, t, v, n));
    free(v);
}

static float *read_all(const nncl_tensor *t)
{
    size_t n = (size_t)nncl_tensor_numel(t);
    float *v = malloc(n * sizeof *v);
    TEST_OK(ctx, nncl_tensor_read(ctx, t, v, n));
    return v;
}

/* ---- accumulation ------------------------------------------------------------------------ */

/* forward, backward, backward: parameter gradients double, dx stays the same. */
static void check_accumulates(nncl_layer *l, int ndim, const int64_t *in_shape, const char *what)
{
    int ond;
    int64_t os[NNCL_MAX_DIMS];
    TEST_OK(ctx, nncl_layer_output_shape(l, ndim, in_shape, &ond, os));
    nncl_tensor x, y, dy, dx;
    random_tensor(&x, ndim, in_shape, 1, -1.0f, 1.0f);
    random_tensor(&dy, ond, os, 2, -1.0f, 1.0f);
    TEST_OK(ctx, nncl_tensor_create(ctx, ond, os, &y));
    TEST_OK(ctx, nncl_tensor_create(ctx, ndim, in_shape, &dx));
    TEST_OK(ctx, nncl_layer_zero_grad(l));
    TEST_OK(ctx, nncl_layer_forward(l, NNCL_TRAIN, &x, &y));
    TEST_OK(ctx, nncl_layer_backward(l, &x, &y, &dy, &dx));
    size_t count;
    TEST_OK(ctx, nncl_layer_param_count(l, &count));
    float *once[4] = {0};
    int n_grads = 0;
    for (size_t i = 0; i < count; i++) {
        nncl_tensor g;
        TEST_OK(ctx, nncl_layer_param(l, i, NULL, NULL, &g));
        if (g.buf) once[n_grads++] = read_all(&g);
    }
    assert_true(n_grads > 0);
    float *dx_once = read_all(&dx);
    TEST_OK(ctx, nncl_layer_backward(l, &x, &y, &dy, &dx));
    float *dx_twice = read_all(&dx);
    char msg[256];
    snprintf(msg, sizeof msg, "%s: input gradient after a second backward", what);
    test_assert_bitwise(dx_twice, dx_once, (size_t)nncl_tensor_numel(&dx), msg);
    for (int i = 0; i < n_grads; i++) {
        nncl_tensor g;
        TEST_OK(ctx, nncl_layer_param(l, (size_t)i, NULL, NULL, &g));
        float *twice = read_all(&g);
        size_t n = (size_t)nncl_tensor_numel(&g);
        int nonzero = 0;
        for (size_t j = 0; j < n; j++) {
            nonzero |= once[i][j] != 0.0f;
            once[i][j] *= 2.0f;
        }
        assert_true(nonzero); /* a zero gradient would double trivially */
        snprintf(msg, sizeof msg, "%s: parameter gradient %d after two backwards", what, i);
        test_assert_close(twice, once[i], n, 0.0, 1e-6, msg);
        free(twice);
        free(once[i]);
    }
    /* zero_grad clears them. */
    TEST_OK(ctx, nncl_layer_zero_grad(l));
    for (int i = 0; i < n_grads; i++) {
        nncl_tensor g;
        TEST_OK(ctx, nncl_layer_param(l, (size_t)i, NULL, NULL, &g));
        float *z = read_all(&g);
        for (int64_t j = 0; j < nncl_tensor_numel(&g); j++) assert_true(z[j] == 0.0f);
        free(z);
    }
    free(dx_once);
    free(dx_twice);
    nncl_tensor *all[] = {&x, &y, &dy, &dx};
    for (int i = 0; i < 4; i++) TEST_OK(ctx, nncl_tensor_destroy(ctx, all[i]));
}

static void test_gradients_accumulate(void **state)
{
    (void)state;
    nncl_layer *l;
    const int64_t xl[2] = {5, 7};
    TEST_OK(ctx, nncl_linear_create(ctx, 7, 3, 1, &l));
    check_accumulates(l, 2, xl, "linear");
    nncl_layer_destroy(l);

    nncl_conv2d_options o = nncl_conv2d_options_default(4, 6, 3);
    o.padding_h = o.padding_w = 1;
    o.groups = 2;
    const int64_t xc[4] = {2, 4, 6, 5};
    TEST_OK(ctx, nncl_conv2d_create(ctx, &o, &l));
    check_accumulates(l, 4, xc, "conv2d");
    nncl_layer_destroy(l);

    const int64_t xb[4] = {3, 4, 2, 3};
    TEST_OK(ctx, nncl_batchnorm_create(ctx, 4, 2, &l));
    check_accumulates(l, 4, xb, "batchnorm2d");
    nncl_layer_destroy(l);

    const int64_t xn[3] = {2, 3, 5}, ns[1] = {5};
    TEST_OK(ctx, nncl_layernorm_create(ctx, 1, ns, 1, &l));
    check_accumulates(l, 3, xn, "layernorm");
    nncl_layer_destroy(l);
}

/* ---- alias layers ------------------------------------------------------------------------- */

static void test_alias_layers_do_no_device_work(void **state)
{
    (void)state;
    const int64_t shape[4] = {4, 3, 5, 2};
    nncl_tensor x, dy;
    random_tensor(&x, 4, shape, 3, -1.0f, 1.0f);
    nncl_layer *flat, *unflat;
    TEST_OK(ctx, nncl_flatten_create(ctx, 1, &flat));
    const int64_t sizes[3] = {3, -1, 2};
    TEST_OK(ctx, nncl_unflatten_create(ctx, 1, 3, sizes, &unflat));
    const int64_t flat_shape[2] = {4, 30};
    random_tensor(&dy, 2, flat_shape, 4, -1.0f, 1.0f);
    int alias = 0;
    TEST_OK(ctx, nncl_layer_is_alias(flat, &alias));
    assert_true(alias);
    TEST_OK(ctx, nncl_context_finish(ctx));

    nncl_stats before, after;
    TEST_OK(ctx, nncl_context_stats(ctx, &before));
    nncl_tensor y, dx, y2, dx2;
    TEST_OK(ctx, nncl_layer_forward(flat, NNCL_TRAIN, &x, &y));      /* (4, 3, 5, 2) -> (4, 30) */
    TEST_OK(ctx, nncl_layer_backward(flat, &x, &y, &dy, &dx));       /* (4, 30) -> (4, 3, 5, 2) */
    TEST_OK(ctx, nncl_layer_forward(unflat, NNCL_EVAL, &y, &y2));    /* (4, 30) -> (4, 3, 5, 2) */
    TEST_OK(ctx, nncl_layer_backward(unflat, &y, &y2, &dx, &dx2));   /* (4, 3, 5, 2) -> (4, 30) */
    TEST_OK(ctx, nncl_context_stats(ctx, &after));
    assert_int_equal(after.kernel_launches, before.kernel_launches);
    assert_int_equal(after.gemm_calls, before.gemm_calls);
    assert_int_equal(after.h2d_bytes, before.h2d_bytes);
    assert_int_equal(after.d2h_bytes, before.d2h_bytes);
    assert_int_equal(after.host_waits, before.host_waits);
    assert_int_equal(after.device_allocs, before.device_allocs);

    assert_int_equal(y.ndim, 2);
    assert_int_equal(y.shape[1], 30);
    assert_memory_equal(dx.shape, shape, sizeof shape);
    assert_memory_equal(y2.shape, shape, sizeof shape);
    assert_int_equal(dx2.shape[1], 30);
    assert_ptr_equal(y.buf, x.buf);
    assert_ptr_equal(dx.buf, dy.buf);
    float *vx = read_all(&x), *vy = read_all(&y2), *vdy = read_all(&dy), *vdx = read_all(&dx2);
    test_assert_bitwise(vy, vx, 120, "data through flatten and unflatten");
    test_assert_bitwise(vdx, vdy, 120, "gradient through both backwards");
    free(vx), free(vy), free(vdy), free(vdx);
    nncl_layer_destroy(flat);
    nncl_layer_destroy(unflat);
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &x));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &dy));
}

/* ---- finite differences for the layers without a reference function ---------------------- */

/*
 * L = sum r * y with y = flatten(x), unflatten(x) or a + b, evaluated through
 * the public API on this backend. These maps are exact (or one rounding), so
 * central differences with h = 2^-10 (exact in float for these inputs) must
 * match the backward pass within PyTorch gradcheck's |a - n| <= 1e-5 + 1e-3 |n|.
 */
static double objective(nncl_layer *l, int is_add, const nncl_tensor *x, const nncl_tensor *x2, const float *r,
                        int64_t n)
{
    nncl_tensor y;
    float *v = malloc(sizeof(float) * (size_t)n);
    if (is_add) {
        TEST_OK(ctx, nncl_tensor_create(ctx, x->ndim, x->shape, &y));
        TEST_OK(ctx, nncl_add_forward(l, x, x2, &y));
        TEST_OK(ctx, nncl_tensor_read(ctx, &y, v, (size_t)n));
        TEST_OK(ctx, nncl_tensor_destroy(ctx, &y));
    } else {
        TEST_OK(ctx, nncl_layer_forward(l, NNCL_TRAIN, x, &y));
        TEST_OK(ctx, nncl_tensor_read(ctx, &y, v, (size_t)n));
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)r[i] * v[i];
    free(v);
    return sum;
}

static void gradcheck_layer(nncl_layer *l, int is_add, int ndim, const int64_t *shape, int out_ndim,
                            const int64_t *out_shape, const char *what)
{
    const double h = 1.0 / 1024.0;
    nncl_tensor x, x2, dy, dx, dx2, y;
    random_tensor(&x, ndim, shape, 31, 0.5f, 1.0f);
    random_tensor(&x2, ndim, shape, 32, 0.5f, 1.0f);
    random_tensor(&dy, out_ndim, out_shape, 33, -1.0f, 1.0f);
    int64_t n = nncl_tensor_numel(&x);
    float *r = read_all(&dy), *vx = read_all(&x);
    /* Analytic: the backward pass with dy = r. */
    float *analytic, *analytic2 = NULL;
    if (is_add) {
        TEST_OK(ctx, nncl_tensor_create(ctx, ndim, shape, &dx));
        TEST_OK(ctx, nncl_tensor_create(ctx, ndim, shape, &dx2));
        TEST_OK(ctx, nncl_add_backward(l, &dy, &dx, &dx2));
        analytic = read_all(&dx);
        analytic2 = read_all(&dx2);
        TEST_OK(ctx, nncl_tensor_destroy(ctx, &dx));
        TEST_OK(ctx, nncl_tensor_destroy(ctx, &dx2));
    } else {
        TEST_OK(ctx, nncl_layer_forward(l, NNCL_TRAIN, &x, &y));
        TEST_OK(ctx, nncl_layer_backward(l, &x, &y, &dy, &dx));
        analytic = read_all(&dx);
    }
    int bad = 0;
    for (int which = 0; which < (is_add ? 2 : 1); which++) {
        nncl_tensor *t = which ? &x2 : &x;
        float *base = read_all(t);
        for (int64_t i = 0; i < n; i++) {
            float saved = base[i];
            base[i] = (float)(saved + h);
            TEST_OK(ctx, nncl_tensor_write(ctx, t, base, (size_t)n));
            double up = objective(l, is_add, &x, &x2, r, n);
            base[i] = (float)(saved - h);
            TEST_OK(ctx, nncl_tensor_write(ctx, t, base, (size_t)n));
            double down = objective(l, is_add, &x, &x2, r, n);
            base[i] = saved;
            double numeric = (up - down) / (2.0 * h), a = (which ? analytic2 : analytic)[i];
            if (fabs(a - numeric) > 1e-5 + 1e-3 * fabs(numeric)) {
                if (!bad) print_message("%s: input %d [%lld] analytic %.9g numeric %.9g\n", what, which, (long long)i, a, numeric);
                bad++;
            }
        }
        TEST_OK(ctx, nncl_tensor_write(ctx, t, base, (size_t)n));
        free(base);
    }
    if (bad) fail_msg("%s: %d entries fail the finite-difference check", what, bad);
    free(r), free(vx), free(analytic), free(analytic2);
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &x));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &x2));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &dy));
}

static void test_gradcheck_alias_and_add(void **state)
{
    (void)state;
    const int64_t shape[3] = {2, 3, 4}, flat[2] = {2, 12}, sizes[2] = {2, -1}, split[4] = {2, 3, 2, 2};
    nncl_layer *l;
    TEST_OK(ctx, nncl_flatten_create(ctx, 1, &l));
    gradcheck_layer(l, 0, 3, shape, 2, flat, "flatten");
    nncl_layer_destroy(l);
    TEST_OK(ctx, nncl_unflatten_create(ctx, 2, 2, sizes, &l));
    gradcheck_layer(l, 0, 3, shape, 4, split, "unflatten");
    nncl_layer_destroy(l);
    TEST_OK(ctx, nncl_add_create(ctx, &l));
    gradcheck_layer(l, 1, 3, shape, 3, shape, "add");
    nncl_layer_destroy(l);
}

/* ---- parameters as in PyTorch ----------------------------------------------------------- */

static void expect_param(nncl_layer *l, size_t i, const char *name, int ndim, const int64_t *shape, int learnable)
{
    const char *got;
    nncl_tensor v, g;
    TEST_OK(ctx, nncl_layer_param(l, i, &got, &v, &g));
    assert_string_equal(got, name);
    assert_int_equal(v.ndim, ndim);
    assert_memory_equal(v.shape, shape, sizeof(int64_t) * (size_t)ndim);
    assert_int_equal(g.buf != NULL, learnable);
}

static void test_parameters_follow_pytorch(void **state)
{
    (void)state;
    nncl_layer *l;
    size_t n;
    nncl_conv2d_options o = nncl_conv2d_options_default(6, 4, 3);
    o.kernel_w = 2;
    o.groups = 2;
    TEST_OK(ctx, nncl_conv2d_create(ctx, &o, &l));
    TEST_OK(ctx, nncl_layer_param_count(l, &n));
    assert_int_equal(n, 2);
    const int64_t w[4] = {4, 3, 3, 2}, b[1] = {4};
    expect_param(l, 0, "weight", 4, w, 1);
    expect_param(l, 1, "bias", 1, b, 1);
    /* Kaiming-uniform (a = sqrt 5): |w| <= 1 / sqrt(fan_in), fan_in = 3 * 3 * 2. */
    nncl_tensor wt;
    TEST_OK(ctx, nncl_layer_param(l, 0, NULL, &wt, NULL));
    float *v = read_all(&wt);
    double bound = 1.0 / sqrt(18.0), max_abs = 0.0;
    for (int i = 0; i < 72; i++) max_abs = fmax(max_abs, fabs(v[i]));
    assert_true(max_abs <= bound && max_abs > 0.5 * bound);
    free(v);
    char desc[256];
    TEST_OK(ctx, nncl_layer_describe(l, desc, sizeof desc));
    assert_non_null(strstr(desc, "conv2d(in=6, out=4, kernel=3x2"));
    nncl_layer_destroy(l);

    TEST_OK(ctx, nncl_linear_create(ctx, 5, 3, 0, &l));
    TEST_OK(ctx, nncl_layer_param_count(l, &n));
    assert_int_equal(n, 1);
    const int64_t lw[2] = {3, 5};
    expect_param(l, 0, "weight", 2, lw, 1);
    nncl_layer_destroy(l);

    TEST_OK(ctx, nncl_batchnorm_create(ctx, 7, 1, &l));
    const int64_t c[1] = {7};
    expect_param(l, 0, "weight", 1, c, 1);
    expect_param(l, 1, "bias", 1, c, 1);
    expect_param(l, 2, "running_mean", 1, c, 0);
    expect_param(l, 3, "running_var", 1, c, 0);
    nncl_layer_destroy(l);
}

/* ---- modes ------------------------------------------------------------------------------- */

static void test_dropout_modes(void **state)
{
    (void)state;
    const int64_t n = 100000;
    const float p = 0.3f;
    nncl_layer *l;
    TEST_OK(ctx, nncl_dropout_create(ctx, p, 42, 0, &l));
    nncl_tensor x, y;
    random_tensor(&x, 1, &n, 5, 0.5f, 1.5f); /* no zeros in x */
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &n, &y));
    float *vx = read_all(&x);

    TEST_OK(ctx, nncl_layer_forward(l, NNCL_EVAL, &x, &y));
    float *vy = read_all(&y);
    test_assert_bitwise(vy, vx, (size_t)n, "dropout in evaluation is the identity");
    free(vy);

    TEST_OK(ctx, nncl_layer_forward(l, NNCL_TRAIN, &x, &y));
    float *first = read_all(&y);
    int64_t dropped = 0;
    const float scale = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++) {
        if (first[i] == 0.0f) dropped++;
        else assert_true(first[i] == vx[i] * scale);
    }
    /* Binomial(1e5, 0.3): standard deviation 145; 1% = 1000 is about 7 sigma. */
    assert_true(llabs(dropped - (int64_t)(p * n)) < 1000);
    /* Backward, before the next forward: dx = dy where the forward kept x, times the same scale; 0 elsewhere. */
    nncl_tensor dy, dx;
    random_tensor(&dy, 1, &n, 9, -1.0f, 1.0f);
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &n, &dx));
    TEST_OK(ctx, nncl_layer_backward(l, &x, &y, &dy, &dx));
    float *vdy = read_all(&dy), *vdx = read_all(&dx);
    for (int64_t i = 0; i < n; i++) {
        const float want = first[i] == 0.0f ? 0.0f : vdy[i] * scale;
        if (vdx[i] != want) fail_msg("dropout backward at %lld: %g, expected %g", (long long)i, (double)vdx[i], (double)want);
    }
    free(vdy), free(vdx);
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &dy));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &dx));

    uint64_t step;
    TEST_OK(ctx, nncl_layer_get_step(l, &step));
    assert_int_equal(step, 1);
    TEST_OK(ctx, nncl_layer_forward(l, NNCL_TRAIN, &x, &y));
    float *second = read_all(&y);
    assert_true(memcmp(first, second, sizeof(float) * (size_t)n) != 0); /* a new step, a new mask */
    TEST_OK(ctx, nncl_layer_set_step(l, 0));
    TEST_OK(ctx, nncl_layer_forward(l, NNCL_TRAIN, &x, &y));
    float *again = read_all(&y);
    test_assert_bitwise(again, first, (size_t)n, "dropout at the same step draws the same mask");
    free(first), free(second), free(again), free(vx);
    nncl_layer_destroy(l);
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &x));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &y));
}

static void test_batchnorm_modes(void **state)
{
    (void)state;
    nncl_layer *l;
    TEST_OK(ctx, nncl_batchnorm_create(ctx, 3, 2, &l));
    const int64_t shape[4] = {4, 3, 2, 2};
    nncl_tensor x, y, rm;
    random_tensor(&x, 4, shape, 6, -1.0f, 3.0f);
    TEST_OK(ctx, nncl_tensor_create(ctx, 4, shape, &y));
    TEST_OK(ctx, nncl_layer_param(l, 2, NULL, &rm, NULL));
    int64_t tracked;
    TEST_OK(ctx, nncl_layer_forward(l, NNCL_TRAIN, &x, &y));
    TEST_OK(ctx, nncl_layer_forward(l, NNCL_TRAIN, &x, &y));
    TEST_OK(ctx, nncl_layer_batches_tracked(l, &tracked));
    assert_int_equal(tracked, 2);
    float *after_train = read_all(&rm);
    assert_true(after_train[0] != 0.0f); /* momentum moved the running mean */
    TEST_OK(ctx, nncl_layer_forward(l, NNCL_EVAL, &x, &y));
    TEST_OK(ctx, nncl_layer_batches_tracked(l, &tracked));
    assert_int_equal(tracked, 2);
    float *after_eval = read_all(&rm);
    test_assert_bitwise(after_eval, after_train, 3, "evaluation leaves the running mean alone");
    free(after_train), free(after_eval);
    /* Training needs more than one value per channel. */
    const int64_t one[2] = {1, 3};
    nncl_tensor x1, y1;
    nncl_layer *bn1;
    TEST_OK(ctx, nncl_batchnorm_create(ctx, 3, 1, &bn1));
    random_tensor(&x1, 2, one, 7, -1.0f, 1.0f);
    TEST_OK(ctx, nncl_tensor_create(ctx, 2, one, &y1));
    assert_int_equal(nncl_layer_forward(bn1, NNCL_TRAIN, &x1, &y1), NNCL_ERR_SHAPE);
    assert_non_null(strstr(nncl_context_last_error(ctx), "batchnorm1d(num_features=3)"));
    TEST_OK(ctx, nncl_layer_forward(bn1, NNCL_EVAL, &x1, &y1)); /* evaluation is fine */
    /* A backward needs a forward that succeeded: after the refused training forward, the statistics are
       neither the batch's (never computed) nor the running ones the caller did not ask for. The backward
       used to go ahead with statistics no forward had written. */
    nncl_tensor dy1, dx1;
    random_tensor(&dy1, 2, one, 8, -1.0f, 1.0f);
    TEST_OK(ctx, nncl_tensor_create(ctx, 2, one, &dx1));
    TEST_OK(ctx, nncl_layer_backward(bn1, &x1, &y1, &dy1, &dx1)); /* after the evaluation forward */
    assert_int_equal(nncl_layer_forward(bn1, NNCL_TRAIN, &x1, &y1), NNCL_ERR_SHAPE);
    assert_int_equal(nncl_layer_backward(bn1, &x1, &y1, &dy1, &dx1), NNCL_ERR_INVALID_ARG);
    assert_non_null(strstr(nncl_context_last_error(ctx), "backward without a successful forward"));
    TEST_OK(ctx, nncl_layer_forward(bn1, NNCL_EVAL, &x1, &y1));
    TEST_OK(ctx, nncl_layer_backward(bn1, &x1, &y1, &dy1, &dx1));
    /* Nor after a forward refused by the checks every layer makes (a bad mode), before batch norm's own. */
    assert_int_equal(nncl_layer_forward(bn1, (nncl_mode)7, &x1, &y1), NNCL_ERR_INVALID_ARG);
    assert_int_equal(nncl_layer_backward(bn1, &x1, &y1, &dy1, &dx1), NNCL_ERR_INVALID_ARG);
    nncl_layer *fresh;
    TEST_OK(ctx, nncl_batchnorm_create(ctx, 3, 1, &fresh));
    assert_int_equal(nncl_layer_backward(fresh, &x1, &y1, &dy1, &dx1), NNCL_ERR_INVALID_ARG);
    nncl_layer_destroy(fresh);
    nncl_layer_destroy(bn1);
    nncl_layer_destroy(l);
    nncl_tensor *all[] = {&x, &y, &x1, &y1, &dy1, &dx1};
    for (int i = 0; i < 6; i++) TEST_OK(ctx, nncl_tensor_destroy(ctx, all[i]));
}

/* Creates a tensor of the given shape holding `v`. */
static void tensor_of(nncl_tensor *t, int ndim, const int64_t *shape, const float *v)
{
    TEST_OK(ctx, nncl_tensor_create(ctx, ndim, shape, t));
    TEST_OK(ctx, nncl_tensor_write(ctx, t, v, (size_t)nncl_tensor_numel(t)));
}

/* Softmax of logits near 1000 equals softmax of the same logits less 1000 (exp(1000) overflows a float). */
static void test_softmax_large_logits(void **state)
{
    (void)state;
    const int64_t shape[2] = {2, 3};
    const float big[6] = {1000.0f, 1001.0f, 1002.0f, -1000.0f, -1000.5f, -999.0f};
    const float small[6] = {0.0f, 1.0f, 2.0f, 0.0f, -0.5f, 1.0f};
    for (int log = 0; log < 2; log++) {
        nncl_layer *l;
        TEST_OK(ctx, nncl_softmax_create(ctx, log, &l));
        nncl_tensor xb, xs, yb, ys;
        tensor_of(&xb, 2, shape, big);
        tensor_of(&xs, 2, shape, small);
        TEST_OK(ctx, nncl_tensor_create(ctx, 2, shape, &yb));
        TEST_OK(ctx, nncl_tensor_create(ctx, 2, shape, &ys));
        TEST_OK(ctx, nncl_layer_forward(l, NNCL_EVAL, &xb, &yb));
        TEST_OK(ctx, nncl_layer_forward(l, NNCL_EVAL, &xs, &ys));
        float *b = read_all(&yb), *sm = read_all(&ys);
        for (int i = 0; i < 6; i++) /* the shifted logits are the same floats: 1e-6 covers exp's rounding */
            if (!(fabsf(b[i] - sm[i]) <= 1e-6f * (1.0f + fabsf(sm[i]))))
                fail_msg("%ssoftmax of large logits, element %d: %g, expected %g", log ? "log_" : "", i, (double)b[i],
                         (double)sm[i]);
        free(b), free(sm);
        nncl_tensor *all[] = {&xb, &xs, &yb, &ys};
        for (int i = 0; i < 4; i++) TEST_OK(ctx, nncl_tensor_destroy(ctx, all[i]));
        nncl_layer_destroy(l);
    }
}

/* Batch norm in evaluation, a channel of zero running variance: y = (x - mean) / sqrt(eps), eps = 1e-5. */
static void test_batchnorm_eps(void **state)
{
    (void)state;
    nncl_layer *l;
    TEST_OK(ctx, nncl_batchnorm_create(ctx, 2, 1, &l));
    nncl_tensor rv;
    TEST_OK(ctx, nncl_layer_param(l, 3, NULL, &rv, NULL)); /* weight, bias, running_mean, running_var */
    const float var[2] = {0.0f, 1e-6f};
    TEST_OK(ctx, nncl_tensor_write(ctx, &rv, var, 2));
    const int64_t shape[2] = {2, 2};
    const float xv[4] = {0.01f, -0.02f, 0.5f, 0.25f};
    nncl_tensor x, y;
    tensor_of(&x, 2, shape, xv);
    TEST_OK(ctx, nncl_tensor_create(ctx, 2, shape, &y));
    TEST_OK(ctx, nncl_layer_forward(l, NNCL_EVAL, &x, &y));
    float *got = read_all(&y);
    for (int i = 0; i < 4; i++) {
        const double want = xv[i] / sqrt((double)var[i % 2] + 1e-5); /* mean 0, weight 1, bias 0 */
        if (!(fabs(got[i] - want) <= 1e-5 * fabs(want)))
            fail_msg("batch norm with running_var %g: %g, expected %g", (double)var[i % 2], (double)got[i], want);
    }
    free(got);
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &x));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &y));
    nncl_layer_destroy(l);
}

/*
 * Max pooling over windows of equal values: the first maximum (row-major in
 * the window) takes the gradient, also when every value is -inf, as in
 * PyTorch (nothing is greater than the -inf a window starts from: such
 * windows used to pass no gradient at all). Overlapping windows (3, stride
 * 1: the general kernel) and tiling ones (2, stride 2: the 2 x 2 kernel's
 * scalar path at width 6, its vector path at width 10).
 */
static void test_maxpool_ties(void **state)
{
    (void)state;
    static const struct {
        int64_t k, stride, w;
    } geoms[] = {{3, 1, 6}, {2, 2, 6}, {2, 2, 10}};
    for (int kase = 0; kase < 6; kase++) {
        const int64_t k = geoms[kase % 3].k, stride = geoms[kase % 3].stride, w = geoms[kase % 3].w;
        const float value = kase < 3 ? 0.5f : -INFINITY;
        const int64_t in_shape[4] = {1, 2, 4, w}, n_in = 8 * w;
        const int64_t oh = (4 - k) / stride + 1, ow = (w - k) / stride + 1, n_out = 2 * oh * ow;
        nncl_layer *l;
        TEST_OK(ctx, nncl_pool2d_create(ctx, NNCL_POOL_MAX, k, stride, 0, &l));
        float xv[80], dyv[20], want[80] = {0};
        for (int64_t i = 0; i < n_in; i++) xv[i] = value; /* every window a tie */
        for (int64_t i = 0; i < n_out; i++) dyv[i] = (float)(i + 1);
        const int64_t o_shape[4] = {1, 2, oh, ow};
        nncl_tensor x, y, dy, dx;
        tensor_of(&x, 4, in_shape, xv);
        TEST_OK(ctx, nncl_tensor_create(ctx, 4, o_shape, &y));
        TEST_OK(ctx, nncl_layer_forward(l, NNCL_TRAIN, &x, &y));
        tensor_of(&dy, 4, o_shape, dyv);
        TEST_OK(ctx, nncl_tensor_create(ctx, 4, in_shape, &dx));
        TEST_OK(ctx, nncl_layer_backward(l, &x, &y, &dy, &dx));
        char what[96];
        snprintf(what, sizeof what, "max pooling ties of %g, window %lld stride %lld, width %lld", (double)value,
                 (long long)k, (long long)stride, (long long)w);
        float *got = read_all(&y);
        for (int64_t i = 0; i < n_out; i++) want[i] = value;
        test_assert_bitwise(got, want, (size_t)n_out, what);
        free(got);
        got = read_all(&dx);
        memset(want, 0, sizeof want);
        for (int64_t c = 0; c < 2; c++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) /* the window's first element: its top-left corner */
                    want[c * 4 * w + i * stride * w + j * stride] += dyv[c * oh * ow + i * ow + j];
        test_assert_bitwise(got, want, (size_t)n_in, what);
        free(got);
        nncl_tensor *all[] = {&x, &y, &dy, &dx};
        for (int i = 0; i < 4; i++) TEST_OK(ctx, nncl_tensor_destroy(ctx, all[i]));
        nncl_layer_destroy(l);
    }
}

/*
 * A gradient of -0 through pooling gives +0 on every path, as the reference's
 * 0 + dy does: the scatter kernels of disjoint windows (2x2 stride 2 and 3x3
 * stride 3, max and average) store rather than sum, and used to pass the -0.
 */
static void test_pool_negative_zero_gradient(void **state)
{
    (void)state;
    const int64_t in_shape[4] = {2, 3, 12, 12};
    static const struct {
        nncl_pool_kind kind;
        int64_t k;
    } cases[] = {{NNCL_POOL_MAX, 2}, {NNCL_POOL_MAX, 3}, {NNCL_POOL_AVG, 2}, {NNCL_POOL_AVG, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t k = cases[c].k, o_shape[4] = {2, 3, 12 / k, 12 / k};
        nncl_layer *l;
        TEST_OK(ctx, nncl_pool2d_create(ctx, cases[c].kind, k, k, 0, &l));
        nncl_tensor x, y, dy, dx;
        random_tensor(&x, 4, in_shape, 40 + c, -1.0f, 1.0f);
        TEST_OK(ctx, nncl_tensor_create(ctx, 4, o_shape, &y));
        TEST_OK(ctx, nncl_tensor_create(ctx, 4, o_shape, &dy));
        TEST_OK(ctx, nncl_tensor_create(ctx, 4, in_shape, &dx));
        TEST_OK(ctx, nncl_tensor_fill(ctx, &dy, -0.0f));
        TEST_OK(ctx, nncl_tensor_fill(ctx, &dx, -1.0f)); /* every element must be written */
        TEST_OK(ctx, nncl_layer_forward(l, NNCL_TRAIN, &x, &y));
        TEST_OK(ctx, nncl_layer_backward(l, &x, &y, &dy, &dx));
        float *got = read_all(&dx);
        int64_t bad = 0;
        for (int64_t i = 0; i < nncl_tensor_numel(&dx); i++) bad += got[i] != 0.0f || signbit(got[i]);
        if (bad) fail_msg("%s %lldx%lld: %lld of dx are not +0", cases[c].kind == NNCL_POOL_MAX ? "max" : "avg",
                          (long long)k, (long long)k, (long long)bad);
        free(got);
        nncl_tensor *all[] = {&x, &y, &dy, &dx};
        for (int i = 0; i < 4; i++) TEST_OK(ctx, nncl_tensor_destroy(ctx, all[i]));
        nncl_layer_destroy(l);
    }
}

/*
 * Max pooling's backward reads the argmax positions of its last forward, which
 * index that forward's input planes: a backward on an input of another shape
 * (here no larger: 16 planes of one element after one plane of 16) is refused
 * before any kernel runs, and the layer still works for the shape it saw.
 * Before this check it wrote outside dx's planes (found by ASan).
 */
static void test_maxpool_backward_needs_its_forward(void **state)
{
    (void)state;
    nncl_layer *l;
    TEST_OK(ctx, nncl_pool2d_create(ctx, NNCL_POOL_MAX, 1, 1, 0, &l));
    const int64_t a_shape[4] = {1, 1, 4, 4}, b_shape[4] = {16, 1, 1, 1};
    nncl_tensor xa, ya, xb, yb, dyb, dxb;
    random_tensor(&xa, 4, a_shape, 31, -1.0f, 1.0f);
    random_tensor(&xb, 4, b_shape, 32, -1.0f, 1.0f);
    random_tensor(&dyb, 4, b_shape, 33, -1.0f, 1.0f);
    TEST_OK(ctx, nncl_tensor_create(ctx, 4, a_shape, &ya));
    TEST_OK(ctx, nncl_tensor_create(ctx, 4, b_shape, &yb));
    TEST_OK(ctx, nncl_tensor_create(ctx, 4, b_shape, &dxb));
    /* Before any forward, and after a forward of another shape. */
    assert_int_equal(nncl_layer_backward(l, &xb, &yb, &dyb, &dxb), NNCL_ERR_INVALID_ARG);
    TEST_OK(ctx, nncl_layer_forward(l, NNCL_TRAIN, &xa, &ya));
    assert_int_equal(nncl_layer_backward(l, &xb, &yb, &dyb, &dxb), NNCL_ERR_INVALID_ARG);
    assert_non_null(strstr(nncl_context_last_error(ctx), "backward without a forward of this x"));
    test_assert_context_works(ctx);
    /* A forward of that shape makes the backward valid: a 1x1 window passes dy through. */
    TEST_OK(ctx, nncl_layer_forward(l, NNCL_TRAIN, &xb, &yb));
    TEST_OK(ctx, nncl_layer_backward(l, &xb, &yb, &dyb, &dxb));
    float *got = read_all(&dxb), *want = read_all(&dyb);
    test_assert_bitwise(got, want, 16, "max pooling 1x1 backward");
    free(got);
    free(want);
    /* A forward refused by its checks (y of another shape) leaves no positions either. */
    assert_int_equal(nncl_layer_forward(l, NNCL_TRAIN, &xb, &ya), NNCL_ERR_SHAPE);
    assert_int_equal(nncl_layer_backward(l, &xb, &yb, &dyb, &dxb), NNCL_ERR_INVALID_ARG);
    nncl_tensor *all[] = {&xa, &ya, &xb, &yb, &dyb, &dxb};
    for (int i = 0; i < 6; i++) TEST_OK(ctx, nncl_tensor_destroy(ctx, all[i]));
    nncl_layer_destroy(l);
}

/* ---- bad configurations -------------------------------------------------------------------- */

/* The call returned `want`, the message names `name` and `value`, and the context still works. */
static void expect_error(nncl_status got, nncl_status want, const char *name, const char *value, const char *call)
{
    if (got != want)
        fail_msg("%s returned %s, expected %s (%s)", call, nncl_status_name(got), nncl_status_name(want),
                 nncl_context_last_error(ctx));
    const char *msg = nncl_context_last_error(ctx);
    if (strstr(msg, name) == NULL || (value && strstr(msg, value) == NULL))
        fail_msg("%s: message \"%s\" does not name \"%s\" and \"%s\"", call, msg, name, value ? value : "");
    test_assert_context_works(ctx);
}

#define EXPECT_ERROR(want, name, value, call) expect_error((call), (want), (name), (value), #call)

static void test_bad_configurations(void **state)
{
    (void)state;
    nncl_layer *l = (nncl_layer *)&l;
    nncl_conv2d_options o = nncl_conv2d_options_default(0, 8, 3);
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "conv2d", "in_channels 0", nncl_conv2d_create(ctx, &o, &l));
    assert_null(l);
    o = nncl_conv2d_options_default(6, 8, 3);
    o.groups = 4;
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "conv2d", "groups 4", nncl_conv2d_create(ctx, &o, &l));
    o.groups = 1;
    o.stride_h = 0;
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "conv2d", "stride 0x1", nncl_conv2d_create(ctx, &o, &l));
    o.stride_h = 1;
    o.padding_w = -1;
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "conv2d", "padding 0x-1", nncl_conv2d_create(ctx, &o, &l));

    /* A kernel larger than the padded input. */
    o = nncl_conv2d_options_default(2, 3, 5);
    o.padding_h = o.padding_w = 1;
    TEST_OK(ctx, nncl_conv2d_create(ctx, &o, &l));
    const int64_t small[4] = {1, 2, 2, 6};
    int ond;
    int64_t os[NNCL_MAX_DIMS];
    EXPECT_ERROR(NNCL_ERR_SHAPE, "conv2d(in=2, out=3, kernel=5x5", "(1, 2, 2, 6)",
                 nncl_layer_output_shape(l, 4, small, &ond, os));
    const int64_t wrong_c[4] = {1, 5, 8, 8};
    EXPECT_ERROR(NNCL_ERR_SHAPE, "conv2d", "(1, 5, 8, 8)", nncl_layer_output_shape(l, 4, wrong_c, &ond, os));
    /* Sizes whose product overflows: refused before any layer's shape arithmetic (max pooling's padded
       size and batch norm's plane used to overflow, under UBSan). */
    const int64_t huge[4] = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX}, wide[4] = {2, 2, INT64_MAX / 2, 3};
    EXPECT_ERROR(NNCL_ERR_SHAPE, "conv2d", "more than 2^40 elements", nncl_layer_output_shape(l, 4, huge, &ond, os));
    nncl_layer *others[2];
    TEST_OK(ctx, nncl_pool2d_create(ctx, NNCL_POOL_MAX, 2, 2, 1, &others[0]));
    TEST_OK(ctx, nncl_batchnorm_create(ctx, 2, 2, &others[1]));
    for (int i = 0; i < 2; i++) {
        EXPECT_ERROR(NNCL_ERR_SHAPE, "2d", "more than 2^40 elements",
                     nncl_layer_output_shape(others[i], 4, huge, &ond, os));
        EXPECT_ERROR(NNCL_ERR_SHAPE, "2d", "more than 2^40 elements",
                     nncl_layer_output_shape(others[i], 4, wide, &ond, os));
        nncl_layer_destroy(others[i]);
    }
    nncl_tensor x, y;
    random_tensor(&x, 4, small, 8, -1.0f, 1.0f);
    EXPECT_ERROR(NNCL_ERR_SHAPE, "conv2d", "(1, 2, 2, 6)", nncl_layer_forward(l, NNCL_TRAIN, &x, &x));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &x));
    nncl_layer_destroy(l);

    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "linear", "in_features 0", nncl_linear_create(ctx, 0, 3, 1, &l));
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "maxpool2d", "kernel 0", nncl_pool2d_create(ctx, NNCL_POOL_MAX, 0, 0, 0, &l));
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "avgpool2d", "padding 2", nncl_pool2d_create(ctx, NNCL_POOL_AVG, 3, 1, 2, &l));
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "dropout", "p = 1", nncl_dropout_create(ctx, 1.0f, 0, 0, &l));
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "dropout", "p = -0.1", nncl_dropout_create(ctx, -0.1f, 0, 0, &l));
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "dropout", "nan", nncl_dropout_create(ctx, NAN, 0, 0, &l));
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "batchnorm2d", "num_features 0", nncl_batchnorm_create(ctx, 0, 2, &l));
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "batchnorm", "spatial_dims 3", nncl_batchnorm_create(ctx, 4, 3, &l));
    const int64_t bad_ln[2] = {4, 0};
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "layernorm", "(4, 0)", nncl_layernorm_create(ctx, 2, bad_ln, 1, &l));
    const int64_t two_holes[2] = {-1, -1};
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "unflatten", "-1", nncl_unflatten_create(ctx, 1, 2, two_holes, &l));
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "activation", "unknown activation 99",
                 nncl_activation_create(ctx, (nncl_activation)99, 0.0f, &l));
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "flatten", "start_dim 9", nncl_flatten_create(ctx, 9, &l));

    /* A linear layer fed the wrong number of features, and a y of the wrong shape. */
    TEST_OK(ctx, nncl_linear_create(ctx, 4, 2, 1, &l));
    const int64_t s35[2] = {3, 5}, s34[2] = {3, 4}, s33[2] = {3, 3};
    random_tensor(&x, 2, s35, 9, -1.0f, 1.0f);
    TEST_OK(ctx, nncl_tensor_create(ctx, 2, s33, &y));
    EXPECT_ERROR(NNCL_ERR_SHAPE, "linear(in=4, out=2, bias=1)", "(3, 5)", nncl_layer_forward(l, NNCL_TRAIN, &x, &y));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &x));
    random_tensor(&x, 2, s34, 9, -1.0f, 1.0f);
    EXPECT_ERROR(NNCL_ERR_SHAPE, "linear", "(3, 3)", nncl_layer_forward(l, NNCL_TRAIN, &x, &y));
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "linear", NULL, nncl_layer_forward(l, (nncl_mode)5, &x, &y));
    nncl_layer_destroy(l);

    /* Add takes two inputs of one shape. */
    nncl_layer *add;
    TEST_OK(ctx, nncl_add_create(ctx, &add));
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "add", "nncl_add_forward", nncl_layer_forward(add, NNCL_TRAIN, &x, &y));
    EXPECT_ERROR(NNCL_ERR_SHAPE, "add", "(3, 3)", nncl_add_forward(add, &x, &x, &y));
    nncl_layer_destroy(add);
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &x));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &y));
}

/*
 * Cross-entropy over a masked class (logit -inf), as PyTorch gives it: row
 * (2, -inf, 1) with label 0 has loss log(1 + e^-1) and gradient
 * (softmax - onehot) = (-1/(1 + e), 0, 1/(1 + e)), rtol 1e-6; a label on the
 * masked class, or any label smoothing, gives +inf (log p = -inf is in the
 * sum). The smoothing term used to be added at s = 0 too, and 0 * -inf made
 * every such loss NaN.
 */
static void test_cross_entropy_masked_logits(void **state)
{
    (void)state;
    const int64_t shape[2] = {1, 3}, one = 1;
    const float xv[3] = {2.0f, -INFINITY, 1.0f};
    nncl_tensor x, label, out, dx;
    tensor_of(&x, 2, shape, xv);
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &one, &label));
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &one, &out));
    TEST_OK(ctx, nncl_tensor_create(ctx, 2, shape, &dx));
    static const struct {
        int64_t label;
        float smoothing;
        double loss;
    } cases[] = {{0, 0.0f, 0.31326168751822286 /* log(1 + e^-1) */}, {1, 0.0f, INFINITY}, {0, 0.1f, INFINITY}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nncl_loss *loss;
        TEST_OK(ctx, nncl_loss_create(ctx, NNCL_LOSS_CROSS_ENTROPY, cases[i].smoothing, &loss));
        TEST_OK(ctx, nncl_tensor_write_labels(ctx, &label, &cases[i].label, 1, 3));
        TEST_OK(ctx, nncl_loss_forward(loss, &x, &label, &out));
        float v;
        TEST_OK(ctx, nncl_tensor_read(ctx, &out, &v, 1));
        if (!(isinf(cases[i].loss) ? v == (float)cases[i].loss : fabs(v - cases[i].loss) <= 1e-6 * cases[i].loss))
            fail_msg("cross_entropy of (2, -inf, 1), label %lld, smoothing %g: %g, expected %g",
                     (long long)cases[i].label, (double)cases[i].smoothing, (double)v, cases[i].loss);
        if (i == 0) {
            TEST_OK(ctx, nncl_loss_backward(loss, &x, &label, &dx));
            float *g = read_all(&dx);
            const double e1 = 1.0 / (1.0 + exp(1.0)), want[3] = {-e1, 0.0, e1};
            test_assert_close(g, (const float[]){(float)want[0], (float)want[1], (float)want[2]}, 3, 0.0, 1e-6,
                              "cross_entropy gradient of (2, -inf, 1), label 0");
            free(g);
        }
        nncl_loss_destroy(loss);
    }
    nncl_tensor *all[] = {&x, &label, &out, &dx};
    for (int i = 0; i < 4; i++) TEST_OK(ctx, nncl_tensor_destroy(ctx, all[i]));
}

static void test_bad_loss_inputs(void **state)
{
    (void)state;
    nncl_loss *loss = (nncl_loss *)&loss;
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "cross_entropy", "1.5",
                 nncl_loss_create(ctx, NNCL_LOSS_CROSS_ENTROPY, 1.5f, &loss));
    assert_null(loss);
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "mse", "label_smoothing", nncl_loss_create(ctx, NNCL_LOSS_MSE, 0.1f, &loss));
    const int64_t logits_shape[2] = {4, 10}, four = 4, five = 5, one = 1;
    nncl_tensor logits, labels, labels5, out;
    random_tensor(&logits, 2, logits_shape, 10, -1.0f, 1.0f);
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &four, &labels));
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &five, &labels5));
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &one, &out));
    /* A class index out of range is caught where labels enter the device. */
    const int64_t bad[4] = {0, 3, 10, 9}, good[4] = {0, 3, 9, 9};
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "label 2 is 10", "[0, 10)",
                 nncl_tensor_write_labels(ctx, &labels, bad, 4, 10));
    const int64_t negative[4] = {0, -1, 1, 1};
    EXPECT_ERROR(NNCL_ERR_INVALID_ARG, "label 1 is -1", NULL, nncl_tensor_write_labels(ctx, &labels, negative, 4, 10));
    TEST_OK(ctx, nncl_tensor_write_labels(ctx, &labels, good, 4, 10));
    TEST_OK(ctx, nncl_loss_create(ctx, NNCL_LOSS_CROSS_ENTROPY, 0.0f, &loss));
    EXPECT_ERROR(NNCL_ERR_SHAPE, "cross_entropy", "(5)", nncl_loss_forward(loss, &logits, &labels5, &out));
    EXPECT_ERROR(NNCL_ERR_SHAPE, "cross_entropy", "one element", nncl_loss_forward(loss, &logits, &labels, &labels));
    TEST_OK(ctx, nncl_loss_forward(loss, &logits, &labels, &out));
    float v;
    TEST_OK(ctx, nncl_tensor_read(ctx, &out, &v, 1));
    assert_true(isfinite(v) && v > 0.0f);
    /* A label that bypassed the check (written as a plain float) gives NaN, not a crash. */
    const float raw[4] = {0, 1, 12, 2};
    TEST_OK(ctx, nncl_tensor_write(ctx, &labels, raw, 4));
    TEST_OK(ctx, nncl_loss_forward(loss, &logits, &labels, &out));
    TEST_OK(ctx, nncl_tensor_read(ctx, &out, &v, 1));
    assert_true(isnan(v));
    nncl_loss_destroy(loss);
    nncl_tensor *all[] = {&logits, &labels, &labels5, &out};
    for (int i = 0; i < 4; i++) TEST_OK(ctx, nncl_tensor_destroy(ctx, all[i]));
}

int main(int argc, char **argv)
{
    const char *backend = test_backend_arg(argc, argv);
    ctx = test_context(backend);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients_accumulate),
        cmocka_unit_test(test_alias_layers_do_no_device_work),
        cmocka_unit_test(test_gradcheck_alias_and_add),
        cmocka_unit_test(test_parameters_follow_pytorch),
        cmocka_unit_test(test_dropout_modes),
        cmocka_unit_test(test_batchnorm_modes),
        cmocka_unit_test(test_softmax_large_logits),
        cmocka_unit_test(test_batchnorm_eps),
        cmocka_unit_test(test_maxpool_ties),
        cmocka_unit_test(test_maxpool_backward_needs_its_forward),
        cmocka_unit_test(test_pool_negative_zero_gradient),
        cmocka_unit_test(test_bad_configurations),
        cmocka_unit_test(test_cross_entropy_masked_logits),
        cmocka_unit_test(test_bad_loss_inputs),
    };
    int failed = cmocka_run_group_tests_name(backend, tests, NULL, NULL);
    nncl_context_destroy(ctx);
    return failed;
}
