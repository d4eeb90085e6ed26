/*
 * test_gradcheck.c - the backward pass of every layer and loss of the double
 * precision reference (src/cpu/ref.h) against central finite differences.
 *
 * Method (PyTorch's gradcheck): a layer y = f(x, params) is reduced to the
 * scalar L = sum_i r_i y_i with a fixed random projection r of the shape of y,
 * so that the reference backward called with dy = r gives the analytic
 * gradient of L with respect to x and to every parameter. For a loss, L is the
 * mean loss itself and the gradient is taken with respect to the input. The
 * numeric gradient of every entry v of every array is
 *     (L(v + h) - L(v - h)) / (2 h),   h = 1e-6,
 * evaluated in double precision.
 *
 * Tolerance, for every entry (PyTorch's gradcheck defaults):
 *     |analytic - numeric| <= atol + rtol * |numeric|,   atol = 1e-5, rtol = 1e-3.
 * The truncation error of the central difference is O(h^2) ~ 1e-12 and the
 * rounding error about 1e-16 sum |r_i y_i| / h, 1e-10 to 1e-8 on these tiny
 * shapes, so a correct gradient sits orders of magnitude inside the bound,
 * and a wrong term, index or factor lands far outside it.
 *
 * Inputs stay away from the points where a function is not differentiable:
 * activation inputs are at least 2e-2 away from 0 (the kink of relu,
 * leaky_relu and elu), and max pooling gets distinct values at least 5e-2
 * apart, so that a step of h never changes which element wins a window.
 * Relu followed by max pooling, whose backward a network runs as max
 * pooling's with the relu's folded in (relu_y), is checked as the composition
 * with both rules at once: distinct inputs 5e-2 apart and 2.5e-2 from 0.
 *
 * Linear layers have no reference function of their own (they are a GEMM):
 * the linear case computes y = x W^T + b with a local double loop plus
 * nncl__ref_bias_add, and its analytic dx and dW come from local loops too,
 * so it checks the bias reference in the (outer, channels, 1) layout and
 * the test's own algebra; test_linear_layer then checks the layer itself,
 * GEMMs and all, on the CPU backend. Convolution checks the bias with
 * inner > 1.
 *
 * Reference conventions: input gradients (dx) are overwritten, parameter
 * gradients (dw, db, dgamma, dbeta) are added to, so every case zeroes them
 * before it calls the backward.
 */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/ref.h"

#define GC_H 1e-6
#define GC_ATOL 1e-5
#define GC_RTOL 1e-3

static int64_t total_entries;  /* entries checked by every case, reported at the end */
static double worst_ratio;     /* largest |a - n| / (atol + rtol |n|) seen */
static int n_cases;

/* ---- the finite-difference checker ---- */

/* Computes the scalar L from the current contents of the arrays in `state`. */
typedef double (*gc_objective)(void *state);

/* One array whose gradient is checked: perturbed in place, one entry at a time. */
typedef struct gc_grad {
    const char *name;       /* "x", "weight", "bias", "gamma", "beta", "input" */
    double *value;          /* the input or parameter L depends on */
    int64_t n;              /* its element count */
    const double *analytic; /* dL/dvalue from the reference backward */
} gc_grad;

typedef struct gc_result {
    int64_t entries, bad;   /* entries compared, entries outside the tolerance */
    double max_abs;         /* max |a - n| */
    double worst_ratio;     /* max |a - n| / (atol + rtol |n|) */
    const char *worst_name; /* the array and index of the worst entry, and its values */
    int64_t worst_index;
    double worst_analytic, worst_numeric;
} gc_result;

/*
 * Compares every analytic entry with its central difference and returns the
 * tally. It never fails the test itself: gc_check does that, and the sanity
 * test calls this function directly to see that it reports wrong gradients.
 * Every perturbed entry gets its exact original value back afterwards.
 */
static gc_result gc_compare(gc_objective f, void *state, const gc_grad *grads, int ngrads)
{
    gc_result res = {0, 0, 0.0, 0.0, NULL, -1, 0.0, 0.0};
    for (int k = 0; k < ngrads; k++) {
        const gc_grad *g = &grads[k];
        for (int64_t i = 0; i < g->n; i++) {
            const double v = g->value[i];
            g->value[i] = v + GC_H;
            const double lp = f(state);
            g->value[i] = v - GC_H;
            const double lm = f(state);
            g->value[i] = v;
            const double num = (lp - lm) / (2.0 * GC_H);
            const double a = g->analytic[i];
            /* A NaN on either side counts as an infinite error. */
            const double err = isnan(a) || isnan(num) ? INFINITY : fabs(a - num);
            const double tol = GC_ATOL + GC_RTOL * fabs(num), ratio = err / tol;
            res.entries++;
            if (!(err <= tol)) res.bad++;
            if (err > res.max_abs) res.max_abs = err;
            if (ratio > res.worst_ratio || res.worst_name == NULL) {
                res.worst_ratio = ratio;
                res.worst_name = g->name;
                res.worst_index = i;
                res.worst_analytic = a;
                res.worst_numeric = num;
            }
        }
    }
    return res;
}

/* Runs gc_compare on one case, prints its summary line, and fails on any entry outside the tolerance. */
static void gc_check(const char *case_name, gc_objective f, void *state, const gc_grad *grads, int ngrads)
{
    gc_result res = gc_compare(f, state, grads, ngrads);
    char counts[160] = "";
    size_t used = 0;
    for (int k = 0; k < ngrads && used < sizeof counts; k++) {
        int w = snprintf(counts + used, sizeof counts - used, "%s%s %lld", k ? ", " : "", grads[k].name,
                         (long long)grads[k].n);
        if (w > 0) used += (size_t)w;
    }
    printf("gradcheck %s: %lld entries (%s), max |a-n| = %.2g, worst ratio %.2g\n", case_name,
           (long long)res.entries, counts, res.max_abs, res.worst_ratio);
    fflush(stdout);
    total_entries += res.entries;
    n_cases++;
    if (res.worst_ratio > worst_ratio) worst_ratio = res.worst_ratio;
    if (res.bad > 0)
        fail_msg("gradcheck %s: %lld of %lld entries outside |a-n| <= %g + %g |n|; worst: d%s[%lld] analytic %.12g, "
                 "numeric %.12g, |a-n| %.3g",
                 case_name, (long long)res.bad, (long long)res.entries, GC_ATOL, GC_RTOL, res.worst_name,
                 (long long)res.worst_index, res.worst_analytic, res.worst_numeric,
                 fabs(res.worst_analytic - res.worst_numeric));
}

