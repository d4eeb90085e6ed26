/*
 * test_network.c - networks on one backend (argument: cpu | opencl):
 *   - a steady-state training step allocates nothing (device counters, and
 *     host malloc/calloc/realloc counted by link-time wrapping), waits for
 *     nothing unless the loss is read (then exactly once), and uploads
 *     exactly the batch's bytes;
 *   - the same seed gives bitwise the same losses and weights;
 *   - learning-rate schedules follow torch's closed forms, and each
 *     optimizer's update (plain SGD, weight decay, momentum with dampening,
 *     Nesterov, Adam, AdamW) its formula, evaluated in double on the host
 *     from the parameters, gradients and state read back (rtol 1e-5);
 *   - weights and training state survive a save and load bit for bit;
 *   - a checkpoint truncated at every byte offset, a corrupted header, and
 *     weights of the wrong names or shapes are refused and change nothing;
 *   - a convolution followed by relu runs as one pass, with the outputs of
 *     the two layers run one after the other, bit for bit; a training step
 *     with every fusion (conv-relu-maxpool, linear-relu last, flatten first)
 *     gives the parameter gradients of the layers run apart, bit for bit;
 *   - the profiling trace has a span per layer phase;
 *   - malformed model specs are refused with their line number;
 *   - misuse (a second plan, a layer or loss given twice, non-finite
 *     optimizer settings, checkpoints of an empty network) is refused with a
 *     message, and leaves the network working;
 *   - the running mean loss weighs each batch by its samples; a row is
 *     correct when its label is the column of its first largest logit (ties
 *     are frequent in the test's logits);
 *   - two dropout layers of a spec draw independent masks without an init.
 */
#define _POSIX_C_SOURCE 200809L

#include "test_util.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- counting host allocations (the executable links with --wrap=malloc,calloc,realloc) ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
static long host_allocs;

void *__wrap_malloc(size_t n)
{
    host_allocs++;
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
    host_allocs++;
    return __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
    host_allocs++;
    return __real_realloc(p, n);
}

static nncl_context *ctx;
static const char *backend_name;
static char tmpdir[] = "/tmp/nncl_network_XXXXXX";

static const char *SPEC = "# a small CNN with every kind of state\n"
                          "input 1 8 8\n"
                          "conv2d 4 kernel=3 padding=1 bias=0\n"
                          "batchnorm2d\n"
                          "relu\n"
                          "maxpool2d 2\n"
                          "flatten\n"
                          "dropout p=0.25\n"
                          "linear 10\n"
                          "loss cross_entropy\n";

#define BATCH 16
#define SAMPLE 64

static nncl_network *make_net_batch(nncl_optimizer_kind kind, uint64_t seed, int64_t batch)
{
    nncl_spec spec;
    TEST_OK(ctx, nncl_spec_parse(ctx, SPEC, "test.spec", &spec));
    assert_int_equal(spec.ndim, 3);
    TEST_OK(ctx, nncl_network_plan(spec.net, spec.ndim, spec.shape, batch));
    TEST_OK(ctx, nncl_network_init(spec.net, seed));
    nncl_optimizer_options o = nncl_optimizer_options_default(kind);
    o.momentum = kind == NNCL_OPT_SGD ? 0.9f : 0.0f;
    o.clip_norm = 5.0f;
    TEST_OK(ctx, nncl_network_set_optimizer(spec.net, &o));
    return spec.net;
}

static nncl_network *make_net(nncl_optimizer_kind kind, uint64_t seed)
{
    return make_net_batch(kind, seed, BATCH);
}

static void make_batch(uint64_t seed, float *x, int64_t *y)
{
    test_rng r = test_rng_seed(seed);
    test_rng_fill(&r, x, BATCH * SAMPLE, -1.0f, 1.0f);
    for (int i = 0; i < BATCH; i++) y[i] = test_rng_below(&r, 10);
}

/* What read_params reads. */
enum { VALUES, GRADS, STATE0, STATE1 };

/*
 * Reads into one host array (caller frees) every parameter and buffer of the
 * network (VALUES), or for every learnable parameter its gradient (GRADS) or
 * its optimizer state tensor 0 or 1 (STATE0, STATE1).
 */
static float *read_params(nncl_network *net, int what, size_t *count)
{
    size_t n_layers, total = 0;
    TEST_OK(ctx, nncl_network_layer_count(net, &n_layers));
    float *out = NULL;
    for (int pass = 0; pass < 2; pass++) {
        size_t at = 0;
        for (size_t i = 0; i < n_layers; i++) {
            nncl_layer *l;
            size_t np;
            TEST_OK(ctx, nncl_network_layer(net, i, &l));
            TEST_OK(ctx, nncl_layer_param_count(l, &np));
            for (size_t p = 0; p < np; p++) {
                nncl_tensor v, g, state;
                TEST_OK(ctx, nncl_layer_param(l, p, NULL, &v, &g));
                if (what != VALUES && g.buf == NULL) continue; /* a buffer: no gradient, no state */
                if (what == STATE0 || what == STATE1)
                    TEST_OK(ctx, nncl_network_optimizer_state(net, i, p, what - STATE0, NULL, &state));
                const nncl_tensor *t = what == VALUES ? &v : what == GRADS ? &g : &state;
                size_t n = (size_t)nncl_tensor_numel(t);
                if (pass == 1) TEST_OK(ctx, nncl_tensor_read(ctx, t, out + at, n));
                at += n;
            }
        }
        if (pass == 0) out = malloc(sizeof(float) * (at ? at : 1));
        total = at;
    }
    *count = total;
    return out;
}

static float *all_weights(nncl_network *net, size_t *count)
{
    return read_params(net, VALUES, count);
}

static void test_steady_state_step(void **state)
{
    (void)state;
    nncl_network *net = make_net(NNCL_OPT_SGD, 7);
    float x[BATCH * SAMPLE];
    int64_t y[BATCH];
    for (int s = 0; s < 3; s++) { /* warm-up: programs, scratch and staging grow here */
        make_batch(100 + (uint64_t)s, x, y);
        TEST_OK(ctx, nncl_network_set_batch(net, x, y, NULL, BATCH));
        TEST_OK(ctx, nncl_network_train_step(net));
        float loss;
        TEST_OK(ctx, nncl_network_metrics(net, &loss, NULL));
    }
    make_batch(200, x, y);
    nncl_stats before, after;
    TEST_OK(ctx, nncl_context_stats(ctx, &before));
    long allocs_before = host_allocs;
    nncl_status st1 = nncl_network_set_batch(net, x, y, NULL, BATCH);
    nncl_status st2 = nncl_network_train_step(net);
    long allocs = host_allocs - allocs_before;
    TEST_OK(ctx, st1);
    TEST_OK(ctx, st2);
    TEST_OK(ctx, nncl_context_stats(ctx, &after));
    print_message("steady-state step: %llu launches, %llu GEMMs, %llu H2D bytes, %llu waits, %llu device and %ld host "
                  "allocations\n",
                  (unsigned long long)(after.kernel_launches - before.kernel_launches),
                  (unsigned long long)(after.gemm_calls - before.gemm_calls),
                  (unsigned long long)(after.h2d_bytes - before.h2d_bytes),
                  (unsigned long long)(after.host_waits - before.host_waits),
                  (unsigned long long)(after.device_allocs - before.device_allocs), allocs);
    assert_int_equal(after.device_allocs, before.device_allocs);
    assert_int_equal(allocs, 0);
    assert_int_equal(after.host_waits, before.host_waits);
    /* The batch is uploaded once: the inputs and the labels (as floats). */
    assert_int_equal(after.h2d_bytes - before.h2d_bytes, sizeof(float) * (BATCH * SAMPLE + BATCH));
    assert_int_equal(after.d2h_bytes, before.d2h_bytes);
    /* Reading the loss is the one wait. */
    float loss;
    int64_t correct;
    TEST_OK(ctx, nncl_network_metrics(net, &loss, &correct));
    TEST_OK(ctx, nncl_context_stats(ctx, &before));
    assert_int_equal(before.host_waits, after.host_waits + 1);
    assert_true(isfinite(loss) && correct >= 0 && correct <= BATCH);
    nncl_network_destroy(net);
}

/*
 * Steps queued without reading anything back: no device or host allocation,
 * and the host waits only to keep the batch uploads at most two steps ahead
 * of the device, once per step at most (the batch of each step is two
 * uploads; tensor.h). The loss read at the end is one more wait.
 */
