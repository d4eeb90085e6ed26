/*
 * test_opencl.c - the OpenCL machinery itself: device listing, the program
 * cache, a deliberately broken kernel, launch errors, and profiling.
 */
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv */

#include "test_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "opencl/cl.h"
#include "opencl/cl_sources.h"

static nncl_context *ctx;

/* The context still runs kernels and CLBlast correctly. */
static void assert_context_still_works(void)
{
    const int64_t n = 33, one = 1;
    float x[33], s;
    for (int i = 0; i < 33; i++) x[i] = (float)i;
    nncl_tensor t, out;
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &n, &t));
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &one, &out));
    TEST_OK(ctx, nncl_tensor_write(ctx, &t, x, 33));
    TEST_OK(ctx, nncl_sum(ctx, &t, &out));
    TEST_OK(ctx, nncl_tensor_read(ctx, &out, &s, 1));
    assert_true(s == 528.0f);
    /* x . x as a 1x33 by 33x1 GEMM: sum of i^2 = 11440. */
    TEST_OK(ctx, nncl_gemm(ctx, NNCL_NO_TRANS, NNCL_TRANS, 1, 1, 33, 1.0f, &t, 33, &t, 33, 0.0f, &out, 1));
    TEST_OK(ctx, nncl_tensor_read(ctx, &out, &s, 1));
    assert_true(s == 11440.0f);
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &t));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &out));
}

static void test_device_list(void **state)
{
    (void)state;
    size_t count = 0;
    TEST_OK(NULL, nncl_device_list(NULL, 0, &count));
    assert_true(count >= 1);
    nncl_device_info *info = calloc(count, sizeof *info);
    size_t again = 0;
    TEST_OK(NULL, nncl_device_list(info, count, &again));
    assert_int_equal(again, count);
    for (size_t i = 0; i < count; i++) {
        assert_true(strlen(info[i].name) > 0);
        assert_true(strncmp(info[i].version, "OpenCL ", 7) == 0);
        assert_true(info[i].compute_units >= 1);
        assert_true(info[i].global_mem_bytes >= info[i].max_alloc_bytes);
        assert_true(info[i].max_work_group_size >= 1);
    }
    /* A short array gets the first entries and the full count. */
    TEST_OK(NULL, nncl_device_list(info, 0, &again));
    assert_int_equal(again, count);
    free(info);

    /* NNCL_DEVICE selects a device by index. */
    setenv("NNCL_DEVICE", "0:0", 1);
    nncl_context *c0;
    TEST_OK(NULL, nncl_context_create(NULL, &c0));
    char desc[640];
    TEST_OK(c0, nncl_context_describe(c0, desc, sizeof desc));
    assert_true(strncmp(desc, "OpenCL 0:0 ", 11) == 0);
    nncl_context_destroy(c0);
    unsetenv("NNCL_DEVICE");
}

