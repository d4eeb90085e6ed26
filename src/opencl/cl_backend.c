/*
 * cl_backend.c - the OpenCL backend: context and queue, memory, ordering,
 * profiling events and its op table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opencl/cl.h"

/* ---- memory ------------------------------------------------------------------------ */

nncl_status nncl__cl_alloc(nncl_context *ctx, size_t bytes, cl_mem *out)
{
    cl_int err;
    cl_mem mem = clCreateBuffer(nncl__cl_state(ctx)->context, CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL, &err);
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clCreateBuffer(%zu bytes)", bytes);
    ctx->stats.device_allocs++;
    ctx->stats.device_bytes_live += bytes;
    *out = mem;
    return NNCL_OK;
}

void nncl__cl_free(nncl_context *ctx, cl_mem *mem, size_t bytes)
{
    if (*mem == NULL) return;
    (void)NNCL_CL_CHECK(ctx, clReleaseMemObject(*mem), "clReleaseMemObject(%zu bytes)", bytes);
    *mem = NULL;
    ctx->stats.device_bytes_live -= bytes;
}

nncl_status nncl__cl_scratch(nncl_context *ctx, int slot, size_t bytes, cl_mem *out)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    if (cl->scratch[slot] == NULL || bytes > cl->scratch_bytes[slot]) {
        nncl__cl_scratch_release(ctx, slot);
        NNCL_TRY(nncl__cl_alloc(ctx, bytes, &cl->scratch[slot]));
        cl->scratch_bytes[slot] = bytes;
    }
    *out = cl->scratch[slot];
    return NNCL_OK;
}

void nncl__cl_scratch_release(nncl_context *ctx, int slot)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    nncl__cl_free(ctx, &cl->scratch[slot], cl->scratch_bytes[slot]); /* OpenCL keeps it for queued commands */
    cl->scratch_bytes[slot] = 0;
}

static nncl_status cl_buffer_alloc(nncl_context *ctx, nncl_buffer *buf)
{
    cl_mem mem;
    NNCL_TRY(nncl__cl_alloc(ctx, buf->bytes, &mem));
    buf->mem = mem;
    return NNCL_OK;
}

static void cl_buffer_release(nncl_context *ctx, nncl_buffer *buf)
{
    cl_mem mem = buf->mem;
    nncl__cl_free(ctx, &mem, buf->bytes);
    buf->mem = NULL;
}

static nncl_status cl_write(nncl_context *ctx, nncl_buffer *dst, size_t off, const void *src, size_t bytes)
{
    /* Blocking: src belongs to the caller and may change as soon as we return. */
    cl_int err = clEnqueueWriteBuffer(nncl__cl_state(ctx)->queue, (cl_mem)dst->mem, CL_TRUE, off, bytes, src,
                                      0, NULL, NULL);
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clEnqueueWriteBuffer(%zu bytes)", bytes);
    ctx->stats.host_waits++;
    return NNCL_OK;
}

static nncl_status cl_upload(nncl_context *ctx, nncl_buffer *dst, size_t off, const void *src, size_t bytes)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    int i = cl->next_staging;
    cl->next_staging = (i + 1) % NNCL_CL_STAGING;
    if (cl->staging[i].event != NULL) { /* an earlier upload read this slot */
        cl_int status = CL_COMPLETE;
        cl_int err = clGetEventInfo(cl->staging[i].event, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status,
                                    NULL);
        if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clGetEventInfo(upload)");
        if (status != CL_COMPLETE) {
            /* The host is two steps ahead of the device: wait, but for the next slot's upload, queued after
               this one, so that one wait frees both a step's input and its labels. */
            const int j = (i + 1) % NNCL_CL_STAGING;
            err = clWaitForEvents(1, cl->staging[j].event != NULL ? &cl->staging[j].event : &cl->staging[i].event);
            if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clWaitForEvents(upload)");
            ctx->stats.host_waits++;
        }
        err = clReleaseEvent(cl->staging[i].event);
        cl->staging[i].event = NULL;
        if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clReleaseEvent(upload)");
    }
    if (bytes > cl->staging[i].bytes) {
        void *grown = realloc(cl->staging[i].host, bytes);
        if (grown == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "upload: cannot stage %zu bytes", bytes);
        cl->staging[i].host = grown;
        cl->staging[i].bytes = bytes;
    }
    memcpy(cl->staging[i].host, src, bytes);
    cl_int err = clEnqueueWriteBuffer(cl->queue, (cl_mem)dst->mem, CL_FALSE, off, bytes, cl->staging[i].host, 0, NULL,
                                      &cl->staging[i].event);
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clEnqueueWriteBuffer(%zu bytes, staged)", bytes);
    return NNCL_OK;
}

