/*
 * cli.h - what the parts of the nncl tool share.
 */
#ifndef NNCL_CLI_H
#define NNCL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "internal.h" /* the library's error recording: messages land on the context */

/* Prints "nncl: <status name>: <message>" for a failure on ctx (NULL: the thread's slot); returns 1. */
int cli_fail(nncl_context *ctx, nncl_status st);

/* ---- data ---- */

typedef struct dataset {
    nncl_array x;        /* (n, ...) images as read: uint8 (batched as v / 255) or float32 */
    int64_t *y;          /* (n) class labels */
    int64_t n, sample;   /* samples, floats per sample */
    int ndim;            /* per-sample rank */
    int64_t shape[8];    /* per-sample shape */
} dataset;

/* Images and labels from two IDX or .npy files (by extension). */
nncl_status dataset_load(const char *xpath, const char *ypath, dataset *out);
/* train-*-idx?-ubyte[.gz] (test = 0) or t10k-* (test = 1) in an IDX folder. */
nncl_status dataset_load_idx_dir(const char *dir, int test, dataset *out);
void dataset_free(dataset *d);
void dataset_stats(const dataset *d, float *mean, float *std);
/* Keeps the first n samples (n <= 0: all). */
void dataset_truncate(dataset *d, int64_t n);
/* The order of samples in an epoch: shuffled from (seed, epoch), or 0..n-1. */
void dataset_order(int64_t n, uint64_t seed, int64_t epoch, int shuffle, int64_t *order);
/* Copies samples order[start .. start + n) into x and their labels into y (y may be NULL). */
void dataset_batch(const dataset *d, const int64_t *order, int64_t start, int64_t n, float *x, int64_t *y);

/* ---- subcommands ---- */

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);

#endif /* NNCL_CLI_H */
