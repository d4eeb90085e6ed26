/*
 * layernorm.cl - layer normalisation of x viewed as (rows, cols).
 *   layernorm_forward:         one work-group of NNCL_WG per row (global = rows * NNCL_WG):
 *                              mean and rstd by two passes of strided Kahan
 *                              sums and a tree in local memory, then y
 *   layernorm_backward_data:   one work-group per row: dx
 *   layernorm_backward_params: one work-item per column j:
 *                              dgamma[j] += sum_r dy xhat, dbeta[j] += sum_r dy
 * has_affine = 0: no gamma and beta (pointers are then unused).
 */

__kernel void layernorm_forward(__global float *y, ulong y_off, __global float *mean, ulong mean_off,
                                __global float *rstd, ulong rstd_off, __global const float *x, ulong x_off,
                                __global const float *gamma, ulong gamma_off, __global const float *beta,
                                ulong beta_off, ulong rows, ulong cols, float eps, int has_affine)
{
    __local float scratch[NNCL_WG];
    const size_t r = NNCL_GROUP();
    const uint lid = get_local_id(0);
    const int live = r < rows;
    __global const float *xr = x + x_off + (live ? r : 0) * cols;
    nncl_kahan s = {0.0f, 0.0f};
    if (live)
        for (ulong j = lid; j < cols; j += NNCL_WG) nncl_kahan_add(&s, xr[j]);
    const float mu = nncl_group_sum(s.sum, scratch) / (float)cols;
    nncl_kahan q = {0.0f, 0.0f};
    if (live)
        for (ulong j = lid; j < cols; j += NNCL_WG) nncl_kahan_add(&q, (xr[j] - mu) * (xr[j] - mu));
    const float rs = 1.0f / sqrt(nncl_group_sum(q.sum, scratch) / (float)cols + eps);
    if (!live) return;
    for (ulong j = lid; j < cols; j += NNCL_WG) {
        float v = (xr[j] - mu) * rs;
        if (has_affine) v = v * gamma[gamma_off + j] + beta[beta_off + j];
        y[y_off + r * cols + j] = v;
    }
    if (lid == 0) {
        mean[mean_off + r] = mu;
        rstd[rstd_off + r] = rs;
    }
}

__kernel void layernorm_backward_data(__global float *dx, ulong dx_off, __global const float *dy, ulong dy_off,
                                      __global const float *x, ulong x_off, __global const float *mean,
                                      ulong mean_off, __global const float *rstd, ulong rstd_off,
                                      __global const float *gamma, ulong gamma_off, ulong rows, ulong cols,
                                      int has_affine)
{
    __local float scratch[NNCL_WG];
    const size_t r = NNCL_GROUP();
    const uint lid = get_local_id(0);
    const int live = r < rows;
    const ulong rr = live ? r : 0;
    __global const float *xr = x + x_off + rr * cols, *dyr = dy + dy_off + rr * cols;
    const float mu = mean[mean_off + rr], rs = rstd[rstd_off + rr];
    nncl_kahan sg = {0.0f, 0.0f}, sgx = {0.0f, 0.0f};
    if (live) {
        for (ulong j = lid; j < cols; j += NNCL_WG) {
            float g = has_affine ? dyr[j] * gamma[gamma_off + j] : dyr[j];
            nncl_kahan_add(&sg, g);
            nncl_kahan_add(&sgx, g * ((xr[j] - mu) * rs));
        }
    }
    const float mean_g = nncl_group_sum(sg.sum, scratch) / (float)cols;
    const float mean_gx = nncl_group_sum(sgx.sum, scratch) / (float)cols;
    if (!live) return;
    for (ulong j = lid; j < cols; j += NNCL_WG) {
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
    size_t j = NNCL_GID();
    if (j >= cols) return;
    nncl_kahan sg = {0.0f, 0.0f}, sb = {0.0f, 0.0f};
    for (ulong r = 0; r < rows; r++) {
        float d = dy[dy_off + r * cols + j];
        nncl_kahan_add(&sg, d * ((x[x_off + r * cols + j] - mean[mean_off + r]) * rstd[rstd_off + r]));
        nncl_kahan_add(&sb, d);
    }
    dgamma[dgamma_off + j] += sg.sum;
    dbeta[dbeta_off + j] += sb.sum;
}
