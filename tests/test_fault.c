/*
 * test_fault.c - OpenCL calls that fail, injected: the library returns the
 * status that fits, with a message naming the call and the error, releases
 * nothing twice, and the context keeps working.
 *
 * This executable defines the OpenCL entry points below itself, so the calls
 * of the nncl library linked into it land here first (the library's own
 * symbols resolve to the executable's) and go on to the driver's through
 * dlsym(RTLD_NEXT). arm(name, n, err) makes the n-th next call of that entry
 * point fail once with err: an allocation or an enqueue then does nothing; a
 * release releases and still reports err, as a driver may. Every released
 * buffer is remembered until the driver hands its handle out again, so a
 * second release of the same buffer is caught here rather than in the driver
 * (it used to happen: NNCL_CL_CHECK evaluated its release call twice).
 *
 * Cases, each on a fresh OpenCL context:
 *   - clCreateBuffer fails: nncl_tensor_create returns NNCL_ERR_OUT_OF_MEMORY;
 *   - clEnqueueReadBuffer fails: nncl_tensor_read returns NNCL_ERR_OPENCL,
 *     and the next read returns the tensor's data;
 *   - clReleaseMemObject fails while a tensor is destroyed, and while a
 *     network is destroyed: the message names the release, no buffer is
 *     released twice;
 *   - clCreateBuffer fails in the middle of nncl_network_plan: the plan is
 *     refused, and the next plan of the same network succeeds and trains;
 *   - clCreateBuffer fails at each allocation of a plan that measures its
 *     convolution's paths (NNCL_CONV=measure, a fresh cache folder): a plan
 *     that succeeds over an absorbed failure (the direct kernels' scratch)
 *     writes no convolution choice to the cache folder, where a later
 *     process would take it as measured (it used to record im2col there for
 *     good); the same plan without a failure writes its one choice;
 *   - clEnqueueNDRangeKernel fails at each launch of a training step (with
 *     clipping and momentum), in turn: the step returns NNCL_ERR_OPENCL,
 *     and the next steps train to a finite loss.
 * After each case, test_assert_context_works runs a GEMM on the context.
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include "test_util.h"

#include <CL/cl.h>
#include <dirent.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the injected failures ----------------------------------------------------------------- */

static struct {
    const char *name; /* the entry point to fail, or NULL */
    long countdown;   /* calls of it left before the one that fails */
    cl_int err;
} fault;

/* The n-th next call (1: the next one) of entry point `name` fails with err. */
static void arm(const char *name, long n, cl_int err)
{
    fault.name = name;
    fault.countdown = n;
    fault.err = err;
}

/* Whether this call of `name` is the one to fail (disarming the fault). */
static int fails(const char *name)
{
    if (fault.name == NULL || strcmp(fault.name, name) != 0 || --fault.countdown > 0) return 0;
    fault.name = NULL;
    return 1;
}

typedef void (*entry_point)(void);

/* The driver's entry point `name` (through the ICD loader), looked up once. */
static entry_point real(const char *name, entry_point *cache)
{
    if (*cache == NULL) {
        void *p = dlsym(RTLD_NEXT, name);
        memcpy(cache, &p, sizeof p); /* POSIX: dlsym's pointer holds the function's address */
    }
    if (*cache == NULL) {
        fprintf(stderr, "test_fault: no %s after this executable\n", name);
        abort();
    }
    return *cache;
}

#define MAX_RELEASED 4096
static cl_mem released[MAX_RELEASED]; /* buffers released since the driver last handed out their handle */
static size_t n_released;
static long double_releases;

static void forget_released(cl_mem m)
{
    for (size_t i = 0; i < n_released; i++)
        if (released[i] == m) released[i] = released[--n_released];
}

cl_mem clCreateBuffer(cl_context context, cl_mem_flags flags, size_t size, void *host_ptr, cl_int *errcode_ret)
{
    static entry_point fn;
    if (fails("clCreateBuffer")) {
        if (errcode_ret) *errcode_ret = fault.err;
        return NULL;
    }
    cl_mem m = ((cl_mem(*)(cl_context, cl_mem_flags, size_t, void *, cl_int *))real("clCreateBuffer", &fn))(
        context, flags, size, host_ptr, errcode_ret);
    if (m != NULL) forget_released(m);
    return m;
}

