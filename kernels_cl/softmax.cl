/*
 * softmax.cl - softmax and log-softmax over the last dimension of x viewed as
 * (rows, cols), one work-item per row, max-shifted for stability.
 *   forward:   y = e^(x - m) / s   or   y = x - m - log s,   s = sum e^(x - m)
 *   backward:  softmax dx = y (dy - sum dy y);  log-softmax dx = dy - e^y sum dy
 */

__kernel void softmax_forward(__global float *y, ulong y_off, __global const float *x, ulong x_off, ulong rows,
                              ulong cols, int log_)
{
    size_t r = NNCL_GID();
    if (r >= rows) return;
    __global const float *xr = x + x_off + r * cols;
    __global float *yr = y + y_off + r * cols;
    float m = -INFINITY;
    for (ulong j = 0; j < cols; j++) m = fmax(m, xr[j]);
    float s = 0.0f;
    for (ulong j = 0; j < cols; j++) s += exp(xr[j] - m);
    float ls = log(s);
    for (ulong j = 0; j < cols; j++) yr[j] = log_ ? xr[j] - m - ls : exp(xr[j] - m) / s;
}

__kernel void softmax_backward(__global float *dx, ulong dx_off, __global const float *y, ulong y_off,
                               __global const float *dy, ulong dy_off, ulong rows, ulong cols, int log_)
{
    size_t r = NNCL_GID();
    if (r >= rows) return;
    __global const float *yr = y + y_off + r * cols, *dyr = dy + dy_off + r * cols;
    __global float *dxr = dx + dx_off + r * cols;
    float dot = 0.0f;
    for (ulong j = 0; j < cols; j++) dot += log_ ? dyr[j] : dyr[j] * yr[j];
    for (ulong j = 0; j < cols; j++) dxr[j] = log_ ? dyr[j] - exp(yr[j]) * dot : yr[j] * (dyr[j] - dot);
}
