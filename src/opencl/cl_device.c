/*
 * cl_device.c - listing OpenCL devices and choosing the one a context uses.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opencl/cl.h"

#define MAX_PLATFORMS 16
#define MAX_DEVICES 64

/* Platforms; *n = 0 when the ICD loader finds none (not an error). */
static nncl_status get_platforms(nncl_context *ctx, cl_platform_id *out, cl_uint *n)
{
    cl_int err = clGetPlatformIDs(MAX_PLATFORMS, out, n);
    if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */) {
        *n = 0;
        return NNCL_OK;
    }
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clGetPlatformIDs");
    if (*n > MAX_PLATFORMS) *n = MAX_PLATFORMS;
    return NNCL_OK;
}

/* Devices of one platform; *n = 0 when it has none. */
static nncl_status get_devices(nncl_context *ctx, cl_platform_id p, cl_device_id *out, cl_uint *n)
{
    cl_int err = clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, MAX_DEVICES, out, n);
    if (err == CL_DEVICE_NOT_FOUND) {
        *n = 0;
        return NNCL_OK;
    }
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clGetDeviceIDs");
    if (*n > MAX_DEVICES) *n = MAX_DEVICES;
    return NNCL_OK;
}

static nncl_status device_string(nncl_context *ctx, cl_device_id d, cl_device_info what, const char *name,
                                 char *buf, size_t size)
{
    cl_int err = clGetDeviceInfo(d, what, size, buf, NULL);
    if (err == CL_INVALID_VALUE) { /* longer than buf: fetch it whole and truncate */
        size_t len = 0;
        err = clGetDeviceInfo(d, what, 0, NULL, &len);
        if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clGetDeviceInfo(%s)", name);
        char *tmp = malloc(len + 1);
        if (tmp == NULL) return NNCL_ERROR(ctx, NNCL_ERR_OUT_OF_MEMORY, "out of host memory");
        err = clGetDeviceInfo(d, what, len, tmp, NULL);
        tmp[len] = '\0';
        snprintf(buf, size, "%s", tmp);
        free(tmp);
    }
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clGetDeviceInfo(%s)", name);
    buf[size - 1] = '\0';
    return NNCL_OK;
}

#define DEVICE_VALUE(ctx, d, what, var)                                                            \
    do {                                                                                           \
        cl_int err_ = clGetDeviceInfo((d), (what), sizeof(var), &(var), NULL);                     \
        if (err_ != CL_SUCCESS) return NNCL_CL_FAIL((ctx), err_, "clGetDeviceInfo(" #what ")");   \
    } while (0)

static nncl_status describe_device(nncl_context *ctx, cl_platform_id p, cl_device_id d, int pi, int di,
                                   nncl_device_info *info)
{
    memset(info, 0, sizeof *info);
    info->platform = pi;
    info->device = di;
    cl_int err = clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof info->platform_name, info->platform_name, NULL);
    if (err != CL_SUCCESS) return NNCL_CL_FAIL(ctx, err, "clGetPlatformInfo(CL_PLATFORM_NAME)");
    info->platform_name[sizeof info->platform_name - 1] = '\0';
    NNCL_TRY(device_string(ctx, d, CL_DEVICE_NAME, "CL_DEVICE_NAME", info->name, sizeof info->name));
    NNCL_TRY(device_string(ctx, d, CL_DEVICE_VENDOR, "CL_DEVICE_VENDOR", info->vendor, sizeof info->vendor));
    NNCL_TRY(device_string(ctx, d, CL_DEVICE_VERSION, "CL_DEVICE_VERSION", info->version, sizeof info->version));
    NNCL_TRY(device_string(ctx, d, CL_DRIVER_VERSION, "CL_DRIVER_VERSION", info->driver_version,
                           sizeof info->driver_version));
    cl_device_type type;
    cl_uint units;
    cl_ulong global_mem, max_alloc;
    size_t max_wg;
    DEVICE_VALUE(ctx, d, CL_DEVICE_TYPE, type);
    DEVICE_VALUE(ctx, d, CL_DEVICE_MAX_COMPUTE_UNITS, units);
    DEVICE_VALUE(ctx, d, CL_DEVICE_GLOBAL_MEM_SIZE, global_mem);
    DEVICE_VALUE(ctx, d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, max_alloc);
    DEVICE_VALUE(ctx, d, CL_DEVICE_MAX_WORK_GROUP_SIZE, max_wg);
    info->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
    info->compute_units = units;
    info->global_mem_bytes = global_mem;
    info->max_alloc_bytes = max_alloc;
    info->max_work_group_size = max_wg;
    return NNCL_OK;
}

