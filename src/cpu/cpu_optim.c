/*
 * cpu_optim.c - reference optimizer updates and metrics, with torch.optim's
 * formulas (PyTorch 1.13), element by element in double:
 *   gradient clipping  g *= min(1, max_norm / (||g||_2 + 1e-6))
 *   SGD                d = g + wd p;  buf = first ? d : momentum buf + (1 - dampening) d;
 *                      d = nesterov ? d + momentum buf : buf;  p -= lr d
 *   Adam               g += wd p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *                      p -= step_size m / (sqrt(v) / bc2_sqrt + eps)
 *   AdamW              p *= 1 - lr wd, then Adam without the g += wd p
 */
#include <math.h>

#include "cpu/cpu.h"

/* ||x||_2, summed in double: no float's square overflows or vanishes there. */
nncl_status nncl__cpu_norm2(nncl_context *ctx, const nncl_tensor *out, const nncl_tensor *x)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    const float *px = nncl__cpu_tensor(x);
    int64_t n = nncl_tensor_numel(x);
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++) acc += (double)px[i] * px[i];
    *nncl__cpu_tensor(out) = (float)sqrt(acc);
    return nncl__cpu_op_end(ctx, "norm2", t0);
}

nncl_status nncl__cpu_optimizer_step(nncl_context *ctx, const nncl_tensor *p, const nncl_tensor *g,
                                     const nncl_tensor *s1, const nncl_tensor *s2, const nncl_optim_args *a)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    float *pp = nncl__cpu_tensor(p), *ps1 = s1 ? nncl__cpu_tensor(s1) : NULL, *ps2 = s2 ? nncl__cpu_tensor(s2) : NULL;
    const float *pg = nncl__cpu_tensor(g);
    int64_t n = nncl_tensor_numel(p);
    double coef = 1.0;
    if (a->max_norm > 0.0f) {
        double c = a->max_norm / ((double)*nncl__cpu_tensor(a->norm) + 1e-6);
        coef = c < 1.0 ? c : 1.0;
    }
    for (int64_t i = 0; i < n; i++) {
        double w = pp[i], gi = pg[i] * coef;
        if (a->kind == NNCL_OPT_SGD) {
            double d = gi + (double)a->weight_decay * w;
            if (a->momentum != 0.0f) {
                double buf = a->first_step ? d : (double)a->momentum * ps1[i] + (1.0 - (double)a->dampening) * d;
                ps1[i] = (float)buf;
                d = a->nesterov ? d + (double)a->momentum * buf : buf;
            }
            w -= (double)a->lr * d;
        } else {
            if (a->kind == NNCL_OPT_ADAMW) w *= 1.0 - (double)a->lr * a->weight_decay;
            else gi += (double)a->weight_decay * w;
            double m = (double)a->beta1 * ps1[i] + (1.0 - (double)a->beta1) * gi;
            double v = (double)a->beta2 * ps2[i] + (1.0 - (double)a->beta2) * gi * gi;
            ps1[i] = (float)m;
            ps2[i] = (float)v;
            w -= (double)a->step_size * m / (sqrt(v) / a->bc2_sqrt + a->eps);
        }
        pp[i] = (float)w;
    }
    return nncl__cpu_op_end(ctx, "optimizer_step", t0);
}
