/*
 * cl_error.c - names of OpenCL error codes, and recording a failed OpenCL call.
 */
#include <stdarg.h>
#include <stdio.h>

#include "opencl/cl.h"

/* From cl_khr_icd: what the ICD loader returns when no platform is installed. */
#define PLATFORM_NOT_FOUND_KHR (-1001)

const char *nncl__cl_error_name(cl_int err)
{
    switch (err) {
#define NAME_(code, value)                                                                         \
    case value:                                                                                    \
        return #code;
        NAME_(CL_SUCCESS, 0)
        NAME_(CL_DEVICE_NOT_FOUND, -1)
        NAME_(CL_DEVICE_NOT_AVAILABLE, -2)
        NAME_(CL_COMPILER_NOT_AVAILABLE, -3)
        NAME_(CL_MEM_OBJECT_ALLOCATION_FAILURE, -4)
        NAME_(CL_OUT_OF_RESOURCES, -5)
        NAME_(CL_OUT_OF_HOST_MEMORY, -6)
        NAME_(CL_PROFILING_INFO_NOT_AVAILABLE, -7)
        NAME_(CL_MEM_COPY_OVERLAP, -8)
        NAME_(CL_IMAGE_FORMAT_MISMATCH, -9)
        NAME_(CL_IMAGE_FORMAT_NOT_SUPPORTED, -10)
        NAME_(CL_BUILD_PROGRAM_FAILURE, -11)
        NAME_(CL_MAP_FAILURE, -12)
        NAME_(CL_MISALIGNED_SUB_BUFFER_OFFSET, -13)
        NAME_(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST, -14)
        NAME_(CL_COMPILE_PROGRAM_FAILURE, -15)
        NAME_(CL_LINKER_NOT_AVAILABLE, -16)
        NAME_(CL_LINK_PROGRAM_FAILURE, -17)
        NAME_(CL_DEVICE_PARTITION_FAILED, -18)
        NAME_(CL_KERNEL_ARG_INFO_NOT_AVAILABLE, -19)
        NAME_(CL_INVALID_VALUE, -30)
        NAME_(CL_INVALID_DEVICE_TYPE, -31)
        NAME_(CL_INVALID_PLATFORM, -32)
        NAME_(CL_INVALID_DEVICE, -33)
        NAME_(CL_INVALID_CONTEXT, -34)
        NAME_(CL_INVALID_QUEUE_PROPERTIES, -35)
        NAME_(CL_INVALID_COMMAND_QUEUE, -36)
        NAME_(CL_INVALID_HOST_PTR, -37)
        NAME_(CL_INVALID_MEM_OBJECT, -38)
        NAME_(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR, -39)
        NAME_(CL_INVALID_IMAGE_SIZE, -40)
        NAME_(CL_INVALID_SAMPLER, -41)
        NAME_(CL_INVALID_BINARY, -42)
        NAME_(CL_INVALID_BUILD_OPTIONS, -43)
        NAME_(CL_INVALID_PROGRAM, -44)
        NAME_(CL_INVALID_PROGRAM_EXECUTABLE, -45)
        NAME_(CL_INVALID_KERNEL_NAME, -46)
        NAME_(CL_INVALID_KERNEL_DEFINITION, -47)
        NAME_(CL_INVALID_KERNEL, -48)
        NAME_(CL_INVALID_ARG_INDEX, -49)
        NAME_(CL_INVALID_ARG_VALUE, -50)
        NAME_(CL_INVALID_ARG_SIZE, -51)
        NAME_(CL_INVALID_KERNEL_ARGS, -52)
        NAME_(CL_INVALID_WORK_DIMENSION, -53)
        NAME_(CL_INVALID_WORK_GROUP_SIZE, -54)
        NAME_(CL_INVALID_WORK_ITEM_SIZE, -55)
        NAME_(CL_INVALID_GLOBAL_OFFSET, -56)
        NAME_(CL_INVALID_EVENT_WAIT_LIST, -57)
        NAME_(CL_INVALID_EVENT, -58)
        NAME_(CL_INVALID_OPERATION, -59)
        NAME_(CL_INVALID_GL_OBJECT, -60)
        NAME_(CL_INVALID_BUFFER_SIZE, -61)
        NAME_(CL_INVALID_MIP_LEVEL, -62)
        NAME_(CL_INVALID_GLOBAL_WORK_SIZE, -63)
        NAME_(CL_INVALID_PROPERTY, -64)
        NAME_(CL_INVALID_IMAGE_DESCRIPTOR, -65)
        NAME_(CL_INVALID_COMPILER_OPTIONS, -66)
        NAME_(CL_INVALID_LINKER_OPTIONS, -67)
        NAME_(CL_INVALID_DEVICE_PARTITION_COUNT, -68)
        NAME_(CL_INVALID_PIPE_SIZE, -69)
        NAME_(CL_INVALID_DEVICE_QUEUE, -70)
        NAME_(CL_INVALID_SPEC_ID, -71)
        NAME_(CL_MAX_SIZE_RESTRICTION_EXCEEDED, -72)
        NAME_(CL_PLATFORM_NOT_FOUND_KHR, -1001)
#undef NAME_
    }
    return "CL_UNKNOWN_ERROR";
}

nncl_status nncl__cl_fail(nncl_context *ctx, cl_int err, const char *file, int line,
                          const char *what_fmt, ...)
{
    if (err == CL_SUCCESS) return NNCL_OK;
    char what[256];
    va_list ap;
    va_start(ap, what_fmt);
    vsnprintf(what, sizeof what, what_fmt, ap);
    va_end(ap);

    nncl_status status = NNCL_ERR_OPENCL;
    if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_HOST_MEMORY)
        status = NNCL_ERR_OUT_OF_MEMORY;
    else if (err == PLATFORM_NOT_FOUND_KHR || err == CL_DEVICE_NOT_FOUND)
        status = NNCL_ERR_NO_DEVICE;
    return nncl__error(ctx, status, file, line, "%s failed: %s (%d)", what, nncl__cl_error_name(err),
                       (int)err);
}
