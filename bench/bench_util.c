/*
 * bench_util.c - see bench_util.h.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void bench_check(nncl_context *ctx, nncl_status st, const char *what)
{
    if (st == NNCL_OK) return;
    fprintf(stderr, "%s: %s: %s\n", what, nncl_status_name(st), nncl_context_last_error(ctx));
    exit(1);
}

nncl_context *bench_context(nncl_backend_kind kind)
{
    nncl_context_options opt = nncl_context_options_default();
    opt.backend = kind;
    nncl_context *ctx = NULL;
    bench_check(NULL, nncl_context_create(&opt, &ctx), "nncl_context_create");
    return ctx;
}
