/*
 * nncl/layer.h - layers: shape inference, parameters, forward and backward.
 *
 * A layer belongs to one context. Its parameters use PyTorch's layouts and
 * names ("weight", "bias", and for batch norm the buffers "running_mean" and
 * "running_var"), so that state_dicts map one to one.
 *
 * Calling convention:
 *   - The caller allocates activations: y with nncl_layer_output_shape(x),
 *     dx with x's shape. x, y, dy and dx may be views at any offset.
 *   - forward(x -> y) in training or evaluation mode. Layers that need
 *     something from the forward pass in backward (max-pool positions, batch
 *     statistics, the dropout step) keep it inside the layer, so backward must
 *     follow the forward of the same x.
 *   - backward(x, y, dy -> dx) overwrites dx, the input gradient, and ADDS the
 *     parameter gradients into the layer's gradient tensors: they accumulate
 *     across calls until nncl_layer_zero_grad. dx may be NULL when the input
 *     gradient is not needed (the first layer of a network), except for the
 *     alias layers, which write a descriptor into *dx, and batch norm and
 *     layer norm, whose backward kernels always write dx: those refuse a NULL
 *     dx with NNCL_ERR_INVALID_ARG.
 *   - Alias layers (flatten, unflatten) never touch the device: their forward
 *     writes into *y a descriptor of x's memory, and their backward writes
 *     into *dx a descriptor of dy's memory. Query with nncl_layer_is_alias.
 *
 * Every constructor checks its configuration and returns NNCL_ERR_INVALID_ARG
 * with a message that names the layer and the offending values.
 */
#ifndef NNCL_LAYER_H
#define NNCL_LAYER_H

#include "nncl/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nncl_layer nncl_layer;

typedef enum nncl_mode {
    NNCL_EVAL = 0,  /* batch norm uses running statistics; dropout is the identity */
    NNCL_TRAIN = 1, /* batch norm uses batch statistics and updates the running ones */
} nncl_mode;

/* ---- constructors --------------------------------------------------------------- */

/* torch.nn.Linear(in, out, bias): y = x W^T + b, x (N, in) -> y (N, out). W is (out, in). */
nncl_status nncl_linear_create(nncl_context *ctx, int64_t in_features, int64_t out_features, int bias,
                               nncl_layer **out);

/* torch.nn.Conv2d. Start from nncl_conv2d_options_default(in, out, kernel). */
typedef struct nncl_conv2d_options {
    int64_t in_channels, out_channels;
    int64_t kernel_h, kernel_w;
    int64_t stride_h, stride_w;     /* default 1 */
    int64_t padding_h, padding_w;   /* default 0, zero padding */
    int64_t dilation_h, dilation_w; /* default 1 */
    int64_t groups;                 /* default 1; in_channels for depthwise */
    int bias;                       /* default 1 */
} nncl_conv2d_options;

nncl_conv2d_options nncl_conv2d_options_default(int64_t in_channels, int64_t out_channels, int64_t kernel);

/* x (N, C, H, W) -> y (N, out_channels, OH, OW). W is (out, in / groups, kh, kw). */
nncl_status nncl_conv2d_create(nncl_context *ctx, const nncl_conv2d_options *opt, nncl_layer **out);

typedef enum nncl_pool_kind {
    NNCL_POOL_MAX = 0,
    NNCL_POOL_AVG = 1, /* counts padded zeros in the divisor, as PyTorch's default */
} nncl_pool_kind;

/*
 * torch.nn.MaxPool2d / AvgPool2d with a square kernel, stride (0 means "the
 * kernel size", PyTorch's default) and padding, and floor output sizes:
 * OH = (H + 2 padding - kernel) / stride + 1. padding <= kernel / 2.
 */
nncl_status nncl_pool2d_create(nncl_context *ctx, nncl_pool_kind kind, int64_t kernel, int64_t stride,
                               int64_t padding, nncl_layer **out);

/* torch.nn.AdaptiveAvgPool2d(1): (N, C, H, W) -> (N, C, 1, 1). */
nncl_status nncl_global_avgpool_create(nncl_context *ctx, nncl_layer **out);

/* torch.nn.Flatten(start_dim): an alias layer. PyTorch's module default is start_dim 1. */
nncl_status nncl_flatten_create(nncl_context *ctx, int start_dim, nncl_layer **out);

/* torch.nn.Unflatten(dim, sizes): an alias layer. One size may be -1. */
nncl_status nncl_unflatten_create(nncl_context *ctx, int dim, int n, const int64_t *sizes, nncl_layer **out);

typedef enum nncl_activation {
    NNCL_ACT_RELU = 0,
    NNCL_ACT_LEAKY_RELU = 1, /* param: negative slope (PyTorch default 0.01) */
    NNCL_ACT_SIGMOID = 2,
    NNCL_ACT_TANH = 3,
    NNCL_ACT_GELU = 4,       /* the exact erf form, PyTorch's default */
    NNCL_ACT_SILU = 5,
    NNCL_ACT_ELU = 6,        /* param: alpha (PyTorch default 1.0) */
} nncl_activation;

/* An element-wise activation; `param` is used by leaky_relu and elu only. Any shape. */
nncl_status nncl_activation_create(nncl_context *ctx, nncl_activation act, float param, nncl_layer **out);

/* torch.nn.Softmax(dim=-1) or LogSoftmax(dim=-1): over the last dimension. */
nncl_status nncl_softmax_create(nncl_context *ctx, int log, nncl_layer **out);

