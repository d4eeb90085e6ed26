/*
 * blas1.cl - element-wise vector kernels: fill, scale, axpy, add.
 *
 * NNCL_EW consecutive elements per work-item (NNCL_EW_RANGE), work-groups of NNCL_WG.
 */

/* x[i] = value, i < n. */
__kernel void fill(__global float *x, ulong x_off, ulong n, float value)
{
    NNCL_EW_RANGE(n);
    for (ulong i = i0; i < i1; i++) x[x_off + i] = value;
}

/* x[i] = alpha * x[i], i < n. */
__kernel void scale(__global float *x, ulong x_off, ulong n, float alpha)
{
    NNCL_EW_RANGE(n);
    for (ulong i = i0; i < i1; i++) x[x_off + i] = alpha * x[x_off + i];
}

/* y[i] = alpha * x[i] + y[i] with one rounding (fma), i < n. */
__kernel void axpy(__global float *y, ulong y_off, __global const float *x, ulong x_off, ulong n,
                   float alpha)
{
    NNCL_EW_RANGE(n);
    for (ulong i = i0; i < i1; i++) y[y_off + i] = fma(alpha, x[x_off + i], y[y_off + i]);
}

/* y[i] = a[i] + b[i], i < n. */
__kernel void add(__global float *y, ulong y_off, __global const float *a, ulong a_off, __global const float *b,
                  ulong b_off, ulong n)
{
    NNCL_EW_RANGE(n);
    for (ulong i = i0; i < i1; i++) y[y_off + i] = a[a_off + i] + b[b_off + i];
}
