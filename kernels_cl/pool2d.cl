/*
 * pool2d.cl - max and average pooling, NCHW, floor output sizes; the same
 * arithmetic in the same order as the reference in src/cpu/cpu_pool2d.c, so
 * the two agree bit for bit.
 *
 *   pool2d_forward:   one work-item per output row, four outputs at a time
 *                     as vector lanes. Max takes the first
 *                     maximum (NaN wins; in a window of -inf, the first
 *                     element) and records its position ih * w + iw;
 *                     average sums the window (padding counts as zero) and
 *                     multiplies by inv = 1 / (kh kw), computed on the host.
 *   pool2d_forward_max2: the same result for 2 x 2 max pooling with stride
 *                     2 and no padding (the reference CNN's): one work-item
 *                     per output row, four outputs at a time from one
 *                     vector of eight inputs in each of the two input rows,
 *                     without the general kernel's window loops (1.6 to 1.9
 *                     times as fast on PoCL, and half its compile time).
 *   pool2d_backward:  one work-item per input element, gathering from every
 *                     output window that covers it, in increasing (oh, ow)
 *                     order: no atomics, deterministic.
 *   pool2d_backward_disjoint: the same result when windows do not overlap,
 *                     by scattering from each output into its own window.
 *   pool2d_backward_max2: the same result for 2 x 2 max pooling whose windows
 *                     tile the input exactly (stride 2, no padding, even
 *                     sizes: the reference CNN's): one work-item per output
 *                     row writes both input rows under it, zeros included,
 *                     as whole vectors, so dx needs no zeroing first.
 * With relu set (max pooling of a relu's output), the relu's backward is
 * folded into the backward kernels: an output whose maximum ry is not > 0
 * passes no gradient, exactly as the relu's own backward would zero it.
 * Geometry arguments: n c, h w oh ow kh kw sh sw ph pw, as int (32-bit index
 * arithmetic; the host refuses tensors of 2^31 elements or more).
 */

#define POOL_GEOM int nc, int h, int w, int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw

/* Max pooling's step over four lanes: where inside, value v at position pos replaces the best so far when
   greater, or NaN, or when it is the window's first (the first maximum wins, NaN wins, and a window of -inf
   still has a position for its gradient). best and at are the caller's float4 and int4, at starting at -1. */
#define POOL_MAX_TAKE(v, pos, inside)                                                                              \
    do {                                                                                                           \
        const int4 take = (inside) & (isgreater(v, best) | isnan(v) | (at < 0));                                   \
        best = select(best, v, take);                                                                              \
        at = select(at, pos, take);                                                                                \
    } while (0)

/*
 * Four outputs of a row at once, as lanes of float4: which element of a window
 * wins is data, and a scalar compare becomes a branch (the compiler turns even
 * a select back into one) that mispredicts at a cost larger than the window.
 * Vector compares and selects do not branch. Lanes past the row's end repeat
 * its last output and are not stored. The common 2-wide, stride-2 window
 * reads each window row of four outputs as one vector of eight and splits
 * it into its even and odd elements.
 */
__kernel void pool2d_forward(__global float *y, ulong y_off, __global float *idx, ulong idx_off,
                             __global const float *x, ulong x_off, POOL_GEOM, int is_max, float inv)
{
    /* One work-item per output row (plane p, row oy): no index division per element. */
    const int t = (int)NNCL_GID();
    if (t >= nc * oh) return;
    const int p = t / oh, oy = t - p * oh;
    __global const float *xp = x + x_off + (ulong)p * h * w;
    const ulong row = y_off + (ulong)t * ow, irow = idx_off + (ulong)t * ow;
    NNCL_NO_AUTOVEC
    for (int b = 0; b < ow; b += 4) {
        /* In a row at least four wide, the last block ends at the row's end, overlapping the block before
           it: those outputs are computed again, the same way, and stored again with the same values. */
        const int ox0 = ow >= 4 ? min(b, ow - 4) : b;
        const int4 ox = min((int4)(ox0, ox0 + 1, ox0 + 2, ox0 + 3), ow - 1);
        const int full = ox0 + 4 <= ow, pairs = full && kw == 2 && sw == 2 && pw == 0 && 2 * ox0 + 8 <= w;
        float4 best = -INFINITY, sum = 0.0f;
        int4 at = -1;
#define POOL_TAKE(v, pos, inside)                                                                                  \
    do {                                                                                                           \
        POOL_MAX_TAKE(v, pos, inside);                                                                             \
        sum += select((float4)0.0f, v, inside);                                                                    \
    } while (0)
        NNCL_NO_AUTOVEC
        for (int ky = 0; ky < kh; ky++) {
            const int iy = oy * sh - ph + ky;
            if (iy < 0 || iy >= h) continue;
            if (pairs) {
                const float8 v8 = vload8(0, xp + iy * w + 2 * ox0);
                const int4 pos = iy * w + 2 * ox;
                POOL_TAKE(v8.even, pos, (int4)(-1));
                POOL_TAKE(v8.odd, pos + 1, (int4)(-1));
                continue;
            }
            NNCL_NO_AUTOVEC
            for (int kx = 0; kx < kw; kx++) {
                const int4 ix = ox * sw - pw + kx;
                const int4 inside = ix >= 0 && ix < w;
                const int4 pos = iy * w + clamp(ix, 0, w - 1);
                const float4 v = (float4)(xp[pos.s0], xp[pos.s1], xp[pos.s2], xp[pos.s3]);
                POOL_TAKE(v, pos, inside);
            }
        }
        if (full) {
            if (is_max) {
                vstore4(best, 0, y + row + ox0);
                vstore4(convert_float4(at), 0, idx + irow + ox0);
            } else {
                vstore4(sum * inv, 0, y + row + ox0);
            }
            continue;
        }
        float vb[4], vs[4];
        int va[4];
        vstore4(best, 0, vb);
        vstore4(sum, 0, vs);
        vstore4(at, 0, va);
        NNCL_NO_AUTOVEC
        for (int l = 0; l < 4 && ox0 + l < ow; l++) {
            if (is_max) {
                y[row + ox0 + l] = vb[l];
                idx[irow + ox0 + l] = (float)va[l];
            } else {
                y[row + ox0 + l] = vs[l] * inv;
            }
        }
    }
}

