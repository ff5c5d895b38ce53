/* Raw text for the retrieval warm-up (spec §1.2): each non-blank line becomes `<s> ids </s>`,
 * lines are concatenated and cut into blocks of L tokens with no padding. As in the original
 * (a Hugging Face batched map over 1000 lines at a time), the concatenation restarts every
 * lines_per_chunk non-blank lines and each chunk's remainder shorter than L is dropped
 * (lines_per_chunk 0: one chunk, a single remainder dropped). Each block gets a dummy label in
 * {0,1} from a seeded generator: the original trains its task head on such labels with weight 0. */
#ifndef DMX_DATA_TEXT_H
#define DMX_DATA_TEXT_H

#include <stdint.h>

#include "data/dataset_types.h"
#include "data/glue.h"

/* Token sequences in one array: line k is ids[line_start[k] .. line_start[k+1]). Start from a
 * zeroed struct ({0}); the loaders below do that themselves. */
typedef struct {
  int32_t *ids;
  int64_t *line_start; /* n_lines + 1 */
  int n_lines;
  int64_t n_ids, cap_ids;
  int cap_lines;
} dmx_token_lines;

void dmx_token_lines_free(dmx_token_lines *t);
/* Appends `<s>` + encode_raw(text) + `</s>` as one line. */
int dmx_token_lines_add(dmx_token_lines *t, const dmx_encoder *enc, const char *text, dmx_error *err);

/* Cuts the lines into blocks (see above) into out (kind CLASS, 2 labels). Fails when no block
 * fits. */
int dmx_text_pack_blocks(const dmx_token_lines *t, int L, int lines_per_chunk, uint64_t seed, dmx_dataset *out,
                         dmx_error *err);

/* A raw text file (WikiText-103 raw): blank and whitespace-only lines are skipped; every other
 * line is tokenized with its trailing newline, as Hugging Face's wikitext rows keep it. */
int dmx_text_lines_from_file(const char *path, const dmx_encoder *enc, dmx_token_lines *out, dmx_error *err);
/* A task's own sentences (text_a, then text_b when present, of every row) as lines. */
int dmx_text_lines_from_glue(const dmx_glue_data *g, const dmx_encoder *enc, dmx_token_lines *out, dmx_error *err);

#endif