static void test_steps_without_reads(void **state)
{
    (void)state;
    enum { B = 16 * BATCH }; /* a batch large enough for the host to run ahead of the device */
    nncl_network *net = make_net_batch(NNCL_OPT_SGD, 8, B);
    static float x[B * SAMPLE];
    static int64_t y[B];
    for (int part = 0; part < 16; part++) make_batch(300 + (uint64_t)part, x + part * BATCH * SAMPLE, y + part * BATCH);
    for (int s = 0; s < 2; s++) { /* warm-up: programs, scratch, all four staging slots */
        TEST_OK(ctx, nncl_network_set_batch(net, x, y, NULL, B));
        TEST_OK(ctx, nncl_network_train_step(net));
    }
    TEST_OK(ctx, nncl_context_finish(ctx));
    nncl_stats before, after;
    TEST_OK(ctx, nncl_context_stats(ctx, &before));
    long allocs_before = host_allocs;
    const int steps = 24;
    nncl_status st = NNCL_OK;
    for (int s = 0; s < steps && st == NNCL_OK; s++) {
        st = nncl_network_set_batch(net, x, y, NULL, B);
        if (st == NNCL_OK) st = nncl_network_train_step(net);
    }
    long allocs = host_allocs - allocs_before;
    TEST_OK(ctx, st);
    TEST_OK(ctx, nncl_context_stats(ctx, &after));
    print_message("%d steps without a read: %llu waits, %llu device and %ld host allocations\n", steps,
                  (unsigned long long)(after.host_waits - before.host_waits),
                  (unsigned long long)(after.device_allocs - before.device_allocs), allocs);
    assert_int_equal(after.device_allocs, before.device_allocs);
    assert_int_equal(allocs, 0);
    assert_true(after.host_waits - before.host_waits <= (uint64_t)steps);
    float loss;
    TEST_OK(ctx, nncl_network_metrics(net, &loss, NULL));
    assert_true(isfinite(loss));
    nncl_network_destroy(net);
}

/* Trains `steps` steps and returns the weights; losses[] receives each step's loss. */
static float *train(uint64_t seed, nncl_optimizer_kind kind, int steps, float *losses, size_t *count)
{
    nncl_network *net = make_net(kind, seed);
    float x[BATCH * SAMPLE];
    int64_t y[BATCH];
    for (int s = 0; s < steps; s++) {
        make_batch(300 + (uint64_t)s, x, y);
        TEST_OK(ctx, nncl_network_set_batch(net, x, y, NULL, BATCH));
        TEST_OK(ctx, nncl_network_train_step(net));
        TEST_OK(ctx, nncl_network_metrics(net, &losses[s], NULL));
    }
    float *w = all_weights(net, count);
    nncl_network_destroy(net);
    return w;
}

static void test_determinism(void **state)
{
    (void)state;
    for (int kind = NNCL_OPT_SGD; kind <= NNCL_OPT_ADAMW; kind++) {
        float l1[8], l2[8];
        size_t n1, n2;
        float *w1 = train(5, kind, 8, l1, &n1), *w2 = train(5, kind, 8, l2, &n2);
        assert_int_equal(n1, n2);
        test_assert_bitwise(l2, l1, 8, "losses of two runs with one seed");
        test_assert_bitwise(w2, w1, n1, "weights of two runs with one seed");
        assert_true(l1[7] < l1[0]); /* and it learns */
        float l3[8];
        size_t n3;
        float *w3 = train(6, kind, 8, l3, &n3);
        assert_true(memcmp(w3, w1, sizeof(float) * n1) != 0); /* another seed, other weights */
        free(w1), free(w2), free(w3);
    }
}

/* PyTorch's initialisation, drawn on the host: the same numbers on either backend. */
static void test_init_is_backend_independent(void **state)
{
    (void)state;
    nncl_context *saved = ctx;
    nncl_network *here = make_net(NNCL_OPT_SGD, 21);
    size_t n1, n2;
    float *w1 = all_weights(here, &n1);
    ctx = test_context("cpu");
    nncl_network *cpu = make_net(NNCL_OPT_SGD, 21);
    float *w2 = all_weights(cpu, &n2);
    assert_int_equal(n1, n2);
    test_assert_bitwise(w1, w2, n1, "initial weights on this backend and on the CPU reference");
    double bound = 1.0 / 3.0, max_abs = 0.0; /* conv weight: fan_in 9 */
    for (size_t i = 0; i < 36; i++) max_abs = fmax(max_abs, fabs(w1[i]));
    assert_true(max_abs <= bound && max_abs > 0.8 * bound);
    nncl_network_destroy(cpu);
    nncl_context_destroy(ctx);
    ctx = saved;
    nncl_network_destroy(here);
    free(w1), free(w2);
}

static void test_schedules(void **state)
{
    (void)state;
    nncl_network *net = make_net(NNCL_OPT_SGD, 1);
    nncl_optimizer_options o = nncl_optimizer_options_default(NNCL_OPT_SGD);
    o.lr = 0.1f;
    o.schedule = NNCL_SCHED_STEP, o.step_size = 3, o.gamma = 0.5f;
    TEST_OK(ctx, nncl_network_set_optimizer(net, &o));
    const double pi = 3.14159265358979323846;
    for (int64_t t = 0; t < 10; t++) {
        float lr;
        TEST_OK(ctx, nncl_network_set_step(net, t));
        TEST_OK(ctx, nncl_network_lr(net, &lr));
        assert_float_equal(lr, 0.1 * pow(0.5, (double)(t / 3)), 1e-7);
    }
    o.schedule = NNCL_SCHED_COSINE, o.t_max = 8, o.eta_min = 0.01f, o.warmup_steps = 4, o.warmup_start_factor = 0.25f;
    TEST_OK(ctx, nncl_network_set_optimizer(net, &o));
    for (int64_t t = 0; t < 12; t++) {
        float lr;
        TEST_OK(ctx, nncl_network_set_step(net, t));
        TEST_OK(ctx, nncl_network_lr(net, &lr));
        double tt = (double)(t < 8 ? t : 8);
        double want = 0.01 + (0.1 - 0.01) * (1 + cos(pi * tt / 8)) / 2;
        if (t < 4) want *= 0.25 + 0.75 * (double)t / 4;
        assert_float_equal(lr, want, 1e-7);
    }
    o.schedule = NNCL_SCHED_STEP, o.step_size = 0;
    assert_int_equal(nncl_network_set_optimizer(net, &o), NNCL_ERR_INVALID_ARG);
    o = nncl_optimizer_options_default(NNCL_OPT_SGD);
    o.nesterov = 1; /* without momentum */
    assert_int_equal(nncl_network_set_optimizer(net, &o), NNCL_ERR_INVALID_ARG);
    assert_non_null(strstr(nncl_context_last_error(ctx), "nesterov"));
    nncl_network_destroy(net);
}

