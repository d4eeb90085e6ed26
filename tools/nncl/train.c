/*
 * train.c - the train, eval and predict subcommands of the nncl tool.
 *
 * train:   builds the network of a model spec, initialises it from a seed (or
 *          loads initial weights), and trains it with SGD, Adam or AdamW on
 *          an IDX folder or .npy files, shuffling every epoch from the seed.
 *          Each epoch prints its mean loss, train and test accuracy and
 *          images per second; a progress bar runs on a terminal, plain lines
 *          otherwise. Weights, full training state (for --resume) and a
 *          metrics CSV can be saved.
 * eval:    the test accuracy and loss of saved weights.
 * predict: a .npy of inputs in, a .npy of outputs (logits) out.
 *
 * Inputs stored as uint8 are scaled to [0, 1], float32 inputs are taken as
 * they are; training then normalises them with the training set's mean and
 * standard deviation, which the saved weights carry to eval and predict.
 * Every error prints the library's message and exits with 1.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

typedef struct options {
    const char *spec, *data, *train_x, *train_y, *test_x, *test_y;
    const char *init, *save, *checkpoint, *resume, *metrics, *weights, *input, *output, *step_log, *profile;
    int64_t epochs, batch, limit, max_steps, test_limit;
    nncl_optimizer_options opt;
    int momentum_set;
    uint64_t seed;
    int shuffle, normalize;
    float norm_mean, norm_std; /* --normalize MEAN,STD; std 0: the training set's statistics */
    nncl_context_options ctx;
} options;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_fail(nncl_context *ctx, nncl_status st)
{
    fprintf(stderr, "nncl: %s: %s\n", nncl_status_name(st), nncl_context_last_error(ctx));
    return 1;
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "nncl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'nncl help')\n");
    return 1;
}

static int parse_i64(const char *s, int64_t lo, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < lo) return 0;
    *out = v;
    return 1;
}

static int parse_f32(const char *s, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno) return 0;
    *out = (float)v;
    return 1;
}

/* The options that take no value. */
static int is_flag(const char *a)
{
    return strcmp(a, "--no-shuffle") == 0 || strcmp(a, "--no-normalize") == 0 || strcmp(a, "--nesterov") == 0;
}

/* The options that take one, each handled in parse_options. */
static int takes_value(const char *a)
{
    static const char *const names[] = {
        "--spec", "--data", "--train-x", "--train-y", "--test-x", "--test-y", "--init", "--save", "--checkpoint",
        "--resume", "--metrics", "--step-log", "--normalize", "--profile", "--weights", "--input", "--output",
        "--epochs", "--batch", "--limit", "--test-limit", "--max-steps", "--seed", "--optimizer", "--lr",
        "--momentum", "--dampening", "--weight-decay", "--beta1", "--beta2", "--clip", "--warmup", "--step-size",
        "--gamma", "--t-max", "--schedule", "--backend", "--device"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(a, names[i]) == 0) return 1;
    return 0;
}

/*
 * The kind named by the last --optimizer (SGD without one), found before the
 * other options are read: its defaults are what they change, in any order.
 */
static int optimizer_kind(int argc, char **argv, nncl_optimizer_kind *kind)
{
    *kind = NNCL_OPT_SGD;
    for (int i = 0; i + 1 < argc; i++) {
        if (is_flag(argv[i])) continue;
        const char *v = argv[++i];
        if (strcmp(argv[i - 1], "--optimizer") != 0) continue;
        if (strcmp(v, "sgd") == 0) *kind = NNCL_OPT_SGD;
        else if (strcmp(v, "adam") == 0) *kind = NNCL_OPT_ADAM;
        else if (strcmp(v, "adamw") == 0) *kind = NNCL_OPT_ADAMW;
        else return usage_error("unknown optimizer '%s' (sgd, adam, adamw)", v);
    }
    return 0;
}

/*
 * Whether a file can be written at path later, tried now by creating and removing a file beside it as the
 * atomic writer will (src/io/stream.c), so that a bad --save, --checkpoint or --profile stops the run before
 * it trains rather than after; 0 with a message.
 */
