/* Multiplexed batches, exactly as the original builds them (spec §1.3-§1.4).
 *
 * A step takes B*N dataset rows: B groups of N consecutive rows, instance i of group b being row
 * b*N+i of the batch. Each row's ids are then rewritten for the demux variant:
 *   index: L' = L + N + 1. Prefix slots 0..N-1 hold DMX_PREFIX_FILLER except slot i, which holds
 *          DMX_VOCAB - 2 - i (50263 - i); slot N holds DMX_PREFIX_CLS; then the L original ids.
 *   mlp:   L' = L, id 0 replaced by DMX_PREFIX_CLS.
 *   none:  N = 1 baselines, plain RoBERTa input.
 * Positions are RoBERTa's pad-aware ids over the rewritten row: non-pads count 2, 3, ..., pads 1.
 *
 * Order: each epoch is a permutation of the rows (identity when not shuffling). When the last
 * batch is short it is either dropped (drop_last, reproducing the original's truncated evaluation)
 * or filled with padding instances (copies of dataset row 0) whose scored flag is 0 and whose
 * labels are DMX_IGNORE_LABEL, so every example is scored exactly once. */
#ifndef DMX_DATA_BATCH_H
#define DMX_DATA_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "data/dataset_types.h"
#include "host/base/rng.h"

#define DMX_VOCAB_SIZE 50265
#define DMX_PREFIX_FILLER 50000
#define DMX_PREFIX_CLS 49923
#define DMX_MAX_INSTANCES 64 /* prefix ids 50263-i stay clear of the filler and CLS ids */

typedef enum { DMX_INPUT_PLAIN, DMX_INPUT_INDEX, DMX_INPUT_MLP } dmx_input_kind;

/* "none"/"plain", "index", "mlp" -> kind; -1 otherwise. */
int dmx_input_kind_parse(const char *s);
const char *dmx_input_kind_name(dmx_input_kind k);

typedef struct {
  int B, N, L, Lp, rows; /* rows = B*N; Lp = L' */
  dmx_input_kind input;
  dmx_target_kind kind;
  int32_t *ids;                   /* rows * Lp */
  int32_t *positions;             /* rows * Lp */
  int32_t *labels;                /* rows (CLASS); DMX_IGNORE_LABEL for padding instances */
  float *scores;                  /* rows (SCORE); 0 for padding instances */
  int32_t *token_labels;          /* rows * L (TOKENS), aligned with the original L positions */
  int32_t *token_labels_prefixed; /* rows * Lp (TOKENS), DMX_IGNORE_LABEL on the N+1 prefix slots */
  uint8_t *scored;                /* rows: 1 for real examples, 0 for padding instances */
  int32_t *source_row;            /* rows: dataset row, -1 for padding instances */
  int n_scored;
} dmx_batch;

/* Allocates every array once; refilling never allocates. Fails (no allocation) on N < 1,
 * N > DMX_MAX_INSTANCES, plain input with N != 1, B < 1, L < 2, or L' > 512 (RoBERTa's 514
 * position rows minus the two that positions never use). */
int dmx_batch_alloc(dmx_batch *b, int B, int N, int L, dmx_input_kind input, dmx_target_kind kind, dmx_error *err);
void dmx_batch_free(dmx_batch *b);

/* Fills the batch from `count` dataset rows (count <= rows); the rest become padding
 * instances. */
void dmx_batch_fill(dmx_batch *b, const dmx_dataset *ds, const int32_t *rows, int count);

/* RoBERTa position ids: pos[j] = (number of non-pad ids in ids[0..j]) + 1 for non-pads, 1 for pads. */
void dmx_roberta_positions(const int32_t *ids, int len, int32_t *pos);

/* Order of rows in an epoch: a Fisher-Yates shuffle of 0..n-1 driven by splitmix64 seeded with
 * seed ^ (epoch * 0x9E3779B97F4A7C15). Depends only on (n, seed, epoch). */
void dmx_epoch_order(int32_t *order, int n, uint64_t seed, int epoch);

typedef struct {
  const dmx_dataset *ds;
  int instances; /* B*N per step */
  bool shuffle, drop_last;
  uint64_t seed;
  int32_t *order;
  int epoch, next; /* next: position in order of the next row to hand out */
} dmx_batcher;

void dmx_batcher_init(dmx_batcher *bt, const dmx_dataset *ds, int instances_per_step, bool shuffle, bool drop_last,
                      uint64_t seed);
void dmx_batcher_free(dmx_batcher *bt);
/* Starts an epoch: recomputes the order (when shuffling) and rewinds. */
void dmx_batcher_begin_epoch(dmx_batcher *bt, int epoch);
/* Steps in one epoch: floor(n / (B*N)) with drop_last, else ceil. */
int dmx_batcher_steps(const dmx_batcher *bt);
/* Examples scored in one epoch: n, or floor(n / (B*N)) * (B*N) with drop_last. */
int dmx_batcher_scored_per_epoch(const dmx_batcher *bt);
/* Fills the next batch of the epoch; false when the epoch is over. */
bool dmx_batcher_next(dmx_batcher *bt, dmx_batch *b);

/* The retrieval task's picks for one batch (spec §1.2): at each muxed position j of group g a
 * uniformly random instance k (inst, (B, Lp)), whose token there is the target (targets, (B, Lp);
 * -100 where not scored: positions before `first`, pads, unscored rows, and a (1 - keep) share at
 * random when keep < 1). */
void dmx_draw_retrieval(const dmx_batch *b, int first, float keep, uint64_t *rng, int32_t *inst, int32_t *targets);

#endif
