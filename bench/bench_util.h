/*
 * bench_util.h - timing helpers shared by the benchmarks. Benchmarks print
 * figures and assert nothing.
 */
#ifndef NNCL_BENCH_UTIL_H
#define NNCL_BENCH_UTIL_H

#include <stddef.h>

#include "nncl.h"

/* Wall-clock seconds from a monotonic clock. */
double bench_now(void);

/* Median of n values (sorts them in place). */
double bench_median(double *v, size_t n);

/* Exits with the library's message when st != NNCL_OK. */
void bench_check(nncl_context *ctx, nncl_status st, const char *what);

/* Creates a context on the given backend (OpenCL: the default device). */
nncl_context *bench_context(nncl_backend_kind kind);

#endif /* NNCL_BENCH_UTIL_H */
