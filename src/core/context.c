/*
 * context.c - context lifecycle, statistics and the kernel profile.
 *
 * The context itself is backend-neutral: it holds the op table, the counters
 * and the last error. Everything device-specific is created by the backend's
 * init function (src/cpu/cpu_backend.c, src/opencl/cl_backend.c) into
 * ctx->impl.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

nncl_context_options nncl_context_options_default(void)
{
    nncl_context_options opt = {
        .backend = NNCL_BACKEND_OPENCL,
        .platform = -1,
        .device = -1,
        .profiling = 0,
    };
    return opt;
}

nncl_status nncl_context_create(const nncl_context_options *opt, nncl_context **out)
{
    if (out == NULL) return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl_context_create: out is NULL");
    *out = NULL;
    nncl_context_options defaults = nncl_context_options_default();
    if (opt == NULL) opt = &defaults;
    if (opt->backend != NNCL_BACKEND_CPU && opt->backend != NNCL_BACKEND_OPENCL)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "nncl_context_create: unknown backend %d",
                          (int)opt->backend);
    if (opt->platform < -1 || opt->device < -1)
        return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG,
                          "nncl_context_create: platform %d, device %d: each is an index, or -1 to choose",
                          opt->platform, opt->device);

    nncl_context *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return NNCL_ERROR(NULL, NNCL_ERR_OUT_OF_MEMORY, "nncl_context_create: out of host memory");
    ctx->kind = opt->backend;
    ctx->profiling = opt->profiling != 0;

    nncl_status st = opt->backend == NNCL_BACKEND_CPU ? nncl__cpu_backend_init(ctx, opt)
                                                      : nncl__cl_backend_init(ctx, opt);
    if (st != NNCL_OK) {
        /* ctx is about to go away: its message moves to the thread's slot. */
        nncl__error_detach(ctx);
        if (ctx->ops) ctx->ops->destroy(ctx);
        free(ctx->message);
        free(ctx);
        return st;
    }
    *out = ctx;
    return NNCL_OK;
}

nncl_status nncl_context_destroy(nncl_context *ctx)
{
    if (ctx == NULL) return NNCL_OK;
    ctx->ops->destroy(ctx);
    free(ctx->profile);
    free(ctx->trace);
    free(ctx->message);
    free(ctx);
    return NNCL_OK;
}

nncl_status nncl_context_backend(const nncl_context *ctx, nncl_backend_kind *kind)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG((nncl_context *)ctx, kind);
    *kind = ctx->kind;
    return NNCL_OK;
}

nncl_status nncl_context_describe(const nncl_context *ctx, char *buf, size_t size)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG((nncl_context *)ctx, buf);
    if (size == 0)
        return NNCL_ERROR((nncl_context *)ctx, NNCL_ERR_INVALID_ARG, "nncl_context_describe: size is 0");
    snprintf(buf, size, "%s", ctx->description);
    return NNCL_OK;
}

nncl_status nncl_context_finish(nncl_context *ctx)
{
    NNCL_CHECK_CTX(ctx);
    return ctx->ops->finish(ctx);
}

/* ---- statistics -------------------------------------------------------------- */

nncl_status nncl_context_stats(const nncl_context *ctx, nncl_stats *stats)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG((nncl_context *)ctx, stats);
    *stats = ctx->stats;
    return NNCL_OK;
}

nncl_status nncl_context_reset_stats(nncl_context *ctx)
{
    NNCL_CHECK_CTX(ctx);
    /* Events still in flight belong to the old period: settle them first. */
    if (ctx->profiling) NNCL_TRY(ctx->ops->finish(ctx));
    uint64_t live = ctx->stats.device_bytes_live;
    memset(&ctx->stats, 0, sizeof ctx->stats);
    ctx->stats.device_bytes_live = live;
    ctx->profile_len = 0;
    ctx->trace_len = 0;
    return NNCL_OK;
}

/* ---- profiling --------------------------------------------------------------- */

void nncl__profile_scope(nncl_context *ctx, const char *fmt, ...)
{
    if (!ctx->profiling) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->scope, sizeof ctx->scope, fmt, ap);
    va_end(ap);
}

