/*
 * bias.cl - bias of linear and convolution layers, with y viewed as
 * (outer, channels, inner):
 *   bias_add:       y[o][c][i] += b[c], then relu when asked (a layer's
 *                   fused activation)            one work-item per row (o, c)
 *   bias_backward:  db[c] += sum_{o,i} dy[o][c][i]
 *                   one work-group of NNCL_WG per channel (global = channels * NNCL_WG):
 *                   strided partial sums, then a tree in local memory
 *   bias_backward_serial: the same sum by one work-item per channel, in
 *                   order: for short sums (a linear layer's batch), where
 *                   the tree's barriers cost more than the additions
 * For GPUs (src/opencl/cl.h, gpu_shapes), where a work-item per row or a
 * work-group per channel leaves most of the device idle:
 *   bias_add_ew:    one work-item per element
 *   bias_backward_part, bias_backward_finish: the sum in two passes. Work-group
 *                   (c, g) of NNCL_WG sums the g-th of `groups` chunks of
 *                   channel c's m = outer inner terms (neighbouring
 *                   work-items read neighbouring floats along inner; a
 *                   linear layer's, inner = 1, reads rows `channels` apart) into
 *                   part[c groups + g]; then one work-item per channel adds
 *                   its parts in order. Index arithmetic is 32-bit (the host
 *                   keeps m below 2^31).
 */

__kernel void bias_add(__global float *y, ulong y_off, __global const float *b, ulong b_off, ulong channels,
                       ulong inner, ulong rows, int relu)
{
    /* One work-item per row (o, c) of `inner` elements: one division per row, not per element. */
    const size_t t = NNCL_GID();
    if (t >= rows) return;
    const float v = b[b_off + t % channels];
    __global float *row = y + y_off + t * inner;
    for (ulong i = 0; i < inner; i++) {
        const float s = row[i] + v;
        row[i] = relu ? nncl_relu(s) : s;
    }
}

__kernel void bias_backward(__global float *db, ulong db_off, __global const float *dy, ulong dy_off, ulong outer,
                            ulong channels, ulong inner)
{
    __local float scratch[NNCL_WG];
    const size_t c = NNCL_GROUP();
    const uint lid = get_local_id(0);
    const ulong m = outer * inner;
    float acc = 0.0f;
    if (c < channels)
        for (ulong j = lid; j < m; j += NNCL_WG) acc += dy[dy_off + ((j / inner) * channels + c) * inner + j % inner];
    float total = nncl_group_sum(acc, scratch);
    if (c < channels && lid == 0) db[db_off + c] += total;
}

__kernel void bias_backward_serial(__global float *db, ulong db_off, __global const float *dy, ulong dy_off,
                                   ulong outer, ulong channels, ulong inner)
{
    const size_t c = NNCL_GID();
    if (c >= channels) return;
    float acc = 0.0f;
    for (ulong o = 0; o < outer; o++) {
        __global const float *row = dy + dy_off + (o * channels + c) * inner;
        for (ulong i = 0; i < inner; i++) acc += row[i];
    }
    db[db_off + c] += acc;
}

__kernel void bias_add_ew(__global float *y, ulong y_off, __global const float *b, ulong b_off, ulong channels,
                          ulong inner, ulong total, int relu)
{
    const size_t t = NNCL_GID();
    if (t >= total) return;
    const float s = y[y_off + t] + b[b_off + (t / inner) % channels];
    y[y_off + t] = relu ? nncl_relu(s) : s;
}

__kernel void bias_backward_part(__global float *part, __global const float *dy, ulong dy_off, uint outer,
                                 uint channels, uint inner, uint groups)
{
    __local float scratch[NNCL_WG];
    const uint c = NNCL_GROUP() / groups, g = NNCL_GROUP() % groups, lid = get_local_id(0);
    const uint m = outer * inner, chunk = (m + groups - 1) / groups, end = min(m, (g + 1) * chunk);
    float acc = 0.0f;
    if (c < channels)
        for (uint j = g * chunk + lid; j < end; j += NNCL_WG)
            acc += dy[dy_off + ((ulong)(j / inner) * channels + c) * inner + j % inner];
    const float total = nncl_group_sum(acc, scratch);
    if (c < channels && lid == 0) part[NNCL_GROUP()] = total;
}

__kernel void bias_backward_finish(__global float *db, ulong db_off, __global const float *part, uint channels,
                                   uint groups)
{
    const uint c = NNCL_GID();
    if (c >= channels) return;
    float acc = 0.0f;
    for (uint g = 0; g < groups; g++) acc += part[c * groups + g];
    db[db_off + c] += acc;
}
