/*
 * cl.h - shared pieces of the OpenCL backend: its state, the program cache,
 * the single launch path and the error helpers.
 *
 * Every OpenCL call's return code is checked; a failure is recorded with
 * NNCL_CL_FAIL, which names the call, the error (name and number) and
 * file:line. A release that fails where nothing returns a status (freeing a
 * buffer, dropping a program) is recorded all the same, so that the context's
 * last error shows it. Only nncl_context_destroy's releases and final
 * clFinish (no context left to report to) and releases on a path that has
 * already failed (whose error must stay the one reported) go unreported.
 * Kernels reach the device only through nncl__cl_launch.
 */
#ifndef NNCL_CL_H
#define NNCL_CL_H

#include <CL/cl.h>
#include <stdio.h>

#include "backend/backend.h"
#include "opencl/cl_sources.h"

/* Work-group size of one-dimensional element-wise kernels (NNCL_WG in kernels_cl/common.h). */
#define NNCL_CL_WG 64
/* Elements per work-item of streaming element-wise kernels on CPU devices (NNCL_EW in kernels_cl/common.h). */
#define NNCL_CL_EW_CPU 32

/*
 * One-dimensional grids of this many work-items or more are queued as rows of
 * a second dimension (NNCL_GID in kernels_cl/common.h): PoCL compiles a kernel
 * once for grids narrower than 65,535 in every dimension and once more for
 * wider ones. And no grid holds this many work-groups in its second dimension,
 * where a GPU's may stop at 65,535: a folded grid takes wider rows instead,
 * a taller grid of two or three dimensions runs in bands offset in it
 * (nncl__cl_launch). NNCL_GRID_FOLD=N sets N instead (the tests fold at a few
 * work-groups, so that every kernel runs folded, and band at one).
 */
#define NNCL_CL_FOLD 65535

/* Number of partial sums in the first pass of a reduction (kernels_cl/reduce.cl). */
#define NNCL_CL_PARTIALS 1024

/* Staging slots of nncl_tensor_upload, used in turn: two steps of (input, labels). */
#define NNCL_CL_STAGING 4

/* Number of scratch buffers an op may use at once (nncl__cl_scratch). */
/* Scratch slots: 0, 1 convolution; 2 batch norm; 3 GEMM; 4 GEMM measurements (released after each). */
#define NNCL_CL_SCRATCH_SLOTS 5

/* A kernel of a built program, with its function name for messages. */
typedef struct nncl__cl_kernel {
    cl_kernel kernel;
    char name[64];
} nncl__cl_kernel;

/* A built program, cached per context by (name, build options). */
typedef struct nncl__cl_program {
    char *name;    /* "nncl" for the library program */
    char *options; /* the complete build options, "-cl-std=CL1.2 -DX=1 ..." */
    cl_program program;
    nncl__cl_kernel *kernels; /* every kernel of the program, created once */
    size_t n_kernels;
    char *cache_file; /* built from source and not saved yet: the binary cache file to save it to */
    uint64_t cache_key; /* its key, which the file's header repeats */
} nncl__cl_program;

/*
 * Choices measured once per device and remembered (cl_choices.c): integer
 * keys and a value, also kept in the cache folder for later processes.
 */
#define NNCL_CL_CHOICE_KEYS 16
typedef struct nncl__cl_choices {
    const char *kind;  /* "gemm", "conv": the file's prefix */
    int n_keys;        /* integers per key, at most NNCL_CL_CHOICE_KEYS */
    int64_t (*rows)[NNCL_CL_CHOICE_KEYS + 1]; /* (n) the keys, then the value */
    size_t n, cap;
    int loaded;        /* the file of earlier processes has been read */
    uint64_t measured; /* choices measured (not read) by this context */
} nncl__cl_choices;

/* A profiled command whose event has not been read yet. */
typedef struct nncl__cl_pending_event {
    cl_event event;
    char kernel[48];
    char scope[48]; /* ctx->scope when it was queued */
} nncl__cl_pending_event;

