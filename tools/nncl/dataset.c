/*
 * dataset.c - the tool's data: Fashion-MNIST style image sets from an IDX
 * folder or from .npy files, shuffled per epoch, and copied out in batches.
 * Images stay in the type they were read in (uint8 for IDX: a quarter of the
 * memory of floats, and no 188 MB to allocate and fill at startup) and become
 * floats a batch at a time.
 */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

void dataset_free(dataset *d)
{
    nncl_array_free(&d->x);
    free(d->y);
    memset(d, 0, sizeof *d);
}

/* Reads a file as IDX or .npy (by extension). */
static nncl_status read_array(const char *path, nncl_array *a)
{
    size_t n = strlen(path);
    if (n >= 4 && strcmp(path + n - 4, ".npy") == 0) return nncl_npy_read(path, a);
    return nncl_idx_read(path, a);
}

/* Takes the images (N, ...) of u8 or f32 over into out, and converts labels of u8 or i64. */
static nncl_status to_dataset(const char *xpath, nncl_array *xa, const char *ypath, const nncl_array *ya,
                              dataset *out)
{
    if (xa->ndim < 1 || xa->shape[0] < 1)
        return nncl__error(NULL, NNCL_ERR_FORMAT, __FILE__, __LINE__, "%s: expected an array of samples (N, ...)", xpath);
    if (xa->dtype != NNCL_DTYPE_U8 && xa->dtype != NNCL_DTYPE_F32)
        return nncl__error(NULL, NNCL_ERR_FORMAT, __FILE__, __LINE__, "%s: images must be uint8 or float32", xpath);
    if (ya->ndim != 1 || ya->shape[0] != xa->shape[0] || (ya->dtype != NNCL_DTYPE_U8 && ya->dtype != NNCL_DTYPE_I64))
        return nncl__error(NULL, NNCL_ERR_FORMAT, __FILE__, __LINE__,
                           "%s: labels must be a vector of %lld uint8 or int64 values, one per image of %s", ypath,
                           (long long)xa->shape[0], xpath);
    int64_t n = xa->shape[0], per = nncl_array_numel(xa) / n;
    out->n = n;
    out->sample = per;
    out->ndim = xa->ndim - 1;
    memcpy(out->shape, xa->shape + 1, sizeof(int64_t) * (size_t)out->ndim);
    out->y = malloc(sizeof(int64_t) * (size_t)n);
    if (!out->y) return nncl__error(NULL, NNCL_ERR_OUT_OF_MEMORY, __FILE__, __LINE__, "out of memory");
    for (int64_t i = 0; i < n; i++)
        out->y[i] = ya->dtype == NNCL_DTYPE_U8 ? ((const uint8_t *)ya->data)[i] : ((const int64_t *)ya->data)[i];
    out->x = *xa; /* the dataset owns the images from here */
    memset(xa, 0, sizeof *xa);
    return NNCL_OK;
}

nncl_status dataset_load(const char *xpath, const char *ypath, dataset *out)
{
    memset(out, 0, sizeof *out);
    nncl_array xa = {0}, ya = {0};
    nncl_status st = read_array(xpath, &xa);
    if (st == NNCL_OK) st = read_array(ypath, &ya);
    if (st == NNCL_OK) st = to_dataset(xpath, &xa, ypath, &ya, out);
    nncl_array_free(&xa);
    nncl_array_free(&ya);
    if (st != NNCL_OK) dataset_free(out);
    return st;
}

/* The first existing one of <dir>/<name>.gz and <dir>/<name>. */
static void find_file(const char *dir, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s.gz", dir, name);
    FILE *f = fopen(out, "rb");
    if (f) {
        fclose(f);
        return;
    }
    snprintf(out, size, "%s/%s", dir, name);
}

nncl_status dataset_load_idx_dir(const char *dir, int test, dataset *out)
{
    char x[1024], y[1024];
    find_file(dir, test ? "t10k-images-idx3-ubyte" : "train-images-idx3-ubyte", x, sizeof x);
    find_file(dir, test ? "t10k-labels-idx1-ubyte" : "train-labels-idx1-ubyte", y, sizeof y);
    return dataset_load(x, y, out);
}

/* The value of element i of the images, as a batch holds it. */
static float image_value(const nncl_array *x, int64_t i)
{
    return x->dtype == NNCL_DTYPE_U8 ? ((const uint8_t *)x->data)[i] / 255.0f : ((const float *)x->data)[i];
}

/*
 * Mean and standard deviation over every element. For uint8 images, from a
 * histogram of the 256 values: exact, and a single pass of byte counting
 * over the 47 million pixels of Fashion-MNIST.
 */
void dataset_stats(const dataset *d, float *mean, float *std)
{
    const int64_t n = d->n * d->sample;
    double s = 0.0, sq = 0.0, m;
    if (d->x.dtype == NNCL_DTYPE_U8) {
        int64_t hist[256] = {0};
        const uint8_t *p = d->x.data;
        for (int64_t i = 0; i < n; i++) hist[p[i]]++;
        for (int v = 0; v < 256; v++) s += (double)hist[v] * (double)(v / 255.0f);
        m = s / (double)n;
        for (int v = 0; v < 256; v++) sq += (double)hist[v] * ((double)(v / 255.0f) - m) * ((double)(v / 255.0f) - m);
    } else {
        for (int64_t i = 0; i < n; i++) s += image_value(&d->x, i);
        m = s / (double)n;
        for (int64_t i = 0; i < n; i++) sq += ((double)image_value(&d->x, i) - m) * ((double)image_value(&d->x, i) - m);
    }
    *mean = (float)m;
    *std = (float)sqrt(sq / (double)n);
    if (*std == 0.0f) *std = 1.0f;
}

void dataset_truncate(dataset *d, int64_t n)
{
    if (n > 0 && n < d->n) d->n = n;
}

/*
 * The order of an epoch: a Fisher-Yates shuffle driven by the counter-based
 * generator keyed by (seed, epoch), so any epoch's order can be recomputed
 * (which is how a resumed run finds its place).
 */
void dataset_order(int64_t n, uint64_t seed, int64_t epoch, int shuffle, int64_t *order)
{
    for (int64_t i = 0; i < n; i++) order[i] = i;
    if (!shuffle) return;
    nncl_rng_key key = {.seed = seed, .step = (uint64_t)epoch, .layer = 0xffffffffu};
    for (int64_t i = n - 1; i > 0; i--) {
        /* Two 24-bit draws make a 48-bit uniform index in [0, i]. */
        uint64_t hi = (uint64_t)(nncl__rng_uniform(key, (uint32_t)(2 * i)) * 16777216.0f);
        uint64_t lo = (uint64_t)(nncl__rng_uniform(key, (uint32_t)(2 * i + 1)) * 16777216.0f);
        int64_t j = (int64_t)(((hi << 24) | lo) % (uint64_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

void dataset_batch(const dataset *d, const int64_t *order, int64_t start, int64_t n, float *x, int64_t *y)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t k = order[start + i];
        for (int64_t e = 0; e < d->sample; e++) x[i * d->sample + e] = image_value(&d->x, k * d->sample + e);
        if (y) y[i] = d->y[k];
    }
}
