/*
 * bench_layers.c - forward and backward time of every layer of the
 * Fashion-MNIST CNN (examples/fashion_cnn.spec) at batch 64, on both backends.
 *
 * The layers, with the input shape each one sees in the network:
 *   conv2d 1->32 3x3 padding 1     (64, 1, 28, 28)   backward with dx = NULL
 *   relu                           (64, 32, 28, 28)
 *   maxpool2d 2                    (64, 32, 28, 28)
 *   conv2d 32->64 3x3 padding 1    (64, 32, 14, 14)
 *   relu                           (64, 64, 14, 14)
 *   maxpool2d 2                    (64, 64, 14, 14)
 *   flatten(start_dim 1)           (64, 64, 7, 7)    an alias layer: no launches
 *   linear 3136->128               (64, 3136)
 *   relu                           (64, 128)
 *   linear 128->10                 (64, 128)
 *   cross_entropy                  (64, 10) logits, 64 labels
 * The first convolution's backward passes dx = NULL, as a network does: its
 * input gradient is not needed. Forward runs in training mode.
 *
 * Each time is the median over repeats after one warm-up forward+backward,
 * timed on the host around the call plus nncl_context_finish (so it includes
 * the launch overhead). Launches and GEMM calls are read from the context's
 * statistics around one extra forward and one extra backward. A launch is
 * one of nncl's own kernels (on the CPU reference: one operation); a GEMM
 * counts as a GEMM only, on both backends.
 * Usage: bench_layers [REPEATS [FILTER]]   (REPEATS: default 10 on OpenCL; the CPU reference
 * runs at most 2, since it is plain loops with double accumulators).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define BATCH 64

typedef enum layer_kind { K_CONV, K_RELU, K_MAXPOOL, K_FLATTEN, K_LINEAR, K_LOSS } layer_kind;

typedef struct layer_spec {
    const char *label;
    layer_kind kind;
    int64_t in, out;  /* conv2d: channels; linear: features; loss: classes in `in` */
    int ndim;         /* of the input */
    int64_t shape[4]; /* the input shape */
    int need_dx;      /* 0: backward with dx = NULL (the network's first layer) */
} layer_spec;

static const layer_spec SPECS[] = {
    {"conv2d 1->32 3x3 p1 *", K_CONV, 1, 32, 4, {BATCH, 1, 28, 28}, 0},
    {"relu", K_RELU, 0, 0, 4, {BATCH, 32, 28, 28}, 1},
    {"maxpool2d 2", K_MAXPOOL, 0, 0, 4, {BATCH, 32, 28, 28}, 1},
    {"conv2d 32->64 3x3 p1", K_CONV, 32, 64, 4, {BATCH, 32, 14, 14}, 1},
    {"relu", K_RELU, 0, 0, 4, {BATCH, 64, 14, 14}, 1},
    {"maxpool2d 2", K_MAXPOOL, 0, 0, 4, {BATCH, 64, 14, 14}, 1},
    {"flatten(1)", K_FLATTEN, 0, 0, 4, {BATCH, 64, 7, 7}, 1},
    {"linear 3136->128", K_LINEAR, 3136, 128, 2, {BATCH, 3136}, 1},
    {"relu", K_RELU, 0, 0, 2, {BATCH, 128}, 1},
    {"linear 128->10", K_LINEAR, 128, 10, 2, {BATCH, 128}, 1},
    {"cross_entropy", K_LOSS, 10, 0, 2, {BATCH, 10}, 1},
};

#define NSPECS (sizeof SPECS / sizeof SPECS[0])

/* One layer (or the loss) with its tensors, ready to run. */
typedef struct bench_case {
    const layer_spec *spec;
    nncl_layer *layer;        /* NULL for the loss */
    nncl_loss *loss;          /* the loss only */
    int alias;                /* y and dx are descriptors the layer writes, not allocations */
    nncl_tensor x, y, dy, dx; /* loss: y is the 1-element loss, dy is unused */
    nncl_tensor target;       /* loss only: the labels */
} bench_case;

/* What one layer measured on one backend. */
typedef struct result {
    double fwd_ms, bwd_ms;
    uint64_t launches_fwd, launches_bwd, gemm_fwd, gemm_bwd;
} result;

static uint32_t lcg_next(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state;
}

/* A value in [-1, 1) from the top 24 bits of the LCG. */
static float lcg_float(uint32_t *state)
{
    return (float)(lcg_next(state) >> 8) * (1.0f / 8388608.0f) - 1.0f;
}

/*
 * Writes deterministic values in [-1, 1) into t. With tie_free (a 4-D input
 * of a 2x2 max-pool), each value sits on a grid of step 1/64 plus an offset
 * of (2 (h % 2) + w % 2) / 256, below the grid step, so the four values of a
 * window always differ and the arg-max is unambiguous.
 */
