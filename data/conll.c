#include "data/conll.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "data/lines.h"

const char *const dmx_ner_label_names[DMX_NER_NUM_LABELS] = {"O",     "B-PER", "I-PER",  "B-ORG", "I-ORG",
                                                             "B-LOC", "I-LOC", "B-MISC", "I-MISC"};

int dmx_ner_label_id(const char *tag) {
  for (int k = 0; k < DMX_NER_NUM_LABELS; k++)
    if (!strcmp(tag, dmx_ner_label_names[k])) return k;
  return -1;
}

static bool is_chunk_tag(const char *t) {
  return !strcmp(t, "O") || ((t[0] == 'B' || t[0] == 'I') && t[1] == '-' && t[2] != 0);
}

void dmx_iob1_to_iob2(char **tags, int n) {
  for (int i = 0; i < n; i++) {
    if (tags[i][0] != 'I') continue;
    bool continues = i > 0 && tags[i - 1][0] != 'O' && !strcmp(tags[i - 1] + 2, tags[i] + 2);
    if (!continues) tags[i][0] = 'B'; /* same length, so the edit can be made in the file buffer */
  }
}

/* Splits a token line at single spaces into exactly 4 fields. */
static int split_spaces(char *line, char **f, int max) {
  int n = 0;
  char *p = line;
  for (;;) {
    if (n < max) f[n] = p;
    n++;
    char *sp = strchr(p, ' ');
    if (!sp) break;
    *sp = 0;
    p = sp + 1;
  }
  return n;
}

typedef struct {
  dmx_conll *c;
  int tok_cap, sent_cap;
  char **ner_text; /* tag strings until the sentence is finished and converted */
  dmx_conll_scheme scheme;
} conll_builder;

static void push_token(conll_builder *b, char **f) {
  dmx_conll *c = b->c;
  if (c->n_tokens == b->tok_cap) {
    b->tok_cap = b->tok_cap ? 2 * b->tok_cap : 4096;
    size_t n = (size_t)b->tok_cap;
    c->words = dmx_realloc(c->words, n * sizeof *c->words);
    c->pos = dmx_realloc(c->pos, n * sizeof *c->pos);
    c->chunk = dmx_realloc(c->chunk, n * sizeof *c->chunk);
    c->ner = dmx_realloc(c->ner, n * sizeof *c->ner);
    b->ner_text = dmx_realloc(b->ner_text, n * sizeof *b->ner_text);
  }
  c->words[c->n_tokens] = f[0];
  c->pos[c->n_tokens] = f[1];
  c->chunk[c->n_tokens] = f[2];
  b->ner_text[c->n_tokens] = f[3];
  c->n_tokens++;
}

/* Closes the sentence that runs from sentence_start[n_sentences] to n_tokens, if any. */
static void end_sentence(conll_builder *b) {
  dmx_conll *c = b->c;
  int start = c->sentence_start[c->n_sentences];
  int len = c->n_tokens - start;
  if (len <= 0 || !b->ner_text) return; /* no tokens since the last sentence (nothing allocated yet) */
  if (b->scheme == DMX_CONLL_IOB1) {
    dmx_iob1_to_iob2(c->chunk + start, len);
    dmx_iob1_to_iob2(b->ner_text + start, len);
  }
  for (int i = start; i < c->n_tokens; i++) c->ner[i] = (uint8_t)dmx_ner_label_id(b->ner_text[i]);
  if (c->n_sentences + 2 > b->sent_cap) {
    b->sent_cap = b->sent_cap ? 2 * b->sent_cap : 1024;
    c->sentence_start = dmx_realloc(c->sentence_start, (size_t)b->sent_cap * sizeof *c->sentence_start);
  }
  c->n_sentences++;
  c->sentence_start[c->n_sentences] = c->n_tokens;
}

static int parse_lines(conll_builder *b, dmx_lines *r, dmx_error *err) {
  char *line;
  size_t len;
  int got;
  while ((got = dmx_lines_next(r, &line, &len, err)) > 0) {
    if (dmx_is_blank(line)) {
      end_sentence(b);
      continue;
    }
    char *f[4];
    int n = split_spaces(line, f, 4);
    /* A document marker also ends any sentence in progress; its other columns vary by copy. */
    if (!strcmp(f[0], "-DOCSTART-")) {
      end_sentence(b);
      continue;
    }
    if (n != 4)
      return dmx_fail(err,
                      "%s:%ld: wrong column count: expected 4 space-separated columns (token POS chunk NER), found %d",
                      r->path, r->lineno, n);
    for (int k = 0; k < 4; k++)
      if (f[k][0] == 0)
        return dmx_fail(err, "%s:%ld: empty column %d (two spaces in a row?)", r->path, r->lineno, k + 1);
    if (dmx_ner_label_id(f[3]) < 0)
      return dmx_fail(err, "%s:%ld: unknown NER tag '%s' (want O or B-/I- with PER, ORG, LOC, MISC)", r->path,
                      r->lineno, f[3]);
    if (!is_chunk_tag(f[2]))
      return dmx_fail(err, "%s:%ld: bad chunk tag '%s' (want O, B-X or I-X)", r->path, r->lineno, f[2]);
    push_token(b, f);
  }
  if (got < 0) return -1;
  end_sentence(b); /* the last sentence may end at end of file without a blank line */
  if (b->c->n_sentences == 0) return dmx_fail(err, "%s: no sentences in file", r->path);
  return 0;
}

int dmx_conll_load(const char *path, dmx_conll_scheme scheme, dmx_conll *out, dmx_error *err) {
  memset(out, 0, sizeof *out);
  conll_builder b = {.c = out, .scheme = scheme, .sent_cap = 1024};
  out->sentence_start = dmx_malloc((size_t)b.sent_cap * sizeof *out->sentence_start);
  out->sentence_start[0] = 0;
  dmx_lines r;
  if (dmx_lines_open(&r, path, err) != 0) {
    dmx_conll_free(out);
    return -1;
  }
  int rc = parse_lines(&b, &r, err);
  free(b.ner_text);
  out->storage = r.buf;
  r.buf = NULL;
  out->path = r.path;
  r.path = NULL;
  dmx_lines_close(&r);
  if (rc != 0) dmx_conll_free(out);
  return rc;
}

void dmx_conll_free(dmx_conll *c) {
  free(c->path);
  free(c->sentence_start);
  free(c->words);
  free(c->pos);
  free(c->chunk);
  free(c->ner);
  free(c->storage);
  memset(c, 0, sizeof *c);
}

void dmx_conll_summary(const dmx_conll *c, char *buf, size_t cap) {
  int counts[DMX_NER_NUM_LABELS] = {0};
  for (int i = 0; i < c->n_tokens; i++) counts[c->ner[i]]++;
  size_t used = (size_t)snprintf(buf, cap, "%s: %d sentences, %d tokens, tags:", c->path, c->n_sentences, c->n_tokens);
  for (int k = 0; k < DMX_NER_NUM_LABELS && used < cap; k++)
    used += (size_t)snprintf(buf + used, cap - used, "%s %s %d", k ? "," : "", dmx_ner_label_names[k], counts[k]);
}
