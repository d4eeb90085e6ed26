/*
 * nncl/network.h - sequential networks: layers in order, a loss, an
 * optimizer, and a training step that allocates nothing and waits for
 * nothing.
 *
 * Life of a network:
 *   nncl_network_create           an empty network on a context
 *   nncl_network_add (repeated)   append layers; the network owns them
 *   nncl_network_set_loss         the loss; the network owns it
 *   nncl_network_plan             fix the input shape and the batch size:
 *                                 allocates, once, the parameter, gradient,
 *                                 buffer and optimizer-state arenas and the
 *                                 activations; parameters move into the arenas
 *   nncl_network_set_optimizer    SGD, Adam or AdamW, schedule and clipping
 *   per step:  nncl_network_set_batch, _forward, _backward, _step
 *              (or nncl_network_train_step, which does all of them)
 *
 * A steady-state training step makes no device or host allocation, queues
 * everything on the context's queue, and waits only in nncl_network_metrics,
 * which reads the loss and the number of correct predictions (one read).
 * One exception, once: on a device that times its GEMM implementations per
 * shape (GPUs), a batch smaller than the planned one brings GEMM shapes the
 * plan did not time, and the first step with that batch size times them,
 * allocating a buffer for each and waiting for each run; the choices are
 * kept, for later processes too.
 *
 * Parameter names follow the state_dict of the equivalent torch.nn.Sequential:
 * "<layer index>.<name>", e.g. "0.weight", "3.running_mean".
 */
#ifndef NNCL_NETWORK_H
#define NNCL_NETWORK_H

#include "nncl/layer.h"
#include "nncl/loss.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nncl_network nncl_network;

typedef enum nncl_optimizer_kind {
    NNCL_OPT_SGD = 0,   /* torch.optim.SGD: momentum, dampening, nesterov, weight_decay */
    NNCL_OPT_ADAM = 1,  /* torch.optim.Adam: weight_decay added to the gradient */
    NNCL_OPT_ADAMW = 2, /* torch.optim.AdamW: decoupled weight decay */
} nncl_optimizer_kind;

typedef enum nncl_schedule_kind {
    NNCL_SCHED_CONSTANT = 0,
    NNCL_SCHED_STEP = 1,   /* lr * gamma^floor(t / step_size)  (torch StepLR) */
    NNCL_SCHED_COSINE = 2, /* eta_min + (lr - eta_min)(1 + cos(pi min(t, T) / T)) / 2  (CosineAnnealingLR) */
} nncl_schedule_kind;

/*
 * Optimizer options; start from nncl_optimizer_options_default(kind). The
 * schedule is a function of t, the number of optimizer steps taken so far.
 * A linear warm-up (torch LinearLR with start_factor, total_iters =
 * warmup_steps) multiplies it over the first warmup_steps steps.
 */
typedef struct nncl_optimizer_options {
    nncl_optimizer_kind kind;
    float lr;
    float momentum, dampening; /* SGD (defaults 0, 0) */
    int nesterov;              /* SGD (default 0) */
    float weight_decay;        /* default 0 (SGD, Adam) or 0.01 (AdamW), as in torch */
    float beta1, beta2, eps;   /* Adam, AdamW: 0.9, 0.999, 1e-8 */
    float clip_norm;           /* > 0: clip the global gradient norm (torch clip_grad_norm_) */
    nncl_schedule_kind schedule;
    int64_t step_size;         /* STEP */
    float gamma;               /* STEP (default 0.1) */
    int64_t t_max;             /* COSINE */
    float eta_min;             /* COSINE (default 0) */
    int64_t warmup_steps;      /* 0: no warm-up */
    float warmup_start_factor; /* default 1/3, as torch LinearLR */
} nncl_optimizer_options;

/* torch's defaults for the kind, with lr 0.01 (SGD) or 0.001 (Adam, AdamW). */
nncl_optimizer_options nncl_optimizer_options_default(nncl_optimizer_kind kind);

nncl_status nncl_network_create(nncl_context *ctx, nncl_network **out);

/* Destroys the network, its layers, its loss and its memory. Accepts NULL. */
nncl_status nncl_network_destroy(nncl_network *net);

/*
 * Appends a layer (add layers are not sequential and are refused). The
 * network owns it from now on, even on failure; nncl_layer_destroy then
 * refuses it. A layer that already belongs to a network is refused and left
 * to that network.
 */
nncl_status nncl_network_add(nncl_network *net, nncl_layer *layer);

/* Sets the loss; the network owns it from now on, even on failure (as nncl_network_add does its layers). */
nncl_status nncl_network_set_loss(nncl_network *net, nncl_loss *loss);

/*
 * Plans the network for inputs of `ndim` per-sample dimensions `sample_shape`
 * (e.g. 1, 28, 28) in batches of up to `batch`. Checks every layer's shape and
 * allocates all memory. Smaller batches (the last of an epoch) run in the
 * same memory. Layers cannot be added after planning.
 */