static void write_values(nncl_context *ctx, const nncl_tensor *t, uint32_t seed, int tie_free)
{
    size_t n = (size_t)nncl_tensor_numel(t);
    float *v = malloc(sizeof(float) * n);
    if (v == NULL) {
        fprintf(stderr, "out of host memory\n");
        exit(1);
    }
    uint32_t state = seed;
    int64_t w_size = t->shape[t->ndim - 1], h_size = t->ndim >= 2 ? t->shape[t->ndim - 2] : 1;
    for (size_t i = 0; i < n; i++) {
        float r = lcg_float(&state);
        if (tie_free) {
            int64_t w = (int64_t)i % w_size, h = ((int64_t)i / w_size) % h_size;
            float grid = (float)(int)(r * 64.0f) / 64.0f;
            r = grid + (float)(2 * (h % 2) + w % 2) / 256.0f;
        }
        v[i] = r;
    }
    bench_check(ctx, nncl_tensor_write(ctx, t, v, n), "write");
    free(v);
}

static void setup(nncl_context *ctx, const layer_spec *s, bench_case *c)
{
    *c = (bench_case){.spec = s};
    switch (s->kind) {
    case K_CONV: {
        nncl_conv2d_options opt = nncl_conv2d_options_default(s->in, s->out, 3);
        opt.padding_h = opt.padding_w = 1;
        bench_check(ctx, nncl_conv2d_create(ctx, &opt, &c->layer), "conv2d_create");
        break;
    }
    case K_RELU:
        bench_check(ctx, nncl_activation_create(ctx, NNCL_ACT_RELU, 0.0f, &c->layer), "activation_create");
        break;
    case K_MAXPOOL:
        bench_check(ctx, nncl_pool2d_create(ctx, NNCL_POOL_MAX, 2, 0, 0, &c->layer), "pool2d_create");
        break;
    case K_FLATTEN:
        bench_check(ctx, nncl_flatten_create(ctx, 1, &c->layer), "flatten_create");
        break;
    case K_LINEAR:
        bench_check(ctx, nncl_linear_create(ctx, s->in, s->out, 1, &c->layer), "linear_create");
        break;
    case K_LOSS:
        bench_check(ctx, nncl_loss_create(ctx, NNCL_LOSS_CROSS_ENTROPY, 0.0f, &c->loss), "loss_create");
        break;
    }
    bench_check(ctx, nncl_tensor_create(ctx, s->ndim, s->shape, &c->x), "create x");
    write_values(ctx, &c->x, 12345u, s->kind == K_MAXPOOL);

    if (s->kind == K_LOSS) {
        int64_t one = 1, labels[BATCH];
        uint32_t state = 777u;
        for (int i = 0; i < BATCH; i++) labels[i] = (int64_t)((lcg_next(&state) >> 8) % (uint32_t)s->in);
        bench_check(ctx, nncl_tensor_create(ctx, 1, &s->shape[0], &c->target), "create target");
        bench_check(ctx, nncl_tensor_write_labels(ctx, &c->target, labels, BATCH, s->in), "write labels");
        bench_check(ctx, nncl_tensor_create(ctx, 1, &one, &c->y), "create loss");
        bench_check(ctx, nncl_tensor_create(ctx, s->ndim, s->shape, &c->dx), "create dx");
        return;
    }

    int ond;
    int64_t os[NNCL_MAX_DIMS];
    bench_check(ctx, nncl_layer_output_shape(c->layer, s->ndim, s->shape, &ond, os), "output_shape");
    bench_check(ctx, nncl_layer_is_alias(c->layer, &c->alias), "is_alias");
    bench_check(ctx, nncl_tensor_create(ctx, ond, os, &c->dy), "create dy");
    write_values(ctx, &c->dy, 67890u, 0);
    if (!c->alias) {
        bench_check(ctx, nncl_tensor_create(ctx, ond, os, &c->y), "create y");
        if (s->need_dx) bench_check(ctx, nncl_tensor_create(ctx, s->ndim, s->shape, &c->dx), "create dx");
    }
}

static void teardown(nncl_context *ctx, bench_case *c)
{
    nncl_layer_destroy(c->layer);
    nncl_loss_destroy(c->loss);
    nncl_tensor_destroy(ctx, &c->x);
    nncl_tensor_destroy(ctx, &c->dy);
    nncl_tensor_destroy(ctx, &c->target);
    if (!c->alias) { /* an alias layer's y and dx are views of x and dy */
        nncl_tensor_destroy(ctx, &c->y);
        nncl_tensor_destroy(ctx, &c->dx);
    }
}

static void forward(nncl_context *ctx, bench_case *c)
{
    if (c->loss != NULL)
        bench_check(ctx, nncl_loss_forward(c->loss, &c->x, &c->target, &c->y), "loss_forward");
    else
        bench_check(ctx, nncl_layer_forward(c->layer, NNCL_TRAIN, &c->x, &c->y), "forward");
}

static void backward(nncl_context *ctx, bench_case *c)
{
    if (c->loss != NULL)
        bench_check(ctx, nncl_loss_backward(c->loss, &c->x, &c->target, &c->dx), "loss_backward");
    else
        bench_check(ctx, nncl_layer_backward(c->layer, &c->x, &c->y, &c->dy, c->spec->need_dx ? &c->dx : NULL),
                    "backward");
}