/* ---- small helpers ---- */

/* A zeroed array of n doubles (at least one, so that a size of 0 still gives a pointer). */
static double *gc_alloc(int64_t n)
{
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    assert_non_null(p);
    return p;
}

/* Uniform values in [lo, hi). */
static void fill_uniform(test_rng *r, double *x, int64_t n, double lo, double hi)
{
    for (int64_t i = 0; i < n; i++) x[i] = test_rng_uniform(r, (float)lo, (float)hi);
}

/* Values of magnitude in [2e-2, hi) and random sign: never within 2e-2 of 0. */
static void fill_away_from_zero(test_rng *r, double *x, int64_t n, double hi)
{
    for (int64_t i = 0; i < n; i++) {
        double m = test_rng_uniform(r, 0.02f, (float)hi);
        x[i] = test_rng_below(r, 2) ? m : -m;
    }
}

/* A random permutation of the distinct values -1 + 0.05 k, k < n: no two within 5e-2 of each other. */
static void fill_distinct(test_rng *r, double *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = -1.0 + 0.05 * (double)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = test_rng_below(r, i + 1);
        double t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
}

/* L = sum r_i y_i. */
static double project(const double *r, const double *y, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += r[i] * y[i];
    return s;
}

/* ---- linear: y = x W^T + b, x (n, in), W (out, in) ---- */

typedef struct linear_state {
    int64_t n, in, out;
    double *x, *w, *b, *r, *y;
} linear_state;

static double linear_objective(void *p)
{
    linear_state *s = p;
    for (int64_t i = 0; i < s->n; i++) {
        for (int64_t o = 0; o < s->out; o++) {
            double acc = 0.0;
            for (int64_t k = 0; k < s->in; k++) acc += s->x[i * s->in + k] * s->w[o * s->in + k];
            s->y[i * s->out + o] = acc;
        }
    }
    nncl__ref_bias_add(s->y, s->b, s->n, s->out, 1);
    return project(s->r, s->y, s->n * s->out);
}

static void linear_case(const char *name, int64_t n, int64_t in, int64_t out, uint64_t seed)
{
    linear_state s = {n, in, out, gc_alloc(n * in), gc_alloc(out * in), gc_alloc(out), gc_alloc(n * out),
                      gc_alloc(n * out)};
    double *dx = gc_alloc(n * in), *dw = gc_alloc(out * in), *db = gc_alloc(out);
    test_rng r = test_rng_seed(seed);
    fill_uniform(&r, s.x, n * in, -1.0, 1.0);
    fill_uniform(&r, s.w, out * in, -1.0, 1.0);
    fill_uniform(&r, s.b, out, -1.0, 1.0);
    fill_uniform(&r, s.r, n * out, -1.0, 1.0);
    /* dx = r W, dW = r^T x, db = column sums of r (the reference, added to zeros). */
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < in; k++)
            for (int64_t o = 0; o < out; o++) dx[i * in + k] += s.r[i * out + o] * s.w[o * in + k];
    for (int64_t o = 0; o < out; o++)
        for (int64_t k = 0; k < in; k++)
            for (int64_t i = 0; i < n; i++) dw[o * in + k] += s.r[i * out + o] * s.x[i * in + k];
    nncl__ref_bias_backward(db, s.r, n, out, 1);
    const gc_grad grads[] = {{"x", s.x, n * in, dx}, {"weight", s.w, out * in, dw}, {"bias", s.b, out, db}};
    char label[96];
    snprintf(label, sizeof label, "linear %s", name);
    gc_check(label, linear_objective, &s, grads, 3);
    free(s.x); free(s.w); free(s.b); free(s.r); free(s.y); free(dx); free(dw); free(db);
}

static void test_linear(void **state)
{
    (void)state;
    linear_case("3x4 -> 5", 3, 4, 5, 101);
    linear_case("1x7 -> 2", 1, 7, 2, 102);
}

/* ---- conv2d with bias ---- */

typedef struct conv_state {
    nncl_conv_geom g;
    double *x, *w, *b, *r, *y;
} conv_state;

static int64_t conv_ny(const nncl_conv_geom *g)
{
    return g->n * g->oc * g->oh * g->ow;
}

static double conv_objective(void *p)
{
    conv_state *s = p;
    nncl__ref_conv2d_forward(s->y, s->x, s->w, &s->g);
    nncl__ref_bias_add(s->y, s->b, s->g.n, s->g.oc, s->g.oh * s->g.ow);
    return project(s->r, s->y, conv_ny(&s->g));
}

typedef struct conv_config {
    const char *name;
    nncl_conv_geom g; /* oh and ow are computed from the rest */
} conv_config;