static int writable_later(const char *option, const char *path)
{
    char probe[4096];
    struct stat st;
    const char *why = NULL;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        why = strerror(EISDIR);
    } else if (snprintf(probe, sizeof probe, "%s.probe.%ld", path, (long)getpid()) >= (int)sizeof probe) {
        why = "the path is too long";
    } else {
        int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0) why = strerror(errno);
        else close(fd), unlink(probe);
    }
    if (why != NULL) fprintf(stderr, "nncl: %s %s cannot be written: %s\n", option, path, why);
    return why == NULL;
}

/* Parses the options common to every subcommand; returns 0 on success. */
static int parse_options(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->data = DEFAULT_DATA;
    o->epochs = 3;
    o->batch = 64;
    o->seed = 1;
    o->shuffle = 1;
    o->normalize = 1;
    nncl_optimizer_kind kind;
    if (optimizer_kind(argc, argv, &kind) != 0) return 1;
    o->opt = nncl_optimizer_options_default(kind);
    o->ctx = nncl_context_options_default();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n;
        if (strcmp(a, "--no-shuffle") == 0) { o->shuffle = 0; continue; }
        if (strcmp(a, "--nesterov") == 0) { o->opt.nesterov = 1; continue; }
        if (strcmp(a, "--no-normalize") == 0) { o->normalize = 0; continue; }
        if (!takes_value(a)) return usage_error("unknown option %s", a);
        if (v == NULL) return usage_error("option %s needs a value", a);
        i++;
        if (strcmp(a, "--spec") == 0) o->spec = v;
        else if (strcmp(a, "--data") == 0) o->data = v;
        else if (strcmp(a, "--train-x") == 0) o->train_x = v;
        else if (strcmp(a, "--train-y") == 0) o->train_y = v;
        else if (strcmp(a, "--test-x") == 0) o->test_x = v;
        else if (strcmp(a, "--test-y") == 0) o->test_y = v;
        else if (strcmp(a, "--init") == 0) o->init = v;
        else if (strcmp(a, "--save") == 0) o->save = v;
        else if (strcmp(a, "--checkpoint") == 0) o->checkpoint = v;
        else if (strcmp(a, "--resume") == 0) o->resume = v;
        else if (strcmp(a, "--metrics") == 0) o->metrics = v;
        else if (strcmp(a, "--step-log") == 0) o->step_log = v;
        else if (strcmp(a, "--normalize") == 0) {
            char mean[64];
            const char *comma = strchr(v, ',');
            if (comma == NULL || (size_t)(comma - v) >= sizeof mean) return usage_error("bad --normalize %s", v);
            memcpy(mean, v, (size_t)(comma - v));
            mean[comma - v] = '\0';
            if (!parse_f32(mean, &o->norm_mean) || !parse_f32(comma + 1, &o->norm_std) || !isfinite(o->norm_mean) ||
                !(o->norm_std > 0.0f && isfinite(o->norm_std)))
                return usage_error("--normalize takes MEAN,STD, finite, with STD > 0, not '%s'", v);
        }
        else if (strcmp(a, "--profile") == 0) {
            o->profile = v;
            o->ctx.profiling = 1;
        }
        else if (strcmp(a, "--weights") == 0) o->weights = v;
        else if (strcmp(a, "--input") == 0) o->input = v;
        else if (strcmp(a, "--output") == 0) o->output = v;
        else if (strcmp(a, "--epochs") == 0) { if (!parse_i64(v, 0, &o->epochs)) return usage_error("bad --epochs %s", v); }
        else if (strcmp(a, "--batch") == 0) { if (!parse_i64(v, 1, &o->batch)) return usage_error("bad --batch %s", v); }
        else if (strcmp(a, "--limit") == 0) { if (!parse_i64(v, 1, &o->limit)) return usage_error("bad --limit %s", v); }
        else if (strcmp(a, "--test-limit") == 0) { if (!parse_i64(v, 1, &o->test_limit)) return usage_error("bad --test-limit %s", v); }
        else if (strcmp(a, "--max-steps") == 0) { if (!parse_i64(v, 1, &o->max_steps)) return usage_error("bad --max-steps %s", v); }
        else if (strcmp(a, "--seed") == 0) { if (!parse_i64(v, 0, &n)) return usage_error("bad --seed %s", v); o->seed = (uint64_t)n; }
        else if (strcmp(a, "--optimizer") == 0) continue; /* read first, by optimizer_kind */
        else if (strcmp(a, "--lr") == 0) { if (!parse_f32(v, &o->opt.lr)) return usage_error("bad --lr %s", v); }
        else if (strcmp(a, "--momentum") == 0) { if (!parse_f32(v, &o->opt.momentum)) return usage_error("bad --momentum %s", v); o->momentum_set = 1; }
        else if (strcmp(a, "--dampening") == 0) { if (!parse_f32(v, &o->opt.dampening)) return usage_error("bad --dampening %s", v); }
        else if (strcmp(a, "--weight-decay") == 0) { if (!parse_f32(v, &o->opt.weight_decay)) return usage_error("bad --weight-decay %s", v); }
        else if (strcmp(a, "--beta1") == 0) { if (!parse_f32(v, &o->opt.beta1)) return usage_error("bad --beta1 %s", v); }
        else if (strcmp(a, "--beta2") == 0) { if (!parse_f32(v, &o->opt.beta2)) return usage_error("bad --beta2 %s", v); }
        else if (strcmp(a, "--clip") == 0) { if (!parse_f32(v, &o->opt.clip_norm)) return usage_error("bad --clip %s", v); }
        else if (strcmp(a, "--warmup") == 0) { if (!parse_i64(v, 0, &o->opt.warmup_steps)) return usage_error("bad --warmup %s", v); }
        else if (strcmp(a, "--step-size") == 0) { if (!parse_i64(v, 1, &o->opt.step_size)) return usage_error("bad --step-size %s", v); }
        else if (strcmp(a, "--gamma") == 0) { if (!parse_f32(v, &o->opt.gamma)) return usage_error("bad --gamma %s", v); }
        else if (strcmp(a, "--t-max") == 0) { if (!parse_i64(v, 1, &o->opt.t_max)) return usage_error("bad --t-max %s", v); }
        else if (strcmp(a, "--schedule") == 0) {
            if (strcmp(v, "constant") == 0) o->opt.schedule = NNCL_SCHED_CONSTANT;
            else if (strcmp(v, "step") == 0) o->opt.schedule = NNCL_SCHED_STEP;
            else if (strcmp(v, "cosine") == 0) o->opt.schedule = NNCL_SCHED_COSINE;
            else return usage_error("unknown schedule '%s' (constant, step, cosine)", v);
        }
        else if (strcmp(a, "--backend") == 0) {
            if (strcmp(v, "cpu") == 0) o->ctx.backend = NNCL_BACKEND_CPU;
            else if (strcmp(v, "opencl") == 0) o->ctx.backend = NNCL_BACKEND_OPENCL;
            else return usage_error("unknown backend '%s' (cpu, opencl)", v);
        }
        else if (strcmp(a, "--device") == 0) {
            if (!nncl__parse_device(v, &o->ctx.platform, &o->ctx.device))
                return usage_error("--device takes platform:device, e.g. 0:0, not '%s'", v);
        }
        else return usage_error("unknown option %s", a); /* in takes_value, but handled nowhere */
    }
    if (!o->normalize && o->norm_std > 0.0f) return usage_error("%s", "--normalize and --no-normalize contradict");
    /* The main job's defaults for SGD: momentum 0.9, unless given. */
    if (o->opt.kind == NNCL_OPT_SGD && !o->momentum_set) o->opt.momentum = 0.9f;
    if (o->spec == NULL) return usage_error("%s", "--spec FILE is required");
    if (!o->train_x != !o->train_y) return usage_error("%s", "--train-x and --train-y go together");
    if (!o->test_x != !o->test_y) return usage_error("%s", "--test-x and --test-y go together");
    return 0;
}

