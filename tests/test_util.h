/*
 * test_util.h - helpers shared by the test executables: choosing a backend
 * (and skipping when there is no OpenCL device), seeded random data, guarded
 * tensors, and tolerance checks.
 *
 * Skipping: an OpenCL test executable exits with TEST_SKIP (77, registered as
 * CTest's SKIP_RETURN_CODE) when no OpenCL device exists, unless the
 * environment sets NNCL_REQUIRE_OPENCL=1 (as CI does), in which case a missing
 * device is a failure.
 */
#ifndef NNCL_TEST_UTIL_H
#define NNCL_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "nncl.h"

#define TEST_SKIP 77

/* Creates a context for "cpu" or "opencl", or exits with TEST_SKIP / failure. */
nncl_context *test_context(const char *backend);

/* Parses argv[1] ("cpu" or "opencl"; default "cpu") for executables run on either backend. */
const char *test_backend_arg(int argc, char **argv);

/* Fails the current test with the context's message when st != NNCL_OK. */
#define TEST_OK(ctx, expr)                                                                         \
    do {                                                                                           \
        nncl_status test_st_ = (expr);                                                             \
        if (test_st_ != NNCL_OK)                                                                   \
            fail_msg("%s -> %s: %s", #expr, nncl_status_name(test_st_), nncl_context_last_error(ctx)); \
    } while (0)

/*
 * Runs a 2x3 by 3x2 GEMM with a known exact result on ctx and fails the test
 * unless it is right: "the context still works" after an error.
 */
void test_assert_context_works(nncl_context *ctx);

/* Writes n bytes to a new file at path (failing the test on any error). */
void test_write_file(const char *path, const void *bytes, size_t n);

/* Reads a whole file into a malloc'd buffer (one spare byte); *n receives its size. */
unsigned char *test_read_file(const char *path, size_t *n);

/* Removes a temporary folder: the files (and empty folders) in it, then itself; rmdir's result. */
int test_remove_dir(const char *dir);

/* ---- random data (xorshift-based, fixed seed, identical everywhere) ---- */

typedef struct test_rng {
    uint64_t s;
} test_rng;

test_rng test_rng_seed(uint64_t seed);
uint64_t test_rng_next(test_rng *r);
/* Uniform in [lo, hi). */
float test_rng_uniform(test_rng *r, float lo, float hi);
/* Uniform integer in [0, n). */
int64_t test_rng_below(test_rng *r, int64_t n);
void test_rng_fill(test_rng *r, float *x, size_t n, float lo, float hi);

/* ---- guarded tensors: a view with canary elements before and after ---- */

#define TEST_GUARD 37            /* canary elements on each side (odd on purpose) */
#define TEST_CANARY (-7.25e11f)  /* a value no op will produce */

typedef struct test_guarded {
    nncl_tensor whole; /* the allocation: guard + view + guard */
    nncl_tensor view;  /* what the op sees, at element offset TEST_GUARD */
} test_guarded;

/* Allocates a guarded tensor of the given shape and fills it with `data` (or canaries). */
void test_guarded_create(nncl_context *ctx, test_guarded *g, int ndim, const int64_t *shape, const float *data);
/* Reads the view into out (numel floats) and fails if any canary changed. */
void test_guarded_read(nncl_context *ctx, const test_guarded *g, float *out, const char *what);
void test_guarded_destroy(nncl_context *ctx, test_guarded *g);

/* ---- comparisons ---- */

/*
 * Fails unless |got[i] - ref[i]| <= atol + rtol * |ref[i]| for every i (NaN
 * equal only to NaN). Prints the worst element and the case name first.
 */
void test_assert_close(const float *got, const float *ref, size_t n, double atol, double rtol, const char *what);

/* Fails unless got and ref are bitwise identical. */
void test_assert_bitwise(const float *got, const float *ref, size_t n, const char *what);

#endif /* NNCL_TEST_UTIL_H */
