/*
 * cl_choices.c - choices measured once per device and remembered: which GEMM
 * implementation wins a shape (cl_gemm.c), which convolution path wins a
 * geometry (cl_conv2d.c). A table of integer keys, each with a value, read
 * on first use from <cache folder>/<kind>-<device key hash>.txt and appended
 * to as new choices are measured, so that later processes on the same device
 * and driver measure nothing. A file that cannot be read or written only
 * costs measurements; lines that do not parse are skipped.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opencl/cl.h"

void nncl__cl_choices_init(nncl__cl_choices *c, const char *kind, int n_keys)
{
    *c = (nncl__cl_choices){.kind = kind, .n_keys = n_keys};
}

void nncl__cl_choices_free(nncl__cl_choices *c)
{
    free(c->rows);
    c->rows = NULL;
    c->n = c->cap = 0;
}

static nncl_status remember(nncl_context *ctx, nncl__cl_choices *c, const int64_t *key, int value)
{
    int64_t(*rows)[NNCL_CL_CHOICE_KEYS + 1] = nncl__grow(c->rows, c->n, &c->cap, sizeof *rows, 16);
    if (rows == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "%s choices: out of host memory", c->kind);
    c->rows = rows;
    memcpy(c->rows[c->n], key, sizeof(int64_t) * (size_t)c->n_keys);
    c->rows[c->n][c->n_keys] = value;
    c->n++;
    return NNCL_OK;
}

/* Reads the choices earlier processes saved: n_keys integers and the value per line. */
static nncl_status load(nncl_context *ctx, nncl__cl_choices *c)
{
    c->loaded = 1;
    FILE *f = nncl__cl_cache_open(nncl__cl_state(ctx), c->kind, "r");
    if (f == NULL) return NNCL_OK;
    nncl_status st = NNCL_OK;
    char line[512];
    while (st == NNCL_OK && fgets(line, sizeof line, f) != NULL) {
        int64_t row[NNCL_CL_CHOICE_KEYS + 1];
        char *at = line, *end;
        int got = 0;
        for (; got <= c->n_keys; got++, at = end) {
            row[got] = strtoll(at, &end, 10);
            if (end == at) break;
        }
        if (got == c->n_keys + 1) st = remember(ctx, c, row, (int)row[c->n_keys]);
    }
    fclose(f);
    return st;
}

nncl_status nncl__cl_choice_find(nncl_context *ctx, nncl__cl_choices *c, const int64_t *key, int *value)
{
    if (!c->loaded) NNCL_TRY(load(ctx, c));
    *value = -1;
    for (size_t i = 0; i < c->n; i++) /* the last row of a key wins: a value measured again is appended */
        if (memcmp(c->rows[i], key, sizeof(int64_t) * (size_t)c->n_keys) == 0) *value = (int)c->rows[i][c->n_keys];
    return NNCL_OK;
}

nncl_status nncl__cl_choice_add(nncl_context *ctx, nncl__cl_choices *c, const int64_t *key, int value, int lasting)
{
    NNCL_TRY(remember(ctx, c, key, value));
    c->measured++;
    FILE *f = lasting ? nncl__cl_cache_open(nncl__cl_state(ctx), c->kind, "a") : NULL;
    if (f == NULL) return NNCL_OK;
    for (int i = 0; i < c->n_keys; i++) fprintf(f, "%lld ", (long long)key[i]);
    fprintf(f, "%d\n", value);
    fclose(f);
    return NNCL_OK;
}

double nncl__cl_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