/* The context, the network of the spec planned for the batch, and its data's shape. */
typedef struct session {
    nncl_context *ctx;
    nncl_spec spec;
} session;

static void session_end(session *s)
{
    nncl_network_destroy(s->spec.net);
    nncl_context_destroy(s->ctx);
}

static nncl_status session_begin(const options *o, session *s)
{
    memset(s, 0, sizeof *s);
    nncl_status st = nncl_context_create(&o->ctx, &s->ctx);
    if (st != NNCL_OK) return st; /* the message is in the thread's slot: cli_fail(NULL) */
    st = nncl_spec_load(s->ctx, o->spec, &s->spec);
    if (st == NNCL_OK) st = nncl_network_plan(s->spec.net, s->spec.ndim, s->spec.shape, o->batch);
    return st;
}

/* The data must have the spec's per-sample shape. */
static nncl_status check_data(nncl_context *ctx, const session *s, const dataset *d, const char *what)
{
    int64_t per = 1;
    for (int i = 0; i < s->spec.ndim; i++) per *= s->spec.shape[i];
    if (d->sample != per) {
        char a[128], b[128];
        return nncl__error(ctx, NNCL_ERR_SHAPE, __FILE__, __LINE__, "%s samples are %s, the spec's input is %s", what,
                           nncl_shape_format(d->ndim, d->shape, a, sizeof a),
                           nncl_shape_format(s->spec.ndim, s->spec.shape, b, sizeof b));
    }
    return NNCL_OK;
}

