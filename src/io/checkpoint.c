/*
 * checkpoint.c - networks to and from safetensors files (see nncl/checkpoint.h).
 *
 * Saving reads every tensor back to the host and hands the list to the
 * safetensors writer (atomic). Loading reads and validates the whole file
 * first, then checks it against the network - every expected name present
 * with the right dtype and shape, nothing else - and only then writes to the
 * device, so a bad file changes nothing.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "layers/layer.h"

#define STATE_FORMAT "nncl-train-state-1"

/* The tensors of a checkpoint, gathered on the host. */
typedef struct tensor_list {
    nncl__st_tensor *t;
    void **owned; /* host copies to free */
    size_t n, cap;
    nncl_tensor *device; /* the device tensor each entry comes from or goes to (NULL: host value) */
} tensor_list;

static void list_free(tensor_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->owned[i]);
    free(l->t);
    free(l->owned);
    free(l->device);
    memset(l, 0, sizeof *l);
}

static nncl_status list_push(nncl_context *ctx, tensor_list *l, const char *name, nncl_dtype dtype, int ndim,
                             const int64_t *shape, const nncl_tensor *device)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 32;
        nncl__st_tensor *t = realloc(l->t, cap * sizeof *t);
        if (t) l->t = t;
        void **o = realloc(l->owned, cap * sizeof *o);
        if (o) l->owned = o;
        nncl_tensor *d = realloc(l->device, cap * sizeof *d);
        if (d) l->device = d;
        if (!t || !o || !d) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "checkpoint: out of host memory");
        l->cap = cap;
    }
    nncl__st_tensor *e = &l->t[l->n];
    memset(e, 0, sizeof *e);
    if (snprintf(e->name, sizeof e->name, "%s", name) >= (int)sizeof e->name)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "checkpoint: tensor name %s is too long", name);
    e->dtype = dtype;
    e->ndim = ndim;
    if (ndim > 0) memcpy(e->shape, shape, sizeof(int64_t) * (size_t)ndim);
    l->owned[l->n] = NULL;
    if (device) l->device[l->n] = *device;
    else memset(&l->device[l->n], 0, sizeof l->device[l->n]);
    l->n++;
    return NNCL_OK;
}

/* The expected tensors of the weights: "<i>.<name>" and batch norm's counter. */
static nncl_status weight_list(nncl_context *ctx, nncl_network *net, tensor_list *l)
{
    size_t n_layers;
    NNCL_TRY(nncl_network_layer_count(net, &n_layers));
    for (size_t i = 0; i < n_layers; i++) {
        nncl_layer *layer;
        NNCL_TRY(nncl_network_layer(net, i, &layer));
        char name[128];
        for (size_t p = 0; p < layer->n_total; p++) {
            const nncl_tensor *v = &layer->params[p].value;
            snprintf(name, sizeof name, "%zu.%s", i, layer->params[p].name);
            NNCL_TRY(list_push(ctx, l, name, NNCL_DTYPE_F32, v->ndim, v->shape, v));
        }
        if (nncl__layer_is_batchnorm(layer)) {
            snprintf(name, sizeof name, "%zu.num_batches_tracked", i);
            NNCL_TRY(list_push(ctx, l, name, NNCL_DTYPE_I64, 0, NULL, NULL));
        }
    }
    return NNCL_OK;
}

/* The tensors of the network's optimizer `opt`: "optimizer.<i>.<param>.<state>". */
static nncl_status optimizer_list(nncl_context *ctx, nncl_network *net, const nncl_optimizer_options *opt,
                                  tensor_list *l)
{
    const int n_states = opt->kind == NNCL_OPT_SGD ? 1 : 2;
    size_t n_layers;
    NNCL_TRY(nncl_network_layer_count(net, &n_layers));
    for (size_t i = 0; i < n_layers; i++) {
        nncl_layer *layer;
        NNCL_TRY(nncl_network_layer(net, i, &layer));
        for (size_t p = 0; p < layer->n_params; p++) {
            for (int which = 0; which < n_states; which++) {
                const char *state_name;
                nncl_tensor state;
                NNCL_TRY(nncl_network_optimizer_state(net, i, p, which, &state_name, &state));
                char name[128];
                snprintf(name, sizeof name, "optimizer.%zu.%s.%s", i, layer->params[p].name, state_name);
                NNCL_TRY(list_push(ctx, l, name, NNCL_DTYPE_F32, state.ndim, state.shape, &state));
            }
        }
    }
    return NNCL_OK;
}

