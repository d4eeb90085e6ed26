/*
 * nncl/checkpoint.h - saving and loading networks as safetensors files.
 *
 * Weights are stored as the state_dict of the equivalent torch.nn.Sequential:
 * "<layer index>.<name>", float32, in PyTorch's layouts (linear weight
 * (out, in), conv2d weight (out, in / groups, kh, kw)), with batch norm's
 * running statistics and its "num_batches_tracked" (int64, shape ()). A file
 * written by torch (safetensors.torch.save_file(model.state_dict(), path))
 * loads here, and the other way round.
 *
 * The training state adds, to the weights, the optimizer's state tensors
 * ("optimizer.<layer>.<name>.<state>", e.g. "optimizer.0.weight.exp_avg") and
 * metadata: the optimizer and its step, the epoch and the batch within it,
 * the run's seed (shuffling, and the dropout generators' key), and each
 * dropout layer's generator step. Resuming from
 * it continues bit for bit where the saved run stopped.
 *
 * Writes are atomic (a temporary file, fsync, rename). Loading checks the
 * header size against a cap, every offset, dtype, shape and size, and that
 * the names match the network exactly; a bad file gets NNCL_ERR_FORMAT (or
 * NNCL_ERR_IO, NNCL_ERR_SHAPE, and NNCL_ERR_UNSUPPORTED for a dtype other
 * than F32, I64 and U8) with a message, and leaves the network as it was.
 */
#ifndef NNCL_CHECKPOINT_H
#define NNCL_CHECKPOINT_H

#include "nncl/network.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where a training run stands. */
typedef struct nncl_train_position {
    int64_t epoch;   /* the epoch in progress (0-based) */
    int64_t batch;   /* batches of that epoch already done */
    int64_t batch_size; /* samples per batch, so that a resumed run finds the same samples; 0: none */
    uint64_t seed;   /* the run's seed: initialisation and shuffling */
} nncl_train_position;

/* Writes the weights (state_dict) of a planned network. One host wait per tensor. */
nncl_status nncl_network_save_weights(nncl_network *net, const char *path);

/* Loads weights saved by nncl or by torch; every name, shape and dtype must match. */
nncl_status nncl_network_load_weights(nncl_network *net, const char *path);

/* Writes weights, optimizer state and `pos` (the network needs an optimizer). */
nncl_status nncl_network_save_state(nncl_network *net, const char *path, const nncl_train_position *pos);

/* Restores what nncl_network_save_state wrote; the network must have an optimizer of the same kind. */
nncl_status nncl_network_load_state(nncl_network *net, const char *path, nncl_train_position *pos);

#ifdef __cplusplus
}
#endif

#endif /* NNCL_CHECKPOINT_H */
