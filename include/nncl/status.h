/*
 * nncl/status.h - the one status type that every public nncl function returns.
 *
 * The list is an X-macro so that the enum and nncl_status_string() can never
 * drift apart. Codes are stable: new ones are appended, never renumbered.
 * Every function that can fail returns one; the few infallible accessors
 * (these strings, nncl_context_last_error, nncl_tensor_numel) return their
 * value directly. A status only says what kind of thing went wrong; the full
 * message (the failing call, the OpenCL error's name and number, file:line, a
 * build log) is read with nncl_context_last_error().
 */
#ifndef NNCL_STATUS_H
#define NNCL_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, description) */
#define NNCL_STATUS_MAP(X)                                                     \
    X(NNCL_OK, 0, "success")                                                   \
    X(NNCL_ERR_INVALID_ARG, 1, "invalid argument")                             \
    X(NNCL_ERR_SHAPE, 2, "shape mismatch")                                     \
    X(NNCL_ERR_OUT_OF_MEMORY, 3, "out of memory")                              \
    X(NNCL_ERR_NO_DEVICE, 4, "no such OpenCL platform or device")              \
    X(NNCL_ERR_OPENCL, 5, "OpenCL call failed")                                \
    X(NNCL_ERR_BUILD, 6, "OpenCL program build failed")                        \
    X(NNCL_ERR_CLBLAST, 7, "CLBlast call failed")                              \
    X(NNCL_ERR_UNSUPPORTED, 8, "operation not supported by this backend")      \
    X(NNCL_ERR_IO, 9, "input/output error")                                    \
    X(NNCL_ERR_FORMAT, 10, "malformed file or data")

typedef enum nncl_status {
#define NNCL_STATUS_ENUM_(name, value, text) name = value,
    NNCL_STATUS_MAP(NNCL_STATUS_ENUM_)
#undef NNCL_STATUS_ENUM_
} nncl_status;

/*
 * Returns a short, static, human-readable description of `status`, or
 * "unknown status" for a value outside the enum. Never returns NULL.
 * Thread-safe.
 */
const char *nncl_status_string(nncl_status status);

/*
 * Returns the identifier of `status` as written in this header, for example
 * "NNCL_ERR_SHAPE", or "NNCL_ERR_UNKNOWN". Never returns NULL. Thread-safe.
 */
const char *nncl_status_name(nncl_status status);

#ifdef __cplusplus
}
#endif

#endif /* NNCL_STATUS_H */
