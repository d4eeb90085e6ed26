/*
 * ref.h - the reference implementation of every layer and loss, in double
 * precision, on plain arrays.
 *
 * This is the yardstick of nncl. Each function is the textbook definition
 * written as plainly as possible: loops in the order of the formula, no
 * blocking, no tricks. The CPU backend runs these functions on float tensors
 * (converting to double and back, src/cpu/cpu_stage.c), and the gradient
 * checks run them directly in double against central finite differences.
 *
 * Conventions: outputs first, then inputs, then geometry. Input gradients
 * (dx) are overwritten; parameter gradients (dw, db, dgamma, dbeta) are added
 * to. Optional arrays may be NULL where noted.
 */
#ifndef NNCL_REF_H
#define NNCL_REF_H

#include "backend/backend.h"

/* ---- bias: y viewed as (outer, channels, inner) ---- */
void nncl__ref_bias_add(double *y, const double *b, int64_t outer, int64_t channels, int64_t inner);
void nncl__ref_bias_backward(double *db, const double *dy, int64_t outer, int64_t channels, int64_t inner);

/* ---- conv2d (no bias; see nncl_conv_geom) ---- */
void nncl__ref_conv2d_forward(double *y, const double *x, const double *w, const nncl_conv_geom *g);
void nncl__ref_conv2d_backward_data(double *dx, const double *dy, const double *w, const nncl_conv_geom *g);
void nncl__ref_conv2d_backward_params(double *dw, const double *dy, const double *x, const nncl_conv_geom *g);

/* ---- pooling; idx may be NULL for average pooling ---- */
/* round32 != 0 rounds every sum to float32 as the OpenCL kernels do, so that
   the float backends agree bit for bit; the gradient checks pass 0. relu_y
   (max pooling only, may be NULL): x is a relu's output, whose backward is
   folded in: an output passes its gradient only where its maximum relu_y is > 0. */
void nncl__ref_pool2d_forward(double *y, double *idx, const double *x, const nncl_pool_geom *g, int round32);
void nncl__ref_pool2d_backward(double *dx, const double *dy, const double *idx, const double *relu_y,
                               const nncl_pool_geom *g, int round32);

/* ---- activations, element-wise over n ---- */
double nncl__ref_activation(nncl_activation act, double param, double x);
double nncl__ref_activation_grad(nncl_activation act, double param, double x);
void nncl__ref_activation_forward(double *y, const double *x, int64_t n, nncl_activation act, double param);
void nncl__ref_activation_backward(double *dx, const double *x, const double *dy, int64_t n, nncl_activation act,
                                   double param);

/* ---- (log-)softmax over the last dimension of (rows, cols) ---- */
void nncl__ref_softmax_forward(double *y, const double *x, int64_t rows, int64_t cols, int log);
void nncl__ref_softmax_backward(double *dx, const double *y, const double *dy, int64_t rows, int64_t cols, int log);

/* ---- dropout: y[i] = keep(i) ? x[i] * scale : 0, keep(i) = uniform(key, i) >= p;
   scale is 1 / (1 - p) (the float backends pass it rounded to float) ---- */
void nncl__ref_dropout(double *y, const double *x, int64_t n, double p, double scale, nncl_rng_key key);

/* ---- batch norm over (n, c, inner) ---- */
void nncl__ref_batchnorm_forward_train(double *y, double *mean, double *invstd, double *running_mean,
                                       double *running_var, const double *x, const double *gamma,
                                       const double *beta, const nncl_bn_geom *g);
void nncl__ref_batchnorm_forward_eval(double *y, const double *x, const double *running_mean,
                                      const double *running_var, const double *gamma, const double *beta,
                                      const nncl_bn_geom *g);
void nncl__ref_batchnorm_backward(double *dx, double *dgamma, double *dbeta, const double *dy, const double *x,
                                  const double *mean, const double *invstd, const double *gamma,
                                  const nncl_bn_geom *g, int train);

/* ---- layer norm over (rows, cols); gamma, beta, dgamma, dbeta may be NULL ---- */
void nncl__ref_layernorm_forward(double *y, double *mean, double *rstd, const double *x, const double *gamma,
                                 const double *beta, int64_t rows, int64_t cols, double eps);
void nncl__ref_layernorm_backward(double *dx, double *dgamma, double *dbeta, const double *dy, const double *x,
                                  const double *mean, const double *rstd, const double *gamma, int64_t rows,
                                  int64_t cols);

/* ---- losses; returns the mean loss and fills work[n] with per-row losses ---- */
double nncl__ref_loss_forward(nncl_loss_kind kind, double *work, const double *input, const double *target, int64_t n,
                              int64_t c, double smoothing);
void nncl__ref_loss_backward(nncl_loss_kind kind, double *dinput, const double *input, const double *target, int64_t n,
                             int64_t c, double smoothing);

#endif /* NNCL_REF_H */
