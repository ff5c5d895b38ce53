#include "data/roberta_encoder.h"

#include <string.h>

/* The tokenizer reports the unpadded length of what it kept, not whether it cut anything, so
 * the full length is asked for separately (no truncation, writing at most max_length ids). */
static int encode(void *ctx, const char *a, const char *b, int max_length, int32_t *ids, bool *truncated,
                  dmx_error *err) {
  dmx_tokenizer *tok = ctx;
  size_t a_len = strlen(a), b_len = b ? strlen(b) : 0;
  int full = b ? dmx_encode_pair(tok, a, a_len, b, b_len, 0, ids, max_length, err)
               : dmx_encode_single(tok, a, a_len, 0, ids, max_length, err);
  if (full < 0) return -1;
  *truncated = full > max_length;
  int kept = b ? dmx_encode_pair(tok, a, a_len, b, b_len, max_length, ids, max_length, err)
               : dmx_encode_single(tok, a, a_len, max_length, ids, max_length, err);
  return kept < 0 ? -1 : 0;
}

static int encode_raw(void *ctx, const char *text, int32_t **ids, int *n, int *cap, dmx_error *err) {
  dmx_tokenizer *tok = ctx;
  size_t len = strlen(text);
  if (*cap - *n < 64) { /* never hand the tokenizer a NULL or empty buffer */
    *cap = *n + 64 > 2 * *cap ? *n + 64 : 2 * *cap;
    *ids = dmx_realloc(*ids, (size_t)*cap * sizeof **ids);
  }
  for (;;) {
    int room = *cap - *n;
    int got = dmx_tokenize(tok, text, len, 0, *ids + *n, room, err);
    if (got < 0) return -1;
    if (got <= room) {
      *n += got;
      return 0;
    }
    *cap = *n + got > 2 * *cap ? *n + got : 2 * *cap;
    *ids = dmx_realloc(*ids, (size_t)*cap * sizeof **ids);
  }
}

/* HF labels the first sub-token of each word (label_all_tokens=False): that is where the word
 * index changes. */
static int encode_words(void *ctx, const char *const *words, int n_words, int max_length, int32_t *ids,
                        int32_t *word_of_token, bool *truncated, dmx_error *err) {
  dmx_tokenizer *tok = ctx;
  int full = dmx_encode_words(tok, words, NULL, n_words, 0, ids, word_of_token, max_length, err);
  if (full < 0) return -1;
  *truncated = full > max_length;
  if (dmx_encode_words(tok, words, NULL, n_words, max_length, ids, word_of_token, max_length, err) < 0) return -1;
  int32_t prev = -1;
  for (int j = 0; j < max_length; j++) {
    int32_t w = word_of_token[j];
    word_of_token[j] = w >= 0 && w != prev ? w : -1;
    prev = w;
  }
  return 0;
}

void dmx_roberta_encoder(dmx_tokenizer *tok, dmx_encoder *enc) {
  enc->ctx = tok;
  enc->encode = encode;
  enc->encode_raw = encode_raw;
  enc->encode_words = encode_words;
}

int dmx_dataset_load(const dmx_dataset_opts *o, dmx_dataset *out, dmx_error *err) {
  char root[4096], dir[4096];
  const char *tok_dir = o->tokenizer_dir;
  if (!tok_dir || !*tok_dir) {
    snprintf(dir, sizeof dir, "%s/tokenizers/roberta-base", dmx_data_root(o->data_dir, root, sizeof root));
    tok_dir = dir;
  }
  dmx_error why;
  dmx_tokenizer *tok = dmx_tokenizer_load(tok_dir, &why);
  if (!tok)
    return dmx_fail(err, "%s (tokenizer folder %s; set --tokenizer, or fetch roberta-base with bash data/fetch.sh)",
                    why.msg, tok_dir);
  dmx_encoder enc;
  dmx_roberta_encoder(tok, &enc);
  int rc = dmx_dataset_load_with(o, &enc, out, err);
  dmx_tokenizer_free(tok);
  return rc;
}
