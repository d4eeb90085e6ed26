/*
 * cpu_loss.c - reference losses, PyTorch's definitions with reduction='mean'.
 * input is (n, c); work[r] receives the loss summed over row r.
 *   mse              (x - t)^2                               mean over n c
 *   bce_with_logits  max(x, 0) - x t + log(1 + e^-|x|)       mean over n c
 *   cross_entropy    -(1 - s) logp[t] - (s / c) sum_j logp[j],
 *                    logp = log_softmax(x) (max-shifted: stable for |x| ~ 1e4);
 *                    the s term only for s > 0, so that a logit of -inf (a
 *                    masked class) leaves the unsmoothed loss finite
 *                                                            mean over n
 *   nll              -x[t]                                   mean over n
 * Gradients of the mean: mse 2 (x - t) / (n c); bce (sigmoid(x) - t) / (n c);
 * cross_entropy (softmax(x) - (1 - s) onehot(t) - s / c) / n; nll -onehot(t) / n.
 * A class index outside [0, c) makes its row's loss and gradient NaN.
 */
#include <math.h>

#include "cpu/cpu.h"

static int valid_class(double t, int64_t c)
{
    return t >= 0.0 && t < (double)c && t == floor(t);
}

/* The max m of one row and log sum_j e^(x_j - m); log_softmax = (x - m) - that. */
static double row_log_sum(const double *x, int64_t c, double *max_out)
{
    double m = -INFINITY, s = 0.0;
    for (int64_t j = 0; j < c; j++) m = x[j] > m ? x[j] : m;
    for (int64_t j = 0; j < c; j++) s += exp(x[j] - m);
    *max_out = m;
    return log(s);
}

double nncl__ref_loss_forward(nncl_loss_kind kind, double *work, const double *input, const double *target, int64_t n,
                              int64_t c, double smoothing)
{
    double total = 0.0;
    for (int64_t r = 0; r < n; r++) {
        const double *x = input + r * c;
        double row = 0.0, m;
        switch (kind) {
        case NNCL_LOSS_MSE:
            for (int64_t j = 0; j < c; j++) row += (x[j] - target[r * c + j]) * (x[j] - target[r * c + j]);
            break;
        case NNCL_LOSS_BCE_WITH_LOGITS:
            for (int64_t j = 0; j < c; j++) {
                double t = target[r * c + j];
                row += (x[j] > 0.0 ? x[j] : 0.0) - x[j] * t + log1p(exp(-fabs(x[j])));
            }
            break;
        case NNCL_LOSS_CROSS_ENTROPY: {
            if (!valid_class(target[r], c)) {
                row = NAN;
                break;
            }
            double ls = row_log_sum(x, c, &m);
            row = -(1.0 - smoothing) * ((x[(int64_t)target[r]] - m) - ls);
            if (smoothing > 0.0) { /* never 0 * (-inf): a masked logit of -inf leaves the unsmoothed loss finite */
                double sum_logp = 0.0;
                for (int64_t j = 0; j < c; j++) sum_logp += (x[j] - m) - ls;
                row -= smoothing / (double)c * sum_logp;
            }
            break;
        }
        case NNCL_LOSS_NLL:
            row = valid_class(target[r], c) ? -x[(int64_t)target[r]] : NAN;
            break;
        }
        work[r] = row;
        total += row;
    }
    int per_element = kind == NNCL_LOSS_MSE || kind == NNCL_LOSS_BCE_WITH_LOGITS;
    return total / (double)(per_element ? n * c : n);
}

