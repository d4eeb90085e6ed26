/*
 * cl_binary_cache.c - an on-disk cache of built program binaries.
 *
 * A program built from source is saved as the device's binary in
 * <dir>/<name>-<key>.bin, and a later build of the same program loads it
 * instead of compiling. The key is a 64-bit FNV-1a hash of the device name,
 * the driver version, the whole source and the build options, so a new
 * driver or an edited kernel misses the cache rather than loading a stale
 * binary. Files are written atomically (src/io/stream.h). A file that cannot
 * be read, is too large, or does not build is ignored: the program is then
 * built from source as if there were no cache, and the file is rewritten.
 *
 * The save happens when the context releases its programs
 * (nncl__cl_cache_flush), not when the program is built, since asking a
 * driver for a binary may compile kernels. And by default it does not happen
 * at all on PoCL, which keeps every kernel it compiles in a cache of its own
 * (POCL_CACHE_DIR, on by default, keyed by source, options and device), and
 * which, asked for a binary, first compiles a generic copy of every kernel of
 * the program: 15 to 18 s for nncl's library on the 2-core development
 * machine, to save about 0.1 s on later starts (PyOpenCL turned its own
 * binary cache off on PoCL for the same reason, pyopencl#731).
 * NNCL_CACHE_BINARIES=1 or 0 stores or skips on any driver.
 *
 * <dir> is NNCL_CACHE_DIR, else $XDG_CACHE_HOME/nncl, else $HOME/.cache/nncl;
 * NNCL_CACHE_DIR=off turns the cache off.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/stream.h"
#include "opencl/cl.h"

#define MAX_BINARY ((size_t)64 << 20)

void nncl__cl_cache_init(nncl_context *ctx, const nncl_device_info *device)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    const char *dir = getenv("NNCL_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    const char *store = getenv("NNCL_CACHE_BINARIES");
    cl->cache_store = store != NULL && (strcmp(store, "0") == 0 || strcmp(store, "1") == 0)
                          ? store[0] == '1'
                          : strstr(device->platform_name, "Portable Computing Language") == NULL;
    cl->cache_dir[0] = '\0';
    if (dir != NULL && strcmp(dir, "off") == 0) return;
    if (dir != NULL && dir[0] != '\0') snprintf(cl->cache_dir, sizeof cl->cache_dir, "%s", dir);
    else if (xdg != NULL && xdg[0] != '\0') snprintf(cl->cache_dir, sizeof cl->cache_dir, "%s/nncl", xdg);
    else if (home != NULL && home[0] != '\0') snprintf(cl->cache_dir, sizeof cl->cache_dir, "%s/.cache/nncl", home);
    snprintf(cl->cache_device, sizeof cl->cache_device, "%s|%s", device->name, device->driver_version);
}

/* FNV-1a over a string, continuing from h. */
static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (h ^ 0xff) * 0x100000001b3ull; /* a separator, so ("ab", "c") differs from ("a", "bc") */
}

/* The cache file of a program; 0 when the cache is off or the path does not fit. */
static int cache_path(const nncl__cl *cl, const char *name, const char *const *parts, size_t n_parts,
                      const char *options, char *path, size_t size)
{
    if (cl->cache_dir[0] == '\0') return 0;
    uint64_t h = fnv1a(0xcbf29ce484222325ull, cl->cache_device);
    for (size_t i = 0; i < n_parts; i++) h = fnv1a(h, parts[i]);
    h = fnv1a(h, options);
    int n = snprintf(path, size, "%s/%s-%016llx.bin", cl->cache_dir, name, (unsigned long long)h);
    return n > 0 && (size_t)n < size;
}

cl_program nncl__cl_cache_load(nncl_context *ctx, const char *name, const char *const *parts, size_t n_parts,
                               const char *options)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    char path[1024];
    if (!cache_path(cl, name, parts, n_parts, options, path, sizeof path)) return NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    unsigned char *bin = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size > 0 && (size_t)size <= MAX_BINARY && fseek(f, 0, SEEK_SET) == 0 && (bin = malloc((size_t)size)) != NULL &&
        fread(bin, 1, (size_t)size, f) != (size_t)size) {
        free(bin);
        bin = NULL;
    }
    fclose(f);
    if (bin == NULL) return NULL;
    size_t len = (size_t)size;
    const unsigned char *bins[1] = {bin};
    cl_int status = CL_SUCCESS, err;
    cl_program p = clCreateProgramWithBinary(cl->context, 1, &cl->device, &len, bins, &status, &err);
    free(bin);
    /* A file the driver refuses is a cache miss: the caller builds from source. */
    if (err != CL_SUCCESS || status != CL_SUCCESS) {
        if (err == CL_SUCCESS) (void)NNCL_CL_CHECK(ctx, clReleaseProgram(p), "clReleaseProgram(cached binary)");
        return NULL;
    }
    if (clBuildProgram(p, 1, &cl->device, options, NULL, NULL) != CL_SUCCESS) {
        (void)NNCL_CL_CHECK(ctx, clReleaseProgram(p), "clReleaseProgram(cached binary)");
        return NULL;
    }
    cl->cache_hits++;
    return p;
}

/* Creates dir and its parents (like mkdir -p); returns 0 on success. */
static int make_dirs(const char *dir)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

FILE *nncl__cl_cache_open(const nncl__cl *cl, const char *prefix, const char *mode)
{
    if (cl->cache_dir[0] == '\0') return NULL;
    char path[1024];
    int n = snprintf(path, sizeof path, "%s/%s-%016llx.txt", cl->cache_dir, prefix,
                     (unsigned long long)fnv1a(0xcbf29ce484222325ull, cl->cache_device));
    if (n <= 0 || (size_t)n >= sizeof path) return NULL;
    if (mode[0] != 'r' && make_dirs(cl->cache_dir) != 0) return NULL;
    return fopen(path, mode);
}

char *nncl__cl_cache_file(nncl_context *ctx, const char *name, const char *const *parts, size_t n_parts,
                          const char *options)
{
    const nncl__cl *cl = nncl__cl_state(ctx);
    char path[1024];
    if (!cl->cache_store || !cache_path(cl, name, parts, n_parts, options, path, sizeof path)) return NULL;
    char *copy = malloc(strlen(path) + 1);
    if (copy != NULL) strcpy(copy, path);
    return copy; /* out of memory: the program is simply not saved */
}

void nncl__cl_cache_store(nncl_context *ctx, cl_program program, const char *path)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    size_t size = 0;
    if (clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) != CL_SUCCESS || size == 0 ||
        size > MAX_BINARY)
        return;
    unsigned char *bin = malloc(size);
    if (bin == NULL) return;
    unsigned char *bins[1] = {bin};
    /* A cache that cannot be written is only a slower next start: nothing to report. */
    if (clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS &&
        make_dirs(cl->cache_dir) == 0) {
        const void *data[1] = {bin};
        if (nncl__atomic_write(path, data, &size, 1) == NNCL_OK) cl->cache_stores++;
    }
    free(bin);
}
