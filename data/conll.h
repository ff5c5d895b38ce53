/* CoNLL-2003 English NER files: `token POS chunk NER` per line, a blank line between sentences,
 * `-DOCSTART-` lines skipped wherever they stand. Tags are kept in IOB2; files in the original
 * IOB1 scheme are converted on load (both the chunk and the NER column). */
#ifndef DMX_DATA_CONLL_H
#define DMX_DATA_CONLL_H

#include <stdint.h>

#include "host/base/common.h"

#define DMX_NER_NUM_LABELS 9
/* Hugging Face conll2003 ner_tags order: O B-PER I-PER B-ORG I-ORG B-LOC I-LOC B-MISC I-MISC. */
extern const char *const dmx_ner_label_names[DMX_NER_NUM_LABELS];
/* Label id of a tag string, or -1. */
int dmx_ner_label_id(const char *tag);

typedef enum { DMX_CONLL_IOB2, DMX_CONLL_IOB1 } dmx_conll_scheme;

typedef struct {
  char *path;
  int n_sentences, n_tokens;
  int *sentence_start; /* n_sentences + 1 offsets into the token arrays */
  char **words;        /* n_tokens; point into storage */
  char **pos;          /* POS column */
  char **chunk;        /* chunk column, IOB2 after loading */
  uint8_t *ner;        /* label ids (dmx_ner_label_names), IOB2 after loading */
  char *storage;
} dmx_conll;

int dmx_conll_load(const char *path, dmx_conll_scheme scheme, dmx_conll *out, dmx_error *err);
void dmx_conll_free(dmx_conll *c);
/* "<path>: <s> sentences, <t> tokens, tags: O 169578, B-PER 6600, ..." */
void dmx_conll_summary(const dmx_conll *c, char *buf, size_t cap);

/* IOB1 -> IOB2 for one sentence of tag strings, in place: an I-X that does not continue an
 * entity of type X (sentence start, after O, or after another type) becomes B-X. */
void dmx_iob1_to_iob2(char **tags, int n);

#endif