static void test_program_cache(void **state)
{
    (void)state;
    const nncl__cl_kernel *k1, *k2;
    const nncl__cl *cl = nncl__cl_state(ctx);
    TEST_OK(ctx, nncl__cl_kernel_get(ctx, "axpy", &k1));
    TEST_OK(ctx, nncl__cl_kernel_get(ctx, "axpy", &k2));
    assert_ptr_equal(k1, k2); /* built once, then cached */
    assert_string_equal(k1->name, "axpy");
    /* The library builds without a single compiler warning. */
    size_t len = 0;
    assert_int_equal(clGetProgramBuildInfo(cl->library->program, cl->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len), 0);
    char *log = malloc(len + 1);
    assert_int_equal(clGetProgramBuildInfo(cl->library->program, cl->device, CL_PROGRAM_BUILD_LOG, len, log, NULL), 0);
    log[len] = '\0';
    if (strstr(log, "warning") != NULL) fail_msg("kernels_cl/ builds with warnings:\n%s", log);
    free(log);
    /* All of kernels_cl/ is one program: kernels of three files, and instantiations, add none. */
    const size_t programs = cl->n_programs;
    TEST_OK(ctx, nncl__cl_kernel_get(ctx, "gemm_block", &k2));
    TEST_OK(ctx, nncl__cl_kernel_get(ctx, "activation_backward_gelu", &k2));
    TEST_OK(ctx, nncl__cl_kernel_get(ctx, "conv_weight_grad_few_11", &k2));
    assert_int_equal(cl->n_programs, programs);
    /* Other defines are another program. */
    const nncl__cl_program *p1, *p2;
    const char *src = "__kernel void k(__global float *x) { x[0] = NNCL_TEST_VALUE; }\n";
    TEST_OK(ctx, nncl__cl_program_build(ctx, "defines", src, "-DNNCL_TEST_VALUE=1", &p1));
    TEST_OK(ctx, nncl__cl_program_build(ctx, "defines", src, "-DNNCL_TEST_VALUE=2", &p2));
    assert_ptr_not_equal(p1, p2);
    TEST_OK(ctx, nncl__cl_program_build(ctx, "defines", src, "-DNNCL_TEST_VALUE=1", &p2));
    assert_ptr_equal(p1, p2);
    /* A kernel that does not exist is a clear error. */
    assert_int_equal(nncl__cl_kernel_get(ctx, "no_such_kernel", &k2), NNCL_ERR_BUILD);
    assert_non_null(strstr(nncl_context_last_error(ctx), "no kernel named no_such_kernel"));
    assert_int_equal(nncl__cl_kernel_get(ctx, "conv_weight_grad_few_12", &k2), NNCL_ERR_BUILD); /* past the rows */
    assert_context_still_works();
}

static void test_broken_kernel_reports_build_log(void **state)
{
    (void)state;
    const char *broken = "__kernel void broken(__global float *x)\n"
                         "{\n"
                         "    x[get_global_id(0)] = undeclared_identifier_nncl * 2.0f;\n"
                         "}\n";
    const nncl__cl_program *p = NULL;
    nncl_status st = nncl__cl_program_build(ctx, "broken", broken, "", &p);
    assert_int_equal(st, NNCL_ERR_BUILD);
    assert_int_equal(nncl_context_last_status(ctx), NNCL_ERR_BUILD);
    const char *msg = nncl_context_last_error(ctx);
    assert_non_null(strstr(msg, "clBuildProgram(broken"));
    assert_non_null(strstr(msg, "CL_BUILD_PROGRAM_FAILURE (-11)"));
    assert_non_null(strstr(msg, "build log:"));
    assert_non_null(strstr(msg, "undeclared_identifier_nncl")); /* the compiler's own words */
    /* Line 3 of broken.cl, not of the program (common.h comes first): through #line where the compiler
       honours it (PoCL), mapped back from "<kernel>:136:" where it does not (NVIDIA, driver 580). */
    assert_non_null(strstr(msg, "broken.cl:3:"));
    /* A failed build is not cached: the same name builds once the source is fixed. */
    const char *fixed = "__kernel void broken(__global float *x) { x[get_global_id(0)] = 2.0f; }\n";
    TEST_OK(ctx, nncl__cl_program_build(ctx, "broken", fixed, "", &p));
    assert_context_still_works();
}

