/*
 * test_gemm.c - GEMM on OpenCL (CLBlast) against the CPU reference.
 *
 * Every case runs C = alpha * op(A) * op(B) + beta * C on both backends from
 * the same seeded inputs, with the matrices at non-zero offsets inside
 * guarded buffers and with leading dimensions larger than the rows they
 * store. Sizes come from {1, 7, 31, 32, 33, 63, 64, 65, 93, 144, 1024}: a
 * cyclic design puts every size in every one of M, N and K for each of the
 * four transpose combinations, and seeded random draws add more.
 *
 * Tolerance, per element (stated once, used by every case): the classical
 * forward error bound of a float32 dot product of length K in any order,
 *     |C_cl - C_ref| <= gamma(K + 3) * (|alpha| * sum_p |A_ip * B_pj| + |beta * C0_ij|),
 * gamma(n) = n u / (1 - n u), u = 2^-24 (K products and sums, alpha, beta, and the
 * rounding of the double reference to float). A correct implementation cannot
 * exceed it; a wrong term, index or transpose exceeds it by orders of magnitude.
 */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h" /* nncl__gemm_epilogue */

static const int64_t SIZES[] = {1, 7, 31, 32, 33, 63, 64, 65, 93, 144, 1024};
#define N_SIZES ((int)(sizeof SIZES / sizeof SIZES[0]))

static nncl_context *cpu, *ocl;
static double worst_ratio; /* largest error / bound seen, reported at the end */
static int n_cases;

typedef struct gemm_case {
    nncl_transpose ta, tb;
    int64_t m, n, k;
    int64_t pad_a, pad_b, pad_c; /* lda = cols + pad */
    float alpha, beta;
    int c_nan;                   /* C starts as NaN (only with beta == 0) */
    int epilogue;                /* nncl__gemm_epilogue: & 1 adds a bias per column, & 2 applies relu,
                                    & 4 zeroes C where a mask (laid out as C, a third of it <= 0) is not > 0 */
} gemm_case;

static double gamma_n(double n)
{
    const double u = 0x1p-24;
    return n * u / (1.0 - n * u);
}

