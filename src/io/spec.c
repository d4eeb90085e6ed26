/*
 * spec.c - the model spec parser (the format is described in nncl/spec.h).
 *
 * Each line is split into words; the first word names the statement, words
 * with '=' are options, the rest are positional values. Every number is
 * parsed strictly (the whole word, in range), every option must be known to
 * its layer, and every error names the line. The shape of one sample is
 * carried from line to line so that channels and features are inferred.
 */
#define _POSIX_C_SOURCE 200809L /* strtok_r */
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

#define MAX_WORDS 16
#define MAX_LINE 1024

/* One line, split into words (pointers into `buf`). */
typedef struct line {
    const char *file;
    int number;
    char buf[MAX_LINE];
    const char *name;
    const char *pos[MAX_WORDS];
    int n_pos;
    const char *key[MAX_WORDS], *val[MAX_WORDS];
    int used[MAX_WORDS];
    int n_opt;
} line;

typedef struct parser {
    nncl_context *ctx;
    const line *ln;
} parser;

/* A malformed line (NNCL_ERR_FORMAT), and a layer that does not fit the shape before it (NNCL_ERR_SHAPE). */
#define SPEC_ERROR(ln, ...) spec_error(ctx, (ln), NNCL_ERR_FORMAT, __FILE__, __LINE__, __VA_ARGS__)
#define SPEC_SHAPE_ERROR(ln, ...) spec_error(ctx, (ln), NNCL_ERR_SHAPE, __FILE__, __LINE__, __VA_ARGS__)

static nncl_status spec_error(nncl_context *ctx, const line *ln, nncl_status status, const char *file, int src_line,
                              const char *fmt, ...) NNCL_PRINTF(6, 7);

static nncl_status spec_error(nncl_context *ctx, const line *ln, nncl_status status, const char *file, int src_line,
                              const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return nncl__error(ctx, status, file, src_line, "%s:%d: %s%s%s", ln->file, ln->number, ln->name ? ln->name : "",
                       ln->name ? ": " : "", reason);
}

/* Records ctx's last error (a layer's own message, which names the layer) again as `status`, after the
   line's "file:number: ". */
static nncl_status at_line(nncl_context *ctx, const line *ln, nncl_status status)
{
    return nncl__error_prefix(ctx, status, "%s:%d: ", ln->file, ln->number);
}

/* Splits one line (comment removed) into words; returns 0 for a blank line. */
static nncl_status split(nncl_context *ctx, line *ln, const char *text, size_t len)
{
    ln->name = NULL; /* not the previous line's, in the message below */
    if (len >= MAX_LINE) return SPEC_ERROR(ln, "line longer than %d characters", MAX_LINE - 1);
    memcpy(ln->buf, text, len);
    ln->buf[len] = '\0';
    char *hash = strchr(ln->buf, '#');
    if (hash) *hash = '\0';
    ln->n_pos = ln->n_opt = 0;
    char *save = NULL;
    for (char *w = strtok_r(ln->buf, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
        if (ln->name == NULL) {
            ln->name = w;
            continue;
        }
        char *eq = strchr(w, '=');
        if (eq == NULL) {
            if (ln->n_pos == MAX_WORDS) return SPEC_ERROR(ln, "too many values");
            ln->pos[ln->n_pos++] = w;
        } else {
            if (ln->n_opt == MAX_WORDS) return SPEC_ERROR(ln, "too many options");
            *eq = '\0';
            if (w[0] == '\0' || eq[1] == '\0') return SPEC_ERROR(ln, "option '%s=%s' needs a name and a value", w, eq + 1);
            for (int i = 0; i < ln->n_opt; i++)
                if (strcmp(ln->key[i], w) == 0) return SPEC_ERROR(ln, "option '%s' is given twice", w);
            ln->key[ln->n_opt] = w;
            ln->val[ln->n_opt] = eq + 1;
            ln->used[ln->n_opt++] = 0;
        }
    }
    return NNCL_OK;
}

/* A whole word as an integer in [lo, hi]. */
static nncl_status parse_int(nncl_context *ctx, const line *ln, const char *what, const char *s, int64_t lo, int64_t hi,
                             int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE || v < lo || v > hi)
        return SPEC_ERROR(ln, "%s '%s' is not an integer in %lld..%lld", what, s, (long long)lo, (long long)hi);
    *out = v;
    return NNCL_OK;
}

