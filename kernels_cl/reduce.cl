/*
 * reduce.cl - sum (or sum of squares) of a vector in two passes, with a fixed order of
 * summation for a given n, so results are reproducible run to run.
 *
 *   sum_partials: work-item g of `parts` sums x[g], x[g + parts], ... into
 *                 partials[g]. Consecutive work-items read consecutive
 *                 elements, which coalesces on GPUs.
 *   sum_finish:   one work-item adds the `parts` partial sums in order.
 *
 * No local memory and no barriers. count_correct (below) is one work-group
 * that adds its work-items' counts in local memory.
 */

/* square != 0: sums x^2 instead (the squared norm, for gradient clipping). */
__kernel void sum_partials(__global float *partials, __global const float *x, ulong x_off, ulong n,
                           uint parts, int square)
{
    size_t g = get_global_id(0);
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
    if (get_global_id(0) != 0) return;
    float acc = 0.0f;
    for (uint g = 0; g < parts; g++) acc += partials[g];
    out[out_off] = acc;
}

/*
 * out[0] = the number of rows of logits (rows, cols) whose first largest entry is at labels[row]: one
 * work-group of NNCL_WG, work-item l taking rows l, l + NNCL_WG, ...; the count is exact in float up to 2^24.
 */
__kernel void count_correct(__global float *out, ulong out_off, __global const float *logits, ulong logits_off,
                            __global const float *labels, ulong labels_off, ulong rows, ulong cols)
{
    __local float scratch[NNCL_WG];
    uint correct = 0;
    for (ulong r = get_local_id(0); r < rows; r += NNCL_WG) {
        __global const float *x = logits + logits_off + r * cols;
        ulong best = 0;
        for (ulong j = 1; j < cols; j++)
            if (x[j] > x[best]) best = j;
        correct += (float)best == labels[labels_off + r];
    }
    const float total = nncl_group_sum((float)correct, scratch);
    if (get_local_id(0) == 0) out[out_off] = total;
}

/* sum[0] += samples * metrics[0] (a batch's mean loss), sum[1] += metrics[1] (its correct count). */
__kernel void accumulate_metrics(__global float *sum, ulong sum_off, __global const float *metrics, ulong metrics_off,
                                 float samples)
{
    if (get_global_id(0) != 0) return;
    sum[sum_off] = fma(samples, metrics[metrics_off], sum[sum_off]);
    sum[sum_off + 1] += metrics[metrics_off + 1];
}
