/*
 * context.c - context lifecycle, statistics and the kernel profile.
 *
 * The context itself is backend-neutral: it holds the op table, the counters
 * and the last error. Everything device-specific is created by the backend's
 * init function (src/cpu/cpu_backend.c, src/opencl/cl_backend.c) into
 * ctx->impl.
 */
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
    return NNCL_OK;
}

/* ---- profiling --------------------------------------------------------------- */

nncl_status nncl__profile_add(nncl_context *ctx, const char *kernel, uint64_t ns)
{
    for (size_t i = 0; i < ctx->profile_len; i++) {
        if (strcmp(ctx->profile[i].kernel, kernel) == 0) {
            ctx->profile[i].launches++;
            ctx->profile[i].total_ns += ns;
            return NNCL_OK;
        }
    }
    if (ctx->profile_len == ctx->profile_cap) {
        size_t cap = ctx->profile_cap ? 2 * ctx->profile_cap : 16;
        nncl__profile_sum *grown = realloc(ctx->profile, cap * sizeof *grown);
        if (grown == NULL)
            return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "profile: out of host memory");
        ctx->profile = grown;
        ctx->profile_cap = cap;
    }
    nncl__profile_sum *e = &ctx->profile[ctx->profile_len++];
    snprintf(e->kernel, sizeof e->kernel, "%s", kernel);
    e->launches = 1;
    e->total_ns = ns;
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