static nncl_status parse_float(nncl_context *ctx, const line *ln, const char *what, const char *s, double lo,
                               double hi, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !(v >= lo && v <= hi))
        return SPEC_ERROR(ln, "%s '%s' is not a number in [%g, %g]", what, s, lo, hi);
    *out = (float)v;
    return NNCL_OK;
}

/* "3" -> (3, 3), "3x2" -> (3, 2). */
static nncl_status parse_pair(nncl_context *ctx, const line *ln, const char *what, const char *s, int64_t lo, int64_t hi,
                              int64_t out[2])
{
    char a[64];
    snprintf(a, sizeof a, "%s", s);
    char *x = strchr(a, 'x');
    if (x) *x = '\0';
    NNCL_TRY(parse_int(ctx, ln, what, a, lo, hi, &out[0]));
    if (x == NULL) {
        out[1] = out[0];
        return NNCL_OK;
    }
    return parse_int(ctx, ln, what, x + 1, lo, hi, &out[1]);
}

/* The value of option `key`, or NULL; marks it used. */
static const char *option(line *ln, const char *key)
{
    for (int i = 0; i < ln->n_opt; i++) {
        if (strcmp(ln->key[i], key) == 0) {
            ln->used[i] = 1;
            return ln->val[i];
        }
    }
    return NULL;
}

static nncl_status int_option(nncl_context *ctx, line *ln, const char *key, int64_t lo, int64_t hi, int64_t *v)
{
    const char *s = option(ln, key);
    return s ? parse_int(ctx, ln, key, s, lo, hi, v) : NNCL_OK;
}

static nncl_status pair_option(nncl_context *ctx, line *ln, const char *key, int64_t lo, int64_t hi, int64_t v[2])
{
    const char *s = option(ln, key);
    return s ? parse_pair(ctx, ln, key, s, lo, hi, v) : NNCL_OK;
}

static nncl_status float_option(nncl_context *ctx, line *ln, const char *key, double lo, double hi, float *v)
{
    const char *s = option(ln, key);
    return s ? parse_float(ctx, ln, key, s, lo, hi, v) : NNCL_OK;
}

/* Every option was understood, and there are at most max_pos positional values. */
static nncl_status finish_line(nncl_context *ctx, const line *ln, int max_pos)
{
    for (int i = 0; i < ln->n_opt; i++)
        if (!ln->used[i]) return SPEC_ERROR(ln, "unknown option '%s'", ln->key[i]);
    if (ln->n_pos > max_pos) return SPEC_ERROR(ln, "unexpected value '%s'", ln->pos[max_pos]);
    return NNCL_OK;
}

/* The layer's main value: positional or key=, required; an HxW pair where `pair` (kernel sizes), else one
   integer (features, channels), in v[0] and v[1] alike. */
static nncl_status required(nncl_context *ctx, line *ln, const char *key, int64_t lo, int64_t hi, int pair,
                            int64_t v[2])
{
    const char *s = option(ln, key);
    if (s == NULL && ln->n_pos > 0) {
        s = ln->pos[0];
        for (int i = 0; i + 1 < ln->n_pos; i++) ln->pos[i] = ln->pos[i + 1];
        ln->n_pos--;
    }
    if (s == NULL) return SPEC_ERROR(ln, "needs %s", key);
    if (pair) return parse_pair(ctx, ln, key, s, lo, hi, v);
    NNCL_TRY(parse_int(ctx, ln, key, s, lo, hi, &v[0]));
    v[1] = v[0];
    return NNCL_OK;
}

