/*
 * nncl/context.h - contexts, devices, errors and statistics.
 *
 * A context owns one backend: the plain-C CPU reference, or one OpenCL device
 * with one in-order command queue. Every tensor and every operation belongs to
 * exactly one context. Work is queued asynchronously; the host waits only when
 * data is read back (nncl_tensor_read) or when nncl_context_finish is called.
 *
 * Errors: every function returns an nncl_status. When a function that takes a
 * context fails, the context records a message naming the failing call, the
 * OpenCL error's name and number where there is one, and file:line; read it
 * with nncl_context_last_error(). The context stays usable after any error.
 *
 * Thread-safety: a context and everything created from it may be used by one
 * thread at a time. Different contexts may be used from different threads.
 */
#ifndef NNCL_CONTEXT_H
#define NNCL_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "nncl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nncl_context nncl_context;

typedef enum nncl_backend_kind {
    NNCL_BACKEND_CPU = 0,    /* plain-C reference: simple loops, double accumulators */
    NNCL_BACKEND_OPENCL = 1, /* OpenCL kernels and CLBlast GEMM on one device */
} nncl_backend_kind;

/*
 * Options for nncl_context_create. Start from nncl_context_options_default().
 *
 * Device selection for the OpenCL backend, in order of precedence:
 *   1. platform and device set (>= 0) here;
 *   2. the environment variable NNCL_DEVICE="platform:device", for example "0:1";
 *   3. the first GPU of any platform, else device 0 of platform 0.
 */
typedef struct nncl_context_options {
    nncl_backend_kind backend; /* default NNCL_BACKEND_OPENCL */
    int platform;              /* OpenCL platform index, -1 = choose (see above) */
    int device;                /* device index within that platform, -1 = choose */
    int profiling;             /* non-zero: time every kernel with OpenCL events */
} nncl_context_options;

/* Returns the defaults: OpenCL backend, automatic device choice, no profiling. */
nncl_context_options nncl_context_options_default(void);

/*
 * Creates a context.
 *   opt  options, or NULL for the defaults.
 *   out  OUT: the new context, to be released with nncl_context_destroy.
 *        Set to NULL on failure.
 * Returns NNCL_OK; NNCL_ERR_INVALID_ARG for bad options (an unknown backend,
 * a platform or device index below -1) or a malformed
 * NNCL_DEVICE; NNCL_ERR_NO_DEVICE when the platform or device does not exist;
 * NNCL_ERR_OPENCL when the OpenCL runtime fails. On failure, the message is
 * read with nncl_context_last_error(NULL) from the same thread.
 */
nncl_status nncl_context_create(const nncl_context_options *opt, nncl_context **out);

/*
 * Waits for all queued work, releases every OpenCL object and host allocation
 * the context made, and frees it. Accepts NULL. Everything created from the
 * context (tensors, layers, losses, networks) must be destroyed before it.
 */
nncl_status nncl_context_destroy(nncl_context *ctx);

/*
 * Returns the message of the last failed call on `ctx`: for example
 * "clEnqueueNDRangeKernel(axpy) failed: CL_INVALID_WORK_GROUP_SIZE (-54) at
 * src/opencl/cl_launch.c:87". Returns "" if nothing has failed yet. Reading it
 * does not clear it. With ctx == NULL, returns the message of the last failed
 * call in this thread that had no context to record it in (a failed
 * nncl_context_create, nncl_device_list, or any call passed a NULL context).
 * The string stays valid until the next failing call on the same context.
 */
const char *nncl_context_last_error(const nncl_context *ctx);

/* Returns the status of the last failed call on `ctx` (NNCL_OK if none). */
nncl_status nncl_context_last_status(const nncl_context *ctx);

/* OUT: *kind receives the backend that `ctx` runs on. */
nncl_status nncl_context_backend(const nncl_context *ctx, nncl_backend_kind *kind);

/*
 * OUT: copies a one-line description of the context's device, for example
 * "OpenCL 0:0 pthread-haswell-AMD EPYC (The pocl project, OpenCL 3.0 PoCL ...)",
 * into buf (always NUL-terminated, truncated to size).
 */
