/* The DataMUX model (docs/datamux-spec.md §1): the one module that composes the layers.
 * Parameters live in one arena (trainable tensors first, frozen ones after, so AdamW runs over one
 * flat prefix); gradients and the two Adam moments mirror the trainable prefix exactly. */
#ifndef DMX_LAYERS_MODEL_H
#define DMX_LAYERS_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "host/config/config.h"
#include "host/runtime/runtime.h"
#include "layers/embedding.h"
#include "layers/model_types.h"

/* B = groups per step, T = sequence length as the encoder sees it (L + N + 1 for index demux).
 * num_labels: classes of the task head; token_task: per-token labels (NER). */
dmx_model *dmx_model_create(dmx_runtime *rt, const dmx_experiment *e, int B, int T, int num_labels, bool token_task,
                            dmx_error *err);
void dmx_model_free(dmx_model *m);

/* Parameter registry: for checkpoints and tests. */
int dmx_model_num_params(const dmx_model *m);
const dmx_param *dmx_model_param(const dmx_model *m, int i);
const dmx_param *dmx_model_find_param(const dmx_model *m, const char *name);
size_t dmx_model_trainable_floats(const dmx_model *m);
size_t dmx_model_device_bytes(const dmx_model *m);
/* AdamW's first (moment 0) and second (moment 1) moment arenas, laid out like the gradients: the
 * optimizer state a resumable checkpoint saves and restores. */
const dmx_arena *dmx_model_adam_state(const dmx_model *m, int moment);

/* Initialises parameters as Hugging Face does (normal(0, 0.02) weights, zero biases, unit LN,
 * zero padding rows) and the instance vectors from the experiment's seed. */
void dmx_model_init_params(dmx_model *m, uint64_t seed);

/* Runs forward (and, when train, backward into the gradient arena) for one batch.
 * train: dropout on, gradients computed. Nothing is read back. */
void dmx_model_step(dmx_model *m, const dmx_batch_view *batch, bool train, uint64_t step);
/* AdamW with global-norm clipping over the flat trainable parameters. t counts from 1. */
void dmx_model_update(dmx_model *m, float lr, int t);
/* Reads back the last step's losses and accuracies (a host round trip: log intervals only). */
dmx_step_stats dmx_model_stats(dmx_model *m);
/* Recomputes the means (task_loss, retrieval_loss, loss) from the sums and counts, after ranks
 * have added theirs. */
void dmx_model_finish_stats(const dmx_model *m, dmx_step_stats *st);
/* The rows a step on `batch` scores: task targets and (when train with retrieval) retrieval
 * targets; host only, as dmx_model_step counts them. */
void dmx_model_count_scored(const dmx_model *m, const dmx_batch_view *batch, bool train, int *task, int *retrieval);
/* The trainable gradient arena as at most two spans (the idle retrieval head left out: its
 * gradient is zero); returns how many. What a data-parallel step all-reduces. */
int dmx_model_grad_spans(const dmx_model *m, dmx_tensor spans[2]);
/* The word-embedding gradient, (V, d) inside the gradient spans: after a step only the rows of
 * the ids the batch holds (the pad id excepted) can be non-zero, which a data-parallel step uses
 * to all-reduce a few rows instead of the whole table. *d gets the row width. */
dmx_tensor dmx_model_word_grad(const dmx_model *m, int *d);
/* The parameter arena (trainable and frozen), e.g. to broadcast rank 0's initial parameters. */
const dmx_arena *dmx_model_param_arena(const dmx_model *m);
/* Dropout masks for data-parallel rank `rank`: its own stream, so shards do not share masks
 * (rank 0 keeps the one-process masks). */
void dmx_model_set_rank(dmx_model *m, int rank);
/* Reads back task predictions (B*N) or (B*N, T) argmax ids of the last step. */
void dmx_model_predictions(dmx_model *m, int32_t *out);
/* Reads back task logits of the last step: (B*N, C) or (B*N, T, C). */
void dmx_model_logits(dmx_model *m, float *out);

/* With DATAMUX_PROFILE=1 set: seconds per phase so far (forward, backward, heads, optimizer). */
void dmx_model_print_profile(const dmx_model *m, FILE *f);
dmx_runtime *dmx_model_runtime(const dmx_model *m);
int dmx_model_B(const dmx_model *m);
int dmx_model_T(const dmx_model *m);
int dmx_model_N(const dmx_model *m);
int dmx_model_num_labels(const dmx_model *m);

#endif
