/*
 * layer.c - the public layer API: argument checking and dispatch to each
 * layer's op table, and the helpers shared by the layer files.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "layers/layer.h"

/* ---- helpers for layer files ------------------------------------------------------- */

nncl_status nncl__layer_alloc(nncl_context *ctx, const nncl_layer_ops *ops, size_t size, nncl_layer **out)
{
    nncl_layer *l = calloc(1, size);
    if (l == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "%s: out of host memory", ops->kind);
    l->ops = ops;
    l->ctx = ctx;
    snprintf(l->desc, sizeof l->desc, "%s", ops->kind);
    *out = l;
    return NNCL_OK;
}

nncl_status nncl__layer_add_param(nncl_layer *l, const char *name, int ndim, const int64_t *shape, int learnable,
                                  float value)
{
    if (l->n_total == NNCL_LAYER_MAX_PARAMS || (learnable && l->n_total != l->n_params))
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: bad parameter layout", l->desc);
    nncl__param *p = &l->params[l->n_total];
    p->name = name;
    NNCL_TRY(nncl__tensor_create_owned(l->ctx, ndim, shape, &p->value));
    l->n_total++; /* from here on, nncl_layer_destroy releases it */
    NNCL_TRY(nncl_tensor_fill(l->ctx, &p->value, value));
    if (learnable) {
        NNCL_TRY(nncl__tensor_create_owned(l->ctx, ndim, shape, &p->grad));
        NNCL_TRY(nncl_tensor_fill(l->ctx, &p->grad, 0.0f));
        l->n_params++;
    }
    return NNCL_OK;
}

nncl_status nncl__layer_init_uniform(nncl_layer *l, size_t i, float bound, uint64_t seed, uint32_t layer)
{
    nncl_tensor *t = &l->params[i].value;
    size_t n = (size_t)nncl_tensor_numel(t);
    float *v = malloc(n * sizeof *v);
    if (v == NULL) return NNCL_ERROR(l->ctx, NNCL_ERR_OUT_OF_MEMORY, "%s: out of host memory", l->desc);
    nncl_rng_key key = {.seed = seed, .step = i, .layer = layer};
    for (size_t j = 0; j < n; j++) v[j] = bound * (2.0f * nncl__rng_uniform(key, (uint32_t)j) - 1.0f);
    nncl_status st = nncl_tensor_write(l->ctx, t, v, n);
    free(v);
    return st;
}

nncl_status nncl__layer_rebind_param(nncl_layer *l, size_t i, const nncl_tensor *value, const nncl_tensor *grad)
{
    nncl__param *p = &l->params[i];
    if (p->borrowed) return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: %s already belongs to a network", l->desc, p->name);
    nncl_tensor v = *value;
    v.ndim = p->value.ndim;
    memcpy(v.shape, p->value.shape, sizeof v.shape);
    NNCL_TRY(nncl_tensor_copy(l->ctx, &v, &p->value));
    nncl_tensor g = {0};
    if (i < l->n_params) {
        g = *grad;
        g.ndim = v.ndim;
        memcpy(g.shape, v.shape, sizeof g.shape);
        NNCL_TRY(nncl_tensor_fill(l->ctx, &g, 0.0f));
    }
    nncl__tensor_release(l->ctx, &p->value);
    nncl__tensor_release(l->ctx, &p->grad);
    p->value = v;
    p->grad = g;
    p->borrowed = 1;
    return NNCL_OK;
}

nncl_status nncl__layer_same_shape(const nncl_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out)
{
    (void)l;
    *out_ndim = ndim;
    if (ndim > 0) memcpy(out, in, sizeof(int64_t) * (size_t)ndim);
    return NNCL_OK;
}

nncl_status nncl__layer_shape_error(const nncl_layer *l, int ndim, const int64_t *shape, const char *reason)
{
    char s[160];
    return NNCL_ERROR(l->ctx, NNCL_ERR_SHAPE, "%s: input shape %s %s", l->desc,
                      nncl_shape_format(ndim, shape, s, sizeof s), reason);
}

