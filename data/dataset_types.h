/* The encoded dataset type and the encoder interface, apart from the loaders (data/dataset.h) so
 * that batching and text packing can use the type without depending on the loaders that use them. */
#ifndef DMX_DATA_DATASET_TYPES_H
#define DMX_DATA_DATASET_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#include "host/base/common.h"

#define DMX_PAD_ID 1
#define DMX_BOS_ID 0
#define DMX_EOS_ID 2
#define DMX_IGNORE_LABEL (-100) /* label value that losses and metrics skip (PyTorch convention) */

typedef enum {
  DMX_TARGET_CLASS,  /* labels[n]: class ids, -1 when the split has no labels */
  DMX_TARGET_SCORE,  /* scores[n]: regression targets (STS-B), NAN when absent */
  DMX_TARGET_TOKENS, /* token_labels[n*L]: class per token, DMX_IGNORE_LABEL where not scored */
} dmx_target_kind;

typedef struct {
  char task[32], split[32];
  int n, L;
  int32_t *ids; /* n * L, row-major */
  dmx_target_kind kind;
  int num_labels;                 /* classes (1 for regression) */
  const char *const *label_names; /* num_labels names, NULL for regression */
  int32_t *labels;                /* DMX_TARGET_CLASS */
  float *scores;                  /* DMX_TARGET_SCORE */
  int32_t *token_labels;          /* DMX_TARGET_TOKENS */
  bool has_labels;
  int n_truncated; /* rows whose text did not fit into L tokens (NER: sentences losing words) */
  char summary[1024];
} dmx_dataset;

void dmx_dataset_free(dmx_dataset *d);
/* Allocates ids (filled with pads) and the target array for n rows of length L. */
void dmx_dataset_alloc(dmx_dataset *d, int n, int L, dmx_target_kind kind);

/* How text becomes ids. The real implementation wraps data/tokenizer.h (dmx_roberta_encoder);
 * tests supply their own. Each returns 0, or -1 with err set. */
typedef struct {
  void *ctx;
  /* `<s> a </s>` or `<s> a </s></s> b </s>` (b may be NULL), truncated to max_length and padded
   * with DMX_PAD_ID; *truncated tells whether text was cut. */
  int (*encode)(void *ctx, const char *a, const char *b, int max_length, int32_t *ids, bool *truncated, dmx_error *err);
  /* Ids of text with no special tokens and no length limit, appended to *ids (capacity *cap,
   * grown with dmx_realloc); *n is the count so far and is advanced. */
  int (*encode_raw)(void *ctx, const char *text, int32_t **ids, int *n, int *cap, dmx_error *err);
  /* Pre-split words with a prefix space before each (add_prefix_space): `<s> ... </s>` padded to
   * max_length; word_of_token[j] is the word index when token j is the FIRST sub-token of that
   * word, else -1 (specials, pads, later sub-tokens). */
  int (*encode_words)(void *ctx, const char *const *words, int n_words, int max_length, int32_t *ids,
                      int32_t *word_of_token, bool *truncated, dmx_error *err);
} dmx_encoder;

#endif
