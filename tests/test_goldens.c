/*
 * test_goldens.c - every layer and loss against PyTorch, on one backend.
 *
 * Usage: test_goldens <data_dir> cpu|opencl
 *
 * <data_dir> holds one fixture per case, <case>.txt, written by
 * tools/make_goldens.py from torch.nn modules in float32 (see that script for
 * the format). Every *.txt in the directory is one cmocka test, named after
 * the case and run in name order. A case builds the layer (or loss) through
 * the public API from the fixture's header line, writes the fixture's
 * param.* values through nncl_layer_param, runs the forward pass in the
 * fixture's mode and the backward pass with its grad_output, and compares:
 *   layers: output, grad_input (grad_input2 for add), grad.<name> for every
 *           learnable parameter, buffer.<name> for every buffer (batch norm's
 *           running statistics after the forward);
 *   losses: loss (the mean) and grad_input.
 * A fixture must set every parameter of the layer and supply every gradient
 * and buffer the layer has, and nothing the layer lacks: a renamed or
 * missing parameter, an unknown tensor role or an unknown header key fails
 * the case instead of being skipped. A passing case prints
 * "golden <case>: ok (<k> tensors compared)"; a failing one names the case
 * and the tensor role.
 *
 * Activations, gradients and loss inputs live in guarded views (non-zero
 * offset, canaries on both sides), so a kernel that writes outside its
 * tensor, or leaves part of it unwritten, fails the case as well. Alias
 * layers (flatten, unflatten) only return descriptors, as the API says.
 *
 * Tolerance, per element: |got - want| <= atol + rtol * |want| with
 * atol 1e-5, rtol 1e-4 (nncl float32 against PyTorch float32 on small
 * tensors of O(1) values). One exception: the mean loss of a cross_entropy
 * case whose logits reach |x| >= 1e3 (the +-1e4 stability case) is checked
 * with rtol 1e-6, since 1e-4 of a loss near 1e4 would hide a precision loss.
 *
 * The test fails when the directory has no fixtures or cannot be read.
 */
#define _POSIX_C_SOURCE 200809L

#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tolerances ---------------------------------------------------------------- */

static const double GOLDEN_ATOL = 1e-5;
static const double GOLDEN_RTOL = 1e-4;
/* The mean loss of cross_entropy with logits of magnitude >= LARGE_LOGIT. */
static const double GOLDEN_RTOL_LARGE_LOGIT_LOSS = 1e-6;
static const double LARGE_LOGIT = 1e3;

/* ---- a parsed fixture ---------------------------------------------------------- */

#define MAX_KEYS 16
#define MAX_TENSORS 32
#define MAX_LINE 512

typedef struct fx_tensor {
    char role[64];
    int ndim;
    int64_t shape[NNCL_MAX_DIMS];
    size_t n;
    float *v;  /* n values, row-major */
    int used;  /* uploaded or compared: every tensor of a fixture must be */
} fx_tensor;

/* One case: the fixture and every nncl object it creates (released by the teardown). */
typedef struct golden {
    char path[4096];
    char name[256];

    /* fixture */
    int is_loss;        /* "loss" header instead of "layer" */
    char kind[32];
    int nkeys;
    char key[MAX_KEYS][32];
    char val[MAX_KEYS][64];
    int key_used[MAX_KEYS];
    int has_mode;
    nncl_mode mode;
    int ntensors;
    fx_tensor t[MAX_TENSORS];

    /* nncl objects */
    nncl_layer *layer;
    nncl_loss *loss;
    test_guarded x, x2, y, dy, dx, dx2, target;
    nncl_tensor loss_out;
    char *text;         /* the fixture file, while it is parsed */
    float *scratch;     /* host copy of the tensor being compared */
    int checked;        /* tensors compared so far */
} golden;

static nncl_context *ctx;

