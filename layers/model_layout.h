/* The model's tensors: parameters by name (layers/model_layout.c) and activations. */
#ifndef DMX_LAYERS_MODEL_LAYOUT_H
#define DMX_LAYERS_MODEL_LAYOUT_H

#include "layers/model_state.h"

/* Registers every parameter (and gradient mirror) of m's configuration with m's arenas and fills
 * m->plist; trainable tensors first, frozen instance vectors last. Before the arenas commit. */
void dmx_model_register_params(dmx_model *m);
/* Registers the inputs, activations and activation gradients of one step (shapes in model_state.h). */
void dmx_model_register_activations(dmx_model *m);

#endif