/* The batch norm layer behind "<i>.num_batches_tracked". */
static nncl_layer *counter_layer(nncl_network *net, const char *name)
{
    size_t i = (size_t)strtoull(name, NULL, 10);
    nncl_layer *layer = NULL;
    nncl_network_layer(net, i, &layer);
    return layer;
}

/* Reads every device tensor of the list into host copies. */
static nncl_status gather(nncl_context *ctx, nncl_network *net, tensor_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        nncl__st_tensor *e = &l->t[i];
        int64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) numel *= e->shape[d];
        void *data = malloc((size_t)numel * nncl_dtype_size(e->dtype));
        if (data == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "checkpoint: out of host memory");
        l->owned[i] = data;
        e->data = data;
        if (l->device[i].buf) {
            NNCL_TRY(nncl_tensor_read(ctx, &l->device[i], data, (size_t)numel));
        } else { /* num_batches_tracked */
            int64_t tracked = 0;
            NNCL_TRY(nncl_layer_batches_tracked(counter_layer(net, e->name), &tracked));
            memcpy(data, &tracked, sizeof tracked);
        }
    }
    return NNCL_OK;
}

/* Checks that the file holds exactly the expected tensors, with their dtypes and shapes. */
static nncl_status match(nncl_context *ctx, const char *path, const nncl__st_file *f, const tensor_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const nncl__st_tensor *want = &l->t[i];
        const nncl__st_tensor *got = nncl__st_find(f, want->name);
        if (got == NULL) return NNCL_ERROR(ctx, NNCL_ERR_FORMAT, "%s: no tensor named %s", path, want->name);
        int same = got->dtype == want->dtype && got->ndim == want->ndim;
        for (int d = 0; same && d < want->ndim; d++) same = got->shape[d] == want->shape[d];
        if (!same) {
            char a[160], b[160];
            return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: %s is %s %s, the network needs %s %s", path, want->name,
                              got->dtype == NNCL_DTYPE_F32 ? "F32" : got->dtype == NNCL_DTYPE_I64 ? "I64" : "U8",
                              nncl_shape_format(got->ndim, got->shape, a, sizeof a),
                              want->dtype == NNCL_DTYPE_F32 ? "F32" : "I64",
                              nncl_shape_format(want->ndim, want->shape, b, sizeof b));
        }
        if (want->dtype == NNCL_DTYPE_I64) { /* num_batches_tracked: a count */
            int64_t v;
            memcpy(&v, got->data, sizeof v);
            if (v < 0) return NNCL_ERROR(ctx, NNCL_ERR_FORMAT, "%s: %s is %lld, not a count", path, want->name, (long long)v);
        }
    }
    for (size_t i = 0; i < f->n_tensors; i++) {
        const char *name = f->tensors[i].name;
        int known = 0;
        for (size_t j = 0; !known && j < l->n; j++) known = strcmp(l->t[j].name, name) == 0;
        if (!known) return NNCL_ERROR(ctx, NNCL_ERR_FORMAT, "%s: unexpected tensor %s (not in the network)", path, name);
    }
    return NNCL_OK;
}

/* Writes every matched tensor of the file to the device (after match()). */
static nncl_status scatter(nncl_context *ctx, nncl_network *net, const nncl__st_file *f, const tensor_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const nncl__st_tensor *got = nncl__st_find(f, l->t[i].name);
        size_t bytes = got->end - got->begin;
        if (l->device[i].buf) {
            float *v = malloc(bytes ? bytes : 1);
            if (v == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "checkpoint: out of host memory");
            memcpy(v, got->data, bytes); /* the file image is not aligned for floats */
            nncl_status st = nncl_tensor_write(ctx, &l->device[i], v, bytes / sizeof(float));
            free(v);
            NNCL_TRY(st);
        } else {
            int64_t tracked;
            memcpy(&tracked, got->data, sizeof tracked);
            NNCL_TRY(nncl_layer_set_batches_tracked(counter_layer(net, got->name), tracked));
        }
    }
    return NNCL_OK;
}

