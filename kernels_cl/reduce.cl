/*
 * reduce.cl - sum (or sum of squares) of a vector in two passes, with a fixed order of
 * summation for a given n, so results are reproducible run to run.
 *
 *   sum_partials: work-item g of `parts` sums x[g], x[g + parts], ... into
 *                 partials[g]. Consecutive work-items read consecutive
 *                 elements, which coalesces on GPUs.
 *   sum_finish:   one work-item adds the `parts` partial sums in order.
 *
 * No local memory and no barriers.
 */

/* square != 0: sums x^2 instead (the squared norm, for gradient clipping). */
__kernel void sum_partials(__global float *partials, __global const float *x, ulong x_off, ulong n,
                           uint parts, int square)
{
    size_t g = NNCL_GID();
    if (g >= parts) return;
    float acc = 0.0f;
    for (ulong i = g; i < n; i += parts) {
        float v = x[x_off + i];
        acc += square ? v * v : v;
    }
    partials[g] = acc;
}

__kernel void sum_finish(__global float *out, ulong out_off, __global const float *partials, uint parts)
{
    if (NNCL_GID() != 0) return;
    float acc = 0.0f;
    for (uint g = 0; g < parts; g++) acc += partials[g];
    out[out_off] = acc;
}
