/*
 * layernorm.cl - layer normalisation of x viewed as (rows, cols).
 *   layernorm_forward:       one work-item per row: mean, rstd (two passes), y
 *   layernorm_backward_data: one work-item per row: dx
 *   layernorm_backward_params: one work-item per column j:
 *                            dgamma[j] += sum_r dy xhat, dbeta[j] += sum_r dy
 * has_affine = 0: no gamma and beta (pointers are then unused).
 */

__kernel void layernorm_forward(__global float *y, ulong y_off, __global float *mean, ulong mean_off,
                                __global float *rstd, ulong rstd_off, __global const float *x, ulong x_off,
                                __global const float *gamma, ulong gamma_off, __global const float *beta,
                                ulong beta_off, ulong rows, ulong cols, float eps, int has_affine)
{
    size_t r = get_global_id(0);
    if (r >= rows) return;
    __global const float *xr = x + x_off + r * cols;
    float sum = 0.0f;
    for (ulong j = 0; j < cols; j++) sum += xr[j];
    const float mu = sum / (float)cols;
    float sq = 0.0f;
    for (ulong j = 0; j < cols; j++) sq += (xr[j] - mu) * (xr[j] - mu);
    const float rs = 1.0f / sqrt(sq / (float)cols + eps);
    for (ulong j = 0; j < cols; j++) {
        float v = (xr[j] - mu) * rs;
        if (has_affine) v = v * gamma[gamma_off + j] + beta[beta_off + j];
        y[y_off + r * cols + j] = v;
    }
    mean[mean_off + r] = mu;
    rstd[rstd_off + r] = rs;
}

__kernel void layernorm_backward_data(__global float *dx, ulong dx_off, __global const float *dy, ulong dy_off,
                                      __global const float *x, ulong x_off, __global const float *mean,
                                      ulong mean_off, __global const float *rstd, ulong rstd_off,
                                      __global const float *gamma, ulong gamma_off, ulong rows, ulong cols,
                                      int has_affine)
{
    size_t r = get_global_id(0);
    if (r >= rows) return;
    __global const float *xr = x + x_off + r * cols, *dyr = dy + dy_off + r * cols;
    const float mu = mean[mean_off + r], rs = rstd[rstd_off + r];
    float mean_g = 0.0f, mean_gx = 0.0f;
    for (ulong j = 0; j < cols; j++) {
        float g = has_affine ? dyr[j] * gamma[gamma_off + j] : dyr[j];
        mean_g += g;
        mean_gx += g * ((xr[j] - mu) * rs);
    }
    mean_g /= (float)cols;
    mean_gx /= (float)cols;
    for (ulong j = 0; j < cols; j++) {
        float g = has_affine ? dyr[j] * gamma[gamma_off + j] : dyr[j];
        dx[dx_off + r * cols + j] = rs * (g - mean_g - ((xr[j] - mu) * rs) * mean_gx);
    }
}

__kernel void layernorm_backward_params(__global float *dgamma, ulong dgamma_off, __global float *dbeta,
                                        ulong dbeta_off, __global const float *dy, ulong dy_off,
                                        __global const float *x, ulong x_off, __global const float *mean,
                                        ulong mean_off, __global const float *rstd, ulong rstd_off, ulong rows,
                                        ulong cols)
{
    size_t j = get_global_id(0);
    if (j >= cols) return;
    float sg = 0.0f, sb = 0.0f;
    for (ulong r = 0; r < rows; r++) {
        float d = dy[dy_off + r * cols + j];
        sg += d * ((x[x_off + r * cols + j] - mean[mean_off + r]) * rstd[rstd_off + r]);
        sb += d;
    }
    dgamma[dgamma_off + j] += sg;
    dbeta[dbeta_off + j] += sb;
}
