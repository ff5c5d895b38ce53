/* 2x2 max pooling with stride 2 on NHWC images (PyTorch's MaxPool2d(2): floor of odd sizes). */
#ifndef DMX_LAYERS_POOL_H
#define DMX_LAYERS_POOL_H
#include "host/runtime/runtime.h"

/* out (B, H/2, W/2, C) = window maxima of x (B, H, W, C); idx (same shape, int32) = flat index into
 * x of each maximum, kept for the backward. */
void dmx_maxpool2_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor idx, dmx_tensor x, int B, int H, int W, int C);
/* out[o] = x[idx[o]] for n outputs: pooling with the maxima frozen where an earlier forward found
 * them (gradient checks use it so that finite differences do not cross max pooling's kinks). */
void dmx_maxpool2_forward_frozen(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, dmx_tensor idx, int n);
/* dx[idx[o]] += dout[o] for the n = B*(H/2)*(W/2)*C outputs */
void dmx_maxpool2_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dout, dmx_tensor idx, int n);
#endif
