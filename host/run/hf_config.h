/* The config.json beside a checkpoint: a Hugging Face RobertaConfig plus DataMUX's fields
 * (num_instances, muxing_variant, demuxing_variant, gaussian_hadamard_norm, ...), as the released
 * princeton-nlp/datamux-* models and `datamux train` run directories write it (spec §6.2).
 *
 * JSON is read with libyaml (a JSON document is a YAML flow mapping). Unknown keys are ignored, as
 * Hugging Face does; the fields that fix tensor shapes are required. */
#ifndef DMX_HF_CONFIG_H
#define DMX_HF_CONFIG_H

#include <stdbool.h>

#include "host/config/config.h"
#include "layers/model.h"

typedef struct {
  dmx_model_config model;
  dmx_mux_config mux;  /* num_instances 1 and defaults for a plain RoBERTa (baseline) */
  dmx_setting setting; /* baseline (no num_instances, should_mux 0 or a plain Roberta architecture),
                              retrieval_pretraining (task_loss_coeff 0) or finetuning */
  bool token_task;     /* a *TokenClassification* architecture or finetuning_task "ner" */
  int num_labels;      /* len(id2label), else num_labels, else Hugging Face's default 2 */
  char task[32];       /* finetuning_task, or "" */
  float task_loss_coeff, retrieval_loss_coeff; /* -1 when absent */
} dmx_hf_config;

/* Reads path. 0, or -1 with err ("<path>: key: what is wrong"). */
int dmx_hf_config_load(const char *path, dmx_hf_config *c, dmx_error *err);

/* Copies the architecture (model and multiplexing sections, setting, task name when known) into e,
 * so a released model can be run without an experiment file that repeats it. */
void dmx_hf_config_apply(const dmx_hf_config *c, dmx_experiment *e);

/* Checks that model m was built with the architecture c describes: N, vocabulary, width, depth,
 * FFN width, positions, the muxing kind (random_ortho's matrices vs Hadamard vectors) and the
 * demuxing kind. Error text names the field, both values, and the flag that fixes it. */
int dmx_hf_config_check_model(const dmx_hf_config *c, const dmx_model *m, const char *path, dmx_error *err);

#endif
