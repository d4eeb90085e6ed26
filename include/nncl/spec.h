/*
 * nncl/spec.h - model spec files: a network as text, one layer per line.
 *
 *     # the reference CNN
 *     input 1 28 28
 *     conv2d 32 kernel=3 padding=1
 *     relu
 *     maxpool2d 2
 *     flatten
 *     linear 10
 *     loss cross_entropy
 *
 * The first statement is `input` with the per-sample shape. Each layer line is
 * a name, positional values and key=value options; channels and features are
 * inferred from the shape so far. `#` starts a comment. Layer i (counting
 * layer lines from 0) is module i of the equivalent torch.nn.Sequential, so
 * its parameters are named "<i>.weight" and so on. An optional `loss` line
 * sets the loss (cross_entropy by default).
 *
 * Layers: linear OUT [bias=0|1]; conv2d OUT kernel=K [stride=S padding=P
 * dilation=D groups=G bias=0|1] (each K, S, P, D may be AxB); maxpool2d K and
 * avgpool2d K [stride=S padding=P]; global_avgpool; flatten [start_dim=1];
 * unflatten dim=D sizes=A,B,...; relu; leaky_relu [slope=0.01]; sigmoid; tanh;
 * gelu; silu; elu [alpha=1]; softmax; log_softmax; dropout [p=0.5];
 * batchnorm1d; batchnorm2d; layernorm [dims=1 affine=1].
 * Losses: cross_entropy [smoothing=S], mse, bce_with_logits, nll.
 */
#ifndef NNCL_SPEC_H
#define NNCL_SPEC_H

#include "nncl/network.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The result of parsing a spec: an unplanned network and its input shape. */
typedef struct nncl_spec {
    nncl_network *net;                /* owned by the caller: nncl_network_destroy */
    int ndim;                         /* per-sample input rank */
    int64_t shape[NNCL_MAX_DIMS];     /* per-sample input shape */
} nncl_spec;

/*
 * Builds a network from spec text. `name` is used in messages
 * ("model.spec:3: conv2d: unknown option 'kernal'"). Returns NNCL_ERR_FORMAT
 * with the line number and the reason for any malformed line, and
 * NNCL_ERR_SHAPE when a layer does not fit the shape before it.
 */
nncl_status nncl_spec_parse(nncl_context *ctx, const char *text, const char *name, nncl_spec *out);

/* Reads a spec file and parses it (NNCL_ERR_IO when it cannot be read). */
nncl_status nncl_spec_load(nncl_context *ctx, const char *path, nncl_spec *out);

#ifdef __cplusplus
}
#endif

#endif /* NNCL_SPEC_H */
