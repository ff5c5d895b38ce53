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
#include "data/dataset_types.h"
#include "data/glue.h"
#include "host/base/common.h"

/* Encodes GLUE rows. */
int dmx_dataset_from_glue(const dmx_glue_data *g, const dmx_encoder *enc, int L, dmx_dataset *out, dmx_error *err);
/* Encodes CoNLL sentences: the first sub-token of each word gets the word's tag, every other
 * position DMX_IGNORE_LABEL. */
int dmx_dataset_from_conll(const dmx_conll *c, const dmx_encoder *enc, int L, dmx_dataset *out, dmx_error *err);

/* Data root: explicit (when non-NULL and non-empty), else $DATAMUX_DATA, else
 * <dmx_cache_dir()>/data. Written into buf. */
const char *dmx_data_root(const char *explicit_dir, char *buf, size_t cap);

typedef struct {
  const char *task;          /* sst2 mnli qnli qqp cola mrpc stsb rte wnli ner text */
  const char *split;         /* train, dev, test, or a file stem (dev_mismatched, test-labeled, ...);
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