/*
 * The input normalisation of a file's metadata. *found is 0 when the file has
 * none (files written by torch): the network's own normalisation then stays.
 * Checked before anything is changed.
 */
static nncl_status meta_normalization(nncl_context *ctx, const char *path, const nncl__st_file *f, int *found,
                                      float *mean, float *std)
{
    const char *m = nncl__st_meta(f, "input.mean"), *s = nncl__st_meta(f, "input.std");
    *found = m != NULL || s != NULL;
    if (!*found) return NNCL_OK;
    char *e1 = NULL, *e2 = NULL;
    double mv = m ? strtod(m, &e1) : NAN, sv = s ? strtod(s, &e2) : NAN;
    /* Checked as the floats the network keeps: 1e39 overflows one, and 1e-50 is 0 in one. */
    float mf = (float)mv, sf = (float)sv;
    if (!m || !s || *e1 || *e2 || !isfinite(mf) || !(sf > 0.0f) || !isfinite(sf))
        return NNCL_ERROR(ctx, NNCL_ERR_FORMAT, "%s: bad input normalisation metadata (mean %s, std %s)", path,
                          m ? m : "missing", s ? s : "missing");
    *mean = mf;
    *std = sf;
    return NNCL_OK;
}

/* The optimizer kinds' names in a training state's metadata. */
static const char *const optimizer_names[] = {"sgd", "adam", "adamw"};

nncl_status nncl_network_save_weights(nncl_network *net, const char *path)
{
    nncl_context *ctx;
    NNCL_TRY(nncl_network_get_context(net, &ctx));
    NNCL_CHECK_ARG(ctx, path);
    tensor_list l = {0};
    nncl_status st = weight_list(ctx, net, &l);
    if (st == NNCL_OK) st = gather(ctx, net, &l);
    char mean[64], std[64];
    const char *keys[2] = {"input.mean", "input.std"}, *values[2] = {mean, std};
    float m = 0.0f, s = 1.0f;
    nncl_network_get_normalization(net, &m, &s);
    snprintf(mean, sizeof mean, "%.9g", (double)m);
    snprintf(std, sizeof std, "%.9g", (double)s);
    if (st == NNCL_OK) {
        st = nncl__st_write(path, l.t, l.n, keys, values, 2);
        if (st != NNCL_OK) nncl__error_attach(ctx); /* the writer records in the thread's slot */
    }
    list_free(&l);
    return st;
}

/* Reads a file, recording a failure on ctx. */
static nncl_status read_file(nncl_context *ctx, const char *path, nncl__st_file *f)
{
    nncl_status st = nncl__st_read(path, f);
    if (st != NNCL_OK) nncl__error_attach(ctx); /* the reader records in the thread's slot */
    return st;
}

nncl_status nncl_network_load_weights(nncl_network *net, const char *path)
{
    nncl_context *ctx;
    NNCL_TRY(nncl_network_get_context(net, &ctx));
    NNCL_CHECK_ARG(ctx, path);
    tensor_list l = {0};
    nncl__st_file f = {0};
    float mean = 0.0f, std = 1.0f;
    int found = 0;
    nncl_status st = weight_list(ctx, net, &l);
    if (st == NNCL_OK) st = read_file(ctx, path, &f);
    if (st == NNCL_OK) st = match(ctx, path, &f, &l);
    if (st == NNCL_OK) st = meta_normalization(ctx, path, &f, &found, &mean, &std);
    if (st == NNCL_OK) st = scatter(ctx, net, &f, &l);
    if (st == NNCL_OK && found) st = nncl_network_set_normalization(net, mean, std);
    nncl__st_free(&f);
    list_free(&l);
    return st;
}

/* ---- training state ----------------------------------------------------------------------------- */