cl_int clReleaseMemObject(cl_mem memobj)
{
    static entry_point fn;
    for (size_t i = 0; i < n_released; i++)
        if (released[i] == memobj) {
            double_releases++;
            return CL_INVALID_MEM_OBJECT; /* never passed on: the driver would free it twice */
        }
    cl_int err = ((cl_int(*)(cl_mem))real("clReleaseMemObject", &fn))(memobj);
    /* Sub-buffers and retained buffers would outlive a release; nncl makes neither. */
    if (err == CL_SUCCESS && n_released < MAX_RELEASED) released[n_released++] = memobj;
    return fails("clReleaseMemObject") ? fault.err : err;
}

cl_int clEnqueueReadBuffer(cl_command_queue queue, cl_mem buffer, cl_bool blocking, size_t offset, size_t size,
                           void *ptr, cl_uint n_wait, const cl_event *wait, cl_event *event)
{
    static entry_point fn;
    if (fails("clEnqueueReadBuffer")) return fault.err;
    return ((cl_int(*)(cl_command_queue, cl_mem, cl_bool, size_t, size_t, void *, cl_uint, const cl_event *,
                       cl_event *))real("clEnqueueReadBuffer", &fn))(queue, buffer, blocking, offset, size, ptr,
                                                                      n_wait, wait, event);
}

cl_int clEnqueueNDRangeKernel(cl_command_queue queue, cl_kernel kernel, cl_uint dims, const size_t *offset,
                              const size_t *global, const size_t *local, cl_uint n_wait, const cl_event *wait,
                              cl_event *event)
{
    static entry_point fn;
    if (fails("clEnqueueNDRangeKernel")) return fault.err;
    return ((cl_int(*)(cl_command_queue, cl_kernel, cl_uint, const size_t *, const size_t *, const size_t *,
                       cl_uint, const cl_event *, cl_event *))real("clEnqueueNDRangeKernel", &fn))(
        queue, kernel, dims, offset, global, local, n_wait, wait, event);
}

/* ---- cases ----------------------------------------------------------------------------------- */

static nncl_context *ctx;

static void restore_env(void); /* what test_measurement_fails changed, put back even when it fails */

static int setup(void **state)
{
    (void)state;
    ctx = test_context("opencl");
    double_releases = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fault.name = NULL;
    restore_env();
    if (ctx == NULL) return 0; /* a case failed between contexts */
    test_assert_context_works(ctx);
    nncl_context_destroy(ctx);
    assert_int_equal(double_releases, 0);
    return 0;
}

/* Expects status `want` and a message holding each fragment (NULL ends the list). */
static void expect(nncl_status got, nncl_status want, const char *fragment, const char *fragment2)
{
    const char *msg = nncl_context_last_error(ctx);
    if (got != want) fail_msg("%s instead of %s: %s", nncl_status_name(got), nncl_status_name(want), msg);
    if (strstr(msg, fragment) == NULL || (fragment2 && strstr(msg, fragment2) == NULL))
        fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", msg, fragment, fragment2 ? fragment2 : "");
    assert_null(fault.name); /* the armed call did happen */
}

static void test_allocation_fails(void **state)
{
    (void)state;
    const int64_t n = 1000;
    nncl_tensor t;
    arm("clCreateBuffer", 1, CL_MEM_OBJECT_ALLOCATION_FAILURE);
    expect(nncl_tensor_create(ctx, 1, &n, &t), NNCL_ERR_OUT_OF_MEMORY, "clCreateBuffer",
           "CL_MEM_OBJECT_ALLOCATION_FAILURE");
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &n, &t));
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &t));
}

static void test_read_fails(void **state)
{
    (void)state;
    const int64_t n = 5;
    const float v[5] = {1, 2, 3, 4, 5};
    float got[5];
    nncl_tensor t;
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &n, &t));
    TEST_OK(ctx, nncl_tensor_write(ctx, &t, v, 5));
    arm("clEnqueueReadBuffer", 1, CL_OUT_OF_RESOURCES);
    expect(nncl_tensor_read(ctx, &t, got, 5), NNCL_ERR_OPENCL, "clEnqueueReadBuffer", "CL_OUT_OF_RESOURCES");
    TEST_OK(ctx, nncl_tensor_read(ctx, &t, got, 5));
    test_assert_bitwise(got, v, 5, "a read after a failed one");
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &t));
}

static void test_release_fails(void **state)
{
    (void)state;
    const int64_t n = 7;
    nncl_tensor t;
    TEST_OK(ctx, nncl_tensor_create(ctx, 1, &n, &t));
    arm("clReleaseMemObject", 1, CL_OUT_OF_RESOURCES);
    TEST_OK(ctx, nncl_tensor_destroy(ctx, &t)); /* recorded, but the tensor is gone either way */
    assert_null(t.buf);
    assert_null(fault.name);
    assert_non_null(strstr(nncl_context_last_error(ctx), "clReleaseMemObject(28 bytes) failed: CL_OUT_OF_RESOURCES"));
    assert_int_equal(double_releases, 0);
}