static void conv_case(const conv_config *cfg, uint64_t seed)
{
    conv_state s = {.g = cfg->g};
    nncl_conv_geom *g = &s.g;
    g->oh = (g->h + 2 * g->ph - g->dh * (g->kh - 1) - 1) / g->sh + 1;
    g->ow = (g->w + 2 * g->pw - g->dw * (g->kw - 1) - 1) / g->sw + 1;
    assert_true(g->oh > 0 && g->ow > 0);
    assert_true(g->c % g->groups == 0 && g->oc % g->groups == 0);
    const int64_t nx = g->n * g->c * g->h * g->w, nw = g->oc * (g->c / g->groups) * g->kh * g->kw;
    const int64_t ny = conv_ny(g);
    s.x = gc_alloc(nx), s.w = gc_alloc(nw), s.b = gc_alloc(g->oc), s.r = gc_alloc(ny), s.y = gc_alloc(ny);
    double *dx = gc_alloc(nx), *dw = gc_alloc(nw), *db = gc_alloc(g->oc);
    test_rng r = test_rng_seed(seed);
    fill_uniform(&r, s.x, nx, -1.0, 1.0);
    fill_uniform(&r, s.w, nw, -1.0, 1.0);
    fill_uniform(&r, s.b, g->oc, -1.0, 1.0);
    fill_uniform(&r, s.r, ny, -1.0, 1.0);
    /* dx is overwritten: poison it to see that every entry is written. */
    for (int64_t i = 0; i < nx; i++) dx[i] = NAN;
    nncl__ref_conv2d_backward_data(dx, s.r, s.w, g);
    nncl__ref_conv2d_backward_params(dw, s.r, s.x, g);
    nncl__ref_bias_backward(db, s.r, g->n, g->oc, g->oh * g->ow);
    const gc_grad grads[] = {{"x", s.x, nx, dx}, {"weight", s.w, nw, dw}, {"bias", s.b, g->oc, db}};
    char label[96];
    snprintf(label, sizeof label, "conv2d %s", cfg->name);
    gc_check(label, conv_objective, &s, grads, 3);
    free(s.x); free(s.w); free(s.b); free(s.r); free(s.y); free(dx); free(dw); free(db);
}

/* Geometries, designated fields: n, c, h, w, oc, kh, kw, sh, sw, ph, pw, dh, dw, groups. */
#define CONV(n_, c_, h_, w_, oc_, kh_, kw_, sh_, sw_, ph_, pw_, dh_, dw_, groups_)                          \
    {.n = n_, .c = c_, .h = h_, .w = w_, .oc = oc_, .kh = kh_, .kw = kw_, .sh = sh_, .sw = sw_, .ph = ph_,    \
     .pw = pw_, .dh = dh_, .dw = dw_, .groups = groups_}

static const conv_config CONV_CONFIGS[] = {
    {"plain 3x3", CONV(2, 3, 5, 5, 4, 3, 3, 1, 1, 0, 0, 1, 1, 1)},
    {"stride2 pad1", CONV(1, 2, 6, 7, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1)},
    {"dilation2 pad2", CONV(1, 2, 7, 6, 2, 3, 3, 1, 1, 2, 2, 2, 2, 1)},
    {"groups2", CONV(2, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2)},
    {"depthwise c=oc=groups=3", CONV(1, 3, 5, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1, 3)},
    {"kernel 3x2 stride 2x1", CONV(1, 2, 7, 6, 3, 3, 2, 2, 1, 1, 0, 1, 1, 1)},
    {"1x1 kernel", CONV(2, 3, 3, 4, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1)},
    {"stride2 pad1 dil2 groups2 kernel 2x3", CONV(1, 4, 8, 7, 2, 2, 3, 2, 1, 1, 2, 2, 2, 2)},
};
#define N_CONV ((int)(sizeof CONV_CONFIGS / sizeof CONV_CONFIGS[0]))

static void test_conv2d(void **state)
{
    (void)state;
    for (int i = 0; i < N_CONV; i++) conv_case(&CONV_CONFIGS[i], 200 + (uint64_t)i);
}

/* ---- pool2d, max and average ---- */

typedef struct pool_state {
    nncl_pool_geom g;
    double *x, *y, *idx, *r;
} pool_state;

static double pool_objective(void *p)
{
    pool_state *s = p;
    nncl__ref_pool2d_forward(s->y, s->idx, s->x, &s->g, 0);
    return project(s->r, s->y, s->g.n * s->g.c * s->g.oh * s->g.ow);
}

typedef struct pool_config {
    const char *name;
    nncl_pool_geom g; /* oh and ow are computed from the rest */
} pool_config;

static void pool_case(const pool_config *cfg, uint64_t seed)
{
    pool_state s = {.g = cfg->g};
    nncl_pool_geom *g = &s.g;
    g->oh = (g->h + 2 * g->ph - g->kh) / g->sh + 1;
    g->ow = (g->w + 2 * g->pw - g->kw) / g->sw + 1;
    assert_true(g->oh > 0 && g->ow > 0);
    const int64_t nx = g->n * g->c * g->h * g->w, ny = g->n * g->c * g->oh * g->ow;
    const int is_max = g->kind == NNCL_POOL_MAX;
    s.x = gc_alloc(nx), s.y = gc_alloc(ny), s.r = gc_alloc(ny);
    s.idx = is_max ? gc_alloc(ny) : NULL;
    double *dx = gc_alloc(nx);
    test_rng r = test_rng_seed(seed);
    if (is_max) fill_distinct(&r, s.x, nx); /* no ties: h never moves a window's maximum */
    else fill_uniform(&r, s.x, nx, -1.0, 1.0);
    fill_uniform(&r, s.r, ny, -1.0, 1.0);
    nncl__ref_pool2d_forward(s.y, s.idx, s.x, g, 0);
    if (is_max)
        for (int64_t o = 0; o < ny; o++) assert_true(s.idx[o] >= 0.0); /* every window saw an element */
    for (int64_t i = 0; i < nx; i++) dx[i] = NAN;
    nncl__ref_pool2d_backward(dx, s.r, s.idx, NULL, g, 0);
    const gc_grad grads[] = {{"x", s.x, nx, dx}};
    char label[96];
    snprintf(label, sizeof label, "pool2d %s %s", is_max ? "max" : "avg", cfg->name);
    gc_check(label, pool_objective, &s, grads, 1);
    free(s.x); free(s.y); free(s.idx); free(s.r); free(dx);
}

/* Geometries, designated fields: n, c, h, w, kh, kw, sh, sw, ph, pw, kind. */
#define POOL(n_, c_, h_, w_, kh_, kw_, sh_, sw_, ph_, pw_, kind_)                                            \
    {.n = n_, .c = c_, .h = h_, .w = w_, .kh = kh_, .kw = kw_, .sh = sh_, .sw = sw_, .ph = ph_, .pw = pw_,    \
     .kind = kind_}