/* ---- fixture parsing --------------------------------------------------------------- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 16384, len = 0;
    char *text = malloc(cap + 1);
    while (text) {
        len += fread(text + len, 1, cap - len, f);
        if (len < cap) break;
        cap *= 2;
        char *bigger = realloc(text, cap + 1);
        if (!bigger) free(text);
        text = bigger;
    }
    int err = ferror(f);
    fclose(f);
    if (text && err) {
        free(text);
        return NULL;
    }
    if (text) text[len] = '\0';
    return text;
}

/* Parses a tensor header ("tensor <role> <ndim> <d0> ...") and the values that follow it. */
static const char *parse_tensor(golden *g, int lineno, char *header, const char *values)
{
    if (g->ntensors == MAX_TENSORS) fail_msg("%s: line %d: more than %d tensors", g->name, lineno, MAX_TENSORS);
    fx_tensor *t = &g->t[g->ntensors];
    char *save = NULL;
    strtok_r(header, " \t\r", &save); /* "tensor" */
    const char *role = strtok_r(NULL, " \t\r", &save);
    const char *ndim = strtok_r(NULL, " \t\r", &save);
    if (!role || !ndim || strlen(role) >= sizeof t->role)
        fail_msg("%s: line %d: malformed tensor header", g->name, lineno);
    strcpy(t->role, role);
    t->ndim = atoi(ndim);
    if (t->ndim < 0 || t->ndim > NNCL_MAX_DIMS) fail_msg("%s: line %d: bad rank %s", g->name, lineno, ndim);
    t->n = 1;
    for (int d = 0; d < t->ndim; d++) {
        const char *dim = strtok_r(NULL, " \t\r", &save);
        if (!dim || atoll(dim) < 1) fail_msg("%s: line %d: bad shape of %s", g->name, lineno, role);
        t->shape[d] = atoll(dim);
        t->n *= (size_t)t->shape[d];
    }
    if (strtok_r(NULL, " \t\r", &save)) fail_msg("%s: line %d: extra sizes after the shape", g->name, lineno);
    for (int i = 0; i < g->ntensors; i++)
        if (strcmp(g->t[i].role, role) == 0) fail_msg("%s: line %d: tensor %s given twice", g->name, lineno, role);

    t->v = malloc(t->n * sizeof *t->v);
    assert_non_null(t->v);
    g->ntensors++; /* owned by g from here on: the teardown frees it */
    for (size_t i = 0; i < t->n; i++) {
        char *end;
        t->v[i] = strtof(values, &end);
        if (end == values)
            fail_msg("%s: tensor %s: expected %zu values, found %zu", g->name, role, t->n, i);
        values = end;
    }
    return values;
}

/* Parses "key=value" tokens of a header line into g->key / g->val. */
static void parse_keys(golden *g, int lineno, char **save)
{
    for (char *tok; (tok = strtok_r(NULL, " \t\r", save)) != NULL;) {
        char *eq = strchr(tok, '=');
        if (!eq || eq == tok) fail_msg("%s: line %d: expected key=value, got '%s'", g->name, lineno, tok);
        *eq = '\0';
        if (g->nkeys == MAX_KEYS || strlen(tok) >= sizeof g->key[0] || strlen(eq + 1) >= sizeof g->val[0])
            fail_msg("%s: line %d: too many or too long keys", g->name, lineno);
        strcpy(g->key[g->nkeys], tok);
        strcpy(g->val[g->nkeys], eq + 1);
        g->nkeys++;
    }
}