static nncl_status cl_read(nncl_context *ctx, const nncl_buffer *src, size_t off, void *dst, size_t bytes)
{
    cl_int err = clEnqueueReadBuffer(nncl__cl_state(ctx)->queue, (cl_mem)src->mem, CL_TRUE, off, bytes, dst,
                                     0, NULL, NULL);
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clEnqueueReadBuffer(%zu bytes)", bytes);
    ctx->stats.host_waits++;
    if (ctx->profiling) NNCL_TRY(nncl__cl_profile_settle(ctx));
    return NNCL_OK;
}

static nncl_status cl_copy(nncl_context *ctx, nncl_buffer *dst, size_t dst_off, const nncl_buffer *src,
                           size_t src_off, size_t bytes)
{
    cl_event ev = NULL;
    cl_int err = clEnqueueCopyBuffer(nncl__cl_state(ctx)->queue, (cl_mem)src->mem, (cl_mem)dst->mem, src_off,
                                     dst_off, bytes, 0, NULL, ctx->profiling ? &ev : NULL);
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clEnqueueCopyBuffer(%zu bytes)", bytes);
    if (ev != NULL) NNCL_TRY(nncl__cl_profile_event(ctx, ev, "copy"));
    return NNCL_OK;
}

static nncl_status cl_finish(nncl_context *ctx)
{
    cl_int err = clFinish(nncl__cl_state(ctx)->queue);
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clFinish");
    ctx->stats.host_waits++;
    if (ctx->profiling) NNCL_TRY(nncl__cl_profile_settle(ctx));
    return NNCL_OK;
}

static nncl_status cl_flush(nncl_context *ctx)
{
    cl_int err = clFlush(nncl__cl_state(ctx)->queue);
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clFlush");
    return NNCL_OK;
}

/* ---- profiling --------------------------------------------------------------------- */

nncl_status nncl__cl_profile_event(nncl_context *ctx, cl_event ev, const char *what)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    nncl__cl_pending_event *pending = nncl__grow(cl->pending, cl->n_pending, &cl->cap_pending, sizeof *pending, 64);
    if (pending == NULL) {
        (void)NNCL_CL_CHECK(ctx, clReleaseEvent(ev), "clReleaseEvent(%s)", what);
        return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "profiling: out of host memory");
    }
    cl->pending = pending;
    nncl__cl_pending_event *p = &cl->pending[cl->n_pending++];
    p->event = ev;
    snprintf(p->kernel, sizeof p->kernel, "%s", what);
    snprintf(p->scope, sizeof p->scope, "%s", ctx->scope);
    return NNCL_OK;
}

nncl_status nncl__cl_profile_settle(nncl_context *ctx)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    nncl_status st = NNCL_OK;
    for (size_t i = 0; i < cl->n_pending; i++) {
        nncl__cl_pending_event *p = &cl->pending[i];
        cl_ulong start = 0, end = 0;
        cl_int err = clGetEventProfilingInfo(p->event, CL_PROFILING_COMMAND_START, sizeof start, &start, NULL);
        if (err == CL_SUCCESS)
            err = clGetEventProfilingInfo(p->event, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL);
        if (err != CL_SUCCESS && st == NNCL_OK)
            st = NNCL_CL_FAIL(ctx, err, "clGetEventProfilingInfo(%s)", p->kernel);
        if (err == CL_SUCCESS && st == NNCL_OK) st = nncl__profile_add(ctx, p->kernel, p->scope, start, end);
        err = clReleaseEvent(p->event);
        if (err != CL_SUCCESS && st == NNCL_OK) st = NNCL_CL_FAIL(ctx, err, "clReleaseEvent(%s)", p->kernel);
    }
    cl->n_pending = 0;
    return st;
}

/* ---- lifecycle --------------------------------------------------------------------- */