/* A log that numbers the program's lines from the top, as NVIDIA's compiler does, mapped back to files. */
static void test_build_log_mapped_to_files(void **state)
{
    (void)state;
    const char *parts[] = {"a\nb\n", "\n#line 1 \"x.cl\"\n", "p\nq\nr"};
    char *m = nncl__cl_map_build_log("<kernel>:6:2: error: q\n<kernel>:2:1: note\n<kernel>:99:1: past the end\n"
                                     "<kernel>:x <kernel>:7", parts, 3);
    assert_non_null(m);
    assert_string_equal(m, "x.cl:2:2: error: q\ncommon.h:2:1: note\n<kernel>:99:1: past the end\n<kernel>:x <kernel>:7");
    free(m);
    /* The real layout: common.h, the directive (its line and an empty one before it), then the file. */
    const nncl__kernel_source *common = NULL;
    for (size_t i = 0; i < nncl__kernel_source_count; i++)
        if (strcmp(nncl__kernel_sources[i].name, "common") == 0) common = &nncl__kernel_sources[i];
    assert_non_null(common);
    long lines = 0;
    for (const char *c = common->text; *c; c++) lines += *c == '\n';
    const char *real[] = {common->text, "\n#line 1 \"broken.cl\"\n", "k\n{\n  x;\n}\n"};
    char log[64];
    snprintf(log, sizeof log, "<kernel>:%ld:27: error", lines + 2 + 3);
    m = nncl__cl_map_build_log(log, real, 3);
    assert_non_null(m);
    assert_string_equal(m, "broken.cl:3:27: error");
    free(m);
}

static void test_launch_error_names_kernel(void **state)
{
    (void)state;
    const nncl__cl_kernel *k;
    TEST_OK(ctx, nncl__cl_kernel_get(ctx, "fill", &k));
    const int64_t n = 8;
    nncl_tensor t;
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &n, &t));
    /* A work-group larger than any device allows. */
    size_t global = 8, local = nncl__cl_state(ctx)->max_work_group_size * 2;
    nncl__cl_args a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg_view(&a, t.buf, t.offset);
    nncl__cl_arg_u64(&a, 8);
    nncl__cl_arg_f32(&a, 1.0f);
    assert_int_equal(nncl__cl_launch(&a, 1, &global, &local), NNCL_ERR_OPENCL);
    const char *msg = nncl_context_last_error(ctx);
    assert_non_null(strstr(msg, "clEnqueueNDRangeKernel(fill) failed: CL_INVALID_"));
    assert_non_null(strstr(msg, "src/opencl/cl_launch.c:"));
    /* A wrong argument is reported with the kernel's name and the index. */
    a = nncl__cl_args_begin(ctx, k);
    nncl__cl_arg(&a, 3, "abc"); /* a 3-byte value for a pointer argument */
    assert_int_equal(nncl__cl_launch(&a, 1, &global, &global), NNCL_ERR_OPENCL);
    assert_non_null(strstr(nncl_context_last_error(ctx), "clSetKernelArg(fill, 0)"));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &t));
    assert_context_still_works();
}

static void test_launch_rounds_global_size(void **state)
{
    (void)state;
    /* 65 elements with work-groups of 64: the launch covers 128 work-items and
       the kernel's guard keeps the canaries after element 65 intact. */
    const int64_t n = 65;
    test_guarded g;
    test_guarded_create(ctx, &g, 1, &n, NULL);
    TEST_OK(ctx, nncl_tensor_fill(ctx, &g.view, 3.0f));
    float out[65];
    test_guarded_read(ctx, &g, out, "fill of 65");
    for (int i = 0; i < 65; i++) assert_true(out[i] == 3.0f);
    test_guarded_destroy(ctx, &g);
}

/* A one-dimensional grid of NNCL_CL_FOLD work-items or more runs folded into two dimensions (NNCL_GID):
   a fill that needs 65,536 work-items of 32 elements each, plus one element, reaches every element and
   no canary past the end. (The parity_folded tests fold every kernel at a few work-groups.) */
static void test_launch_folds_wide_grids(void **state)
{
    (void)state;
    const int64_t n = (int64_t)NNCL_CL_FOLD * NNCL_CL_EW_CPU + NNCL_CL_EW_CPU + 1;
    test_guarded g;
    test_guarded_create(ctx, &g, 1, &n, NULL);
    TEST_OK(ctx, nncl_tensor_fill(ctx, &g.view, 5.0f));
    float *out = malloc((size_t)n * sizeof *out);
    assert_non_null(out);
    test_guarded_read(ctx, &g, out, "fill of a folded grid");
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += out[i] != 5.0f;
    assert_int_equal(wrong, 0);
    free(out);
    test_guarded_destroy(ctx, &g);
}