static void parse_fixture(golden *g, const char *text)
{
    int lineno = 0, have_kind = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        const char *next = eol ? eol + 1 : p + len;
        lineno++;
        char line[MAX_LINE];
        if (len >= sizeof line) fail_msg("%s: line %d is too long", g->name, lineno);
        memcpy(line, p, len);
        line[len] = '\0';

        char words[MAX_LINE]; /* tokenized in place; `line` stays whole */
        strcpy(words, line);
        char *save = NULL;
        const char *word = strtok_r(words, " \t\r", &save);
        if (!word || word[0] == '#') {
            p = next; /* blank line or comment */
            continue;
        }
        if (strcmp(word, "layer") == 0 || strcmp(word, "loss") == 0) {
            const char *kind = strtok_r(NULL, " \t\r", &save);
            if (have_kind || !kind || strlen(kind) >= sizeof g->kind)
                fail_msg("%s: line %d: malformed or repeated layer/loss line", g->name, lineno);
            g->is_loss = strcmp(word, "loss") == 0;
            strcpy(g->kind, kind);
            have_kind = 1;
            parse_keys(g, lineno, &save);
        } else if (strcmp(word, "mode") == 0) {
            const char *m = strtok_r(NULL, " \t\r", &save);
            if (!m || (strcmp(m, "train") != 0 && strcmp(m, "eval") != 0))
                fail_msg("%s: line %d: mode must be train or eval", g->name, lineno);
            g->has_mode = 1;
            g->mode = strcmp(m, "train") == 0 ? NNCL_TRAIN : NNCL_EVAL;
        } else if (strcmp(word, "tensor") == 0) {
            /* The values follow the header, over as many lines as they take. */
            const char *end = parse_tensor(g, lineno, line, next);
            for (const char *q = next; q < end; q++)
                if (*q == '\n') lineno++;
            next = end;
            while (*next == ' ' || *next == '\t' || *next == '\r') next++;
            if (*next == '\n') {
                next++;
                lineno++;
            } else if (*next != '\0') {
                fail_msg("%s: line %d: more values than the shape of the last tensor holds", g->name, lineno + 1);
            }
        } else {
            fail_msg("%s: line %d: unexpected '%s'", g->name, lineno, word);
        }
        p = next;
    }
    if (!have_kind) fail_msg("%s: no 'layer' or 'loss' line", g->name);
    if (!g->is_loss && !g->has_mode) fail_msg("%s: no 'mode' line", g->name);
}

/* ---- fixture accessors ------------------------------------------------------------ */

/* Finds the fixture tensor `role` (NULL if absent) and marks it used. */
static const fx_tensor *find_tensor(golden *g, const char *role)
{
    for (int i = 0; i < g->ntensors; i++) {
        if (strcmp(g->t[i].role, role) == 0) {
            g->t[i].used = 1;
            return &g->t[i];
        }
    }
    return NULL;
}

static const fx_tensor *need_tensor(golden *g, const char *role)
{
    const fx_tensor *t = find_tensor(g, role);
    if (!t) fail_msg("%s: the fixture has no tensor '%s'", g->name, role);
    return t;
}

/* Fails on a header key that building the layer or loss did not read (a misspelt or foreign key). */
static void assert_keys_used(const golden *g)
{
    for (int i = 0; i < g->nkeys; i++)
        if (!g->key_used[i]) fail_msg("%s: unknown key '%s' for %s", g->name, g->key[i], g->kind);
}

/* Fails on a fixture tensor that the case never used: an unknown role, or a parameter the layer lacks. */
static void assert_tensors_used(const golden *g)
{
    for (int i = 0; i < g->ntensors; i++)
        if (!g->t[i].used)
            fail_msg("%s: the fixture's tensor '%s' was never used (unknown role, or a parameter, gradient or "
                     "buffer that the layer does not have)",
                     g->name, g->t[i].role);
}

static const char *find_key(golden *g, const char *key)
{
    for (int i = 0; i < g->nkeys; i++) {
        if (strcmp(g->key[i], key) == 0) {
            g->key_used[i] = 1;
            return g->val[i];
        }
    }
    return NULL;
}

static const char *need_key(golden *g, const char *key)
{
    const char *v = find_key(g, key);
    if (!v) fail_msg("%s: '%s %s' has no key '%s'", g->name, g->is_loss ? "loss" : "layer", g->kind, key);
    return v;
}

static int64_t key_int(golden *g, const char *key)
{
    const char *v = need_key(g, key);
    char *end;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end) fail_msg("%s: %s=%s is not an integer", g->name, key, v);
    return (int64_t)x;
}

static float key_float(golden *g, const char *key)
{
    const char *v = need_key(g, key);
    char *end;
    float x = strtof(v, &end);
    if (end == v || *end) fail_msg("%s: %s=%s is not a number", g->name, key, v);
    return x;
}