nncl_status nncl_context_describe(const nncl_context *ctx, char *buf, size_t size);

/* Blocks until all work queued on the context has finished. Counts one host wait. */
nncl_status nncl_context_finish(nncl_context *ctx);

/* ---- devices ------------------------------------------------------------ */

typedef struct nncl_device_info {
    int platform;                 /* platform index, as used by NNCL_DEVICE */
    int device;                   /* device index within the platform */
    char platform_name[128];
    char name[128];
    char vendor[128];
    char version[128];            /* CL_DEVICE_VERSION, e.g. "OpenCL 3.0 PoCL ..." */
    char driver_version[64];
    int is_gpu;                   /* non-zero for CL_DEVICE_TYPE_GPU */
    uint32_t compute_units;
    uint64_t global_mem_bytes;
    uint64_t max_alloc_bytes;
    size_t max_work_group_size;
} nncl_device_info;

/*
 * Lists the OpenCL devices of every platform.
 *   out    OUT: array of `cap` entries to fill, or NULL to only count.
 *   cap    number of entries `out` holds.
 *   count  OUT: the number of devices that exist (may exceed cap; only the
 *          first cap are written).
 * Returns NNCL_OK (with *count = 0 when there is no OpenCL platform at all),
 * or NNCL_ERR_OPENCL. Errors go to nncl_context_last_error(NULL).
 */
nncl_status nncl_device_list(nncl_device_info *out, size_t cap, size_t *count);

/* ---- statistics ---------------------------------------------------------- */

/*
 * Per-context counters. The CPU backend counts the same way: each operation is
 * one "kernel launch" and its buffers (and staging arrays) are its "device"
 * memory. A GEMM counts one gemm_call. On OpenCL it also counts the kernels
 * nncl queues for it in kernel_launches (its own GEMM kernels, or the bias and
 * activation pass after a CLBlast call), but not CLBlast's, which are not
 * nncl's; on the CPU backend it counts no launch.
 */
typedef struct nncl_stats {
    uint64_t kernel_launches; /* nncl kernels queued (CPU: operations run other than GEMMs) */
    uint64_t gemm_calls;      /* GEMMs, whichever implementation runs them */
    uint64_t h2d_bytes;       /* bytes written from host to device */
    uint64_t d2h_bytes;       /* bytes read from device to host */
    uint64_t host_waits;      /* blocking reads, blocking writes and finishes */
    uint64_t device_allocs;   /* device buffer allocations */
    uint64_t device_bytes_live; /* bytes of device buffers currently allocated */
} nncl_stats;

/* OUT: *stats receives the counters. */
nncl_status nncl_context_stats(const nncl_context *ctx, nncl_stats *stats);

/*
 * Sets every counter to zero except device_bytes_live, which is a level and
 * not a count. Also clears the profile (nncl_context_profile).
 */
nncl_status nncl_context_reset_stats(nncl_context *ctx);

/* ---- profiling ----------------------------------------------------------- */

/* Device time spent in one kernel, summed over its launches. */
typedef struct nncl_profile_entry {
    char kernel[64];
    uint64_t launches;
    uint64_t total_ns;
} nncl_profile_entry;

/*
 * Reads the per-kernel device times collected since the context was created or
 * its stats were last reset. Requires a context created with profiling; waits
 * for queued work (one host wait).
 *   out    OUT: array of `cap` entries, or NULL to only count.
 *   count  OUT: number of distinct kernels profiled.
 * Returns NNCL_ERR_INVALID_ARG if profiling is off.
 */
nncl_status nncl_context_profile(nncl_context *ctx, nncl_profile_entry *out, size_t cap,
                                 size_t *count);

/*
 * Writes every command timed since the context was created or its stats were
 * last reset as a Chrome trace (JSON; open it in chrome://tracing or
 * https://ui.perfetto.dev): kernels on one track, and on another one span per
 * layer phase ("3.conv2d forward", "3.conv2d backward", "optimizer update").
 * Requires profiling; waits for queued work.
 */
nncl_status nncl_context_write_trace(nncl_context *ctx, const char *path);

#ifdef __cplusplus
}
#endif

#endif /* NNCL_CONTEXT_H */