/* Builds the layer of line ln, the network's layer `index`, for inputs of the per-sample shape. */
static nncl_status build_layer(nncl_context *ctx, line *ln, size_t index, int ndim, const int64_t *shape,
                               nncl_layer **out)
{
    const char *n = ln->name;
    const int64_t big = INT32_MAX;
    int64_t v[2] = {0, 0};
    if (strcmp(n, "linear") == 0) {
        int64_t bias = 1;
        NNCL_TRY(required(ctx, ln, "features", 1, big, 0, v));
        NNCL_TRY(int_option(ctx, ln, "bias", 0, 1, &bias));
        NNCL_TRY(finish_line(ctx, ln, 0));
        if (ndim < 1) return SPEC_SHAPE_ERROR(ln, "needs an input with features");
        return nncl_linear_create(ctx, shape[ndim - 1], v[0], (int)bias, out);
    }
    if (strcmp(n, "conv2d") == 0) {
        NNCL_TRY(required(ctx, ln, "channels", 1, big, 0, v));
        if (ndim != 3) return SPEC_SHAPE_ERROR(ln, "needs an input of shape (C, H, W)");
        nncl_conv2d_options o = nncl_conv2d_options_default(shape[0], v[0], 1);
        int64_t k[2] = {0, 0}, s[2] = {1, 1}, p[2] = {0, 0}, d[2] = {1, 1}, bias = 1;
        const char *ks = option(ln, "kernel");
        if (ks == NULL) return SPEC_ERROR(ln, "needs kernel=K");
        NNCL_TRY(parse_pair(ctx, ln, "kernel", ks, 1, 1024, k));
        NNCL_TRY(pair_option(ctx, ln, "stride", 1, big, s));
        NNCL_TRY(pair_option(ctx, ln, "padding", 0, big, p));
        NNCL_TRY(pair_option(ctx, ln, "dilation", 1, big, d));
        NNCL_TRY(int_option(ctx, ln, "groups", 1, big, &o.groups));
        NNCL_TRY(int_option(ctx, ln, "bias", 0, 1, &bias));
        NNCL_TRY(finish_line(ctx, ln, 0));
        o.kernel_h = k[0], o.kernel_w = k[1], o.stride_h = s[0], o.stride_w = s[1];
        o.padding_h = p[0], o.padding_w = p[1], o.dilation_h = d[0], o.dilation_w = d[1], o.bias = (int)bias;
        return nncl_conv2d_create(ctx, &o, out);
    }
    if (strcmp(n, "maxpool2d") == 0 || strcmp(n, "avgpool2d") == 0) {
        int64_t stride = 0, padding = 0;
        NNCL_TRY(required(ctx, ln, "kernel", 1, 1024, 1, v));
        NNCL_TRY(int_option(ctx, ln, "stride", 1, big, &stride));
        NNCL_TRY(int_option(ctx, ln, "padding", 0, 512, &padding));
        NNCL_TRY(finish_line(ctx, ln, 0));
        if (v[0] != v[1]) return SPEC_ERROR(ln, "kernel must be square");
        return nncl_pool2d_create(ctx, n[0] == 'm' ? NNCL_POOL_MAX : NNCL_POOL_AVG, v[0], stride, padding, out);
    }
    if (strcmp(n, "global_avgpool") == 0) {
        NNCL_TRY(finish_line(ctx, ln, 0));
        return nncl_global_avgpool_create(ctx, out);
    }
    if (strcmp(n, "flatten") == 0) {
        int64_t start = 1;
        NNCL_TRY(int_option(ctx, ln, "start_dim", -8, 7, &start));
        NNCL_TRY(finish_line(ctx, ln, 0));
        return nncl_flatten_create(ctx, (int)start, out);
    }
    if (strcmp(n, "unflatten") == 0) {
        int64_t dim = 1, sizes[NNCL_MAX_DIMS];
        NNCL_TRY(int_option(ctx, ln, "dim", -8, 7, &dim));
        const char *s = option(ln, "sizes");
        if (s == NULL) return SPEC_ERROR(ln, "needs sizes=A,B,...");
        char copy[256], *save = NULL;
        snprintf(copy, sizeof copy, "%s", s);
        int count = 0;
        for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
            if (count == NNCL_MAX_DIMS) return SPEC_ERROR(ln, "more than %d sizes", NNCL_MAX_DIMS);
            NNCL_TRY(parse_int(ctx, ln, "size", w, -1, big, &sizes[count++]));
        }
        NNCL_TRY(finish_line(ctx, ln, 0));
        return nncl_unflatten_create(ctx, (int)dim, count, sizes, out);
    }
    for (int a = 0; nncl__activation_name((nncl_activation)a) != NULL; a++) {
        if (strcmp(n, nncl__activation_name((nncl_activation)a)) != 0) continue;
        float param = a == NNCL_ACT_LEAKY_RELU ? 0.01f : 1.0f;
        if (a == NNCL_ACT_LEAKY_RELU) NNCL_TRY(float_option(ctx, ln, "slope", -1e6, 1e6, &param));
        if (a == NNCL_ACT_ELU) NNCL_TRY(float_option(ctx, ln, "alpha", -1e6, 1e6, &param));
        NNCL_TRY(finish_line(ctx, ln, 0));
        return nncl_activation_create(ctx, (nncl_activation)a, param, out);
    }
    if (strcmp(n, "softmax") == 0 || strcmp(n, "log_softmax") == 0) {
        NNCL_TRY(finish_line(ctx, ln, 0));
        return nncl_softmax_create(ctx, n[0] == 'l', out);
    }
    if (strcmp(n, "dropout") == 0) {
        float p = 0.5f;
        NNCL_TRY(float_option(ctx, ln, "p", 0.0, 0.999999, &p));
        NNCL_TRY(finish_line(ctx, ln, 0));
        /* Keyed by its index, as nncl_network_init keys it: two dropout layers never share a mask. */
        return nncl_dropout_create(ctx, p, 0, (uint32_t)index, out);
    }
    if (strcmp(n, "batchnorm1d") == 0 || strcmp(n, "batchnorm2d") == 0) {
        NNCL_TRY(finish_line(ctx, ln, 0));
        int spatial = n[9] == '1' ? 1 : 2;
        if ((spatial == 1 && ndim != 1 && ndim != 2) || (spatial == 2 && ndim != 3))
            return SPEC_SHAPE_ERROR(ln, "needs an input of shape %s", spatial == 1 ? "(C) or (C, L)" : "(C, H, W)");
        return nncl_batchnorm_create(ctx, shape[0], spatial, out);
    }
    if (strcmp(n, "layernorm") == 0) {
        int64_t dims = 1, affine = 1;
        NNCL_TRY(int_option(ctx, ln, "dims", 1, 8, &dims));
        NNCL_TRY(int_option(ctx, ln, "affine", 0, 1, &affine));
        NNCL_TRY(finish_line(ctx, ln, 0));
        if (dims > ndim) return SPEC_SHAPE_ERROR(ln, "dims=%lld, but the input has %d dimensions", (long long)dims, ndim);
        return nncl_layernorm_create(ctx, (int)dims, shape + ndim - dims, (int)affine, out);
    }
    return SPEC_ERROR(ln, "unknown layer");
}