__kernel void pool2d_forward_max2(__global float *y, ulong y_off, __global float *idx, ulong idx_off,
                                  __global const float *x, ulong x_off, POOL_GEOM, int is_max, float inv)
{
    const int t = (int)NNCL_GID();
    if (t >= nc * oh) return;
    const int p = t / oh, oy = t - p * oh;
    __global const float *x0 = x + x_off + ((ulong)p * h + 2 * oy) * w, *x1 = x0 + w;
    const ulong row = y_off + (ulong)t * ow, irow = idx_off + (ulong)t * ow;
    NNCL_NO_AUTOVEC
    for (int b = 0; ow >= 4 && b < ow; b += 4) {
        const int ox0 = min(b, ow - 4);
        const float8 top = vload8(0, x0 + 2 * ox0), bot = vload8(0, x1 + 2 * ox0);
        const int4 pos = (2 * oy) * w + 2 * (ox0 + (int4)(0, 1, 2, 3));
        float4 best = -INFINITY;
        int4 at = -1;
        POOL_MAX_TAKE(top.even, pos, (int4)(-1));
        POOL_MAX_TAKE(top.odd, pos + 1, (int4)(-1));
        POOL_MAX_TAKE(bot.even, pos + w, (int4)(-1));
        POOL_MAX_TAKE(bot.odd, pos + w + 1, (int4)(-1));
        vstore4(best, 0, y + row + ox0);
        vstore4(convert_float4(at), 0, idx + irow + ox0);
    }
    NNCL_NO_AUTOVEC
    for (int ox = ow >= 4 ? ow : 0; ox < ow; ox++) {
        const int pos = (2 * oy) * w + 2 * ox;
        const float c0 = x0[2 * ox], c1 = x0[2 * ox + 1], c2 = x1[2 * ox], c3 = x1[2 * ox + 1];
        float best = c0;
        int at = pos;
        if (c1 > best || isnan(c1)) best = c1, at = pos + 1;
        if (c2 > best || isnan(c2)) best = c2, at = pos + w;
        if (c3 > best || isnan(c3)) best = c3, at = pos + w + 1;
        y[row + ox] = best;
        idx[irow + ox] = (float)at;
    }
}

/* Whether output o's gradient passes the folded relu: no relu, or its maximum ry[o] is > 0. */
int passes(int relu, __global const float *ry, ulong o)
{
    return !relu || ry[o] > 0.0f;
}

__kernel void pool2d_backward(__global float *dx, ulong dx_off, __global const float *dy, ulong dy_off,
                              __global const float *idx, ulong idx_off, POOL_GEOM, int is_max, float inv,
                              __global const float *ry, ulong ry_off, int relu)
{
    const int i = (int)NNCL_GID();
    if (i >= nc * h * w) return;
    const int p = i / (h * w), r = i % (h * w), iy = r / w, ix = r % w;
    /* Outputs whose window covers (iy, ix): oy * sh - ph <= iy < oy * sh - ph + kh. */
    const int num_y = iy + ph - kh + 1, num_x = ix + pw - kw + 1;
    const int oy0 = num_y <= 0 ? 0 : (num_y + sh - 1) / sh, oy1 = min((iy + ph) / sh, oh - 1);
    const int ox0 = num_x <= 0 ? 0 : (num_x + sw - 1) / sw, ox1 = min((ix + pw) / sw, ow - 1);
    float acc = 0.0f;
    for (int oy = oy0; oy <= oy1; oy++) {
        for (int ox = ox0; ox <= ox1; ox++) {
            const int o = (p * oh + oy) * ow + ox;
            if (is_max) {
                if ((int)idx[idx_off + o] == r && passes(relu, ry, ry_off + o)) acc += dy[dy_off + o];
            } else {
                acc += dy[dy_off + o] * inv;
            }
        }
    }
    dx[dx_off + i] = acc;
}

