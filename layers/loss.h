/* Softmax cross-entropy losses and the fused vocabulary loss of the retrieval head. */
#ifndef DMX_LAYERS_LOSS_H
#define DMX_LAYERS_LOSS_H
#include "host/runtime/runtime.h"

/* For rows r of logits (R, C) with targets[r] != -100 (int32 tensor (R)):
 * losses[r] = -log softmax(logits[r])[target], 0 for ignored rows; predictions[r] = argmax (int32).
 * dlogits (R, C) = scale * (softmax - onehot) for kept rows, 0 for ignored ones (written, not
 * accumulated: it is the start of the backward), when dlogits.buf is non-NULL.
 * scale = coeff / (number of kept rows) gives the gradient of coeff * mean loss. */
void dmx_softmax_xent_forward_backward(dmx_runtime *rt, dmx_tensor losses, dmx_tensor predictions, dmx_tensor dlogits,
                                       dmx_tensor logits, dmx_tensor targets, int R, int C, float scale);

/* Sums a (n) vector into out[0] (one float on the device; no host round trip). */
void dmx_reduce_sum(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int n);
#endif
