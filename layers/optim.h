/* AdamW over the flat parameter arena, global-norm gradient clipping, all on the device. */
#ifndef DMX_LAYERS_OPTIM_H
#define DMX_LAYERS_OPTIM_H
#include "host/runtime/runtime.h"

/* norm_out[0] = sqrt(sum of squares of g (n)). partial is scratch of at least
 * dmx_global_norm_partial_floats() floats. */
size_t dmx_global_norm_partial_floats(void);
void dmx_global_norm(dmx_runtime *rt, dmx_tensor norm_out, dmx_tensor partial, dmx_tensor g, size_t n);
/* The same over the union of `parts` disjoint tensors g[i] (n[i]) (the arena minus an idle head). */
#define GLOBAL_NORM_MAX_PARTS 2
void dmx_global_norm_parts(dmx_runtime *rt, dmx_tensor norm_out, dmx_tensor partial, const dmx_tensor *g,
                           const size_t *n, int parts);

/* One AdamW step (transformers 4.4.2 AdamW, correct_bias=True: bias-corrected step size
 * lr*sqrt(1-b2^t)/(1-b1^t), eps added to sqrt(v), then decoupled weight decay p -= lr*wd*p on the
 * updated p; step t >= 1) over params p, grads g, moments m, v (n each). If max_norm > 0 the
 * gradient is first scaled by min(1, max_norm / (norm[0] + 1e-6)), reading norm on the device
 * (as torch.nn.utils.clip_grad_norm_); g itself is left unchanged. decay_mask: NULL buf = decay
 * all; else a float tensor (n) of 0/1 selecting which entries decay (HF excludes biases and
 * LayerNorm weights). */
void dmx_adamw_update(dmx_runtime *rt, dmx_tensor p, dmx_tensor g, dmx_tensor m, dmx_tensor v, size_t n, float lr,
                      float beta1, float beta2, float eps, float weight_decay, dmx_tensor decay_mask, int t,
                      dmx_tensor norm, float max_norm);
#endif
