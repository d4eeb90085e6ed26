/*
 * optim.cl - one optimizer update over a whole parameter arena in one launch,
 * NNCL_EW parameters per work-item, with torch.optim's formulas (PyTorch 1.13):
 *   clipping (max_norm > 0): g *= min(1, max_norm / (norm[0] + 1e-6)),
 *                            norm[0] being the global gradient norm
 *   kind 0, SGD:   d = g + wd p;  buf = first ? d : momentum buf + (1 - dampening) d;
 *                  d = nesterov ? d + momentum buf : buf;  p -= lr d
 *   kind 1, Adam:  g += wd p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *                  p -= step_size m / (sqrt(v) / bc2_sqrt + eps)
 *   kind 2, AdamW: p *= 1 - lr wd, then Adam without g += wd p
 * s1 is the momentum buffer (SGD) or m; s2 is v. Each kind has its kernel,
 * optimizer_step_<sgd|adam|adamw>, instantiated at the end of the file.
 */

/* The arguments of every kind's kernel, after (p, p_off); the helper below takes them with the offsets applied. */
#define OPTIMIZER_ARGS                                                                                             \
    __global const float *g, ulong g_off, __global float *s1, ulong s1_off, __global float *s2, ulong s2_off,      \
        ulong n, float lr, float momentum, float dampening, float wd, int nesterov, int first, float beta1,        \
        float beta2, float eps, float step_size, float bc2_sqrt, float max_norm, __global const float *norm,       \
        ulong norm_off

NNCL_INSTANTIATED void optimizer_step(const int kind, __global float *p, ulong p_off, OPTIMIZER_ARGS)
{
    NNCL_EW_RANGE(n);
    /* The clipping factor, once (multiplying by 1 when not clipping is exact). Each update has a loop of its
       own, so that the branches on the uniform settings stay out of the loops the compiler vectorises. */
    const float clip = max_norm > 0.0f ? fmin(1.0f, max_norm / (norm[norm_off] + 1e-6f)) : 1.0f;
    if (kind == 0 && momentum == 0.0f) {
        for (ulong i = i0; i < i1; i++) {
            const float w = p[p_off + i];
            p[p_off + i] = w - lr * (g[g_off + i] * clip + wd * w);
        }
    } else if (kind == 0) {
        for (ulong i = i0; i < i1; i++) {
            const float w = p[p_off + i];
            float d = g[g_off + i] * clip + wd * w;
            const float buf = first ? d : momentum * s1[s1_off + i] + (1.0f - dampening) * d;
            s1[s1_off + i] = buf;
            d = nesterov ? d + momentum * buf : buf;
            p[p_off + i] = w - lr * d;
        }
    } else {
        for (ulong i = i0; i < i1; i++) {
            float w = p[p_off + i], gi = g[g_off + i] * clip;
            if (kind == 2) w *= 1.0f - lr * wd;
            else gi += wd * w;
            const float m = beta1 * s1[s1_off + i] + (1.0f - beta1) * gi;
            const float v = beta2 * s2[s2_off + i] + (1.0f - beta2) * gi * gi;
            s1[s1_off + i] = m;
            s2[s2_off + i] = v;
            p[p_off + i] = w - step_size * m / (sqrt(v) / bc2_sqrt + eps);
        }
    }
}

#define OPTIMIZER_KERNEL(name, kind)                                                                               \
    __kernel void optimizer_step_##name(__global float *p, ulong p_off, OPTIMIZER_ARGS)                            \
    {                                                                                                              \
        optimizer_step(kind, p, p_off, g, g_off, s1, s1_off, s2, s2_off, n, lr, momentum, dampening, wd, nesterov, \
                       first, beta1, beta2, eps, step_size, bc2_sqrt, max_norm, norm, norm_off);                   \
    }

OPTIMIZER_KERNEL(sgd, 0)
OPTIMIZER_KERNEL(adam, 1)
OPTIMIZER_KERNEL(adamw, 2)
