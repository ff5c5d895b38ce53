/* Model checkpoints: a run directory's <tag>/model.safetensors (the original parameter names,
 * spec §6.3) beside a Hugging Face style config.json. */
#ifndef DMX_CHECKPOINT_H
#define DMX_CHECKPOINT_H

#include "host/config/config.h"
#include "host/formats/safetensors.h"
#include "host/run/train_state.h"
#include "layers/model.h"

/* Writes <run_dir>/<tag>/model.safetensors and config.json, each atomically (save_into: into dir). */
int dmx_checkpoint_save(dmx_model *m, const dmx_experiment *e, const char *run_dir, const char *tag, dmx_error *err);
int dmx_checkpoint_save_into(dmx_model *m, const dmx_experiment *e, const char *dir, dmx_error *err);

/* Writes <run_dir>/<tag>/ atomically (host/run/train_state.h): the model, and with state (last/)
 * the AdamW moments and trainer_state.json. state NULL: a model-only checkpoint (best/). */
int dmx_checkpoint_commit(dmx_model *m, const dmx_experiment *e, const char *run_dir, const char *tag,
                          const dmx_train_state *state, dmx_error *err);
/* Restores the AdamW moments from <dir>/optimizer.safetensors; sizes and the step must match. */
int dmx_optimizer_load(dmx_model *m, const char *dir, int step, dmx_error *err);

/* Loads parameters by name from `path`: a .safetensors or torch.save (.bin) file, a folder holding
 * model.safetensors or pytorch_model.bin (a released Hugging Face model: config.json +
 * pytorch_model.bin), or a run directory (its best/, else last/ checkpoint). When a config.json
 * sits beside the file, its architecture must be the model's (hf_config.h). Names are the
 * original ones (spec §6.3); "module."-prefixed, sentence_embedding and lm_head.* keys of older
 * checkpoints are accepted too. Shapes must match, except task-head tensors (demultiplexer.*,
 * classifier.*) whose class count differs, which keep their fresh initialisation with a warning;
 * missing trunk parameters are an error, unexpected keys are listed. */
int dmx_checkpoint_load(dmx_model *m, const char *path, dmx_error *err);

/* Resolves `path` as dmx_checkpoint_load does (the file read is written into file[cap]) and reads
 * it in either format; the tensors come back as a dmx_st_file (torch files converted, see
 * torch_bin.h). NULL with err. */
dmx_st_file *dmx_checkpoint_open(const char *path, char *file, size_t cap, dmx_error *err);
/* Only the resolution: the file dmx_checkpoint_load would read, into file[cap]. 0 or -1 with err. */
int dmx_checkpoint_resolve(const char *path, char *file, size_t cap, dmx_error *err);
/* The config.json in the folder of checkpoint file `file`: 0 with its path in out, or -1 when
 * there is none. */
int dmx_checkpoint_config_path(const char *file, char *out, size_t cap);

/* Whether a checkpoint tensor has the parameter's exact shape; both shapes are formatted into
 * have/want (cap bytes each) for messages. */
bool dmx_checkpoint_shape_matches(const dmx_st_tensor *t, const dmx_param *p, char *have, char *want, size_t cap);

#endif
