/*
 * nncl - the command-line face of the library.
 *
 *   nncl devices              list the OpenCL devices
 *   nncl train [options]      train a model spec (train.c)
 *   nncl eval [options]       test accuracy of saved weights
 *   nncl predict [options]    outputs for a .npy of inputs
 *   nncl check [options]      run a GEMM on the chosen backend and compare it
 *                             with the CPU reference
 *
 * Every subcommand exits 0 on success and 1 on any error, after printing the
 * library's message.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: nncl <command> [options]\n"
            "\n"
            "commands:\n"
            "  devices                 list the OpenCL platforms and devices\n"
            "  train --spec FILE [options]\n"
            "                          train on Fashion-MNIST (or --data DIR of IDX files, or\n"
            "                          --train-x/--train-y/--test-x/--test-y .npy or IDX files)\n"
            "  eval --spec FILE --weights FILE [data options]\n"
            "                          test loss and accuracy of saved weights\n"
            "  predict --spec FILE --weights FILE --input X.npy --output Y.npy\n"
            "                          the network's outputs for the inputs\n"
            "  check [--device P:D] [--size M,N,K]\n"
            "                          run C = A*B on the OpenCL device and on the CPU\n"
            "                          reference, and print the largest difference\n"
            "\n"
            "train options (defaults: the reference CNN recipe):\n"
            "  --epochs N (3)  --batch N (64)  --seed N (1)  --no-shuffle  --limit N (training samples)\n"
            "  --no-normalize (keep inputs in [0, 1] instead of the training set's mean 0, std 1)\n"
            "  --normalize MEAN,STD (normalise as (x - MEAN) / STD instead of the training set's statistics)\n"
            "  --optimizer sgd|adam|adamw (sgd)  --lr X (0.01 sgd, 0.001 adam)  --momentum X (0.9 for sgd)\n"
            "  --dampening X  --nesterov  --weight-decay X  --beta1 X  --beta2 X  --clip NORM\n"
            "  --schedule constant|step|cosine  --step-size N  --gamma X  --t-max N (cosine: the whole run)  --warmup N\n"
            "  --init FILE (initial weights)  --save FILE (final weights, safetensors)\n"
            "  --checkpoint FILE (training state after each epoch)  --resume FILE  --max-steps N\n"
            "  --metrics FILE.csv  --step-log FILE (every step's loss)  --test-limit N\n"
            "  --profile FILE.json (per-layer forward, backward and update times as a Chrome trace)\n"
            "common options: --backend opencl|cpu  --device P:D  --batch N\n"
            "\n"
            "The device defaults to NNCL_DEVICE=platform:device, else the first GPU,\n"
            "else device 0:0. Data defaults to /usr/share/datasets/fashion-mnist.\n");
}

static int cmd_devices(void)
{
    size_t count = 0;
    nncl_status st = nncl_device_list(NULL, 0, &count);
    if (st != NNCL_OK) return cli_fail(NULL, st);
    if (count == 0) {
        printf("no OpenCL devices found\n");
        return 0;
    }
    nncl_device_info *info = calloc(count, sizeof *info);
    if (info == NULL) {
        fprintf(stderr, "nncl: out of memory\n");
        return 1;
    }
    st = nncl_device_list(info, count, &count);
    if (st != NNCL_OK) {
        free(info);
        return cli_fail(NULL, st);
    }
    for (size_t i = 0; i < count; i++) {
        const nncl_device_info *d = &info[i];
        printf("%d:%d  %s%s\n", d->platform, d->device, d->name, d->is_gpu ? "  [GPU]" : "");
        printf("     platform        %s\n", d->platform_name);
        printf("     vendor          %s\n", d->vendor);
        printf("     version         %s (driver %s)\n", d->version, d->driver_version);
        printf("     compute units   %u\n", d->compute_units);
        printf("     global memory   %.1f MiB\n", (double)d->global_mem_bytes / (1024.0 * 1024.0));
        printf("     max allocation  %.1f MiB\n", (double)d->max_alloc_bytes / (1024.0 * 1024.0));
        printf("     max work-group  %zu\n", d->max_work_group_size);
    }
    free(info);
    return 0;
}

/* Deterministic values in [-1, 1). */
static void fill_random(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
    }
}

/* Runs C = A*B (row-major) on ctx and returns C in c. */
static nncl_status gemm_on(nncl_context *ctx, int64_t m, int64_t n, int64_t k, const float *a, const float *b,
                           float *c)
{
    nncl_tensor ta = {0}, tb = {0}, tc = {0};
    int64_t sa[2] = {m, k}, sb[2] = {k, n}, sc[2] = {m, n};
    nncl_status st;
    if ((st = nncl_tensor_create(ctx, 2, sa, &ta)) != NNCL_OK) goto done;
    if ((st = nncl_tensor_create(ctx, 2, sb, &tb)) != NNCL_OK) goto done;
    if ((st = nncl_tensor_create(ctx, 2, sc, &tc)) != NNCL_OK) goto done;
    if ((st = nncl_tensor_write(ctx, &ta, a, (size_t)(m * k))) != NNCL_OK) goto done;
    if ((st = nncl_tensor_write(ctx, &tb, b, (size_t)(k * n))) != NNCL_OK) goto done;
    if ((st = nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_NO_TRANS, m, n, k, 1.0f, &ta, k, &tb, n, 0.0f, &tc, n)) != NNCL_OK)
        goto done;
    st = nncl_tensor_read(ctx, &tc, c, (size_t)(m * n));
