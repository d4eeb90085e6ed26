/*
 * layer.h - what every layer shares: the layer structure, its op table, and
 * helpers for parameters and workspaces.
 *
 * A layer knows shapes and parameters and calls the backend (ctx->ops). It
 * never touches a cl_mem and contains no loops over data. Each layer file
 * (src/layers/<name>.c) embeds `nncl_layer` as the first member of its own
 * structure and provides a `nncl_layer_ops` table.
 */
#ifndef NNCL_LAYER_INTERNAL_H
#define NNCL_LAYER_INTERNAL_H

#include "backend/backend.h"

#define NNCL_LAYER_MAX_PARAMS 4

/* A parameter (value and gradient) or a buffer (value only, grad.buf == NULL). */
typedef struct nncl__param {
    const char *name;  /* state_dict name: "weight", "bias", "running_mean", ... */
    nncl_tensor value; /* owned by the layer unless borrowed */
    nncl_tensor grad;  /* owned by the layer unless borrowed; empty for buffers */
    int borrowed;      /* value and grad are views into a network's arenas */
} nncl__param;

typedef struct nncl_layer_ops {
    const char *kind; /* "linear", "conv2d", ... */
    int is_alias;     /* flatten, unflatten: descriptor rewrites only */
    int needs_dx;     /* backward cannot skip the input gradient (dx == NULL is refused) */
    /* Output shape for an input shape, or NNCL_ERR_SHAPE naming the layer and both shapes. */
    nncl_status (*output_shape)(const nncl_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out);
    /* x and y are checked (y has the output shape) before this is called. NULL: not a one-input layer. */
    nncl_status (*forward)(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y);
    /*
     * forward, then relu on y, in the same pass (optional: layers whose kernels
     * apply it as they store). A network fuses such a layer with a relu after
     * it; the relu's own backward still runs, on y, whose sign is the input's.
     */
    nncl_status (*forward_relu)(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y);
    /* Optional: drops what the last forward kept for backward, after a forward that failed (its checks
       included), so that a backward then is refused rather than run on another forward's state. */
    void (*forget)(nncl_layer *l);
    /* x, y, dy (and dx when not NULL) are checked before this is called. */
    nncl_status (*backward)(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                            nncl_tensor *dx);
    /*
     * backward, composed with the backward of a relu that produced x (optional:
     * max pooling, whose output tells where the relu passed its gradient;
     * linear, whose input gradient GEMM zeroes it where x is not > 0).
     * A network gives a relu between a forward_relu layer and such a layer no
     * kernel at all.
     */
    nncl_status (*backward_relu)(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                                 nncl_tensor *dx);
    /*
     * Has the backend make its choices for this layer's operations on these
     * shapes, ahead of the first step (optional: layers whose backend calls
     * measure per shape, linear and conv2d). Called by nncl_network_plan with
     * the planned tensors, as backward would be (dx may be NULL); y and dx
     * may be overwritten and the parameter gradients accumulated into.
     */
    nncl_status (*prepare)(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y, const nncl_tensor *dy,
                           nncl_tensor *dx);
    /* Releases what the layer owns besides its parameters (optional). */
    void (*destroy)(nncl_layer *l);
    /* Sets the parameters to PyTorch's initial values, drawing from (seed, layer) (optional). */
    nncl_status (*reset)(nncl_layer *l, uint64_t seed, uint32_t layer);
} nncl_layer_ops;

struct nncl_layer {
    const nncl_layer_ops *ops;
    nncl_context *ctx;
    char desc[192];            /* "conv2d(in=3, out=8, kernel=3x3, ...)", for messages */
    int owned;                 /* added to a network, which destroys it (nncl__layer_free) */
    size_t n_params;           /* learnable parameters: params[0 .. n_params) */
    size_t n_total;            /* parameters and buffers: params[0 .. n_total) */
    nncl__param params[NNCL_LAYER_MAX_PARAMS];
};

/* Sets up the common part; `size` is the size of the layer's own structure. */
nncl_status nncl__layer_alloc(nncl_context *ctx, const nncl_layer_ops *ops, size_t size, nncl_layer **out);

/*
 * Adds a parameter (learnable: with a zeroed gradient) or a buffer, filled
 * with `value`. Parameters must be added before buffers.
 */
nncl_status nncl__layer_add_param(nncl_layer *l, const char *name, int ndim, const int64_t *shape, int learnable,
                                  float value);

/*
 * Fills parameter i with values uniform in [-bound, bound), drawn on the host
 * from the counter-based generator under (seed, step = i, layer), and uploads them. This is
 * how PyTorch's Linear and Conv2d initialise (kaiming_uniform with a = sqrt 5
 * gives bound = 1 / sqrt(fan_in)).
 */
nncl_status nncl__layer_init_uniform(nncl_layer *l, size_t i, float bound, uint64_t seed, uint32_t layer);

/*
 * Moves parameter i into network-owned memory: copies its value into `value`
 * (and zeroes `grad` for a learnable one), releases the layer's own tensors,
 * and makes the views the parameter from now on. grad is ignored for buffers.
 */
nncl_status nncl__layer_rebind_param(nncl_layer *l, size_t i, const nncl_tensor *value, const nncl_tensor *grad);

/* Destroys a layer whatever owns it: for its network. */
void nncl__layer_free(nncl_layer *l);

/* 1 when l is a relu activation layer (the network fuses it into a forward_relu before it). */
int nncl__layer_is_relu(const nncl_layer *l);

/* 1 when l is a dropout layer (it has a generator step), or batch norm (it counts batches). */
int nncl__layer_is_dropout(const nncl_layer *l);
int nncl__layer_is_batchnorm(const nncl_layer *l);

/* nncl_layer_forward, with a relu applied to y in the same pass: l->ops->forward_relu must exist. */
nncl_status nncl__layer_forward_relu(nncl_layer *l, nncl_mode mode, const nncl_tensor *x, nncl_tensor *y);

/* nncl_layer_backward composed with the relu that produced x: l->ops->backward_relu must exist. */
nncl_status nncl__layer_backward_relu(nncl_layer *l, const nncl_tensor *x, const nncl_tensor *y,
                                      const nncl_tensor *dy, nncl_tensor *dx);

/* output_shape of the layers whose output has the input's shape. */
nncl_status nncl__layer_same_shape(const nncl_layer *l, int ndim, const int64_t *in, int *out_ndim, int64_t *out);

/* Returns NNCL_ERR_SHAPE: "<desc>: input shape (...) <reason>". */
nncl_status nncl__layer_shape_error(const nncl_layer *l, int ndim, const int64_t *shape, const char *reason);

/* Returns NNCL_ERR_INVALID_ARG with "<kind>: <formatted reason>". */
#define NNCL_LAYER_CONFIG_ERROR(ctx, kind, ...) NNCL_ERROR((ctx), NNCL_ERR_INVALID_ARG, kind ": " __VA_ARGS__)

#endif /* NNCL_LAYER_INTERNAL_H */
