/*
 * activation.c - element-wise activations: relu, leaky_relu, sigmoid, tanh,
 * gelu (exact erf form), silu, elu. Any input shape; y has x's shape.
 */
#include <math.h>
#include <stdio.h>

#include "layers/layer.h"

typedef struct activation {
    nncl_layer base;
    nncl_activation act;
    float param;
} activation;

static const char *const NAMES[] = {"relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "elu"};

static nncl_status activation_forward(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y)
{
    (void)mode;
    const activation *s = (const activation *)l;
    return l->ctx->ops->activation_forward(l->ctx, y, x, s->act, s->param);
}

static nncl_status activation_backward(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y,
                                       const nncl_tensor *dy, nncl_tensor *dx)
{
    const activation *s = (const activation *)l;
    if (dx == NULL) return NNCL_OK;
    return l->ctx->ops->activation_backward(l->ctx, dx, x, y, dy, s->act, s->param);
}

static const nncl_layer_ops activation_ops = {
    .kind = "activation",
    .output_shape = nncl__layer_same_shape,
    .forward = activation_forward,
    .backward = activation_backward,
};

const char *nncl__activation_name(nncl_activation act)
{
    return (int)act >= 0 && (int)act < (int)(sizeof NAMES / sizeof NAMES[0]) ? NAMES[act] : NULL;
}

int nncl__layer_is_relu(const nncl_layer *l)
{
    return l->ops == &activation_ops && ((const activation *)l)->act == NNCL_ACT_RELU;
}

nncl_status nncl_activation_create(nncl_context *ctx, nncl_activation act, float param, nncl_layer **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, out);
    *out = NULL;
    if (nncl__activation_name(act) == NULL)
        return NNCL_LAYER_CONFIG_ERROR(ctx, "activation", "unknown activation %d", (int)act);
    if (!isfinite(param))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: parameter %g is not finite", NAMES[act], (double)param);
    nncl_layer *l;
    NNCL_TRY(nncl__layer_alloc(ctx, &activation_ops, sizeof(activation), &l));
    activation *s = (activation *)l;
    s->act = act;
    s->param = param;
    if (act == NNCL_ACT_LEAKY_RELU)
        snprintf(l->desc, sizeof l->desc, "leaky_relu(slope=%g)", (double)param);
    else if (act == NNCL_ACT_ELU)
        snprintf(l->desc, sizeof l->desc, "elu(alpha=%g)", (double)param);
    else
        snprintf(l->desc, sizeof l->desc, "%s()", NAMES[act]);
    *out = l;
    return NNCL_OK;
}