/* Builds program "cached" of src with options in a new context, which then saves it as destroying it would:
   how many builds loaded a binary and how many binaries were stored. The kernel must run. */
static void cache_build(const char *src, const char *options, uint64_t *hits, uint64_t *stores)
{
    nncl_context *c;
    TEST_OK(NULL, nncl_context_create(NULL, &c));
    const nncl__cl_program *p;
    TEST_OK(c, nncl__cl_program_build(c, "cached", src, options, &p));
    assert_int_equal(p->n_kernels, 1);
    const nncl__cl_kernel *k = &p->kernels[0];
    const int64_t n = 64;
    nncl_tensor t;
    TEST_OK(c, nncl_tensor_create(c, 1, &n, &t));
    nncl__cl_args a = nncl__cl_args_begin(c, k);
    nncl__cl_arg_mem(&a, (cl_mem)t.buf->mem);
    TEST_OK(c, nncl__cl_launch_1d(&a, (size_t)n));
    float v[64];
    TEST_OK(c, nncl_tensor_read(c, &t, v, 64));
    for (int i = 0; i < 64; i++) assert_true(v[i] == 1.0f);
    TEST_OK(c, nncl_tensor_destroy(c, &t));
    nncl__cl_cache_flush(c);
    *hits = nncl__cl_state(c)->cache_hits;
    *stores = nncl__cl_state(c)->cache_stores;
    nncl_context_destroy(c);
}

/* The path of the one file in dir whose name starts with prefix, other than `except`. */
static void cache_file_named(const char *dir, const char *prefix, char *path, size_t size, const char *except)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    path[0] = '\0';
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char candidate[512];
        snprintf(candidate, sizeof candidate, "%s/%s", dir, e->d_name);
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || (except && strcmp(candidate, except) == 0)) continue;
        assert_true(path[0] == '\0'); /* only one */
        snprintf(path, size, "%s", candidate);
    }
    closedir(d);
    assert_true(path[0] != '\0');
}

