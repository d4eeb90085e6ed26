/*
 * batchnorm.cl - batch normalisation of x viewed as (n, c, inner); m = n inner
 * values per channel. Reductions run one work-group of NNCL_WG per channel
 * (global = c * NNCL_WG): strided Kahan partial sums, then a tree in local memory.
 *   bn_stats:           mean, invstd = 1 / sqrt(var + eps) (two passes),
 *                       running statistics updated (unbiased variance)
 *   bn_apply:           y = (x - mean) invstd gamma + beta, one work-item per element
 *   bn_backward_reduce: dbeta += sum dy, dgamma += sum dy xhat; both sums kept in sums[2c]
 *   bn_backward_apply:  dx, one work-item per element
 *   bn_invstd:          invstd = 1 / sqrt(var + eps), one work-item per channel
 */

#define AT(base, off, ni, ci, i) base[off + ((ni) * c + (ci)) * inner + (i)]

__kernel void bn_stats(__global float *mean, ulong mean_off, __global float *invstd, ulong invstd_off,
                       __global float *rmean, ulong rmean_off, __global float *rvar, ulong rvar_off,
                       __global const float *x, ulong x_off, ulong n, ulong c, ulong inner, float momentum, float eps)
{
    __local float scratch[NNCL_WG];
    const size_t ci = NNCL_GROUP();
    const uint lid = get_local_id(0);
    const ulong m = n * inner;
    nncl_kahan s = {0.0f, 0.0f};
    if (ci < c)
        for (ulong j = lid; j < m; j += NNCL_WG) nncl_kahan_add(&s, AT(x, x_off, j / inner, ci, j % inner));
    const float mu = nncl_group_sum(s.sum, scratch) / (float)m;
    nncl_kahan q = {0.0f, 0.0f};
    if (ci < c) {
        for (ulong j = lid; j < m; j += NNCL_WG) {
            float d = AT(x, x_off, j / inner, ci, j % inner) - mu;
            nncl_kahan_add(&q, d * d);
        }
    }
    const float var = nncl_group_sum(q.sum, scratch) / (float)m;
    if (ci >= c || lid != 0) return;
    mean[mean_off + ci] = mu;
    invstd[invstd_off + ci] = 1.0f / sqrt(var + eps);
    rmean[rmean_off + ci] = (1.0f - momentum) * rmean[rmean_off + ci] + momentum * mu;
    rvar[rvar_off + ci] = (1.0f - momentum) * rvar[rvar_off + ci] + momentum * var * (float)m / (float)(m - 1);
}

/* With invstd_is_var, `invstd` holds variances and 1 / sqrt(var + eps) is taken here (evaluation). */
__kernel void bn_apply(__global float *y, ulong y_off, __global const float *x, ulong x_off,
                       __global const float *mean, ulong mean_off, __global const float *invstd, ulong invstd_off,
                       __global const float *gamma, ulong gamma_off, __global const float *beta, ulong beta_off,
                       ulong c, ulong inner, ulong total, int invstd_is_var, float eps)
{
    size_t i = NNCL_GID();
    if (i >= total) return;
    ulong ci = (i / inner) % c;
    float is = invstd[invstd_off + ci];
    if (invstd_is_var) is = 1.0f / sqrt(is + eps);
    y[y_off + i] = (x[x_off + i] - mean[mean_off + ci]) * is * gamma[gamma_off + ci] + beta[beta_off + ci];
}

__kernel void bn_backward_reduce(__global float *dgamma, ulong dgamma_off, __global float *dbeta, ulong dbeta_off,
                                 __global float *sums, __global const float *dy, ulong dy_off,
                                 __global const float *x, ulong x_off, __global const float *mean, ulong mean_off,
                                 __global const float *invstd, ulong invstd_off, ulong n, ulong c, ulong inner)
{
    __local float scratch[NNCL_WG];
    const size_t ci = NNCL_GROUP();
    const uint lid = get_local_id(0);
    const ulong m = n * inner;
    nncl_kahan k_dy = {0.0f, 0.0f}, k_dyx = {0.0f, 0.0f};
    if (ci < c) {
        const float mu = mean[mean_off + ci], is = invstd[invstd_off + ci];
        for (ulong j = lid; j < m; j += NNCL_WG) {
            float d = AT(dy, dy_off, j / inner, ci, j % inner);
            nncl_kahan_add(&k_dy, d);
            nncl_kahan_add(&k_dyx, d * ((AT(x, x_off, j / inner, ci, j % inner) - mu) * is));
        }
    }
    const float s_dy = nncl_group_sum(k_dy.sum, scratch);
    const float s_dyx = nncl_group_sum(k_dyx.sum, scratch);
    if (ci >= c || lid != 0) return;
    dbeta[dbeta_off + ci] += s_dy;
    dgamma[dgamma_off + ci] += s_dyx;
    sums[2 * ci] = s_dy;
    sums[2 * ci + 1] = s_dyx;
}

__kernel void bn_backward_apply(__global float *dx, ulong dx_off, __global const float *dy, ulong dy_off,
                                __global const float *x, ulong x_off, __global const float *mean, ulong mean_off,
                                __global const float *invstd, ulong invstd_off, __global const float *gamma,
                                ulong gamma_off, __global const float *sums, ulong n, ulong c, ulong inner, int train)
{
    size_t i = NNCL_GID();
    if (i >= n * c * inner) return;
    ulong ci = (i / inner) % c;
    const float is = invstd[invstd_off + ci], g = gamma[gamma_off + ci], d = dy[dy_off + i];
    if (!train) {
        dx[dx_off + i] = g * is * d;
        return;
    }
    const float m = (float)(n * inner);
    const float xhat = (x[x_off + i] - mean[mean_off + ci]) * is;
    dx[dx_off + i] = g * is / m * (m * d - sums[2 * ci] - xhat * sums[2 * ci + 1]);
}

__kernel void bn_invstd(__global float *invstd, ulong invstd_off, __global const float *var, ulong var_off, ulong c,
                        float eps)
{
    size_t i = NNCL_GID();
    if (i >= c) return;
    invstd[invstd_off + i] = 1.0f / sqrt(var[var_off + i] + eps);
}