/* A conv/pool size: "3" (h = w = 3) or "3x2" (h = 3, w = 2). */
static void key_hw(golden *g, const char *key, int64_t *h, int64_t *w)
{
    const char *v = need_key(g, key);
    char *end;
    *h = strtoll(v, &end, 10);
    if (end == v) fail_msg("%s: %s=%s is not a size", g->name, key, v);
    if (*end == 'x') {
        const char *second = end + 1;
        *w = strtoll(second, &end, 10);
        if (end == second) fail_msg("%s: %s=%s is not a size", g->name, key, v);
    } else {
        *w = *h;
    }
    if (*end) fail_msg("%s: %s=%s is not a size", g->name, key, v);
}

/* A comma-separated list of integers ("3,4" or "2,-1"); returns its length. */
static int key_list(golden *g, const char *key, int64_t *out, int cap)
{
    const char *v = need_key(g, key), *p = v;
    int n = 0;
    for (;;) {
        char *end;
        long long x = strtoll(p, &end, 10);
        if (end == p || n == cap) fail_msg("%s: %s=%s is not a list of sizes", g->name, key, v);
        out[n++] = (int64_t)x;
        if (*end == '\0') break;
        if (*end != ',') fail_msg("%s: %s=%s is not a list of sizes", g->name, key, v);
        p = end + 1;
    }
    return n;
}

static int same_shape(int ndim, const int64_t *shape, const fx_tensor *t)
{
    if (ndim != t->ndim) return 0;
    for (int d = 0; d < ndim; d++)
        if (shape[d] != t->shape[d]) return 0;
    return 1;
}

static void assert_shape(const golden *g, const char *role, int ndim, const int64_t *shape, const fx_tensor *want)
{
    if (same_shape(ndim, shape, want)) return;
    char a[96], b[96];
    fail_msg("%s: %s: shape %s, the fixture has %s", g->name, role, nncl_shape_format(ndim, shape, a, sizeof a),
             nncl_shape_format(want->ndim, want->shape, b, sizeof b));
}

/* ---- comparing results ------------------------------------------------------------- */

/*
 * Reads `t` (through `guard` when it is a guarded view, checking its
 * canaries) and compares it with the fixture tensor `role`.
 */
static void check_result(golden *g, const char *role, const nncl_tensor *t, const test_guarded *guard, double atol,
                         double rtol)
{
    const fx_tensor *want = need_tensor(g, role);
    assert_shape(g, role, t->ndim, t->shape, want);
    free(g->scratch);
    g->scratch = malloc(want->n * sizeof *g->scratch);
    assert_non_null(g->scratch);
    char what[384];
    snprintf(what, sizeof what, "%s: %s", g->name, role);
    if (guard)
        test_guarded_read(ctx, guard, g->scratch, what);
    else
        TEST_OK(ctx, nncl_tensor_read(ctx, t, g->scratch, want->n));
    test_assert_close(g->scratch, want->v, want->n, atol, rtol, what);
    g->checked++;
}

/* Creates a guarded view holding the fixture tensor `role`. */
static void upload(golden *g, test_guarded *dst, const char *role)
{
    const fx_tensor *t = need_tensor(g, role);
    test_guarded_create(ctx, dst, t->ndim, t->shape, t->v);
}

/* ---- building layers ------------------------------------------------------------------ */

