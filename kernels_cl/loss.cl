/*
 * loss.cl - losses with PyTorch's reduction='mean'; input viewed as (n, c).
 *   loss_rows_<kind>:     one work-item per row: work[r] = the row's summed loss
 *   loss_mean:            one work-item: out = sum(work) / denom, in order
 *   loss_backward_<kind>: one work-item per row: the gradient of the mean loss
 *   loss_step_<kind>, loss_step_finish: a network's whole loss step in two
 *                         launches (below)
 * kind (nncl_loss_kind): 0 mse, 1 cross_entropy (label smoothing s),
 * 2 bce_with_logits, 3 nll. Each kind has its own kernels, instantiated at
 * the end of the file, so that a network compiles only its loss's code.
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
    NNCL_NO_AUTOVEC
    for (ulong j = 0; j < c; j++) m = fmax(m, x[j]);
    NNCL_NO_AUTOVEC
    for (ulong j = 0; j < c; j++) s += exp(x[j] - m);
    *m_out = m;
    return log(s);
}

/* The summed loss of row r, whose input is x. */
NNCL_INSTANTIATED float loss_row(const int kind, __global const float *x, __global const float *t, ulong r, ulong c,
                                 float smoothing)
{
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
        row = -(1.0f - smoothing) * ((x[(ulong)t[r]] - m) - ls);
        if (smoothing > 0.0f) { /* never 0 * (-inf): a masked logit of -inf leaves the unsmoothed loss finite */
            float sum_logp = 0.0f;
            NNCL_NO_AUTOVEC
            for (ulong j = 0; j < c; j++) sum_logp += (x[j] - m) - ls;
            row -= smoothing / (float)c * sum_logp;
        }
    } else {
        row = -x[(ulong)t[r]];
    }
    return row;
}

__kernel void loss_mean(__global float *out, ulong out_off, __global const float *work, ulong work_off, ulong n,
                        float denom)
{
    if (NNCL_GID() != 0) return;
    float s = 0.0f;
    for (ulong r = 0; r < n; r++) s += work[work_off + r];
    out[out_off] = s / denom;
}

/* dx = the gradient of the mean loss over n rows with respect to row r, whose input is x. */
NNCL_INSTANTIATED void loss_row_grad(const int kind, __global float *dx, __global const float *x,
                                     __global const float *t, ulong r, ulong n, ulong c, float smoothing)
{
    const float all = (float)(n * c), rows = (float)n;
    if (kind == 0) {
        for (ulong j = 0; j < c; j++) dx[j] = 2.0f * (x[j] - t[r * c + j]) / all;
    } else if (kind == 2) {
        for (ulong j = 0; j < c; j++) dx[j] = (1.0f / (1.0f + exp(-x[j])) - t[r * c + j]) / all;
    } else if (!valid_class(t[r], c)) {
        NNCL_NO_AUTOVEC
        for (ulong j = 0; j < c; j++) dx[j] = NAN;
    } else if (kind == 1) {
        float m;
        const float ls = row_log_sum(x, c, &m);
        const ulong k = (ulong)t[r];
        NNCL_NO_AUTOVEC
        for (ulong j = 0; j < c; j++)
            dx[j] = (exp((x[j] - m) - ls) - (j == k ? 1.0f - smoothing : 0.0f) - smoothing / (float)c) / rows;
    } else {
        const ulong k = (ulong)t[r];
        NNCL_NO_AUTOVEC
        for (ulong j = 0; j < c; j++) dx[j] = j == k ? -1.0f / rows : 0.0f;
    }
}

/*
 * A network's loss step (nncl_network_forward with targets): the values of
 * loss_rows, loss_backward and loss_mean, and the metrics, in two launches
 * where those take four (five with the gradient).
 *   loss_step_<kind>: one work-item per row r: work[r] = its summed loss;
 *                     work[n + r] = 1 when its first largest entry is at its
 *                     class (class losses; else 0); and, with grad set, its
 *                     gradient of the mean loss in dinput
 *   loss_step_finish: one work-item: metrics[0] = the mean loss (as
 *                     loss_mean sums it), metrics[1] = the correct count
 *                     (exact in float up to 2^24 rows); sum[0] += samples
 *                     metrics[0] in one rounding, sum[1] += metrics[1]
 */
NNCL_INSTANTIATED void loss_step(const int kind, __global float *work, __global float *dinput, int grad,
                                 __global const float *input, __global const float *t, ulong n, ulong c,
                                 float smoothing)
{
    size_t r = NNCL_GID();
    if (r >= n) return;
    __global const float *x = input + r * c;
    work[r] = loss_row(kind, x, t, r, c, smoothing);
    ulong best = 0;
    if (kind == 1 || kind == 3) {
        NNCL_NO_AUTOVEC
        for (ulong j = 1; j < c; j++)
            if (x[j] > x[best]) best = j;
    }
    work[n + r] = (kind == 1 || kind == 3) && (float)best == t[r] ? 1.0f : 0.0f;
    if (grad) loss_row_grad(kind, dinput + r * c, x, t, r, n, c, smoothing);
}

__kernel void loss_step_finish(__global float *metrics, ulong metrics_off, __global float *sum, ulong sum_off,
                               __global const float *work, ulong work_off, ulong n, float denom, float samples)
{
    if (NNCL_GID() != 0) return;
    float loss = 0.0f, correct = 0.0f;
    for (ulong r = 0; r < n; r++) loss += work[work_off + r];
    for (ulong r = 0; r < n; r++) correct += work[work_off + n + r];
    loss = loss / denom;
    metrics[metrics_off] = loss;
    metrics[metrics_off + 1] = correct;
    sum[sum_off] = fma(samples, loss, sum[sum_off]);
    sum[sum_off + 1] += correct;
}

/* The kernels of one kind; dst is work (loss_rows) or the input's gradient (loss_backward). */
#define LOSS_KERNELS(name, kind)                                                                                     \
    __kernel void loss_rows_##name(__global float *dst, ulong dst_off, __global const float *input, ulong input_off, \
                                   __global const float *target, ulong target_off, ulong n, ulong c, float s)        \
    {                                                                                                                \
        const size_t r = NNCL_GID();                                                                                 \
        if (r < n) dst[dst_off + r] = loss_row(kind, input + input_off + r * c, target + target_off, r, c, s);       \
    }                                                                                                                \
    __kernel void loss_backward_##name(__global float *dst, ulong dst_off, __global const float *input,              \
                                       ulong input_off, __global const float *target, ulong target_off, ulong n,     \
                                       ulong c, float s)                                                             \
    {                                                                                                                \
        const size_t r = NNCL_GID();                                                                                 \
        if (r < n)                                                                                                   \
            loss_row_grad(kind, dst + dst_off + r * c, input + input_off + r * c, target + target_off, r, n, c, s);  \
    }                                                                                                                \
    __kernel void loss_step_##name(__global float *work, ulong work_off, __global float *dinput, ulong dinput_off,   \
                                   int grad, __global const float *input, ulong input_off,                           \
                                   __global const float *target, ulong target_off, ulong n, ulong c, float s)        \
    {                                                                                                                \
        loss_step(kind, work + work_off, dinput + dinput_off, grad, input + input_off, target + target_off, n, c,    \
                  s);                                                                                                \
    }

LOSS_KERNELS(mse, 0)
LOSS_KERNELS(cross_entropy, 1)
LOSS_KERNELS(bce_with_logits, 2)
LOSS_KERNELS(nll, 3)
