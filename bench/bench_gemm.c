/*
 * bench_gemm.c - GEMM throughput on both backends for the shapes the
 * reference networks use, plus 1024^3.
 *
 * Shapes are M x N x K (C is M x N, the inner dimension is K):
 *   128 x 784 x 256    the MLP's first layer, input gradient (batch 128)
 *   36864 x 32 x 25    a 5x5 convolution as im2col GEMM (64 images of 24x24, 32 channels)
 *   4096 x 64 x 800    a 5x5 convolution with 32 input channels (64 images of 8x8)
 *   64 x 288 x 50176   a long k: the reference CNN's second convolution's weight gradient at batch 256
 *                      (64 channels by 32 x 3 x 3 taps, summed over 256 x 14 x 14 positions)
 *   1024 x 1024 x 1024 square
 * Each figure is the median over repeats after one warm-up run, timed on the
 * host around the GEMM and a finish (so it includes the launch overhead).
 * Usage: bench_gemm [repeats [--opencl-only]]   (default 10 on OpenCL; the
 * CPU reference runs 3, or 1 above a GFLOP, since it is a plain triple loop,
 * or not at all with --opencl-only).
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

typedef struct shape {
    int64_t m, n, k;
} shape;

static const shape SHAPES[] = {{128, 784, 256}, {36864, 32, 25}, {4096, 64, 800}, {64, 288, 50176}, {1024, 1024, 1024}};

static double run(nncl_context *ctx, const shape *s, int repeats)
{
    int64_t sa[2] = {s->m, s->k}, sb[2] = {s->k, s->n}, sc[2] = {s->m, s->n};
    nncl_tensor a, b, c;
    bench_check(ctx, nncl_tensor_create(ctx, 2, sa, &a), "create A");
    bench_check(ctx, nncl_tensor_create(ctx, 2, sb, &b), "create B");
    bench_check(ctx, nncl_tensor_create(ctx, 2, sc, &c), "create C");
    bench_check(ctx, nncl_tensor_fill(ctx, &a, 0.5f), "fill A");
    bench_check(ctx, nncl_tensor_fill(ctx, &b, 0.25f), "fill B");
    double *t = malloc(sizeof(double) * (size_t)repeats);
    for (int r = -1; r < repeats; r++) {
        bench_check(ctx, nncl_context_finish(ctx), "finish");
        double t0 = bench_now();
        bench_check(ctx,
                    nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_NO_TRANS, s->m, s->n, s->k, 1.0f, &a, s->k, &b, s->n, 0.0f,
                              &c, s->n),
                    "gemm");
        bench_check(ctx, nncl_context_finish(ctx), "finish");
        if (r >= 0) t[r] = bench_now() - t0;
    }
    double median = bench_median(t, (size_t)repeats);
    free(t);
    nncl_tensor_destroy(ctx, &a);
    nncl_tensor_destroy(ctx, &b);
    nncl_tensor_destroy(ctx, &c);
    return median;
}

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 10;
    if (repeats < 1) repeats = 1;
    const int first = argc > 2 && strcmp(argv[2], "--opencl-only") == 0 ? 1 : 0; /* the first backend run */
    /* The GEMM implementation of an OpenCL context is fixed when it is created (NNCL_GEMM). */
    enum { KINDS = 4 };
    nncl_context *ctxs[KINDS];
    const char *names[KINDS] = {"cpu-ref", "clblast", "nncl", "tiled"};
    ctxs[0] = bench_context(NNCL_BACKEND_CPU);
    for (int b = 1; b < KINDS; b++) {
        setenv("NNCL_GEMM", names[b], 1);
        ctxs[b] = bench_context(NNCL_BACKEND_OPENCL);
    }
    unsetenv("NNCL_GEMM");
    char desc[640];
    bench_check(ctxs[1], nncl_context_describe(ctxs[1], desc, sizeof desc), "describe");
    printf("nncl GEMM benchmark (C = A*B, float32, row-major; median of repeats after a warm-up)\n");
    printf("opencl: %s\n", desc);
    printf("  clblast: CLBlast; nncl: kernels_cl/gemm.cl (register blocks); tiled: kernels_cl/gemm_tiled.cl (local\n"
           "  memory, split k). By default nncl on CPU devices, else the fastest measured per shape.\n");
    printf("cpu-ref: the plain-C reference backend (triple loop, double accumulator)\n\n");
    printf("%-20s %-8s %8s %12s %10s\n", "M x N x K", "gemm", "repeats", "time (ms)", "GFLOP/s");
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        const shape *s = &SHAPES[i];
        double flop = 2.0 * (double)s->m * (double)s->n * (double)s->k;
        char label[32];
        snprintf(label, sizeof label, "%lldx%lldx%lld", (long long)s->m, (long long)s->n, (long long)s->k);
        for (int b = first; b < KINDS; b++) {
            int reps = b == 0 ? (repeats < 3 ? repeats : flop > 1e9 ? 1 : 3) : repeats; /* the reference is slow */
            double t = run(ctxs[b], s, reps);
            printf("%-20s %-8s %8d %12.3f %10.2f\n", label, names[b], reps, t * 1e3, flop / t * 1e-9);
            fflush(stdout);
        }
    }
    for (int b = 0; b < KINDS; b++) nncl_context_destroy(ctxs[b]);
    return 0;
}