static nncl_layer *create_layer(golden *g)
{
    const char *k = g->kind;
    nncl_layer *layer = NULL;
    static const struct {
        const char *name;
        nncl_activation act;
        const char *param_key; /* NULL: no parameter */
    } acts[] = {
        {"relu", NNCL_ACT_RELU, NULL},       {"leaky_relu", NNCL_ACT_LEAKY_RELU, "slope"},
        {"sigmoid", NNCL_ACT_SIGMOID, NULL}, {"tanh", NNCL_ACT_TANH, NULL},
        {"gelu", NNCL_ACT_GELU, NULL},       {"silu", NNCL_ACT_SILU, NULL},
        {"elu", NNCL_ACT_ELU, "alpha"},
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        if (strcmp(k, acts[i].name) != 0) continue;
        float param = acts[i].param_key ? key_float(g, acts[i].param_key) : 0.0f;
        TEST_OK(ctx, nncl_activation_create(ctx, acts[i].act, param, &layer));
        return layer;
    }

    if (strcmp(k, "linear") == 0) {
        TEST_OK(ctx, nncl_linear_create(ctx, key_int(g, "in"), key_int(g, "out"), (int)key_int(g, "bias"), &layer));
    } else if (strcmp(k, "conv2d") == 0) {
        int64_t kh, kw;
        key_hw(g, "kernel", &kh, &kw);
        nncl_conv2d_options opt = nncl_conv2d_options_default(key_int(g, "in"), key_int(g, "out"), kh);
        opt.kernel_h = kh;
        opt.kernel_w = kw;
        key_hw(g, "stride", &opt.stride_h, &opt.stride_w);
        key_hw(g, "padding", &opt.padding_h, &opt.padding_w);
        key_hw(g, "dilation", &opt.dilation_h, &opt.dilation_w);
        opt.groups = key_int(g, "groups");
        opt.bias = (int)key_int(g, "bias");
        TEST_OK(ctx, nncl_conv2d_create(ctx, &opt, &layer));
    } else if (strcmp(k, "maxpool2d") == 0 || strcmp(k, "avgpool2d") == 0) {
        int64_t kh, kw, sh, sw, ph, pw;
        key_hw(g, "kernel", &kh, &kw);
        key_hw(g, "stride", &sh, &sw);
        key_hw(g, "padding", &ph, &pw);
        if (kh != kw || sh != sw || ph != pw) fail_msg("%s: nncl pools are square", g->name);
        TEST_OK(ctx, nncl_pool2d_create(ctx, strcmp(k, "maxpool2d") == 0 ? NNCL_POOL_MAX : NNCL_POOL_AVG, kh, sh, ph, &layer));
    } else if (strcmp(k, "global_avgpool") == 0) {
        TEST_OK(ctx, nncl_global_avgpool_create(ctx, &layer));
    } else if (strcmp(k, "flatten") == 0) {
        TEST_OK(ctx, nncl_flatten_create(ctx, (int)key_int(g, "start_dim"), &layer));
    } else if (strcmp(k, "unflatten") == 0) {
        int64_t sizes[NNCL_MAX_DIMS];
        int n = key_list(g, "sizes", sizes, NNCL_MAX_DIMS);
        TEST_OK(ctx, nncl_unflatten_create(ctx, (int)key_int(g, "dim"), n, sizes, &layer));
    } else if (strcmp(k, "softmax") == 0 || strcmp(k, "log_softmax") == 0) {
        TEST_OK(ctx, nncl_softmax_create(ctx, strcmp(k, "log_softmax") == 0, &layer));
    } else if (strcmp(k, "dropout") == 0) {
        TEST_OK(ctx, nncl_dropout_create(ctx, key_float(g, "p"), 1234, 0, &layer));
    } else if (strcmp(k, "batchnorm1d") == 0 || strcmp(k, "batchnorm2d") == 0) {
        int spatial_dims = strcmp(k, "batchnorm1d") == 0 ? 1 : 2;
        TEST_OK(ctx, nncl_batchnorm_create(ctx, key_int(g, "features"), spatial_dims, &layer));
    } else if (strcmp(k, "layernorm") == 0) {
        int64_t shape[NNCL_MAX_DIMS];
        int n = key_list(g, "shape", shape, NNCL_MAX_DIMS);
        TEST_OK(ctx, nncl_layernorm_create(ctx, n, shape, (int)key_int(g, "affine"), &layer));
    } else if (strcmp(k, "add") == 0) {
        TEST_OK(ctx, nncl_add_create(ctx, &layer));
    } else {
        fail_msg("%s: unknown layer kind '%s'", g->name, k);
    }
    return layer;
}

