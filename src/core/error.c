/*
 * error.c - recording the last error on a context.
 *
 * The message lives in a heap buffer on the context that grows to fit (build
 * logs can be long). When there is no context to hold it (a failed
 * nncl_context_create, a NULL ctx argument), it goes to a fixed buffer owned
 * by the calling thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Thread_local char tls_message[2048];
static _Thread_local nncl_status tls_status;

/* "/home/x/nncl/src/core/tensor.c" -> "src/core/tensor.c". */
static const char *source_relative(const char *file)
{
    const char *best = NULL;
    for (const char *p = strstr(file, "src/"); p != NULL; p = strstr(p + 1, "src/")) {
        if (p == file || p[-1] == '/') best = p;
    }
    return best ? best : file;
}

/* Makes room for `extra` more bytes after the current message. */
static int reserve(nncl_context *ctx, size_t len, size_t extra)
{
    size_t need = len + extra + 1;
    if (need <= ctx->message_cap) return 1;
    size_t cap = ctx->message_cap ? ctx->message_cap : 256;
    while (cap < need) cap *= 2;
    char *grown = realloc(ctx->message, cap);
    if (grown == NULL) return 0;
    ctx->message = grown;
    ctx->message_cap = cap;
    return 1;
}

/* Appends formatted text; on allocation failure the message is truncated. */
static void append_v(nncl_context *ctx, const char *fmt, va_list ap)
{
    if (ctx == NULL) {
        size_t len = strlen(tls_message);
        vsnprintf(tls_message + len, sizeof tls_message - len, fmt, ap);
        return;
    }
    size_t len = ctx->message ? strlen(ctx->message) : 0;
    va_list probe;
    va_copy(probe, ap);
    int n = vsnprintf(NULL, 0, fmt, probe);
    va_end(probe);
    if (n < 0) return;
    if (!reserve(ctx, len, (size_t)n)) {
        if (ctx->message_cap > len + 1) vsnprintf(ctx->message + len, ctx->message_cap - len, fmt, ap);
        return;
    }
    vsnprintf(ctx->message + len, ctx->message_cap - len, fmt, ap);
}

static void append(nncl_context *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    append_v(ctx, fmt, ap);
    va_end(ap);
}

/* Starts a new last error: `status`, and an empty message. */
static void restart(nncl_context *ctx, nncl_status status)
{
    if (ctx == NULL) {
        tls_message[0] = '\0';
        tls_status = status;
    } else {
        if (ctx->message) ctx->message[0] = '\0';
        ctx->last_status = status;
    }
}

nncl_status nncl__error(nncl_context *ctx, nncl_status status, const char *file, int line,
                        const char *fmt, ...)
{
    restart(ctx, status);
    va_list ap;
    va_start(ap, fmt);
    append_v(ctx, fmt, ap);
    va_end(ap);
    append(ctx, " at %s:%d", source_relative(file), line);
    return status;
}

nncl_status nncl__error_prefix(nncl_context *ctx, nncl_status status, const char *fmt, ...)
{
    const char *current = ctx == NULL ? tls_message : ctx->message ? ctx->message : "";
    size_t len = strlen(current) + 1;
    char *kept = malloc(len);
    if (kept == NULL) { /* the message stays as it was; the status is still the new one */
        if (ctx == NULL) tls_status = status;
        else ctx->last_status = status;
        return status;
    }
    memcpy(kept, current, len);
    restart(ctx, status);
    va_list ap;
    va_start(ap, fmt);
    append_v(ctx, fmt, ap);
    va_end(ap);
    append(ctx, "%s", kept);
    free(kept);
    return status;
}

void nncl__error_append(nncl_context *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    append_v(ctx, fmt, ap);
    va_end(ap);
}

void nncl__error_detach(const nncl_context *ctx)
{
    tls_status = ctx->last_status;
    snprintf(tls_message, sizeof tls_message, "%s", ctx->message ? ctx->message : "");
}

void nncl__error_attach(nncl_context *ctx)
{
    nncl__error_set(ctx, tls_status, tls_message);
}

void nncl__error_set(nncl_context *ctx, nncl_status status, const char *message)
{
    ctx->last_status = status;
    if (ctx->message) ctx->message[0] = '\0';
    append(ctx, "%s", message);
}

nncl__error_mark nncl__error_mark_save(const nncl_context *ctx)
{
    nncl__error_mark m = {.status = ctx->last_status, .message = NULL};
    if (ctx->message != NULL && ctx->message[0] != '\0') {
        size_t n = strlen(ctx->message) + 1;
        m.message = malloc(n);
        if (m.message) memcpy(m.message, ctx->message, n);
    }
    return m;
}

void nncl__error_mark_restore(nncl_context *ctx, nncl__error_mark *mark)
{
    nncl__error_set(ctx, mark->status, mark->message ? mark->message : "");
    nncl__error_mark_drop(mark);
}

void nncl__error_mark_drop(nncl__error_mark *mark)
{
    free(mark->message);
    mark->message = NULL;
}

const char *nncl_context_last_error(const nncl_context *ctx)
{
    if (ctx == NULL) return tls_message;
    return ctx->message ? ctx->message : "";
}

nncl_status nncl_context_last_status(const nncl_context *ctx)
{
    return ctx == NULL ? tls_status : ctx->last_status;
}