/* Programs are saved on disk and loaded by the next context; a file that is not its binary is ignored. */
static void test_binary_cache(void **state)
{
    (void)state;
    char dir[] = "/tmp/nncl_cache_XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("NNCL_CACHE_DIR", dir, 1);
    /* By default binaries are stored everywhere but on PoCL, which caches its kernels itself. */
    char desc[640];
    TEST_OK(ctx, nncl_context_describe(ctx, desc, sizeof desc));
    const int pocl = strstr(desc, "Portable Computing Language") != NULL;
    if (getenv("NNCL_CACHE_BINARIES") == NULL) assert_int_equal(nncl__cl_state(ctx)->cache_store, !pocl);
    setenv("NNCL_CACHE_BINARIES", "1", 1);
    const char *src = "__kernel void cached(__global float *x) { x[get_global_id(0)] = 1.0f; }\n";
    uint64_t hits, stores;
    cache_build(src, "", &hits, &stores); /* first: built from source and stored */
    assert_int_equal(hits, 0);
    assert_int_equal(stores, 1);
    cache_build(src, "", &hits, &stores); /* second: loaded */
    assert_int_equal(hits, 1);
    assert_int_equal(stores, 0);
    /* A file that is not the whole binary of its key is a miss, then replaced: junk, a truncated binary (PoCL
       crashed on one), a flipped byte, a valid binary of other options copied under this name (it would run
       kernels built for another NNCL_EW), a FIFO (opening it would block). */
    char file[512], other[512];
    cache_file_named(dir, "cached-", file, sizeof file, NULL);
    cache_build(src, "-DOTHER=1", &hits, &stores);
    cache_file_named(dir, "cached-", other, sizeof other, file);
    for (int how = 0; how < 5; how++) {
        size_t len;
        unsigned char *good = test_read_file(file, &len);
        assert_non_null(good);
        unlink(file);
        if (how == 0) test_write_file(file, "not a binary", 12);
        if (how == 1) test_write_file(file, good, len / 2);
        if (how == 2) {
            good[len - 100] ^= 0x40;
            test_write_file(file, good, len);
        }
        if (how == 3) {
            size_t other_len;
            unsigned char *copy = test_read_file(other, &other_len);
            assert_non_null(copy);
            test_write_file(file, copy, other_len);
            free(copy);
        }
        if (how == 4) assert_int_equal(mkfifo(file, 0600), 0);
        free(good);
        cache_build(src, "", &hits, &stores);
        if (hits != 0 || stores != 1) fail_msg("corruption %d: %llu hits, %llu stores", how,
                                               (unsigned long long)hits, (unsigned long long)stores);
    }
    /* NNCL_CACHE_BINARIES=0: loaded when there, never stored. */
    setenv("NNCL_CACHE_BINARIES", "0", 1);
    for (int run = 0; run < 2; run++) {
        nncl_context *c;
        TEST_OK(NULL, nncl_context_create(NULL, &c));
        const nncl__cl_program *p;
        TEST_OK(c, nncl__cl_program_build(c, "cached", src, run == 0 ? "" : "-DNEW=1", &p));
        nncl_context_destroy(c); /* flushes */
        TEST_OK(NULL, nncl_context_create(NULL, &c));
        TEST_OK(c, nncl__cl_program_build(c, "cached", src, run == 0 ? "" : "-DNEW=1", &p));
        assert_int_equal(nncl__cl_state(c)->cache_hits, run == 0); /* the file of the runs above; no new one */
        nncl__cl_cache_flush(c);
        assert_int_equal(nncl__cl_state(c)->cache_stores, 0);
        nncl_context_destroy(c);
    }
    unsetenv("NNCL_CACHE_BINARIES");
    /* The per-shape GEMM choice is measured once per device and driver, then read back (NNCL_GEMM=measure:
       by default CPU devices measure nothing, checked below). */
    setenv("NNCL_GEMM", "measure", 1);
    uint64_t measured[3];
    for (int run = 0; run < 3; run++) {
        if (run == 2) unsetenv("NNCL_GEMM");
        nncl_context *c;
        TEST_OK(NULL, nncl_context_create(NULL, &c));
        const int64_t n6 = 6;
        nncl_tensor t;
        TEST_OK(c, nncl_tensor_create(c, 1, &n6, &t));
        TEST_OK(c, nncl_tensor_fill(c, &t, 1.0f));
        const int64_t three = 3, one = 1;
        nncl_tensor a, out;
        TEST_OK(c, nncl_tensor_view(c, &t, 0, 1, &three, &a));
        TEST_OK(c, nncl_tensor_view(c, &t, 5, 1, &one, &out));
        TEST_OK(c, nncl_gemm(c, NNCL_NO_TRANS, NNCL_TRANS, 1, 1, 3, 1.0f, &a, 3, &a, 3, 0.0f, &out, 1));
        measured[run] = nncl__cl_state(c)->gemm_choices.measured;
        assert_null(nncl__cl_state(c)->scratch[4]); /* the measurement's copy of C is not kept */
        assert_int_equal(nncl__cl_state(c)->scratch_bytes[4], 0);
        TEST_OK(c, nncl_tensor_destroy(c, &t));
        nncl_context_destroy(c);
    }
    assert_int_equal(measured[0], 1);
    assert_int_equal(measured[1], 0);
    assert_int_equal(measured[2], 0);
    setenv("NNCL_CACHE_DIR", "off", 1);
    nncl_context *c;
    TEST_OK(NULL, nncl_context_create(NULL, &c));
    const nncl__cl_program *p;
    TEST_OK(c, nncl__cl_program_build(c, "cached", src, "-DOTHER=1", &p));
    assert_int_equal(nncl__cl_state(c)->cache_stores, 0);
    nncl_context_destroy(c);
    assert_int_equal(test_remove_dir(dir), 0);
}

