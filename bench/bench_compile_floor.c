/*
 * bench_compile_floor.c - what the OpenCL implementation alone charges for a
 * cold start: N one-line kernels in one program, built, then each launched
 * once, with no nncl kernel involved. On PoCL, building a program runs the
 * front end and links its builtin library, and the first launch of each
 * kernel compiles it to machine code, so the sum is the least time any
 * library whose first step runs N kernels can start in on a cold cache. The
 * train_vs_torch.sh startup section runs it with N set to the number of
 * kernels nncl's cold run compiled.
 *
 * The source carries this process's id and the time in a constant (PoCL
 * keys its cache by the preprocessed source, so a comment would not do), so
 * the driver's kernel cache never already holds it: every run is cold. Run it with POCL_CACHE_DIR
 * at a temporary folder to leave nothing behind.
 *
 * The device is the one nncl would choose (NNCL_DEVICE, else the first GPU,
 * else 0:0). Figures are wall-clock seconds around each phase.
 * Usage: bench_compile_floor [N]   (default 17, the CNN's first step on PoCL)
 */
#define _POSIX_C_SOURCE 200809L /* getpid */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "opencl/cl.h"

#define MAX_KERNELS 1000
#define KERNEL_LINE 96 /* bytes of one kernel's source, with room to spare */
#define ITEMS 4096 /* work-items per launch, rounded up to whole groups of 64 (or the device's most, if fewer) */

static void check(cl_int err, const char *what)
{
    if (err == CL_SUCCESS) return;
    fprintf(stderr, "%s failed: %s (%d)\n", what, nncl__cl_error_name(err), (int)err);
    exit(1);
}

/* Prints the build log of a program that failed to build, then exits. */
static void fail_build(cl_program program, cl_device_id device, cl_int err)
{
    size_t len = 0;
    char *log = NULL;
    if (clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, 0, NULL, &len) == CL_SUCCESS &&
        (log = malloc(len + 1)) != NULL &&
        clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, len, log, NULL) == CL_SUCCESS) {
        log[len] = '\0';
        fprintf(stderr, "build log:\n%s\n", log);
    }
    free(log);
    check(err, "clBuildProgram");
}

int main(int argc, char **argv)
{
    char *end = NULL;
    long n = argc > 1 ? strtol(argv[1], &end, 10) : 17;
    if ((argc > 1 && (end == argv[1] || *end != '\0')) || n < 1 || n > MAX_KERNELS) {
        fprintf(stderr, "usage: bench_compile_floor [N], 1 <= N <= %d\n", MAX_KERNELS);
        return 2;
    }

    char *source = malloc((size_t)(n + 1) * KERNEL_LINE);
    if (source == NULL) {
        fprintf(stderr, "out of host memory\n");
        return 1;
    }
    size_t len = (size_t)snprintf(source, KERNEL_LINE, "__constant long run_id = %ld%ld;\n", (long)getpid(), (long)time(NULL));
    for (long i = 0; i < n; i++)
        len += (size_t)snprintf(source + len, KERNEL_LINE,
                                "__kernel void k%ld(__global float *x) { x[get_global_id(0)] = %ld.0f; }\n", i, i);

    double t0 = bench_now();
    nncl_context_options opt = nncl_context_options_default();
    cl_platform_id platform;
    cl_device_id device;
    int pi, di;
    bench_check(NULL, nncl__cl_choose_device(NULL, &opt, &platform, &device, &pi, &di), "choosing the device");
    char name[256];
    check(clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof name, name, NULL), "clGetDeviceInfo(CL_DEVICE_NAME)");
    size_t max_group;
    check(clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_group, &max_group, NULL),
          "clGetDeviceInfo(CL_DEVICE_MAX_WORK_GROUP_SIZE)");
    const size_t local = max_group < 64 ? max_group : 64, global = (ITEMS + local - 1) / local * local;
    cl_int err;
    cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    check(err, "clCreateContext");
    cl_command_queue queue = clCreateCommandQueue(context, device, 0, &err);
    check(err, "clCreateCommandQueue");
    cl_mem buffer = clCreateBuffer(context, CL_MEM_READ_WRITE, global * sizeof(float), NULL, &err);
    check(err, "clCreateBuffer");
    double t1 = bench_now();

    const char *sources[] = {source};
    cl_program program = clCreateProgramWithSource(context, 1, sources, &len, &err);
    check(err, "clCreateProgramWithSource");
    err = clBuildProgram(program, 1, &device, "-cl-std=CL1.2", NULL, NULL);
    if (err != CL_SUCCESS) fail_build(program, device, err);
    double t2 = bench_now();

    double *each = malloc(sizeof(double) * (size_t)n);
    if (each == NULL) {
        fprintf(stderr, "out of host memory\n");
        return 1;
    }
    for (long i = 0; i < n; i++) {
        char kname[32];
        snprintf(kname, sizeof kname, "k%ld", i);
        double s = bench_now();
        cl_kernel kernel = clCreateKernel(program, kname, &err);
        check(err, "clCreateKernel");
        check(clSetKernelArg(kernel, 0, sizeof buffer, &buffer), "clSetKernelArg");
        check(clEnqueueNDRangeKernel(queue, kernel, 1, NULL, &global, &local, 0, NULL, NULL),
              "clEnqueueNDRangeKernel");
        check(clFinish(queue), "clFinish"); /* each kernel alone: a driver may compile at launch or at run */
        check(clReleaseKernel(kernel), "clReleaseKernel");
        each[i] = bench_now() - s;
    }
    double t3 = bench_now();

    printf("%ld one-line kernels on %d:%d %s, driver cache cold:\n", n, pi, di, name);
    printf("  platform, context and queue   %6.2f s\n", t1 - t0);
    printf("  program build                 %6.2f s\n", t2 - t1);
    printf("  first launches                %6.2f s   (%.0f ms each, median)\n", t3 - t2,
           1e3 * bench_median(each, (size_t)n));
    printf("  total                         %6.2f s\n", t3 - t0);

    free(each);
    free(source);
    check(clReleaseProgram(program), "clReleaseProgram");
    check(clReleaseMemObject(buffer), "clReleaseMemObject");
    check(clReleaseCommandQueue(queue), "clReleaseCommandQueue");
    check(clReleaseContext(context), "clReleaseContext");
    return 0;
}