static const pool_config POOL_CONFIGS[] = {
    {"k2 s2", POOL(1, 2, 4, 4, 2, 2, 2, 2, 0, 0, NNCL_POOL_MAX)},
    {"k3 s2 p1 (overlapping)", POOL(2, 2, 5, 6, 3, 3, 2, 2, 1, 1, NNCL_POOL_MAX)},
    {"k3 s1 p1 (overlapping)", POOL(1, 2, 4, 5, 3, 3, 1, 1, 1, 1, NNCL_POOL_MAX)},
    {"global 4x5", POOL(2, 3, 4, 5, 4, 5, 1, 1, 0, 0, NNCL_POOL_MAX)},
    {"k2 s2", POOL(1, 2, 4, 4, 2, 2, 2, 2, 0, 0, NNCL_POOL_AVG)},
    {"k3 s2 p1 (overlapping)", POOL(2, 2, 5, 6, 3, 3, 2, 2, 1, 1, NNCL_POOL_AVG)},
    {"k3 s1 p1 (overlapping)", POOL(1, 2, 4, 5, 3, 3, 1, 1, 1, 1, NNCL_POOL_AVG)},
    {"global 4x5", POOL(2, 3, 4, 5, 4, 5, 1, 1, 0, 0, NNCL_POOL_AVG)},
};
#define N_POOL ((int)(sizeof POOL_CONFIGS / sizeof POOL_CONFIGS[0]))

static void test_pool2d(void **state)
{
    (void)state;
    for (int i = 0; i < N_POOL; i++) pool_case(&POOL_CONFIGS[i], 300 + (uint64_t)i);
}

/* ---- relu then max pooling, through the fused backward ---- */

/*
 * L = sum r_i maxpool(relu(x))_i. A network runs this pair's backward as max
 * pooling's alone, with the relu's folded in (nncl__ref_pool2d_backward with
 * relu_y = the pooled output): a window passes its gradient to its maximum
 * only when that maximum is > 0. Seven eighths of x are negative, so that
 * many windows hold nothing but the relu's zeros: their maximum is a tie of
 * zeros, which no step of h changes, so the numeric gradient there is 0.
 */
typedef struct relu_pool_state {
    nncl_pool_geom g;
    double *x, *a, *y, *idx, *r; /* a = relu(x), the pooled input */
} relu_pool_state;

static double relu_pool_objective(void *p)
{
    relu_pool_state *s = p;
    nncl__ref_activation_forward(s->a, s->x, s->g.n * s->g.c * s->g.h * s->g.w, NNCL_ACT_RELU, 0.0);
    nncl__ref_pool2d_forward(s->y, s->idx, s->a, &s->g, 0);
    return project(s->r, s->y, s->g.n * s->g.c * s->g.oh * s->g.ow);
}

static void relu_pool_case(const pool_config *cfg, uint64_t seed)
{
    relu_pool_state s = {.g = cfg->g};
    nncl_pool_geom *g = &s.g;
    g->oh = (g->h + 2 * g->ph - g->kh) / g->sh + 1;
    g->ow = (g->w + 2 * g->pw - g->kw) / g->sw + 1;
    assert_true(g->kind == NNCL_POOL_MAX && g->oh > 0 && g->ow > 0);
    const int64_t nx = g->n * g->c * g->h * g->w, ny = g->n * g->c * g->oh * g->ow;
    s.x = gc_alloc(nx), s.a = gc_alloc(nx), s.y = gc_alloc(ny), s.idx = gc_alloc(ny), s.r = gc_alloc(ny);
    double *dx = gc_alloc(nx);
    test_rng r = test_rng_seed(seed);
    /* Distinct values 5e-2 apart (no step of h moves a maximum) and at least 2.5e-2 away from the relu's kink. */
    fill_distinct(&r, s.x, nx);
    for (int64_t i = 0; i < nx; i++) s.x[i] += 1.0 - 0.05 * (double)(7 * nx / 8) + 0.025;
    fill_uniform(&r, s.r, ny, -1.0, 1.0);
    relu_pool_objective(&s); /* the fused backward takes the forward's maxima and their positions */
    int64_t passing = 0;
    for (int64_t o = 0; o < ny; o++) {
        assert_true(s.idx[o] >= 0.0);
        passing += s.y[o] > 0.0;
    }
    assert_true(passing > 0 && passing < ny); /* windows of both kinds, or the case proves little */
    for (int64_t i = 0; i < nx; i++) dx[i] = NAN;
    nncl__ref_pool2d_backward(dx, s.r, s.idx, s.y, g, 0);
    const gc_grad grads[] = {{"x", s.x, nx, dx}};
    char label[128];
    snprintf(label, sizeof label, "relu + max pool2d %s (%lld of %lld windows pass)", cfg->name, (long long)passing,
             (long long)ny);
    gc_check(label, relu_pool_objective, &s, grads, 1);
    free(s.x); free(s.a); free(s.y); free(s.idx); free(s.r); free(dx);
}

static void test_relu_maxpool(void **state)
{
    (void)state;
    /* The max pooling ones with windows smaller than the plane: a global window of 20 inputs is seldom all
       negative, and a case without both kinds of window proves little. */
    for (int i = 0; i < N_POOL; i++) {
        const nncl_pool_geom *g = &POOL_CONFIGS[i].g;
        if (g->kind == NNCL_POOL_MAX && g->kh * g->kw < g->h * g->w)
            relu_pool_case(&POOL_CONFIGS[i], 350 + (uint64_t)i);
    }
}

/* ---- activations ---- */

typedef struct act_state {
    nncl_activation act;
    double param;
    int64_t n;
    double *x, *y, *r;
} act_state;

static double act_objective(void *p)
{
    act_state *s = p;
    nncl__ref_activation_forward(s->y, s->x, s->n, s->act, s->param);
    return project(s->r, s->y, s->n);
}