/* ---- public API -------------------------------------------------------------------------- */

#define CHECK_LAYER(l)                                                                             \
    do {                                                                                           \
        if ((l) == NULL) return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: layer is NULL", __func__); \
    } while (0)

nncl_status nncl_layer_destroy(nncl_layer *l)
{
    if (l == NULL) return NNCL_OK;
    if (l->owned)
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: %s belongs to a network, which destroys it", __func__,
                          l->desc);
    nncl__layer_free(l);
    return NNCL_OK;
}

void nncl__layer_free(nncl_layer *l)
{
    if (l == NULL) return;
    if (l->ops->destroy) l->ops->destroy(l);
    for (size_t i = 0; i < l->n_total; i++) {
        if (l->params[i].borrowed) continue;
        nncl__tensor_release(l->ctx, &l->params[i].value);
        nncl__tensor_release(l->ctx, &l->params[i].grad);
    }
    free(l);
}

nncl_status nncl_layer_describe(const nncl_layer *l, char *buf, size_t size)
{
    CHECK_LAYER(l);
    NNCL_CHECK_ARG(l->ctx, buf);
    if (size == 0) return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: size is 0", __func__);
    snprintf(buf, size, "%s", l->desc);
    return NNCL_OK;
}

nncl_status nncl_layer_output_shape(const nncl_layer *l, int ndim, const int64_t *in_shape, int *out_ndim,
                                    int64_t *out_shape)
{
    CHECK_LAYER(l);
    NNCL_CHECK_ARG(l->ctx, out_ndim);
    NNCL_CHECK_ARG(l->ctx, out_shape);
    if (ndim < 0 || ndim > NNCL_MAX_DIMS || (ndim > 0 && in_shape == NULL))
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: bad input rank %d", l->desc, ndim);
    for (int i = 0; i < ndim; i++)
        if (in_shape[i] < 1) return nncl__layer_shape_error(l, ndim, in_shape, "has a size below 1");
    /* Bounds every size, so that no layer's shape arithmetic can overflow. */
    if (nncl__shape_elements(ndim, in_shape) < 0)
        return nncl__layer_shape_error(l, ndim, in_shape, "has more than 2^40 elements");
    return l->ops->output_shape(l, ndim, in_shape, out_ndim, out_shape);
}

nncl_status nncl_layer_is_alias(const nncl_layer *l, int *alias)
{
    CHECK_LAYER(l);
    NNCL_CHECK_ARG(l->ctx, alias);
    *alias = l->ops->is_alias;
    return NNCL_OK;
}

nncl_status nncl_layer_param_count(const nncl_layer *l, size_t *count)
{
    CHECK_LAYER(l);
    NNCL_CHECK_ARG(l->ctx, count);
    *count = l->n_total;
    return NNCL_OK;
}

nncl_status nncl_layer_param(const nncl_layer *l, size_t i, const char **name, nncl_tensor *value, nncl_tensor *grad)
{
    CHECK_LAYER(l);
    if (i >= l->n_total)
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: parameter %zu of %zu", l->desc, i, l->n_total);
    if (name) *name = l->params[i].name;
    if (value) *value = l->params[i].value;
    if (grad) *grad = l->params[i].grad;
    return NNCL_OK;
}

nncl_status nncl_layer_reset_parameters(nncl_layer *l, uint64_t seed, uint32_t layer_index)
{
    CHECK_LAYER(l);
    if (l->ops->reset == NULL) return NNCL_OK; /* nothing to initialise */
    return l->ops->reset(l, seed, layer_index);
}

nncl_status nncl_layer_zero_grad(nncl_layer *l)
{
    CHECK_LAYER(l);
    for (size_t i = 0; i < l->n_params; i++) NNCL_TRY(nncl_tensor_fill(l->ctx, &l->params[i].grad, 0.0f));
    return NNCL_OK;
}

