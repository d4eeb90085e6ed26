/*
 * stream.c - the shared file input and output of src/io; see stream.h.
 *
 * Reading: every gz* call is followed by a look at gzerror, so that an error
 * zlib records without failing the call (a gzip stream cut off before its
 * trailer, for one) is not mistaken for the end of the data. gzread takes an
 * unsigned int length, so large reads go in chunks of STREAM_READ_CHUNK.
 *
 * Writing: the steps are create, write, flush, fsync, close and rename; the
 * first that fails names the error, and the temporary file, once created, is
 * removed.
 */
#define _POSIX_C_SOURCE 200809L /* fsync, fileno, getpid */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "io/stream.h"

/* The largest single gzread request. */
#define STREAM_READ_CHUNK ((size_t)1 << 30)

/* The first allocation for the data; it doubles up to the full size as data arrives. */
#define STREAM_FIRST_ALLOC ((size_t)1 << 20)

/* ---- reading --------------------------------------------------------------------- */

/* Records the error of a failed gz* call: a system error, memory, or a bad stream. */
static nncl_status stream_error(const nncl__stream *s, int read_errno)
{
    int errnum = Z_OK;
    const char *msg = gzerror(s->gz, &errnum);
    if (errnum == Z_ERRNO)
        return NNCL_ERROR(NULL, NNCL_ERR_IO, "%s: read failed: %s", s->path, strerror(read_errno));
    if (errnum == Z_MEM_ERROR)
        return NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "%s: out of memory while decompressing", s->path);
    if (msg == NULL || msg[0] == '\0') msg = "unknown zlib error";
    /* zlib prefixes its message with the path and ": "; the message here has the path already. */
    size_t plen = strlen(s->path);
    if (strncmp(msg, s->path, plen) == 0 && msg[plen] == ':' && msg[plen + 1] == ' ') msg += plen + 2;
    return NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: corrupt gzip stream: %s", s->path, msg);
}

nncl_status nncl__stream_open(const char *path, nncl__stream *s)
{
    s->path = path;
    s->compressed = 0;
    errno = 0;
    s->gz = gzopen(path, "rb");
    if (s->gz == NULL)
        return NNCL_ERROR(NULL, NNCL_ERR_IO, "%s: cannot open: %s", path,
                          errno != 0 ? strerror(errno) : "out of memory");
    /* A larger buffer than zlib's 8 KiB default; a failure here only keeps the default. */
    gzbuffer(s->gz, 1u << 17);

    /* gzdirect reads the first bytes to decide; a read error there is recorded like any other. */
    errno = 0;
    int direct = gzdirect(s->gz);
    int read_errno = errno;
    int errnum = Z_OK;
    gzerror(s->gz, &errnum);
    if (errnum != Z_OK) {
        nncl_status st = stream_error(s, read_errno);
        nncl__stream_close(s);
        return st;
    }
    s->compressed = !direct;
    return NNCL_OK;
}

void nncl__stream_close(nncl__stream *s)
{
    if (s->gz != NULL) gzclose_r(s->gz);
    s->gz = NULL;
}

nncl_status nncl__stream_read_up_to(nncl__stream *s, void *buf, size_t n, size_t *got)
{
    unsigned char *bytes = buf;
    *got = 0;
    while (*got < n) {
        size_t want = n - *got;
        if (want > STREAM_READ_CHUNK) want = STREAM_READ_CHUNK;
        errno = 0;
        int r = gzread(s->gz, bytes + *got, (unsigned)want);
        int read_errno = errno;
        int errnum = Z_OK;
        gzerror(s->gz, &errnum);
        if (r < 0 || errnum != Z_OK) return stream_error(s, read_errno);
        if (r == 0) break;
        *got += (size_t)r;
    }
    return NNCL_OK;
}

/* Counts the bytes left in the stream (for the trailing-bytes message). */
static nncl_status count_rest(nncl__stream *s, uint64_t *count)
{
    unsigned char scratch[4096];
    size_t got;
    do {
        NNCL_TRY(nncl__stream_read_up_to(s, scratch, sizeof scratch, &got));
        *count += got;
    } while (got == sizeof scratch);
    return NNCL_OK;
}

