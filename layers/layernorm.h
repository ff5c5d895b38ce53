#ifndef DMX_LAYERS_LAYERNORM_H
#define DMX_LAYERS_LAYERNORM_H
#include "host/runtime/runtime.h"
/* out (R, C) = (x - mean) * rstd * g + b, per row; saves mean (R) and rstd (R) for the backward.
 * out may alias neither x nor the saved stats. */
void dmx_layernorm_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor mean, dmx_tensor rstd, dmx_tensor x,
                           dmx_tensor g, dmx_tensor b, int R, int C, float eps);
/* dx (R, C) += ..., dg (C) += ..., db (C) += ... (deterministic: no atomics) */
void dmx_layernorm_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dg, dmx_tensor db, dmx_tensor dout, dmx_tensor x,
                            dmx_tensor mean, dmx_tensor rstd, dmx_tensor g, int R, int C);
#endif
