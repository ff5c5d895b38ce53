/* Model checkpoints: a run directory's <tag>/model.safetensors (the original parameter names,
 * spec §6.3) beside a Hugging Face style config.json. */
#ifndef DMX_CHECKPOINT_H
#define DMX_CHECKPOINT_H

#include "host/config.h"
#include "host/safetensors.h"
#include "layers/model.h"

/* Writes <run_dir>/<tag>/model.safetensors and config.json, each atomically. */
int dmx_checkpoint_save(dmx_model *m, const dmx_experiment *e, const char *run_dir, const char *tag, dmx_error *err);

/* Loads parameters by name from `path`: a .safetensors file, a folder holding model.safetensors,
 * or a run directory (its best/, else last/ checkpoint). Shapes must match, except task-head
 * tensors (demultiplexer.*, classifier.*) whose class count differs, which keep their fresh
 * initialisation with a warning; missing trunk parameters are an error, unexpected keys are listed. */
int dmx_checkpoint_load(dmx_model *m, const char *path, dmx_error *err);

/* Whether a checkpoint tensor has the parameter's exact shape; both shapes are formatted into
 * have/want (cap bytes each) for messages. */
bool dmx_checkpoint_shape_matches(const dmx_st_tensor *t, const dmx_param *p, char *have, char *want, size_t cap);

#endif