nncl_status nncl_network_save_state(nncl_network *net, const char *path, const nncl_train_position *pos)
{
    nncl_context *ctx;
    NNCL_TRY(nncl_network_get_context(net, &ctx));
    NNCL_CHECK_ARG(ctx, path);
    NNCL_CHECK_ARG(ctx, pos);
    tensor_list l = {0};
    nncl_optimizer_options opt = {0};
    nncl_status st = nncl_network_get_optimizer(net, &opt); /* a training state needs one */
    if (st == NNCL_OK) st = weight_list(ctx, net, &l);
    if (st == NNCL_OK) st = optimizer_list(ctx, net, &opt, &l);
    if (st == NNCL_OK) st = gather(ctx, net, &l);

    /* Metadata: format, optimizer, position, and each dropout layer's step. */
    enum { MAX_META = 80, FIXED_META = 9 };
    char keys[MAX_META][64], values[MAX_META][64];
    const char *kp[MAX_META], *vp[MAX_META];
    size_t nm = 0;
    int64_t t = 0;
    nncl_network_get_step(net, &t);
#define META(k, ...) (snprintf(keys[nm], 64, "%s", k), snprintf(values[nm], 64, __VA_ARGS__), nm++)
    META("format", STATE_FORMAT);
    META("optimizer.kind", "%s", optimizer_names[opt.kind]);
    float norm_mean = 0.0f, norm_std = 1.0f;
    nncl_network_get_normalization(net, &norm_mean, &norm_std);
    META("input.mean", "%.9g", (double)norm_mean);
    META("input.std", "%.9g", (double)norm_std);
    META("optimizer.step", "%" PRId64, t);
    META("position.epoch", "%" PRId64, pos->epoch);
    META("position.batch", "%" PRId64, pos->batch);
    META("position.batch_size", "%" PRId64, pos->batch_size);
    META("position.seed", "%" PRIu64, pos->seed);
    size_t n_layers = 0;
    nncl_network_layer_count(net, &n_layers);
    for (size_t i = 0; i < n_layers; i++) {
        nncl_layer *layer;
        uint64_t step;
        nncl_network_layer(net, i, &layer);
        if (nncl__layer_is_dropout(layer) && nncl_layer_get_step(layer, &step) == NNCL_OK) {
            if (nm == MAX_META) {
                list_free(&l);
                return NNCL_ERROR(ctx, NNCL_ERR_UNSUPPORTED, "%s: more than %d dropout layers in a training state", path,
                                  MAX_META - FIXED_META);
            }
            char k[64];
            snprintf(k, sizeof k, "dropout.%zu.step", i);
            META(k, "%" PRIu64, step);
        }
    }
#undef META
    for (size_t i = 0; i < nm; i++) kp[i] = keys[i], vp[i] = values[i];
    if (st == NNCL_OK) {
        st = nncl__st_write(path, l.t, l.n, kp, vp, nm);
        if (st != NNCL_OK) nncl__error_attach(ctx);
    }
    list_free(&l);
    return st;
}

/* The metadata value `key`, strictly parsed as an unsigned decimal integer in lo .. hi. */
static nncl_status meta_int(nncl_context *ctx, const char *path, const nncl__st_file *f, const char *key, uint64_t lo,
                            uint64_t hi, uint64_t *out)
{
    const char *v = nncl__st_meta(f, key);
    if (v == NULL) return NNCL_ERROR(ctx, NNCL_ERR_FORMAT, "%s: metadata has no %s", path, key);
    char *end;
    errno = 0;
    unsigned long long u = strtoull(v, &end, 10);
    if (end == v || *end != '\0' || errno == ERANGE || v[0] == '-' || u < lo || u > hi)
        return NNCL_ERROR(ctx, NNCL_ERR_FORMAT, "%s: metadata %s = '%s' is not a count in %llu..%llu", path, key, v,
                          (unsigned long long)lo, (unsigned long long)hi);
    *out = u;
    return NNCL_OK;
}