/* Writes param.<name> of the fixture into every parameter and buffer of the layer; each must be given. */
static void set_params(golden *g)
{
    size_t count;
    TEST_OK(ctx, nncl_layer_param_count(g->layer, &count));
    for (size_t i = 0; i < count; i++) {
        const char *name;
        nncl_tensor value, grad;
        TEST_OK(ctx, nncl_layer_param(g->layer, i, &name, &value, &grad));
        char role[96];
        snprintf(role, sizeof role, "param.%s", name);
        const fx_tensor *t = find_tensor(g, role);
        if (!t) fail_msg("%s: the layer has parameter '%s' but the fixture has no %s", g->name, name, role);
        assert_shape(g, role, value.ndim, value.shape, t);
        TEST_OK(ctx, nncl_tensor_write(ctx, &value, t->v, t->n));
    }
}

/* Compares grad.<name> of every learnable parameter and buffer.<name> of every buffer. */
static void check_params_after(golden *g)
{
    size_t count;
    TEST_OK(ctx, nncl_layer_param_count(g->layer, &count));
    for (size_t i = 0; i < count; i++) {
        const char *name;
        nncl_tensor value, grad;
        TEST_OK(ctx, nncl_layer_param(g->layer, i, &name, &value, &grad));
        char role[96];
        if (grad.buf) {
            snprintf(role, sizeof role, "grad.%s", name);
            check_result(g, role, &grad, NULL, GOLDEN_ATOL, GOLDEN_RTOL);
        } else {
            snprintf(role, sizeof role, "buffer.%s", name);
            check_result(g, role, &value, NULL, GOLDEN_ATOL, GOLDEN_RTOL);
        }
    }
}

/* add: two inputs, y = a + b, both input gradients equal to dy. */
static void run_add(golden *g)
{
    upload(g, &g->x2, "input2");
    const fx_tensor *x = need_tensor(g, "input");
    test_guarded_create(ctx, &g->y, x->ndim, x->shape, NULL);
    TEST_OK(ctx, nncl_add_forward(g->layer, &g->x.view, &g->x2.view, &g->y.view));
    check_result(g, "output", &g->y.view, &g->y, GOLDEN_ATOL, GOLDEN_RTOL);

    upload(g, &g->dy, "grad_output");
    test_guarded_create(ctx, &g->dx, x->ndim, x->shape, NULL);
    test_guarded_create(ctx, &g->dx2, x->ndim, x->shape, NULL);
    TEST_OK(ctx, nncl_add_backward(g->layer, &g->dy.view, &g->dx.view, &g->dx2.view));
    check_result(g, "grad_input", &g->dx.view, &g->dx, GOLDEN_ATOL, GOLDEN_RTOL);
    check_result(g, "grad_input2", &g->dx2.view, &g->dx2, GOLDEN_ATOL, GOLDEN_RTOL);
}

