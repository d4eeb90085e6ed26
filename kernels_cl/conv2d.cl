/*
 * conv2d.cl - the data movement around the GEMMs of a 2-D convolution
 * (src/opencl/cl_conv2d.c does the GEMMs with CLBlast).
 *
 * The column matrix of the whole batch is col[r][q] with
 *     r = (c kh + ky) kw + kx   (C kh kw rows)      q = (n oh + oy) ow + ox   (N oh ow columns)
 *     col[r][q] = x[n][c][oy sh - ph + ky dh][ox sw - pw + kx dw]   (0 in the padding)
 * so that, per group, Y'[oc][q] = W[oc][r] col[r][q] is one GEMM, and Y'
 * (OC, N, oh ow) is permuted into y (N, OC, oh ow).
 *   im2col:          one work-item per row segment of col (fixed r, n, oy; all ox)
 *   col2im:          dx[n][c][iy][ix] = sum of dcol over the taps that read it
 *                    (gather, one work-item per row of dx: deterministic, and
 *                    each element sums its taps in (ky, kx) order as before)
 *   cnhw_to_nchw:    Y' (C, N, P) -> y (N, C, P);  nchw_to_cnhw: the inverse
 *                    (one work-item per row of P elements)
 * Geometry: n c h w oh ow kh kw sh sw ph pw dh dw, as int: index arithmetic
 * is 32-bit (64-bit division is slow on CPUs), and the host refuses
 * convolutions whose buffers reach 2^31 elements.
 */

#define CONV_GEOM int n, int c, int h, int w, int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh, \
                  int dw

__kernel void im2col(__global float *col, ulong col_off, __global const float *x, ulong x_off, CONV_GEOM)
{
    /* One work-item per row segment (r, n, oy): the ow columns ox = 0 .. ow-1 are contiguous in col. */
    const int t = (int)get_global_id(0);
    if (t >= c * kh * kw * n * oh) return;
    const int r = t / (n * oh), no = t - r * (n * oh), ni = no / oh, oy = no - ni * oh;
    const int ci = r / (kh * kw), ky = (r / kw) % kh, kx = r % kw;
    const int iy = oy * sh - ph + ky * dh;
    __global float *dst = col + col_off + ((ulong)r * n * oh + no) * ow;
    if (iy < 0 || iy >= h) {
        for (int ox = 0; ox < ow; ox++) dst[ox] = 0.0f;
        return;
    }
    __global const float *src = x + x_off + ((ulong)(ni * c + ci) * h + iy) * w;
    for (int ox = 0; ox < ow; ox++) {
        const int ix = ox * sw - pw + kx * dw;
        dst[ox] = ix >= 0 && ix < w ? src[ix] : 0.0f;
    }
}

__kernel void col2im(__global float *dx, ulong dx_off, __global const float *col, ulong col_off, CONV_GEOM)
{
    /* One work-item per input row (n, c, iy), gathering every tap that read each of its w elements. */
    const int t = (int)get_global_id(0);
    if (t >= n * c * h) return;
    const int iy = t % h, ci = (t / h) % c, ni = t / (h * c);
    const int q_count = n * oh * ow;
    __global float *dst = dx + dx_off + (ulong)t * w;
    for (int ix = 0; ix < w; ix++) dst[ix] = 0.0f;
    for (int ky = 0; ky < kh; ky++) {
        const int ty = iy + ph - ky * dh; /* = oy * sh */
        if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
        const int oy = ty / sh;
        for (int kx = 0; kx < kw; kx++) {
            const int r = (ci * kh + ky) * kw + kx;
            __global const float *src = col + col_off + (ulong)r * q_count + (ulong)(ni * oh + oy) * ow;
            for (int ix = 0; ix < w; ix++) {
                const int tx = ix + pw - kx * dw; /* = ox * sw */
                if (tx >= 0 && tx % sw == 0 && tx / sw < ow) dst[ix] += src[tx / sw];
            }
        }
    }
}

/* y[n][c][:] = t[c][n][:]: one work-item per row of p elements. */
__kernel void cnhw_to_nchw(__global float *y, ulong y_off, __global const float *t, ulong t_off, int n, int c, int p)
{
    const int row = (int)get_global_id(0); /* = ni * c + ci */
    if (row >= n * c) return;
    const int ni = row / c, ci = row - ni * c;
    __global float *dst = y + y_off + (ulong)row * p;
    __global const float *src = t + t_off + ((ulong)ci * n + ni) * p;
    for (int i = 0; i < p; i++) dst[i] = src[i];
}

/* t[c][n][:] = y[n][c][:]: one work-item per row of p elements. */
__kernel void nchw_to_cnhw(__global float *t, ulong t_off, __global const float *y, ulong y_off, int n, int c, int p)
{
    const int row = (int)get_global_id(0); /* = ci * n + ni */
    if (row >= n * c) return;
    const int ci = row / n, ni = row - ci * n;
    __global float *dst = t + t_off + (ulong)row * p;
    __global const float *src = y + y_off + ((ulong)ni * c + ci) * p;
    for (int i = 0; i < p; i++) dst[i] = src[i];
}