static void cl_destroy(nncl_context *ctx)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    if (cl == NULL) return;
    /* The context goes with this call: the finish and the releases below have no one to report a failure to. */
    if (cl->queue) clFinish(cl->queue);
    for (size_t i = 0; i < cl->n_pending; i++) clReleaseEvent(cl->pending[i].event);
    free(cl->pending);
    for (int i = 0; i < NNCL_CL_STAGING; i++) {
        if (cl->staging[i].event) clReleaseEvent(cl->staging[i].event);
        free(cl->staging[i].host);
    }
    nncl__cl_programs_release(ctx);
    nncl__cl_choices_free(&cl->gemm_choices);
    nncl__cl_choices_free(&cl->conv_choices);
    nncl__cl_free(ctx, &cl->gemm_temp, cl->gemm_temp_bytes);
    nncl__cl_free(ctx, &cl->partials, NNCL_CL_PARTIALS * sizeof(float));
    for (int i = 0; i < NNCL_CL_SCRATCH_SLOTS; i++) nncl__cl_free(ctx, &cl->scratch[i], cl->scratch_bytes[i]);
    if (cl->queue) clReleaseCommandQueue(cl->queue);
    if (cl->context) clReleaseContext(cl->context);
    free(cl);
    ctx->impl = NULL;
}

static const nncl_backend_ops cl_ops = {
    .name = "opencl",
    .destroy = cl_destroy,
    .buffer_alloc = cl_buffer_alloc,
    .buffer_release = cl_buffer_release,
    .write = cl_write,
    .upload = cl_upload,
    .read = cl_read,
    .copy = cl_copy,
    .finish = cl_finish,
    .flush = cl_flush,
    .fill = nncl__cl_fill,
    .scale = nncl__cl_scale,
    .axpy = nncl__cl_axpy,
    .sum = nncl__cl_sum,
    .gemm = nncl__cl_gemm,
    .gemm_prepare = nncl__cl_gemm_prepare,
    .add = nncl__cl_add,
    .bias_add = nncl__cl_bias_add,
    .bias_backward = nncl__cl_bias_backward,
    .conv2d_forward = nncl__cl_conv2d_forward,
    .conv2d_prepare = nncl__cl_conv2d_prepare,
    .conv2d_backward_data = nncl__cl_conv2d_backward_data,
    .conv2d_backward_params = nncl__cl_conv2d_backward_params,
    .pool2d_forward = nncl__cl_pool2d_forward,
    .pool2d_backward = nncl__cl_pool2d_backward,
    .activation_forward = nncl__cl_activation_forward,
    .activation_backward = nncl__cl_activation_backward,
    .softmax_forward = nncl__cl_softmax_forward,
    .softmax_backward = nncl__cl_softmax_backward,
    .dropout = nncl__cl_dropout,
    .batchnorm_forward_train = nncl__cl_batchnorm_forward_train,
    .batchnorm_forward_eval = nncl__cl_batchnorm_forward_eval,
    .batchnorm_backward = nncl__cl_batchnorm_backward,
    .batchnorm_invstd = nncl__cl_batchnorm_invstd,
    .layernorm_forward = nncl__cl_layernorm_forward,
    .layernorm_backward = nncl__cl_layernorm_backward,
    .loss_forward = nncl__cl_loss_forward,
    .loss_backward = nncl__cl_loss_backward,
    .loss_step = nncl__cl_loss_step,
    .norm2 = nncl__cl_norm2,
    .optimizer_step = nncl__cl_optimizer_step,
};

