/* Elementwise and small reduction ops used by every block: bias, GELU, dropout, residual adds,
 * gathers. Conventions for all layers/: outputs first; a tensor is (buffer, element offset);
 * shapes are stated per argument; *_backward functions ACCUMULATE (+=) into every gradient they
 * write (parameter and activation gradients alike), so callers zero gradient arenas once per step. */
#ifndef DMX_LAYERS_COMMON_OPS_H
#define DMX_LAYERS_COMMON_OPS_H

#include "host/runtime/runtime.h"

/* y (R, C) += broadcast b (C) */
void dmx_bias_add_forward(dmx_runtime *rt, dmx_tensor y, dmx_tensor b, int R, int C);
/* db (C) += column sums of dy (R, C) */
void dmx_bias_add_backward(dmx_runtime *rt, dmx_tensor db, dmx_tensor dy, int R, int C);

/* out (n) = gelu(x), exact erf form: 0.5 x (1 + erf(x / sqrt 2)). out may alias x. */
void dmx_gelu_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int n);
/* dx (n) += gelu'(x) * dout */
void dmx_gelu_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor x, dmx_tensor dout, int n);

/* tanh (the baseline RoBERTa classification head) */
void dmx_tanh_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int n);
/* dx += (1 - y^2) * dout, y = tanh output */
void dmx_tanh_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor y, dmx_tensor dout, int n);

/* Dropout with a counter-based RNG: element i is kept iff hash(seed, stream, i) >= p (uniform in
 * [0,1)), and kept elements are scaled by 1/(1-p). The backward regenerates the same mask from
 * (seed, stream), so no mask is stored. p == 0 is the identity. out may alias x. */
void dmx_dropout_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int n, float p, uint32_t seed, uint32_t stream);
/* dx (n) += mask * dout / (1-p) */
void dmx_dropout_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dout, int n, float p, uint32_t seed,
                          uint32_t stream);
/* The uniform number the kernels draw for (seed, stream, i); the host reference for tests. */
float dmx_dropout_uniform_host(uint32_t seed, uint32_t stream, uint32_t i);

/* out (n) = a + b. out may alias a or b. */
void dmx_add_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor a, dmx_tensor b, int n);
/* y (n) += alpha * x */
void dmx_axpy(dmx_runtime *rt, dmx_tensor y, dmx_tensor x, float alpha, int n);
/* out (n) = x (copy) */
void dmx_copy_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int n);

/* Row gather: out (R, C) row r = x row idx[r]; idx is an int32 tensor (R). */
void dmx_gather_rows_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, dmx_tensor idx, int R, int C);
/* dx row idx[r] += dout row r. idx values must be distinct (each source row gathered once). */
void dmx_gather_rows_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dout, dmx_tensor idx, int R, int C);

#endif
