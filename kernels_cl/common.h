/*
 * common.h - prepended to every kernels_cl/<op>.cl before it is compiled.
 * It holds defaults and helpers and no kernels.
 *
 * Conventions of every kernel:
 *   - A tensor is passed as two arguments: (global float *x, ulong x_off),
 *     the buffer and the element offset where the view starts.
 *   - Element counts are explicit ulong arguments, and every kernel guards
 *     its tail (`if (i >= n) return;`), because the host rounds the global
 *     size up to a multiple of the local size.
 *   - OpenCL C 1.2, no fast-math: results must be reproducible and comparable
 *     with the CPU reference.
 */

/* The default work-group size of one-dimensional element-wise kernels. */
#ifndef NNCL_WG
#define NNCL_WG 64
#endif