static const char *SPEC = "input 1 6 6\n"
                          "conv2d 3 kernel=3 padding=1\n"
                          "batchnorm2d\n"
                          "relu\n"
                          "maxpool2d 2\n"
                          "flatten\n"
                          "linear 4\n"
                          "loss cross_entropy\n";
enum { BATCH = 5, SAMPLE = 36 };

static nncl_network *make_net(int plan)
{
    nncl_spec spec;
    TEST_OK(ctx, nncl_spec_parse(ctx, SPEC, "fault.spec", &spec));
    if (plan) TEST_OK(ctx, nncl_network_plan(spec.net, spec.ndim, spec.shape, BATCH));
    return spec.net;
}

/* Sets an optimizer and a batch, then trains `steps` steps; returns the last loss. */
static float train(nncl_network *net, int steps)
{
    float x[BATCH * SAMPLE], loss = NAN;
    int64_t y[BATCH];
    test_rng r = test_rng_seed(3);
    test_rng_fill(&r, x, BATCH * SAMPLE, -1.0f, 1.0f);
    for (int i = 0; i < BATCH; i++) y[i] = test_rng_below(&r, 4);
    for (int s = 0; s < steps; s++) {
        TEST_OK(ctx, nncl_network_set_batch(net, x, y, NULL, BATCH));
        TEST_OK(ctx, nncl_network_train_step(net));
    }
    TEST_OK(ctx, nncl_network_metrics(net, &loss, NULL));
    return loss;
}

static void test_release_fails_in_network_destroy(void **state)
{
    (void)state;
    nncl_network *net = make_net(1);
    nncl_optimizer_options o = nncl_optimizer_options_default(NNCL_OPT_SGD);
    TEST_OK(ctx, nncl_network_set_optimizer(net, &o));
    assert_true(isfinite(train(net, 1)));
    arm("clReleaseMemObject", 3, CL_OUT_OF_HOST_MEMORY);
    nncl_network_destroy(net);
    assert_null(fault.name);
    assert_non_null(strstr(nncl_context_last_error(ctx), "clReleaseMemObject("));
    assert_int_equal(double_releases, 0);
}

static void test_plan_fails_then_succeeds(void **state)
{
    (void)state;
    for (long k = 1; k <= 12; k += 3) { /* the k-th of the plan's allocations fails */
        nncl_network *net = make_net(0);
        const int64_t sample[3] = {1, 6, 6};
        arm("clCreateBuffer", k, CL_MEM_OBJECT_ALLOCATION_FAILURE);
        const nncl_status st = nncl_network_plan(net, 3, sample, BATCH);
        /* On a device that measures its paths (a GPU), a failure inside a measurement is absorbed there. */
        if (st != NNCL_OK || fault.name != NULL) {
            expect(st, NNCL_ERR_OUT_OF_MEMORY, "clCreateBuffer", NULL);
            TEST_OK(ctx, nncl_network_plan(net, 3, sample, BATCH));
        }
        nncl_optimizer_options o = nncl_optimizer_options_default(NNCL_OPT_ADAM);
        TEST_OK(ctx, nncl_network_set_optimizer(net, &o));
        assert_true(isfinite(train(net, 2)));
        nncl_network_destroy(net);
    }
}

/* The lines of the convolution choice files ("conv-*.txt") in folder `dir` (0 when it does not exist). */
static long conv_choices_in(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    long lines = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strncmp(e->d_name, "conv-", 5) != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        for (int c; f != NULL && (c = fgetc(f)) != EOF;) lines += c == '\n';
        if (f) fclose(f);
    }
    closedir(d);
    return lines;
}

/* The environment test_measurement_fails changes, put back by restore_env (also from teardown). */
static const char *const ENV_NAMES[] = {"NNCL_CACHE_DIR", "NNCL_CONV", "NNCL_GEMM", "NNCL_CACHE_BINARIES"};
#define N_ENV (sizeof ENV_NAMES / sizeof ENV_NAMES[0])
static char *saved_env[N_ENV], measure_dir[600];
static int env_changed;

static void save_env(void)
{
    for (size_t i = 0; i < N_ENV; i++) {
        const char *v = getenv(ENV_NAMES[i]);
        saved_env[i] = v ? strdup(v) : NULL;
    }
    env_changed = 1;
}