nncl_status nncl_network_plan(nncl_network *net, int ndim, const int64_t *sample_shape, int64_t batch);

/* Re-initialises every layer's parameters as PyTorch does, from `seed` (layer i uses key (seed, i)). */
nncl_status nncl_network_init(nncl_network *net, uint64_t seed);

/* Sets (or replaces) the optimizer; its state starts at zero. Requires a planned network. */
nncl_status nncl_network_set_optimizer(nncl_network *net, const nncl_optimizer_options *opt);

/*
 * Uploads a batch: n samples of the planned sample shape (n <= batch), and n
 * class labels (cross_entropy, nll: checked against the classes) or n x out
 * targets (mse, bce_with_logits: `targets`). Pass NULL labels and targets
 * for inference. Returns without waiting; the inputs may be reused at once.
 */
nncl_status nncl_network_set_batch(nncl_network *net, const float *inputs, const int64_t *labels,
                                   const float *targets, int64_t n);

/*
 * Input normalisation applied by nncl_network_set_batch while it stages the
 * inputs: x -> (x - mean) / std (default 0 and 1). Saved with the weights, so
 * evaluation and prediction normalise as training did.
 */
nncl_status nncl_network_set_normalization(nncl_network *net, float mean, float std);
nncl_status nncl_network_get_normalization(const nncl_network *net, float *mean, float *std);

/*
 * Runs every layer on the current batch, then the loss when there are labels
 * or targets. A training forward also computes the loss's gradient then, for
 * the backward that follows (in the loss's launch, not one of its own).
 */
nncl_status nncl_network_forward(nncl_network *net, nncl_mode mode);

/* Backward through the loss and every layer; parameter gradients accumulate. */
nncl_status nncl_network_backward(nncl_network *net);

/* Sets every parameter gradient to zero (one fill over the gradient arena). */
nncl_status nncl_network_zero_grad(nncl_network *net);

/* One optimizer update of every parameter (clipping first, when enabled); advances t. */
nncl_status nncl_network_step(nncl_network *net);

/* zero_grad, forward (training), backward and step on the current batch. */
nncl_status nncl_network_train_step(nncl_network *net);

/*
 * Reads the loss of the last forward and the number of samples whose largest
 * output is their label (classification losses; 0 otherwise). One host wait.
 * Either pointer may be NULL.
 */
nncl_status nncl_network_metrics(nncl_network *net, float *loss, int64_t *correct);

/*
 * Every forward with labels or targets also adds its loss and correct count
 * to running sums on the device (one more launch, no wait). This reads them:
 * the mean loss over the samples (each batch's loss weighted by its size, so
 * that it does not depend on the batch size), the total correct, and the
 * samples seen since the last reset (one host wait, none if no batch was seen).
 */
nncl_status nncl_network_metrics_sum(nncl_network *net, float *mean_loss, int64_t *correct, int64_t *samples);
nncl_status nncl_network_reset_metrics_sum(nncl_network *net);

/* OUT: the network's output for the current batch, n x outputs floats (one host wait). */
nncl_status nncl_network_output(nncl_network *net, float *out, size_t count);

/* OUT: shape of one sample's output (e.g. 10), and the number of layers. */
nncl_status nncl_network_output_size(const nncl_network *net, int64_t *size);
nncl_status nncl_network_layer_count(const nncl_network *net, size_t *count);
nncl_status nncl_network_layer(const nncl_network *net, size_t i, nncl_layer **layer);

/* OUT: the context the network was created on. */
nncl_status nncl_network_get_context(const nncl_network *net, nncl_context **ctx);

/* OUT: the options of nncl_network_set_optimizer; NNCL_ERR_INVALID_ARG when none was set. */
nncl_status nncl_network_get_optimizer(const nncl_network *net, nncl_optimizer_options *opt);

/* The optimizer's step count t, and setting it (restoring a checkpoint). */
nncl_status nncl_network_get_step(const nncl_network *net, int64_t *t);
nncl_status nncl_network_set_step(nncl_network *net, int64_t t);

/* OUT: the learning rate the next step will use. */
nncl_status nncl_network_lr(const nncl_network *net, float *lr);

/*
 * Optimizer state tensors of layer i's parameter j: SGD "momentum_buffer";
 * Adam and AdamW "exp_avg" and "exp_avg_sq". `which` selects 0 or 1. Returns
 * NNCL_ERR_INVALID_ARG when there is no such state.
 */
nncl_status nncl_network_optimizer_state(const nncl_network *net, size_t layer, size_t param, int which,
                                         const char **name, nncl_tensor *state);

#ifdef __cplusplus
}
#endif

#endif /* NNCL_NETWORK_H */