/* Checks that t exists and has exactly the given shape. */
static nncl_status check_shape(const nncl_layer *l, const nncl_tensor *t, const char *what, int ndim,
                               const int64_t *shape)
{
    NNCL_TRY(nncl__tensor_check(l->ctx, t, what, l->desc));
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char a[160], b[160];
        return NNCL_ERROR(l->ctx, NNCL_ERR_SHAPE, "%s: %s has shape %s, expected %s", l->desc, what,
                          nncl_shape_format(t->ndim, t->shape, a, sizeof a), nncl_shape_format(ndim, shape, b, sizeof b));
    }
    return NNCL_OK;
}

/* The checks of a forward call, shared by nncl_layer_forward and nncl__layer_forward_relu. */
static nncl_status forward_checks(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, const nncl_tensor *y)
{
    if (l->ops->forward == NULL)
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s takes two inputs: use nncl_add_forward", l->desc);
    if (mode != NNCL_EVAL && mode != NNCL_TRAIN)
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: bad mode %d", l->desc, (int)mode);
    NNCL_TRY(nncl__tensor_check(l->ctx, x, "x", l->desc));
    NNCL_CHECK_ARG(l->ctx, y);
    int ond;
    int64_t os[NNCL_MAX_DIMS];
    NNCL_TRY(nncl_layer_output_shape(l, x->ndim, x->shape, &ond, os));
    return l->ops->is_alias ? NNCL_OK : check_shape(l, y, "y", ond, os);
}

/* st, after the layer forgets the last forward's state when st is a failure. */
static nncl_status forward_done(nncl_layer *l, nncl_status st)
{
    if (st != NNCL_OK && l->ops->forget != NULL) l->ops->forget(l);
    return st;
}

nncl_status nncl_layer_forward(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y)
{
    CHECK_LAYER(l);
    nncl_status st = forward_checks(l, mode, x, y);
    return forward_done(l, st == NNCL_OK ? l->ops->forward(l, mode, x, y) : st);
}

nncl_status nncl__layer_forward_relu(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y)
{
    CHECK_LAYER(l);
    if (l->ops->forward_relu == NULL)
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s cannot apply a relu as it stores", l->desc);
    nncl_status st = forward_checks(l, mode, x, y);
    return forward_done(l, st == NNCL_OK ? l->ops->forward_relu(l, mode, x, y) : st);
}

/* The checks of a backward call, shared by nncl_layer_backward and nncl__layer_backward_relu. */
static nncl_status backward_checks(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                                   const nncl_tensor *dx)
{
    if (l->ops->backward == NULL)
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s takes two inputs: use nncl_add_backward", l->desc);
    NNCL_TRY(nncl__tensor_check(l->ctx, x, "x", l->desc));
    int ond;
    int64_t os[NNCL_MAX_DIMS];
    NNCL_TRY(nncl_layer_output_shape(l, x->ndim, x->shape, &ond, os));
    NNCL_TRY(check_shape(l, y, "y", ond, os));
    NNCL_TRY(check_shape(l, dy, "dy", ond, os));
    if (dx != NULL && !l->ops->is_alias) NNCL_TRY(check_shape(l, dx, "dx", x->ndim, x->shape));
    if (dx == NULL && l->ops->is_alias)
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: dx is NULL", l->desc);
    return NNCL_OK;
}

nncl_status nncl_layer_backward(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                                nncl_tensor *dx)
{
    CHECK_LAYER(l);
    NNCL_TRY(backward_checks(l, x, y, dy, dx));
    return l->ops->backward(l, x, y, dy, dx);
}

nncl_status nncl__layer_backward_relu(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y,
                                      const nncl_tensor *dy, nncl_tensor *dx)
{
    CHECK_LAYER(l);
    if (l->ops->backward_relu == NULL)
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s cannot fold a relu into its backward", l->desc);
    NNCL_TRY(backward_checks(l, x, y, dy, dx));
    return l->ops->backward_relu(l, x, y, dy, dx);
}
