/*
 * cl_program.c - building the programs of the embedded kernels_cl/ sources,
 * and caching them per context by (name, build options).
 *
 * Every kernels_cl/<file>.cl goes into one program, "nncl": common.h, then
 * each file after a #line directive, so that the compiler's messages point at
 * the right line of the right file. One program rather than one per file,
 * because a driver's fixed cost per program is most of what small programs
 * take to build: PoCL 3.1 spends about 150 ms on each, however small, and
 * builds the whole library in about the time of three files. It compiles a
 * kernel to machine code only when it is first launched, so the kernels a
 * network does not use cost little more than their parsing. So a kernel
 * that wants a value fixed at compile time is instantiated in its file for
 * each value it can take (activation_forward_relu, loss_step_mse) rather
 * than built per value with a -D option; where the copies are large, for a
 * few values that the others round up to (conv_weight_grad_few_<R>).
 *
 * Build options are always "-cl-std=CL1.2" and -DNNCL_EW for the device, plus
 * the caller's defines; never fast-math. Built programs are also kept on
 * disk (cl_binary_cache.c) for the next process.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opencl/cl.h"

#define BASE_OPTIONS "-cl-std=CL1.2"

/* The name of the library program, all of kernels_cl/. */
#define LIBRARY "nncl"

static const nncl__kernel_source *find_source(const char *name)
{
    for (size_t i = 0; i < nncl__kernel_source_count; i++)
        if (strcmp(nncl__kernel_sources[i].name, name) == 0) return &nncl__kernel_sources[i];
    return NULL;
}

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* On a failed build (its error already recorded) or as the context goes: the releases report nothing. */
static void program_free(nncl__cl_program *p)
{
    if (p == NULL) return;
    for (size_t i = 0; i < p->n_kernels; i++)
        if (p->kernels[i].kernel) clReleaseKernel(p->kernels[i].kernel);
    free(p->kernels);
    if (p->program) clReleaseProgram(p->program);
    free(p->cache_file);
    free(p->name);
    free(p->options);
    free(p);
}

void nncl__cl_cache_flush(nncl_context *ctx)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    for (size_t i = 0; i < cl->n_programs; i++) {
        nncl__cl_program *p = cl->programs[i];
        if (p->cache_file == NULL) continue;
        nncl__cl_cache_store(ctx, p->program, p->cache_file, p->cache_key);
        free(p->cache_file);
        p->cache_file = NULL;
    }
}

void nncl__cl_programs_release(nncl_context *ctx)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    nncl__cl_cache_flush(ctx);
    for (size_t i = 0; i < cl->n_programs; i++) program_free(cl->programs[i]);
    free(cl->programs);
    cl->programs = NULL;
    cl->library = NULL;
    cl->n_programs = cl->cap_programs = 0;
}

/*
 * The file and line of line `n` of the program (its parts concatenated), as
 * its #line directives number it: common.h comes first, without one. 0 when
 * the program has fewer lines.
 */
static int source_line(const char *const *parts, size_t n_parts, long n, char *file, size_t file_size, long *line)
{
    snprintf(file, file_size, "common.h");
    *line = 1;
    long at = 1; /* the program's line number of the current line */
    int line_start = 1;
    for (size_t i = 0; i < n_parts; i++) {
        for (const char *c = parts[i]; *c; c++) {
            if (line_start && at == n) return 1;
            if (line_start && strncmp(c, "#line ", 6) == 0) { /* #line K "F": the next line is line K of F */
                char *end;
                const long k = strtol(c + 6, &end, 10);
                const char *q = strchr(end, '"'), *q2 = q ? strchr(q + 1, '"') : NULL;
                if (end != c + 6 && q != NULL && q2 != NULL && memchr(end, '\n', (size_t)(q2 - end)) == NULL) {
                    snprintf(file, file_size, "%.*s", (int)(q2 - q - 1), q + 1);
                    *line = k - 1; /* the directive's own line end below makes it k */
                }
            }
            line_start = *c == '\n';
            if (line_start) at++, (*line)++;
        }
    }
    return line_start && at == n;
}