nncl_status nncl_device_list(nncl_device_info *out, size_t cap, size_t *count)
{
    NNCL_CHECK_ARG(NULL, count);
    *count = 0;
    cl_platform_id platforms[MAX_PLATFORMS];
    cl_uint np = 0;
    NNCL_TRY(get_platforms(NULL, platforms, &np));
    for (cl_uint pi = 0; pi < np; pi++) {
        cl_device_id devices[MAX_DEVICES];
        cl_uint nd = 0;
        NNCL_TRY(get_devices(NULL, platforms[pi], devices, &nd));
        for (cl_uint di = 0; di < nd; di++) {
            if (out != NULL && *count < cap)
                NNCL_TRY(describe_device(NULL, platforms[pi], devices[di], (int)pi, (int)di, &out[*count]));
            (*count)++;
        }
    }
    return NNCL_OK;
}

int nncl__parse_device(const char *s, int *platform, int *device)
{
    char *end;
    if (!isdigit((unsigned char)s[0])) return 0; /* strtol would take a sign or spaces */
    long p = strtol(s, &end, 10);
    if (*end != ':' || !isdigit((unsigned char)end[1])) return 0;
    long d = strtol(end + 1, &end, 10);
    if (*end != '\0' || p > 1000 || d > 1000) return 0;
    *platform = (int)p;
    *device = (int)d;
    return 1;
}

/* Parses NNCL_DEVICE="platform:device". */
static nncl_status parse_device_env(nncl_context *ctx, const char *s, int *platform, int *device)
{
    if (nncl__parse_device(s, platform, device)) return NNCL_OK;
    return NNCL_ERROR(ctx, NNCL_ERR_INVALID_ARG,
                      "NNCL_DEVICE=\"%s\" is not of the form platform:device, e.g. \"0:0\"", s);
}

nncl_status nncl__cl_choose_device(nncl_context *ctx, const nncl_context_options *opt,
                                   cl_platform_id *platform, cl_device_id *device, int *pi_out, int *di_out)
{
    cl_platform_id platforms[MAX_PLATFORMS];
    cl_uint np = 0;
    NNCL_TRY(get_platforms(ctx, platforms, &np));
    if (np == 0)
        return NNCL_ERROR(ctx, NNCL_ERR_NO_DEVICE, "no OpenCL platform is installed (the ICD loader found none)");

    int want_p = -1, want_d = -1;
    const char *env = getenv("NNCL_DEVICE");
    if (opt->platform >= 0 || opt->device >= 0) {
        want_p = opt->platform >= 0 ? opt->platform : 0;
        want_d = opt->device >= 0 ? opt->device : 0;
    } else if (env != NULL && env[0] != '\0') {
        NNCL_TRY(parse_device_env(ctx, env, &want_p, &want_d));
    }

    if (want_p >= 0) {
        if ((cl_uint)want_p >= np)
            return NNCL_ERROR(ctx, NNCL_ERR_NO_DEVICE, "OpenCL platform %d does not exist (there are %u)",
                              want_p, np);
        cl_device_id devices[MAX_DEVICES];
        cl_uint nd = 0;
        NNCL_TRY(get_devices(ctx, platforms[want_p], devices, &nd));
        if ((cl_uint)want_d >= nd)
            return NNCL_ERROR(ctx, NNCL_ERR_NO_DEVICE, "OpenCL device %d:%d does not exist (platform %d has %u)",
                              want_p, want_d, want_p, nd);
        *platform = platforms[want_p];
        *device = devices[want_d];
        *pi_out = want_p;
        *di_out = want_d;
        return NNCL_OK;
    }

    /* Automatic: the first GPU of any platform, else the first device at all. */
    int found = 0;
    for (cl_uint pi = 0; pi < np; pi++) {
        cl_device_id devices[MAX_DEVICES];
        cl_uint nd = 0;
        NNCL_TRY(get_devices(ctx, platforms[pi], devices, &nd));
        for (cl_uint di = 0; di < nd; di++) {
            cl_device_type type;
            DEVICE_VALUE(ctx, devices[di], CL_DEVICE_TYPE, type);
            int is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
            if (!found || is_gpu) {
                *platform = platforms[pi];
                *device = devices[di];
                *pi_out = (int)pi;
                *di_out = (int)di;
                found = 1;
                if (is_gpu) return NNCL_OK;
            }
        }
    }
    if (!found) return NNCL_ERROR(ctx, NNCL_ERR_NO_DEVICE, "no OpenCL device found on %u platform(s)", np);
    return NNCL_OK;
}

nncl_status nncl__cl_describe_device(nncl_context *ctx, cl_platform_id p, cl_device_id d, int pi, int di,
                                     nncl_device_info *info)
{
    return describe_device(ctx, p, d, pi, di, info);
}