/* The GEMM implementations (cl_gemm.c); the values are those remembered per shape. */
enum {
    NNCL_CL_GEMM_CLBLAST = 0, /* CLBlast */
    NNCL_CL_GEMM_BLOCK = 1,   /* kernels_cl/gemm.cl: register blocks, for CPU devices */
    NNCL_CL_GEMM_TILED = 2,   /* kernels_cl/gemm_tiled.cl: local-memory tiles and split k, for GPUs */
    NNCL_CL_GEMM_KINDS = 3
};

/* Work-items per group of gemm_tiled.cl (its reqd_work_group_size, 16 x 16): a device must allow as many. */
#define NNCL_CL_TILED_ITEMS 256

typedef struct nncl__cl {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue; /* in-order; the only queue of the context */
    size_t max_work_group_size;

    nncl__cl_program **programs; /* (n_programs) built so far */
    size_t n_programs, cap_programs;
    const nncl__cl_program *library; /* the library program (all of kernels_cl/), once built; in programs */

    cl_mem gemm_temp; /* CLBlast's temporary matrices, grown on demand */
    size_t gemm_temp_bytes;
    int cpu_device;   /* CL_DEVICE_TYPE_CPU: nncl's kernels win by far there (see cl_gemm.c, cl_conv2d.c) */
    int gpu_shapes;   /* kernels shaped for GPUs: one work-item per element where a CPU device runs
                         one per row, bias gradients over many work-groups. Not on CPU devices;
                         NNCL_KERNELS=gpu or cpu forces it (the tests run the GPU shapes on PoCL) */
    size_t fold;      /* NNCL_CL_FOLD, or NNCL_GRID_FOLD */
    int ew;           /* NNCL_EW: NNCL_CL_EW_CPU with CPU shapes; 1 with GPU shapes, where neighbouring
                         work-items must touch neighbouring elements to coalesce */
    int gemm_policy;  /* NNCL_GEMM: 0 auto, 1 measure per shape on any device, 2 forced to gemm_forced */
    int gemm_forced;  /* with gemm_policy 2: the implementation (NNCL_CL_GEMM_*) */
    uint32_t compute_units; /* of the device: how many work-groups keep it busy (split k, cl_gemm.c) */
    int conv_policy;  /* NNCL_CONV: 0 auto (direct on CPU devices, measured elsewhere); 1 im2col; 2 direct;
                         3 measure per geometry */
    int conv_force;   /* while a geometry is measured: 1 im2col, 2 direct; else 0 */
    nncl__cl_choices gemm_choices; /* per shape (m n k trans_a trans_b): an NNCL_CL_GEMM_* */
    nncl__cl_choices conv_choices; /* per geometry (n excluded): 1 direct, 0 im2col + GEMM */
    uint64_t measured_oom; /* candidates out of memory while measuring: a choice made meanwhile is not saved */
    cl_mem partials;  /* per-work-item partial sums of reductions */
    cl_mem scratch[NNCL_CL_SCRATCH_SLOTS]; /* working memory of ops, grown on demand */
    size_t scratch_bytes[NNCL_CL_SCRATCH_SLOTS];

    struct {
        void *host;       /* staging copy of an upload */
        size_t bytes;     /* its capacity */
        cl_event event;   /* the transfer that reads it, or NULL */
    } staging[NNCL_CL_STAGING];
    int next_staging;

    char extra_defines[128]; /* appended to every build (tests: NNCL_PERTURB) */
    char cache_dir[512];     /* the on-disk binary cache; "" when off */
    int cache_store;         /* store binaries at release (not on PoCL by default: cl_binary_cache.c) */
    char cache_device[320];  /* "device name|driver version", part of every cache key */
    uint64_t cache_hits, cache_stores;

    nncl__cl_pending_event *pending; /* (n_pending) profiled commands in flight */
    size_t n_pending, cap_pending;
} nncl__cl;

