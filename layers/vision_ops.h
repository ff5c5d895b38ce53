/* Small ops of the vision models (cl/vision.cl): instance sums for image muxing, the rotation
 * gather, ReLU, the notebook's MSE on +-1 targets and plain SGD. Backward functions accumulate. */
#ifndef DMX_LAYERS_VISION_OPS_H
#define DMX_LAYERS_VISION_OPS_H
#include <stdint.h>

#include "host/runtime/runtime.h"

/* out (S) = sum_i x (N, S) */
void dmx_instance_sum_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int N, int S);
/* dx (N, S) += broadcast dout (S) */
void dmx_instance_sum_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dout, int N, int S);

/* out (N, B, P, C) = sign[i] * x (N, B, P, C) gathered at map (N, P) (int32; < 0 gives 0);
 * sign (N) floats. */
void dmx_gather_map_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, dmx_tensor map, dmx_tensor sign, int N,
                            int B, int P, int C);

/* Per-instance matrix on flattened images (so_n, learnable_w muxing): y_i (B, P) = x_i (B, P) Q_i^T
 * for i < N, with x (N, B, P), Q (N, P, P), y (N, B, P): one strided-batched GEMM. */
void dmx_instance_matmul_forward(dmx_runtime *rt, dmx_tensor y, dmx_tensor x, dmx_tensor Q, int N, int B, int P);
/* dQ_i (P, P) += dy_i^T x_i (the inputs are images: no dx) */
void dmx_instance_matmul_backward(dmx_runtime *rt, dmx_tensor dQ, dmx_tensor dy, dmx_tensor x, int N, int B, int P);

/* out (n) = max(x, 0); may alias x */
void dmx_relu_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int n);
/* dx (n) += dout where y = relu(x) > 0 */
void dmx_relu_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor y, dmx_tensor dout, int n);

/* Rows r of out (R, C) against labels (R, int32), targets +1 for the label and -1 elsewhere:
 * losses[r] = sum_c 0.5 (t - out)^2, preds[r] = argmax, dout (R, C) = scale (out - t) written when
 * dout.buf is non-NULL. */
void dmx_mse_pm1_forward_backward(dmx_runtime *rt, dmx_tensor losses, dmx_tensor preds, dmx_tensor dout, dmx_tensor out,
                                  dmx_tensor labels, int R, int C, float scale);

/* Host: q (P, P) = a random rotation (orthogonal, determinant +1): Gram-Schmidt on a Gaussian
 * matrix, one row negated when the determinant came out -1. rng is a splitmix64 state. */
void dmx_random_rotation(float *q, int P, uint64_t *rng);

/* p (n) -= lr * g (n) */
void dmx_sgd_update(dmx_runtime *rt, dmx_tensor p, dmx_tensor g, size_t n, float lr);
#endif
