/* Encoded datasets: what the trainer consumes. Every row is a token-id sequence of the same
 * padded length L (pad id 1), with a label per row (GLUE, retrieval text) or per token (NER).
 *
 * The front door dmx_dataset_load() turns (task, split, data root, tokenizer, max length) into an
 * encoded dataset and prints one summary line. Tokenizing goes through dmx_encoder, a small
 * table of functions, so the rest of data/ does not depend on the tokenizer's internals and tests
 * can encode with hand-made ids. */
#ifndef DMX_DATA_DATASET_H
#define DMX_DATA_DATASET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "data/conll.h"
#include "data/glue.h"
#include "host/common.h"

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
  int num_labels; /* classes (1 for regression) */
  const char *const *label_names; /* num_labels names, NULL for regression */
  int32_t *labels;       /* DMX_TARGET_CLASS */
  float *scores;         /* DMX_TARGET_SCORE */
  int32_t *token_labels; /* DMX_TARGET_TOKENS */
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
  int (*encode)(void *ctx, const char *a, const char *b, int max_length, int32_t *ids, bool *truncated,
                dmx_error *err);
  /* Ids of text with no special tokens and no length limit, appended to *ids (capacity *cap,
   * grown with dmx_realloc); *n is the count so far and is advanced. */
  int (*encode_raw)(void *ctx, const char *text, int32_t **ids, int *n, int *cap, dmx_error *err);
  /* Pre-split words with a prefix space before each (add_prefix_space): `<s> ... </s>` padded to
   * max_length; word_of_token[j] is the word index when token j is the FIRST sub-token of that
   * word, else -1 (specials, pads, later sub-tokens). */
  int (*encode_words)(void *ctx, const char *const *words, int n_words, int max_length, int32_t *ids,
                      int32_t *word_of_token, bool *truncated, dmx_error *err);
} dmx_encoder;

/* Encodes GLUE rows. */
int dmx_dataset_from_glue(const dmx_glue_data *g, const dmx_encoder *enc, int L, dmx_dataset *out, dmx_error *err);
/* Encodes CoNLL sentences: the first sub-token of each word gets the word's tag, every other
 * position DMX_IGNORE_LABEL. */
int dmx_dataset_from_conll(const dmx_conll *c, const dmx_encoder *enc, int L, dmx_dataset *out, dmx_error *err);

/* Data root: explicit (when non-NULL and non-empty), else $DATAMUX_DATA, else
 * <dmx_cache_dir()>/data. Written into buf. */
const char *dmx_data_root(const char *explicit_dir, char *buf, size_t cap);

typedef struct {
  const char *task;  /* sst2 mnli qnli qqp cola mrpc stsb rte wnli ner text */
  const char *split; /* train, dev, test, or a file stem (dev_mismatched, test-labeled, ...);
                        ner also: iob1-train, iob1-dev, iob1-test (original IOB1 files) */
  const char *data_dir;      /* NULL: dmx_data_root() */
  const char *tokenizer_dir; /* NULL: <data root>/tokenizers/roberta-base */
  int max_length;            /* L, 128 in the original */
  /* task "text" only: NULL reads WikiText-103 raw (<root>/wikitext-103-raw/wiki.{train,valid,test}.raw);
   * a GLUE task name warms up on that task's own sentences of the same split; a path (containing '/'
   * or '.') names a UTF-8 text file, relative to the data root unless absolute. */
  const char *text_source;
  int text_lines_per_chunk; /* remainder dropped per chunk of this many lines; 1000 = original */
  const char *file;         /* GLUE/NER: read this file instead of the split's standard one (relative to
                               the data root unless absolute); NULL or "" for the standard layout */
  uint64_t seed;            /* dummy labels of text blocks */
  FILE *log;                /* where the summary line goes; NULL for none */
} dmx_dataset_opts;

/* Defaults: max_length 128, text_lines_per_chunk 1000, seed 42, log stdout. */
dmx_dataset_opts dmx_dataset_opts_default(void);

/* The file a (task, split) reads under root. Sets *labels_required (false for test splits) and
 * *scheme (ner). */
int dmx_dataset_file(const char *task, const char *split, const char *root, char *path, size_t cap,
                     bool *labels_required, dmx_conll_scheme *scheme, dmx_error *err);

int dmx_dataset_load(const dmx_dataset_opts *o, dmx_dataset *out, dmx_error *err);
/* Same, with a caller-supplied encoder instead of the roberta-base tokenizer. */
int dmx_dataset_load_with(const dmx_dataset_opts *o, const dmx_encoder *enc, dmx_dataset *out, dmx_error *err);

#endif