nncl_status nncl__profile_add(nncl_context *ctx, const char *kernel, const char *scope, uint64_t start_ns,
                              uint64_t end_ns)
{
    nncl__trace_event *trace = nncl__grow(ctx->trace, ctx->trace_len, &ctx->trace_cap, sizeof *trace, 256);
    if (trace == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "profile: out of host memory");
    ctx->trace = trace;
    nncl__trace_event *t = &ctx->trace[ctx->trace_len++];
    snprintf(t->kernel, sizeof t->kernel, "%s", kernel);
    snprintf(t->scope, sizeof t->scope, "%s", scope);
    t->start_ns = start_ns;
    t->end_ns = end_ns;

    uint64_t ns = end_ns - start_ns;
    for (size_t i = 0; i < ctx->profile_len; i++) {
        if (strcmp(ctx->profile[i].kernel, kernel) == 0) {
            ctx->profile[i].launches++;
            ctx->profile[i].total_ns += ns;
            return NNCL_OK;
        }
    }
    nncl__profile_sum *sums = nncl__grow(ctx->profile, ctx->profile_len, &ctx->profile_cap, sizeof *sums, 16);
    if (sums == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "profile: out of host memory");
    ctx->profile = sums;
    nncl__profile_sum *e = &ctx->profile[ctx->profile_len++];
    snprintf(e->kernel, sizeof e->kernel, "%s", kernel);
    e->launches = 1;
    e->total_ns = ns;
    return NNCL_OK;
}

/* Writes s as a JSON string body (quotes and backslashes escaped). */
static void json_string(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        if ((unsigned char)*s >= 0x20) fputc(*s, f);
    }
}

nncl_status nncl_context_write_trace(nncl_context *ctx, const char *path)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, path);
    if (!ctx->profiling)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "%s: the context was created without profiling", __func__);
    NNCL_TRY(ctx->ops->finish(ctx)); /* settles the events of queued commands */
    FILE *f = fopen(path, "w");
    if (f == NULL) return NNCL_ERROR(ctx, NNCL_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    uint64_t t0 = ctx->trace_len ? ctx->trace[0].start_ns : 0;
    for (size_t i = 0; i < ctx->trace_len; i++)
        if (ctx->trace[i].start_ns < t0) t0 = ctx->trace[i].start_ns;
    fprintf(f, "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n");
    fprintf(f, "{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": 1, \"args\": {\"name\": \"layers\"}},\n");
    fprintf(f, "{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": 2, \"args\": {\"name\": \"kernels\"}}");
    /* Kernels on thread 2; each run of commands under one scope becomes one span on thread 1. */
    for (size_t i = 0; i < ctx->trace_len;) {
        size_t j = i;
        uint64_t begin = ctx->trace[i].start_ns, end = ctx->trace[i].end_ns;
        while (j < ctx->trace_len && strcmp(ctx->trace[j].scope, ctx->trace[i].scope) == 0) {
            const nncl__trace_event *e = &ctx->trace[j];
            if (e->start_ns < begin) begin = e->start_ns;
            if (e->end_ns > end) end = e->end_ns;
            fprintf(f, ",\n{\"name\": \"");
            json_string(f, e->kernel);
            fprintf(f, "\", \"cat\": \"kernel\", \"ph\": \"X\", \"pid\": 1, \"tid\": 2, \"ts\": %.3f, \"dur\": %.3f, "
                       "\"args\": {\"layer\": \"",
                    (double)(e->start_ns - t0) / 1e3, (double)(e->end_ns - e->start_ns) / 1e3);
            json_string(f, e->scope);
            fprintf(f, "\"}}");
            j++;
        }
        fprintf(f, ",\n{\"name\": \"");
        json_string(f, ctx->trace[i].scope[0] ? ctx->trace[i].scope : "(no scope)");
        fprintf(f, "\", \"cat\": \"layer\", \"ph\": \"X\", \"pid\": 1, \"tid\": 1, \"ts\": %.3f, \"dur\": %.3f}",
                (double)(begin - t0) / 1e3, (double)(end - begin) / 1e3);
        i = j;
    }
    fprintf(f, "\n]}\n");
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return NNCL_ERROR(ctx, NNCL_ERR_IO, "%s: write failed", path);
    return NNCL_OK;
}

nncl_status nncl_context_profile(nncl_context *ctx, nncl_profile_entry *out, size_t cap,
                                 size_t *count)
{
    NNCL_CHECK_CTX(ctx);
    NNCL_CHECK_ARG(ctx, count);
    if (!ctx->profiling)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG,
                          "nncl_context_profile: the context was created without profiling");
    NNCL_TRY(ctx->ops->finish(ctx)); /* settles the events of queued kernels */
    *count = ctx->profile_len;
    for (size_t i = 0; out != NULL && i < cap && i < ctx->profile_len; i++) {
        snprintf(out[i].kernel, sizeof out[i].kernel, "%s", ctx->profile[i].kernel);
        out[i].launches = ctx->profile[i].launches;
        out[i].total_ns = ctx->profile[i].total_ns;
    }
    return NNCL_OK;
}