static nncl_status build_loss(nncl_context *ctx, line *ln, nncl_loss **out)
{
    if (ln->n_pos < 1) return SPEC_ERROR(ln, "needs a loss name (cross_entropy, mse, bce_with_logits, nll)");
    const char *kind = ln->pos[0];
    ln->pos[0] = ln->pos[--ln->n_pos];
    for (int k = 0; nncl__loss_name((nncl_loss_kind)k) != NULL; k++) {
        if (strcmp(kind, nncl__loss_name((nncl_loss_kind)k)) != 0) continue;
        float smoothing = 0.0f;
        if (k == NNCL_LOSS_CROSS_ENTROPY) NNCL_TRY(float_option(ctx, ln, "smoothing", 0.0, 1.0, &smoothing));
        NNCL_TRY(finish_line(ctx, ln, 0));
        return nncl_loss_create(ctx, (nncl_loss_kind)k, smoothing, out);
    }
    return SPEC_ERROR(ln, "unknown loss '%s'", kind);
}

nncl_status nncl_spec_parse(nncl_context *ctx, const char *text, const char *name, nncl_spec *out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, text);
    NNCL_CHECK_ARG(ctx, out);
    memset(out, 0, sizeof *out);
    line *ln = calloc(1, sizeof *ln);
    if (ln == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "spec: out of host memory");
    ln->file = name ? name : "<spec>";
    nncl_network *net = NULL;
    nncl_loss *loss = NULL;
    int ndim = -1, in_ndim = 0;
    int64_t shape[NNCL_MAX_DIMS], in_shape[NNCL_MAX_DIMS];
    nncl_status st = nncl_network_create(ctx, &net);
    for (const char *p = text; st == NNCL_OK && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        ln->number++;
        st = split(ctx, ln, p, len);
        p += len + (eol != NULL);
        if (st != NNCL_OK || ln->name == NULL) continue;
        if (strcmp(ln->name, "input") == 0) {
            if (ndim >= 0) {
                st = SPEC_ERROR(ln, "a second input line");
                break;
            }
            if (ln->n_pos < 1 || ln->n_pos > 3 || ln->n_opt > 0) {
                st = SPEC_ERROR(ln, "takes 1 to 3 sizes, e.g. 'input 1 28 28'");
                break;
            }
            for (int i = 0; st == NNCL_OK && i < ln->n_pos; i++)
                st = parse_int(ctx, ln, "size", ln->pos[i], 1, INT32_MAX, &shape[i]);
            if (st == NNCL_OK && nncl__shape_elements(ln->n_pos, shape) < 0)
                st = SPEC_ERROR(ln, "a sample of more than 2^40 elements");
            ndim = in_ndim = ln->n_pos;
            memcpy(in_shape, shape, sizeof(int64_t) * (size_t)ndim);
            continue;
        }
        if (ndim < 0) {
            st = SPEC_ERROR(ln, "the first statement must be 'input', e.g. 'input 1 28 28'");
            break;
        }
        if (strcmp(ln->name, "loss") == 0) {
            if (loss != NULL) {
                st = SPEC_ERROR(ln, "a second loss line");
                break;
            }
            st = build_loss(ctx, ln, &loss);
            continue;
        }
        if (loss != NULL) {
            st = SPEC_ERROR(ln, "layers must come before the loss");
            break;
        }
        nncl_layer *layer = NULL;
        size_t index = 0;
        nncl_network_layer_count(net, &index);
        st = build_layer(ctx, ln, index, ndim, shape, &layer);
        if (st == NNCL_ERR_INVALID_ARG) { /* a constructor refused the values: point at the line */
            st = at_line(ctx, ln, NNCL_ERR_FORMAT);
        } else if (st != NNCL_OK && st != NNCL_ERR_FORMAT && st != NNCL_ERR_SHAPE) {
            /* out of memory, say: keep the status (FORMAT and SHAPE are the parser's own, at the line already) */
            st = at_line(ctx, ln, st);
        }
        if (st != NNCL_OK) break;
        /* Carry the per-sample shape through the layer (with a batch of 1). */
        int64_t in[NNCL_MAX_DIMS], o[NNCL_MAX_DIMS];
        int ond;
        in[0] = 1;
        memcpy(in + 1, shape, sizeof(int64_t) * (size_t)ndim);
        if (ndim + 1 > NNCL_MAX_DIMS) st = SPEC_ERROR(ln, "too many dimensions");
        if (st == NNCL_OK) {
            st = nncl_layer_output_shape(layer, ndim + 1, in, &ond, o);
            if (st == NNCL_ERR_SHAPE) st = at_line(ctx, ln, st); /* the layer's own message */
        }
        if (st == NNCL_OK && nncl__shape_elements(ond, o) < 0)
            st = SPEC_ERROR(ln, "gives a sample of more than 2^40 elements");
        if (st == NNCL_OK) { /* and with a batch of 2: a layer that does not keep it would mix the samples */
            int64_t o2[NNCL_MAX_DIMS];
            int ond2;
            in[0] = 2;
            if (nncl__shape_elements(ndim + 1, in) >= 0 &&
                (nncl_layer_output_shape(layer, ndim + 1, in, &ond2, o2) != NNCL_OK || ond2 < 1 || o2[0] != 2))
                st = SPEC_SHAPE_ERROR(ln, "does not keep the batch dimension: a network's layers work per sample");
        }
        if (st == NNCL_OK) st = nncl_network_add(net, layer); /* owns the layer from here, even on failure */
        else nncl_layer_destroy(layer);
        if (st != NNCL_OK) break;
        ndim = ond - 1;
        memcpy(shape, o + 1, sizeof(int64_t) * (size_t)ndim);
    }
    if (st == NNCL_OK && ndim < 0) st = nncl__error(ctx, NNCL_ERR_FORMAT, __FILE__, __LINE__, "%s: no input line", ln->file);
    if (st == NNCL_OK) {
        size_t count = 0;
        nncl_network_layer_count(net, &count);
        if (count == 0) st = nncl__error(ctx, NNCL_ERR_FORMAT, __FILE__, __LINE__, "%s: no layers", ln->file);
    }
    if (st == NNCL_OK && loss == NULL) st = nncl_loss_create(ctx, NNCL_LOSS_CROSS_ENTROPY, 0.0f, &loss);
    if (st == NNCL_OK) {
        st = nncl_network_set_loss(net, loss); /* owns the loss from here */
        loss = NULL;
    }
    free(ln);
    if (st != NNCL_OK) {
        nncl_loss_destroy(loss);
        nncl_network_destroy(net);
        return st;
    }
    out->net = net;
    out->ndim = in_ndim;
    memcpy(out->shape, in_shape, sizeof(int64_t) * (size_t)in_ndim);
    return NNCL_OK;
}