static void run_layer(golden *g)
{
    g->layer = create_layer(g);
    assert_keys_used(g);
    set_params(g);
    TEST_OK(ctx, nncl_layer_zero_grad(g->layer));
    upload(g, &g->x, "input");
    if (strcmp(g->kind, "add") == 0) {
        run_add(g);
        return;
    }

    const fx_tensor *x = need_tensor(g, "input"), *y = need_tensor(g, "output");
    int out_ndim, alias;
    int64_t out_shape[NNCL_MAX_DIMS];
    TEST_OK(ctx, nncl_layer_output_shape(g->layer, x->ndim, x->shape, &out_ndim, out_shape));
    assert_shape(g, "output (nncl_layer_output_shape)", out_ndim, out_shape, y);
    TEST_OK(ctx, nncl_layer_is_alias(g->layer, &alias));

    if (alias) {
        /* Descriptors only: y aliases x, dx aliases dy. */
        nncl_tensor yd, dxd;
        TEST_OK(ctx, nncl_layer_forward(g->layer, g->mode, &g->x.view, &yd));
        check_result(g, "output", &yd, NULL, GOLDEN_ATOL, GOLDEN_RTOL);
        upload(g, &g->dy, "grad_output");
        TEST_OK(ctx, nncl_layer_backward(g->layer, &g->x.view, &yd, &g->dy.view, &dxd));
        check_result(g, "grad_input", &dxd, NULL, GOLDEN_ATOL, GOLDEN_RTOL);
    } else {
        /* y and dx start as canaries: every element must be written. */
        test_guarded_create(ctx, &g->y, out_ndim, out_shape, NULL);
        TEST_OK(ctx, nncl_layer_forward(g->layer, g->mode, &g->x.view, &g->y.view));
        check_result(g, "output", &g->y.view, &g->y, GOLDEN_ATOL, GOLDEN_RTOL);
        upload(g, &g->dy, "grad_output");
        test_guarded_create(ctx, &g->dx, x->ndim, x->shape, NULL);
        TEST_OK(ctx, nncl_layer_backward(g->layer, &g->x.view, &g->y.view, &g->dy.view, &g->dx.view));
        check_result(g, "grad_input", &g->dx.view, &g->dx, GOLDEN_ATOL, GOLDEN_RTOL);
    }
    check_params_after(g);
}

/* ---- losses ----------------------------------------------------------------------------- */

static void run_loss(golden *g)
{
    nncl_loss_kind kind = NNCL_LOSS_MSE;
    if (strcmp(g->kind, "mse") == 0)
        kind = NNCL_LOSS_MSE;
    else if (strcmp(g->kind, "cross_entropy") == 0)
        kind = NNCL_LOSS_CROSS_ENTROPY;
    else if (strcmp(g->kind, "bce_with_logits") == 0)
        kind = NNCL_LOSS_BCE_WITH_LOGITS;
    else if (strcmp(g->kind, "nll") == 0)
        kind = NNCL_LOSS_NLL;
    else
        fail_msg("%s: unknown loss kind '%s'", g->name, g->kind);
    float smoothing = find_key(g, "smoothing") ? key_float(g, "smoothing") : 0.0f;
    TEST_OK(ctx, nncl_loss_create(ctx, kind, smoothing, &g->loss));
    assert_keys_used(g);

    const fx_tensor *x = need_tensor(g, "input"), *target = need_tensor(g, "target");
    upload(g, &g->x, "input");
    if (kind == NNCL_LOSS_CROSS_ENTROPY || kind == NNCL_LOSS_NLL) {
        /* Class indices, stored as floats in the fixture. */
        if (x->ndim != 2 || target->ndim != 1 || target->shape[0] != x->shape[0])
            fail_msg("%s: class losses take input (N, C) and target (N)", g->name);
        for (size_t i = 0; i < target->n; i++) {
            float v = target->v[i];
            if (!(v >= 0.0f && v < 16777216.0f) || v != floorf(v))
                fail_msg("%s: target[%zu] = %g is not a class index", g->name, i, (double)v);
        }
        test_guarded_create(ctx, &g->target, target->ndim, target->shape, NULL);
        int64_t *labels = malloc(target->n * sizeof *labels);
        assert_non_null(labels);
        for (size_t i = 0; i < target->n; i++) labels[i] = (int64_t)target->v[i];
        nncl_status st = nncl_tensor_write_labels(ctx, &g->target.view, labels, target->n, x->shape[1]);
        free(labels);
        TEST_OK(ctx, st);
    } else {
        upload(g, &g->target, "target");
    }

    /* The stability case: cross_entropy with huge logits gets a tight relative tolerance on the loss. */
    double loss_rtol = GOLDEN_RTOL;
    if (kind == NNCL_LOSS_CROSS_ENTROPY) {
        double biggest = 0.0;
        for (size_t i = 0; i < x->n; i++) biggest = fmax(biggest, fabs((double)x->v[i]));
        if (biggest >= LARGE_LOGIT) loss_rtol = GOLDEN_RTOL_LARGE_LOGIT_LOSS;
    }

    const int64_t one = 1;
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &one, &g->loss_out));
    TEST_OK(ctx, nncl_loss_forward(g->loss, &g->x.view, &g->target.view, &g->loss_out));
    check_result(g, "loss", &g->loss_out, NULL, GOLDEN_ATOL, loss_rtol);

    test_guarded_create(ctx, &g->dx, x->ndim, x->shape, NULL);
    TEST_OK(ctx, nncl_loss_backward(g->loss, &g->x.view, &g->target.view, &g->dx.view));
    check_result(g, "grad_input", &g->dx.view, &g->dx, GOLDEN_ATOL, GOLDEN_RTOL);
}

