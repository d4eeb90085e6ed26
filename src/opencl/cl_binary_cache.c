/*
 * cl_binary_cache.c - an on-disk cache of built program binaries.
 *
 * A program built from source is saved as the device's binary in
 * <dir>/<name>-<key>.bin, and a later build of the same program loads it
 * instead of compiling. The key is a 64-bit FNV-1a hash of the device name,
 * the driver version, the whole source and the build options, so a new
 * driver or an edited kernel misses the cache rather than loading a stale
 * binary. The file starts with a header of four little-endian 64-bit words,
 * the magic "nnclbin1", the key again, the binary's length and its CRC-32,
 * because drivers trust what they are handed: PoCL crashes on a truncated
 * binary, and would run a binary built with other options (another NNCL_EW)
 * that a file copied under this key holds. Files are written atomically
 * (src/io/stream.h) and opened only when they are regular files (a FIFO
 * would block). A file that cannot be read, is not what its header says, or
 * does not build is ignored: the program is then built from source as if
 * there were no cache, and the file is rewritten.
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
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "io/stream.h"
#include "opencl/cl.h"

#define MAX_BINARY ((size_t)64 << 20)
#define MAGIC "nnclbin1"
#define HEADER_BYTES 32

nncl_status nncl__cl_cache_init(nncl_context *ctx, const nncl_device_info *device)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    const char *dir = getenv("NNCL_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    const char *store = getenv("NNCL_CACHE_BINARIES");
    if (store != NULL && strcmp(store, "0") != 0 && strcmp(store, "1") != 0)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "NNCL_CACHE_BINARIES=\"%s\" is not 0 or 1", store);
    cl->cache_store = store != NULL ? store[0] == '1'
                                    : strstr(device->platform_name, "Portable Computing Language") == NULL;
    snprintf(cl->cache_device, sizeof cl->cache_device, "%s|%s", device->name, device->driver_version);
    cl->cache_dir[0] = '\0';
    if (dir != NULL && strcmp(dir, "off") == 0) return NNCL_OK;
    int n = 0;
    if (dir != NULL && dir[0] != '\0') {
        n = snprintf(cl->cache_dir, sizeof cl->cache_dir, "%s", dir);
        if (n < 0 || (size_t)n >= sizeof cl->cache_dir) {
            cl->cache_dir[0] = '\0';
            return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "NNCL_CACHE_DIR is %zu bytes long, over the %zu nncl takes",
                              strlen(dir), sizeof cl->cache_dir - 1);
        }
    } else if (xdg != NULL && xdg[0] != '\0') {
        n = snprintf(cl->cache_dir, sizeof cl->cache_dir, "%s/nncl", xdg);
    } else if (home != NULL && home[0] != '\0') {
        n = snprintf(cl->cache_dir, sizeof cl->cache_dir, "%s/.cache/nncl", home);
    }
    if (n < 0 || (size_t)n >= sizeof cl->cache_dir) cl->cache_dir[0] = '\0'; /* a default that does not fit: off */
    return NNCL_OK;
}

/* Opens path as stdio `mode` ("r", "w" or "a") only if it is a regular file, or creates one: a FIFO or a
   device in its place would block or mislead. NULL for anything else. */
static FILE *open_regular(const char *path, const char *mode)
{
    const int flags = mode[0] == 'r' ? O_RDONLY : O_WRONLY | O_CREAT | (mode[0] == 'a' ? O_APPEND : O_TRUNC);
    int fd = open(path, flags | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) return NULL;
    struct stat st;
    FILE *f = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) f = fdopen(fd, mode);
    if (f == NULL) close(fd);
    return f;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* FNV-1a over a string, continuing from h. */
static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (h ^ 0xff) * 0x100000001b3ull; /* a separator, so ("ab", "c") differs from ("a", "bc") */
}

/* The cache file of a program and its key; 0 when the cache is off or the path does not fit. */
static int cache_path(const nncl__cl *cl, const char *name, const char *const *parts, size_t n_parts,
                      const char *options, char *path, size_t size, uint64_t *key)
{
    if (cl->cache_dir[0] == '\0') return 0;
    uint64_t h = fnv1a(0xcbf29ce484222325ull, cl->cache_device);
    for (size_t i = 0; i < n_parts; i++) h = fnv1a(h, parts[i]);
    h = fnv1a(h, options);
    *key = h;
    int n = snprintf(path, size, "%s/%s-%016llx.bin", cl->cache_dir, name, (unsigned long long)h);
    return n > 0 && (size_t)n < size;
}

/* The binary in cache file `path` if its header says it is the binary of `key`, whole; else NULL. */
static unsigned char *read_binary(const char *path, uint64_t key, size_t *len)
{
    FILE *f = open_regular(path, "r");
    if (f == NULL) return NULL;
    unsigned char head[HEADER_BYTES], *bin = NULL;
    uint64_t n = 0;
    if (fread(head, 1, sizeof head, f) == sizeof head && memcmp(head, MAGIC, 8) == 0 && get_u64(head + 8) == key &&
        (n = get_u64(head + 16)) > 0 && n <= MAX_BINARY && (bin = malloc((size_t)n)) != NULL) {
        const int whole = fread(bin, 1, (size_t)n, f) == n && fgetc(f) == EOF;
        if (!whole || crc32(crc32(0L, Z_NULL, 0), bin, (uInt)n) != get_u64(head + 24)) {
            free(bin);
            bin = NULL;
        }
    }
    fclose(f);
    *len = (size_t)n;
    return bin;
}

cl_program nncl__cl_cache_load(nncl_context *ctx, const char *name, const char *const *parts, size_t n_parts,
                               const char *options)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    char path[1024];
    uint64_t key;
    if (!cache_path(cl, name, parts, n_parts, options, path, sizeof path, &key)) return NULL;
    size_t len = 0;
    unsigned char *bin = read_binary(path, key, &len);
    if (bin == NULL) return NULL;
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
    char tmp[sizeof ((nncl__cl *)0)->cache_dir];
    int len = snprintf(tmp, sizeof tmp, "%s", dir);
    if (len < 0 || (size_t)len >= sizeof tmp) return -1;
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
    return open_regular(path, mode);
}

char *nncl__cl_cache_file(nncl_context *ctx, const char *name, const char *const *parts, size_t n_parts,
                          const char *options, uint64_t *key)
{
    const nncl__cl *cl = nncl__cl_state(ctx);
    char path[1024];
    if (!cl->cache_store || !cache_path(cl, name, parts, n_parts, options, path, sizeof path, key)) return NULL;
    char *copy = malloc(strlen(path) + 1);
    if (copy != NULL) strcpy(copy, path);
    return copy; /* out of memory: the program is simply not saved */
}

void nncl__cl_cache_store(nncl_context *ctx, cl_program program, const char *path, uint64_t key)
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
        unsigned char head[HEADER_BYTES];
        memcpy(head, MAGIC, 8);
        put_u64(head + 8, key);
        put_u64(head + 16, size);
        put_u64(head + 24, crc32(crc32(0L, Z_NULL, 0), bin, (uInt)size));
        const void *data[2] = {head, bin};
        const size_t sizes[2] = {sizeof head, size};
        if (nncl__atomic_write(path, data, sizes, 2) == NNCL_OK) cl->cache_stores++;
    }
    free(bin);
}
