/* Resumable checkpoints of a run directory, for any model.
 *
 * A checkpoint is a folder: model.safetensors (+ config.json for text models, host/run/checkpoint.h),
 * and for the resumable "last" one also optimizer.safetensors (AdamW's two moment arenas, flat, as laid out on
 * the device) and trainer_state.json (step, data order position, host RNG, best metric so far,
 * training seconds). Each is written into <tag>.tmp/ first; only when every file is on disk does
 * the folder replace <tag>/ (old one renamed to <tag>.old/, new one renamed in, old one deleted).
 * A crash at any moment therefore leaves either <tag>/ or <tag>.old/ complete, and
 * dmx_checkpoint_dir finds whichever survived. */
#ifndef DMX_TRAIN_STATE_H
#define DMX_TRAIN_STATE_H

#include <stdint.h>

#include "host/base/common.h"
#include "host/runtime/runtime.h"

typedef struct dmx_train_state {
  int step;        /* steps completed */
  int total_steps; /* the schedule's length: a resumed run must use the same */
  int epoch;       /* data order: epoch number and position of the next row in that epoch */
  int next_row;
  uint64_t rng;  /* host RNG of the retrieval picks */
  int best_step; /* -1 when no evaluation happened yet */
  double best_metric;
  double train_seconds; /* training time so far (for the time budget) */
  int world_size;       /* data-parallel ranks of the job that wrote it (1 when the file has none) */
} dmx_train_state;

/* Writes <run_dir>/<tag>/ as described above: fill(ctx, tmp_dir, err) writes the files into the
 * fresh folder <tag>.tmp/ (0, or -1 with err), then the folder replaces <tag>/. */
typedef int (*dmx_checkpoint_fill)(void *ctx, const char *dir, dmx_error *err);
int dmx_checkpoint_swap(const char *run_dir, const char *tag, dmx_checkpoint_fill fill, void *ctx, dmx_error *err);

/* The folder holding <run_dir>'s complete <tag> checkpoint (<tag>/, else <tag>.old/ left by a
 * crash during replacement) into out; -1 with err when neither exists. */
int dmx_checkpoint_dir(const char *run_dir, const char *tag, char *out, size_t cap, dmx_error *err);

/* trainer_state.json of a checkpoint folder; reading is strict: a missing or malformed key is an error. */
int dmx_train_state_write(const char *dir, const dmx_train_state *s, dmx_error *err);
int dmx_train_state_read(const char *dir, dmx_train_state *s, dmx_error *err);
/* <dir>/optimizer.safetensors: AdamW's two moment arenas, buffer by buffer, tagged with the step.
 * Loading checks the sizes and that the step matches. */
int dmx_moments_save(dmx_runtime *rt, const dmx_arena *adam_m, const dmx_arena *adam_v, const char *dir, int step,
                     dmx_error *err);
int dmx_moments_load(dmx_runtime *rt, const dmx_arena *adam_m, const dmx_arena *adam_v, const char *dir, int step,
                     dmx_error *err);

#endif