static void path_in_tmp(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static void test_checkpoints_round_trip(void **state)
{
    (void)state;
    float losses[4];
    char wpath[256], spath[256];
    path_in_tmp(wpath, sizeof wpath, "w.safetensors");
    path_in_tmp(spath, sizeof spath, "s.safetensors");
    nncl_network *a = make_net(NNCL_OPT_ADAMW, 11);
    float x[BATCH * SAMPLE];
    int64_t y[BATCH];
    for (int s = 0; s < 4; s++) {
        make_batch(400 + (uint64_t)s, x, y);
        TEST_OK(ctx, nncl_network_set_batch(a, x, y, NULL, BATCH));
        TEST_OK(ctx, nncl_network_train_step(a));
        TEST_OK(ctx, nncl_network_metrics(a, &losses[s], NULL));
    }
    nncl_train_position pos = {.epoch = 2, .batch = 5, .seed = 11};
    TEST_OK(ctx, nncl_network_save_weights(a, wpath));
    TEST_OK(ctx, nncl_network_save_state(a, spath, &pos));

    /* Weights into a fresh network: the same numbers. */
    nncl_network *b = make_net(NNCL_OPT_ADAMW, 99);
    TEST_OK(ctx, nncl_network_load_weights(b, wpath));
    size_t na, nb;
    float *wa = all_weights(a, &na), *wb = all_weights(b, &nb);
    test_assert_bitwise(wb, wa, na, "weights after save and load");
    nncl_layer *bn;
    int64_t tracked;
    TEST_OK(ctx, nncl_network_layer(b, 1, &bn));
    TEST_OK(ctx, nncl_layer_batches_tracked(bn, &tracked));
    assert_int_equal(tracked, 4);
    free(wb);

    /* The full state: both networks then continue identically. */
    nncl_network *c = make_net(NNCL_OPT_ADAMW, 98);
    nncl_train_position got;
    TEST_OK(ctx, nncl_network_load_state(c, spath, &got));
    assert_int_equal(got.epoch, 2);
    assert_int_equal(got.batch, 5);
    assert_int_equal(got.seed, 11);
    for (int s = 0; s < 3; s++) {
        make_batch(500 + (uint64_t)s, x, y);
        TEST_OK(ctx, nncl_network_set_batch(a, x, y, NULL, BATCH));
        TEST_OK(ctx, nncl_network_train_step(a));
        TEST_OK(ctx, nncl_network_set_batch(c, x, y, NULL, BATCH));
        TEST_OK(ctx, nncl_network_train_step(c));
    }
    free(wa);
    wa = all_weights(a, &na);
    float *wc = all_weights(c, &nb);
    test_assert_bitwise(wc, wa, na, "weights after resuming from the training state");
    free(wa), free(wc);
    nncl_network_destroy(a);
    nncl_network_destroy(b);
    nncl_network_destroy(c);
}

/* Records a known error on ctx, so that a check of the next message sees that call's own. */
static void poison_error(void)
{
    assert_int_equal(nncl_tensor_fill(ctx, NULL, 0.0f), NNCL_ERR_INVALID_ARG);
}

/* The offset in a safetensors file just past the header's first ':', where a '}' breaks its JSON. */
static size_t json_break_offset(const unsigned char *bytes, size_t size)
{
    for (size_t i = 8; i < size; i++)
        if (bytes[i] == ':') return i + 1;
    fail_msg("no ':' in the header");
    return 0;
}

static void test_bad_checkpoints(void **state)
{
    (void)state;
    char wpath[256], bad[256];
    path_in_tmp(wpath, sizeof wpath, "good.safetensors");
    path_in_tmp(bad, sizeof bad, "bad.safetensors");
    nncl_network *net = make_net(NNCL_OPT_SGD, 3);
    TEST_OK(ctx, nncl_network_save_weights(net, wpath));
    size_t file_size;
    unsigned char *bytes = test_read_file(wpath, &file_size);
    const long size = (long)file_size;
    /* A different network (other weights) that must stay as it is. */
    nncl_network *target = make_net(NNCL_OPT_SGD, 4);
    size_t n0;
    float *before = all_weights(target, &n0);
    int refused = 0;
    for (long cut = 0; cut < size; cut++) { /* every truncation */
        test_write_file(bad, bytes, (size_t)cut);
        poison_error();
        nncl_status st = nncl_network_load_weights(target, bad);
        if (st != NNCL_ERR_FORMAT && st != NNCL_ERR_IO)
            fail_msg("truncated at %ld of %ld bytes: %s", cut, size, nncl_status_name(st));
        assert_non_null(strstr(nncl_context_last_error(ctx), bad)); /* this load's message, naming the file */
        refused++;
    }
    /* A corrupted header: its JSON broken after the first key ({"0.weight":}...). */
    unsigned char *corrupt = malloc((size_t)size);
    memcpy(corrupt, bytes, (size_t)size);
    corrupt[json_break_offset(bytes, (size_t)size)] = '}';
    test_write_file(bad, corrupt, (size_t)size);
    assert_int_equal(nncl_network_load_weights(target, bad), NNCL_ERR_FORMAT);
    size_t n1;
    float *after = all_weights(target, &n1);
    test_assert_bitwise(after, before, n0, "weights after refused loads");
    print_message("refused %d truncations of a %ld-byte checkpoint and a corrupted header\n", refused, size);

    /* Weights of another architecture: names and shapes do not match. */
    nncl_spec other;
    TEST_OK(ctx, nncl_spec_parse(ctx, "input 1 8 8\nconv2d 5 kernel=3 padding=1 bias=0\nbatchnorm2d\nrelu\nmaxpool2d 2\n"
                                      "flatten\ndropout\nlinear 10\n", "other.spec", &other));
    TEST_OK(ctx, nncl_network_plan(other.net, other.ndim, other.shape, BATCH));
    assert_int_equal(nncl_network_load_weights(other.net, wpath), NNCL_ERR_SHAPE);
    assert_non_null(strstr(nncl_context_last_error(ctx), "0.weight"));
    nncl_network_destroy(other.net);
    TEST_OK(ctx, nncl_spec_parse(ctx, "input 1 8 8\nflatten\nlinear 10\n", "mlp.spec", &other));
    TEST_OK(ctx, nncl_network_plan(other.net, other.ndim, other.shape, BATCH));
    assert_int_equal(nncl_network_load_weights(other.net, wpath), NNCL_ERR_SHAPE);
    assert_non_null(strstr(nncl_context_last_error(ctx), "1.weight is F32 (4), the network needs F32 (10, 64)"));
    nncl_network_destroy(other.net);
    /* The same layers without the last bias: the file has a tensor the network lacks. */
    TEST_OK(ctx, nncl_spec_parse(ctx, "input 1 8 8\nconv2d 4 kernel=3 padding=1 bias=0\nbatchnorm2d\nrelu\nmaxpool2d 2\n"
                                      "flatten\ndropout\nlinear 10 bias=0\n", "nobias.spec", &other));
    TEST_OK(ctx, nncl_network_plan(other.net, other.ndim, other.shape, BATCH));
    assert_int_equal(nncl_network_load_weights(other.net, wpath), NNCL_ERR_FORMAT);
    assert_non_null(strstr(nncl_context_last_error(ctx), "unexpected tensor 6.bias"));
    nncl_network_destroy(other.net);
    /* A weights file is not a training state. */
    assert_int_equal(nncl_network_load_state(target, wpath, &(nncl_train_position){0}), NNCL_ERR_FORMAT);
    assert_non_null(strstr(nncl_context_last_error(ctx), "not an nncl training state"));
    test_assert_context_works(ctx);
    free(bytes), free(corrupt), free(before), free(after);
    nncl_network_destroy(net);
    nncl_network_destroy(target);
    unlink(bad);
    unlink(wpath);
}

/* Trains one step and returns its loss, which must be finite. */
static float one_step(nncl_network *net, uint64_t seed)
{
    float x[BATCH * SAMPLE], loss;
    int64_t y[BATCH];
    make_batch(seed, x, y);
    TEST_OK(ctx, nncl_network_set_batch(net, x, y, NULL, BATCH));
    TEST_OK(ctx, nncl_network_train_step(net));
    TEST_OK(ctx, nncl_network_metrics(net, &loss, NULL));
    assert_true(isfinite(loss));
    return loss;
}

/* Trains `steps` steps on batches seeded from `seed`. */
static void train_steps(nncl_network *net, int steps, uint64_t seed)
{
    for (int s = 0; s < steps; s++) one_step(net, seed + (uint64_t)s);
}

/* A training state cut anywhere, or with a broken header, is refused, and the network keeps its weights, its
   optimizer state and its step: it then trains on bit for bit as a twin that never saw the bad files. */
static void test_bad_state_checkpoints(void **state)
{
    (void)state;
    char spath[256], bad[256];
    path_in_tmp(spath, sizeof spath, "good.state");
    path_in_tmp(bad, sizeof bad, "bad.state");
    nncl_network *source = make_net(NNCL_OPT_ADAMW, 5);
    train_steps(source, 2, 900);
    const nncl_train_position saved = {.epoch = 1, .batch = 2, .batch_size = BATCH, .seed = 5};
    TEST_OK(ctx, nncl_network_save_state(source, spath, &saved));
    size_t file_size;
    unsigned char *bytes = test_read_file(spath, &file_size);
    nncl_network *target = make_net(NNCL_OPT_ADAMW, 6), *twin = make_net(NNCL_OPT_ADAMW, 6);
    train_steps(target, 1, 950);
    train_steps(twin, 1, 950);
    const nncl_train_position sentinel = {.epoch = 7, .batch = 7, .batch_size = 7, .seed = 7};
    unsigned char *corrupt = malloc(file_size); /* whole, with the header's JSON broken after its first key */
    assert_non_null(corrupt);
    memcpy(corrupt, bytes, file_size);
    corrupt[json_break_offset(bytes, file_size)] = '}';
    long refused = 0;
    for (size_t cut = 0; cut <= file_size; cut++) { /* every truncation, then the corrupted header */
        if (cut < file_size) test_write_file(bad, bytes, cut);
        else test_write_file(bad, corrupt, file_size);
        nncl_train_position pos = sentinel;
        poison_error();
        nncl_status st = nncl_network_load_state(target, bad, &pos);
        if (st != NNCL_ERR_FORMAT && st != NNCL_ERR_IO)
            fail_msg("state cut at %zu of %zu bytes: %s", cut, file_size, nncl_status_name(st));
        assert_non_null(strstr(nncl_context_last_error(ctx), bad)); /* this load's message, naming the file */
        assert_memory_equal(&pos, &sentinel, sizeof pos);
        refused++;
    }
    int64_t step_target, step_twin;
    TEST_OK(ctx, nncl_network_get_step(target, &step_target));
    TEST_OK(ctx, nncl_network_get_step(twin, &step_twin));
    assert_int_equal(step_target, step_twin);
    train_steps(target, 2, 960);
    train_steps(twin, 2, 960);
    size_t nt, nw;
    float *wt = all_weights(target, &nt), *ww = all_weights(twin, &nw);
    assert_int_equal(nt, nw);
    test_assert_bitwise(wt, ww, nt, "weights after refused states and two more steps");
    print_message("refused %ld truncations of a %zu-byte training state and a corrupted header\n", refused - 1,
                  file_size);
    /* The good file still loads, with its position. */
    nncl_train_position pos = sentinel;
    TEST_OK(ctx, nncl_network_load_state(target, spath, &pos));
    assert_memory_equal(&pos, &saved, sizeof pos);
    free(bytes), free(corrupt), free(wt), free(ww);
    nncl_network_destroy(source);
    nncl_network_destroy(target);
    nncl_network_destroy(twin);
    unlink(bad);
    unlink(spath);
}

/* The trace has one span per layer phase, and the kernels under them. */
/* conv2d + relu in a network: one launch fewer than the layers run apart, and the same bits. */
static void test_fused_conv_relu(void **state)
{
    (void)state;
    /* 20 channels of 81 pixels: whole blocks of the direct kernel (16 x 6) and blocks at both edges. */
    static const char *spec_text = "input 2 9 9\nconv2d 20 kernel=3 padding=1\nrelu\nflatten\nlinear 7\n";
    enum { N = 3, IN = 2 * 9 * 9, MID = 20 * 9 * 9, OUT = 7 };
    nncl_spec spec;
    TEST_OK(ctx, nncl_spec_parse(ctx, spec_text, "fused.spec", &spec));
    TEST_OK(ctx, nncl_network_plan(spec.net, spec.ndim, spec.shape, N));
    TEST_OK(ctx, nncl_network_init(spec.net, 5));
    float x[N * IN], fused[N * OUT], apart[N * OUT];
    test_rng r = test_rng_seed(77);
    test_rng_fill(&r, x, N * IN, -1.0f, 1.0f);
    TEST_OK(ctx, nncl_network_set_batch(spec.net, x, NULL, NULL, N));
    TEST_OK(ctx, nncl_network_forward(spec.net, NNCL_EVAL)); /* first GEMMs of a shape may measure: not counted */
    nncl_stats s0, s1, s1b, s2;
    TEST_OK(ctx, nncl_context_stats(ctx, &s0));
    TEST_OK(ctx, nncl_network_forward(spec.net, NNCL_EVAL));
    TEST_OK(ctx, nncl_context_stats(ctx, &s1));
    TEST_OK(ctx, nncl_network_output(spec.net, fused, N * OUT));

    /* The same layers, one call each, on tensors of their own. */
    nncl_layer *conv, *relu, *linear;
    TEST_OK(ctx, nncl_network_layer(spec.net, 0, &conv));
    TEST_OK(ctx, nncl_network_layer(spec.net, 1, &relu));
    TEST_OK(ctx, nncl_network_layer(spec.net, 3, &linear));
    const int64_t xs[4] = {N, 2, 9, 9}, ms[4] = {N, 20, 9, 9}, fs[2] = {N, MID}, os[2] = {N, OUT};
    nncl_tensor tx, ty, tr, tf, to;
    TEST_OK(ctx, nncl_tensor_create(ctx, 4, xs, &tx));
    TEST_OK(ctx, nncl_tensor_create(ctx, 4, ms, &ty));
    TEST_OK(ctx, nncl_tensor_create(ctx, 4, ms, &tr));
    TEST_OK(ctx, nncl_tensor_create(ctx, 2, os, &to));
    TEST_OK(ctx, nncl_tensor_write(ctx, &tx, x, N * IN));
    TEST_OK(ctx, nncl_context_stats(ctx, &s1b));
    TEST_OK(ctx, nncl_layer_forward(conv, NNCL_EVAL, &tx, &ty));
    TEST_OK(ctx, nncl_layer_forward(relu, NNCL_EVAL, &ty, &tr));
    TEST_OK(ctx, nncl_tensor_reshape(ctx, &tr, 2, fs, &tf));
    TEST_OK(ctx, nncl_layer_forward(linear, NNCL_EVAL, &tf, &to));
    TEST_OK(ctx, nncl_context_stats(ctx, &s2));
    TEST_OK(ctx, nncl_tensor_read(ctx, &to, apart, N * OUT));
    assert_memory_equal(fused, apart, sizeof fused);
    print_message("conv2d + relu + linear: %llu launches in the network, %llu apart\n",
                  (unsigned long long)(s1.kernel_launches - s0.kernel_launches),
                  (unsigned long long)(s2.kernel_launches - s1b.kernel_launches));
    /* The relu is applied where the bias is added: the relu layer's launch is saved. */
    assert_int_equal(s1.kernel_launches - s0.kernel_launches + 1, s2.kernel_launches - s1b.kernel_launches);
    nncl_tensor *ts[] = {&tx, &ty, &tr, &to};
    for (size_t i = 0; i < 4; i++) TEST_OK(ctx, nncl_tensor_destroy(ctx, ts[i]));
    nncl_network_destroy(spec.net);
}

/*
 * A training step of a network with fused layers (conv2d + relu + maxpool:
 * the relu has no kernel; linear + relu last: relu applied with the bias,
 * backward in place; flatten first: no input gradient for the first linear)
 * gives bit for bit the parameter gradients of its layers run one by one on
 * tensors of their own, with the relu layers' own kernels; so does a second
 * backward of the same forward.
 */
static void check_fused_step(const char *spec_text, int64_t n, int64_t classes)
{
    nncl_spec spec;
    TEST_OK(ctx, nncl_spec_parse(ctx, spec_text, "fused.spec", &spec));
    TEST_OK(ctx, nncl_network_plan(spec.net, spec.ndim, spec.shape, n));
    TEST_OK(ctx, nncl_network_init(spec.net, 11));
    int64_t per = 1;
    for (int d = 0; d < spec.ndim; d++) per *= spec.shape[d];
    float *x = malloc(sizeof(float) * (size_t)(n * per));
    int64_t labels[16];
    test_rng r = test_rng_seed(123);
    test_rng_fill(&r, x, (size_t)(n * per), -1.0f, 1.0f);
    for (int64_t i = 0; i < n; i++) labels[i] = test_rng_below(&r, (uint32_t)classes);
    TEST_OK(ctx, nncl_network_set_batch(spec.net, x, labels, NULL, n));
    TEST_OK(ctx, nncl_network_zero_grad(spec.net));
    TEST_OK(ctx, nncl_network_forward(spec.net, NNCL_TRAIN));
    TEST_OK(ctx, nncl_network_backward(spec.net));
    size_t count, count2;
    float *fused = read_params(spec.net, GRADS, &count);
    /* A second backward of the same forward gives the same gradients. */
    TEST_OK(ctx, nncl_network_zero_grad(spec.net));
    TEST_OK(ctx, nncl_network_backward(spec.net));
    float *again = read_params(spec.net, GRADS, &count2);
    assert_int_equal(count, count2);
    assert_memory_equal(fused, again, sizeof(float) * count);
    free(again);

    /* The same layers apart: forward through every layer, the loss, then backward through every layer. */
    TEST_OK(ctx, nncl_network_zero_grad(spec.net));
    size_t n_layers;
    TEST_OK(ctx, nncl_network_layer_count(spec.net, &n_layers));
    nncl_tensor act[16] = {{0}}, dact[16] = {{0}};
    int owned[16] = {0}, downed[16] = {0}; /* act[i], dact[i] have buffers of their own (else: alias views) */
    act[0].ndim = spec.ndim + 1;
    act[0].shape[0] = n;
    for (int d = 0; d < spec.ndim; d++) act[0].shape[d + 1] = spec.shape[d];
    TEST_OK(ctx, nncl_tensor_create(ctx, act[0].ndim, act[0].shape, &act[0]));
    TEST_OK(ctx, nncl_tensor_write(ctx, &act[0], x, (size_t)(n * per)));
    owned[0] = 1;
    for (size_t i = 0; i < n_layers; i++) {
        nncl_layer *l;
        int alias, ond;
        int64_t os[NNCL_MAX_DIMS];
        TEST_OK(ctx, nncl_network_layer(spec.net, i, &l));
        TEST_OK(ctx, nncl_layer_is_alias(l, &alias));
        TEST_OK(ctx, nncl_layer_output_shape(l, act[i].ndim, act[i].shape, &ond, os));
        if (!alias) {
            TEST_OK(ctx, nncl_tensor_create(ctx, ond, os, &act[i + 1]));
            owned[i + 1] = 1;
            if (i > 0) { /* the input gradient this layer writes */
                TEST_OK(ctx, nncl_tensor_create(ctx, act[i].ndim, act[i].shape, &dact[i]));
                downed[i] = 1;
            }
        }
        TEST_OK(ctx, nncl_layer_forward(l, NNCL_TRAIN, &act[i], &act[i + 1]));
    }
    TEST_OK(ctx, nncl_tensor_create(ctx, act[n_layers].ndim, act[n_layers].shape, &dact[n_layers]));
    downed[n_layers] = 1;
    nncl_loss *loss;
    nncl_tensor target, loss_value;
    const int64_t one = 1;
    TEST_OK(ctx, nncl_loss_create(ctx, NNCL_LOSS_CROSS_ENTROPY, 0.0f, &loss));
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &n, &target));
    TEST_OK(ctx, nncl_tensor_write_labels(ctx, &target, labels, (size_t)n, classes));
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &one, &loss_value));
    TEST_OK(ctx, nncl_loss_forward(loss, &act[n_layers], &target, &loss_value));
    TEST_OK(ctx, nncl_loss_backward(loss, &act[n_layers], &target, &dact[n_layers]));
    for (size_t i = n_layers; i-- > 0;) {
        nncl_layer *l;
        int alias;
        TEST_OK(ctx, nncl_network_layer(spec.net, i, &l));
        TEST_OK(ctx, nncl_layer_is_alias(l, &alias));
        if (i == 0 && alias) break; /* the network's input needs no gradient */
        TEST_OK(ctx, nncl_layer_backward(l, &act[i], &act[i + 1], &dact[i + 1], i == 0 ? NULL : &dact[i]));
    }
    float *apart = read_params(spec.net, GRADS, &count2);
    assert_int_equal(count, count2);
    assert_memory_equal(fused, apart, sizeof(float) * count);
    print_message("%zu parameter gradients, fused and apart: bit for bit\n", count);

    for (size_t i = 0; i <= n_layers; i++) {
        if (owned[i]) TEST_OK(ctx, nncl_tensor_destroy(ctx, &act[i]));
        if (downed[i]) TEST_OK(ctx, nncl_tensor_destroy(ctx, &dact[i]));
    }
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &target));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &loss_value));
    nncl_loss_destroy(loss);
    free(fused);
    free(apart);
    free(x);
    nncl_network_destroy(spec.net);
}