/* Runs one case on both backends and checks results, padding and guards. */
static void run_case(const gemm_case *c, uint64_t seed)
{
    int64_t a_rows = c->ta ? c->k : c->m, a_cols = c->ta ? c->m : c->k;
    int64_t b_rows = c->tb ? c->n : c->k, b_cols = c->tb ? c->k : c->n;
    int64_t lda = a_cols + c->pad_a, ldb = b_cols + c->pad_b, ldc = c->n + c->pad_c;
    int64_t na = a_rows * lda, nb = b_rows * ldb, nc = c->m * ldc;
    char what[176];
    snprintf(what, sizeof what, "gemm %s%s m=%lld n=%lld k=%lld ld=(%lld,%lld,%lld) alpha=%g beta=%g%s%s%s%s",
             c->ta ? "T" : "N", c->tb ? "T" : "N", (long long)c->m, (long long)c->n, (long long)c->k,
             (long long)lda, (long long)ldb, (long long)ldc, (double)c->alpha, (double)c->beta,
             c->c_nan ? " C=NaN" : "", c->epilogue & 1 ? " +bias" : "", c->epilogue & 2 ? " relu" : "",
             c->epilogue & 4 ? " mask" : "");

    float *a = malloc(sizeof(float) * (size_t)na), *b = malloc(sizeof(float) * (size_t)nb);
    float *c0 = malloc(sizeof(float) * (size_t)nc), *got = malloc(sizeof(float) * (size_t)nc);
    float *ref = malloc(sizeof(float) * (size_t)nc), *bias = malloc(sizeof(float) * (size_t)c->n);
    float *mask = malloc(sizeof(float) * (size_t)nc);
    assert_true(a && b && c0 && got && ref && bias && mask);
    test_rng r = test_rng_seed(seed);
    test_rng_fill(&r, a, (size_t)na, -1.0f, 1.0f);
    test_rng_fill(&r, b, (size_t)nb, -1.0f, 1.0f);
    test_rng_fill(&r, c0, (size_t)nc, -1.0f, 1.0f);
    if (c->c_nan)
        for (int64_t i = 0; i < nc; i++) c0[i] = NAN;
    test_rng_fill(&r, bias, (size_t)c->n, -1.0f, 1.0f);
    test_rng_fill(&r, mask, (size_t)nc, -0.5f, 1.0f);
    for (int64_t i = 0; i < nc; i += 7) mask[i] = i % 2 ? -0.0f : NAN; /* not > 0 either */
    int64_t nbias = c->n;

    nncl_context *ctxs[2] = {cpu, ocl};
    float *outs[2] = {ref, got};
    for (int side = 0; side < 2; side++) {
        nncl_context *ctx = ctxs[side];
        test_guarded ga, gb, gc, gbias, gmask;
        test_guarded_create(ctx, &ga, 1, &na, a);
        test_guarded_create(ctx, &gb, 1, &nb, b);
        test_guarded_create(ctx, &gc, 1, &nc, c0);
        test_guarded_create(ctx, &gbias, 1, &nbias, bias);
        test_guarded_create(ctx, &gmask, 1, &nc, mask);
        if (c->epilogue)
            TEST_OK(ctx, nncl__gemm_epilogue(ctx, c->ta, c->tb, c->m, c->n, c->k, c->alpha, &ga.view, lda, &gb.view,
                                             ldb, c->beta, &gc.view, ldc, c->epilogue & 1 ? &gbias.view : NULL,
                                             c->epilogue & 2, c->epilogue & 4 ? &gmask.view : NULL));
        else
            TEST_OK(ctx, nncl_gemm(ctx, c->ta, c->tb, c->m, c->n, c->k, c->alpha, &ga.view, lda, &gb.view, ldb,
                                   c->beta, &gc.view, ldc));
        test_guarded_read(ctx, &gc, outs[side], what);
        test_guarded_destroy(ctx, &ga);
        test_guarded_destroy(ctx, &gb);
        test_guarded_destroy(ctx, &gc);
        test_guarded_destroy(ctx, &gbias);
        test_guarded_destroy(ctx, &gmask);
    }

    for (int64_t i = 0; i < c->m; i++) {
        for (int64_t j = 0; j < ldc; j++) {
            int64_t at = i * ldc + j;
            if (j >= c->n) { /* padding between rows of C: untouched on both sides */
                test_assert_bitwise(&got[at], &c0[at], 1, what);
                test_assert_bitwise(&ref[at], &c0[at], 1, what);
                continue;
            }
            if (c->epilogue & 4 && !(mask[at] > 0.0f)) { /* the relu backward: exactly +0 on both sides */
                const float zero = 0.0f;
                test_assert_bitwise(&got[at], &zero, 1, what);
                test_assert_bitwise(&ref[at], &zero, 1, what);
                continue;
            }
            double mag = 0.0;
            for (int64_t p = 0; p < c->k; p++) {
                double x = c->ta ? a[p * lda + i] : a[i * lda + p];
                double y = c->tb ? b[j * ldb + p] : b[p * ldb + j];
                mag += fabs(x * y);
            }
            double c_old = c->beta == 0.0f ? 0.0 : fabs((double)c->beta * c0[at]);
            /* The epilogue's bias is one more rounded addition (relu is exact and 1-Lipschitz). */
            double b_abs = c->epilogue & 1 ? fabs((double)bias[j]) : 0.0;
            double bound = gamma_n((double)c->k + 4.0) * (fabs((double)c->alpha) * mag + c_old + b_abs) + 1e-30;
            double err = fabs((double)got[at] - (double)ref[at]);
            if (!(err <= bound))
                fail_msg("%s: C[%lld][%lld] = %.9g, reference %.9g, error %.3g > bound %.3g", what, (long long)i,
                         (long long)j, (double)got[at], (double)ref[at], err, bound);
            if (err / bound > worst_ratio) worst_ratio = err / bound;
        }
    }
    n_cases++;
    free(a);
    free(b);
    free(c0);
    free(got);
    free(ref);
    free(bias);
    free(mask);
}

/* Every size in every position, for one transpose combination. */
static void cyclic_sizes(nncl_transpose ta, nncl_transpose tb)
{
    for (int i = 0; i < N_SIZES; i++) {
        gemm_case c = {ta, tb, SIZES[i], SIZES[(i + 3) % N_SIZES], SIZES[(i + 7) % N_SIZES],
                       i % 3, (i + 1) % 4, (i + 2) % 3, 1.0f, 0.0f, 0, 0};
        run_case(&c, 1000u + (uint64_t)i + 100u * (uint64_t)(2 * ta + tb));
    }
}

