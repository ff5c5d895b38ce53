#ifndef DMX_LAYERS_LINEAR_H
#define DMX_LAYERS_LINEAR_H
#include "host/runtime/runtime.h"
/* PyTorch's Linear: out (R, OC) = x (R, C) W^T + b, W stored (OC, C) row-major, b (OC) or b.buf NULL.
 * beta 0 overwrites out, 1 accumulates into it. */
void dmx_linear_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, dmx_tensor W, dmx_tensor b, int R, int C, int OC,
                        float beta);
/* dx (R, C) += dout W (skipped when dx.buf is NULL); dW (OC, C) += dout^T x; db (OC) += colsum(dout)
 * (skipped when db.buf is NULL). */
void dmx_linear_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dW, dmx_tensor db, dmx_tensor dout, dmx_tensor x,
                         dmx_tensor W, int R, int C, int OC);
#endif
