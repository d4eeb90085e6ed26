/*
 * loss.c - loss objects: argument checking, the per-row workspace, and the
 * host-side check of class labels.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend/backend.h"

struct nncl_loss {
    nncl_context *ctx;
    nncl_loss_kind kind;
    float smoothing;
    nncl_tensor work; /* per-row losses, grown on demand */
    int64_t work_cap;
    int owned; /* set as a network's loss, which destroys it (nncl__loss_free) */
};

static const char *const NAMES[] = {"mse", "cross_entropy", "bce_with_logits", "nll"};

nncl_status nncl_loss_create(nncl_context *ctx, nncl_loss_kind kind, float label_smoothing, nncl_loss **out)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, out);
    *out = NULL;
    if ((int)kind < 0 || (int)kind > NNCL_LOSS_NLL)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "loss: unknown kind %d", (int)kind);
    if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f) ||
        (kind != NNCL_LOSS_CROSS_ENTROPY && label_smoothing != 0.0f))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG,
                          "%s: label_smoothing %g must be in [0, 1], and 0 for losses other than cross_entropy",
                          NAMES[kind], (double)label_smoothing);
    nncl_loss *l = calloc(1, sizeof *l);
    if (l == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "%s: out of host memory", NAMES[kind]);
    l->ctx = ctx;
    l->kind = kind;
    l->smoothing = label_smoothing;
    *out = l;
    return NNCL_OK;
}

nncl_loss_kind nncl__loss_kind(const nncl_loss *loss)
{
    return loss->kind;
}

float nncl__loss_smoothing(const nncl_loss *loss)
{
    return loss->smoothing;
}

nncl_context *nncl__loss_context(const nncl_loss *loss)
{
    return loss->ctx;
}

const char *nncl__loss_name(nncl_loss_kind kind)
{
    return (int)kind >= 0 && (int)kind < (int)(sizeof NAMES / sizeof NAMES[0]) ? NAMES[kind] : NULL;
}

nncl_status nncl_loss_destroy(nncl_loss *loss)
{
    if (loss == NULL) return NNCL_OK;
    if (loss->owned)
        return NNCL_ERROR(loss->ctx, NNCL_ERR_INVALID_ARG, "%s: the loss belongs to a network, which destroys it",
                          __func__);
    nncl__loss_free(loss);
    return NNCL_OK;
}

void nncl__loss_free(nncl_loss *loss)
{
    if (loss == NULL) return;
    nncl__tensor_release(loss->ctx, &loss->work);
    free(loss);
}

nncl_status nncl__loss_adopt(nncl_loss *loss)
{
    if (loss->owned)
        return NNCL_ERROR(loss->ctx, NNCL_ERR_INVALID_ARG, "network_set_loss: the loss already belongs to a network");
    loss->owned = 1;
    return NNCL_OK;
}

/* Checks input and target and returns the (n, c) view of the input. */
static nncl_status check_args(nncl_loss *l, const nncl_tensor *input, const nncl_tensor *target, int64_t *n,
                              int64_t *c)
{
    nncl_context *ctx = l->ctx;
    const char *name = NAMES[l->kind];
    NNCL_TRY(nncl__tensor_check(ctx, input, "input", name));
    NNCL_TRY(nncl__tensor_check(ctx, target, "target", name));
    char si[160], st[160];
    nncl_shape_format(input->ndim, input->shape, si, sizeof si);
    nncl_shape_format(target->ndim, target->shape, st, sizeof st);
    if (l->kind == NNCL_LOSS_CROSS_ENTROPY || l->kind == NNCL_LOSS_NLL) {
        if (input->ndim != 2 || nncl_tensor_numel(target) != input->shape[0])
            return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: input %s must be (N, C) and target %s hold N class indices",
                              name, si, st);
        *n = input->shape[0];
        *c = input->shape[1];
        return NNCL_OK;
    }
    if (input->ndim < 1 || nncl_tensor_numel(target) != nncl_tensor_numel(input))
        return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: input %s and target %s must have the same number of elements",
                          name, si, st);
    *n = input->shape[0];
    *c = nncl_tensor_numel(input) / *n;
    return NNCL_OK;
}

nncl_status nncl_loss_forward(nncl_loss *loss, const nncl_tensor *input, const nncl_tensor *target,
                              const nncl_tensor *loss_out)
{
    if (loss == NULL) return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: loss is NULL", __func__);
    nncl_context *ctx = loss->ctx;
    int64_t n = 0, c = 0;
    NNCL_TRY(check_args(loss, input, target, &n, &c));
    NNCL_TRY(nncl__tensor_check(ctx, loss_out, "loss_out", NAMES[loss->kind]));
    if (nncl_tensor_numel(loss_out) != 1)
        return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: loss_out must hold one element", NAMES[loss->kind]);
    NNCL_TRY(nncl__workspace(ctx, &loss->work, &loss->work_cap, n));
    return ctx->ops->loss_forward(ctx, loss->kind, loss_out, &loss->work, input, target, n, c, loss->smoothing);
}

nncl_status nncl_loss_backward(nncl_loss *loss, const nncl_tensor *input, const nncl_tensor *target,
                               const nncl_tensor *dinput)
{
    if (loss == NULL) return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: loss is NULL", __func__);
    nncl_context *ctx = loss->ctx;
    int64_t n = 0, c = 0;
    NNCL_TRY(check_args(loss, input, target, &n, &c));
    NNCL_TRY(nncl__tensor_check(ctx, dinput, "dinput", NAMES[loss->kind]));
    if (nncl_tensor_numel(dinput) != nncl_tensor_numel(input))
        return NNCL_ERROR(ctx, NNCL_ERR_SHAPE, "%s: dinput must have input's %" PRId64 " elements", NAMES[loss->kind],
                          nncl_tensor_numel(input));
    return ctx->ops->loss_backward(ctx, loss->kind, dinput, input, target, n, c, loss->smoothing);
}

nncl_status nncl_tensor_write_labels(nncl_context *ctx, const nncl_tensor *dst, const int64_t *labels, size_t n,
                                     int64_t num_classes)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, labels);
    if (num_classes < 1 || num_classes > (1 << 24))
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: num_classes %" PRId64 " must be in 1..2^24", __func__,
                          num_classes);
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= num_classes)
            return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: label %zu is %" PRId64 ", outside [0, %" PRId64 ")",
                              __func__, i, labels[i], num_classes);
    float *v = malloc((n ? n : 1) * sizeof *v);
    if (v == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "%s: out of host memory", __func__);
    for (size_t i = 0; i < n; i++) v[i] = (float)labels[i];
    nncl_status st = nncl_tensor_write(ctx, dst, v, n);
    free(v);
    return st;
}