nncl_status nncl__stream_read_data(nncl__stream *s, size_t total, void **data)
{
    *data = NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, have = 0;
    nncl_status st = NNCL_OK;
    while (have < total) {
        if (have == cap) {
            size_t grown = cap == 0 ? STREAM_FIRST_ALLOC : (cap > total / 2 ? total : cap * 2);
            if (grown > total) grown = total;
            unsigned char *p = realloc(buf, grown);
            if (p == NULL) {
                st = NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes of data",
                                s->path, grown);
                goto fail;
            }
            buf = p;
            cap = grown;
        }
        size_t got;
        st = nncl__stream_read_up_to(s, buf + have, cap - have, &got);
        if (st != NNCL_OK) goto fail;
        have += got;
        if (have < cap) break;
    }
    if (have < total) {
        st = NNCL_ERROR(NULL, NNCL_ERR_FORMAT, "%s: truncated: expected %zu bytes of data, found %zu",
                        s->path, total, have);
        goto fail;
    }
    uint64_t extra = 0;
    st = count_rest(s, &extra);
    if (st != NNCL_OK) goto fail;
    if (extra > 0) {
        st = NNCL_ERROR(NULL, NNCL_ERR_FORMAT,
                        "%s: has %" PRIu64 " trailing bytes after the %zu bytes of data", s->path, extra,
                        total);
        goto fail;
    }
    *data = buf;
    return NNCL_OK;

fail:
    free(buf);
    return st;
}

/* ---- writing --------------------------------------------------------------------- */

/* The steps of an atomic write, in order. */
typedef enum write_step { STEP_CREATE, STEP_WRITE, STEP_FLUSH, STEP_SYNC, STEP_CLOSE, STEP_RENAME } write_step;

/* Each step's name. */
static const char *const STEP_NAME[] = {"create", "write", "flush", "fsync", "close", "rename"};

/* Records the failure of `step` (with errno value err). */
static nncl_status write_error(const char *path, const char *tmp, write_step step, int err)
{
    if (err == 0) err = EIO;
    if (step == STEP_CREATE)
        return NNCL_ERROR(NULL, NNCL_ERR_IO, "%s: cannot create the temporary file %s: %s", path, tmp,
                          strerror(err));
    if (step == STEP_RENAME)
        return NNCL_ERROR(NULL, NNCL_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(err));
    return NNCL_ERROR(NULL, NNCL_ERR_IO, "%s: %s failed: %s", path, STEP_NAME[step], strerror(err));
}

nncl_status nncl__atomic_write(const char *path, const void *const *parts, const size_t *sizes,
                               size_t n_parts)
{
    size_t tmp_size = strlen(path) + 32;
    char *tmp = malloc(tmp_size);
    if (tmp == NULL)
        return NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "%s: out of host memory", path);
    snprintf(tmp, tmp_size, "%s.tmp.%ld", path, (long)getpid());

    write_step step = STEP_CREATE;
    int err = 0;
    FILE *fp = fopen(tmp, "wb");
    if (fp == NULL) {
        err = errno;
        goto fail;
    }
    step = STEP_WRITE;
    for (size_t i = 0; i < n_parts; i++) {
        if (sizes[i] > 0 && fwrite(parts[i], 1, sizes[i], fp) != sizes[i]) {
            err = errno;
            goto fail;
        }
    }
    step = STEP_FLUSH;
    if (fflush(fp) != 0) {
        err = errno;
        goto fail;
    }
    step = STEP_SYNC;
    if (fsync(fileno(fp)) != 0) {
        err = errno;
        goto fail;
    }
    step = STEP_CLOSE;
    int rc = fclose(fp);
    fp = NULL;
    if (rc != 0) {
        err = errno;
        goto fail;
    }
    step = STEP_RENAME;
    if (rename(tmp, path) != 0) {
        err = errno;
        goto fail;
    }
    free(tmp);
    return NNCL_OK;

fail:
    if (fp != NULL) fclose(fp);
    /* A temporary file that could not be created is not ours to remove. */
    if (step != STEP_CREATE) remove(tmp);
    nncl_status st = write_error(path, tmp, step, err);
    free(tmp);
    return st;
}
