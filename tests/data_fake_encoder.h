/* A stand-in tokenizer for data/ tests: predictable ids without loading BPE files.
 * Each whitespace-separated word of a text becomes one id, 1000 + its byte length; in the
 * word-split encoder a word of k bytes becomes ceil(k/3) sub-tokens (ids 2000 + piece index).
 * Specials are <s>=0, </s>=2, pad=1, exactly like RoBERTa. Included by one test file each. */
#ifndef DMX_TEST_FAKE_ENCODER_H
#define DMX_TEST_FAKE_ENCODER_H

#include <string.h>

#include "data/dataset.h"

static int fake_words(const char *text, int32_t *out, int cap) {
  int n = 0;
  const char *p = text;
  while (*p) {
    while (*p == ' ' || *p == '\n' || *p == '\t') p++;
    if (!*p) break;
    const char *start = p;
    while (*p && *p != ' ' && *p != '\n' && *p != '\t') p++;
    if (n < cap) out[n] = 1000 + (int32_t)(p - start);
    n++;
  }
  return n;
}

static int fake_encode(void *ctx, const char *a, const char *b, int max_length, int32_t *ids, bool *truncated,
                       dmx_error *err) {
  (void)ctx;
  int32_t buf[4096];
  int n = 0;
  buf[n++] = 0;
  n += fake_words(a, buf + n, 1000);
  buf[n++] = 2;
  if (b) {
    buf[n++] = 2;
    n += fake_words(b, buf + n, 1000);
    buf[n++] = 2;
  }
  if (n > 3000) return dmx_fail(err, "fake encoder: text too long");
  *truncated = n > max_length;
  if (*truncated) {
    n = max_length;
    buf[n - 1] = 2; /* keep the closing </s>, as real truncation does */
  }
  for (int j = 0; j < max_length; j++) ids[j] = j < n ? buf[j] : 1;
  return 0;
}

static int fake_encode_raw(void *ctx, const char *text, int32_t **ids, int *n, int *cap, dmx_error *err) {
  (void)ctx, (void)err;
  int32_t buf[4096];
  int k = fake_words(text, buf, 4096);
  /* A trailing newline is a token of its own, as in byte-level BPE (Ċ = 50118). */
  size_t len = strlen(text);
  if (len && text[len - 1] == '\n') buf[k++] = 50118;
  for (int i = 0; i < k; i++) {
    if (*n == *cap) {
      *cap = *cap ? 2 * *cap : 64;
      *ids = dmx_realloc(*ids, (size_t)*cap * sizeof **ids);
    }
    (*ids)[(*n)++] = buf[i];
  }
  return 0;
}

static int fake_encode_words(void *ctx, const char *const *words, int n_words, int max_length, int32_t *ids,
                             int32_t *word_of_token, bool *truncated, dmx_error *err) {
  (void)ctx, (void)err;
  int n = 0;
  ids[n] = 0, word_of_token[n++] = -1;
  *truncated = false;
  for (int w = 0; w < n_words; w++) {
    int pieces = ((int)strlen(words[w]) + 2) / 3;
    for (int k = 0; k < pieces; k++) {
      if (n >= max_length - 1) {
        *truncated = true;
        break;
      }
      ids[n] = 2000 + k, word_of_token[n++] = k == 0 ? w : -1;
    }
  }
  ids[n] = 2, word_of_token[n++] = -1;
  for (; n < max_length; n++) ids[n] = 1, word_of_token[n] = -1;
  return 0;
}

static const dmx_encoder fake_encoder = {NULL, fake_encode, fake_encode_raw, fake_encode_words};

#endif