static inline nncl__cl *nncl__cl_state(const nncl_context *ctx)
{
    return (nncl__cl *)ctx->impl;
}

/* ---- errors ---------------------------------------------------------------- */

/* "CL_INVALID_VALUE" for -30, "CL_UNKNOWN_ERROR" for codes not in the spec. */
const char *nncl__cl_error_name(cl_int err);

/*
 * Records "<what> failed: NAME (err)" at file:line and returns the status that
 * fits the error: NNCL_ERR_OUT_OF_MEMORY for allocation failures,
 * NNCL_ERR_NO_DEVICE when there is no platform, NNCL_ERR_OPENCL otherwise.
 * CL_SUCCESS records nothing and returns NNCL_OK (NNCL_CL_CHECK).
 */
nncl_status nncl__cl_fail(nncl_context *ctx, cl_int err, const char *file, int line,
                          const char *what_fmt, ...) NNCL_PRINTF(5, 6);

#define NNCL_CL_FAIL(ctx, err, ...) nncl__cl_fail((ctx), (err), __FILE__, __LINE__, __VA_ARGS__)
/* The status of a release (or other call) whose failure is recorded but stops nothing: NNCL_OK on success.
   err is evaluated once: it is the release call itself. */
#define NNCL_CL_CHECK(ctx, err, ...) NNCL_CL_FAIL((ctx), (err), __VA_ARGS__)

/* ---- devices ------------------------------------------------------------------ */

/* Picks the context's device: the options, else NNCL_DEVICE, else the first GPU, else 0:0. */
nncl_status nncl__cl_choose_device(nncl_context *ctx, const nncl_context_options *opt,
                                   cl_platform_id *platform, cl_device_id *device, int *platform_index,
                                   int *device_index);

/* Fills *info for one device. */
nncl_status nncl__cl_describe_device(nncl_context *ctx, cl_platform_id p, cl_device_id d, int platform_index,
                                     int device_index, nncl_device_info *info);

/* ---- device memory owned by the backend ---------------------------------------- */

/* Allocates a backend-internal buffer and counts it like any other. */
nncl_status nncl__cl_alloc(nncl_context *ctx, size_t bytes, cl_mem *out);

/* Releases a buffer made by nncl__cl_alloc (NULL is ignored). */
void nncl__cl_free(nncl_context *ctx, cl_mem *mem, size_t bytes);

/*
 * OUT: *out = scratch buffer `slot` with at least `bytes`. An op may use it
 * freely until it returns: the queue is in order, so the next op's use of the
 * same slot starts after this op's kernels end. It grows (one allocation)
 * only when a larger size is asked for.
 */
nncl_status nncl__cl_scratch(nncl_context *ctx, int slot, size_t bytes, cl_mem *out);

/* Releases scratch buffer `slot` (a rare user's large one), once the commands queued on it have finished. */
void nncl__cl_scratch_release(nncl_context *ctx, int slot);

/* OUT: *out = the context's NNCL_CL_PARTIALS floats of partial sums, allocated at first use (reductions
   and the GPUs' bias gradient use it within one call each). */
nncl_status nncl__cl_partials(nncl_context *ctx, cl_mem *out);

/* ---- programs ---------------------------------------------------------------- */

/*
 * Returns kernel `kernel` of the library program, all of kernels_cl/ in one
 * program (cl_program.c says why), built on first use and then cached.
 */
nncl_status nncl__cl_kernel_get(nncl_context *ctx, const char *kernel, const nncl__cl_kernel **out);

/* nncl__cl_kernel_get of the kernel named by a format: an instantiation such as "loss_rows_%s". */
nncl_status nncl__cl_kernel_getf(nncl_context *ctx, const nncl__cl_kernel **out, const char *fmt, ...)
    NNCL_PRINTF(3, 4);

/*
 * The build log with each "<kernel>:N:" (a program line, as compilers that
 * ignore #line report it) rewritten "file:line:" under the program's #line
 * directives; parts are the program's sources, concatenated. malloc'd; NULL
 * when out of memory.
 */