void nncl__ref_loss_backward(nncl_loss_kind kind, double *dinput, const double *input, const double *target, int64_t n,
                             int64_t c, double smoothing)
{
    for (int64_t r = 0; r < n; r++) {
        const double *x = input + r * c;
        double *dx = dinput + r * c, m;
        switch (kind) {
        case NNCL_LOSS_MSE:
            for (int64_t j = 0; j < c; j++) dx[j] = 2.0 * (x[j] - target[r * c + j]) / (double)(n * c);
            break;
        case NNCL_LOSS_BCE_WITH_LOGITS:
            for (int64_t j = 0; j < c; j++)
                dx[j] = (1.0 / (1.0 + exp(-x[j])) - target[r * c + j]) / (double)(n * c);
            break;
        case NNCL_LOSS_CROSS_ENTROPY: {
            int ok = valid_class(target[r], c);
            double ls = row_log_sum(x, c, &m);
            for (int64_t j = 0; j < c; j++) {
                double onehot = ok && j == (int64_t)target[r] ? 1.0 : 0.0;
                dx[j] = ok ? (exp((x[j] - m) - ls) - (1.0 - smoothing) * onehot - smoothing / (double)c) / (double)n
                           : NAN;
            }
            break;
        }
        case NNCL_LOSS_NLL: {
            int ok = valid_class(target[r], c);
            for (int64_t j = 0; j < c; j++)
                dx[j] = ok ? (j == (int64_t)target[r] ? -1.0 / (double)n : 0.0) : NAN;
            break;
        }
        }
    }
}

nncl_status nncl__cpu_loss_forward(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *out,
                                   const nncl_tensor *work, const nncl_tensor *input, const nncl_tensor *target,
                                   int64_t n, int64_t c, float smoothing)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *pw, *px, *pt, *pout;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)n, &pw));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, input, &px));
    NNCL_TRY(nncl__cpu_stage(ctx, 2, target, &pt));
    NNCL_TRY(nncl__cpu_scratch(ctx, 3, 1, &pout));
    pout[0] = nncl__ref_loss_forward(kind, pw, px, pt, n, c, smoothing);
    nncl__cpu_unstage(work, pw);
    nncl__cpu_unstage(out, pout);
    return nncl__cpu_op_end(ctx, "loss_forward", t0);
}

nncl_status nncl__cpu_loss_backward(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *dinput,
                                    const nncl_tensor *input, const nncl_tensor *target, int64_t n, int64_t c,
                                    float smoothing)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *pdx, *px, *pt;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)(n * c), &pdx));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, input, &px));
    NNCL_TRY(nncl__cpu_stage(ctx, 2, target, &pt));
    nncl__ref_loss_backward(kind, pdx, px, pt, n, c, smoothing);
    nncl__cpu_unstage(dinput, pdx);
    return nncl__cpu_op_end(ctx, "loss_backward", t0);
}

/* The loss step: loss_forward's and loss_backward's values, and the metrics, as one operation (work unused). */
nncl_status nncl__cpu_loss_step(nncl_context *ctx, nncl_loss_kind kind, const nncl_tensor *metrics,
                                const nncl_tensor *sum, const nncl_tensor *dinput, const nncl_tensor *work,
                                const nncl_tensor *input, const nncl_tensor *target, int64_t n, int64_t c,
                                float smoothing)
{
    (void)work;
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *pw, *px, *pt, *pdx;
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)n, &pw));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, input, &px));
    NNCL_TRY(nncl__cpu_stage(ctx, 2, target, &pt));
    const float loss = (float)nncl__ref_loss_forward(kind, pw, px, pt, n, c, smoothing);
    if (dinput) {
        NNCL_TRY(nncl__cpu_scratch(ctx, 3, (size_t)(n * c), &pdx));
        nncl__ref_loss_backward(kind, pdx, px, pt, n, c, smoothing);
        nncl__cpu_unstage(dinput, pdx);
    }
    const float *x = nncl__cpu_tensor(input), *t = nncl__cpu_tensor(target);
    int64_t correct = 0;
    if (kind == NNCL_LOSS_CROSS_ENTROPY || kind == NNCL_LOSS_NLL) {
        for (int64_t r = 0; r < n; r++) { /* the first largest entry of the row */
            int64_t best = 0;
            for (int64_t j = 1; j < c; j++)
                if (x[r * c + j] > x[r * c + best]) best = j;
            correct += (double)best == t[r];
        }
    }
    float *m = nncl__cpu_tensor(metrics), *s = nncl__cpu_tensor(sum);
    m[0] = loss;
    m[1] = (float)correct;
    s[0] = fmaf((float)n, m[0], s[0]); /* one rounding, as the kernel's fma */
    s[1] += m[1];
    return nncl__cpu_op_end(ctx, "loss_step", t0);
}
