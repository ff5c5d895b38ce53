#include "data/text.h"

#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "data/lines.h"

void dmx_token_lines_free(dmx_token_lines *t) {
  free(t->ids);
  free(t->line_start);
  memset(t, 0, sizeof *t);
}

static void push_id(dmx_token_lines *t, int32_t id, int *n, int *cap) {
  if (*n == *cap) {
    *cap = *cap ? 2 * *cap : 256;
    t->ids = dmx_realloc(t->ids, (size_t)*cap * sizeof *t->ids);
  }
  t->ids[(*n)++] = id;
}

int dmx_token_lines_add(dmx_token_lines *t, const dmx_encoder *enc, const char *text, dmx_error *err) {
  if (t->n_lines + 2 > t->cap_lines) {
    t->cap_lines = t->cap_lines ? 2 * t->cap_lines : 1024;
    t->line_start = dmx_realloc(t->line_start, (size_t)t->cap_lines * sizeof *t->line_start);
    if (t->n_lines == 0) t->line_start[0] = 0;
  }
  if (t->n_ids > INT32_MAX / 2)
    return dmx_fail(err, "raw text: more than %d tokens; use a smaller file", INT32_MAX / 2);
  /* encode_raw grows an int-sized buffer; the counters are kept as int here and widened below. */
  int n = (int)t->n_ids, cap = (int)t->cap_ids;
  push_id(t, DMX_BOS_ID, &n, &cap);
  if (enc->encode_raw(enc->ctx, text, &t->ids, &n, &cap, err) != 0) return -1;
  push_id(t, DMX_EOS_ID, &n, &cap);
  t->n_ids = n;
  t->cap_ids = cap;
  t->n_lines++;
  t->line_start[t->n_lines] = t->n_ids;
  return 0;
}

int dmx_text_pack_blocks(const dmx_token_lines *t, int L, int lines_per_chunk, uint64_t seed, dmx_dataset *out,
                         dmx_error *err) {
  if (L < 1) return dmx_fail(err, "raw text: block length must be >= 1, got %d", L);
  int per_chunk = lines_per_chunk > 0 ? lines_per_chunk : (t->n_lines > 0 ? t->n_lines : 1);
  int64_t blocks = 0;
  for (int k = 0; k < t->n_lines; k += per_chunk) {
    int end = k + per_chunk < t->n_lines ? k + per_chunk : t->n_lines;
    blocks += (t->line_start[end] - t->line_start[k]) / L;
  }
  if (blocks == 0)
    return dmx_fail(err, "raw text: %d lines, %lld tokens: not enough for one block of %d tokens", t->n_lines,
                    (long long)t->n_ids, L);
  if (blocks > INT32_MAX / L) return dmx_fail(err, "raw text: %lld blocks of %d is too many", (long long)blocks, L);
  dmx_dataset_alloc(out, (int)blocks, L, DMX_TARGET_CLASS);
  int row = 0;
  for (int k = 0; k < t->n_lines; k += per_chunk) {
    int end = k + per_chunk < t->n_lines ? k + per_chunk : t->n_lines;
    int64_t start = t->line_start[k], len = t->line_start[end] - start;
    for (int64_t off = 0; off + L <= len; off += L, row++)
      memcpy(out->ids + (size_t)row * (size_t)L, t->ids + start + off, (size_t)L * sizeof *out->ids);
  }
  uint64_t state = seed;
  for (int i = 0; i < out->n; i++) out->labels[i] = (int32_t)dmx_rand_below(&state, 2);
  out->num_labels = 2;
  out->has_labels = true;
  return 0;
}

int dmx_text_lines_from_file(const char *path, const dmx_encoder *enc, dmx_token_lines *out, dmx_error *err) {
  memset(out, 0, sizeof *out);
  dmx_lines r;
  if (dmx_lines_open(&r, path, err) != 0) return -1;
  char *line, *with_newline = NULL;
  size_t len, cap = 0;
  int got, rc = 0;
  while ((got = dmx_lines_next(&r, &line, &len, err)) > 0) {
    if (dmx_is_blank(line)) continue;
    if (len + 2 > cap || !with_newline) {
      cap = 2 * (len + 2);
      with_newline = dmx_realloc(with_newline, cap);
    }
    memcpy(with_newline, line, len);
    size_t n = len;
    if (r.had_newline) with_newline[n++] = '\n';
    with_newline[n] = 0;
    dmx_error why;
    if (dmx_token_lines_add(out, enc, with_newline, &why) != 0) {
      rc = dmx_fail(err, "%s:%ld: %s", r.path, r.lineno, why.msg);
      break;
    }
  }
  if (got < 0) rc = -1;
  if (rc == 0 && out->n_lines == 0) rc = dmx_fail(err, "%s: no non-blank lines", path);
  free(with_newline);
  dmx_lines_close(&r);
  if (rc != 0) dmx_token_lines_free(out);
  return rc;
}

int dmx_text_lines_from_glue(const dmx_glue_data *g, const dmx_encoder *enc, dmx_token_lines *out, dmx_error *err) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < g->n; i++) {
    const char *texts[2] = {g->text_a[i], g->text_b ? g->text_b[i] : NULL};
    for (int k = 0; k < 2; k++) {
      if (!texts[k] || dmx_is_blank(texts[k])) continue;
      if (dmx_token_lines_add(out, enc, texts[k], err) != 0) {
        dmx_token_lines_free(out);
        return -1;
      }
    }
  }
  if (out->n_lines == 0) return dmx_fail(err, "%s: no non-blank sentences", g->path);
  return 0;
}
