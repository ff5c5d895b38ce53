/* The vision notebook's models (docs/datamux-spec.md §4): LeNet and MuxLeNet on centre-cropped
 * images, and an MLP with the same image muxing and demuxing. Images are NHWC, and every
 * per-instance tensor is instance-major: row i*B + b holds instance i of group b.
 *   images (N*B, S, S, 1) -> muxing: per-instance transform, summed over instances -> (B, S, S, Cm)
 *   -> trunk (LeNet: conv3 tanh pool conv4 tanh pool conv3(120) tanh fc84 tanh; MLP: hidden layers)
 *   -> demux (muxed only): per-instance fc D->D + act -> (N*B, D) -> shared fc D->classes (tanh for mse)
 * Parameters live in one arena, trainable tensors first, so SGD/AdamW run over one flat prefix;
 * gradients (and Adam moments) mirror that prefix. A step uploads only the images and labels. */
#ifndef DMX_LAYERS_VISION_MODEL_H
#define DMX_LAYERS_VISION_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "host/config/config.h"
#include "host/runtime/runtime.h"

#define DMX_VISION_MAX_PARAMS 64
#define DMX_VISION_MAX_HIDDEN 16

typedef enum { DMX_VINIT_FANIN, DMX_VINIT_GAUSS, DMX_VINIT_CONST, DMX_VINIT_ORTHO, DMX_VINIT_ZERO } dmx_vinit;

typedef struct {
  char name[64];
  int ndim, shape[4];
  size_t n;
  bool trainable;
  dmx_tensor *t, *g; /* parameter and (trainable) gradient tensors, valid after create */
  dmx_vinit init;
  int fan_in;  /* DMX_VINIT_FANIN: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default */
  float value; /* DMX_VINIT_CONST */
} dmx_vparam;

typedef struct dmx_vision_model dmx_vision_model;

/* N instances, B groups per step, images of crop x crop pixels (cfg->crop), `classes` outputs. */
dmx_vision_model *dmx_vision_model_create(dmx_runtime *rt, const dmx_vision_config *cfg, int N, int B, int classes,
                                          dmx_error *err);
void dmx_vision_model_free(dmx_vision_model *m);
/* PyTorch-default initialisation and the fixed muxing tensors, from seed. Zeroes Adam state. */
void dmx_vision_model_init(dmx_vision_model *m, uint64_t seed);

/* One forward (and backward into the gradients when train) pass. images (N*B, S, S) floats in
 * [0, 1], instance-major; labels (N*B) int32. Both are staged: the caller may reuse its arrays. */
void dmx_vision_model_step(dmx_vision_model *m, const float *images, const int32_t *labels, bool train);
/* SGD or AdamW (cfg->optimizer) over the trainable prefix; t counts from 1. weight_decay and
 * max_grad_norm > 0 apply to AdamW only. */
void dmx_vision_model_update(dmx_vision_model *m, float lr, int t, const dmx_train_config *tc);
/* The last step's loss: mse sum over instances of mean 0.5 (t - out)^2; xent sum over instances
 * of the mean cross-entropy. Reads back one float (a sync). */
float dmx_vision_model_loss(dmx_vision_model *m);
/* The last step's argmax predictions (N*B), instance-major. */
void dmx_vision_model_predictions(dmx_vision_model *m, int32_t *out);

/* Tests: while frozen, max pooling reuses the window maxima of the last step that ran unfrozen,
 * making the loss a smooth function of the parameters for finite differences. */
void dmx_vision_model_freeze_pooling(dmx_vision_model *m, bool frozen);

int dmx_vision_model_num_params(const dmx_vision_model *m);
const dmx_vparam *dmx_vision_model_param(const dmx_vision_model *m, int i);
size_t dmx_vision_model_trainable_floats(const dmx_vision_model *m);
size_t dmx_vision_model_device_bytes(const dmx_vision_model *m);
/* Channels of the muxed image (expand_channels for nonlinear_expand, else 1). */
int dmx_vision_model_mux_channels(const dmx_vision_model *m);
/* AdamW's first (k 0) or second (k 1) moments over the trainable prefix (empty under SGD). */
const dmx_arena *dmx_vision_model_adam_state(const dmx_vision_model *m, int k);
/* Data-parallel training: the loss is a mean over `global_B` groups (the global batch of which
 * this model's B are one rank's shard), so the ranks' summed gradients are the global batch's. */
void dmx_vision_model_set_loss_batch(dmx_vision_model *m, int global_B);
/* The trainable gradients (one span; empty when nothing trains) and the parameter arena. */
dmx_tensor dmx_vision_model_grads(const dmx_vision_model *m);
const dmx_arena *dmx_vision_model_param_arena(const dmx_vision_model *m);
#endif