/* Fills an activation case from seed; the caller frees x, y and r. */
static act_state act_setup(nncl_activation act, double param, int64_t n, uint64_t seed)
{
    act_state s = {act, param, n, gc_alloc(n), gc_alloc(n), gc_alloc(n)};
    test_rng r = test_rng_seed(seed);
    fill_away_from_zero(&r, s.x, n, 3.0);
    fill_uniform(&r, s.r, n, -1.0, 1.0);
    return s;
}

static void act_case(const char *name, nncl_activation act, double param, uint64_t seed)
{
    const int64_t n = 40;
    act_state s = act_setup(act, param, n, seed);
    double *dx = gc_alloc(n);
    nncl__ref_activation_backward(dx, s.x, s.r, n, act, param);
    const gc_grad grads[] = {{"x", s.x, n, dx}};
    char label[96];
    snprintf(label, sizeof label, "activation %s", name);
    gc_check(label, act_objective, &s, grads, 1);
    free(s.x); free(s.y); free(s.r); free(dx);
}

static void test_activations(void **state)
{
    (void)state;
    act_case("relu", NNCL_ACT_RELU, 0.0, 400);
    act_case("leaky_relu 0.1", NNCL_ACT_LEAKY_RELU, 0.1, 401);
    act_case("sigmoid", NNCL_ACT_SIGMOID, 0.0, 402);
    act_case("tanh", NNCL_ACT_TANH, 0.0, 403);
    act_case("gelu", NNCL_ACT_GELU, 0.0, 404);
    act_case("silu", NNCL_ACT_SILU, 0.0, 405);
    act_case("elu 1.0", NNCL_ACT_ELU, 1.0, 406);
    act_case("elu 0.5", NNCL_ACT_ELU, 0.5, 407);
}

/* ---- softmax and log-softmax ---- */

typedef struct softmax_state {
    int64_t rows, cols;
    int log;
    double *x, *y, *r;
} softmax_state;

static double softmax_objective(void *p)
{
    softmax_state *s = p;
    nncl__ref_softmax_forward(s->y, s->x, s->rows, s->cols, s->log);
    return project(s->r, s->y, s->rows * s->cols);
}

static void softmax_case(int64_t rows, int64_t cols, int log, double range, uint64_t seed)
{
    const int64_t n = rows * cols;
    softmax_state s = {rows, cols, log, gc_alloc(n), gc_alloc(n), gc_alloc(n)};
    double *dx = gc_alloc(n);
    test_rng r = test_rng_seed(seed);
    fill_uniform(&r, s.x, n, -range, range);
    fill_uniform(&r, s.r, n, -1.0, 1.0);
    nncl__ref_softmax_forward(s.y, s.x, rows, cols, log); /* the backward takes y */
    nncl__ref_softmax_backward(dx, s.y, s.r, rows, cols, log);
    const gc_grad grads[] = {{"x", s.x, n, dx}};
    char label[96];
    snprintf(label, sizeof label, "%s %lldx%lld, x in [-%g, %g)", log ? "log_softmax" : "softmax", (long long)rows,
             (long long)cols, range, range);
    gc_check(label, softmax_objective, &s, grads, 1);
    free(s.x); free(s.y); free(s.r); free(dx);
}

static void test_softmax(void **state)
{
    (void)state;
    for (int log = 0; log <= 1; log++) {
        softmax_case(3, 5, log, 2.0, 500 + (uint64_t)log);
        softmax_case(1, 7, log, 2.0, 510 + (uint64_t)log);
        softmax_case(2, 1, log, 2.0, 520 + (uint64_t)log); /* one column: constant output, zero gradient */
        softmax_case(2, 6, log, 20.0, 530 + (uint64_t)log); /* larger logits; the max shift itself, which
                                                               double never needs here, is test_layers' */
    }
}

/* ---- dropout ---- */

typedef struct dropout_state {
    int64_t n;
    double p, scale;
    nncl_rng_key key;
    double *x, *y, *r;
} dropout_state;

static double dropout_objective(void *p)
{
    dropout_state *s = p;
    nncl__ref_dropout(s->y, s->x, s->n, s->p, s->scale, s->key);
    return project(s->r, s->y, s->n);
}

static void dropout_case(double p, uint64_t seed)
{
    const int64_t n = 64;
    const nncl_rng_key key = {.seed = 1234, .step = 7, .layer = 2};
    dropout_state s = {n, p, 1.0 / (1.0 - p), key, gc_alloc(n), gc_alloc(n), gc_alloc(n)};
    double *dx = gc_alloc(n), *ones = gc_alloc(n), *mask = gc_alloc(n);
    test_rng r = test_rng_seed(seed);
    fill_uniform(&r, s.x, n, -1.0, 1.0);
    fill_uniform(&r, s.r, n, -1.0, 1.0);
    /* The mask must be non-trivial for p > 0 and all ones for p = 0, or the case proves little. */
    for (int64_t i = 0; i < n; i++) ones[i] = 1.0;
    nncl__ref_dropout(mask, ones, n, p, s.scale, key);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) kept += mask[i] != 0.0;
    if (p > 0.0) assert_true(kept > 0 && kept < n);
    else assert_int_equal(kept, n);
    /* The backward of dropout is dropout of dy with the same key. Being linear and diagonal, the check holds
       for any mask values: those (0 or exactly 1 / (1 - p)) and the layer's use of its forward's key are
       checked in test_layers. */
    nncl__ref_dropout(dx, s.r, n, p, s.scale, key);
    const gc_grad grads[] = {{"x", s.x, n, dx}};
    char label[96];
    snprintf(label, sizeof label, "dropout p=%g (%lld of %lld kept)", p, (long long)kept, (long long)n);
    gc_check(label, dropout_objective, &s, grads, 1);
    free(s.x); free(s.y); free(s.r); free(dx); free(ones); free(mask);
}

static void test_dropout(void **state)
{
    (void)state;
    dropout_case(0.3, 600);
    dropout_case(0.0, 601);
}