/* Seeded random draws from the size set, with random alpha, beta and padding. */
static void random_draws(nncl_transpose ta, nncl_transpose tb, int count, uint64_t seed)
{
    static const float alphas[] = {1.0f, -0.5f, 1.75f};
    static const float betas[] = {0.0f, 1.0f, 0.3f, -2.0f};
    test_rng r = test_rng_seed(seed);
    for (int done = 0; done < count;) {
        gemm_case c = {ta, tb, SIZES[test_rng_below(&r, N_SIZES)], SIZES[test_rng_below(&r, N_SIZES)],
                       SIZES[test_rng_below(&r, N_SIZES)], test_rng_below(&r, 5), test_rng_below(&r, 5),
                       test_rng_below(&r, 5), alphas[test_rng_below(&r, 3)], betas[test_rng_below(&r, 4)], 0, 0};
        if (c.m * c.n * c.k > (1 << 23)) continue; /* keeps the CPU reference fast */
        run_case(&c, test_rng_next(&r));
        done++;
    }
}

static void test_nn(void **state) { (void)state; cyclic_sizes(NNCL_NO_TRANS, NNCL_NO_TRANS); random_draws(NNCL_NO_TRANS, NNCL_NO_TRANS, 8, 11); }
static void test_nt(void **state) { (void)state; cyclic_sizes(NNCL_NO_TRANS, NNCL_TRANS); random_draws(NNCL_NO_TRANS, NNCL_TRANS, 8, 12); }
static void test_tn(void **state) { (void)state; cyclic_sizes(NNCL_TRANS, NNCL_NO_TRANS); random_draws(NNCL_TRANS, NNCL_NO_TRANS, 8, 13); }
static void test_tt(void **state) { (void)state; cyclic_sizes(NNCL_TRANS, NNCL_TRANS); random_draws(NNCL_TRANS, NNCL_TRANS, 8, 14); }

/* With beta == 0, C is written without being read: NaN in C must not leak into the result. */
static void test_beta_zero_ignores_c(void **state)
{
    (void)state;
    const int64_t shapes[][3] = {{7, 33, 65}, {64, 64, 64}, {93, 144, 31}, {1, 1, 1}, {65, 1024, 32}};
    for (int t = 0; t < 4; t++) {
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            gemm_case c = {t >> 1, t & 1, shapes[s][0], shapes[s][1], shapes[s][2], 1, 0, 2, 1.5f, 0.0f, 1, 0};
            run_case(&c, 77 + s);
        }
    }
}

/*
 * Long k with small C, the shape of a convolution's weight gradient: the tiled kernel (NNCL_GEMM=tiled)
 * splits k into chunks of multiples of 16 whose last one ends inside a tile (k = 777, 1000, 2049), adds
 * the parts in a second kernel, and applies beta, the bias and relu there. Every transposition, and on
 * every implementation the test runs under.
 */
static void test_long_k(void **state)
{
    (void)state;
    const int64_t shapes[][3] = {{7, 9, 777}, {64, 64, 1000}, {65, 33, 2049}};
    const float betas[] = {0.0f, 0.3f, -2.0f};
    for (int t = 0; t < 4; t++) {
        for (int s = 0; s < 3; s++) {
            gemm_case c = {t >> 1, t & 1, shapes[s][0], shapes[s][1], shapes[s][2], s, (s + 1) % 3, s % 2,
                           1.75f, betas[(s + t) % 3], 0, 0};
            run_case(&c, 500u + (uint64_t)(3 * t + s));
            /* The epilogue (bias, relu, both): the layers that ask for it store C densely (ldc = n). */
            c.pad_c = 0;
            c.epilogue = 1 + (s + t) % 3;
            run_case(&c, 600u + (uint64_t)(3 * t + s));
            /* The mask (the relu backward in a linear layer's input gradient), alone and after the others. */
            c.epilogue = 4 | (s == 2 ? 3 : 0);
            run_case(&c, 700u + (uint64_t)(3 * t + s));
        }
    }
}

/*
 * Every epilogue (bias, relu, mask and their combinations) on products with short k, which the tiled kernel
 * finishes in one pass (test_long_k's go through its split-k reduce), on every transposition.
 */