static void test_fused_backward(void **state)
{
    (void)state;
    check_fused_step("input 2 10 10\nconv2d 20 kernel=3 padding=1\nrelu\nmaxpool2d 2\nflatten\nlinear 9\nrelu\n"
                     "loss cross_entropy\n",
                     5, 9);
    check_fused_step("input 1 6 6\nflatten\nlinear 17\nrelu\nlinear 4\nloss cross_entropy\n", 6, 4);
}

static void test_trace(void **state)
{
    (void)state;
    nncl_backend_kind kind;
    TEST_OK(ctx, nncl_context_backend(ctx, &kind));
    nncl_context_options opt = nncl_context_options_default();
    opt.backend = kind;
    opt.profiling = 1;
    nncl_context *saved = ctx;
    TEST_OK(NULL, nncl_context_create(&opt, &ctx));
    nncl_network *net = make_net(NNCL_OPT_SGD, 1);
    float x[BATCH * SAMPLE];
    int64_t y[BATCH];
    make_batch(1, x, y);
    for (int s = 0; s < 2; s++) {
        TEST_OK(ctx, nncl_network_set_batch(net, x, y, NULL, BATCH));
        TEST_OK(ctx, nncl_network_train_step(net));
    }
    char path[256];
    path_in_tmp(path, sizeof path, "trace.json");
    TEST_OK(ctx, nncl_context_write_trace(ctx, path));
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_true(strncmp(text, "{\"displayTimeUnit\"", 18) == 0);
    const char *want[] = {"\"0.conv2d forward\"", "\"0.conv2d backward\"", "\"1.batchnorm forward\"",
                          "\"6.linear backward\"", "\"optimizer update\"", "\"cat\": \"kernel\""};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (strstr(text, want[i]) == NULL) fail_msg("the trace lacks %s", want[i]);
    unlink(path);
    nncl_network_destroy(net);
    nncl_context_destroy(ctx);
    ctx = saved;
    /* Without profiling there is no trace. */
    assert_int_equal(nncl_context_write_trace(ctx, path), NNCL_ERR_INVALID_ARG);
}

