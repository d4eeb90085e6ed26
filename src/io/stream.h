/*
 * stream.h - the file input and output that the readers and writers of
 * src/io share: a checked byte stream for reading, and the atomic write.
 *
 * Reading goes through zlib's gz* functions, which decompress a gzip stream
 * and pass any other content through unchanged; the stream records which of
 * the two it found, so that a format that is never compressed can refuse a
 * gzip file. Every failure is recorded in the calling thread's slot (see
 * NNCL_ERROR) and names the file:
 *   - a system error is NNCL_ERR_IO ("read failed: <strerror>");
 *   - zlib running out of memory is NNCL_ERR_OUT_OF_MEMORY;
 *   - a corrupt gzip stream, or one that ends before its trailer, is
 *     NNCL_ERR_FORMAT ("corrupt gzip stream: <zlib's message>").
 *
 * Writing is atomic: the bytes go to a temporary file "<path>.tmp.<pid>" in
 * the same directory, which is flushed, fsynced, closed and renamed over
 * `path`; on failure the temporary file is removed and `path` is untouched.
 */
#ifndef NNCL_IO_STREAM_H
#define NNCL_IO_STREAM_H

#include <stddef.h>

#include <zlib.h>

#include "nncl.h"

/* An open file being read; fill it with nncl__stream_open. */
typedef struct nncl__stream {
    const char *path; /* the file's name, for messages; not owned */
    gzFile gz;
    int compressed; /* whether the file is a gzip stream rather than plain bytes */
} nncl__stream;

/*
 * Opens `path` for reading and looks at its first bytes to tell a gzip stream
 * from plain bytes. Returns NNCL_ERR_IO when the file cannot be opened or
 * read; on failure nothing is left open.
 */
nncl_status nncl__stream_open(const char *path, nncl__stream *s);

/* Closes the file. */
void nncl__stream_close(nncl__stream *s);

/*
 * Reads up to n bytes into buf, stopping early only at the end of the data;
 * *got receives the count.
 */
nncl_status nncl__stream_read_up_to(nncl__stream *s, void *buf, size_t n, size_t *got);

/*
 * Reads exactly `total` bytes of data into a fresh allocation (*data, NULL
 * when total is 0) and checks that nothing follows. The buffer starts small
 * and doubles (never past `total`) only as data arrives, so a tiny file that
 * claims a huge size fails as truncated without a huge allocation first. A
 * short file is NNCL_ERR_FORMAT "truncated: expected T bytes of data, found
 * N", and bytes after the data are NNCL_ERR_FORMAT "has N trailing bytes
 * after the T bytes of data".
 */
nncl_status nncl__stream_read_data(nncl__stream *s, size_t total, void **data);

/*
 * Writes the `n_parts` buffers parts[i] of sizes[i] bytes, in order, to
 * `path` atomically (see the top of this file). Returns NNCL_ERR_IO naming
 * `path` and the system error, or NNCL_ERR_OUT_OF_MEMORY.
 */
nncl_status nncl__atomic_write(const char *path, const void *const *parts, const size_t *sizes,
                               size_t n_parts);

#endif /* NNCL_IO_STREAM_H */