nncl_status nncl_network_load_state(nncl_network *net, const char *path, nncl_train_position *pos)
{
    nncl_context *ctx;
    NNCL_TRY(nncl_network_get_context(net, &ctx));
    NNCL_CHECK_ARG(ctx, path);
    NNCL_CHECK_ARG(ctx, pos);
    tensor_list l = {0};
    nncl__st_file f = {0};
    nncl_optimizer_options opt = {0};
    uint64_t t = 0, epoch = 0, batch = 0, batch_size = 0, seed = 0;
    nncl_status st = nncl_network_get_optimizer(net, &opt); /* a training state needs one */
    if (st == NNCL_OK) st = weight_list(ctx, net, &l);
    if (st == NNCL_OK) st = optimizer_list(ctx, net, &opt, &l);
    if (st == NNCL_OK) st = read_file(ctx, path, &f);
    if (st == NNCL_OK) {
        const char *format = nncl__st_meta(&f, "format");
        if (format == NULL || strcmp(format, STATE_FORMAT) != 0)
            st = NNCL_ERROR(ctx, NNCL_ERR_FORMAT, "%s: not an nncl training state (metadata format is %s)", path,
                            format ? format : "missing");
    }
    if (st == NNCL_OK) {
        /* Adam and AdamW keep the same tensors: only the metadata tells them apart. */
        const char *kind = nncl__st_meta(&f, "optimizer.kind");
        if (kind == NULL || strcmp(kind, optimizer_names[opt.kind]) != 0)
            st = NNCL_ERROR(ctx, NNCL_ERR_FORMAT, "%s: the state is of optimizer %s, the network's is %s", path,
                            kind ? kind : "(missing)", optimizer_names[opt.kind]);
    }
    if (st == NNCL_OK) st = match(ctx, path, &f, &l);
    /* Steps, epochs and batches within what a network counts (a batch size of 0 records none). */
    const uint64_t steps_max = (uint64_t)NNCL_MAX_STEPS, elems_max = (uint64_t)NNCL_MAX_ELEMENTS;
    if (st == NNCL_OK) st = meta_int(ctx, path, &f, "optimizer.step", 0, steps_max, &t);
    if (st == NNCL_OK) st = meta_int(ctx, path, &f, "position.epoch", 0, steps_max, &epoch);
    if (st == NNCL_OK) st = meta_int(ctx, path, &f, "position.batch", 0, steps_max, &batch);
    if (st == NNCL_OK) st = meta_int(ctx, path, &f, "position.batch_size", 0, elems_max, &batch_size);
    if (st == NNCL_OK) st = meta_int(ctx, path, &f, "position.seed", 0, UINT64_MAX, &seed);
    float norm_mean = 0.0f, norm_std = 1.0f;
    int norm_found = 0;
    if (st == NNCL_OK) st = meta_normalization(ctx, path, &f, &norm_found, &norm_mean, &norm_std);
    /* Dropout steps: validated before anything changes. */
    size_t n_layers = 0;
    nncl_network_layer_count(net, &n_layers);
    uint64_t *steps = calloc(n_layers ? n_layers : 1, sizeof *steps);
    if (steps == NULL && st == NNCL_OK) st = NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "checkpoint: out of host memory");
    for (size_t i = 0; st == NNCL_OK && i < n_layers; i++) {
        nncl_layer *layer;
        uint64_t step;
        nncl_network_layer(net, i, &layer);
        if (!nncl__layer_is_dropout(layer) || nncl_layer_get_step(layer, &step) != NNCL_OK) continue;
        char k[64];
        snprintf(k, sizeof k, "dropout.%zu.step", i);
        st = meta_int(ctx, path, &f, k, 0, (uint64_t)INT64_MAX, &steps[i]);
    }
    if (st == NNCL_OK) st = scatter(ctx, net, &f, &l);
    for (size_t i = 0; st == NNCL_OK && i < n_layers; i++) {
        nncl_layer *layer;
        uint64_t step;
        nncl_network_layer(net, i, &layer);
        if (!nncl__layer_is_dropout(layer) || nncl_layer_get_step(layer, &step) != NNCL_OK) continue;
        /* The generator's key: the run's seed and the layer's index, as nncl_network_init sets it. */
        st = nncl_layer_reset_parameters(layer, seed, (uint32_t)i);
        if (st == NNCL_OK) st = nncl_layer_set_step(layer, steps[i]);
    }
    if (st == NNCL_OK) st = nncl_network_set_step(net, (int64_t)t);
    if (st == NNCL_OK && norm_found) st = nncl_network_set_normalization(net, norm_mean, norm_std);
    if (st == NNCL_OK) {
        pos->epoch = (int64_t)epoch;
        pos->batch = (int64_t)batch;
        pos->batch_size = (int64_t)batch_size;
        pos->seed = seed;
    }
    free(steps);
    nncl__st_free(&f);
    list_free(&l);
    return st;
}