static void restore_env(void)
{
    if (!env_changed) return;
    env_changed = 0;
    for (size_t i = 0; i < N_ENV; i++) {
        if (saved_env[i]) setenv(ENV_NAMES[i], saved_env[i], 1);
        else unsetenv(ENV_NAMES[i]);
        free(saved_env[i]);
        saved_env[i] = NULL;
    }
    test_remove_dir(measure_dir);
}

static void test_measurement_fails(void **state)
{
    (void)state;
    nncl_context_destroy(ctx); /* contexts of its own, measuring into a fresh folder */
    ctx = NULL;
    const char *cache = getenv("NNCL_CACHE_DIR"); /* CTest's, in the build tree */
    snprintf(measure_dir, sizeof measure_dir, "%.500s/measure-%ld", cache ? cache : "/tmp", (long)getpid());
    save_env();
    setenv("NNCL_CACHE_DIR", measure_dir, 1);
    setenv("NNCL_CONV", "measure", 1);
    setenv("NNCL_GEMM", "measure", 1); /* as on a GPU: an out-of-memory inside a GEMM measurement counts too */
    setenv("NNCL_CACHE_BINARIES", "0", 1);
    const int64_t sample[3] = {1, 6, 6};
    int absorbed = 0, refused = 0;
    for (long k = 1;; k++) {
        test_remove_dir(measure_dir);
        TEST_OK(NULL, nncl_context_create(NULL, &ctx));
        nncl_network *net = make_net(0);
        arm("clCreateBuffer", k, CL_MEM_OBJECT_ALLOCATION_FAILURE);
        nncl_status st = nncl_network_plan(net, 3, sample, BATCH);
        const int fired = fault.name == NULL;
        fault.name = NULL;
        nncl_network_destroy(net);
        nncl_context_destroy(ctx);
        ctx = NULL;
        if (!fired) break; /* past the plan's allocations */
        if (st != NNCL_OK) {
            refused++;
            continue;
        }
        absorbed++;
        if (conv_choices_in(measure_dir) != 0)
            fail_msg("allocation %ld failed inside a measurement, and its choice was saved", k);
    }
    assert_true(absorbed > 0); /* the case this test is for happened */
    /* The same plan without a failure saves its one choice. */
    test_remove_dir(measure_dir);
    TEST_OK(NULL, nncl_context_create(NULL, &ctx));
    nncl_network *net = make_net(0);
    TEST_OK(ctx, nncl_network_plan(net, 3, sample, BATCH));
    nncl_network_destroy(net);
    nncl_context_destroy(ctx);
    ctx = NULL;
    assert_int_equal(conv_choices_in(measure_dir), 1);
    restore_env();
    print_message("a plan's allocations failed in turn: %d refused the plan, %d absorbed by its measurement\n", refused,
                  absorbed);
    ctx = test_context("opencl");
}

static void test_launch_fails_in_a_step(void **state)
{
    (void)state;
    nncl_network *net = make_net(1);
    nncl_optimizer_options o = nncl_optimizer_options_default(NNCL_OPT_SGD);
    o.momentum = 0.9f;
    o.clip_norm = 1.0f;
    TEST_OK(ctx, nncl_network_set_optimizer(net, &o));
    assert_true(isfinite(train(net, 1)));
    nncl_stats before, after;
    TEST_OK(ctx, nncl_context_stats(ctx, &before));
    assert_true(isfinite(train(net, 1)));
    TEST_OK(ctx, nncl_context_stats(ctx, &after));
    const long launches = (long)(after.kernel_launches - before.kernel_launches);
    assert_true(launches > 10);
    float x[BATCH * SAMPLE] = {0};
    const int64_t y[BATCH] = {0, 1, 2, 3, 0};
    for (long k = 1; k <= launches; k++) { /* the step's k-th launch fails */
        arm("clEnqueueNDRangeKernel", k, CL_OUT_OF_RESOURCES);
        nncl_status st = nncl_network_set_batch(net, x, y, NULL, BATCH);
        if (st == NNCL_OK) st = nncl_network_train_step(net);
        if (st == NNCL_ERR_CLBLAST) /* a launch of CLBlast's own, on a device where it serves a GEMM */
            expect(st, NNCL_ERR_CLBLAST, "CLBlast", NULL);
        else
            expect(st, NNCL_ERR_OPENCL, "clEnqueueNDRangeKernel(", "CL_OUT_OF_RESOURCES");
        const float loss = train(net, 2);
        if (!isfinite(loss)) fail_msg("after launch %ld of %ld failed, the loss is %g", k, launches, (double)loss);
    }
    print_message("every one of a step's %ld launches failed once; each step after trained\n", launches);
    nncl_network_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_allocation_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_fails_in_network_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_fails_then_succeeds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_measurement_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_launch_fails_in_a_step, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