nncl_status nncl_spec_load(nncl_context *ctx, const char *path, nncl_spec *out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, path);
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NNCL_ERROR(ctx, NNCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    nncl_status st = NNCL_OK;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            if (cap > (1u << 20)) {
                st = NNCL_ERROR(ctx, NNCL_ERR_FORMAT, "%s: larger than 1 MiB: not a model spec", path);
                break;
            }
            cap = cap ? 2 * cap : 8192;
            char *grown = realloc(text, cap);
            if (grown == NULL) {
                st = NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "%s: out of host memory", path);
                break;
            }
            text = grown;
        }
        errno = 0;
        size_t got = fread(text + len, 1, 4096, f);
        len += got;
        if (got < 4096) {
            if (ferror(f)) /* a folder, say: "Is a directory" */
                st = NNCL_ERROR(ctx, NNCL_ERR_IO, "%s: cannot read: %s", path, errno ? strerror(errno) : "read error");
            break;
        }
    }
    fclose(f);
    if (st == NNCL_OK && memchr(text, '\0', len) != NULL)
        st = NNCL_ERROR(ctx, NNCL_ERR_FORMAT, "%s: contains NUL bytes: not a model spec", path);
    if (st == NNCL_OK) {
        text[len] = '\0';
        st = nncl_spec_parse(ctx, text, path, out);
    }
    free(text);
    return st;
}
