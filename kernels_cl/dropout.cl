/*
 * dropout.cl - y[i] = x[i] * scale where uniform(seed, step, layer, i) >= p,
 * else 0. The same kernel serves backward (dy in, dx out) with the key of the
 * forward pass. One work-item per element.
 */

__kernel void dropout(__global float *y, ulong y_off, __global const float *x, ulong x_off, ulong n, float p,
                      float scale, ulong seed, ulong step, uint layer)
{
    size_t i = NNCL_GID();
    if (i >= n) return;
    y[y_off + i] = nncl_rng_uniform(seed, step, layer, (uint)i) >= p ? x[x_off + i] * scale : 0.0f;
}
