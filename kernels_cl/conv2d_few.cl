/*
 * conv2d_few.cl - the weight and bias gradients of convolutions with few taps
 * (src/opencl/cl_conv2d.c). Built per tap count: -DCONV_TAPS=<cg kh kw>, so
 * that the per-tap loops have a fixed length, unroll, and keep their sums in
 * registers.
 */

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
 * (conv2d.cl) adds them up over the images in order. rows = CONV_TAPS, at
 * most 11 (registers).
 */

__kernel void conv_weight_grad_few(__global float *part, __global const float *xp, __global const float *dy,
                                   ulong dy_off, int n, int c, int hp, int wp, int oc, int oh, int ow, int kh,
                                   int kw, int sh, int dh, int dw_, int groups)
{
    const int t = (int)get_global_id(0); /* = ni oc + co */
    if (t >= n * oc) return;
    const int ni = t / oc, co = t - ni * oc, ocg = oc / groups, gi = co / ocg, cg = c / groups;
    const int taps = kh * kw, rows = CONV_TAPS; /* = cg kh kw */
    int off[CONV_TAPS]; /* offset in xp of each tap's first input */
#pragma unroll
    for (int r = 0; r < CONV_TAPS; r++)
        off[r] = ((ni * c + gi * cg + r / taps) * hp + r % taps / kw * dh) * wp + r % kw * dw_;
    float8 acc[CONV_TAPS], bias8 = 0.0f;
    float tail[CONV_TAPS], bias1 = 0.0f;
#pragma unroll
    for (int r = 0; r < CONV_TAPS; r++) acc[r] = 0.0f, tail[r] = 0.0f;
    __global const float *d = dy + dy_off + (ulong)t * oh * ow;
    for (int oy = 0; oy < oh; oy++, d += ow) {
        __global const float *xr = xp + oy * sh * wp;
        int ox = 0;
        for (; ox + 8 <= ow; ox += 8) {
            const float8 g = vload8(0, d + ox);
            bias8 += g;
#pragma unroll
            for (int r = 0; r < CONV_TAPS; r++) acc[r] = fma(vload8(0, xr + off[r] + ox), g, acc[r]);
        }
        if (ox < ow && ow >= 8) { /* the row's last eight pixels, the ones done already masked to 0 */
            const int base = ow - 8;
            const int8 fresh = (int8)(0, 1, 2, 3, 4, 5, 6, 7) + base >= ox;
            const float8 g = select((float8)0.0f, vload8(0, d + base), fresh);
            bias8 += g;
#pragma unroll
            for (int r = 0; r < CONV_TAPS; r++)
                acc[r] = fma(select((float8)0.0f, vload8(0, xr + off[r] + base), fresh), g, acc[r]);
            ox = ow;
        }
        for (; ox < ow; ox++) {
            const float g = d[ox];
            bias1 += g;
#pragma unroll
            for (int r = 0; r < CONV_TAPS; r++) tail[r] = fma(xr[off[r] + ox], g, tail[r]);
        }
    }
    __global float *out = part + (ulong)t * (rows + 1);
#define CONV_HSUM(v) ((v).s0 + (v).s1 + (v).s2 + (v).s3 + (v).s4 + (v).s5 + (v).s6 + (v).s7)
#pragma unroll
    for (int r = 0; r < CONV_TAPS; r++) out[r] = CONV_HSUM(acc[r]) + tail[r];
    out[rows] = CONV_HSUM(bias8) + bias1;
}