static void test_bad_specs(void **state)
{
    (void)state;
    const nncl_status F = NNCL_ERR_FORMAT, S = NNCL_ERR_SHAPE; /* a malformed line; a layer that does not fit */
    const struct {
        const char *text;
        nncl_status status;
        const char *expect;
    } cases[] = {
        {"conv2d 4 kernel=3\n", F, "bad.spec:1: conv2d: the first statement must be 'input'"},
        {"input 1 28 28\nconv2d 4 kernal=3\n", F, "bad.spec:2: conv2d: needs kernel=K"},
        {"input 1 28 28\nconv2d 4 kernel=3 kernal=3\n", F, "bad.spec:2: conv2d: unknown option 'kernal'"},
        {"input 1 28 28\n\n# comment\nfrobnicate\n", F, "bad.spec:4: frobnicate: unknown layer"},
        {"input 1 28 28\nlinear ten\n", F, "bad.spec:2: linear: features 'ten' is not an integer"},
        {"input 784\nlinear 10x3\n", F, "bad.spec:2: linear: features '10x3' is not an integer"},
        {"input 4\nflatten start_dim=0\nlinear 2\n", S, "bad.spec:2: flatten: does not keep the batch dimension"},
        {"input 1 28 28\nconv2d 4x9 kernel=3\n", F, "bad.spec:2: conv2d: channels '4x9' is not an integer"},
        {"input 1 28 28\nconv2d 4 kernel=3 groups=3\n", F, "bad.spec:2: conv2d: groups 3 must divide"},
        {"input 1 4 4\nconv2d 4 kernel=7\n", S, "bad.spec:2: conv2d(in=1, out=4, kernel=7x7"},
        {"input 784\nconv2d 8 kernel=3\n", S, "bad.spec:2: conv2d: needs an input of shape (C, H, W)"},
        {"input 1 28 28\nbatchnorm1d\n", S, "bad.spec:2: batchnorm1d: needs an input of shape (C) or (C, L)"},
        {"input 8 4\nlayernorm dims=3\n", S, "bad.spec:2: layernorm: dims=3, but the input has 2 dimensions"},
        {"input 1 28 28\ndropout p=1.5\n", F, "bad.spec:2: dropout: p '1.5' is not a number in [0, 0.999999]"},
        {"input 1 28 28\nflatten\nlinear 10\nloss hinge\n", F, "bad.spec:4: loss: unknown loss 'hinge'"},
        {"input 1 28 28\ninput 1 28 28\n", F, "bad.spec:2: input: a second input line"},
        {"input 1 28 28\n", F, "bad.spec: no layers"},
        {"input 0 28 28\nflatten\n", F, "bad.spec:1: input: size '0' is not an integer in 1.."},
        {"input 1 28 28\nflatten\nloss mse\nrelu\n", F, "bad.spec:4: relu: layers must come before the loss"},
        {"input 2147483647 2147483647 2147483647\nflatten\nlinear 10\n", F,
         "bad.spec:1: input: a sample of more than 2^40 elements"},
        {"input 1 1 1\nconv2d 1 kernel=1 padding=2147483647\nrelu\n", F,
         "bad.spec:2: conv2d: gives a sample of more than 2^40 elements"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nncl_spec spec;
        nncl_status st = nncl_spec_parse(ctx, cases[i].text, "bad.spec", &spec);
        if (st != cases[i].status)
            fail_msg("spec %zu: %s instead of %s", i, nncl_status_name(st), nncl_status_name(cases[i].status));
        /* The message starts with the expected text: the file and line once, then the layer. */
        if (strncmp(nncl_context_last_error(ctx), cases[i].expect, strlen(cases[i].expect)) != 0)
            fail_msg("spec %zu: message \"%s\" does not start \"%s\"", i, nncl_context_last_error(ctx),
                     cases[i].expect);
    }
    /* An over-long line is named by its number alone, not by the layer of the line before. */
    char long_spec[2048] = "input 1 28 28\nflatten\n";
    memset(long_spec + strlen(long_spec), 'x', 1500);
    nncl_spec spec;
    assert_int_equal(nncl_spec_parse(ctx, long_spec, "long.spec", &spec), NNCL_ERR_FORMAT);
    assert_non_null(strstr(nncl_context_last_error(ctx), "long.spec:3: line longer than"));
    assert_int_equal(nncl_spec_load(ctx, "/nonexistent/x.spec", &spec), NNCL_ERR_IO);
    /* A sample of 2^40 elements, the most there is, parses (it is never planned here): the bound is the
       sample's, not that of the batch of two the parser carries through each layer as well. */
    TEST_OK(ctx, nncl_spec_parse(ctx, "input 1048576 1048576\nrelu\nflatten\n", "big.spec", &spec));
    nncl_network_destroy(spec.net);
    /* A plan for the wrong input fails cleanly, and the same network then plans for the right one. */
    TEST_OK(ctx, nncl_spec_parse(ctx, SPEC, "test.spec", &spec));
    const int64_t wrong[3] = {3, 8, 8};
    assert_int_equal(nncl_network_plan(spec.net, 3, wrong, BATCH), NNCL_ERR_SHAPE);
    assert_non_null(strstr(nncl_context_last_error(ctx), "(layer 0)"));
    TEST_OK(ctx, nncl_network_plan(spec.net, spec.ndim, spec.shape, BATCH));
    nncl_network_destroy(spec.net);
    test_assert_context_works(ctx);
}

/* Each optimizer's update against its formula (torch.optim's), over three steps. */
static void test_optimizer_formulas(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        nncl_optimizer_kind kind;
        float lr, wd, momentum, dampening;
        int nesterov;
    } cases[] = {
        {"plain SGD", NNCL_OPT_SGD, 0.1f, 0.0f, 0.0f, 0.0f, 0},
        {"SGD, weight decay", NNCL_OPT_SGD, 0.1f, 0.05f, 0.0f, 0.0f, 0},
        {"SGD, momentum with dampening", NNCL_OPT_SGD, 0.1f, 0.01f, 0.9f, 0.3f, 0},
        {"SGD, Nesterov", NNCL_OPT_SGD, 0.1f, 0.01f, 0.9f, 0.0f, 1},
        {"Adam, weight decay", NNCL_OPT_ADAM, 0.01f, 0.01f, 0.0f, 0.0f, 0},
        {"AdamW", NNCL_OPT_ADAMW, 0.01f, 0.1f, 0.0f, 0.0f, 0},
    };
    enum { N = 5, IN = 7, OUT = 3 };
    float x[N * IN], t[N * OUT];
    test_rng r = test_rng_seed(1234);
    test_rng_fill(&r, x, N * IN, -1.0f, 1.0f);
    test_rng_fill(&r, t, N * OUT, -1.0f, 1.0f);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nncl_spec spec;
        TEST_OK(ctx, nncl_spec_parse(ctx, "input 7\nlinear 3\nloss mse\n", "opt.spec", &spec));
        nncl_network *net = spec.net;
        TEST_OK(ctx, nncl_network_plan(net, spec.ndim, spec.shape, N));
        TEST_OK(ctx, nncl_network_init(net, 5));
        nncl_optimizer_options o = nncl_optimizer_options_default(cases[c].kind);
        o.lr = cases[c].lr, o.weight_decay = cases[c].wd, o.momentum = cases[c].momentum;
        o.dampening = cases[c].dampening, o.nesterov = cases[c].nesterov;
        TEST_OK(ctx, nncl_network_set_optimizer(net, &o));
        for (int step = 0; step < 3; step++) {
            TEST_OK(ctx, nncl_network_set_batch(net, x, NULL, t, N));
            TEST_OK(ctx, nncl_network_zero_grad(net));
            TEST_OK(ctx, nncl_network_forward(net, NNCL_TRAIN));
            TEST_OK(ctx, nncl_network_backward(net));
            size_t n, ng;
            float *w = read_params(net, VALUES, &n), *g = read_params(net, GRADS, &ng);
            assert_int_equal(n, ng); /* a linear layer: no buffers */
            float *s1 = read_params(net, STATE0, &ng);
            float *s2 = o.kind == NNCL_OPT_SGD ? NULL : read_params(net, STATE1, &ng);
            TEST_OK(ctx, nncl_network_step(net));
            float *w1 = read_params(net, VALUES, &n);
            const double lr = o.lr, wd = o.weight_decay, b1 = o.beta1, b2 = o.beta2, tt = step + 1;
            for (size_t i = 0; i < n; i++) {
                double want, wi = w[i], gi = g[i];
                if (o.kind == NNCL_OPT_SGD) {
                    double d = gi + wd * wi;
                    if (o.momentum != 0.0f) {
                        double buf = step == 0 ? d : o.momentum * s1[i] + (1.0 - o.dampening) * d;
                        d = o.nesterov ? d + o.momentum * buf : buf;
                    }
                    want = wi - lr * d;
                } else {
                    if (o.kind == NNCL_OPT_ADAMW) wi *= 1.0 - lr * wd;
                    else gi += wd * wi;
                    double m = b1 * s1[i] + (1.0 - b1) * gi, v = b2 * s2[i] + (1.0 - b2) * gi * gi;
                    double step_size = lr / (1.0 - pow(b1, tt)), bc2 = sqrt(1.0 - pow(b2, tt));
                    want = wi - step_size * m / (sqrt(v) / bc2 + o.eps);
                }
                /* float arithmetic against double: 1e-5 of the weight and of the update */
                if (!(fabs(w1[i] - want) <= 1e-5 * (fabs(want) + fabs(want - w[i])) + 1e-7))
                    fail_msg("%s, step %d, parameter %zu: %.9g, expected %.9g (from %.9g)", cases[c].what, step + 1, i,
                             (double)w1[i], want, (double)w[i]);
            }
            free(w), free(g), free(s1), free(s2), free(w1);
        }
        nncl_network_destroy(net);
    }
}