char *nncl__cl_map_build_log(const char *log, const char *const *parts, size_t n_parts)
{
    static const char tag[] = "<kernel>:";
    const size_t tag_len = sizeof tag - 1;
    size_t count = 0;
    for (const char *p = strstr(log, tag); p != NULL; p = strstr(p + tag_len, tag)) count++;
    char *out = malloc(strlen(log) + 160 * count + 1);
    if (out == NULL) return NULL;
    char *o = out;
    for (const char *p = log; *p;) {
        char *end;
        const long n = strncmp(p, tag, tag_len) == 0 ? strtol(p + tag_len, &end, 10) : 0;
        char file[128];
        long line;
        if (n > 0 && *end == ':' && source_line(parts, n_parts, n, file, sizeof file, &line)) {
            o += sprintf(o, "%s:%ld", file, line); /* at most 127 + 1 + 20 characters */
            p = end;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/*
 * Appends the build log of a failed build to the context's message. Compilers
 * that ignore #line (NVIDIA's names the program "<kernel>" and counts its
 * lines from the top) get their line numbers mapped back to the files.
 */
static void append_build_log(nncl_context *ctx, cl_program program, const char *const *parts, size_t n_parts)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    size_t len = 0;
    if (clGetProgramBuildInfo(program, cl->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) != CL_SUCCESS) {
        nncl__error_append(ctx, "\n(the build log could not be read)");
        return;
    }
    char *log = malloc(len + 1);
    if (log == NULL) return;
    if (clGetProgramBuildInfo(program, cl->device, CL_PROGRAM_BUILD_LOG, len, log, NULL) == CL_SUCCESS) {
        log[len] = '\0';
        char *mapped = nncl__cl_map_build_log(log, parts, n_parts);
        nncl__error_append(ctx, "\nbuild log:\n%s", mapped != NULL ? mapped : log);
        free(mapped);
    }
    free(log);
}

/* Creates every kernel of a built program once. */
static nncl_status create_kernels(nncl_context *ctx, nncl__cl_program *p)
{
    cl_uint n = 0;
    cl_int err = clCreateKernelsInProgram(p->program, 0, NULL, &n);
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clCreateKernelsInProgram(%s)", p->name);
    cl_kernel *ks = calloc(n ? n : 1, sizeof *ks);
    p->kernels = calloc(n ? n : 1, sizeof *p->kernels);
    if (ks == NULL || p->kernels == NULL) {
        free(ks);
        return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    err = clCreateKernelsInProgram(p->program, n, ks, NULL);
    if (err != CL_SUCCESS) {
        free(ks);
        return NNCL_CL_FAIL(ctx, err, "clCreateKernelsInProgram(%s)", p->name);
    }
    for (cl_uint i = 0; i < n; i++) { /* owned by p from here on */
        p->kernels[i].kernel = ks[i];
        p->n_kernels++;
    }
    free(ks);
    for (size_t i = 0; i < p->n_kernels; i++) {
        nncl__cl_kernel *k = &p->kernels[i];
        err = clGetKernelInfo(k->kernel, CL_KERNEL_FUNCTION_NAME, sizeof k->name, k->name, NULL);
        if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clGetKernelInfo(%s, CL_KERNEL_FUNCTION_NAME)", p->name);
        k->name[sizeof k->name - 1] = '\0';
    }
    return NNCL_OK;
}

static nncl__cl_program *cache_find(nncl__cl *cl, const char *name, const char *options)
{
    for (size_t i = 0; i < cl->n_programs; i++) {
        nncl__cl_program *p = cl->programs[i];
        if (strcmp(p->name, name) == 0 && strcmp(p->options, options) == 0) return p;
    }
    return NULL;
}

/*
 * Builds the program of the source texts parts[0 .. n_parts) under the name
 * `name` with `defines`, or returns the cached build.
 */
static nncl_status build(nncl_context *ctx, const char *name, const char *const *parts, size_t n_parts,
                         const char *defines, const nncl__cl_program **out)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    char options[1024];
    /* NNCL_EW: elements per work-item of the streaming kernels, fixed per device (see cl.h). */
    int len = snprintf(options, sizeof options, "%s -DNNCL_EW=%d%s%s%s%s", BASE_OPTIONS, cl->ew, defines[0] ? " " : "",
                       defines, cl->extra_defines[0] ? " " : "", cl->extra_defines);
    if (len < 0 || (size_t)len >= sizeof options)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "build options for %s are too long", name);
    nncl__cl_program *p = cache_find(cl, name, options);
    if (p != NULL) {
        *out = p;
        return NNCL_OK;
    }

    nncl_status st = NNCL_OK;
    p = calloc(1, sizeof *p);
    if (p == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "out of host memory");
    p->name = dup_string(name);
    p->options = dup_string(options);
    if (p->name == NULL || p->options == NULL) {
        st = NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "out of host memory");
        goto fail;
    }
    cl_int err = CL_SUCCESS;
    p->program = nncl__cl_cache_load(ctx, name, parts, n_parts, options);
    int from_source = p->program == NULL;
    if (from_source) {
        p->program = clCreateProgramWithSource(cl->context, (cl_uint)n_parts, (const char **)parts, NULL, &err);
        if (err != CL_SUCCESS) {
            p->program = NULL;
            st = NNCL_CL_FAIL(ctx, err, "clCreateProgramWithSource(%s)", name);
            goto fail;
        }
        err = clBuildProgram(p->program, 1, &cl->device, options, NULL, NULL);
    }
    if (err != CL_SUCCESS) {
        if (err == CL_BUILD_PROGRAM_FAILURE || err == CL_INVALID_BUILD_OPTIONS) {
            st = NNCL_ERROR(ctx, NNCL_ERR_BUILD, "clBuildProgram(%s, \"%s\") failed: %s (%d)", name, options,
                            nncl__cl_error_name(err), (int)err);
            append_build_log(ctx, p->program, parts, n_parts);
        } else {
            st = NNCL_CL_FAIL(ctx, err, "clBuildProgram(%s, \"%s\")", name, options);
        }
        goto fail;
    }
    if (from_source) /* saved at release */
        p->cache_file = nncl__cl_cache_file(ctx, name, parts, n_parts, options, &p->cache_key);
    st = create_kernels(ctx, p);
    if (st != NNCL_OK) goto fail;

    nncl__cl_program **programs = nncl__grow(cl->programs, cl->n_programs, &cl->cap_programs, sizeof *programs, 16);
    if (programs == NULL) {
        st = NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "out of host memory");
        goto fail;
    }
    cl->programs = programs;
    cl->programs[cl->n_programs++] = p;
    *out = p;
    return NNCL_OK;

