/*
 * test_blas1.c - fill, scale, axpy, sum, the norm and the optimizer step:
 * OpenCL against the CPU reference.
 *
 * Sizes are the awkward ones (1, 7, 31, 32, 33, 63, 64, 65, 93) plus large and
 * seeded random ones, at non-zero offsets inside guarded buffers.
 * Tolerances (u = 2^-24, gamma(k) = k u / (1 - k u)):
 *   fill, scale, axpy: bit for bit (one rounding each; axpy uses fma on both).
 *   sum: |s_cl - s_ref| <= gamma(n) * sum |x_i|, the forward error bound of a
 *        float32 sum of n terms in any order (the reference sums in double).
 *   norm (||x||_2 of gradient clipping, ctx->ops->norm2):
 *        |n_cl - n_ref| <= (gamma(k) / 2 + gamma(P) / 2 + 16 u) ||x||, with
 *        P = 1024 partial norms of k = ceil(n / P) terms each. A partial sums
 *        k squares (x / m)^2 <= 1, each within 6 u (a division of 2.5 ulp,
 *        squared, rounded), in float: within gamma(k) + 6 u; its sqrt (3 ulp)
 *        halves that and adds 3 u, the product with m u more. The finish does
 *        the same over P partials, and the reference rounds its double norm
 *        once (u). Also at magnitudes of 1e30 and 1e-30, where the squares
 *        overflow or vanish in float, and with inf or NaN, which it returns;
 *        and a clipped step of a gradient of norm 5e19 (within 1e-6).
 *   optimizer step (ctx->ops->optimizer_step: SGD plain, with weight decay,
 *        momentum with dampening and nesterov; Adam with and without weight
 *        decay; AdamW; each without clipping and with max_norm below and above
 *        the gradient norm, which each backend computes itself): not bit
 *        for bit, as the reference computes in double and rounds each result
 *        once, while the kernel rounds every operation to float (and OpenCL
 *        allows 3 ulp in sqrt and 2.5 ulp in a division). Per element,
 *        |cl - ref| <= (64 u + 2 kappa) * M, where M is the sum of the
 *        magnitudes of the terms that make the value and kappa the relative
 *        difference of the two clipping factors (see optim_magnitudes). Each
 *        step starts both backends from the same state (see optim_case).
 */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h" /* ctx->ops: norm2 and optimizer_step have no public entry */

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

/* Runs sum (norm = 0, the public nncl_sum) or the norm (norm = 1, the backend's norm2) of x on ctx. */
static float reduce_on(nncl_context *ctx, const float *x, int64_t n, int norm)
{
    const int64_t one = 1;
    test_guarded gx, gs;
    test_guarded_create(ctx, &gx, 1, &n, x);
    test_guarded_create(ctx, &gs, 1, &one, NULL);
    if (norm) TEST_OK(ctx, ctx->ops->norm2(ctx, &gs.view, &gx.view));
    else TEST_OK(ctx, nncl_sum(ctx, &gx.view, &gs.view));
    float result;
    test_guarded_read(ctx, &gs, &result, norm ? "norm" : "sum");
    test_guarded_destroy(ctx, &gx);
    test_guarded_destroy(ctx, &gs);
    return result;
}

/* Fails unless the OpenCL sum (or norm) got of x is within the header's bound of the reference's, want. */
static void assert_reduction_bound(const float *x, int64_t n, int norm, float got, float want, const char *what)
{
    const double u = 0x1p-24, parts = 1024.0;
    double mag = 0.0, bound;
    for (int64_t i = 0; i < n; i++) mag += norm ? (double)x[i] * x[i] : fabs(x[i]);
    if (norm) bound = (gamma_n(ceil((double)n / parts)) / 2.0 + gamma_n(parts) / 2.0 + 16.0 * u) * sqrt(mag);
    else bound = gamma_n((double)n) * mag;
    if (!isfinite((double)want) || !isfinite((double)got)) { /* inf or NaN: the same on both */
        if (!(got == want || (isnan(got) && isnan(want))))
            fail_msg("%s: OpenCL %.9g, reference %.9g", what, (double)got, (double)want);
        return;
    }
    bound += 1e-300; /* an exact 0 against an exact 0 */
    const double err = fabs((double)got - (double)want);
    if (!(err <= bound))
        fail_msg("%s: OpenCL %.9g, reference %.9g, error %.3g > bound %.3g", what, (double)got, (double)want, err,
                 bound);
}