static result run(nncl_context *ctx, const layer_spec *s, int repeats)
{
    bench_case c;
    setup(ctx, s, &c);
    result res = {0};
    double *tf = malloc(sizeof(double) * (size_t)repeats), *tb = malloc(sizeof(double) * (size_t)repeats);
    if (tf == NULL || tb == NULL) {
        fprintf(stderr, "out of host memory\n");
        exit(1);
    }
    for (int r = -1; r < repeats; r++) {
        bench_check(ctx, nncl_context_finish(ctx), "finish");
        double t0 = bench_now();
        forward(ctx, &c);
        bench_check(ctx, nncl_context_finish(ctx), "finish");
        double t1 = bench_now();
        backward(ctx, &c);
        bench_check(ctx, nncl_context_finish(ctx), "finish");
        double t2 = bench_now();
        if (r >= 0) {
            tf[r] = t1 - t0;
            tb[r] = t2 - t1;
        }
    }
    res.fwd_ms = bench_median(tf, (size_t)repeats) * 1e3;
    res.bwd_ms = bench_median(tb, (size_t)repeats) * 1e3;
    free(tf);
    free(tb);

    nncl_stats s0, s1, s2;
    bench_check(ctx, nncl_context_reset_stats(ctx), "reset_stats");
    bench_check(ctx, nncl_context_stats(ctx, &s0), "stats");
    forward(ctx, &c);
    bench_check(ctx, nncl_context_stats(ctx, &s1), "stats");
    backward(ctx, &c);
    bench_check(ctx, nncl_context_stats(ctx, &s2), "stats");
    bench_check(ctx, nncl_context_finish(ctx), "finish");
    res.launches_fwd = s1.kernel_launches - s0.kernel_launches;
    res.launches_bwd = s2.kernel_launches - s1.kernel_launches;
    res.gemm_fwd = s1.gemm_calls - s0.gemm_calls;
    res.gemm_bwd = s2.gemm_calls - s1.gemm_calls;

    teardown(ctx, &c);
    return res;
}

int main(int argc, char **argv)
{
    /* bench_layers [REPEATS [FILTER]]: FILTER keeps the layers whose label contains it. */
    int repeats = argc > 1 ? atoi(argv[1]) : 10;
    if (repeats < 1) repeats = 1;
    const char *filter = argc > 2 ? argv[2] : "";
    nncl_context *ctxs[2] = {bench_context(NNCL_BACKEND_CPU), bench_context(NNCL_BACKEND_OPENCL)};
    const char *names[2] = {"cpu-ref", "opencl"};
    int reps[2] = {repeats < 2 ? repeats : 2, repeats};
    char desc[640];
    bench_check(ctxs[1], nncl_context_describe(ctxs[1], desc, sizeof desc), "describe");
    printf("nncl layer benchmark: the Fashion-MNIST CNN (examples/fashion_cnn.spec), batch %d, float32, "
           "training mode\n", BATCH);
    printf("opencl: %s, %d repeats\n", desc, reps[1]);
    printf("cpu-ref: the plain-C reference backend (double accumulators), %d repeats (at most 2: it is slow)\n",
           reps[0]);
    printf("time: host wall clock around the call plus nncl_context_finish, median of the repeats after one\n"
           "      warm-up forward+backward; launches and GEMMs: per call, from the context's statistics\n"
           "      (launches: every kernel nncl queues, cpu-ref: operations; gemm: GEMM calls, by nncl's\n"
           "      kernel, whose launches count in launch too, or by CLBlast, whose do not)\n\n");
    printf("%-22s %-17s %-8s %10s %10s %8s %8s %6s %6s\n", "layer", "input shape", "backend", "fwd ms", "bwd ms",
           "launch f", "launch b", "gemm f", "gemm b");
    double total[2] = {0.0, 0.0};
    for (size_t i = 0; i < NSPECS; i++) {
        const layer_spec *s = &SPECS[i];
        if (strstr(s->label, filter) == NULL) continue;
        char shape[64];
        nncl_shape_format(s->ndim, s->shape, shape, sizeof shape);
        for (int b = 0; b < 2; b++) {
            result r = run(ctxs[b], s, reps[b]);
            total[b] += r.fwd_ms + r.bwd_ms;
            printf("%-22s %-17s %-8s %10.3f %10.3f %8llu %8llu %6llu %6llu\n", s->label, shape, names[b], r.fwd_ms,
                   r.bwd_ms, (unsigned long long)r.launches_fwd, (unsigned long long)r.launches_bwd,
                   (unsigned long long)r.gemm_fwd, (unsigned long long)r.gemm_bwd);
            fflush(stdout);
        }
    }
    printf("\n* backward with dx = NULL, as in a network: the first layer's input gradient is not needed\n\n");
    for (int b = 0; b < 2; b++)
        printf("total %-8s %10.3f ms per step (forward + backward medians, no optimizer) = %8.1f images/s\n",
               names[b], total[b], BATCH / (total[b] * 1e-3));
    nncl_context_destroy(ctxs[0]);
    nncl_context_destroy(ctxs[1]);
    return 0;
}