nncl_status nncl__cl_backend_init(nncl_context *ctx, const nncl_context_options *opt)
{
    nncl__cl *cl = calloc(1, sizeof *cl);
    if (cl == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "out of host memory");
    ctx->ops = &cl_ops;
    ctx->impl = cl;
    /* "gemm3": choices among three implementations; files of the two-way choices made before the
       tiled kernel existed ("gemm-...") are not read, so that their shapes are measured again. */
    nncl__cl_choices_init(&cl->gemm_choices, "gemm3", 5);
    nncl__cl_choices_init(&cl->conv_choices, "conv", 13);

    int pi = 0, di = 0;
    NNCL_TRY(nncl__cl_choose_device(ctx, opt, &cl->platform, &cl->device, &pi, &di));
    nncl_device_info info;
    NNCL_TRY(nncl__cl_describe_device(ctx, cl->platform, cl->device, pi, di, &info));
    cl->max_work_group_size = info.max_work_group_size;
    cl->compute_units = info.compute_units;
    NNCL_TRY(nncl__cl_cache_init(ctx, &info));
    snprintf(ctx->description, sizeof ctx->description, "OpenCL %d:%d %s (%s, %s, driver %s)", pi, di, info.name,
             info.platform_name, info.version, info.driver_version);

    /* NNCL_GEMM=clblast|nncl|tiled forces a GEMM implementation (nncl: kernels_cl/gemm.cl's register
       blocks; tiled: gemm_tiled.cl); measure times them all on every shape, on any device; auto (the
       default) is gemm.cl on CPU devices and a measurement elsewhere. */
    const char *policy = getenv("NNCL_GEMM");
    cl->gemm_policy = 2;
    if (policy == NULL || strcmp(policy, "auto") == 0) cl->gemm_policy = 0;
    else if (strcmp(policy, "measure") == 0) cl->gemm_policy = 1;
    else if (strcmp(policy, "clblast") == 0) cl->gemm_forced = NNCL_CL_GEMM_CLBLAST;
    else if (strcmp(policy, "nncl") == 0) cl->gemm_forced = NNCL_CL_GEMM_BLOCK;
    else if (strcmp(policy, "tiled") == 0) cl->gemm_forced = NNCL_CL_GEMM_TILED;
    else
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "NNCL_GEMM=\"%s\" is not auto, measure, clblast, nncl or tiled",
                          policy);
    if (cl->gemm_policy == 2 && cl->gemm_forced == NNCL_CL_GEMM_TILED && cl->max_work_group_size < NNCL_CL_TILED_ITEMS)
        return NNCL_ERROR(ctx, NNCL_ERR_UNSUPPORTED, "NNCL_GEMM=tiled: its work-groups of %d items exceed this "
                          "device's %zu", NNCL_CL_TILED_ITEMS, cl->max_work_group_size);
    /* NNCL_CONV=direct|im2col forces a convolution path; measure times both per geometry on every device;
       auto: direct on CPU devices and a measurement elsewhere. */
    policy = getenv("NNCL_CONV");
    cl->conv_policy = policy == NULL || strcmp(policy, "auto") == 0 ? 0 : strcmp(policy, "im2col") == 0 ? 1
                    : strcmp(policy, "direct") == 0 ? 2 : strcmp(policy, "measure") == 0 ? 3 : -1;
    if (cl->conv_policy < 0)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "NNCL_CONV=\"%s\" is not auto, measure, direct or im2col",
                          policy);
    cl_device_type type;
    cl_int type_err = clGetDeviceInfo(cl->device, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    if (type_err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, type_err, "clGetDeviceInfo(CL_DEVICE_TYPE)");
    cl->cpu_device = (type & CL_DEVICE_TYPE_CPU) != 0;
    /* NNCL_KERNELS=gpu|cpu: the kernel shapes of the other kind of device (tests, comparisons). */
    const char *shapes = getenv("NNCL_KERNELS");
    if (shapes != NULL && strcmp(shapes, "gpu") != 0 && strcmp(shapes, "cpu") != 0 && strcmp(shapes, "auto") != 0)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "NNCL_KERNELS=\"%s\" is not auto, cpu or gpu", shapes);
    cl->gpu_shapes = shapes != NULL && strcmp(shapes, "auto") != 0 ? strcmp(shapes, "gpu") == 0 : !cl->cpu_device;
    cl->ew = cl->gpu_shapes ? 1 : NNCL_CL_EW_CPU;
    /* NNCL_GRID_FOLD=N: grids fold at N work-items, and hold fewer than N work-groups in their second
       dimension, rather than NNCL_CL_FOLD (tests). */
    const char *fold = getenv("NNCL_GRID_FOLD");
    cl->fold = NNCL_CL_FOLD;
    if (fold != NULL) {
        char *end = NULL;
        unsigned long long v = strtoull(fold, &end, 10);
        if (fold[0] < '0' || fold[0] > '9' || *end != '\0' || v < 1 || v > NNCL_CL_FOLD)
            return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "NNCL_GRID_FOLD=\"%s\" is not a number of work-items "
                              "from 1 to %d", fold, NNCL_CL_FOLD);
        cl->fold = (size_t)v;
    }

    cl_int err;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)cl->platform, 0};
    cl->context = clCreateContext(props, 1, &cl->device, NULL, NULL, &err);
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clCreateContext(%s)", info.name);
    cl_command_queue_properties qprops = ctx->profiling ? CL_QUEUE_PROFILING_ENABLE : 0;
    cl->queue = clCreateCommandQueue(cl->context, cl->device, qprops, &err);
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clCreateCommandQueue(%s)", info.name);
    return NNCL_OK;
}
