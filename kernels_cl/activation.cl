/*
 * activation.cl - element-wise activations and their derivatives, NNCL_EW
 * elements per work-item. Each function has its own pair of kernels,
 * activation_forward_<name> and activation_backward_<name>, instantiated at
 * the end of the file with the function's constant (nncl_activation,
 * include/nncl/layer.h): the switches below fold away, leaving straight-line
 * kernels that PoCL vectorises across work-items. `a` is leaky_relu's slope
 * or elu's alpha.
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

NNCL_INSTANTIATED void activation_forward(int act, __global float *y, __global const float *x, ulong n, float a)
{
    NNCL_EW_RANGE(n);
    for (ulong i = i0; i < i1; i++) {
        float v = act_forward(act, a, x[i]);
#ifdef NNCL_PERTURB
        if (i == 0) v += 1e-3f; /* the harness self-test: this must make the parity test fail */
#endif
        y[i] = v;
    }
}

NNCL_INSTANTIATED void activation_backward(int act, __global float *dx, __global const float *x,
                                           __global const float *dy, ulong n, float a)
{
    NNCL_EW_RANGE(n);
    for (ulong i = i0; i < i1; i++) {
        const float g = dy[i], xi = x[i];
        /* relu and leaky_relu: select or scale dy directly (exact, like the reference). */
        if (act == 0) dx[i] = xi > 0.0f ? g : 0.0f;
        else if (act == 1) dx[i] = xi > 0.0f ? g : a * g;
        else dx[i] = act_grad(act, a, xi) * g;
    }
}

/* The kernels of one function; PoCL compiles only those that are launched. */
#define ACTIVATION_KERNELS(name, act)                                                                               \
    __kernel void activation_forward_##name(__global float *y, ulong y_off, __global const float *x, ulong x_off,   \
                                            ulong n, float a)                                                       \
    {                                                                                                               \
        activation_forward(act, y + y_off, x + x_off, n, a);                                                        \
    }                                                                                                               \
    __kernel void activation_backward_##name(__global float *dx, ulong dx_off, __global const float *x,             \
                                             ulong x_off, __global const float *dy, ulong dy_off, ulong n, float a) \
    {                                                                                                               \
        activation_backward(act, dx + dx_off, x + x_off, dy + dy_off, n, a);                                        \
    }

ACTIVATION_KERNELS(relu, 0)
ACTIVATION_KERNELS(leaky_relu, 1)
ACTIVATION_KERNELS(sigmoid, 2)
ACTIVATION_KERNELS(tanh, 3)
ACTIVATION_KERNELS(gelu, 4)
ACTIVATION_KERNELS(silu, 5)
ACTIVATION_KERNELS(elu, 6)
