/* The model's public types: parameters (views into the parameter arena), a batch as the host
 * sees it, and a step's statistics. Apart from layers/model.h so the model's internal state
 * (layers/model_state.h) and its blocks can use them without depending on the model module. */
#ifndef DMX_LAYERS_MODEL_TYPES_H
#define DMX_LAYERS_MODEL_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#include "host/runtime/runtime.h"

#define DMX_MAX_PARAMS 512

typedef enum { DMX_INIT_NORMAL, DMX_INIT_ZEROS, DMX_INIT_ONES, DMX_INIT_INSTANCES } dmx_param_init;

typedef struct {
  char name[128];  /* the original (Hugging Face) parameter name, spec §6.3 */
  char alias[128]; /* a second name for the same storage (tied biases), or "" */
  int ndim;
  int shape[3];
  size_t n;
  bool trainable;
  dmx_tensor *base;      /* the model's tensor this parameter is a view into */
  dmx_tensor *grad_base; /* its gradient mirror (trainable only) */
  size_t sub_off;        /* element offset of the view inside base */
  dmx_param_init init;
  int padding_row; /* embedding row kept at zero (padding_idx), or -1 */
} dmx_param;
/* The parameter's device tensor (valid after the model is created). */
dmx_tensor dmx_param_tensor(const dmx_param *p);
dmx_tensor dmx_param_grad(const dmx_param *p);

/* One step's inputs, built on the host by data/batch.c (ids and labels in; nothing else moves). */
typedef struct {
  const int32_t *ids;                /* (B*N, T) as the first embedding pass sees them (prefix applied) */
  const int32_t *positions;          /* (B*N, T) pad-aware position ids */
  const int32_t *labels;             /* sentence: (B*N); token: (B*N, T) aligned to T, -100 ignored */
  const int32_t *retrieval_instance; /* (B, T) instance k for each muxed position, or NULL */
  const int32_t *retrieval_targets;  /* (B, T) target ids, -100 ignored, or NULL */
  /* The losses' denominators: rows scored in the whole global batch when this is one rank's shard
   * of it (data-parallel training), so the ranks' summed gradients are the global batch's; 0 = the
   * rows scored in this batch (dmx_model_count_scored). */
  int task_norm, retrieval_norm;
} dmx_batch_view;

typedef struct dmx_model dmx_model;

typedef struct {
  float loss, task_loss, retrieval_loss;
  int task_count, retrieval_count;     /* rows scored in this step */
  int task_correct, retrieval_correct; /* argmax hits */
  float grad_norm;                     /* before clipping, of the last update (0 when clipping is off) */
  double task_loss_sum, retrieval_loss_sum; /* the means' numerators: ranks add these, then
                                               dmx_model_finish_stats makes the means again */
} dmx_step_stats;

#endif
