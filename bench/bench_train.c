/*
 * bench_train.c - training throughput of whole networks: images per second
 * of full training steps (upload, zero_grad, forward, loss, backward,
 * optimizer) at a batch size, on both backends, with what one steady-state
 * step costs: kernel launches, GEMM calls, host waits, device allocations and
 * bytes uploaded.
 *
 * Usage: bench_train [--batch N] [--steps N] [--backend cpu|opencl|both] [--inference] [--profile] SPEC...
 * (--inference: forward passes in evaluation mode; each step still uploads its batch)
 * (--profile: after each OpenCL row, the device time per step of every kernel,
 * from OpenCL events over the same steps run again in a profiling context)
 * (default: batch 64, 50 steps on OpenCL and 3 on the slow CPU reference,
 * both backends). Timing: host wall clock over the steps after 3 warm-up
 * steps, one nncl_context_finish at the end; the loss is never read, so a
 * step queues its work without waiting. Prints figures, asserts nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

static int inference; /* --inference: forward passes in evaluation mode instead of training steps */
static int profile;   /* --profile: a per-kernel table of device time per step after each OpenCL row */

/* One step: a training step, or an inference forward. */
static nncl_status step(nncl_network *net)
{
    return inference ? nncl_network_forward(net, NNCL_EVAL) : nncl_network_train_step(net);
}

static int by_time(const void *a, const void *b)
{
    const nncl_profile_entry *x = a, *y = b;
    return (x->total_ns < y->total_ns) - (x->total_ns > y->total_ns);
}

/* Prints the device time per step of each kernel in the profile, longest first. */
static void print_profile(nncl_context *ctx, int steps)
{
    size_t n = 0;
    bench_check(ctx, nncl_context_profile(ctx, NULL, 0, &n), "profile");
    nncl_profile_entry *e = calloc(n ? n : 1, sizeof *e);
    if (e == NULL) {
        fprintf(stderr, "profile: out of host memory\n");
        exit(1);
    }
    bench_check(ctx, nncl_context_profile(ctx, e, n, &n), "profile");
    qsort(e, n, sizeof *e, by_time);
    double total = 0;
    for (size_t i = 0; i < n; i++) total += (double)e[i].total_ns;
    printf("    %-40s %9s %10s %6s\n", "kernel (device time, profiled steps)", "launches", "us/step", "share");
    for (size_t i = 0; i < n; i++)
        printf("    %-40s %9.1f %10.1f %5.1f%%\n", e[i].kernel, (double)e[i].launches / steps,
               1e-3 * (double)e[i].total_ns / steps, 100.0 * (double)e[i].total_ns / total);
    printf("    %-40s %9s %10.1f\n", "all kernels", "", 1e-3 * total / steps);
    free(e);
}