done:
    nncl_tensor_destroy(ctx, &ta);
    nncl_tensor_destroy(ctx, &tb);
    nncl_tensor_destroy(ctx, &tc);
    return st;
}

static int cmd_check(int argc, char **argv)
{
    nncl_context_options opt = nncl_context_options_default();
    long m = 129, n = 257, k = 513;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            if (!nncl__parse_device(argv[++i], &opt.platform, &opt.device)) {
                fprintf(stderr, "nncl check: --device takes platform:device, e.g. 0:0\n");
                return 1;
            }
        } else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
            /* Each size first, so that the products cannot overflow; the work is capped as well, since the CPU
               reference runs it as a plain triple loop in double precision (2^33 is about a minute). */
            const long cap = 1L << 26;
            const char *size = argv[++i];
            int used = 0;
            if (sscanf(size, "%ld,%ld,%ld%n", &m, &n, &k, &used) != 3 || size[used] != '\0' || m < 1 || n < 1 ||
                k < 1 || m > cap || n > cap || k > cap || m * n > cap || m * k > cap || k * n > cap ||
                (double)m * n * k > 0x1p33) {
                fprintf(stderr, "nncl check: --size takes M,N,K, each >= 1, matrices up to 2^26 elements and "
                                "M*N*K up to 2^33\n");
                return 1;
            }
        } else {
            usage(stderr);
            return 1;
        }
    }

    nncl_context *gpu = NULL, *cpu = NULL;
    nncl_status st = nncl_context_create(&opt, &gpu);
    if (st != NNCL_OK) return cli_fail(NULL, st);
    nncl_context_options cpu_opt = nncl_context_options_default();
    cpu_opt.backend = NNCL_BACKEND_CPU;
    st = nncl_context_create(&cpu_opt, &cpu);
    if (st != NNCL_OK) {
        nncl_context_destroy(gpu);
        return cli_fail(NULL, st);
    }
    char desc[384];
    nncl_context_describe(gpu, desc, sizeof desc);
    printf("device: %s\n", desc);

    float *a = malloc(sizeof(float) * (size_t)(m * k)), *b = malloc(sizeof(float) * (size_t)(k * n));
    float *c_dev = malloc(sizeof(float) * (size_t)(m * n)), *c_ref = malloc(sizeof(float) * (size_t)(m * n));
    int rc = 1;
    if (!a || !b || !c_dev || !c_ref) {
        fprintf(stderr, "nncl check: out of memory\n");
        goto done;
    }
    fill_random(a, (size_t)(m * k), 1);
    fill_random(b, (size_t)(k * n), 2);
    if ((st = gemm_on(gpu, m, n, k, a, b, c_dev)) != NNCL_OK) {
        rc = cli_fail(gpu, st);
        goto done;
    }
    if ((st = gemm_on(cpu, m, n, k, a, b, c_ref)) != NNCL_OK) {
        rc = cli_fail(cpu, st);
        goto done;
    }
    /* A correct float32 GEMM with inputs in [-1, 1) is within k * eps * sum|a*b| <= k^2 * eps
       of the double-accumulated reference; we report the error relative to sqrt(k), its typical size. */
    double max_abs = 0.0, max_ref = 0.0;
    for (long i = 0; i < m * n; i++) {
        double d = fabs((double)c_dev[i] - (double)c_ref[i]);
        if (d > max_abs) max_abs = d;
        if (fabs(c_ref[i]) > max_ref) max_ref = fabs(c_ref[i]);
    }
    double tol = 1e-5 * sqrt((double)k) * 4.0;
    printf("compared: C = A*B, %ld x %ld x %ld (M x N x K), float32, inputs uniform in [-1, 1)\n", m, n, k);
    printf("          OpenCL (nncl_gemm, as the device runs it) vs CPU reference (double accumulation)\n");
    printf("max |C_opencl - C_cpu| = %.3g  (max |C| = %.3g, tolerance %.3g)\n", max_abs, max_ref, tol);
    rc = max_abs <= tol ? 0 : 1;
    printf("%s\n", rc == 0 ? "GEMM check passed" : "GEMM check FAILED");
done:
    free(a);
    free(b);
    free(c_dev);
    free(c_ref);
    nncl_context_destroy(gpu);
    nncl_context_destroy(cpu);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    if (strcmp(argv[1], "devices") == 0) {
        if (argc > 2) {
            fprintf(stderr, "nncl devices: takes no arguments, not '%s'\n", argv[2]);
            return 1;
        }
        return cmd_devices();
    }
    if (strcmp(argv[1], "check") == 0) return cmd_check(argc - 2, argv + 2);
    if (strcmp(argv[1], "train") == 0) return cmd_train(argc - 2, argv + 2);
    if (strcmp(argv[1], "eval") == 0) return cmd_eval(argc - 2, argv + 2);
    if (strcmp(argv[1], "predict") == 0) return cmd_predict(argc - 2, argv + 2);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "nncl: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 1;
}