/* A reduction of n values in [lo, hi); special, unless 0, replaces the element in the middle. */
static void reduce_case(int norm, int64_t n, float lo, float hi, uint64_t seed, float special)
{
    float *x = malloc(sizeof(float) * (size_t)n);
    test_rng r = test_rng_seed(seed);
    test_rng_fill(&r, x, (size_t)n, lo, hi);
    if (special != 0.0f) x[n / 2] = special;
    const float want = reduce_on(cpu, x, n, norm), got = reduce_on(ocl, x, n, norm);
    char what[128], with[32] = "";
    if (special != 0.0f) snprintf(with, sizeof with, " with %g", (double)special);
    snprintf(what, sizeof what, "%s n=%lld in [%g, %g)%s", norm ? "norm" : "sum", (long long)n, (double)lo,
             (double)hi, with);
    assert_reduction_bound(x, n, norm, got, want, what);
    free(x);
}

static void test_sum(void **state)
{
    (void)state;
    for (int i = 0; i < N_CASES; i++) {
        reduce_case(0, case_size(i), -1.0f, 1.0f, 40 + i, 0.0f); /* cancelling */
        reduce_case(0, case_size(i), 0.0f, 100.0f, 60 + i, 0.0f); /* all positive */
    }
}

static void test_norm(void **state)
{
    (void)state;
    for (int i = 0; i < N_CASES; i++) {
        const int64_t n = case_size(i);
        reduce_case(1, n, -1.0f, 1.0f, 140 + i, 0.0f);
        reduce_case(1, n, -100.0f, 100.0f, 160 + i, 0.0f); /* squares up to 10^4 */
        reduce_case(1, n, -1e30f, 1e30f, 180 + i, 0.0f);   /* squares overflow a float */
        reduce_case(1, n, -1e-30f, 1e-30f, 200 + i, 0.0f); /* squares vanish in a float */
        reduce_case(1, n, -1.0f, 1.0f, 240 + i, INFINITY);
        reduce_case(1, n, -1.0f, 1.0f, 260 + i, NAN);
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

/* ---- the optimizer step ---- */

typedef struct optim_config {
    const char *name;
    nncl_optimizer_kind kind;
    float lr, momentum, dampening, weight_decay;
    int nesterov;
    float beta1, beta2, eps;
} optim_config;

static const optim_config OPTIMS[] = {
    {"sgd", NNCL_OPT_SGD, 0.1f, 0.0f, 0.0f, 0.0f, 0, 0.0f, 0.0f, 0.0f},
    {"sgd weight decay", NNCL_OPT_SGD, 0.05f, 0.0f, 0.0f, 0.01f, 0, 0.0f, 0.0f, 0.0f},
    {"sgd momentum dampening weight decay", NNCL_OPT_SGD, 0.1f, 0.9f, 0.25f, 1e-3f, 0, 0.0f, 0.0f, 0.0f},
    {"sgd nesterov weight decay", NNCL_OPT_SGD, 0.1f, 0.9f, 0.0f, 5e-3f, 1, 0.0f, 0.0f, 0.0f},
    {"adam", NNCL_OPT_ADAM, 1e-3f, 0.0f, 0.0f, 0.0f, 0, 0.9f, 0.999f, 1e-8f},
    /* eps large enough to weigh in the denominator */
    {"adam weight decay", NNCL_OPT_ADAM, 1e-2f, 0.0f, 0.0f, 0.01f, 0, 0.8f, 0.99f, 1e-3f},
    {"adamw", NNCL_OPT_ADAMW, 1e-2f, 0.0f, 0.0f, 0.05f, 0, 0.9f, 0.999f, 1e-8f},
};
#define N_OPTIMS ((int)(sizeof OPTIMS / sizeof OPTIMS[0]))

/* Clipping: none, max_norm half the gradient's norm (factor about 0.5), twice it (factor 1). */
enum { CLIP_NONE, CLIP_BELOW, CLIP_ABOVE, N_CLIPS };
static const char *const CLIP_NAMES[N_CLIPS] = {"no clipping", "clipped", "max_norm above the norm"};

#define OPTIM_STEPS 3  /* the first step, then two that read the state the previous one left */
#define OPTIM_ULPS 64  /* the bound's multiple of u: see optim_magnitudes */

/*
 * The magnitudes M of one element's results (parameter mp, states m1 and m2):
 * the formulas of cpu_optim.c with every term replaced by its absolute value,
 * clip being the reference's clipping factor. Each of the float operations
 * of the kernel errs by at most u (sqrt 6 u and a division 5 u, OpenCL 1.2's
 * limits) of a quantity whose magnitude is part of M, and the errors of the
 * inputs of an operation carry through it scaled by at most the same terms:
 * along the longest chain (Adam with clipping: the clipping factor, g, m, v,
 * sqrt, the denominator, the quotient, p) they add up to about 50 u M, below
 * 64 u M. Adam's denominator sqrt(v) / bc2_sqrt + eps errs relatively by
 * half as much as v plus a few u, and v by at most 64 u V (V: v's magnitude,
 * which exceeds v where weight decay cancels part of the gradient), that is
 * 64 u V / v relatively: hence the term |m| V / v next to m's own magnitude
 * in the parameter's. The clipping factors differ by kappa relatively: g
 * and m scale with it, v with its square, so the update moves by at most
 * 2 kappa M.
 */
static void optim_magnitudes(const nncl_optim_args *a, double clip, double w, double g, double s1, double s2,
                             double *mp, double *m1, double *m2)
{
    if (a->kind == NNCL_OPT_SGD) {
        const double d = fabs(g) * clip + fabs((double)a->weight_decay * w);
        double buf = d, dir = d;
        if (a->momentum != 0.0f) {
            if (!a->first_step) buf = fabs((double)a->momentum * s1) + fabs(1.0 - (double)a->dampening) * d;
            dir = a->nesterov ? d + fabs((double)a->momentum) * buf : buf;
        }
        *mp = fabs(w) + (double)a->lr * dir;
        *m1 = buf;
        *m2 = 0.0;
        return;
    }
    const double wd = a->kind == NNCL_OPT_ADAM ? (double)a->weight_decay : 0.0; /* AdamW: not on the gradient */
    const double gi = g * clip + wd * w, big_g = fabs(g) * clip + fabs(wd * w);
    const double b1 = a->beta1, b2 = a->beta2;
    const double m = b1 * s1 + (1.0 - b1) * gi, big_m = b1 * fabs(s1) + (1.0 - b1) * big_g;
    const double v = b2 * s2 + (1.0 - b2) * gi * gi, big_v = b2 * s2 + (1.0 - b2) * big_g * big_g;
    const double den = sqrt(v) / a->bc2_sqrt + a->eps;
    *mp = fabs(w) + (double)a->step_size * (big_m + fabs(m) * big_v / v) / den;
    *m1 = big_m;
    *m2 = big_v;
}

/* The clipping factor, as the reference computes it from a backend's norm. */
static double clip_factor(float max_norm, float norm)
{
    if (!(max_norm > 0.0f)) return 1.0;
    const double c = max_norm / ((double)norm + 1e-6);
    return c < 1.0 ? c : 1.0;
}

static double optim_worst; /* the largest |cl - ref| / bound seen, for the summary */

/*
 * One configuration on n elements for OPTIM_STEPS steps. Each step starts both
 * backends from the reference's p, s1 and s2 after the step before (written
 * into the same guarded views), so that the bound is that of one step, not
 * grown over steps, and the kernel's state after a step is compared too.
 * States the configuration does not use must stay bit for bit as they were.
 */
static void optim_case(const optim_config *oc, int clip, int64_t n, uint64_t seed)
{
    const size_t sz = sizeof(float) * (size_t)n;
    float *host[4], *out[2][3]; /* host: p, g, s1, s2 (each step's inputs); out: p, s1, s2 of each backend */
    for (int k = 0; k < 4; k++) assert_non_null(host[k] = malloc(sz));
    for (int side = 0; side < 2; side++)
        for (int k = 0; k < 3; k++) assert_non_null(out[side][k] = malloc(sz));
    float *p = host[0], *g = host[1], *s1 = host[2], *s2 = host[3];
    test_rng r = test_rng_seed(seed);
    test_rng_fill(&r, p, (size_t)n, -1.0f, 1.0f);
    test_rng_fill(&r, s1, (size_t)n, -1.0f, 1.0f); /* SGD's first step must not read it */
    test_rng_fill(&r, s2, (size_t)n, 0.01f, 1.0f); /* a second moment: positive */
    nncl_context *ctxs[2] = {cpu, ocl};
    test_guarded t[2][5]; /* p, g, s1, s2, norm */
    const int64_t one = 1;
    for (int side = 0; side < 2; side++) {
        for (int k = 0; k < 4; k++) test_guarded_create(ctxs[side], &t[side][k], 1, &n, NULL);
        test_guarded_create(ctxs[side], &t[side][4], 1, &one, NULL);
    }
    const int uses_s1 = oc->kind != NNCL_OPT_SGD || oc->momentum != 0.0f, uses_s2 = oc->kind != NNCL_OPT_SGD;
    for (int step = 1; step <= OPTIM_STEPS; step++) {
        test_rng_fill(&r, g, (size_t)n, -1.0f, 1.0f);
        double norm2 = 0.0;
        for (int64_t i = 0; i < n; i++) norm2 += (double)g[i] * g[i];
        const float max_norm = clip == CLIP_NONE ? 0.0f : (float)((clip == CLIP_BELOW ? 0.5 : 2.0) * sqrt(norm2));
        /* The network's arguments for step t (network.c). */
        const double t1 = step;
        nncl_optim_args a = {
            .kind = oc->kind, .lr = oc->lr, .momentum = oc->momentum, .dampening = oc->dampening,
            .weight_decay = oc->weight_decay, .nesterov = oc->nesterov, .first_step = step == 1,
            .beta1 = oc->beta1, .beta2 = oc->beta2, .eps = oc->eps,
            .step_size = (float)(oc->lr / (1.0 - pow((double)oc->beta1, t1))),
            .bc2_sqrt = (float)sqrt(1.0 - pow((double)oc->beta2, t1)),
            .max_norm = max_norm,
        };
        float norm[2] = {0.0f, 0.0f};
        char what[192];
        snprintf(what, sizeof what, "optimizer %s, %s, n=%lld, step %d", oc->name, CLIP_NAMES[clip], (long long)n,
                 step);
        for (int side = 0; side < 2; side++) {
            nncl_context *ctx = ctxs[side];
            test_guarded *ts = t[side];
            for (int k = 0; k < 4; k++) TEST_OK(ctx, nncl_tensor_write(ctx, &ts[k].view, host[k], (size_t)n));
            a.norm = &ts[4].view;
            if (max_norm > 0.0f) TEST_OK(ctx, ctx->ops->norm2(ctx, &ts[4].view, &ts[1].view));
            TEST_OK(ctx, ctx->ops->optimizer_step(ctx, &ts[0].view, &ts[1].view, &ts[2].view, &ts[3].view, &a));
            test_guarded_read(ctx, &ts[0], out[side][0], what);
            test_guarded_read(ctx, &ts[2], out[side][1], what);
            test_guarded_read(ctx, &ts[3], out[side][2], what);
            test_guarded_read(ctx, &ts[4], &norm[side], what);
        }
        if (max_norm > 0.0f) {
            char part[224];
            snprintf(part, sizeof part, "%s: the gradient's norm", what);
            assert_reduction_bound(g, n, 1, norm[1], norm[0], part);
        }
        const double clip_ref = clip_factor(max_norm, norm[0]), clip_cl = clip_factor(max_norm, norm[1]);
        const double kappa = fabs(clip_cl - clip_ref) / clip_ref, tol = OPTIM_ULPS * 0x1p-24 + 2.0 * kappa;
        static const char *const names[3] = {"p", "s1", "s2"};
        const int used[3] = {1, uses_s1, uses_s2};
        for (int k = 1; k < 3; k++) { /* the states the configuration does not use */
            if (used[k]) continue;
            char part[256];
            snprintf(part, sizeof part, "%s: %s, unused, stays as it was", what, names[k]);
            for (int side = 0; side < 2; side++) test_assert_bitwise(out[side][k], host[k + 1], (size_t)n, part);
        }
        for (int64_t i = 0; i < n; i++) {
            double mag[3];
            optim_magnitudes(&a, clip_ref, p[i], g[i], s1[i], s2[i], &mag[0], &mag[1], &mag[2]);
            for (int k = 0; k < 3; k++) {
                if (!used[k]) continue;
                const double err = fabs((double)out[1][k][i] - (double)out[0][k][i]);
                if (!(err <= tol * mag[k]))
                    fail_msg("%s: %s[%lld] OpenCL %.9g, reference %.9g, |difference| %.3g > bound %.3g "
                             "(M = %.3g, kappa = %.3g)",
                             what, names[k], (long long)i, (double)out[1][k][i], (double)out[0][k][i], err,
                             tol * mag[k], mag[k], kappa);
                if (mag[k] > 0.0 && err / (tol * mag[k]) > optim_worst) optim_worst = err / (tol * mag[k]);
            }
        }
        memcpy(p, out[0][0], sz); /* the next step starts from the reference's result */
        memcpy(s1, out[0][1], sz);
        memcpy(s2, out[0][2], sz);
    }
    for (int side = 0; side < 2; side++)
        for (int k = 0; k < 5; k++) test_guarded_destroy(ctxs[side], &t[side][k]);
    for (int k = 0; k < 4; k++) free(host[k]);
    for (int side = 0; side < 2; side++)
        for (int k = 0; k < 3; k++) free(out[side][k]);
}

static void test_optimizer_step(void **state)
{
    (void)state;
    for (int o = 0; o < N_OPTIMS; o++)
        for (int clip = 0; clip < N_CLIPS; clip++)
            for (int i = 0; i < N_CASES; i++) optim_case(&OPTIMS[o], clip, case_size(i), 1000u * o + 100u * clip + i);
    print_message("optimizer step: %d configurations x %d clippings x %d sizes x %d steps, worst |cl - ref| = %.3g "
                  "of the bound (%d u + 2 kappa) M\n",
                  N_OPTIMS, N_CLIPS, N_CASES, OPTIM_STEPS, optim_worst, OPTIM_ULPS);
}

/*
 * Clipping a gradient whose norm, 5e19, is finite but whose squared norm is
 * not: SGD (lr 0.1, max_norm 1) moves p by 0.1 g / ||g|| = (0.06, 0.08, 0)
 * on both backends, within 1e-6. A float sum of squares made the norm inf
 * and the clipping factor 0, so the step left p as it was.
 */
static void test_clip_huge_gradient(void **state)
{
    (void)state;
    const float p0[3] = {0.5f, -0.5f, 0.25f}, g[3] = {3e19f, 4e19f, 0.0f};
    const double want[3] = {0.5 - 0.06, -0.5 - 0.08, 0.25};
    nncl_context *ctxs[2] = {cpu, ocl};
    for (int side = 0; side < 2; side++) {
        nncl_context *ctx = ctxs[side];
        const int64_t three = 3, one = 1;
        nncl_tensor p, tg, norm;
        TEST_OK(ctx, nncl_tensor_create(ctx, 1, &three, &p));
        TEST_OK(ctx, nncl_tensor_create(ctx, 1, &three, &tg));
        TEST_OK(ctx, nncl_tensor_create(ctx, 1, &one, &norm));
        TEST_OK(ctx, nncl_tensor_write(ctx, &p, p0, 3));
        TEST_OK(ctx, nncl_tensor_write(ctx, &tg, g, 3));
        nncl_optim_args a = {.kind = NNCL_OPT_SGD, .lr = 0.1f, .first_step = 1, .max_norm = 1.0f, .norm = &norm};
        TEST_OK(ctx, ctx->ops->norm2(ctx, &norm, &tg));
        TEST_OK(ctx, ctx->ops->optimizer_step(ctx, &p, &tg, NULL, NULL, &a));
        float got[3];
        TEST_OK(ctx, nncl_tensor_read(ctx, &p, got, 3));
        for (int i = 0; i < 3; i++)
            if (!(fabs(got[i] - want[i]) <= 1e-6))
                fail_msg("%s: clipped SGD step of a gradient of norm 5e19, p[%d] = %.9g, expected %.9g",
                         side ? "opencl" : "cpu", i, (double)got[i], want[i]);
        nncl_tensor *all[] = {&p, &tg, &norm};
        for (int i = 0; i < 3; i++) TEST_OK(ctx, nncl_tensor_destroy(ctx, all[i]));
    }
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
        cmocka_unit_test(test_norm),
        cmocka_unit_test(test_clip_huge_gradient),
        cmocka_unit_test(test_optimizer_step),
    };
    int failed = cmocka_run_group_tests_name("blas1 parity (CPU reference vs OpenCL)", tests, NULL, NULL);
    nncl_context_destroy(cpu);
    nncl_context_destroy(ocl);
    return failed;
}