static void bench_spec(nncl_backend_kind kind, const char *path, int64_t batch, int steps, int profiled)
{
    nncl_context_options opt = nncl_context_options_default();
    opt.backend = kind;
    opt.profiling = profiled;
    nncl_context *ctx = NULL;
    bench_check(NULL, nncl_context_create(&opt, &ctx), "nncl_context_create");
    nncl_spec spec;
    bench_check(ctx, nncl_spec_load(ctx, path, &spec), path);
    nncl_network *net = spec.net;
    bench_check(ctx, nncl_network_plan(net, spec.ndim, spec.shape, batch), "plan");
    bench_check(ctx, nncl_network_init(net, 1), "init");
    nncl_optimizer_options o = nncl_optimizer_options_default(NNCL_OPT_SGD);
    o.momentum = 0.9f;
    bench_check(ctx, nncl_network_set_optimizer(net, &o), "optimizer");
    int64_t per = 1, classes = 0;
    for (int i = 0; i < spec.ndim; i++) per *= spec.shape[i];
    bench_check(ctx, nncl_network_output_size(net, &classes), "output size");
    float *x = malloc(sizeof(float) * (size_t)(batch * per));
    int64_t *y = malloc(sizeof(int64_t) * (size_t)batch);
    uint32_t s = 12345;
    for (int64_t i = 0; i < batch * per; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 16777216.0f;
    }
    for (int64_t i = 0; i < batch; i++) y[i] = i % classes;
    for (int w = 0; w < 3; w++) { /* warm-up: kernels compiled, memory grown */
        bench_check(ctx, nncl_network_set_batch(net, x, y, NULL, batch), "batch");
        bench_check(ctx, step(net), "step");
    }
    bench_check(ctx, nncl_context_finish(ctx), "finish");
    nncl_stats a, b;
    bench_check(ctx, nncl_context_stats(ctx, &a), "stats");
    bench_check(ctx, nncl_network_set_batch(net, x, y, NULL, batch), "batch");
    bench_check(ctx, step(net), "step");
    bench_check(ctx, nncl_context_stats(ctx, &b), "stats");
    if (profiled) bench_check(ctx, nncl_context_reset_stats(ctx), "reset stats");
    double t0 = bench_now();
    for (int i = 0; i < steps; i++) {
        bench_check(ctx, nncl_network_set_batch(net, x, y, NULL, batch), "batch");
        bench_check(ctx, step(net), "step");
    }
    bench_check(ctx, nncl_context_finish(ctx), "finish");
    double t = bench_now() - t0;
    if (profiled) print_profile(ctx, steps);
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (!profiled)
        printf("%-18s %-7s %6lld %6d %10.2f %11.0f %9llu %6llu %6llu %7llu %10llu\n", name,
           kind == NNCL_BACKEND_CPU ? "cpu-ref" : "opencl", (long long)batch, steps, 1e3 * t / steps,
           (double)(batch * steps) / t, (unsigned long long)(b.kernel_launches - a.kernel_launches),
           (unsigned long long)(b.gemm_calls - a.gemm_calls), (unsigned long long)(b.host_waits - a.host_waits),
           (unsigned long long)(b.device_allocs - a.device_allocs), (unsigned long long)(b.h2d_bytes - a.h2d_bytes));
    fflush(stdout);
    free(x);
    free(y);
    nncl_network_destroy(net);
    nncl_context_destroy(ctx);
}

int main(int argc, char **argv)
{
    int64_t batch = 64;
    int steps = 0, which = 3; /* 1 cpu, 2 opencl, 3 both */
    int first_spec = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) batch = atoll(argv[++i]);
        else if (strcmp(argv[i], "--inference") == 0) inference = 1;
        else if (strcmp(argv[i], "--profile") == 0) profile = 1;
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            const char *b = argv[++i];
            which = strcmp(b, "cpu") == 0 ? 1 : strcmp(b, "opencl") == 0 ? 2 : 3;
        } else {
            first_spec = i;
            break;
        }
    }
    if (first_spec >= argc || batch < 1) {
        fprintf(stderr, "usage: bench_train [--batch N] [--steps N] [--backend cpu|opencl|both] [--inference] [--profile] SPEC...\n");
        return 2;
    }
    nncl_context *probe = bench_context(NNCL_BACKEND_OPENCL);
    char desc[640];
    bench_check(probe, nncl_context_describe(probe, desc, sizeof desc), "describe");
    nncl_context_destroy(probe);
    printf(inference ? "nncl inference benchmark: forward passes in evaluation mode on random data, float32\n"
                     : "nncl training benchmark: full SGD steps (momentum 0.9) on random data, float32\n");
    printf("opencl: %s\n", desc);
    printf("time: wall clock over the steps after 3 warm-up steps, one finish at the end; per-step counts from one\n"
           "      steady-state step (launches: every kernel nncl queues, its GEMM kernels included; GEMMs:\n"
           "      GEMM calls, by nncl's kernel or CLBlast)\n\n");
    printf("%-18s %-7s %6s %6s %10s %11s %9s %6s %6s %7s %10s\n", "network", "backend", "batch", "steps", "ms/step",
           "images/s", "launches", "gemms", "waits", "allocs", "H2D bytes");
    for (int i = first_spec; i < argc; i++) {
        if (which & 2) bench_spec(NNCL_BACKEND_OPENCL, argv[i], batch, steps ? steps : 50, 0);
        if (which & 2 && profile) bench_spec(NNCL_BACKEND_OPENCL, argv[i], batch, steps ? steps : 50, 1);
        if (which & 1) bench_spec(NNCL_BACKEND_CPU, argv[i], batch, steps ? steps : 3, 0);
    }
    return 0;
}