/* ---- one cmocka test per fixture ------------------------------------------------------- */

static void run_case(void **state)
{
    golden *g = *state;
    g->text = read_file(g->path);
    if (!g->text) fail_msg("%s: cannot read %s", g->name, g->path);
    parse_fixture(g, g->text);
    free(g->text);
    g->text = NULL;

    if (g->is_loss)
        run_loss(g);
    else
        run_layer(g);
    assert_tensors_used(g);
    print_message("golden %s: ok (%d tensors compared)\n", g->name, g->checked);
}

/* Releases everything a case created, whether it passed or failed. */
static int case_teardown(void **state)
{
    golden *g = *state;
    test_guarded *guarded[] = {&g->x, &g->x2, &g->y, &g->dy, &g->dx, &g->dx2, &g->target};
    for (size_t i = 0; i < sizeof guarded / sizeof guarded[0]; i++) test_guarded_destroy(ctx, guarded[i]);
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &g->loss_out));
    TEST_OK(ctx, nncl_layer_destroy(g->layer));
    TEST_OK(ctx, nncl_loss_destroy(g->loss));
    g->layer = NULL;
    g->loss = NULL;
    for (int i = 0; i < g->ntensors; i++) free(g->t[i].v);
    g->ntensors = 0;
    free(g->text);
    g->text = NULL;
    free(g->scratch);
    g->scratch = NULL;
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Lists the *.txt files of `dir`, sorted by name. Returns -1 when the directory cannot be read. */
static int list_fixtures(const char *dir, char ***names)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0, cap = 0;
    char **list = NULL;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || strcmp(e->d_name + len - 4, ".txt") != 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **bigger = realloc(list, (size_t)cap * sizeof *list);
            if (!bigger) abort();
            list = bigger;
        }
        list[n] = strdup(e->d_name);
        if (!list[n]) abort();
        n++;
    }
    closedir(d);
    if (n > 0) qsort(list, (size_t)n, sizeof *list, compare_names);
    *names = list;
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[2], "cpu") != 0 && strcmp(argv[2], "opencl") != 0)) {
        fprintf(stderr, "usage: %s <data_dir> cpu|opencl\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1], *backend = argv[2];
    char **names = NULL;
    int n = list_fixtures(dir, &names);
    if (n < 0) {
        fprintf(stderr, "cannot read the fixture directory %s\n", dir);
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, "no fixtures (*.txt) in %s: run tools/make_goldens.py\n", dir);
        free(names);
        return 1;
    }

    golden *cases = calloc((size_t)n, sizeof *cases);
    struct CMUnitTest *tests = calloc((size_t)n, sizeof *tests);
    if (!cases || !tests) abort();
    for (int i = 0; i < n; i++) {
        golden *g = &cases[i];
        snprintf(g->path, sizeof g->path, "%s/%s", dir, names[i]);
        snprintf(g->name, sizeof g->name, "%.*s", (int)(strlen(names[i]) - 4), names[i]);
        tests[i].name = g->name;
        tests[i].test_func = run_case;
        tests[i].teardown_func = case_teardown;
        tests[i].initial_state = g;
    }

    ctx = test_context(backend);
    char group[64];
    snprintf(group, sizeof group, "goldens_%s", backend);
    int failed = _cmocka_run_group_tests(group, tests, (size_t)n, NULL, NULL);
    nncl_context_destroy(ctx);

    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    free(cases);
    free(tests);
    return failed;
}