char *nncl__cl_map_build_log(const char *log, const char *const *parts, size_t n_parts);

/*
 * Builds `source` (prefixed with kernels_cl/common.h) under the cache name
 * `name` with `defines`, or returns the cached build, as the library program
 * is built: for the tests, which feed it deliberately broken sources and
 * programs of their own. On a build failure returns NNCL_ERR_BUILD with the
 * compiler's log in the message; nothing is cached.
 */
nncl_status nncl__cl_program_build(nncl_context *ctx, const char *name, const char *source,
                                   const char *defines, const nncl__cl_program **out);

/*
 * Appends `defines` to the build options of every program built from now on
 * (and drops the programs built so far). For tests: "-DNNCL_PERTURB" makes
 * activation_forward add 1e-3 to its first output, which the parity test must
 * catch.
 */
nncl_status nncl__cl_set_extra_defines(nncl_context *ctx, const char *defines);

/* ---- choices measured per device (cl_choices.c) ---- */

/* Sets up an empty table (nothing is read before the first find). */
void nncl__cl_choices_init(nncl__cl_choices *c, const char *kind, int n_keys);
void nncl__cl_choices_free(nncl__cl_choices *c);

/* *value = the value chosen for key, or -1 when there is none yet (the cache folder's file is read first). */
nncl_status nncl__cl_choice_find(nncl_context *ctx, nncl__cl_choices *c, const int64_t *key, int *value);

/* Records a value just measured for key, in the table and, when lasting, in the cache folder's file: not a
   value that a passing failure decided (a candidate out of memory), which a later process measures again. */
nncl_status nncl__cl_choice_add(nncl_context *ctx, nncl__cl_choices *c, const int64_t *key, int value, int lasting);

/* Seconds on a monotonic clock, for measurements. */
double nncl__cl_now(void);

/* ---- the on-disk binary cache (cl_binary_cache.c) ---- */

/* Chooses the cache folder from NNCL_CACHE_DIR, XDG_CACHE_HOME or HOME, and whether to store binaries
   (NNCL_CACHE_BINARIES); refuses a value it cannot use. */
nncl_status nncl__cl_cache_init(nncl_context *ctx, const nncl_device_info *device);

/* A program built from its cached binary, or NULL (no cache, no file, or a file that does not build). */
cl_program nncl__cl_cache_load(nncl_context *ctx, const char *name, const char *const *parts, size_t n_parts,
                               const char *options);

/* The cache file a program built from these parts would be saved to (malloc'd), and its key, or NULL when
   the cache is off or does not store binaries. */
char *nncl__cl_cache_file(nncl_context *ctx, const char *name, const char *const *parts, size_t n_parts,
                          const char *options, uint64_t *key);

/* Opens "<cache folder>/<prefix>-<device key hash>.txt" (writing: creating the folder); NULL when the cache
   is off or the file cannot be opened. */
FILE *nncl__cl_cache_open(const nncl__cl *cl, const char *prefix, const char *mode);

/* Saves a built program's binary to path under key (failures only cost the next start its speed-up). */
void nncl__cl_cache_store(nncl_context *ctx, cl_program program, const char *path, uint64_t key);

/* Saves every program built from source since the last flush (nncl__cl_programs_release does it too). */
void nncl__cl_cache_flush(nncl_context *ctx);

/* Saves what is unsaved, then releases every cached program and kernel. */
void nncl__cl_programs_release(nncl_context *ctx);

/* ---- launching ----------------------------------------------------------------- */

/*
 * Kernel arguments, set in order. The first failure is kept and reported by
 * nncl__cl_launch; later calls do nothing. Usage:
 *     nncl__cl_args a = nncl__cl_args_begin(ctx, k);
 *     nncl__cl_arg_view(&a, x->buf, x->offset);   (two arguments: buffer, ulong offset)
 *     nncl__cl_arg_u64(&a, n);
 *     NNCL_TRY(nncl__cl_launch(&a, 1, global, local));
 */
