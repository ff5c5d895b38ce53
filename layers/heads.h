/* The task head (forward, and its backward into dH) and the retrieval head (forward and backward
 * together, blockwise over the vocabulary), on the encoder output H (B, T, d). */
#ifndef DMX_LAYERS_HEADS_H
#define DMX_LAYERS_HEADS_H

#include <stdbool.h>

#include "layers/model_state.h"

/* H (B, T, d): the encoder output; the task head's logits and losses go to m's head tensors. */
void dmx_task_head_forward(dmx_model *m, dmx_tensor H, bool train);
/* dH (B, T, d): the gradient of the encoder output, accumulated into. */
void dmx_task_head_backward(dmx_model *m, dmx_tensor H, dmx_tensor dH, bool train);
void dmx_retrieval_head(dmx_model *m, dmx_tensor H, dmx_tensor dH, bool train);

#endif
