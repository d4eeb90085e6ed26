/*
 * loss.cl - losses with PyTorch's reduction='mean'; input viewed as (n, c).
 *   loss_rows:     one work-item per row: work[r] = the row's summed loss
 *   loss_mean:     one work-item: out = sum(work) / denom, in order
 *   loss_backward: one work-item per row: the gradient of the mean loss
 * kind: 0 mse, 1 cross_entropy (label smoothing s), 2 bce_with_logits, 3 nll.
 * A class index outside [0, c) gives NaN for its row, never an access out of bounds.
 */

int valid_class(float t, ulong c)
{
    return t >= 0.0f && t < (float)c && t == floor(t);
}

/*
 * The max m and log sum_j e^(x_j - m) of one row. log_softmax is then
 * (x_j - m) - log_sum: x_j - m is exact for nearby values, so this stays
 * accurate for logits of 1e4, where m + log_sum would round to a multiple of
 * ulp(1e4) ~ 1e-3.
 */
float row_log_sum(__global const float *x, ulong c, float *m_out)
{
    float m = -INFINITY, s = 0.0f;
    for (ulong j = 0; j < c; j++) m = fmax(m, x[j]);
    for (ulong j = 0; j < c; j++) s += exp(x[j] - m);
    *m_out = m;
    return log(s);
}

__kernel void loss_rows(__global float *work, ulong work_off, __global const float *input, ulong input_off,
                        __global const float *target, ulong target_off, ulong n, ulong c, int kind, float smoothing)
{
    size_t r = get_global_id(0);
    if (r >= n) return;
    __global const float *x = input + input_off + r * c;
    __global const float *t = target + target_off;
    float row = 0.0f;
    if (kind == 0) {
        for (ulong j = 0; j < c; j++) row += (x[j] - t[r * c + j]) * (x[j] - t[r * c + j]);
    } else if (kind == 2) {
        for (ulong j = 0; j < c; j++) row += fmax(x[j], 0.0f) - x[j] * t[r * c + j] + log1p(exp(-fabs(x[j])));
    } else if (!valid_class(t[r], c)) {
        row = NAN;
    } else if (kind == 1) {
        float m;
        const float ls = row_log_sum(x, c, &m);
        float sum_logp = 0.0f;
        for (ulong j = 0; j < c; j++) sum_logp += (x[j] - m) - ls;
        row = -(1.0f - smoothing) * ((x[(ulong)t[r]] - m) - ls) - smoothing / (float)c * sum_logp;
    } else {
        row = -x[(ulong)t[r]];
    }
    work[work_off + r] = row;
}

__kernel void loss_mean(__global float *out, ulong out_off, __global const float *work, ulong work_off, ulong n,
                        float denom)
{
    if (get_global_id(0) != 0) return;
    float s = 0.0f;
    for (ulong r = 0; r < n; r++) s += work[work_off + r];
    out[out_off] = s / denom;
}

__kernel void loss_backward(__global float *dinput, ulong dinput_off, __global const float *input, ulong input_off,
                            __global const float *target, ulong target_off, ulong n, ulong c, int kind,
                            float smoothing)
{
    size_t r = get_global_id(0);
    if (r >= n) return;
    __global const float *x = input + input_off + r * c;
    __global const float *t = target + target_off;
    __global float *dx = dinput + dinput_off + r * c;
    const float all = (float)(n * c), rows = (float)n;
    if (kind == 0) {
        for (ulong j = 0; j < c; j++) dx[j] = 2.0f * (x[j] - t[r * c + j]) / all;
    } else if (kind == 2) {
        for (ulong j = 0; j < c; j++) dx[j] = (1.0f / (1.0f + exp(-x[j])) - t[r * c + j]) / all;
    } else if (!valid_class(t[r], c)) {
        for (ulong j = 0; j < c; j++) dx[j] = NAN;
    } else if (kind == 1) {
        float m;
        const float ls = row_log_sum(x, c, &m);
        const ulong k = (ulong)t[r];
        for (ulong j = 0; j < c; j++)
            dx[j] = (exp((x[j] - m) - ls) - (j == k ? 1.0f - smoothing : 0.0f) - smoothing / (float)c) / rows;
    } else {
        const ulong k = (ulong)t[r];
        for (ulong j = 0; j < c; j++) dx[j] = j == k ? -1.0f / rows : 0.0f;
    }
}