/* The environment the cache tests change, saved by env_save and put back by env_restore (also on failure). */
static const char *const ENV_NAMES[] = {"NNCL_CACHE_DIR", "NNCL_GEMM", "NNCL_CONV", "NNCL_CACHE_BINARIES",
                                        "NNCL_KERNELS", "NNCL_GRID_FOLD"};
#define N_ENV ((int)(sizeof ENV_NAMES / sizeof ENV_NAMES[0]))
static char env_saved[N_ENV][512];
static int env_had[N_ENV];

static int env_save(void **state)
{
    (void)state;
    for (int i = 0; i < N_ENV; i++) {
        const char *v = getenv(ENV_NAMES[i]);
        env_had[i] = v != NULL;
        snprintf(env_saved[i], sizeof env_saved[i], "%s", v ? v : "");
    }
    return 0;
}

static int env_restore(void **state)
{
    (void)state;
    for (int i = 0; i < N_ENV; i++) {
        if (env_had[i]) setenv(ENV_NAMES[i], env_saved[i], 1);
        else unsetenv(ENV_NAMES[i]);
    }
    return 0;
}

/* An unknown value of a policy variable is refused when the context is created, with its name and value. */
static void test_bad_policy_values(void **state)
{
    (void)state;
    const char *const vars[] = {"NNCL_GEMM", "NNCL_CONV", "NNCL_KERNELS", "NNCL_GRID_FOLD", "NNCL_CACHE_BINARIES"};
    for (int i = 0; i < 5; i++) {
        setenv(vars[i], "fastest", 1);
        nncl_context *c = NULL;
        assert_int_equal(nncl_context_create(NULL, &c), NNCL_ERR_INVALID_ARG);
        assert_null(c);
        const char *msg = nncl_context_last_error(NULL);
        if (strstr(msg, vars[i]) == NULL || strstr(msg, "fastest") == NULL) fail_msg("%s: \"%s\"", vars[i], msg);
        unsetenv(vars[i]);
    }
    /* Numbers with what strtoull would skip, and a cache folder longer than nncl takes (it used to be cut). */
    const char *const bad[][2] = {{"NNCL_GRID_FOLD", " 5"}, {"NNCL_GRID_FOLD", "+5"}, {"NNCL_CACHE_DIR", NULL}};
    char long_dir[700];
    memset(long_dir, 'd', sizeof long_dir - 1);
    long_dir[0] = '/';
    long_dir[sizeof long_dir - 1] = '\0';
    for (int i = 0; i < 3; i++) {
        setenv(bad[i][0], bad[i][1] ? bad[i][1] : long_dir, 1);
        nncl_context *c = NULL;
        assert_int_equal(nncl_context_create(NULL, &c), NNCL_ERR_INVALID_ARG);
        const char *msg = nncl_context_last_error(NULL);
        if (strstr(msg, bad[i][0]) == NULL) fail_msg("%s: \"%s\"", bad[i][0], msg);
        unsetenv(bad[i][0]);
    }
    nncl_context *c = NULL;
    TEST_OK(NULL, nncl_context_create(NULL, &c)); /* and valid values still make a context */
    nncl_context_destroy(c);
}

/*
 * Planning a network makes the backend's per-shape choices: under
 * NNCL_GEMM=measure and NNCL_CONV=measure it measures every GEMM shape and
 * convolution geometry of the network's steps, and a step then measures
 * nothing. A second process (context) reads every choice back from the cache
 * folder, which the first created; a convolution's choice serves every batch
 * size. By default a CPU device measures nothing at all.
 */