typedef struct nncl__cl_args {
    nncl_context *ctx;
    const nncl__cl_kernel *k;
    cl_uint next;
    nncl_status status;
} nncl__cl_args;

nncl__cl_args nncl__cl_args_begin(nncl_context *ctx, const nncl__cl_kernel *k);
void nncl__cl_arg(nncl__cl_args *a, size_t size, const void *value);
void nncl__cl_arg_mem(nncl__cl_args *a, cl_mem mem);
void nncl__cl_arg_u64(nncl__cl_args *a, uint64_t v);
void nncl__cl_arg_u32(nncl__cl_args *a, uint32_t v);
void nncl__cl_arg_f32(nncl__cl_args *a, float v);

/* The one place a view becomes kernel arguments: (global float *, ulong element offset). */
void nncl__cl_arg_view(nncl__cl_args *a, const nncl_buffer *buf, size_t offset);

/* A tensor as (buffer, offset) arguments; NULL gives (NULL, 0) for optional ones. */
void nncl__cl_arg_tensor(nncl__cl_args *a, const nncl_tensor *t);
void nncl__cl_arg_i32(nncl__cl_args *a, int32_t v);
void nncl__cl_arg_i64(nncl__cl_args *a, int64_t v);

/* Queues kernel k over n work-items in work-groups of NNCL_CL_WG (one dimension). */
nncl_status nncl__cl_launch_1d(nncl__cl_args *a, size_t n);

/* Queues a streaming element-wise kernel over n elements: NNCL_EW (cl->ew) per work-item (NNCL_EW_RANGE). */
nncl_status nncl__cl_launch_ew(nncl__cl_args *a, size_t n);

/*
 * Queues the kernel whose arguments `a` set. Rounds each global size up to a
 * multiple of the local size (kernels guard their tails), checks the return
 * code with the kernel's name in the message, counts the launch and, when the
 * context profiles, keeps the event.
 */
nncl_status nncl__cl_launch(nncl__cl_args *a, cl_uint dims, const size_t *global, const size_t *local);

/* Keeps a profiling event of a command named `what` (takes ownership of ev). */
nncl_status nncl__cl_profile_event(nncl_context *ctx, cl_event ev, const char *what);

/* Reads the events of finished commands into the context's profile. */
nncl_status nncl__cl_profile_settle(nncl_context *ctx);

/* ---- ops ------------------------------------------------------------------------- */

nncl_status nncl__cl_fill(nncl_context *ctx, const nncl_tensor *x, float value);
nncl_status nncl__cl_scale(nncl_context *ctx, const nncl_tensor *x, float alpha);
nncl_status nncl__cl_axpy(nncl_context *ctx, const nncl_tensor *y, float alpha, const nncl_tensor *x);
nncl_status nncl__cl_sum(nncl_context *ctx, const nncl_tensor *out, const nncl_tensor *x);
nncl_status nncl__cl_gemm(nncl_context *ctx, const nncl_gemm_args *g);
nncl_status nncl__cl_gemm_prepare(nncl_context *ctx, const nncl_gemm_args *g);
nncl_status nncl__cl_norm2(nncl_context *ctx, const nncl_tensor *out, const nncl_tensor *x);
nncl_status nncl__cl_optimizer_step(nncl_context *ctx, const nncl_tensor *p, const nncl_tensor *g,
                                    const nncl_tensor *s1, const nncl_tensor *s2, const nncl_optim_args *a);
nncl_status nncl__cl_add(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *a, const nncl_tensor *b);
nncl_status nncl__cl_bias_add(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *b, int64_t outer,
                              int64_t channels, int64_t inner, int relu);
nncl_status nncl__cl_bias_backward(nncl_context *ctx, const nncl_tensor *db, const nncl_tensor *dy, int64_t outer,
                                   int64_t channels, int64_t inner);
