/*
 * blas1.cl - element-wise vector kernels: fill, scale, axpy, add.
 *
 * One work-item per element, one-dimensional work-groups of NNCL_WG.
 */

/* x[i] = value, i < n. */
__kernel void fill(__global float *x, ulong x_off, ulong n, float value)
{
    size_t i = get_global_id(0);
    if (i >= n) return;
    x[x_off + i] = value;
}

/* x[i] = alpha * x[i], i < n. */
__kernel void scale(__global float *x, ulong x_off, ulong n, float alpha)
{
    size_t i = get_global_id(0);
    if (i >= n) return;
    x[x_off + i] = alpha * x[x_off + i];
}

/* y[i] = alpha * x[i] + y[i] with one rounding (fma), i < n. */
__kernel void axpy(__global float *y, ulong y_off, __global const float *x, ulong x_off, ulong n,
                   float alpha)
{
    size_t i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = fma(alpha, x[x_off + i], y[y_off + i]);
}

/* y[i] = a[i] + b[i], i < n. */
__kernel void add(__global float *y, ulong y_off, __global const float *a, ulong a_off, __global const float *b,
                  ulong b_off, ulong n)
{
    size_t i = get_global_id(0);
    if (i >= n) return;
    y[y_off + i] = a[a_off + i] + b[b_off + i];
}
