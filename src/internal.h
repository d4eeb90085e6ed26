/*
 * internal.h - what every part of the library shares: the context structure,
 * error recording and the checking macros.
 *
 * Error convention: a function that fails records the message on the context
 * with NNCL_ERROR (or NNCL_CL_FAIL for an OpenCL call) and returns the status;
 * callers propagate it with NNCL_TRY. Functions that acquire resources use one
 * `fail:` label that releases them. Nothing in the library exits, aborts or
 * asserts on user input.
 */
#ifndef NNCL_INTERNAL_H
#define NNCL_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "nncl.h"

struct nncl_backend_ops;

#if defined(__GNUC__)
#define NNCL_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define NNCL_PRINTF(fmt_index, first_arg)
#endif

/* Per-kernel device time, summed; see nncl_context_profile. */
typedef struct nncl__profile_sum {
    char kernel[64];
    uint64_t launches;
    uint64_t total_ns;
} nncl__profile_sum;

/* One timed command, for the trace (see nncl_context_write_trace). */
typedef struct nncl__trace_event {
    char kernel[48];
    char scope[48];    /* what the caller was doing: "3.conv2d forward", "optimizer update" */
    uint64_t start_ns, end_ns;
} nncl__trace_event;

struct nncl_buffer {
    nncl_context *ctx; /* the context that allocated it */
    size_t bytes;      /* size of the allocation */
    void *mem;         /* backend-owned: a cl_mem on OpenCL, a float array on the CPU */
    int owned;         /* by a layer, loss or network, which releases it: nncl_tensor_destroy refuses it */
};

struct nncl_context {
    const struct nncl_backend_ops *ops; /* the backend's op table */
    void *impl;                         /* the backend's own state */
    nncl_backend_kind kind;
    int profiling;
    char description[640];

    nncl_stats stats;

    nncl__profile_sum *profile; /* (profile_len) distinct kernels timed so far */
    size_t profile_len, profile_cap;
    nncl__trace_event *trace;   /* (trace_len) every timed command, in order */
    size_t trace_len, trace_cap;
    char scope[48];             /* the label of commands queued from now on */

    nncl_status last_status;
    char *message; /* NUL-terminated, heap-allocated; "" until a call fails */
    size_t message_cap;
};

/* ---- errors ---------------------------------------------------------------- */

/*
 * Records `status` and the formatted message, followed by " at file:line", on
 * ctx (or in this thread's context-free slot when ctx is NULL) and returns
 * `status`. The file is printed relative to the source tree.
 */
nncl_status nncl__error(nncl_context *ctx, nncl_status status, const char *file, int line,
                        const char *fmt, ...) NNCL_PRINTF(5, 6);

/* Records the last error again as `status`, after a formatted prefix; it keeps its own " at file:line". */
nncl_status nncl__error_prefix(nncl_context *ctx, nncl_status status, const char *fmt, ...) NNCL_PRINTF(3, 4);

/* Appends more formatted text (a build log, say) to the last message. */
void nncl__error_append(nncl_context *ctx, const char *fmt, ...) NNCL_PRINTF(2, 3);

/* Copies ctx's last status and message into this thread's context-free slot. */
void nncl__error_detach(const nncl_context *ctx);

/* The reverse: makes the thread slot's status and message ctx's last error. */
void nncl__error_attach(nncl_context *ctx);

/* Makes status and a message recorded elsewhere (another thread's slot, say) ctx's last error, as they are. */
void nncl__error_set(nncl_context *ctx, nncl_status status, const char *message);

/*
 * ctx's last error, kept across a trial that may fail and whose failure the
 * library handles itself (a GEMM or convolution path it then does not
 * choose): restoring the mark forgets the trial's error, so that a call that
 * succeeds leaves no failure behind.
 */
typedef struct nncl__error_mark {
    nncl_status status;
    char *message; /* a copy; NULL when there was none or no memory for it */
} nncl__error_mark;

nncl__error_mark nncl__error_mark_save(const nncl_context *ctx);
void nncl__error_mark_restore(nncl_context *ctx, nncl__error_mark *mark); /* also releases the mark */
void nncl__error_mark_drop(nncl__error_mark *mark);                       /* releases it, restoring nothing */

#define NNCL_ERROR(ctx, status, ...) nncl__error((ctx), (status), __FILE__, __LINE__, __VA_ARGS__)

/* Propagates a failure that has already been recorded. */
#define NNCL_TRY(expr)                                                                             \
    do {                                                                                           \
        nncl_status nncl_try_status_ = (expr);                                                     \
        if (nncl_try_status_ != NNCL_OK) return nncl_try_status_;                                  \
    } while (0)

/* Returns NNCL_ERR_INVALID_ARG (with a context-free message) when ctx is NULL. */
#define NNCL_CHECK_CTX(ctx)                                                                        \
    do {                                                                                           \
        if ((ctx) == NULL) return NNCL_ERROR(NULL, NNCL_ERR_INVALID_ARG, "%s: ctx is NULL", __func__); \
    } while (0)

