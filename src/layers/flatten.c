/*
 * flatten.c - torch.nn.Flatten and torch.nn.Unflatten.
 *
 * Both are alias layers: forward rewrites x's descriptor into y, and backward
 * rewrites dy's descriptor into dx with x's shape (the inverse rewrite). They
 * never call the backend, so they never launch a kernel or move a byte.
 */
#include <stdio.h>
#include <string.h>

#include "layers/layer.h"

typedef struct reshape_layer {
    nncl_layer base;
    int dim;                        /* flatten: start_dim; unflatten: dim */
    int n;                          /* unflatten: number of sizes */
    int64_t sizes[NNCL_MAX_DIMS];   /* unflatten: the sizes, one may be -1 */
} reshape_layer;

static nncl_status flatten_shape(const nncl_layer *l, int ndim, const int64_t *in, int *ond, int64_t *out)
{
    const reshape_layer *s = (const reshape_layer *)l;
    int d = s->dim < 0 ? s->dim + ndim : s->dim;
    if (ndim == 0 && (s->dim == 0 || s->dim == -1)) {
        *ond = 1;
        out[0] = 1;
        return NNCL_OK;
    }
    if (d < 0 || d >= ndim) return nncl__layer_shape_error(l, ndim, in, "has no dimension start_dim");
    *ond = d + 1;
    for (int i = 0; i < d; i++) out[i] = in[i];
    out[d] = nncl__shape_elements(ndim - d, in + d);
    if (out[d] < 0) return nncl__layer_shape_error(l, ndim, in, "has a size < 1, or too many elements to flatten");
    return NNCL_OK;
}

static nncl_status unflatten_shape(const nncl_layer *l, int ndim, const int64_t *in, int *ond, int64_t *out)
{
    const reshape_layer *s = (const reshape_layer *)l;
    int d = s->dim < 0 ? s->dim + ndim : s->dim;
    if (d < 0 || d >= ndim || ndim - 1 + s->n > NNCL_MAX_DIMS)
        return nncl__layer_shape_error(l, ndim, in, "has no dimension dim, or would exceed 8 dimensions");
    int64_t known = 1;
    int hole = -1;
    for (int i = 0; i < s->n; i++) {
        if (s->sizes[i] == -1)
            hole = i;
        else if (s->sizes[i] > in[d] / known) /* more than the dimension holds (and no overflow) */
            return nncl__layer_shape_error(l, ndim, in, "cannot be split as the sizes ask");
        else
            known *= s->sizes[i];
    }
    if ((hole < 0 && known != in[d]) || (hole >= 0 && in[d] % known != 0))
        return nncl__layer_shape_error(l, ndim, in, "cannot be split as the sizes ask");
    int r = 0;
    for (int i = 0; i < d; i++) out[r++] = in[i];
    for (int i = 0; i < s->n; i++) out[r++] = i == hole ? in[d] / known : s->sizes[i];
    for (int i = d + 1; i < ndim; i++) out[r++] = in[i];
    *ond = r;
    return NNCL_OK;
}

static nncl_status alias_forward(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y)
{
    (void)mode;
    int ond;
    int64_t os[NNCL_MAX_DIMS];
    NNCL_TRY(l->ops->output_shape(l, x->ndim, x->shape, &ond, os));
    return nncl_tensor_reshape(l->ctx, x, ond, os, y);
}

static nncl_status alias_backward(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                                  nncl_tensor *dx)
{
    (void)y;
    return nncl_tensor_reshape(l->ctx, dy, x->ndim, x->shape, dx);
}

static const nncl_layer_ops flatten_ops = {
    .kind = "flatten",
    .is_alias = 1,
    .output_shape = flatten_shape,
    .forward = alias_forward,
    .backward = alias_backward,
};

static const nncl_layer_ops unflatten_ops = {
    .kind = "unflatten",
    .is_alias = 1,
    .output_shape = unflatten_shape,
    .forward = alias_forward,
    .backward = alias_backward,
};

nncl_status nncl_flatten_create(nncl_context *ctx, int start_dim, nncl_layer **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, out);
    *out = NULL;
    if (start_dim < -NNCL_MAX_DIMS || start_dim >= NNCL_MAX_DIMS)
        return NNCL_LAYER_CONFIG_ERROR(ctx, "flatten", "start_dim %d is outside -8..7", start_dim);
    nncl_layer *l;
    NNCL_TRY(nncl__layer_alloc(ctx, &flatten_ops, sizeof(reshape_layer), &l));
    ((reshape_layer *)l)->dim = start_dim;
    snprintf(l->desc, sizeof l->desc, "flatten(start_dim=%d)", start_dim);
    *out = l;
    return NNCL_OK;
}

nncl_status nncl_unflatten_create(nncl_context *ctx, int dim, int n, const int64_t *sizes, nncl_layer **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, sizes);
    NNCL_CHECK_ARG(ctx, out);
    *out = NULL;
    if (dim < -NNCL_MAX_DIMS || dim >= NNCL_MAX_DIMS || n < 1 || n > NNCL_MAX_DIMS)
        return NNCL_LAYER_CONFIG_ERROR(ctx, "unflatten", "dim %d or the number of sizes %d is out of range", dim, n);
    int holes = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] == -1) holes++;
        if ((sizes[i] < 1 && sizes[i] != -1) || holes > 1)
            return NNCL_LAYER_CONFIG_ERROR(ctx, "unflatten", "size %lld at %d: sizes must be >= 1, with at most one -1",
                                           (long long)sizes[i], i);
    }
    nncl_layer *l;
    NNCL_TRY(nncl__layer_alloc(ctx, &unflatten_ops, sizeof(reshape_layer), &l));
    reshape_layer *s = (reshape_layer *)l;
    s->dim = dim;
    s->n = n;
    memcpy(s->sizes, sizes, sizeof(int64_t) * (size_t)n);
    char sz[160];
    snprintf(l->desc, sizeof l->desc, "unflatten(dim=%d, sizes=%s)", dim, nncl_shape_format(n, sizes, sz, sizeof sz));
    *out = l;
    return NNCL_OK;
}
