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
 *   swap_outer:      Y' (C, N, P) -> y (N, C, P), and the inverse
 *                    (one work-item per row of P elements)
 *   im2col_ew, col2im_ew, swap_outer_ew: the same, one work-item per element
 *                    of the output, for GPUs (src/opencl/cl.h, gpu_shapes):
 *                    there neighbouring work-items must write neighbouring
 *                    floats, where on a CPU a work-item's own row is what
 *                    vectorises. col2im_ew sums each element's taps in the
 *                    same (ky, kx) order.
 * Geometry: n c h w oh ow kh kw sh sw ph pw dh dw, as int: index arithmetic
 * is 32-bit (64-bit division is slow on CPUs), and the host refuses
 * convolutions whose buffers reach 2^31 elements.
 */

#define CONV_GEOM int n, int c, int h, int w, int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh, \
                  int dw

__kernel void im2col(__global float *col, ulong col_off, __global const float *x, ulong x_off, CONV_GEOM)
{
    /* One work-item per row segment (r, n, oy): the ow columns ox = 0 .. ow-1 are contiguous in col. */
    const int t = (int)NNCL_GID();
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
    const int t = (int)NNCL_GID();
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

/* dst[i][j][:] = src[j][i][:] for dst (a, b, p) and src (b, a, p): one work-item per row of p elements. */
__kernel void swap_outer(__global float *dst, ulong dst_off, __global const float *src, ulong src_off, int a, int b,
                         int p)
{
    const int row = (int)NNCL_GID(); /* = i b + j */
    if (row >= a * b) return;
    const int i = row / b, j = row - i * b;
    __global float *d = dst + dst_off + (ulong)row * p;
    __global const float *s = src + src_off + ((ulong)j * a + i) * p;
    for (int e = 0; e < p; e++) d[e] = s[e];
}

__kernel void im2col_ew(__global float *col, ulong col_off, __global const float *x, ulong x_off, CONV_GEOM)
{
    if (NNCL_GID() >= (size_t)(c * kh * kw * n * oh * ow)) return;
    const int t = (int)NNCL_GID();
    const int ox = t % ow, oy = (t / ow) % oh, ni = (t / (ow * oh)) % n, r = t / (ow * oh * n);
    const int ci = r / (kh * kw), ky = (r / kw) % kh, kx = r % kw;
    const int iy = oy * sh - ph + ky * dh, ix = ox * sw - pw + kx * dw;
    col[col_off + t] = iy >= 0 && iy < h && ix >= 0 && ix < w ? x[x_off + ((ulong)(ni * c + ci) * h + iy) * w + ix]
                                                             : 0.0f;
}

__kernel void col2im_ew(__global float *dx, ulong dx_off, __global const float *col, ulong col_off, CONV_GEOM)
{
    if (NNCL_GID() >= (size_t)(n * c * h * w)) return;
    const int t = (int)NNCL_GID();
    const int ix = t % w, iy = (t / w) % h, ci = (t / (w * h)) % c, ni = t / (w * h * c);
    const int q_count = n * oh * ow;
    float acc = 0.0f;
    for (int ky = 0; ky < kh; ky++) {
        const int ty = iy + ph - ky * dh; /* = oy * sh */
        if (ty < 0 || ty % sh != 0 || ty / sh >= oh) continue;
        const int oy = ty / sh;
        for (int kx = 0; kx < kw; kx++) {
            const int tx = ix + pw - kx * dw; /* = ox * sw */
            if (tx < 0 || tx % sw != 0 || tx / sw >= ow) continue;
            const int r = (ci * kh + ky) * kw + kx;
            acc += col[col_off + (ulong)r * q_count + (ulong)(ni * oh + oy) * ow + tx / sw];
        }
    }
    dx[dx_off + t] = acc;
}

/* swap_outer, one work-item per element of dst (a, b, p). */
__kernel void swap_outer_ew(__global float *dst, ulong dst_off, __global const float *src, ulong src_off, int a,
                            int b, int p)
{
    if (NNCL_GID() >= (size_t)(a * b * p)) return;
    const int t = (int)NNCL_GID();
    const int e = t % p, row = t / p, i = row / b, j = row - i * b;
    dst[dst_off + t] = src[src_off + ((ulong)j * a + i) * p + e];
}

/*
 * Direct convolution (src/opencl/cl_conv2d.c uses it on CPU devices, where
 * building the column matrix costs more than the GEMM saves). It is an
 * implicit GEMM: Y[p][o] = sum_r X[p][r] P[r][o] + bias[o], with p an output
 * pixel, r = (ci kh + ky) kw + kx a tap, and X[p][r] gathered from x on the
 * fly (0 in the padding). P is the weight packed by conv_pack, tap-major with
 * the output channels of each group padded with zeros to a multiple of
 * CONV_OB, so that a row of P loads as whole vectors.
 *
 * Each work-item computes CONV_PB consecutive output pixels of one image
 * (flattened oy ow + ox, so a block may wrap onto the next row) by CONV_OB
 * output channels, in 2 CONV_PB vector accumulators: per tap it loads two
 * vectors of P, gathers CONV_PB scalars of x, and does 2 CONV_PB fma. No
 * local memory and no barriers (as in gemm.cl).
 * global = (groups * ceil(ocg / CONV_OB), n * ceil(oh ow / CONV_PB)).
 *
 * The gradient with respect to the input of a stride-1 convolution is the
 * same kernel run on dy with the flipped, transposed weight
 * (conv_pack with flip = 1) and padding dh (kh - 1) - ph.
 */
#define CONV_PB 6
#define CONV_OB 16

/* The register block (NNCL_BLOCK_ZERO in common.h) into acc[CONV_PB][CONV_OB], row by row. */
#define CONV_SPILL(acc)                                                                                            \
    (vstore8(c00, 0, acc[0]), vstore8(c01, 1, acc[0]), vstore8(c10, 0, acc[1]), vstore8(c11, 1, acc[1]),           \
     vstore8(c20, 0, acc[2]), vstore8(c21, 1, acc[2]), vstore8(c30, 0, acc[3]), vstore8(c31, 1, acc[3]),           \
     vstore8(c40, 0, acc[4]), vstore8(c41, 1, acc[4]), vstore8(c50, 0, acc[5]), vstore8(c51, 1, acc[5]))

/*
 * P[g][r][o] for o < ldp, r < cg kh kw; W is (oc, cg, kh, kw) with ocg = oc / groups.
 * flip == 0: the forward weight, P[g][(ci kh + ky) kw + kx][o] = W[g ocg + o][ci][ky][kx] (o < ocg);
 * flip == 1: the weight of the input gradient, whose inputs are the ocg
 *            output channels and whose outputs are the cg input channels:
 *            P[g][(o kh + ky) kw + kx][ci] = W[g ocg + o][ci][kh-1-ky][kw-1-kx] (ci < cg).
 * Columns past the outputs are 0. One work-item per element of P.
 */
__kernel void conv_pack(__global float *p, __global const float *wt, ulong w_off, int oc, int cg, int kh, int kw,
                        int groups, int ldp, int flip)
{
    const int ocg = oc / groups, taps = kh * kw;
    const int rows = (flip ? ocg : cg) * taps, outs = flip ? cg : ocg;
    const int t = (int)NNCL_GID();
    if (t >= groups * rows * ldp) return;
    const int o = t % ldp, r = (t / ldp) % rows, gi = t / (ldp * rows);
    const int a = r / taps, tap = r % taps; /* a: input channel (forward) or output channel (flip) */
    float v = 0.0f;
    if (o < outs) {
        const int ci = flip ? o : a, co = gi * ocg + (flip ? a : o);
        const int wtap = flip ? taps - 1 - tap : tap;
        v = wt[w_off + ((ulong)co * cg + ci) * taps + wtap];
    }
    p[t] = v;
}

/*
 * xp (rows of the n c images, hp x wp) = x (h x w) moved by (ph, pw), 0
 * elsewhere: the input of conv_direct, which then reads without bounds
 * checks. hp, wp are the extent the windows reach, so a negative padding
 * crops. One work-item per row of xp.
 */
__kernel void conv_pad(__global float *xp, __global const float *x, ulong x_off, int images, int h, int w, int hp,
                       int wp, int ph, int pw)
{
    const int t = (int)NNCL_GID(); /* = image hp + yp */
    if (t >= images * hp) return;
    const int img = t / hp, iy = t - img * hp - ph;
    __global float *dst = xp + (ulong)t * wp;
    if (iy < 0 || iy >= h) {
        for (int xq = 0; xq < wp; xq++) dst[xq] = 0.0f;
        return;
    }
    __global const float *src = x + x_off + ((ulong)img * h + iy) * w;
    /* Three plain loops (the left padding, the copy, the right padding) rather than one with a test per
       element: the copy then vectorises. */
    const int lo = max(0, min(pw, wp)), hi = max(lo, min(wp, w + pw)); /* dst[lo, hi) has a source */
    for (int xq = 0; xq < lo; xq++) dst[xq] = 0.0f;
    for (int xq = lo; xq < hi; xq++) dst[xq] = src[xq - pw];
    for (int xq = hi; xq < wp; xq++) dst[xq] = 0.0f;
}

__kernel void conv_direct(__global float *y, ulong y_off, __global const float *xp, __global const float *p, int ldp,
                          __global const float *bias, ulong bias_off, int has_bias, int relu, int n, int c, int hp,
                          int wp,
                          int oc, int oh, int ow, int kh, int kw, int sh, int sw, int dh, int dw, int groups)
{
    const int ocg = oc / groups, cg = c / groups;
    const int oblocks = (ocg + CONV_OB - 1) / CONV_OB, npix = oh * ow, pblocks = (npix + CONV_PB - 1) / CONV_PB;
    const int ob = (int)get_global_id(0), pb = (int)get_global_id(1);
    if (ob >= groups * oblocks || pb >= n * pblocks) return;
    const int gi = ob / oblocks, o0 = (ob - gi * oblocks) * CONV_OB;
    const int ni = pb / pblocks, p0 = (pb - ni * pblocks) * CONV_PB;
    /* Offset in xp of each output pixel's window; pixels past the image repeat the last one. */
#define CONV_ORIGIN(i) const int q##i = min(p0 + i, npix - 1), x##i = q##i / ow * sh * wp + q##i % ow * sw
    CONV_ORIGIN(0);
    CONV_ORIGIN(1);
    CONV_ORIGIN(2);
    CONV_ORIGIN(3);
    CONV_ORIGIN(4);
    CONV_ORIGIN(5);
    NNCL_BLOCK_ZERO(float8);
    __global const float *pr = p + (ulong)gi * cg * kh * kw * ldp + o0;
    /* One tap: two vectors of the packed weight at pr, six input values at xt + x0 .. x5. */
#define CONV_STEP(pr, xt)                                                                                          \
    do {                                                                                                           \
        const float8 b0 = vload8(0, pr), b1 = vload8(1, pr);                                                       \
        const float8 a0 = (xt)[x0], a1 = (xt)[x1], a2 = (xt)[x2], a3 = (xt)[x3], a4 = (xt)[x4], a5 = (xt)[x5];     \
        NNCL_BLOCK_FMA(a0, a1, a2, a3, a4, a5, b0, b1);                                                            \
    } while (0)
    const int rows3 = kw == 3 && dw == 1; /* the common 3-wide window: its row of taps unrolled */
    NNCL_NO_AUTOVEC
    for (int ci = 0; ci < cg; ci++) {
        __global const float *xc = xp + ((ulong)ni * c + gi * cg + ci) * hp * wp;
        NNCL_NO_AUTOVEC
        for (int ky = 0; ky < kh; ky++) {
            __global const float *xr = xc + ky * dh * wp;
            if (rows3) {
                CONV_STEP(pr, xr);
                CONV_STEP(pr + ldp, xr + 1);
                CONV_STEP(pr + 2 * ldp, xr + 2);
                pr += 3 * ldp;
                continue;
            }
            NNCL_NO_AUTOVEC
            for (int kx = 0; kx < kw; kx++, pr += ldp) CONV_STEP(pr, xr + kx * dw);
        }
    }
    const int pn = min(CONV_PB, npix - p0), on = min(CONV_OB, ocg - o0);
    const ulong y0 = y_off + ((ulong)ni * oc + gi * ocg + o0) * npix + p0; /* (channel o0, pixel p0) */
    if (pn == CONV_PB && on == CONV_OB) {
        /* A whole block: bias and relu on the vectors, then channel by channel six contiguous pixels. */
        const float8 b0 = has_bias ? vload8(0, bias + bias_off + gi * ocg + o0) : 0.0f;
        const float8 b1 = has_bias ? vload8(1, bias + bias_off + gi * ocg + o0) : 0.0f;
#define CONV_OUT(c, b) c = c + b, c = relu ? select((float8)0.0f, c, isgreater(c, 0.0f)) : c
        CONV_OUT(c00, b0), CONV_OUT(c10, b0), CONV_OUT(c20, b0), CONV_OUT(c30, b0), CONV_OUT(c40, b0);
        CONV_OUT(c50, b0), CONV_OUT(c01, b1), CONV_OUT(c11, b1), CONV_OUT(c21, b1), CONV_OUT(c31, b1);
        CONV_OUT(c41, b1), CONV_OUT(c51, b1);
#define CONV_STORE(o, h, lane)                                                                                     \
    vstore4((float4)(c0##h.lane, c1##h.lane, c2##h.lane, c3##h.lane), 0, y + y0 + (ulong)(o) * npix),              \
        vstore2((float2)(c4##h.lane, c5##h.lane), 0, y + y0 + (ulong)(o) * npix + 4)
        CONV_STORE(0, 0, s0), CONV_STORE(1, 0, s1), CONV_STORE(2, 0, s2), CONV_STORE(3, 0, s3);
        CONV_STORE(4, 0, s4), CONV_STORE(5, 0, s5), CONV_STORE(6, 0, s6), CONV_STORE(7, 0, s7);
        CONV_STORE(8, 1, s0), CONV_STORE(9, 1, s1), CONV_STORE(10, 1, s2), CONV_STORE(11, 1, s3);
        CONV_STORE(12, 1, s4), CONV_STORE(13, 1, s5), CONV_STORE(14, 1, s6), CONV_STORE(15, 1, s7);
        return;
    }
    /* A block at an edge, element by element: acc[i][o] is pixel p0 + i, channel o0 + o. */
    float acc[CONV_PB][CONV_OB];
    CONV_SPILL(acc);
    NNCL_NO_AUTOVEC
    for (int o = 0; o < on; o++) {
        const float b = has_bias ? bias[bias_off + gi * ocg + o0 + o] : 0.0f;
        NNCL_NO_AUTOVEC
        for (int i = 0; i < pn; i++) {
            const float v = acc[i][o] + b;
            y[y0 + (ulong)o * npix + i] = relu ? nncl_relu(v) : v;
        }
    }
}

/*
 * The weight gradient, directly: dW_g[o][r] += sum_q X[q][r] dY[q][o], the
 * same implicit GEMM with the roles turned (taps are the rows, pixels q of
 * the whole batch the reduction). dY comes as dyt, the output gradient with
 * channels last and each group's channels padded to ldp (conv_channels_last),
 * so that a pixel's channels load as whole vectors; X is gathered from the
 * padded input xp (conv_pad). Each work-item sums CONV_PB taps by CONV_OB
 * output channels over every pixel of the batch, in a fixed order.
 * global = (groups * ldp / CONV_OB, ceil(cg kh kw / CONV_PB)).
 */
__kernel void conv_channels_last(__global float *dyt, __global const float *dy, ulong dy_off, int n, int oc,
                                 int npix, int groups, int ldp)
{
    /* dyt[q][g ldp + o] = dy[ni][g ocg + o][p] (0 for o >= ocg), q = ni npix + p: one work-item per q. */
    const int q = (int)NNCL_GID();
    if (q >= n * npix) return;
    const int ni = q / npix, pix = q - ni * npix, ocg = oc / groups;
    __global float *dst = dyt + (ulong)q * groups * ldp;
    __global const float *src = dy + dy_off + (ulong)ni * oc * npix + pix;
    for (int gi = 0; gi < groups; gi++)
        for (int o = 0; o < ldp; o++) dst[gi * ldp + o] = o < ocg ? src[(ulong)(gi * ocg + o) * npix] : 0.0f;
}

__kernel void conv_weight_grad(__global float *dw, ulong dw_off, __global const float *xp,
                               __global const float *dyt, int ldp, int n, int c, int hp, int wp, int oc, int oh,
                               int ow, int kh, int kw, int sh, int sw, int dh, int dw_, int groups)
{
    const int ocg = oc / groups, cg = c / groups, taps = kh * kw, rows = cg * taps;
    const int oblocks = ldp / CONV_OB, rblocks = (rows + CONV_PB - 1) / CONV_PB;
    const int ob = (int)get_global_id(0), rb = (int)get_global_id(1);
    if (ob >= groups * oblocks || rb >= rblocks) return;
    const int gi = ob / oblocks, o0 = (ob - gi * oblocks) * CONV_OB, r0 = rb * CONV_PB;
    /* Offset in an image of xp of each tap's first input; taps past the end repeat the last one. */
#define CONV_TAPOFF(i)                                                                                             \
    const int r_##i = min(r0 + i, rows - 1), t##i = (gi * cg + r_##i / taps) * hp * wp +                           \
                                                    r_##i % taps / kw * dh * wp + r_##i % kw * dw_
    CONV_TAPOFF(0);
    CONV_TAPOFF(1);
    CONV_TAPOFF(2);
    CONV_TAPOFF(3);
    CONV_TAPOFF(4);
    CONV_TAPOFF(5);
    NNCL_BLOCK_ZERO(float8);
    __global const float *dr = dyt + gi * ldp + o0;
    const int ldq = groups * ldp;
    NNCL_NO_AUTOVEC
    for (int ni = 0; ni < n; ni++) {
        __global const float *xi = xp + (ulong)ni * c * hp * wp;
        NNCL_NO_AUTOVEC
        for (int oy = 0; oy < oh; oy++) {
            __global const float *xr = xi + oy * sh * wp;
            NNCL_NO_AUTOVEC
            for (int ox = 0; ox < ow; ox++, dr += ldq) {
                __global const float *xt = xr + ox * sw;
                const float8 b0 = vload8(0, dr), b1 = vload8(1, dr);
                const float8 a0 = xt[t0], a1 = xt[t1], a2 = xt[t2], a3 = xt[t3], a4 = xt[t4], a5 = xt[t5];
                NNCL_BLOCK_FMA(a0, a1, a2, a3, a4, a5, b0, b1);
            }
        }
    }
    float acc[CONV_PB][CONV_OB]; /* acc[i][o]: tap r0 + i, channel o0 + o */
    CONV_SPILL(acc);
    const int rn = min(CONV_PB, rows - r0), on = min(CONV_OB, ocg - o0);
    NNCL_NO_AUTOVEC
    for (int o = 0; o < on; o++) {
        __global float *wr = dw + dw_off + (ulong)(gi * ocg + o0 + o) * rows + r0;
        NNCL_NO_AUTOVEC
        for (int i = 0; i < rn; i++) wr[i] += acc[i][o];
    }
}

/* db[g ocg + o] += sum_q dyt[q][g ldp + o]: one work-item per CONV_OB channels, in a fixed order. */
__kernel void conv_bias_grad(__global float *db, ulong db_off, __global const float *dyt, int rows, int oc,
                             int groups, int ldp)
{
    const int ocg = oc / groups, oblocks = ldp / CONV_OB, ob = (int)NNCL_GID();
    if (ob >= groups * oblocks) return;
    const int gi = ob / oblocks, o0 = (ob - gi * oblocks) * CONV_OB, ldq = groups * ldp;
    float8 s0 = 0.0f, s1 = 0.0f;
    __global const float *dr = dyt + gi * ldp + o0;
    NNCL_NO_AUTOVEC
    for (int q = 0; q < rows; q++, dr += ldq) {
        s0 += vload8(0, dr);
        s1 += vload8(1, dr);
    }
    float s[CONV_OB];
    vstore8(s0, 0, s), vstore8(s1, 1, s);
    for (int o = 0; o < min(CONV_OB, ocg - o0); o++) db[db_off + gi * ocg + o0 + o] += s[o];
}

#define CONV_FEW_ROWS 11

/*
 * The weight and bias gradients of a convolution with few taps (the first
 * layer of an image network: one input channel, 3 x 3) and stride 1 along
 * rows, from dy as it is. With few taps the channels-last copy of dy that
 * conv_weight_grad needs costs more than the products, so instead one
 * work-item takes one (image, output channel) plane of dy and sums, for each
 * tap, dy times the shifted input over the plane's pixels, eight at a time
 * (the pixels of an output row are contiguous in dy and, for stride 1, in
 * the padded input; a row's last pixels are a last vector whose lanes done
 * already are masked); the bias gradient is one more sum. Partial sums per
 * image go to part[(ni oc + co) (rows + 1) + r]; conv_grad_reduce
 * (below) adds them up over the images in order. rows = cg kh kw, at
 * most CONV_FEW_ROWS (registers).
 *
 * A kernel per row count would unroll every count exactly, but each one
 * instantiated costs every program build about 35 ms on PoCL, used or not.
 * So there are four, conv_weight_grad_few_<R> for R = 3, 6, 9, 11, and a
 * count runs on the smallest R >= rows: the R - rows taps past the last
 * repeat it, and their sums are dropped. That costs multiply-adds in a
 * kernel that reads more than it computes: on PoCL, a 2 x 2 kernel on one
 * channel (4 taps on R = 6) took 15-25% longer, a 1 x 1 (1 on 3) 5-20%;
 * 9 taps, a 3 x 3 kernel on one channel, is exact.
 */

NNCL_INSTANTIATED void conv_weight_grad_few(const int R, int rows, __global float *part, __global const float *xp,
                                            __global const float *dy, int n, int c, int hp, int wp, int oc, int oh,
                                            int ow, int kh, int kw, int sh, int dh, int dw_, int groups)
{
    const int t = (int)NNCL_GID(); /* = ni oc + co */
    if (t >= n * oc) return;
    const int ni = t / oc, co = t - ni * oc, ocg = oc / groups, gi = co / ocg, cg = c / groups;
    const int taps = kh * kw;
    int off[CONV_FEW_ROWS]; /* offset in xp of each tap's first input; taps past the last repeat it */
#pragma unroll
    for (int i = 0; i < R; i++) {
        const int r = min(i, rows - 1);
        off[i] = ((ni * c + gi * cg + r / taps) * hp + r % taps / kw * dh) * wp + r % kw * dw_;
    }
    float8 acc[CONV_FEW_ROWS], bias8 = 0.0f;
    float tail[CONV_FEW_ROWS], bias1 = 0.0f;
#pragma unroll
    for (int r = 0; r < R; r++) acc[r] = 0.0f, tail[r] = 0.0f;
    __global const float *d = dy + (ulong)t * oh * ow;
    NNCL_NO_AUTOVEC
    for (int oy = 0; oy < oh; oy++, d += ow) {
        __global const float *xr = xp + oy * sh * wp;
        int ox = 0;
        NNCL_NO_AUTOVEC
        for (; ox + 8 <= ow; ox += 8) {
            const float8 g = vload8(0, d + ox);
            bias8 += g;
#pragma unroll
            for (int r = 0; r < R; r++) acc[r] = fma(vload8(0, xr + off[r] + ox), g, acc[r]);
        }
        if (ox < ow && ow >= 8) { /* the row's last eight pixels, the ones done already masked to 0 */
            const int base = ow - 8;
            const int8 fresh = (int8)(0, 1, 2, 3, 4, 5, 6, 7) + base >= ox;
            const float8 g = select((float8)0.0f, vload8(0, d + base), fresh);
            bias8 += g;
#pragma unroll
            for (int r = 0; r < R; r++)
                acc[r] = fma(select((float8)0.0f, vload8(0, xr + off[r] + base), fresh), g, acc[r]);
            ox = ow;
        }
        NNCL_NO_AUTOVEC
        for (; ox < ow; ox++) {
            const float g = d[ox];
            bias1 += g;
#pragma unroll
            for (int r = 0; r < R; r++) tail[r] = fma(xr[off[r] + ox], g, tail[r]);
        }
    }
    __global float *out = part + (ulong)t * (rows + 1);
#define CONV_HSUM(v) ((v).s0 + (v).s1 + (v).s2 + (v).s3 + (v).s4 + (v).s5 + (v).s6 + (v).s7)
#pragma unroll
    for (int r = 0; r < R; r++)
        if (r < rows) out[r] = CONV_HSUM(acc[r]) + tail[r];
    out[rows] = CONV_HSUM(bias8) + bias1;
}

/* conv_weight_grad_few_<R>: its loops over R taps have a fixed length, unroll, and keep their sums in registers. */
#define CONV_FEW_KERNEL(R)                                                                                           \
    __kernel void conv_weight_grad_few_##R(__global float *part, __global const float *xp, __global const float *dy, \
                                           ulong dy_off, int rows, int n, int c, int hp, int wp, int oc, int oh,     \
                                           int ow, int kh, int kw, int sh, int dh, int dw_, int groups)              \
    {                                                                                                                \
        conv_weight_grad_few(R, rows, part, xp, dy + dy_off, n, c, hp, wp, oc, oh, ow, kh, kw, sh, dh, dw_,          \
                             groups);                                                                                \
    }
CONV_FEW_KERNEL(3)
CONV_FEW_KERNEL(6)
CONV_FEW_KERNEL(9)
CONV_FEW_KERNEL(11)

/* dw[co][r] += sum over images of part[ni][co][r]; db[co] += the same of the last column (has_bias). */
__kernel void conv_grad_reduce(__global float *dw, ulong dw_off, __global float *db, ulong db_off, int has_bias,
                               __global const float *part, int n, int oc, int rows)
{
    const int t = (int)NNCL_GID(); /* = co (rows + 1) + r */
    if (t >= oc * (rows + 1)) return;
    const int co = t / (rows + 1), r = t - co * (rows + 1);
    if (r == rows && !has_bias) return;
    float s = 0.0f;
    for (int ni = 0; ni < n; ni++) s += part[((ulong)ni * oc + co) * (rows + 1) + r];
    if (r < rows) dw[dw_off + (ulong)co * rows + r] += s;
    else db[db_off + co] += s;
}
