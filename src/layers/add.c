/*
 * add.c - y = a + b, for residual connections. The gradient of each input is
 * dy itself. Add takes two inputs, so it has its own forward and backward
 * (nncl_add_forward, nncl_add_backward) instead of the one-input ones.
 */
#include <stdio.h>

#include "layers/layer.h"

static const nncl_layer_ops add_ops = {
    .kind = "add",
    .output_shape = nncl__layer_same_shape,
};

nncl_status nncl_add_create(nncl_context *ctx, nncl_layer **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, out);
    *out = NULL;
    nncl_layer *l;
    NNCL_TRY(nncl__layer_alloc(ctx, &add_ops, sizeof(nncl_layer), &l));
    snprintf(l->desc, sizeof l->desc, "add()");
    *out = l;
    return NNCL_OK;
}

/* Checks that b has a's shape. */
static nncl_status check_same(nncl_layer *l, const nncl_tensor *a, const char *an, const nncl_tensor *b,
                              const char *bn)
{
    NNCL_TRY(nncl__tensor_check(l->ctx, b, bn, l->desc));
    int same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++) same = a->shape[i] == b->shape[i];
    if (!same) {
        char sa[160], sb[160];
        return NNCL_ERROR(l->ctx, NNCL_ERR_SHAPE, "%s: %s %s and %s %s differ", l->desc, an,
                          nncl_shape_format(a->ndim, a->shape, sa, sizeof sa), bn,
                          nncl_shape_format(b->ndim, b->shape, sb, sizeof sb));
    }
    return NNCL_OK;
}

nncl_status nncl_add_forward(nncl_layer *l, const nncl_tensor *a, const nncl_tensor *b, const nncl_tensor *y)
{
    if (l == NULL) return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: layer is NULL", __func__);
    if (l->ops != &add_ops) return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: %s is not add", __func__, l->desc);
    NNCL_TRY(nncl__tensor_check(l->ctx, a, "a", l->desc));
    NNCL_TRY(check_same(l, a, "a", b, "b"));
    NNCL_TRY(check_same(l, a, "a", y, "y"));
    return l->ctx->ops->add(l->ctx, y, a, b);
}

nncl_status nncl_add_backward(nncl_layer *l, const nncl_tensor *dy, const nncl_tensor *da, const nncl_tensor *db)
{
    if (l == NULL) return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: layer is NULL", __func__);
    if (l->ops != &add_ops) return NNCL_ERROR(l->ctx, NNCL_ERR_INVALID_ARG, "%s: %s is not add", __func__, l->desc);
    NNCL_TRY(nncl__tensor_check(l->ctx, dy, "dy", l->desc));
    if (da) {
        NNCL_TRY(check_same(l, dy, "dy", da, "da"));
        NNCL_TRY(nncl_tensor_copy(l->ctx, da, dy));
    }
    if (db) {
        NNCL_TRY(check_same(l, dy, "dy", db, "db"));
        NNCL_TRY(nncl_tensor_copy(l->ctx, db, dy));
    }
    return NNCL_OK;
}
