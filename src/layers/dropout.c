/*
 * dropout.c - torch.nn.Dropout(p) with a counter-based mask.
 *
 * In training, element i is kept when uniform(seed, step, layer, i) >= p and
 * then scaled by 1 / (1 - p); the step advances with every training forward.
 * Backward draws the same mask again from the key of the last forward, so no
 * mask is stored. In evaluation, dropout is a copy.
 */
#include <stdio.h>

#include "layers/layer.h"

typedef struct dropout {
    nncl_layer base;
    float p;
    nncl_rng_key key;    /* key.step: the step of the next training forward */
    nncl_rng_key last;   /* the key of the last forward, for backward */
    int last_train;      /* whether the last forward was in training mode */
} dropout;

static nncl_status dropout_forward(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y)
{
    dropout *s = (dropout *)l;
    if (nncl_tensor_numel(x) > UINT32_MAX)
        return nncl__layer_shape_error(l, x->ndim, x->shape, "has more than 2^32 elements");
    s->last_train = mode == NNCL_TRAIN;
    if (!s->last_train) return nncl_tensor_copy(l->ctx, y, x);
    s->last = s->key;
    NNCL_TRY(l->ctx->ops->dropout(l->ctx, y, x, s->p, s->last));
    s->key.step++;
    return NNCL_OK;
}

static nncl_status dropout_backward(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                                    nncl_tensor *dx)
{
    (void)x, (void)y;
    dropout *s = (dropout *)l;
    if (dx == NULL) return NNCL_OK;
    if (!s->last_train) return nncl_tensor_copy(l->ctx, dx, dy);
    return l->ctx->ops->dropout(l->ctx, dx, dy, s->p, s->last);
}

/* The mask generator restarts at step 0 under the network's seed and this layer's index. */
static nncl_status dropout_reset(nncl_layer *l, uint64_t seed, uint32_t layer)
{
    dropout *s = (dropout *)l;
    s->key = (nncl_rng_key){.seed = seed, .step = 0, .layer = layer};
    return NNCL_OK;
}

static const nncl_layer_ops dropout_ops = {
    .reset = dropout_reset,
    .kind = "dropout",
    .output_shape = nncl__layer_same_shape,
    .forward = dropout_forward,
    .backward = dropout_backward,
};

nncl_status nncl_dropout_create(nncl_context *ctx, float p, uint64_t seed, uint32_t layer_index, nncl_layer **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, out);
    *out = NULL;
    if (!(p >= 0.0f && p < 1.0f))
        return NNCL_LAYER_CONFIG_ERROR(ctx, "dropout", "p = %g is outside [0, 1)", (double)p);
    nncl_layer *l;
    NNCL_TRY(nncl__layer_alloc(ctx, &dropout_ops, sizeof(dropout), &l));
    dropout *s = (dropout *)l;
    s->p = p;
    s->key = (nncl_rng_key){.seed = seed, .step = 0, .layer = layer_index};
    snprintf(l->desc, sizeof l->desc, "dropout(p=%g)", (double)p);
    *out = l;
    return NNCL_OK;
}

int nncl__layer_is_dropout(const nncl_layer *l)
{
    return l->ops == &dropout_ops;
}

nncl_status nncl_layer_get_step(const nncl_layer *l, uint64_t *step)
{
    if (l == NULL) return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: layer is NULL", __func__);
    NNCL_CHECK_ARG(l->ctx, step);
    if (l->ops != &dropout_ops)
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: %s has no generator step", __func__, l->desc);
    *step = ((const dropout *)l)->key.step;
    return NNCL_OK;
}

nncl_status nncl_layer_set_step(nncl_layer *l, uint64_t step)
{
    if (l == NULL) return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: layer is NULL", __func__);
    if (l->ops != &dropout_ops)
        return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: %s has no generator step", __func__, l->desc);
    ((dropout *)l)->key.step = step;
    return NNCL_OK;
}
