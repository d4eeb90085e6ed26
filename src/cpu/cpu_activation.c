/*
 * cpu_activation.c - reference element-wise activations and their derivatives,
 * with PyTorch's definitions:
 *   relu        max(x, 0)                       f' = [x > 0]
 *   leaky_relu  x > 0 ? x : a x                 f' = x > 0 ? 1 : a
 *   sigmoid     s = 1 / (1 + e^-x)              f' = s (1 - s)
 *   tanh        t = tanh x                      f' = 1 - t^2
 *   gelu        x Phi(x) = x (1 + erf(x / sqrt 2)) / 2
 *                                               f' = Phi(x) + x phi(x)
 *   silu        x s(x)                          f' = s (1 + x (1 - s))
 *   elu         x > 0 ? x : a (e^x - 1)         f' = x > 0 ? 1 : a e^x
 */
#include <math.h>

#include "cpu/cpu.h"

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

double nncl__ref_activation(nncl_activation act, double a, double x)
{
    switch (act) {
    case NNCL_ACT_RELU: return x > 0.0 ? x : 0.0;
    case NNCL_ACT_LEAKY_RELU: return x > 0.0 ? x : a * x;
    case NNCL_ACT_SIGMOID: return sigmoid(x);
    case NNCL_ACT_TANH: return tanh(x);
    case NNCL_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case NNCL_ACT_SILU: return x * sigmoid(x);
    case NNCL_ACT_ELU: return x > 0.0 ? x : a * expm1(x);
    }
    return NAN;
}

double nncl__ref_activation_grad(nncl_activation act, double a, double x)
{
    switch (act) {
    case NNCL_ACT_RELU: return x > 0.0 ? 1.0 : 0.0;
    case NNCL_ACT_LEAKY_RELU: return x > 0.0 ? 1.0 : a;
    case NNCL_ACT_SIGMOID: return sigmoid(x) * (1.0 - sigmoid(x));
    case NNCL_ACT_TANH: return 1.0 - tanh(x) * tanh(x);
    case NNCL_ACT_GELU: {
        const double pi = 3.14159265358979323846;
        return 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2.0 * pi);
    }
    case NNCL_ACT_SILU: return sigmoid(x) * (1.0 + x * (1.0 - sigmoid(x)));
    case NNCL_ACT_ELU: return x > 0.0 ? 1.0 : a * exp(x);
    }
    return NAN;
}

void nncl__ref_activation_forward(double *y, const double *x, int64_t n, nncl_activation act, double param)
{
    for (int64_t i = 0; i < n; i++) y[i] = nncl__ref_activation(act, param, x[i]);
}

void nncl__ref_activation_backward(double *dx, const double *x, const double *dy, int64_t n, nncl_activation act,
                                   double param)
{
    for (int64_t i = 0; i < n; i++) {
        /* relu and leaky_relu select or scale dy (so a masked gradient is +0, never -0) */
        if (act == NNCL_ACT_RELU) dx[i] = x[i] > 0.0 ? dy[i] : 0.0;
        else if (act == NNCL_ACT_LEAKY_RELU) dx[i] = x[i] > 0.0 ? dy[i] : param * dy[i];
        else dx[i] = nncl__ref_activation_grad(act, param, x[i]) * dy[i];
    }
}

nncl_status nncl__cpu_activation_forward(nncl_context *ctx, const nncl_tensor *y, const nncl_tensor *x,
                                         nncl_activation act, float param)
{
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *py, *px;
    int64_t n = nncl_tensor_numel(x);
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)n, &py));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, x, &px));
    nncl__ref_activation_forward(py, px, n, act, param);
    nncl__cpu_unstage(y, py);
    return nncl__cpu_op_end(ctx, "activation_forward", t0);
}

nncl_status nncl__cpu_activation_backward(nncl_context *ctx, const nncl_tensor *dx, const nncl_tensor *x,
                                          const nncl_tensor *y, const nncl_tensor *dy, nncl_activation act,
                                          float param)
{
    (void)y; /* the reference differentiates from x alone */
    uint64_t t0 = nncl__cpu_op_begin(ctx);
    double *pdx, *px, *pdy;
    int64_t n = nncl_tensor_numel(x);
    NNCL_TRY(nncl__cpu_scratch(ctx, 0, (size_t)n, &pdx));
    NNCL_TRY(nncl__cpu_stage(ctx, 1, x, &px));
    NNCL_TRY(nncl__cpu_stage(ctx, 2, dy, &pdy));
    nncl__ref_activation_backward(pdx, px, pdy, n, act, param);
    nncl__cpu_unstage(dx, pdx);
    return nncl__cpu_op_end(ctx, "activation_backward", t0);
}