/* A failure of a context-free call (data files), moved onto ctx for cli_fail. */
static nncl_status on_ctx(nncl_context *ctx, nncl_status st)
{
    if (st != NNCL_OK) nncl__error_attach(ctx);
    return st;
}

static nncl_status load_sets(const options *o, dataset *train, dataset *test)
{
    nncl_status st;
    if (train) {
        st = o->train_x ? dataset_load(o->train_x, o->train_y, train) : dataset_load_idx_dir(o->data, 0, train);
        if (st != NNCL_OK) return st;
        dataset_truncate(train, o->limit);
    }
    if (test) {
        st = o->test_x ? dataset_load(o->test_x, o->test_y, test) : dataset_load_idx_dir(o->data, 1, test);
        if (st != NNCL_OK) return st;
        dataset_truncate(test, o->test_limit);
    }
    return NNCL_OK;
}

/*
 * The data sets, loaded on a second thread while the main one sets up the
 * device and plans the network: neither needs the other, and on a first run
 * the device's side (PoCL compiling the kernels) takes longer than reading
 * and decompressing the files, which it then hides.
 */
typedef struct loader {
    const options *o;
    dataset *train, *test;
    thrd_t thread;
    int threaded;
    nncl_status st;
    char message[2048]; /* the loading thread's error message */
} loader;

static int load_main(void *arg)
{
    loader *l = arg;
    l->st = load_sets(l->o, l->train, l->test);
    if (l->st != NNCL_OK) snprintf(l->message, sizeof l->message, "%s", nncl_context_last_error(NULL));
    return 0;
}

static void loader_start(loader *l, const options *o, dataset *train, dataset *test)
{
    *l = (loader){.o = o, .train = train, .test = test};
    l->threaded = thrd_create(&l->thread, load_main, l) == thrd_success;
    if (!l->threaded) load_main(l); /* no thread to be had: load now */
}

/* Waits for the data; a loading error becomes ctx's (ctx NULL: it is only waited for). */
static nncl_status loader_join(loader *l, nncl_context *ctx)
{
    if (l->threaded) thrd_join(l->thread, NULL);
    l->threaded = 0;
    if (l->st != NNCL_OK && ctx != NULL) nncl__error_set(ctx, l->st, l->message);
    return l->st;
}

/* Test loss and accuracy over a whole set, in evaluation mode. */
static nncl_status evaluate(nncl_network *net, const dataset *d, int64_t batch, float *loss, double *accuracy)
{
    int64_t *order = malloc(sizeof(int64_t) * (size_t)d->n), *y = malloc(sizeof(int64_t) * (size_t)batch);
    float *x = malloc(sizeof(float) * (size_t)(batch * d->sample));
    nncl_status st = NNCL_OK;
    if (order == NULL || x == NULL || y == NULL) {
        nncl_context *ctx = NULL;
        nncl_network_get_context(net, &ctx);
        st = nncl__error(ctx, NNCL_ERR_OUT_OF_MEMORY, __FILE__, __LINE__, "evaluation: out of host memory");
    }
    if (st == NNCL_OK) {
        dataset_order(d->n, 0, 0, 0, order);
        st = nncl_network_reset_metrics_sum(net);
    }
    for (int64_t start = 0; st == NNCL_OK && start < d->n; start += batch) {
        int64_t n = d->n - start < batch ? d->n - start : batch;
        dataset_batch(d, order, start, n, x, y);
        st = nncl_network_set_batch(net, x, y, NULL, n);
        if (st == NNCL_OK) st = nncl_network_forward(net, NNCL_EVAL);
    }
    int64_t correct = 0, seen = 0;
    if (st == NNCL_OK) st = nncl_network_metrics_sum(net, loss, &correct, &seen);
    if (st == NNCL_OK) *accuracy = seen ? (double)correct / (double)seen : 0.0;
    free(order);
    free(x);
    free(y);
    return st;
}

