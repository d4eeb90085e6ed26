/*
 * activation.cl - element-wise activations and their derivatives, NNCL_EW
 * elements per work-item. The program is built once per function, with
 * -DNNCL_ACT=<nncl_activation> (include/nncl/layer.h): the switches below
 * fold away, leaving straight-line kernels that PoCL vectorises across
 * work-items. `a` is leaky_relu's slope or elu's alpha.
 *   0 relu  1 leaky_relu  2 sigmoid  3 tanh  4 gelu (erf)  5 silu  6 elu
 */

float act_forward(int act, float a, float x)
{
    switch (act) {
    case 0: return nncl_relu(x);
    case 1: return x > 0.0f ? x : a * x;
    case 2: return 1.0f / (1.0f + exp(-x));
    case 3: return tanh(x);
    case 4: return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f));
    case 5: return x / (1.0f + exp(-x));
    default: return x > 0.0f ? x : a * expm1(x);
    }
}

/* d f / d x at x (y = f(x) is not needed by these forms). */
float act_grad(int act, float a, float x)
{
    switch (act) {
    case 0: return x > 0.0f ? 1.0f : 0.0f;
    case 1: return x > 0.0f ? 1.0f : a;
    case 2: {
        float s = 1.0f / (1.0f + exp(-x));
        return s * (1.0f - s);
    }
    case 3: {
        float t = tanh(x);
        return 1.0f - t * t;
    }
    case 4:
        return 0.5f * (1.0f + erf(x * 0.70710678118654752f)) + x * exp(-0.5f * x * x) * 0.39894228040143268f;
    case 5: {
        float s = 1.0f / (1.0f + exp(-x));
        return s * (1.0f + x * (1.0f - s));
    }
    default: return x > 0.0f ? 1.0f : a * exp(x);
    }
}

__kernel void activation_forward(__global float *y, ulong y_off, __global const float *x, ulong x_off, ulong n,
                                 float a)
{
    NNCL_EW_RANGE(n);
    for (ulong i = i0; i < i1; i++) {
        float v = act_forward(NNCL_ACT, a, x[x_off + i]);
#ifdef NNCL_PERTURB
        if (i == 0) v += 1e-3f; /* the harness self-test: this must make the parity test fail */
#endif
        y[y_off + i] = v;
    }
}

__kernel void activation_backward(__global float *dx, ulong dx_off, __global const float *x, ulong x_off,
                                  __global const float *dy, ulong dy_off, ulong n, float a)
{
    NNCL_EW_RANGE(n);
    for (ulong i = i0; i < i1; i++) {
        const float g = dy[dy_off + i], xi = x[x_off + i];
        /* relu and leaky_relu: select or scale dy directly (exact, like the reference). */
        if (NNCL_ACT == 0) dx[dx_off + i] = xi > 0.0f ? g : 0.0f;
        else if (NNCL_ACT == 1) dx[dx_off + i] = xi > 0.0f ? g : a * g;
        else dx[dx_off + i] = act_grad(NNCL_ACT, a, xi) * g;
    }
}