/* Returns NNCL_ERR_INVALID_ARG naming `ptr` when it is NULL. */
#define NNCL_CHECK_ARG(ctx, ptr)                                                                   \
    do {                                                                                           \
        if ((ptr) == NULL)                                                                         \
            return NNCL_ERROR((ctx), NNCL_ERR_INVALID_ARG, "%s: %s is NULL", __func__, #ptr);      \
    } while (0)

/* ---- tensors --------------------------------------------------------------- */

/*
 * The most elements a planned tensor may have, 2^40: more than any device
 * holds, and small enough that sums of such sizes cannot overflow.
 */
#define NNCL_MAX_ELEMENTS ((int64_t)1 << 40)

/* The most optimizer steps a network counts: 2^53, what the schedules' double arithmetic counts exactly. */
#define NNCL_MAX_STEPS ((int64_t)1 << 53)

/* The product of shape[0 .. ndim), or -1 when a size is < 1 or the product exceeds NNCL_MAX_ELEMENTS. */
int64_t nncl__shape_elements(int ndim, const int64_t *shape);

/*
 * Checks that t is a well-formed descriptor of `ctx` whose elements lie inside
 * its buffer. `what` names the argument in the message.
 */
nncl_status nncl__tensor_check(nncl_context *ctx, const nncl_tensor *t, const char *what,
                               const char *func);

/* Checks that `elems` elements starting at t->offset lie inside t's buffer. */
nncl_status nncl__extent_check(nncl_context *ctx, const nncl_tensor *t, uint64_t elems,
                               const char *what, const char *func);

/*
 * Room for one more item in a growing array of `size`-byte items that holds
 * `len` and has room for *cap: when full, it is reallocated to twice *cap
 * (`first` when empty) and *cap updated. Returns the array, moved or not, or
 * NULL when out of host memory, leaving the old array and *cap as they were.
 */
void *nncl__grow(void *items, size_t len, size_t *cap, size_t size, size_t first);

/*
 * Makes *ws a 1-D tensor of at least n elements (viewed as exactly n),
 * reallocating only when it must grow: a steady state allocates nothing.
 * For the scratch that layers and losses keep between calls.
 */
nncl_status nncl__workspace(nncl_context *ctx, nncl_tensor *ws, int64_t *capacity, int64_t n);

/* nncl_tensor_create for a tensor the library owns (a layer's parameter, a network's arena, a workspace):
   users receive views of it, and nncl_tensor_destroy refuses them all, so only its owner releases it. */
nncl_status nncl__tensor_create_owned(nncl_context *ctx, int ndim, const int64_t *shape, nncl_tensor *out);

/* Releases a tensor of nncl__tensor_create_owned (or of nncl_tensor_create) and clears the descriptor,
   which may cover less than its buffer (a workspace used below its capacity). */
void nncl__tensor_release(nncl_context *ctx, nncl_tensor *t);

/* ---- profiling ------------------------------------------------------------- */

/* Adds one launch of `kernel`, queued under `scope`, that ran from start_ns to end_ns, to the profile and the trace. */
nncl_status nncl__profile_add(nncl_context *ctx, const char *kernel, const char *scope, uint64_t start_ns,
                              uint64_t end_ns);

/* Labels the commands queued from now on, when the context profiles (a no-op otherwise). */
void nncl__profile_scope(nncl_context *ctx, const char *fmt, ...) NNCL_PRINTF(2, 3);

/* ---- activations and losses ------------------------------------------------ */

/* The spec and kernel name of an activation ("relu", "leaky_relu", ...), or NULL when act is not one. */
const char *nncl__activation_name(nncl_activation act);

/* The kind a loss was created with, its label smoothing, and its context. */
nncl_loss_kind nncl__loss_kind(const nncl_loss *loss);
float nncl__loss_smoothing(const nncl_loss *loss);
nncl_context *nncl__loss_context(const nncl_loss *loss);

/* Marks the loss as a network's (NNCL_ERR_INVALID_ARG when it already is one's); the network frees it. */
nncl_status nncl__loss_adopt(nncl_loss *loss);
void nncl__loss_free(nncl_loss *loss);

/* The spec and kernel name of a loss kind ("mse", "cross_entropy", ...), or NULL when kind is not one. */
const char *nncl__loss_name(nncl_loss_kind kind);

/* ---- backends -------------------------------------------------------------- */

nncl_status nncl__cpu_backend_init(nncl_context *ctx, const nncl_context_options *opt);
nncl_status nncl__cl_backend_init(nncl_context *ctx, const nncl_context_options *opt);

/* Parses "P:D" (NNCL_DEVICE, the tool's --device): two decimal numbers up to 1000 and nothing else, no sign or
   space. Returns 1, or 0 when malformed. */
int nncl__parse_device(const char *s, int *platform, int *device);

#endif /* NNCL_INTERNAL_H */