static void test_epilogues(void **state)
{
    (void)state;
    const int64_t shapes[][3] = {{6, 17, 4}, {64, 64, 100}, {65, 33, 200}};
    for (int t = 0; t < 4; t++)
        for (int s = 0; s < 3; s++)
            for (int e = 1; e < 8; e++) {
                gemm_case c = {t >> 1, t & 1, shapes[s][0], shapes[s][1], shapes[s][2], s, (s + 1) % 3, 0,
                               e % 2 ? 1.0f : -0.5f, e % 3 ? 0.0f : 0.5f, 0, e};
                run_case(&c, 800u + (uint64_t)(21 * t + 7 * s + e));
            }
}

/* A CPU-only sanity check of the reference itself, by hand. */
static void test_reference_by_hand(void **state)
{
    (void)state;
    /* A = [1 2 3; 4 5 6] (2x3), B = [7 8; 9 10; 11 12] (3x2): A*B = [58 64; 139 154]. */
    const float a[] = {1, 2, 3, 4, 5, 6}, b[] = {7, 8, 9, 10, 11, 12};
    const float want_nn[] = {58, 64, 139, 154};
    /* With A^T stored (3x2) and B^T stored (2x3) the product is the same. */
    const float at[] = {1, 4, 2, 5, 3, 6}, bt[] = {7, 9, 11, 8, 10, 12};
    int64_t s6 = 6, s4 = 4;
    nncl_tensor ta, tb, tat, tbt, tc;
    TEST_OK(cpu, nncl_tensor_create(cpu, 1, &s6, &ta));
    TEST_OK(cpu, nncl_tensor_create(cpu, 1, &s6, &tb));
    TEST_OK(cpu, nncl_tensor_create(cpu, 1, &s6, &tat));
    TEST_OK(cpu, nncl_tensor_create(cpu, 1, &s6, &tbt));
    TEST_OK(cpu, nncl_tensor_create(cpu, 1, &s4, &tc));
    TEST_OK(cpu, nncl_tensor_write(cpu, &ta, a, 6));
    TEST_OK(cpu, nncl_tensor_write(cpu, &tb, b, 6));
    TEST_OK(cpu, nncl_tensor_write(cpu, &tat, at, 6));
    TEST_OK(cpu, nncl_tensor_write(cpu, &tbt, bt, 6));
    const nncl_tensor *as[2] = {&ta, &tat}, *bs[2] = {&tb, &tbt};
    const int64_t ldas[2] = {3, 2}, ldbs[2] = {2, 3};
    for (int t = 0; t < 4; t++) {
        int x = t >> 1, y = t & 1;
        float out[4];
        TEST_OK(cpu, nncl_tensor_fill(cpu, &tc, 1.0f));
        /* C = 2 * op(A) op(B) - 1 * C */
        TEST_OK(cpu, nncl_gemm(cpu, x, y, 2, 2, 3, 2.0f, as[x], ldas[x], bs[y], ldbs[y], -1.0f, &tc, 2));
        TEST_OK(cpu, nncl_tensor_read(cpu, &tc, out, 4));
        for (int i = 0; i < 4; i++) assert_float_equal(out[i], 2.0f * want_nn[i] - 1.0f, 0.0f);
    }
    nncl_tensor *all[] = {&ta, &tb, &tat, &tbt, &tc};
    for (int i = 0; i < 5; i++) TEST_OK(cpu, nncl_tensor_destroy(cpu, all[i]));
}

int main(void)
{
    cpu = test_context("cpu");
    ocl = test_context("opencl");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_by_hand),
        cmocka_unit_test(test_nn),
        cmocka_unit_test(test_nt),
        cmocka_unit_test(test_tn),
        cmocka_unit_test(test_tt),
        cmocka_unit_test(test_beta_zero_ignores_c),
        cmocka_unit_test(test_long_k),
        cmocka_unit_test(test_epilogues),
    };
    int failed = cmocka_run_group_tests_name("gemm parity (CPU reference vs OpenCL)", tests, NULL, NULL);
    printf("gemm parity: %d cases, worst error / bound = %.3g\n", n_cases, worst_ratio);
    nncl_context_destroy(cpu);
    nncl_context_destroy(ocl);
    return failed;
}