/*
 * torch.nn.Dropout(p): in training, zeroes each element with probability p
 * and scales the kept ones by 1 / (1 - p); the identity in evaluation. The
 * mask comes from a counter-based generator keyed by (seed, step, layer
 * index, element), so both backends draw the same mask. The step advances
 * with every training forward. 0 <= p < 1.
 */
nncl_status nncl_dropout_create(nncl_context *ctx, float p, uint64_t seed, uint32_t layer_index, nncl_layer **out);

/*
 * torch.nn.BatchNorm1d (x (N, C) or (N, C, L)) and BatchNorm2d (x (N, C, H, W)):
 * affine, momentum 0.1, eps 1e-5; running variance updated with the unbiased
 * batch variance. Parameters "weight", "bias"; buffers "running_mean",
 * "running_var" (num_batches_tracked: nncl_layer_batches_tracked).
 */
nncl_status nncl_batchnorm_create(nncl_context *ctx, int64_t num_features, int spatial_dims, nncl_layer **out);

/*
 * torch.nn.LayerNorm(normalized_shape, eps=1e-5, elementwise_affine): over
 * the trailing ndim dimensions, which must equal normalized_shape.
 */
nncl_status nncl_layernorm_create(nncl_context *ctx, int ndim, const int64_t *normalized_shape, int affine,
                                  nncl_layer **out);

/* y = a + b for a residual connection; see nncl_add_forward / nncl_add_backward. */
nncl_status nncl_add_create(nncl_context *ctx, nncl_layer **out);

/* ---- using a layer ----------------------------------------------------------------- */

/* Destroys the layer and the parameters it owns. Accepts NULL; refuses a layer a network owns. */
nncl_status nncl_layer_destroy(nncl_layer *layer);

/* OUT: the layer's name and configuration, e.g. "conv2d(3->8, kernel=3x3, stride=1x1, ...)". */
nncl_status nncl_layer_describe(const nncl_layer *layer, char *buf, size_t size);

/*
 * OUT: the output shape for an input of the given shape. Returns
 * NNCL_ERR_SHAPE, naming the layer and both shapes, when the input does not
 * fit the layer (wrong rank, wrong channels, a kernel larger than the padded
 * input, ...).
 */
nncl_status nncl_layer_output_shape(const nncl_layer *layer, int ndim, const int64_t *in_shape, int *out_ndim,
                                    int64_t *out_shape);

/* OUT: *alias = 1 for flatten and unflatten (see the calling convention above). */
nncl_status nncl_layer_is_alias(const nncl_layer *layer, int *alias);

/*
 * Parameters and buffers, in state_dict order: learnable parameters first
 * ("weight", "bias"), then buffers ("running_mean", "running_var").
 *   count   OUT: how many there are.
 */
nncl_status nncl_layer_param_count(const nncl_layer *layer, size_t *count);

/*
 * OUT: the i-th parameter's name (static string), its value tensor, and its
 * gradient tensor (buf == NULL for buffers, which have no gradient). The
 * descriptors borrow the layer's memory; write through them to set weights.
 */
nncl_status nncl_layer_param(const nncl_layer *layer, size_t i, const char **name, nncl_tensor *value,
                             nncl_tensor *grad);

/*
 * Sets the parameters to PyTorch's initial values: for linear and conv2d,
 * weights and biases uniform in +-1/sqrt(fan_in) (kaiming_uniform with
 * a = sqrt 5), drawn on the host from the counter-based generator keyed by
 * (seed, layer_index), so both backends get identical values; for the
 * normalisations, weight 1 and bias 0 (and running statistics 0 and 1).
 * Constructors already call it with (0, 0).
 */
nncl_status nncl_layer_reset_parameters(nncl_layer *layer, uint64_t seed, uint32_t layer_index);

/* Sets every parameter gradient to zero. Queued. */
nncl_status nncl_layer_zero_grad(nncl_layer *layer);

/* y = layer(x). See the calling convention above. Queued. */
nncl_status nncl_layer_forward(nncl_layer *layer, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y);

/*
 * dx = d(loss)/dx given dy = d(loss)/dy; parameter gradients += d(loss)/dθ.
 * dx may be NULL. Queued.
 */
nncl_status nncl_layer_backward(nncl_layer *layer, const nncl_tensor *x, const nncl_tensor *y,
                                const nncl_tensor *dy, nncl_tensor *dx);

/* y = a + b (same shapes). The layer must be an add layer. */
nncl_status nncl_add_forward(nncl_layer *layer, const nncl_tensor *a, const nncl_tensor *b, const nncl_tensor *y);

/* da = dy and db = dy (either may be NULL). */
nncl_status nncl_add_backward(nncl_layer *layer, const nncl_tensor *dy, const nncl_tensor *da,
                              const nncl_tensor *db);

/* OUT: batch norm's num_batches_tracked (training forwards so far). */
nncl_status nncl_layer_batches_tracked(const nncl_layer *layer, int64_t *count);
/* Restores batch norm's num_batches_tracked (from a checkpoint). */
nncl_status nncl_layer_set_batches_tracked(nncl_layer *layer, int64_t count);

/* Dropout's generator position: the step of the next training forward. */
nncl_status nncl_layer_get_step(const nncl_layer *layer, uint64_t *step);
nncl_status nncl_layer_set_step(nncl_layer *layer, uint64_t step);

#ifdef __cplusplus
}
#endif

#endif /* NNCL_LAYER_H */