/* One progress line: a bar on a terminal, else a plain line. */
static void progress(int tty, int64_t epoch, int64_t epochs, int64_t done, int64_t total, float loss, double acc,
                     double rate)
{
    if (tty) {
        int width = 30, fill = (int)(width * done / (total ? total : 1));
        printf("\repoch %lld/%lld [", (long long)epoch + 1, (long long)epochs);
        for (int i = 0; i < width; i++) putchar(i < fill ? '#' : '.');
        printf("] %3d%% loss %.4f acc %.2f%% %.0f img/s ", (int)(100 * done / (total ? total : 1)), (double)loss,
               100.0 * acc, rate);
    } else {
        printf("epoch %lld/%lld: %lld/%lld batches, loss %.4f, train accuracy %.2f%%, %.0f images/s\n",
               (long long)epoch + 1, (long long)epochs, (long long)done, (long long)total, (double)loss, 100.0 * acc,
               rate);
    }
    fflush(stdout);
}

int cmd_train(int argc, char **argv)
{
    const double started = now();
    options o;
    if (parse_options(argc, argv, &o) != 0) return 1;
    session s;
    dataset train = {0}, test = {0};
    int64_t *order = NULL, *y = NULL;
    float *x = NULL;
    FILE *csv = NULL, *step_log = NULL;
    int rc = 1;
    loader data;
    loader_start(&data, &o, &train, &test);
    nncl_status st = session_begin(&o, &s);
    nncl_status loaded = loader_join(&data, st == NNCL_OK ? s.ctx : NULL);
    if (st == NNCL_OK) st = loaded;
    nncl_network *net = s.spec.net;
    if (st == NNCL_OK) st = check_data(s.ctx, &s, &train, "training");
    if (st == NNCL_OK) st = check_data(s.ctx, &s, &test, "test");
    if (st == NNCL_OK && o.normalize) {
        /* Normalise inputs with the training set's statistics, unless the
           initial weights bring their own. */
        float mean = o.norm_mean, std = o.norm_std;
        if (std == 0.0f) dataset_stats(&train, &mean, &std);
        st = nncl_network_set_normalization(net, mean, std);
    }
    /* Initialised even under --init: the seed also keys the dropout layers (as a resumed state expects). */
    if (st == NNCL_OK) st = nncl_network_init(net, o.seed);
    if (st == NNCL_OK && o.init) st = nncl_network_load_weights(net, o.init);
    /* A cosine schedule without --t-max anneals over the whole run (--max-steps, if that ends it sooner). */
    if (o.opt.schedule == NNCL_SCHED_COSINE && o.opt.t_max == 0) {
        o.opt.t_max = o.epochs * ((train.n + o.batch - 1) / o.batch);
        if (o.max_steps > 0 && o.max_steps < o.opt.t_max) o.opt.t_max = o.max_steps;
    }
    if (st == NNCL_OK) st = nncl_network_set_optimizer(net, &o.opt);
    nncl_train_position pos = {.epoch = 0, .batch = 0, .batch_size = o.batch, .seed = o.seed};
    if (st == NNCL_OK && o.resume) {
        st = nncl_network_load_state(net, o.resume, &pos);
        if (st == NNCL_OK && pos.batch_size == 0)
            st = nncl__error(s.ctx, NNCL_ERR_INVALID_ARG, __FILE__, __LINE__,
                             "%s records no batch size (a state not saved by nncl train): its position in the data "
                             "is unknown", o.resume);
        if (st == NNCL_OK && pos.batch_size != o.batch)
            st = nncl__error(s.ctx, NNCL_ERR_INVALID_ARG, __FILE__, __LINE__,
                             "%s was trained with batches of %lld: resume with --batch %lld", o.resume,
                             (long long)pos.batch_size, (long long)pos.batch_size);
        const int64_t batches_per_epoch = (train.n + o.batch - 1) / o.batch;
        if (st == NNCL_OK && pos.epoch >= o.epochs)
            st = nncl__error(s.ctx, NNCL_ERR_INVALID_ARG, __FILE__, __LINE__,
                             "%s is at epoch %lld, and --epochs %lld ends before it: nothing to train", o.resume,
                             (long long)pos.epoch + 1, (long long)o.epochs);
        if (st == NNCL_OK && pos.batch > batches_per_epoch)
            st = nncl__error(s.ctx, NNCL_ERR_INVALID_ARG, __FILE__, __LINE__,
                             "%s is at batch %lld of an epoch, but these %lld samples make %lld batches: not the "
                             "checkpoint's data", o.resume, (long long)pos.batch, (long long)train.n,
                             (long long)batches_per_epoch);
        if (st == NNCL_OK && pos.seed != o.seed)
            printf("resuming with the checkpoint's seed %llu\n", (unsigned long long)pos.seed);
    }
    if (st != NNCL_OK) {
        rc = cli_fail(s.ctx, st);
        goto done;
    }
    if ((o.save && !writable_later("--save", o.save)) ||
        (o.checkpoint && !writable_later("--checkpoint", o.checkpoint)) ||
        (o.profile && !writable_later("--profile", o.profile)))
        goto done;
    order = malloc(sizeof(int64_t) * (size_t)train.n);
    y = malloc(sizeof(int64_t) * (size_t)o.batch);
    x = malloc(sizeof(float) * (size_t)(o.batch * train.sample));
    if (!order || !y || !x) {
        fprintf(stderr, "nncl: out of memory\n");
        goto done;
    }
    if (o.metrics) {
        csv = fopen(o.metrics, pos.epoch > 0 || pos.batch > 0 ? "a" : "w");
        if (csv == NULL) {
            fprintf(stderr, "nncl: cannot write %s: %s\n", o.metrics, strerror(errno));
            goto done;
        }
        if (pos.epoch == 0 && pos.batch == 0) fprintf(csv, "epoch,loss,train_accuracy,test_accuracy,images_per_second,seconds\n");
    }
    if (o.step_log && (step_log = fopen(o.step_log, "w")) == NULL) {
        fprintf(stderr, "nncl: cannot write %s: %s\n", o.step_log, strerror(errno));
        goto done;
    }
    char desc[640];
    nncl_context_describe(s.ctx, desc, sizeof desc);
    size_t n_layers = 0;
    nncl_network_layer_count(net, &n_layers);
    float norm_mean, norm_std;
    nncl_network_get_normalization(net, &norm_mean, &norm_std);
    printf("device: %s\n", desc);
    printf("model: %s (%zu layers), %lld training and %lld test samples, batch %lld, %s lr %g%s%s%s, seed %llu\n",
           o.spec, n_layers, (long long)train.n, (long long)test.n, (long long)o.batch,
           o.opt.kind == NNCL_OPT_SGD ? "SGD" : o.opt.kind == NNCL_OPT_ADAM ? "Adam" : "AdamW", (double)o.opt.lr,
           o.opt.kind == NNCL_OPT_SGD && o.opt.momentum > 0 ? " momentum" : "",
           o.opt.kind == NNCL_OPT_SGD && o.opt.nesterov ? " nesterov" : "",
           o.opt.schedule == NNCL_SCHED_COSINE ? " cosine" : o.opt.schedule == NNCL_SCHED_STEP ? " step" : "",
           (unsigned long long)pos.seed);
    printf("inputs normalised as (x - %.4f) / %.4f\n", (double)norm_mean, (double)norm_std);
    int tty = isatty(STDOUT_FILENO);
    int64_t batches = (train.n + o.batch - 1) / o.batch, steps_taken = 0, total_step = 0;
    nncl_network_get_step(net, &total_step);
    double acc_test = 0.0;
    int stopped = 0, stop_after_epoch = 0;
    for (int64_t epoch = pos.epoch; epoch < o.epochs && !stopped; epoch++) {
        dataset_order(train.n, pos.seed, epoch, o.shuffle, order);
        int64_t first = epoch == pos.epoch ? pos.batch : 0;
        st = nncl_network_reset_metrics_sum(net);
        double t0 = now(), last_print = t0;
        int64_t images = 0;
        for (int64_t b = first; st == NNCL_OK && b < batches; b++) {
            int64_t start = b * o.batch, n = train.n - start < o.batch ? train.n - start : o.batch;
            dataset_batch(&train, order, start, n, x, y);
            st = nncl_network_set_batch(net, x, y, NULL, n);
            if (st == NNCL_OK) st = nncl_network_train_step(net);
            if (st == NNCL_OK && step_log) { /* every step's loss: one host wait per step */
                float loss;
                st = nncl_network_metrics(net, &loss, NULL);
                fprintf(step_log, "%lld %.9g\n", (long long)total_step + 1, (double)loss);
            }
            images += n;
            steps_taken++;
            total_step++;
            if (st == NNCL_OK && steps_taken == 1) { /* startup, as bench/train_vs_torch.sh measures it */
                st = nncl_context_finish(s.ctx);
                printf("first step finished %.2f s after start (data, device, programs and planning included)\n",
                       now() - started);
            }
            double t = now();
            int report = tty ? t - last_print > 0.25 : (b + 1) % (batches / 10 > 0 ? batches / 10 : 1) == 0;
            if (st == NNCL_OK && (report || b + 1 == batches)) {
                float loss;
                int64_t correct, seen;
                st = nncl_network_metrics_sum(net, &loss, &correct, &seen);
                last_print = now();
                if (st == NNCL_OK && b + 1 < batches)
                    progress(tty, epoch, o.epochs, b + 1, batches, loss, seen ? (double)correct / seen : 0.0,
                             images / (last_print - t0));
            }
            if (st == NNCL_OK && o.max_steps > 0 && total_step >= o.max_steps) {
                stop_after_epoch = 1; /* at the epoch's last batch: finish the epoch as usual, then stop */
                if (b + 1 < batches) {
                    pos.epoch = epoch;
                    pos.batch = b + 1;
                    stopped = 1;
                }
                break;
            }
        }
        if (st != NNCL_OK) break;
        float train_loss, test_loss;
        int64_t correct, seen;
        st = nncl_network_metrics_sum(net, &train_loss, &correct, &seen);
        double seconds = now() - t0, rate = images / seconds;
        if (st == NNCL_OK && !stopped) st = evaluate(net, &test, o.batch, &test_loss, &acc_test);
        if (st != NNCL_OK) break;
        if (tty) printf("\r%80s\r", "");
        if (stopped) {
            printf("stopped after step %lld (--max-steps): epoch %lld, batch %lld; loss %.4f\n", (long long)total_step,
                   (long long)pos.epoch + 1, (long long)pos.batch, (double)train_loss);
        } else {
            printf("epoch %lld/%lld: loss %.4f, train accuracy %.2f%%, test accuracy %.2f%%, %.0f images/s, %.1f s\n",
                   (long long)epoch + 1, (long long)o.epochs, (double)train_loss,
                   100.0 * (seen ? (double)correct / seen : 0.0), 100.0 * acc_test, rate, seconds);
            if (csv)
                fprintf(csv, "%lld,%.6f,%.6f,%.6f,%.1f,%.3f\n", (long long)epoch + 1, (double)train_loss,
                        seen ? (double)correct / seen : 0.0, acc_test, rate, seconds);
            pos.epoch = epoch + 1;
            pos.batch = 0;
        }
        fflush(stdout);
        if (o.checkpoint) st = nncl_network_save_state(net, o.checkpoint, &pos);
        if (st != NNCL_OK || stop_after_epoch) break;
    }
    if (st == NNCL_OK && o.save) st = nncl_network_save_weights(net, o.save);
    if (st == NNCL_OK && o.profile) {
        st = nncl_context_write_trace(s.ctx, o.profile);
        if (st == NNCL_OK) printf("wrote the trace of every command to %s (chrome://tracing, ui.perfetto.dev)\n", o.profile);
    }
    if (st != NNCL_OK) {
        if (tty) printf("\n");
        rc = cli_fail(s.ctx, st);
        goto done;
    }
    if (!stopped && steps_taken > 0) printf("final test accuracy: %.2f%%\n", 100.0 * acc_test);
    rc = 0;
done:
    if (csv) fclose(csv);
    if (step_log) fclose(step_log);
    free(order);
    free(x);
    free(y);
    dataset_free(&train);
    dataset_free(&test);
    session_end(&s);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    options o;
    if (parse_options(argc, argv, &o) != 0) return 1;
    if (o.weights == NULL) return usage_error("%s", "eval needs --weights FILE");
    session s;
    dataset test = {0};
    loader data;
    loader_start(&data, &o, NULL, &test);
    nncl_status st = session_begin(&o, &s);
    nncl_status loaded = loader_join(&data, st == NNCL_OK ? s.ctx : NULL);
    if (st == NNCL_OK) st = loaded;
    if (st == NNCL_OK) st = check_data(s.ctx, &s, &test, "test");
    if (st == NNCL_OK) st = nncl_network_load_weights(s.spec.net, o.weights);
    float loss = 0.0f;
    double acc = 0.0;
    if (st == NNCL_OK) st = evaluate(s.spec.net, &test, o.batch, &loss, &acc);
    int rc = 0;
    if (st == NNCL_OK) printf("test loss %.4f, test accuracy %.2f%% on %lld samples\n", (double)loss, 100.0 * acc, (long long)test.n);
    else rc = cli_fail(s.ctx, st);
    dataset_free(&test);
    session_end(&s);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    options o;
    if (parse_options(argc, argv, &o) != 0) return 1;
    if (o.weights == NULL || o.input == NULL || o.output == NULL)
        return usage_error("%s", "predict needs --weights FILE --input X.npy --output Y.npy");
    session s;
    nncl_array in = {0}, out = {0};
    float *x = NULL;
    nncl_status st = session_begin(&o, &s);
    if (st == NNCL_OK) st = nncl_network_load_weights(s.spec.net, o.weights);
    if (st == NNCL_OK) st = on_ctx(s.ctx, nncl_npy_read(o.input, &in));
    int64_t per = 1, outs = 0;
    for (int i = 0; i < s.spec.ndim; i++) per *= s.spec.shape[i];
    if (st == NNCL_OK && (in.ndim < 1 || in.shape[0] < 1 || nncl_array_numel(&in) != in.shape[0] * per ||
                          (in.dtype != NNCL_DTYPE_F32 && in.dtype != NNCL_DTYPE_U8)))
        st = nncl__error(s.ctx, NNCL_ERR_SHAPE, __FILE__, __LINE__,
                         "%s: expected float32 or uint8 samples of %lld values each", o.input, (long long)per);
    if (st == NNCL_OK) st = nncl_network_output_size(s.spec.net, &outs);
    int64_t shape[2] = {in.shape[0], outs};
    if (st == NNCL_OK) st = on_ctx(s.ctx, nncl_array_create(NNCL_DTYPE_F32, 2, shape, &out));
    if (st == NNCL_OK && (x = malloc(sizeof(float) * (size_t)(o.batch * per))) == NULL)
        st = nncl__error(s.ctx, NNCL_ERR_OUT_OF_MEMORY, __FILE__, __LINE__, "out of host memory");
    for (int64_t start = 0; st == NNCL_OK && start < in.shape[0]; start += o.batch) {
        int64_t n = in.shape[0] - start < o.batch ? in.shape[0] - start : o.batch;
        for (int64_t i = 0; i < n * per; i++)
            x[i] = in.dtype == NNCL_DTYPE_U8 ? ((const uint8_t *)in.data)[start * per + i] / 255.0f
                                             : ((const float *)in.data)[start * per + i];
        st = nncl_network_set_batch(s.spec.net, x, NULL, NULL, n);
        if (st == NNCL_OK) st = nncl_network_forward(s.spec.net, NNCL_EVAL);
        if (st == NNCL_OK) st = nncl_network_output(s.spec.net, (float *)out.data + start * outs, (size_t)(n * outs));
    }
    if (st == NNCL_OK) st = on_ctx(s.ctx, nncl_npy_write(o.output, &out));
    int rc = 0;
    if (st == NNCL_OK) printf("wrote %s: %lld x %lld outputs\n", o.output, (long long)shape[0], (long long)outs);
    else rc = cli_fail(s.ctx, st);
    free(x);
    nncl_array_free(&in);
    nncl_array_free(&out);
    session_end(&s);
    return rc;
}
