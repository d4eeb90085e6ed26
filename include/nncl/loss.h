/*
 * nncl/loss.h - loss functions: a forward that writes the mean loss into a
 * one-element tensor, and a backward that writes the gradient of that mean
 * with respect to the input.
 *
 * Reductions follow PyTorch's reduction='mean': mse and bce_with_logits
 * average over every element; cross_entropy and nll average over the batch.
 *
 * Class targets (cross_entropy, nll) are a tensor of N class indices stored
 * as float32 (exact for indices below 2^24). Write them with
 * nncl_tensor_write_labels, which checks every index against the number of
 * classes. A kernel that meets an index out of range anyway produces NaN,
 * never an out-of-bounds access.
 */
#ifndef NNCL_LOSS_H
#define NNCL_LOSS_H

#include "nncl/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nncl_loss nncl_loss;

typedef enum nncl_loss_kind {
    NNCL_LOSS_MSE = 0,             /* input and target of the same shape */
    NNCL_LOSS_CROSS_ENTROPY = 1,   /* logits (N, C), class indices (N) */
    NNCL_LOSS_BCE_WITH_LOGITS = 2, /* logits and targets in [0, 1], same shape */
    NNCL_LOSS_NLL = 3,             /* log-probabilities (N, C), class indices (N) */
} nncl_loss_kind;

/*
 * Creates a loss. label_smoothing (cross_entropy only, else 0) is in [0, 1]:
 * the target distribution is (1 - s) one_hot + s / C, as in PyTorch.
 */
nncl_status nncl_loss_create(nncl_context *ctx, nncl_loss_kind kind, float label_smoothing, nncl_loss **out);

/* Accepts NULL; refuses a loss a network owns. */
nncl_status nncl_loss_destroy(nncl_loss *loss);

/* loss_out[0] = mean loss. loss_out holds one element. Queued. */
nncl_status nncl_loss_forward(nncl_loss *loss, const nncl_tensor *input, const nncl_tensor *target,
                              const nncl_tensor *loss_out);

/* dinput = d(mean loss)/d(input), overwritten. Queued. */
nncl_status nncl_loss_backward(nncl_loss *loss, const nncl_tensor *input, const nncl_tensor *target,
                               const nncl_tensor *dinput);

/*
 * Writes n class indices into dst (n elements) after checking that each is in
 * [0, num_classes). Returns NNCL_ERR_INVALID_ARG naming the first bad index.
 */
nncl_status nncl_tensor_write_labels(nncl_context *ctx, const nncl_tensor *dst, const int64_t *labels, size_t n,
                                     int64_t num_classes);

#ifdef __cplusplus
}
#endif

#endif /* NNCL_LOSS_H */