static void test_choices_made_at_plan(void **state)
{
    (void)state;
    char dir[] = "/tmp/nncl_choices_XXXXXX", sub[64];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/not-yet", dir); /* the cache folder does not exist yet */
    setenv("NNCL_CACHE_DIR", sub, 1);
    const char *text = "input 1 8 8\nconv2d 4 kernel=3 padding=1\nrelu\nmaxpool2d 2\nconv2d 6 kernel=3 padding=1\n"
                       "relu\nflatten\nlinear 12\nrelu\nlinear 10\nloss cross_entropy\n";
    enum { B = 8 };
    float x[B * 64];
    int64_t y[B];
    for (int i = 0; i < B * 64; i++) x[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
    for (int i = 0; i < B; i++) y[i] = i % 10;
    for (int run = 0; run < 3; run++) { /* 0: measure; 1: measure, all known; 2: the default policy */
        if (run < 2) {
            setenv("NNCL_GEMM", "measure", 1);
            setenv("NNCL_CONV", "measure", 1);
        } else {
            unsetenv("NNCL_GEMM");
            unsetenv("NNCL_CONV");
        }
        nncl_context *c;
        TEST_OK(NULL, nncl_context_create(NULL, &c));
        const nncl__cl *cl = nncl__cl_state(c);
        nncl_spec spec;
        TEST_OK(c, nncl_spec_parse(c, text, "choices.spec", &spec));
        TEST_OK(c, nncl_network_plan(spec.net, spec.ndim, spec.shape, B));
        const uint64_t gemms = cl->gemm_choices.measured, convs = cl->conv_choices.measured;
        if (run == 0) {
            assert_int_equal(convs, 2); /* both convolutions */
            assert_true(gemms >= 6);    /* both linear layers' three GEMMs, and the convolutions' im2col GEMMs */
        } else if (run == 1 || cl->cpu_device) {
            assert_int_equal(convs, 0);
            assert_int_equal(gemms, 0);
        }
        /* A step measures nothing more. */
        TEST_OK(c, nncl_network_init(spec.net, 1));
        nncl_optimizer_options o = nncl_optimizer_options_default(NNCL_OPT_SGD);
        TEST_OK(c, nncl_network_set_optimizer(spec.net, &o));
        TEST_OK(c, nncl_network_set_batch(spec.net, x, y, NULL, B));
        TEST_OK(c, nncl_network_train_step(spec.net));
        float loss;
        TEST_OK(c, nncl_network_metrics(spec.net, &loss, NULL));
        assert_true(loss > 1.0f && loss < 4.0f);
        assert_int_equal(cl->gemm_choices.measured, gemms);
        assert_int_equal(cl->conv_choices.measured, convs);
        nncl_network_destroy(spec.net);
        if (run == 1) { /* the same network for batches of 3: new GEMM shapes, the same convolution choices */
            TEST_OK(c, nncl_spec_parse(c, text, "choices.spec", &spec));
            TEST_OK(c, nncl_network_plan(spec.net, spec.ndim, spec.shape, 3));
            assert_true(cl->gemm_choices.measured > gemms);
            assert_int_equal(cl->conv_choices.measured, 0);
            nncl_network_destroy(spec.net);
        }
        nncl_context_destroy(c);
    }
    /* Convolutions remembered as im2col: their GEMMs' shapes change with the batch, so a plan for another
       batch makes those choices too, and its first step measures nothing (and waits for nothing). */
    DIR *d = opendir(sub);
    assert_non_null(d);
    int rewritten = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, "conv-", 5) != 0) continue;
        char path[512], line[512], out[8192] = "";
        snprintf(path, sizeof path, "%s/%s", sub, e->d_name);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        while (fgets(line, sizeof line, f) != NULL) {
            char *last = strrchr(line, ' '); /* the 13 key fields, then the choice: 0 im2col, 1 direct */
            assert_non_null(last);
            strcpy(last, " 0\n");
            strncat(out, line, sizeof out - strlen(out) - 1);
        }
        fclose(f);
        f = fopen(path, "w");
        fputs(out, f);
        fclose(f);
        rewritten++;
    }
    closedir(d);
    assert_int_equal(rewritten, 1);
    setenv("NNCL_GEMM", "measure", 1);
    setenv("NNCL_CONV", "measure", 1);
    nncl_context *c;
    TEST_OK(NULL, nncl_context_create(NULL, &c));
    const nncl__cl *cl = nncl__cl_state(c);
    nncl_spec spec;
    TEST_OK(c, nncl_spec_parse(c, text, "choices.spec", &spec));
    TEST_OK(c, nncl_network_plan(spec.net, spec.ndim, spec.shape, 5));
    const uint64_t gemms = cl->gemm_choices.measured;
    assert_int_equal(cl->conv_choices.measured, 0);
    assert_true(gemms >= 6); /* batch 5: the linear layers' GEMMs and both convolutions' im2col GEMMs */
    TEST_OK(c, nncl_network_init(spec.net, 1));
    nncl_optimizer_options o = nncl_optimizer_options_default(NNCL_OPT_SGD);
    TEST_OK(c, nncl_network_set_optimizer(spec.net, &o));
    TEST_OK(c, nncl_network_set_batch(spec.net, x, y, NULL, 5));
    nncl_stats before, after;
    TEST_OK(c, nncl_context_stats(c, &before));
    TEST_OK(c, nncl_network_train_step(spec.net));
    TEST_OK(c, nncl_context_stats(c, &after));
    assert_int_equal(cl->gemm_choices.measured, gemms);
    assert_int_equal(after.host_waits, before.host_waits);
    nncl_network_destroy(spec.net);
    nncl_context_destroy(c);
    assert_int_equal(test_remove_dir(sub), 0);
    assert_int_equal(test_remove_dir(dir), 0);
}