/* Expects status `want` and a message that contains `fragment`. */
static void expect_error(nncl_status got, nncl_status want, const char *fragment)
{
    if (got != want)
        fail_msg("%s instead of %s: %s", nncl_status_name(got), nncl_status_name(want), nncl_context_last_error(ctx));
    if (strstr(nncl_context_last_error(ctx), fragment) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", nncl_context_last_error(ctx), fragment);
}

static void test_misuse(void **state)
{
    (void)state;
    nncl_network *net = make_net(NNCL_OPT_SGD, 21);
    /* A second plan is refused, and the first one stays. */
    const int64_t sample[3] = {1, 8, 8};
    expect_error(nncl_network_plan(net, 3, sample, BATCH), NNCL_ERR_INVALID_ARG, "already planned");
    one_step(net, 700);
    /* A layer or a loss the network owns: refused, never freed twice (ASan watches). */
    nncl_layer *first;
    TEST_OK(ctx, nncl_network_layer(net, 0, &first));
    expect_error(nncl_network_add(net, first), NNCL_ERR_INVALID_ARG, "already belongs to a network");
    expect_error(nncl_layer_destroy(first), NNCL_ERR_INVALID_ARG, "belongs to a network");
    nncl_network *other;
    TEST_OK(ctx, nncl_network_create(ctx, &other));
    expect_error(nncl_network_add(other, first), NNCL_ERR_INVALID_ARG, "already belongs to a network");
    nncl_loss *loss;
    TEST_OK(ctx, nncl_loss_create(ctx, NNCL_LOSS_MSE, 0.0f, &loss));
    TEST_OK(ctx, nncl_network_set_loss(other, loss));
    expect_error(nncl_network_set_loss(other, loss), NNCL_ERR_INVALID_ARG, "already belongs to a network");
    expect_error(nncl_loss_destroy(loss), NNCL_ERR_INVALID_ARG, "belongs to a network");
    /* A tensor a layer or a network owns is refused by nncl_tensor_destroy, also where it fills its whole
       buffer, so that no view check can tell it from a user's tensor: a parameter and its gradient before
       planning, then the only weight of a planned network and its optimizer state. Destroying them used to
       free memory the layer and the network go on using (ASan watches). */
    nncl_layer *lone;
    TEST_OK(ctx, nncl_linear_create(ctx, 4, 3, 0, &lone));
    nncl_tensor w, g, m;
    TEST_OK(ctx, nncl_layer_param(lone, 0, NULL, &w, &g));
    expect_error(nncl_tensor_destroy(ctx, &w), NNCL_ERR_INVALID_ARG, "belongs to a layer");
    expect_error(nncl_tensor_destroy(ctx, &g), NNCL_ERR_INVALID_ARG, "belongs to a layer");
    nncl_network *single;
    TEST_OK(ctx, nncl_network_create(ctx, &single));
    TEST_OK(ctx, nncl_network_add(single, lone));
    const int64_t four = 4;
    TEST_OK(ctx, nncl_network_plan(single, 1, &four, 2));
    nncl_optimizer_options adam = nncl_optimizer_options_default(NNCL_OPT_ADAM);
    TEST_OK(ctx, nncl_network_set_optimizer(single, &adam));
    TEST_OK(ctx, nncl_layer_param(lone, 0, NULL, &w, &g));
    TEST_OK(ctx, nncl_network_optimizer_state(single, 0, 0, 0, NULL, &m));
    assert_int_equal(nncl_tensor_numel(&w), 12); /* the whole parameter arena */
    expect_error(nncl_tensor_destroy(ctx, &w), NNCL_ERR_INVALID_ARG, "belongs to a layer");
    expect_error(nncl_tensor_destroy(ctx, &g), NNCL_ERR_INVALID_ARG, "belongs to a layer");
    expect_error(nncl_tensor_destroy(ctx, &m), NNCL_ERR_INVALID_ARG, "belongs to a layer");
    TEST_OK(ctx, nncl_network_zero_grad(single));
    float wv[12];
    TEST_OK(ctx, nncl_tensor_read(ctx, &w, wv, 12));
    nncl_network_destroy(single);
    /* A class loss needs (N, C) outputs: a network that ends in (N, C, H, W) is refused, where it used to
       train on N rows of C H W classes. */
    nncl_spec image;
    TEST_OK(ctx, nncl_spec_parse(ctx, "input 1 4 4\nconv2d 3 kernel=3\nloss cross_entropy\n", "image.spec", &image));
    const int64_t image_sample[3] = {1, 4, 4};
    expect_error(nncl_network_plan(image.net, 3, image_sample, 2), NNCL_ERR_SHAPE,
                 "cross_entropy needs the network's output to be (N, C), not (2, 3, 2, 2)");
    nncl_network_destroy(image.net);
    /* Owned from the call on, even by a NULL network or on refusal: freed, never leaked (ASan watches). */
    nncl_layer *orphan;
    TEST_OK(ctx, nncl_linear_create(ctx, 4, 2, 1, &orphan));
    assert_int_equal(nncl_network_add(NULL, orphan), NNCL_ERR_INVALID_ARG);
    assert_non_null(strstr(nncl_context_last_error(NULL), "nncl_network_add: network is NULL"));
    nncl_loss *stray;
    TEST_OK(ctx, nncl_loss_create(ctx, NNCL_LOSS_MSE, 0.0f, &stray));
    assert_int_equal(nncl_network_set_loss(NULL, stray), NNCL_ERR_INVALID_ARG);
    assert_non_null(strstr(nncl_context_last_error(NULL), "nncl_network_set_loss: network is NULL"));
    nncl_context_options cpu_opt = nncl_context_options_default();
    cpu_opt.backend = NNCL_BACKEND_CPU;
    nncl_context *elsewhere;
    TEST_OK(NULL, nncl_context_create(&cpu_opt, &elsewhere));
    TEST_OK(elsewhere, nncl_loss_create(elsewhere, NNCL_LOSS_MSE, 0.0f, &stray));
    expect_error(nncl_network_set_loss(other, stray), NNCL_ERR_INVALID_ARG, "loss of another context");
    TEST_OK(elsewhere, nncl_context_destroy(elsewhere));
    /* Checkpoints of a network without layers or an optimizer. */
    char path[256];
    path_in_tmp(path, sizeof path, "empty.safetensors");
    TEST_OK(ctx, nncl_network_save_weights(other, path)); /* an empty state_dict, as torch writes one */
    TEST_OK(ctx, nncl_network_load_weights(other, path));
    expect_error(nncl_network_save_weights(other, "/nonexistent/w.safetensors"), NNCL_ERR_IO, "/nonexistent");
    expect_error(nncl_network_load_weights(other, "/nonexistent/w.safetensors"), NNCL_ERR_IO, "/nonexistent");
    nncl_train_position pos = {0};
    expect_error(nncl_network_save_state(other, path, &pos), NNCL_ERR_INVALID_ARG, "no optimizer");
    nncl_network_destroy(other);
    /* Optimizer settings must be finite: each one named. */
    static const struct {
        const char *name;
        size_t offset;
    } fields[] = {
        {"momentum", offsetof(nncl_optimizer_options, momentum)},   {"weight_decay", offsetof(nncl_optimizer_options, weight_decay)},
        {"eps", offsetof(nncl_optimizer_options, eps)},             {"clip_norm", offsetof(nncl_optimizer_options, clip_norm)},
        {"gamma", offsetof(nncl_optimizer_options, gamma)},         {"lr", offsetof(nncl_optimizer_options, lr)},
    };
    const float bad[2] = {INFINITY, NAN};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        for (int b = 0; b < 2; b++) {
            nncl_optimizer_options o = nncl_optimizer_options_default(NNCL_OPT_ADAM);
            memcpy((char *)&o + fields[i].offset, &bad[b], sizeof(float));
            expect_error(nncl_network_set_optimizer(net, &o), NNCL_ERR_INVALID_ARG, fields[i].name);
        }
    }
    one_step(net, 701); /* the SGD optimizer of make_net is still the network's */
    /* A sample too large to plan, refused before any size can overflow. */
    nncl_spec spec;
    TEST_OK(ctx, nncl_spec_parse(ctx, "input 4\nflatten\nrelu\n", "relu.spec", &spec));
    const int64_t huge[3] = {2147483647, 2147483647, 2};
    expect_error(nncl_network_plan(spec.net, 3, huge, BATCH), NNCL_ERR_SHAPE, "more than 2^40 elements");
    nncl_network_destroy(spec.net);
    test_assert_context_works(ctx);
    nncl_network_destroy(net);
}