/* ---- batch norm ---- */

typedef struct bn_state {
    nncl_bn_geom g;
    double *x, *gamma, *beta, *r, *y;
    double *running_mean, *running_var;  /* the fixed running statistics */
    double *scratch_mean, *scratch_var;  /* copies that forward_train may update */
    double *batch_mean, *batch_invstd;   /* written by forward_train */
} bn_state;

static int64_t bn_numel(const nncl_bn_geom *g)
{
    return g->n * g->c * g->inner;
}

static double bn_train_objective(void *p)
{
    bn_state *s = p;
    /* forward_train updates the running statistics in place: give it fresh copies every time. */
    memcpy(s->scratch_mean, s->running_mean, sizeof(double) * (size_t)s->g.c);
    memcpy(s->scratch_var, s->running_var, sizeof(double) * (size_t)s->g.c);
    nncl__ref_batchnorm_forward_train(s->y, s->batch_mean, s->batch_invstd, s->scratch_mean, s->scratch_var, s->x,
                                      s->gamma, s->beta, &s->g);
    return project(s->r, s->y, bn_numel(&s->g));
}

static double bn_eval_objective(void *p)
{
    bn_state *s = p;
    nncl__ref_batchnorm_forward_eval(s->y, s->x, s->running_mean, s->running_var, s->gamma, s->beta, &s->g);
    return project(s->r, s->y, bn_numel(&s->g));
}