/*
 * Backward when the windows do not overlap (stride >= kernel): every input
 * gets at most one term, so each output scatters into its own window of dx,
 * which was zeroed first. The result equals pool2d_backward's bit for bit,
 * at a fraction of the index arithmetic: it stores 0 + t as that kernel's
 * sum does, which is t except for t = -0 (0 + -0 is +0).
 */
__kernel void pool2d_backward_disjoint(__global float *dx, ulong dx_off, __global const float *dy, ulong dy_off,
                                       __global const float *idx, ulong idx_off, POOL_GEOM, int is_max, float inv,
                                       __global const float *ry, ulong ry_off, int relu)
{
    const int o = (int)NNCL_GID();
    if (o >= nc * oh * ow) return;
    const int p = o / (oh * ow), r = o % (oh * ow), oy = r / ow, ox = r % ow;
    __global float *dxp = dx + dx_off + (ulong)p * h * w;
    const float g = 0.0f + dy[dy_off + o];
    if (is_max) {
        const int at = (int)idx[idx_off + o];
        if (at >= 0) dxp[at] = passes(relu, ry, ry_off + o) ? g : 0.0f;
        return;
    }
    const float share = 0.0f + dy[dy_off + o] * inv;
    for (int ky = 0; ky < kh; ky++) {
        const int iy = oy * sh - ph + ky;
        if (iy < 0 || iy >= h) continue;
        for (int kx = 0; kx < kw; kx++) {
            const int ix = ox * sw - pw + kx;
            if (ix >= 0 && ix < w) dxp[iy * w + ix] = share;
        }
    }
}

__kernel void pool2d_backward_max2(__global float *dx, ulong dx_off, __global const float *dy, ulong dy_off,
                                   __global const float *idx, ulong idx_off, POOL_GEOM, int is_max, float inv,
                                   __global const float *ry, ulong ry_off, int relu)
{
    const int t = (int)NNCL_GID(); /* output row oy of plane p */
    if (t >= nc * oh) return;
    const int p = t / oh, oy = t - p * oh;
    __global float *d0 = dx + dx_off + ((ulong)p * h + 2 * oy) * w, *d1 = d0 + w;
    const ulong o = (ulong)t * ow;
    /* Four outputs at a time: two vectors of eight inputs. The last block of a row ends at its end,
       overlapping the one before (the same values are stored again); rows under four take the scalar path. */
    int ox0 = 0;
    NNCL_NO_AUTOVEC
    for (int b = 0; ow >= 4 && b < ow; b += 4) {
        ox0 = min(b, ow - 4);
        float4 g = 0.0f + vload4(0, dy + dy_off + o + ox0); /* 0 + dy, as in pool2d_backward_disjoint */
        if (relu) g = select((float4)(0.0f), g, isgreater(vload4(0, ry + ry_off + o + ox0), (float4)(0.0f)));
        const int4 at = convert_int4(vload4(0, idx + idx_off + o + ox0));
        const int4 top = (2 * oy) * w + 2 * (ox0 + (int4)(0, 1, 2, 3)), bottom = top + w;
        const float4 z = (float4)(0.0f);
        const float4 t0 = select(z, g, at == top), t1 = select(z, g, at == top + 1);
        const float4 b0 = select(z, g, at == bottom), b1 = select(z, g, at == bottom + 1);
        vstore8(shuffle2(t0, t1, (uint8)(0, 4, 1, 5, 2, 6, 3, 7)), 0, d0 + 2 * ox0);
        vstore8(shuffle2(b0, b1, (uint8)(0, 4, 1, 5, 2, 6, 3, 7)), 0, d1 + 2 * ox0);
    }
    NNCL_NO_AUTOVEC
    for (ox0 = ow >= 4 ? ow : 0; ox0 < ow; ox0++) {
        const float g = passes(relu, ry, ry_off + o + ox0) ? 0.0f + dy[dy_off + o + ox0] : 0.0f;
        const int at = (int)idx[idx_off + o + ox0], top = (2 * oy) * w + 2 * ox0;
        d0[2 * ox0] = at == top ? g : 0.0f;
        d0[2 * ox0 + 1] = at == top + 1 ? g : 0.0f;
        d1[2 * ox0] = at == top + w ? g : 0.0f;
        d1[2 * ox0 + 1] = at == top + w + 1 ? g : 0.0f;
    }
}