/*
 * Rewrites the string metadata `key` of safetensors file src into dst (the
 * header's length changes; the data, addressed from the header's end, does not).
 */
static void rewrite_meta(const char *src, const char *dst, const char *key, const char *value)
{
    size_t size;
    unsigned char *in = test_read_file(src, &size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | in[i];
    char pattern[128];
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    char *header = calloc(n + 1, 1);
    memcpy(header, in + 8, n);
    char *at = strstr(header, pattern);
    assert_non_null(at);
    at += strlen(pattern);
    char *end = strchr(at, '"');
    assert_non_null(end);
    size_t m = (size_t)(at - header) + strlen(value) + strlen(end);
    FILE *f = fopen(dst, "wb");
    assert_non_null(f);
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(m >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(header, 1, (size_t)(at - header), f);
    fputs(value, f);
    fputs(end, f);
    fwrite(in + 8 + n, 1, size - 8 - n, f);
    fclose(f);
    free(header);
    free(in);
}

static void test_bad_state_metadata(void **state)
{
    (void)state;
    char wpath[256], spath[256], bad[256];
    path_in_tmp(wpath, sizeof wpath, "meta_w.safetensors");
    path_in_tmp(spath, sizeof spath, "meta_s.safetensors");
    path_in_tmp(bad, sizeof bad, "meta_bad.safetensors");
    /* On a context of its own: a successful save leaves no error behind. */
    nncl_context *shared = ctx;
    ctx = test_context(backend_name);
    nncl_network *adam = make_net(NNCL_OPT_ADAM, 31);
    one_step(adam, 800);
    nncl_train_position pos = {.seed = 31};
    TEST_OK(ctx, nncl_network_save_weights(adam, wpath));
    TEST_OK(ctx, nncl_network_save_state(adam, spath, &pos));
    assert_int_equal(nncl_context_last_status(ctx), NNCL_OK);
    assert_string_equal(nncl_context_last_error(ctx), "");
    /* Adam's state into AdamW: the same tensors, told apart by the metadata. */
    nncl_network *adamw = make_net(NNCL_OPT_ADAMW, 32);
    expect_error(nncl_network_load_state(adamw, spath, &pos), NNCL_ERR_FORMAT,
                 "the state is of optimizer adam, the network's is adamw");
    nncl_network *adam2 = make_net(NNCL_OPT_ADAM, 33);
    TEST_OK(ctx, nncl_network_load_state(adam2, spath, &pos));
    /* Normalisation a double holds but a float does not: refused before any weight changes. */
    size_t n0, n1;
    float *before = all_weights(adamw, &n0);
    static const char *const stds[] = {"1e-50", "1e39", "0", "nan"};
    for (size_t i = 0; i < sizeof stds / sizeof stds[0]; i++) {
        rewrite_meta(wpath, bad, "input.std", stds[i]);
        expect_error(nncl_network_load_weights(adamw, bad), NNCL_ERR_FORMAT, "bad input normalisation metadata");
    }
    rewrite_meta(wpath, bad, "input.mean", "1e39");
    expect_error(nncl_network_load_weights(adamw, bad), NNCL_ERR_FORMAT, "bad input normalisation metadata");
    float *after = all_weights(adamw, &n1);
    test_assert_bitwise(after, before, n0, "weights after refused normalisation metadata");
    rewrite_meta(wpath, bad, "input.std", "0.5"); /* the same edit, valid: it loads */
    TEST_OK(ctx, nncl_network_load_weights(adamw, bad));
    float m, s;
    TEST_OK(ctx, nncl_network_get_normalization(adamw, &m, &s));
    assert_true(s == 0.5f);
    free(before), free(after);
    /* Counts out of range: a step past 2^53 (it would overflow as the network counts on), batches of more
       samples than a tensor holds. Refused before anything changes; the step count stays where it was. */
    static const char *const counts[][2] = {{"optimizer.step", "9223372036854775807"},
                                            {"optimizer.step", "9007199254740993"},
                                            {"position.batch_size", "1099511627777"},
                                            {"position.epoch", "18446744073709551615"}};
    int64_t t_before, t_after;
    TEST_OK(ctx, nncl_network_get_step(adam2, &t_before));
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        rewrite_meta(spath, bad, counts[i][0], counts[i][1]);
        expect_error(nncl_network_load_state(adam2, bad, &pos), NNCL_ERR_FORMAT, counts[i][0]);
    }
    TEST_OK(ctx, nncl_network_get_step(adam2, &t_after));
    assert_int_equal(t_after, t_before);
    /* The same bound through the API: a step count the network cannot advance from is refused. */
    expect_error(nncl_network_set_step(adam2, INT64_MAX), NNCL_ERR_INVALID_ARG, "not in 0..2^53");
    TEST_OK(ctx, nncl_network_set_step(adam2, ((int64_t)1 << 53) - 1));
    TEST_OK(ctx, nncl_network_step(adam2));
    expect_error(nncl_network_step(adam2), NNCL_ERR_INVALID_ARG, "2^53 steps");
    nncl_network_destroy(adam);
    nncl_network_destroy(adamw);
    nncl_network_destroy(adam2);
    nncl_context_destroy(ctx);
    ctx = shared;
    unlink(wpath), unlink(spath), unlink(bad);
}

/* The running mean loss over a full batch and a smaller one weighs each by its samples. */
static void test_metrics_sum_weights_samples(void **state)
{
    (void)state;
    nncl_network *net = make_net(NNCL_OPT_SGD, 41);
    float x[BATCH * SAMPLE], l1, l2, mean;
    int64_t y[BATCH], c1, c2, correct, samples;
    const int64_t small = 5;
    make_batch(900, x, y);
    TEST_OK(ctx, nncl_network_reset_metrics_sum(net));
    TEST_OK(ctx, nncl_network_set_batch(net, x, y, NULL, BATCH));
    TEST_OK(ctx, nncl_network_forward(net, NNCL_EVAL));
    TEST_OK(ctx, nncl_network_metrics(net, &l1, &c1));
    TEST_OK(ctx, nncl_network_set_batch(net, x, y, NULL, small));
    TEST_OK(ctx, nncl_network_forward(net, NNCL_EVAL));
    TEST_OK(ctx, nncl_network_metrics(net, &l2, &c2));
    TEST_OK(ctx, nncl_network_metrics_sum(net, &mean, &correct, &samples));
    const double want = ((double)l1 * BATCH + (double)l2 * small) / (double)(BATCH + small);
    print_message("batch losses %.6f (16 samples), %.6f (5): mean %.6f, expected %.6f\n", (double)l1, (double)l2,
                  (double)mean, want);
    assert_true(fabs(mean - want) <= 1e-5 * fabs(want)); /* float sums of two terms */
    assert_true(l1 != l2); /* else the weighting would not show */
    assert_int_equal(correct, c1 + c2);
    assert_int_equal(samples, BATCH + small);
    nncl_network_destroy(net);
}

/* The correct count takes each row's first largest logit, whatever column it is in; more rows than the
   OpenCL kernel's work-group (64) has work-items, so each takes several. */
static void test_count_correct_first_maximum(void **state)
{
    (void)state;
    enum { ROWS = 150, COLS = 5, ROUNDS = 20 };
    nncl_spec spec;
    TEST_OK(ctx, nncl_spec_parse(ctx, "input 5\nflatten\nloss cross_entropy\n", "count.spec", &spec));
    TEST_OK(ctx, nncl_network_plan(spec.net, spec.ndim, spec.shape, ROWS)); /* the output is the input */
    test_rng r = test_rng_seed(77);
    int64_t total = 0, total_want = 0;
    for (int round = 0; round < ROUNDS; round++) {
        float x[ROWS * COLS];
        int64_t y[ROWS], want = 0, correct;
        for (int i = 0; i < ROWS * COLS; i++) x[i] = (float)test_rng_below(&r, 3); /* three values: many ties */
        for (int i = 0; i < ROWS; i++) {
            int first = 0;
            for (int j = 1; j < COLS; j++)
                if (x[i * COLS + j] > x[i * COLS + first]) first = j;
            y[i] = test_rng_below(&r, COLS);
            want += y[i] == first;
        }
        TEST_OK(ctx, nncl_network_set_batch(spec.net, x, y, NULL, ROWS));
        TEST_OK(ctx, nncl_network_forward(spec.net, NNCL_EVAL));
        TEST_OK(ctx, nncl_network_metrics(spec.net, NULL, &correct));
        if (correct != want) fail_msg("round %d: %lld correct, expected %lld", round, (long long)correct, (long long)want);
        total += correct, total_want += want;
    }
    print_message("%lld of %d rows correct, as expected\n", (long long)total, ROWS * ROUNDS);
    assert_true(total_want > 0 && total_want < ROWS * ROUNDS);
    nncl_network_destroy(spec.net);
}

/* Two p = 0.5 dropout layers keep about a quarter of the elements: their masks are independent. */
/*
 * A training forward leaves the loss's gradient for the backward (computed with the loss); a later forward
 * makes it stale. With dropout the training output differs from the evaluation one, so a backward after
 * forward(TRAIN), forward(EVAL) must give the gradients of the evaluation forward alone, not the training one's.
 */
static void test_backward_follows_last_forward(void **state)
{
    (void)state;
    enum { N = 7, IN = 6, CLASSES = 3 };
    nncl_spec spec;
    TEST_OK(ctx, nncl_spec_parse(ctx, "input 6\nlinear 16\nrelu\ndropout p=0.5\nlinear 3\nloss cross_entropy\n",
                                 "handoff.spec", &spec));
    TEST_OK(ctx, nncl_network_plan(spec.net, spec.ndim, spec.shape, N));
    TEST_OK(ctx, nncl_network_init(spec.net, 5));
    float x[N * IN];
    int64_t labels[N];
    test_rng r = test_rng_seed(9);
    test_rng_fill(&r, x, N * IN, -1.0f, 1.0f);
    for (int i = 0; i < N; i++) labels[i] = test_rng_below(&r, CLASSES);
    size_t count;
    float *g[3];
    for (int run = 0; run < 3; run++) { /* train then eval; eval alone; train alone */
        TEST_OK(ctx, nncl_network_set_batch(spec.net, x, labels, NULL, N));
        if (run == 0) TEST_OK(ctx, nncl_network_forward(spec.net, NNCL_TRAIN));
        TEST_OK(ctx, nncl_network_forward(spec.net, run == 2 ? NNCL_TRAIN : NNCL_EVAL));
        TEST_OK(ctx, nncl_network_zero_grad(spec.net));
        TEST_OK(ctx, nncl_network_backward(spec.net));
        g[run] = read_params(spec.net, GRADS, &count);
    }
    assert_memory_equal(g[0], g[1], sizeof(float) * count);
    assert_memory_not_equal(g[1], g[2], sizeof(float) * count); /* dropout makes the two forwards differ */
    for (int i = 0; i < 3; i++) free(g[i]);
    nncl_network_destroy(spec.net);
}

static void test_spec_dropout_keys(void **state)
{
    (void)state;
    enum { N = 20000 };
    nncl_spec spec;
    TEST_OK(ctx, nncl_spec_parse(ctx, "input 20000\ndropout p=0.5\ndropout p=0.5\nloss mse\n", "drop.spec", &spec));
    TEST_OK(ctx, nncl_network_plan(spec.net, spec.ndim, spec.shape, 1)); /* and no nncl_network_init */
    float *ones = malloc(sizeof(float) * N), *out = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) ones[i] = 1.0f;
    TEST_OK(ctx, nncl_network_set_batch(spec.net, ones, NULL, ones, 1));
    TEST_OK(ctx, nncl_network_forward(spec.net, NNCL_TRAIN));
    TEST_OK(ctx, nncl_network_output(spec.net, out, N));
    int kept = 0;
    for (int i = 0; i < N; i++) kept += out[i] != 0.0f;
    print_message("two dropouts with p = 0.5 kept %d of %d elements\n", kept, N);
    /* Independent: 5,000 +- 61 (sd); one shared mask would keep 10,000. */
    assert_true(kept > 4500 && kept < 5500);
    free(ones), free(out);
    nncl_network_destroy(spec.net);
}

int main(int argc, char **argv)
{
    const char *backend = test_backend_arg(argc, argv);
    backend_name = backend;
    ctx = test_context(backend);
    if (mkdtemp(tmpdir) == NULL) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steady_state_step),
        cmocka_unit_test(test_steps_without_reads),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_init_is_backend_independent),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_checkpoints_round_trip),
        cmocka_unit_test(test_bad_checkpoints),
        cmocka_unit_test(test_bad_state_checkpoints),
        cmocka_unit_test(test_fused_conv_relu),
        cmocka_unit_test(test_fused_backward),
        cmocka_unit_test(test_trace),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_optimizer_formulas),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_bad_state_metadata),
        cmocka_unit_test(test_metrics_sum_weights_samples),
        cmocka_unit_test(test_spec_dropout_keys),
        cmocka_unit_test(test_backward_follows_last_forward),
        cmocka_unit_test(test_count_correct_first_maximum),
    };
    int failed = cmocka_run_group_tests_name(backend, tests, NULL, NULL);
    nncl_context_destroy(ctx);
    test_remove_dir(tmpdir);
    return failed;
}