fail:
    program_free(p);
    return st;
}

/* The #line directive that starts file `name` (stored in line[size]). */
static const char *line_directive(char *line, size_t size, const char *name)
{
    snprintf(line, size, "\n#line 1 \"%s.cl\"\n", name);
    return line;
}

nncl_status nncl__cl_program_build(nncl_context *ctx, const char *name, const char *source,
                                   const char *defines, const nncl__cl_program **out)
{
    const nncl__kernel_source *common = find_source("common");
    if (common == NULL) return NNCL_ERROR(ctx, NNCL_ERR_BUILD, "kernels_cl/common.h is not embedded");
    char line[256];
    const char *parts[3] = {common->text, line_directive(line, sizeof line, name), source};
    return build(ctx, name, parts, 3, defines, out);
}

/* Builds (or finds) the library program. */
static nncl_status build_library(nncl_context *ctx, const nncl__cl_program **out)
{
    enum { MAX_FILES = 32 };
    const nncl__kernel_source *common = find_source("common");
    if (common == NULL) return NNCL_ERROR(ctx, NNCL_ERR_BUILD, "kernels_cl/common.h is not embedded");
    const char *parts[1 + 2 * MAX_FILES] = {common->text};
    char lines[MAX_FILES][64];
    size_t n_parts = 1, n_files = 0;
    for (size_t i = 0; i < nncl__kernel_source_count; i++) {
        const nncl__kernel_source *src = &nncl__kernel_sources[i];
        if (src == common) continue;
        if (n_files == MAX_FILES) return NNCL_ERROR(ctx, NNCL_ERR_BUILD, "more than %d kernel files", MAX_FILES);
        parts[n_parts++] = line_directive(lines[n_files++], sizeof lines[0], src->name);
        parts[n_parts++] = src->text;
    }
    return build(ctx, LIBRARY, parts, n_parts, "", out);
}

nncl_status nncl__cl_set_extra_defines(nncl_context *ctx, const char *defines)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    if (strlen(defines) >= sizeof cl->extra_defines)
        return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG, "extra defines \"%s\" are too long", defines);
    NNCL_TRY(ctx->ops->finish(ctx)); /* queued kernels may still use the programs */
    nncl__cl_programs_release(ctx);
    snprintf(cl->extra_defines, sizeof cl->extra_defines, "%s", defines);
    return NNCL_OK;
}

nncl_status nncl__cl_kernel_get(nncl_context *ctx, const char *kernel, const nncl__cl_kernel **out)
{
    nncl__cl *cl = nncl__cl_state(ctx);
    if (cl->library == NULL) NNCL_TRY(build_library(ctx, &cl->library)); /* once: every launch comes here */
    const nncl__cl_program *p = cl->library;
    for (size_t i = 0; i < p->n_kernels; i++) {
        if (strcmp(p->kernels[i].name, kernel) == 0) {
            *out = &p->kernels[i];
            return NNCL_OK;
        }
    }
    return NNCL_ERROR(ctx, NNCL_ERR_BUILD, "kernels_cl/ has no kernel named %s", kernel);
}

nncl_status nncl__cl_kernel_getf(nncl_context *ctx, const nncl__cl_kernel **out, const char *fmt, ...)
{
    char name[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof name)
        return NNCL_ERROR(ctx, NNCL_ERR_BUILD, "kernels_cl/ has no kernel named %s...", name);
    return nncl__cl_kernel_get(ctx, name, out);
}