static void test_profiling(void **state)
{
    (void)state;
    nncl_context_options opt = nncl_context_options_default();
    opt.profiling = 1;
    nncl_context *p;
    TEST_OK(NULL, nncl_context_create(&opt, &p));
    const int64_t n = 4096;
    nncl_tensor t;
    TEST_OK(p, nncl_tensor_create(p, 1, &n, &t));
    for (int i = 0; i < 3; i++) TEST_OK(p, nncl_tensor_fill(p, &t, 1.0f));
    TEST_OK(p, nncl_scale(p, 2.0f, &t));
    nncl_profile_entry e[8];
    size_t count = 0;
    TEST_OK(p, nncl_context_profile(p, e, 8, &count));
    assert_int_equal(count, 2);
    assert_string_equal(e[0].kernel, "fill");
    assert_int_equal(e[0].launches, 3);
    assert_string_equal(e[1].kernel, "scale");
    assert_int_equal(e[1].launches, 1);
    TEST_OK(p, nncl_context_reset_stats(p));
    TEST_OK(p, nncl_context_profile(p, e, 8, &count));
    assert_int_equal(count, 0);
    TEST_OK(p, nncl_tensor_destroy(p, &t));
    nncl_context_destroy(p);
}

int main(void)
{
    ctx = test_context("opencl");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_list),
        cmocka_unit_test(test_program_cache),
        cmocka_unit_test(test_broken_kernel_reports_build_log),
        cmocka_unit_test(test_build_log_mapped_to_files),
        cmocka_unit_test(test_launch_error_names_kernel),
        cmocka_unit_test(test_launch_rounds_global_size),
        cmocka_unit_test(test_launch_folds_wide_grids),
        cmocka_unit_test(test_profiling),
        cmocka_unit_test_setup_teardown(test_binary_cache, env_save, env_restore),
        cmocka_unit_test_setup_teardown(test_choices_made_at_plan, env_save, env_restore),
        cmocka_unit_test_setup_teardown(test_bad_policy_values, env_save, env_restore),
    };
    int failed = cmocka_run_group_tests_name("opencl", tests, NULL, NULL);
    nncl_context_destroy(ctx);
    return failed;
}