nncl_status nncl__cl_conv2d_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                    const nncl_tensor *w, const nncl_tensor *b, int relu, const nncl_conv_geom *g);
nncl_status nncl__cl_conv2d_backward_data(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dy,
                                          const nncl_tensor *w, const nncl_conv_geom *g);
nncl_status nncl__cl_conv2d_backward_params(nncl_context *ctx, const nncl_tensor *dw, const nncl_tensor *db,
                                            const nncl_tensor *dy, const nncl_tensor *x, const nncl_conv_geom *g);
nncl_status nncl__cl_conv2d_prepare(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                    const nncl_tensor *w, const nncl_tensor *b, const nncl_tensor *dy,
                                    const nncl_tensor *dx, const nncl_tensor *dw, const nncl_tensor *db,
                                    const nncl_conv_geom *g);
nncl_status nncl__cl_pool2d_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *idx,
                                    const nncl_tensor *x, const nncl_pool_geom *g);
nncl_status nncl__cl_pool2d_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dy,
                                     const nncl_tensor *idx, const nncl_tensor *relu_y, const nncl_pool_geom *g);
nncl_status nncl__cl_activation_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                        nncl_activation act, float param);
nncl_status nncl__cl_activation_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *x,
                                         const nncl_tensor *y, const nncl_tensor *dy, nncl_activation act,
                                         float param);
nncl_status nncl__cl_softmax_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x, int64_t rows,
                                     int64_t cols, int log);
nncl_status nncl__cl_softmax_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *y,
                                      const nncl_tensor *dy, int64_t rows, int64_t cols, int log);
nncl_status nncl__cl_dropout(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x, float p,
                             nncl_rng_key key);
nncl_status nncl__cl_batchnorm_forward_train(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *mean,
                                             const nncl_tensor *invstd, const nncl_tensor *running_mean,
                                             const nncl_tensor *running_var, const nncl_tensor *x,
                                             const nncl_tensor *gamma, const nncl_tensor *beta,
                                             const nncl_bn_geom *g);
nncl_status nncl__cl_batchnorm_forward_eval(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                            const nncl_tensor *running_mean, const nncl_tensor *running_var,
                                            const nncl_tensor *gamma, const nncl_tensor *beta,
                                            const nncl_bn_geom *g);
nncl_status nncl__cl_batchnorm_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dgamma,
                                        const nncl_tensor *dbeta, const nncl_tensor *dy, const nncl_tensor *x,
                                        const nncl_tensor *mean, const nncl_tensor *invstd, const nncl_tensor *gamma,
                                        const nncl_bn_geom *g, int train);
nncl_status nncl__cl_batchnorm_invstd(nncl_context *ctx, const nncl_tensor *invstd, const nncl_tensor *var,
                                      float eps);
nncl_status nncl__cl_layernorm_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *mean,
                                       const nncl_tensor *rstd, const nncl_tensor *x, const nncl_tensor *gamma,
                                       const nncl_tensor *beta, int64_t rows, int64_t cols, float eps);
nncl_status nncl__cl_layernorm_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *dgamma,
                                        const nncl_tensor *dbeta, const nncl_tensor *dy, const nncl_tensor *x,
                                        const nncl_tensor *mean, const nncl_tensor *rstd, const nncl_tensor *gamma,
                                        int64_t rows, int64_t cols);
nncl_status nncl__cl_loss_forward(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *out,
                                  const nncl_tensor *work, const nncl_tensor *input, const nncl_tensor *target,
                                  int64_t n, int64_t c, float smoothing);
nncl_status nncl__cl_loss_backward(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *dinput,
                                   const nncl_tensor *input, const nncl_tensor *target, int64_t n, int64_t c,
                                   float smoothing);
nncl_status nncl__cl_loss_step(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *metrics,
                               const nncl_tensor *sum, const nncl_tensor *dinput, const nncl_tensor *work,
                               const nncl_tensor *input, const nncl_tensor *target, int64_t n, int64_t c,
                               float smoothing);

#endif /* NNCL_CL_H */
