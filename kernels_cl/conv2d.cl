/*
 * conv2d.cl - the data movement around the GEMMs of a 2-D convolution
 * (src/opencl/cl_conv2d.c does the GEMMs with CLBlast).
 *
 * The column matrix of the whole batch is col[r][q] with
 *     r = (c kh + ky) kw + kx   (C kh kw rows)      q = (n oh + oy) ow + ox   (N oh ow columns)
 *     col[r][q] = x[n][c][oy sh - ph + ky dh][ox sw - pw + kx dw]   (0 in the padding)
 * so that, per group, Y'[oc][q] = W[oc][r] col[r][q] is one GEMM, and Y'
 * (OC, N, oh ow) is permuted into y (N, OC, oh ow).
 *   im2col:          one work-item per element of col
 *   col2im:          dx[n][c][iy][ix] = sum of dcol over the taps that read it
 *                    (gather, one work-item per element of dx: deterministic)
 *   cnhw_to_nchw:    Y' (C, N, P) -> y (N, C, P);  nchw_to_cnhw: the inverse
 * Geometry: n c h w oh ow kh kw sh sw ph pw dh dw.
 */

#define CONV_GEOM long n, long c, long h, long w, long oh, long ow, long kh, long kw, long sh, long sw, long ph, \
                  long pw, long dh, long dw

__kernel void im2col(__global float *col, ulong col_off, __global const float *x, ulong x_off, CONV_GEOM)
{
    size_t i = get_global_id(0);
    const long q_count = n * oh * ow;
    if (i >= (ulong)(c * kh * kw * q_count)) return;
    long r = i / q_count, q = i % q_count;
    long ci = r / (kh * kw), ky = (r / kw) % kh, kx = r % kw;
    long ni = q / (oh * ow), oy = (q / ow) % oh, ox = q % ow;
    long iy = oy * sh - ph + ky * dh, ix = ox * sw - pw + kx * dw;
    float v = 0.0f;
    if (iy >= 0 && iy < h && ix >= 0 && ix < w) v = x[x_off + ((ni * c + ci) * h + iy) * w + ix];
    col[col_off + i] = v;
}

__kernel void col2im(__global float *dx, ulong dx_off, __global const float *col, ulong col_off, CONV_GEOM)
{
    size_t i = get_global_id(0);
    if (i >= (ulong)(n * c * h * w)) return;
    long ix = i % w, iy = (i / w) % h, ci = (i / (w * h)) % c, ni = i / (w * h * c);
    const long q_count = n * oh * ow;
    float acc = 0.0f;
    for (long ky = 0; ky < kh; ky++) {
        long ty = iy + ph - ky * dh; /* = oy * sh */
        if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
        long oy = ty / sh;
        for (long kx = 0; kx < kw; kx++) {
            long tx = ix + pw - kx * dw;
            if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
            long ox = tx / sw;
            long r = (ci * kh + ky) * kw + kx, q = (ni * oh + oy) * ow + ox;
            acc += col[col_off + r * q_count + q];
        }
    }
    dx[dx_off + i] = acc;
}

/* y[n][c][p] = t[c][n][p]: one work-item per element. */
__kernel void cnhw_to_nchw(__global float *y, ulong y_off, __global const float *t, ulong t_off, ulong n, ulong c,
                           ulong p)
{
    size_t i = get_global_id(0);
    if (i >= n * c * p) return;
    ulong pi = i % p, ci = (i / p) % c, ni = i / (p * c);
    y[y_off + i] = t[t_off + (ci * n + ni) * p + pi];
}

/* t[c][n][p] = y[n][c][p]: one work-item per element. */
__kernel void nchw_to_cnhw(__global float *t, ulong t_off, __global const float *y, ulong y_off, ulong n, ulong c,
                           ulong p)
{
    size_t i = get_global_id(0);
    if (i >= n * c * p) return;
    ulong pi = i % p, ni = (i / p) % n, ci = i / (p * n);
    t[t_off + i] = y[y_off + (ni * c + ci) * p + pi];
}
