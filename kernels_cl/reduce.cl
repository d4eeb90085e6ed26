/*
 * reduce.cl - the sum and the Euclidean norm of a vector in two passes, with
 * a fixed order of summation for a given n, so results are reproducible run
 * to run.
 *
 *   sum_partials: work-item g of `parts` sums x[g], x[g + parts], ... into
 *                 partials[g]. Consecutive work-items read consecutive
 *                 elements, which coalesces on GPUs.
 *   sum_finish:   one work-item adds the `parts` partial sums in order.
 *   norm_partials, norm_finish: the same for ||x||_2 (gradient clipping's),
 *                 scaled so that no square overflows or vanishes: a pass
 *                 finds the largest magnitude m of its values, then sums
 *                 (x / m)^2 <= 1 and stores m sqrt(sum), the norm of those
 *                 values. A float sum of squares overflows once the norm
 *                 passes 1.8e19 (and clipping is for the gradients that grow),
 *                 and squares values below 1e-19 into denormals, or to 0
 *                 below 2.6e-23; this norm is finite whenever the true one
 *                 is. NaN anywhere gives NaN.
 *
 * No local memory and no barriers.
 */

__kernel void sum_partials(__global float *partials, __global const float *x, ulong x_off, ulong n, uint parts)
{
    size_t g = NNCL_GID();
    if (g >= parts) return;
    float acc = 0.0f;
    for (ulong i = g; i < n; i += parts) acc += x[x_off + i];
    partials[g] = acc;
}

__kernel void sum_finish(__global float *out, ulong out_off, __global const float *partials, uint parts)
{
    if (NNCL_GID() != 0) return;
    float acc = 0.0f;
    for (uint g = 0; g < parts; g++) acc += partials[g];
    out[out_off] = acc;
}

/* The norm of x[first], x[first + stride], ... below x + end, as the header says. */
float scaled_norm(__global const float *x, ulong first, ulong end, ulong stride)
{
    float m = 0.0f;
    for (ulong i = first; i < end; i += stride) {
        const float a = fabs(x[i]);
        m = a > m || isnan(a) ? a : m; /* NaN stays */
    }
    if (!(m > 0.0f && m <= FLT_MAX)) return m; /* 0, inf or NaN: the norm */
    float acc = 0.0f;
    for (ulong i = first; i < end; i += stride) {
        const float v = x[i] / m; /* a division, not a product with 1 / m: that overflows for a denormal m */
        acc += v * v;
    }
    return m * sqrt(acc);
}

__kernel void norm_partials(__global float *partials, __global const float *x, ulong x_off, ulong n, uint parts)
{
    size_t g = NNCL_GID();
    if (g >= parts) return;
    partials[g] = scaled_norm(x, x_off + g, x_off + n, parts);
}

__kernel void norm_finish(__global float *out, ulong out_off, __global const float *partials, uint parts)
{
    if (NNCL_GID() != 0) return;
    out[out_off] = scaled_norm(partials, 0, parts, 1);
}