static void bn_case(int64_t n, int64_t c, int64_t inner, int train, uint64_t seed)
{
    bn_state s = {.g = {.n = n, .c = c, .inner = inner, .momentum = 0.1f, .eps = 1e-5f}};
    const int64_t nx = bn_numel(&s.g);
    s.x = gc_alloc(nx), s.r = gc_alloc(nx), s.y = gc_alloc(nx);
    s.gamma = gc_alloc(c), s.beta = gc_alloc(c), s.running_mean = gc_alloc(c), s.running_var = gc_alloc(c);
    s.scratch_mean = gc_alloc(c), s.scratch_var = gc_alloc(c), s.batch_mean = gc_alloc(c);
    s.batch_invstd = gc_alloc(c);
    double *dx = gc_alloc(nx), *dgamma = gc_alloc(c), *dbeta = gc_alloc(c), *invstd = gc_alloc(c);
    test_rng r = test_rng_seed(seed);
    fill_uniform(&r, s.x, nx, -2.0, 2.0);
    fill_uniform(&r, s.r, nx, -1.0, 1.0);
    fill_uniform(&r, s.gamma, c, -1.5, 1.5);
    fill_uniform(&r, s.beta, c, -1.0, 1.0);
    fill_uniform(&r, s.running_mean, c, -0.5, 0.5);
    fill_uniform(&r, s.running_var, c, 0.5, 2.0);
    for (int64_t i = 0; i < nx; i++) dx[i] = NAN;
    if (train) {
        /* The backward takes the batch statistics of the forward. */
        bn_train_objective(&s);
        nncl__ref_batchnorm_backward(dx, dgamma, dbeta, s.r, s.x, s.batch_mean, s.batch_invstd, s.gamma, &s.g, 1);
    } else {
        /* Evaluation: mean = running_mean, invstd = 1 / sqrt(running_var + eps). */
        for (int64_t k = 0; k < c; k++) invstd[k] = 1.0 / sqrt(s.running_var[k] + (double)s.g.eps);
        nncl__ref_batchnorm_backward(dx, dgamma, dbeta, s.r, s.x, s.running_mean, invstd, s.gamma, &s.g, 0);
    }
    const gc_grad grads[] = {{"x", s.x, nx, dx}, {"gamma", s.gamma, c, dgamma}, {"beta", s.beta, c, dbeta}};
    char label[96];
    snprintf(label, sizeof label, "batchnorm %s n=%lld c=%lld inner=%lld", train ? "train" : "eval", (long long)n,
             (long long)c, (long long)inner);
    gc_check(label, train ? bn_train_objective : bn_eval_objective, &s, grads, 3);
    double *all[] = {s.x, s.gamma, s.beta, s.r, s.y, s.running_mean, s.running_var, s.scratch_mean,
                     s.scratch_var, s.batch_mean, s.batch_invstd, dx, dgamma, dbeta, invstd};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

static void test_batchnorm(void **state)
{
    (void)state;
    bn_case(4, 3, 1, 1, 700);
    bn_case(2, 3, 5, 1, 701);
    bn_case(4, 3, 1, 0, 702);
    bn_case(2, 3, 5, 0, 703);
}

/* ---- layer norm ---- */

typedef struct ln_state {
    int64_t rows, cols;
    double eps;
    double *x, *gamma, *beta, *r, *y, *mean, *rstd; /* gamma and beta may be NULL */
} ln_state;

static double ln_objective(void *p)
{
    ln_state *s = p;
    nncl__ref_layernorm_forward(s->y, s->mean, s->rstd, s->x, s->gamma, s->beta, s->rows, s->cols, s->eps);
    return project(s->r, s->y, s->rows * s->cols);
}

static void ln_case(int64_t rows, int64_t cols, int with_gamma, int with_beta, uint64_t seed)
{
    const int64_t n = rows * cols;
    ln_state s = {rows, cols, 1e-5, gc_alloc(n), with_gamma ? gc_alloc(cols) : NULL,
                  with_beta ? gc_alloc(cols) : NULL, gc_alloc(n), gc_alloc(n), gc_alloc(rows), gc_alloc(rows)};
    double *dx = gc_alloc(n);
    double *dgamma = with_gamma ? gc_alloc(cols) : NULL, *dbeta = with_beta ? gc_alloc(cols) : NULL;
    test_rng r = test_rng_seed(seed);
    fill_uniform(&r, s.x, n, -2.0, 2.0);
    fill_uniform(&r, s.r, n, -1.0, 1.0);
    if (s.gamma) fill_uniform(&r, s.gamma, cols, -1.5, 1.5);
    if (s.beta) fill_uniform(&r, s.beta, cols, -1.0, 1.0);
    for (int64_t i = 0; i < n; i++) dx[i] = NAN;
    ln_objective(&s); /* the backward takes the row statistics of the forward */
    nncl__ref_layernorm_backward(dx, dgamma, dbeta, s.r, s.x, s.mean, s.rstd, s.gamma, rows, cols);
    gc_grad grads[3] = {{"x", s.x, n, dx}};
    int ng = 1;
    if (with_gamma) grads[ng++] = (gc_grad){"gamma", s.gamma, cols, dgamma};
    if (with_beta) grads[ng++] = (gc_grad){"beta", s.beta, cols, dbeta};
    char label[96];
    snprintf(label, sizeof label, "layernorm %lldx%lld %s", (long long)rows, (long long)cols,
             with_gamma && with_beta ? "affine" : with_gamma ? "gamma only" : "no affine");
    gc_check(label, ln_objective, &s, grads, ng);
    free(s.x); free(s.gamma); free(s.beta); free(s.r); free(s.y); free(s.mean); free(s.rstd);
    free(dx); free(dgamma); free(dbeta);
}

static void test_layernorm(void **state)
{
    (void)state;
    ln_case(3, 4, 1, 1, 800);
    ln_case(3, 4, 0, 0, 801);
    ln_case(2, 10, 1, 1, 802);
    ln_case(2, 10, 0, 0, 803);
    ln_case(3, 4, 1, 0, 804);
}

/* ---- losses ---- */

typedef struct loss_state {
    nncl_loss_kind kind;
    int64_t n, c;
    double smoothing;
    double *input, *target, *work;
} loss_state;

static double loss_objective(void *p)
{
    loss_state *s = p;
    return nncl__ref_loss_forward(s->kind, s->work, s->input, s->target, s->n, s->c, s->smoothing);
}

static void loss_case(const char *name, nncl_loss_kind kind, int64_t n, int64_t c, double smoothing, double range,
                      uint64_t seed)
{
    const int per_class = kind == NNCL_LOSS_CROSS_ENTROPY || kind == NNCL_LOSS_NLL;
    const int64_t nt = per_class ? n : n * c;
    loss_state s = {kind, n, c, smoothing, gc_alloc(n * c), gc_alloc(nt), gc_alloc(n)};
    double *dx = gc_alloc(n * c);
    test_rng r = test_rng_seed(seed);
    fill_uniform(&r, s.input, n * c, -range, range);
    if (per_class)
        for (int64_t i = 0; i < n; i++) s.target[i] = (double)test_rng_below(&r, c); /* class indices */
    else if (kind == NNCL_LOSS_BCE_WITH_LOGITS)
        fill_uniform(&r, s.target, nt, 0.0, 1.0); /* probabilities */
    else
        fill_uniform(&r, s.target, nt, -range, range);
    for (int64_t i = 0; i < n * c; i++) dx[i] = NAN;
    nncl__ref_loss_backward(kind, dx, s.input, s.target, n, c, smoothing);
    const gc_grad grads[] = {{"input", s.input, n * c, dx}};
    char label[96];
    snprintf(label, sizeof label, "loss %s %lldx%lld", name, (long long)n, (long long)c);
    gc_check(label, loss_objective, &s, grads, 1);
    free(s.input); free(s.target); free(s.work); free(dx);
}

static void test_losses(void **state)
{
    (void)state;
    loss_case("mse", NNCL_LOSS_MSE, 4, 5, 0.0, 2.0, 900);
    loss_case("bce_with_logits", NNCL_LOSS_BCE_WITH_LOGITS, 4, 5, 0.0, 4.0, 901);
    loss_case("cross_entropy smoothing 0", NNCL_LOSS_CROSS_ENTROPY, 4, 5, 0.0, 3.0, 902);
    loss_case("cross_entropy smoothing 0.1", NNCL_LOSS_CROSS_ENTROPY, 4, 5, 0.1, 3.0, 903);
    loss_case("cross_entropy smoothing 0.1 large logits", NNCL_LOSS_CROSS_ENTROPY, 3, 4, 0.1, 30.0, 904);
    loss_case("nll", NNCL_LOSS_NLL, 4, 5, 0.0, 3.0, 905);
}

/* ---- the harness itself ---- */

/*
 * The checker must be able to fail. The relu gradient scaled by 1.01 is wrong
 * by 1% on every positive input, ten times rtol: gc_compare must flag every
 * such entry whose gradient is large enough to clear atol, while the exact
 * gradient passes. A single entry off by 1e-2 must be flagged alone, at its
 * index.
 */
static void test_checker_detects_wrong_gradients(void **state)
{
    (void)state;
    const int64_t n = 40;
    act_state s = act_setup(NNCL_ACT_RELU, 0.0, n, 400);
    double *dx = gc_alloc(n);
    nncl__ref_activation_backward(dx, s.x, s.r, n, NNCL_ACT_RELU, 0.0);
    const gc_grad grads[] = {{"x", s.x, n, dx}};

    gc_result right = gc_compare(act_objective, &s, grads, 1);
    assert_int_equal(right.entries, n);
    assert_int_equal(right.bad, 0);

    /* The error is 0.01 |r| against a bound of 1e-5 + 1e-3 |r|: it exceeds the
       bound when |r| > 1e-5 / 0.009 (counted here with a 1% margin). */
    int64_t expected = 0;
    for (int64_t i = 0; i < n; i++) {
        if (s.x[i] > 0.0 && fabs(s.r[i]) > 1e-5 / 0.009 * 1.01) expected++;
        dx[i] *= 1.01;
    }
    assert_true(expected > 0);
    gc_result scaled = gc_compare(act_objective, &s, grads, 1);
    printf("gradcheck sanity: relu gradient * 1.01 flags %lld of %lld entries (%lld expected at least), worst ratio "
           "%.3g\n",
           (long long)scaled.bad, (long long)n, (long long)expected, scaled.worst_ratio);
    assert_true(scaled.bad >= expected);
    assert_true(scaled.worst_ratio > 1.0);

    /* The numeric gradient of entry 17 is r[17] or 0, |r| < 1, so its bound is below 1e-5 + 1e-3 < 1e-2. */
    nncl__ref_activation_backward(dx, s.x, s.r, n, NNCL_ACT_RELU, 0.0);
    dx[17] += 1e-2;
    gc_result one = gc_compare(act_objective, &s, grads, 1);
    assert_int_equal(one.bad, 1);
    assert_int_equal(one.worst_index, 17);
    assert_string_equal(one.worst_name, "x");
    free(s.x); free(s.y); free(s.r); free(dx);
}

/*
 * The linear layer itself, through the public API on the CPU backend. Its
 * passes are GEMMs, for which test_linear substitutes the test's own loops,
 * so this is what checks the products the layer asks for (a transposition,
 * the bias gradient). The objective sum(r * y) is linear in x, W and b, so
 * central differences with a step of 0.5 are exact up to float32 rounding:
 * |analytic - numeric| <= 1e-4 + 1e-3 |numeric|, every entry.
 */
static double linear_layer_objective(nncl_context *c, nncl_layer *l, const nncl_tensor *x, nncl_tensor *y,
                                     const float *r, float *out, size_t ny)
{
    TEST_OK(c, nncl_layer_forward(l, NNCL_TRAIN, x, y));
    TEST_OK(c, nncl_tensor_read(c, y, out, ny));
    double sum = 0.0;
    for (size_t i = 0; i < ny; i++) sum += (double)r[i] * out[i];
    return sum;
}

static void test_linear_layer(void **state)
{
    (void)state;
    enum { N = 3, IN = 7, OUT = 5 };
    const double h = 0.5, atol = 1e-4, rtol = 1e-3;
    nncl_context *c = test_context("cpu");
    nncl_layer *l;
    TEST_OK(c, nncl_linear_create(c, IN, OUT, 1, &l));
    TEST_OK(c, nncl_layer_reset_parameters(l, 42, 0));
    const int64_t xs[2] = {N, IN}, ys[2] = {N, OUT};
    nncl_tensor x, y, dy, dx;
    TEST_OK(c, nncl_tensor_create(c, 2, xs, &x));
    TEST_OK(c, nncl_tensor_create(c, 2, xs, &dx));
    TEST_OK(c, nncl_tensor_create(c, 2, ys, &y));
    TEST_OK(c, nncl_tensor_create(c, 2, ys, &dy));
    float hx[N * IN], r[N * OUT], out[N * OUT];
    test_rng rng = test_rng_seed(321);
    test_rng_fill(&rng, hx, N * IN, -1.0f, 1.0f);
    test_rng_fill(&rng, r, N * OUT, -1.0f, 1.0f);
    TEST_OK(c, nncl_tensor_write(c, &x, hx, N * IN));
    TEST_OK(c, nncl_tensor_write(c, &dy, r, N * OUT));
    TEST_OK(c, nncl_layer_forward(l, NNCL_TRAIN, &x, &y));
    TEST_OK(c, nncl_layer_zero_grad(l));
    TEST_OK(c, nncl_layer_backward(l, &x, &y, &dy, &dx));

    struct {
        const char *name;
        nncl_tensor value, grad;
    } v[3] = {{"x", x, dx}};
    for (size_t p = 0; p < 2; p++) TEST_OK(c, nncl_layer_param(l, p, &v[p + 1].name, &v[p + 1].value, &v[p + 1].grad));
    int checked = 0;
    double worst = 0.0;
    for (size_t k = 0; k < 3; k++) {
        const size_t count = (size_t)nncl_tensor_numel(&v[k].value);
        float *val = malloc(sizeof(float) * count), *analytic = malloc(sizeof(float) * count);
        assert_true(val && analytic);
        TEST_OK(c, nncl_tensor_read(c, &v[k].value, val, count));
        TEST_OK(c, nncl_tensor_read(c, &v[k].grad, analytic, count));
        for (size_t i = 0; i < count; i++) {
            const float saved = val[i];
            val[i] = saved + (float)h;
            TEST_OK(c, nncl_tensor_write(c, &v[k].value, val, count));
            const double plus = linear_layer_objective(c, l, &x, &y, r, out, N * OUT);
            val[i] = saved - (float)h;
            TEST_OK(c, nncl_tensor_write(c, &v[k].value, val, count));
            const double minus = linear_layer_objective(c, l, &x, &y, r, out, N * OUT);
            val[i] = saved;
            TEST_OK(c, nncl_tensor_write(c, &v[k].value, val, count));
            const double numeric = (plus - minus) / (2.0 * h);
            if (fabs(analytic[i] - numeric) > atol + rtol * fabs(numeric))
                fail_msg("linear layer: d/d%s[%zu]: analytic %.7g, numeric %.7g", v[k].name, i, (double)analytic[i],
                         numeric);
            worst = fmax(worst, fabs(analytic[i] - numeric));
            checked++;
        }
        free(val), free(analytic);
    }
    printf("gradcheck linear layer (CPU backend, float32): %d entries of dx, dW and db, max |a-n| = %.2g\n", checked,
           worst);
    nncl_tensor_destroy(c, &x), nncl_tensor_destroy(c, &dx), nncl_tensor_destroy(c, &y), nncl_tensor_destroy(c, &dy);
    TEST_OK(c, nncl_layer_destroy(l));
    nncl_context_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker_detects_wrong_gradients),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_linear_layer),
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_pool2d),
        cmocka_unit_test(test_relu_maxpool),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_losses),
    };
    int failed = cmocka_run_group_tests_name("gradient checks (reference backward vs finite differences)", tests,
                                             NULL, NULL);
    printf("gradcheck: %d cases, %lld entries, worst |a-n| / (%g + %g |n|) = %.3g\n", n_cases,
           (long long)total_entries, GC_ATOL, GC_RTOL, worst_ratio);
    return failed;
}
