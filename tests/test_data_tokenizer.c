/* The BPE tokenizer against Hugging Face's roberta-base fast tokenizer, id for id.
 * Fixtures come from tests/reference/make_tokenizer_fixture.py; the texts of SST-2 dev and
 * CoNLL-2003 valid are read from $DATAMUX_DATA. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/tokenizer.h"
#include "data/unicode_tables.h"
#include "tests/harness.h"

#define FIXTURES "tests/fixtures/tokenizer/"
#define MAX_IDS 8192

/* ---------------------------------------------------------------- fixture helpers */

typedef struct {
  char *buf;
  char **line;
  int n;
} lines_t;

/* Splits a file into lines (the buffer is modified in place). */
static int read_lines(const char *path, lines_t *out) {
  dmx_error err;
  size_t len;
  out->buf = dmx_read_file(path, &len, &err);
  out->line = NULL;
  out->n = 0;
  if (!out->buf) {
    th_fail_at(__FILE__, __LINE__, "%s", err.msg);
    return -1;
  }
  int cap = 0;
  for (char *p = out->buf; p < out->buf + len;) {
    char *nl = memchr(p, '\n', (size_t)(out->buf + len - p));
    if (nl) *nl = 0;
    if (out->n == cap) {
      cap = cap ? cap * 2 : 1024;
      out->line = realloc(out->line, (size_t)cap * sizeof *out->line);
      if (!out->line) abort();
    }
    out->line[out->n++] = p;
    p = nl ? nl + 1 : out->buf + len;
  }
  return 0;
}

static void free_lines(lines_t *l) {
  free(l->buf);
  free(l->line);
}

/* Splits s at TABs in place; returns the number of fields (at most max). */
static int split_tabs(char *s, char **field, int max) {
  int n = 0;
  field[n++] = s;
  for (char *p = s; *p && n < max; p++)
    if (*p == '\t') {
      *p = 0;
      field[n++] = p + 1;
    }
  return n;
}

static int parse_ids(const char *s, int32_t *ids, int cap) {
  int n = 0;
  while (*s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s) break;
    if (n < cap) ids[n] = (int32_t)v;
    n++;
    s = end;
  }
  return n;
}

/* Undoes the fixture's escape(): \\ \t \n \r \xHH. Returns the length. */
static size_t unescape(const char *s, char *out) {
  size_t n = 0;
  while (*s) {
    if (*s != '\\') {
      out[n++] = *s++;
      continue;
    }
    s++;
    char c = *s++;
    if (c == 't')
      out[n++] = '\t';
    else if (c == 'n')
      out[n++] = '\n';
    else if (c == 'r')
      out[n++] = '\r';
    else if (c == 'x') {
      char hex[3] = {s[0], s[1], 0};
      out[n++] = (char)strtol(hex, NULL, 16);
      s += 2;
    } else
      out[n++] = c;
  }
  out[n] = 0;
  return n;
}

/* Compares id lists; reports the first difference. Returns true when equal. */
static bool same_ids(const char *what, int row, const int32_t *got, int n_got, const int32_t *want, int n_want) {
  int k = 0;
  while (k < n_got && k < n_want && got[k] == want[k]) k++;
  if (k == n_got && k == n_want) return true;
  th_fail_at(__FILE__, __LINE__, "%s row %d: %d ids vs %d expected; first difference at %d: got %d want %d", what, row,
             n_got, n_want, k, k < n_got ? got[k] : -1, k < n_want ? want[k] : -1);
  return false;
}

static dmx_tokenizer *load_roberta(void) {
  th_begin("roberta-base tokenizer loads from $DATAMUX_DATA");
  const char *dir = th_data_path("tokenizers/roberta-base");
  CHECKF(dir != NULL, "DATAMUX_DATA is not set: every comparison with HF would be skipped");
  dmx_tokenizer *tok = NULL;
  if (dir) {
    dmx_error err;
    double t0 = dmx_now_seconds();
    tok = dmx_tokenizer_load(dir, &err);
    CHECKF(tok != NULL, "%s", err.msg);
    printf("  loaded in %.3f s\n", dmx_now_seconds() - t0);
  }
  th_end();
  return tok;
}

/* ---------------------------------------------------------------- cases */

static void test_vocabulary(dmx_tokenizer *tok) {
  th_begin("vocabulary: 50265 ids, specials, byte-level spellings decoded");
  CHECK(dmx_tokenizer_vocab_size(tok) == 50265);
  CHECK(dmx_tokenizer_token_id(tok, "<s>", 3) == DMX_TOKEN_BOS);
  CHECK(dmx_tokenizer_token_id(tok, "<pad>", 5) == DMX_TOKEN_PAD);
  CHECK(dmx_tokenizer_token_id(tok, "</s>", 4) == DMX_TOKEN_EOS);
  CHECK(dmx_tokenizer_token_id(tok, "<unk>", 5) == DMX_TOKEN_UNK);
  CHECK(dmx_tokenizer_token_id(tok, "<mask>", 6) == DMX_TOKEN_MASK);
  CHECK(dmx_tokenizer_token_id(tok, " the", 4) == 5); /* "Ġthe" in vocab.json */
  CHECK(dmx_tokenizer_token_id(tok, "\n", 1) == 50118);
  CHECK(dmx_tokenizer_token_id(tok, "no such token at all", 20) == -1);
  size_t len = 0;
  const char *b = dmx_tokenizer_token_bytes(tok, 5, &len);
  CHECK(b && len == 4 && memcmp(b, " the", 4) == 0);
  CHECK(dmx_tokenizer_token_bytes(tok, 50265, &len) == NULL);
  CHECK(dmx_tokenizer_token_bytes(tok, -1, &len) == NULL);
  th_end();
}

static void test_unicode_classes(void) {
  th_begin("unicode classes: letters, numbers, White_Space, other");
  CHECK(dmx_unicode_class('a') == DMX_UCLASS_LETTER);
  CHECK(dmx_unicode_class(0xE9) == DMX_UCLASS_LETTER);   /* é */
  CHECK(dmx_unicode_class(0x4E2D) == DMX_UCLASS_LETTER); /* 中 */
  CHECK(dmx_unicode_class('7') == DMX_UCLASS_NUMBER);
  CHECK(dmx_unicode_class(0xBD) == DMX_UCLASS_NUMBER);   /* ½ is No */
  CHECK(dmx_unicode_class(0x216B) == DMX_UCLASS_NUMBER); /* Ⅻ is Nl */
  CHECK(dmx_unicode_class(' ') == DMX_UCLASS_SPACE);
  CHECK(dmx_unicode_class(0xA0) == DMX_UCLASS_SPACE);
  CHECK(dmx_unicode_class(0x3000) == DMX_UCLASS_SPACE);
  CHECK(dmx_unicode_class(0x1C) == DMX_UCLASS_OTHER); /* Python isspace() says yes; \s says no */
  CHECK(dmx_unicode_class(0x200B) == DMX_UCLASS_OTHER);
  CHECK(dmx_unicode_class(0x1F600) == DMX_UCLASS_OTHER);
  CHECK(dmx_unicode_class(0x110000) == DMX_UCLASS_OTHER);
  th_end();
}

static void test_sst2_dev(dmx_tokenizer *tok) {
  th_begin("SST-2 dev: all 872 sentences match HF");
  const char *tsv = th_data_path("glue/SST-2/dev.tsv");
  CHECKF(tsv != NULL, "DATAMUX_DATA is not set");
  lines_t text, want;
  if (!tsv || read_lines(tsv, &text)) {
    th_end();
    return;
  }
  if (read_lines(FIXTURES "sst2_dev.txt", &want) == 0) {
    CHECK(strcmp(text.line[0], "sentence\tlabel") == 0);
    int rows = 0, bad = 0;
    static int32_t got[MAX_IDS], exp[MAX_IDS];
    for (int r = 1; r < text.n && rows < want.n; r++) {
      if (!text.line[r][0]) continue;
      char *tab = strchr(text.line[r], '\t');
      size_t len = tab ? (size_t)(tab - text.line[r]) : strlen(text.line[r]);
      dmx_error err;
      int n = dmx_encode_single(tok, text.line[r], len, 0, got, MAX_IDS, &err);
      int m = parse_ids(want.line[rows], exp, MAX_IDS);
      if (!same_ids("sst2_dev", rows, got, n, exp, m)) bad++;
      rows++;
    }
    CHECKF(rows == 872, "%d rows compared", rows);
    printf("  SST-2 dev: %d of %d sentences differ\n", bad, rows);
    free_lines(&want);
  }
  free_lines(&text);
  th_end();
}

static void test_conll_valid(dmx_tokenizer *tok) {
  th_begin("CoNLL-2003 valid: all 3250 word-split sentences match HF (ids and word starts)");
  const char *path = th_data_path("conll2003/valid.txt");
  CHECKF(path != NULL, "DATAMUX_DATA is not set");
  lines_t text, want;
  if (!path || read_lines(path, &text)) {
    th_end();
    return;
  }
  if (read_lines(FIXTURES "conll_valid.txt", &want) == 0) {
    static const char *words[1024];
    static size_t lens[1024];
    static int32_t got[MAX_IDS], word_of[MAX_IDS], exp[MAX_IDS], counts[1024];
    int sentence = 0, bad = 0, n_words = 0;
    for (int r = 0; r <= text.n; r++) {
      const char *line = r < text.n ? text.line[r] : "";
      if (line[0]) {
        const char *sp = strchr(line, ' ');
        if (n_words < 1024) {
          words[n_words] = line;
          lens[n_words] = sp ? (size_t)(sp - line) : strlen(line);
        }
        n_words++;
        continue;
      }
      if (!n_words) continue;
      CHECK(n_words <= 1024);
      if (sentence >= want.n) break;
      char *field[2];
      CHECK(split_tabs(want.line[sentence], field, 2) == 2);
      dmx_error err;
      int n = dmx_encode_words(tok, words, lens, n_words, 0, got, word_of, MAX_IDS, &err);
      int m = parse_ids(field[0], exp, MAX_IDS);
      bool ok = same_ids("conll_valid", sentence, got, n, exp, m);
      int nc = parse_ids(field[1], counts, 1024);
      CHECK(nc == n_words);
      /* Expected word index of each id from the per-word counts. */
      for (int w = 0, k = 1; ok && w < nc; w++)
        for (int c = 0; c < counts[w]; c++, k++)
          if (k >= n || word_of[k] != w) {
            th_fail_at(__FILE__, __LINE__, "conll_valid row %d: id %d should belong to word %d", sentence, k, w);
            ok = false;
            break;
          }
      if (ok) CHECK(word_of[0] == -1 && word_of[n - 1] == -1);
      if (!ok) bad++;
      sentence++;
      n_words = 0;
    }
    CHECKF(sentence == 3250, "%d sentences compared", sentence);
    printf("  CoNLL valid: %d of %d sentences differ\n", bad, sentence);
    free_lines(&want);
  }
  free_lines(&text);
  th_end();
}

static void test_hard_single(dmx_tokenizer *tok) {
  th_begin("hand-written hard cases and invalid UTF-8 match HF");
  lines_t want;
  if (read_lines(FIXTURES "hard_single.txt", &want) == 0) {
    static char text[8192];
    static int32_t got[MAX_IDS], exp[MAX_IDS];
    int rows = 0;
    for (int r = 0; r < want.n; r++) {
      if (!want.line[r][0]) continue;
      char *field[2];
      int nf = split_tabs(want.line[r], field, 2);
      CHECK(nf == 2);
      size_t len = unescape(nf == 2 ? field[1] : "", text);
      dmx_error err;
      int n = dmx_encode_single(tok, text, len, 0, got, MAX_IDS, &err);
      int m = parse_ids(field[0], exp, MAX_IDS);
      if (!same_ids("hard_single", r, got, n, exp, m)) printf("    text: %s\n", nf == 2 ? field[1] : "");
      rows++;
    }
    CHECK(rows >= 60);
    free_lines(&want);
  }
  th_end();
}

static void test_hard_words(dmx_tokenizer *tok) {
  th_begin("hand-written word-split cases match HF (ids and word ids)");
  lines_t want;
  if (read_lines(FIXTURES "hard_words.txt", &want) == 0) {
    static char storage[16][1024];
    static const char *words[16];
    static size_t lens[16];
    static int32_t got[MAX_IDS], word_of[MAX_IDS], exp[MAX_IDS], exp_words[MAX_IDS];
    for (int r = 0; r < want.n; r++) {
      char *field[18];
      int nf = split_tabs(want.line[r], field, 18);
      CHECK(nf >= 3);
      int n_words = nf - 2;
      for (int w = 0; w < n_words; w++) {
        lens[w] = unescape(field[2 + w], storage[w]);
        words[w] = storage[w];
      }
      dmx_error err;
      int n = dmx_encode_words(tok, words, lens, n_words, 0, got, word_of, MAX_IDS, &err);
      int m = parse_ids(field[0], exp, MAX_IDS);
      same_ids("hard_words ids", r, got, n, exp, m);
      int mw = parse_ids(field[1], exp_words, MAX_IDS);
      same_ids("hard_words word ids", r, word_of, n, exp_words, mw);
    }
    CHECK(want.n >= 15);
    free_lines(&want);
  }
  th_end();
}

static void test_truncation(dmx_tokenizer *tok) {
  th_begin("truncation (single, longest_first pairs) and padding match HF");
  lines_t want;
  if (read_lines(FIXTURES "truncation.txt", &want) == 0) {
    static char a[8192], b[8192];
    static int32_t got[MAX_IDS], exp[MAX_IDS];
    int pairs = 0;
    for (int r = 0; r < want.n; r++) {
      char *field[4];
      int nf = split_tabs(want.line[r], field, 4);
      CHECK(nf == 3 || nf == 4);
      int max_length = atoi(field[0]);
      size_t a_len = unescape(field[2], a);
      dmx_error err;
      int n;
      if (nf == 4) {
        size_t b_len = unescape(field[3], b);
        n = dmx_encode_pair(tok, a, a_len, b, b_len, max_length, got, MAX_IDS, &err);
        pairs++;
      } else {
        n = dmx_encode_single(tok, a, a_len, max_length, got, MAX_IDS, &err);
      }
      int m = parse_ids(field[1], exp, MAX_IDS);
      same_ids("truncation", r, got, n, exp, m);
      for (int k = n; k < max_length; k++) CHECKF(got[k] == DMX_TOKEN_PAD, "row %d: id %d is not <pad>", r, k);
    }
    CHECK(pairs >= 80);
    free_lines(&want);
  }
  th_end();
}

static void test_api_edges(dmx_tokenizer *tok) {
  th_begin("API: snprintf-style counts, bad max_length/cap rejected, long inputs");
  int32_t ids[16];
  dmx_error err;
  const char *text = "Hello world, this is a test";
  int n = dmx_tokenize(tok, text, strlen(text), 0, ids, 2, &err);
  CHECK(n == 7); /* Hello Ġworld , Ġthis Ġis Ġa Ġtest */
  CHECK(ids[0] == 31414 && ids[1] == 232);
  CHECK(dmx_tokenize(tok, "", 0, 0, ids, 16, &err) == 0);
  CHECK(dmx_tokenize(tok, "x", 1, 1, ids, 16, &err) == 1 && ids[0] == 3023); /* Ġx */
  CHECK(dmx_encode_single(tok, text, strlen(text), 1, ids, 16, &err) == -1);
  CHECK(strstr(err.msg, "max_length 1") != NULL);
  CHECK(dmx_encode_pair(tok, "a", 1, "b", 1, 3, ids, 16, &err) == -1);
  CHECK(dmx_encode_single(tok, text, strlen(text), 32, ids, 16, &err) == -1);
  CHECK(strstr(err.msg, "shorter than max_length") != NULL);
  CHECK(dmx_encode_single(tok, text, strlen(text), 0, ids, 3, &err) == 9);
  CHECK(ids[0] == 0 && ids[1] == 31414 && ids[2] == 232);
  CHECK(dmx_encode_pair(tok, "a", 1, "b", 1, 4, ids, 16, &err) == 4);
  CHECK(ids[0] == 0 && ids[1] == 2 && ids[2] == 2 && ids[3] == 2);
  /* A 1 MB piece without spaces and 1 MB of whitespace: BPE must stay n log n, nothing may crash. */
  size_t big = 1 << 20;
  char *s = dmx_malloc(big);
  for (size_t i = 0; i < big; i++) s[i] = "abcdefghij"[(i * 7 + i / 3) % 10];
  int32_t *out = dmx_malloc(big * sizeof *out);
  double t0 = dmx_now_seconds();
  n = dmx_tokenize(tok, s, big, 0, out, (int)big, &err);
  CHECK(n > 0 && n < (int)big);
  memset(s, ' ', big);
  s[big / 2] = '\t';
  n = dmx_tokenize(tok, s, big, 0, out, (int)big, &err);
  CHECK(n > 0);
  printf("  2 MB of pathological text in %.2f s\n", dmx_now_seconds() - t0);
  free(s);
  free(out);
  th_end();
}

static uint32_t lcg(uint32_t *state) {
  *state = *state * 1664525u + 1013904223u;
  return *state >> 8;
}

static void test_random_text(dmx_tokenizer *tok) {
  th_begin("random text: ids in range; without '<' or bad UTF-8 the tokens spell the input back");
  /* Fragments that stress the regex: spaces of all kinds, contractions, digits, letters, marks. */
  static const char *const frag[] = {" ",
                                     "  ",
                                     "\t",
                                     "\n",
                                     "\r\n",
                                     "\xc2\xa0",
                                     "\xe3\x80\x80",
                                     "'",
                                     "'s",
                                     "'ll",
                                     "a",
                                     "Z",
                                     "\xc3\xa9",
                                     "\xe4\xb8\xad",
                                     "7",
                                     "\xc2\xbd",
                                     "!",
                                     "...",
                                     "\xf0\x9f\x98\x80",
                                     "\xcc\x81",
                                     "-",
                                     "\x00",
                                     "ab",
                                     "The",
                                     " the",
                                     "\xef\xbf\xbd"};
  static const char *const bad[] = {"<mask>", "<s>", "</s", "\xff", "\xe2\x82", "\xed\xa0\x80", "\xc0"};
  uint32_t state = 12345;
  static char text[4096];
  static int32_t ids[8192];
  int failures = 0;
  for (int round = 0; round < 3000 && failures < 5; round++) {
    size_t len = 0;
    bool plain = round % 3 != 0;
    int pieces = (int)(lcg(&state) % 40);
    for (int k = 0; k < pieces; k++) {
      const char *f = !plain && lcg(&state) % 4 == 0 ? bad[lcg(&state) % 7] : frag[lcg(&state) % 26];
      size_t fl = f[0] == 0 ? 1 : strlen(f); /* "\x00" is one NUL byte */
      memcpy(text + len, f, fl);
      len += fl;
    }
    dmx_error err;
    int n = dmx_tokenize(tok, text, len, (int)(round % 2), ids, 8192, &err);
    bool ok = n >= 0 && n <= 8192;
    for (int k = 0; ok && k < n; k++) ok = ids[k] >= 0 && ids[k] < 50265;
    if (ok && plain) { /* concatenated token bytes == (optional space +) input */
      static char back[8192];
      size_t m = 0, tl;
      for (int k = 0; k < n; k++) {
        const char *b = dmx_tokenizer_token_bytes(tok, ids[k], &tl);
        memcpy(back + m, b, tl);
        m += tl;
      }
      size_t skip = (round % 2 && len && text[0] != ' ') ? 1 : 0;
      ok = m == len + skip && memcmp(back + skip, text, len) == 0;
    }
    if (!ok) {
      failures++;
      th_fail_at(__FILE__, __LINE__, "round %d: %d ids for %zu bytes do not check out", round, n, len);
    }
  }
  th_end();
}

/* Writes a small tokenizer folder with the given vocab.json / merges.txt text. */
static void write_tokenizer(const char *dir, const char *vocab, const char *merges) {
  dmx_error err;
  char path[512];
  CHECKF(dmx_mkdirs(dir, &err) == 0, "%s", err.msg);
  snprintf(path, sizeof path, "%s/vocab.json", dir);
  CHECKF(dmx_write_file_atomic(path, vocab, strlen(vocab), &err) == 0, "%s", err.msg);
  snprintf(path, sizeof path, "%s/merges.txt", dir);
  CHECKF(dmx_write_file_atomic(path, merges, strlen(merges), &err) == 0, "%s", err.msg);
}

/* A vocab.json with every byte (spelled with \u escapes), the 5 specials (<mask> at mask_id),
 * "ab" and extra. */
static char *tiny_vocab(const char *extra, int mask_id) {
  size_t cap = 16384, n = 0;
  char *v = dmx_malloc(cap);
  n += (size_t)snprintf(v + n, cap - n, "{\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3");
  int printable_next = 256;
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = printable ? b : printable_next++;
    if (b == '<' || b == '>' || b == '/') continue; /* given below, unescaped */
    n += (size_t)snprintf(v + n, cap - n, ",\n \"\\u%04x\": %d", cp, 4 + b);
  }
  n += (size_t)snprintf(v + n, cap - n, ", \"<\": %d, \">\": %d, \"\\/\": %d", 4 + '<', 4 + '>', 4 + '/');
  n += (size_t)snprintf(v + n, cap - n, ", \"ab\": 260, \"<mask>\": %d%s}\n", mask_id, extra);
  return v;
}

static void expect_load_error(const char *dir, const char *needle) {
  dmx_error err = {{0}};
  dmx_tokenizer *t = dmx_tokenizer_load(dir, &err);
  CHECKF(t == NULL, "loading %s should fail", dir);
  CHECKF(strstr(err.msg, needle) != NULL, "error \"%s\" should contain \"%s\"", err.msg, needle);
  dmx_tokenizer_free(t);
}

static void test_loading_errors(void) {
  th_begin("loading: JSON escapes, and bad files are named with file:line");
  char dir[256];
  snprintf(dir, sizeof dir, "/tmp/dmx_tok_test_%d", (int)getpid());
  char *v = tiny_vocab("", DMX_TOKEN_MASK);
  write_tokenizer(dir, v, "#version: 0.2\na b\n");
  dmx_error err;
  dmx_tokenizer *t = dmx_tokenizer_load(dir, &err);
  CHECKF(t != NULL, "%s", err.msg);
  if (t) {
    int32_t ids[8];
    CHECK(dmx_tokenizer_vocab_size(t) == 50265);
    size_t len;
    CHECK(dmx_tokenizer_token_bytes(t, 262, &len) == NULL); /* ids 262..50263 are unused */
    CHECK(dmx_tokenize(t, "aab", 3, 0, ids, 8, &err) == 2 && ids[0] == 4 + 'a' && ids[1] == 260);
    CHECK(dmx_tokenize(t, "\n/", 2, 0, ids, 8, &err) == 2 && ids[0] == 4 + '\n' && ids[1] == 4 + '/');
    CHECK(dmx_tokenize(t, "x <mask>", 8, 0, ids, 8, &err) == 2 && ids[1] == DMX_TOKEN_MASK);
    dmx_tokenizer_free(t);
  }
  free(v);

  v = tiny_vocab(", \"\\ud83d\\ude00\": 262", DMX_TOKEN_MASK);
  write_tokenizer(dir, v, "a b\n");
  expect_load_error(dir, "outside GPT-2's byte-level alphabet");
  free(v);
  v = tiny_vocab(", \"\\ud83d\": 262", DMX_TOKEN_MASK);
  write_tokenizer(dir, v, "a b\n");
  expect_load_error(dir, "high surrogate not followed by a low surrogate");
  free(v);
  v = tiny_vocab(", \"a\": 999", DMX_TOKEN_MASK);
  write_tokenizer(dir, v, "a b\n");
  expect_load_error(dir, "duplicate token 'a'");
  free(v);
  v = tiny_vocab("", 261);
  write_tokenizer(dir, v, "a b\n");
  expect_load_error(dir, "special token <mask> has id 261, RoBERTa's is 50264");
  free(v);
  write_tokenizer(dir, "{\"<s>\": 0,\n \"x\" 1}", "");
  expect_load_error(dir, "vocab.json:2:6: bad vocab.json (one JSON object of token -> id): expected ':'");
  write_tokenizer(dir, "{\"<s>\": 0}", "");
  expect_load_error(dir, "single byte 0x00");
  v = tiny_vocab("", DMX_TOKEN_MASK);
  write_tokenizer(dir, v, "#version: 0.2\na b\nb zz\n");
  expect_load_error(dir, "merges.txt:3: token \"zz\" is not in vocab.json");
  write_tokenizer(dir, v, "a b\nb  a\n");
  expect_load_error(dir, "merges.txt:2: expected two tokens");
  write_tokenizer(dir, v, "b a\n");
  expect_load_error(dir, "merges.txt:1: the merged token \"b a\" is not in vocab.json");
  free(v);
  char missing[300];
  snprintf(missing, sizeof missing, "%s/nothing-here", dir);
  expect_load_error(missing, "nothing-here/vocab.json: cannot open");

  char resolved[512];
  CHECK(dmx_tokenizer_resolve_dir(dir, resolved, sizeof resolved, &err) == 0 && strcmp(resolved, dir) == 0);
  CHECK(dmx_tokenizer_resolve_dir("no/such/tokenizer", resolved, sizeof resolved, &err) == -1);
  CHECKF(strstr(err.msg, "no/such/tokenizer/vocab.json") != NULL, "%s", err.msg);
  if (getenv("DATAMUX_DATA")) {
    CHECK(dmx_tokenizer_resolve_dir("tokenizers/roberta-base", resolved, sizeof resolved, &err) == 0);
    CHECK(dmx_tokenizer_resolve_dir(NULL, resolved, sizeof resolved, &err) == 0);
  }
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK(system(cmd) == 0);
  th_end();
}

/* Runs first, so the piece cache starts empty. */
static void time_sst2_train(dmx_tokenizer *tok) {
  th_begin("speed: all 67,349 SST-2 train sentences (reported, not asserted)");
  const char *tsv = th_data_path("glue/SST-2/train.tsv");
  CHECKF(tsv != NULL, "DATAMUX_DATA is not set");
  lines_t text;
  if (tsv && read_lines(tsv, &text) == 0) {
    static int32_t ids[MAX_IDS];
    double t0 = dmx_now_seconds();
    long total = 0;
    int rows = 0;
    for (int r = 1; r < text.n; r++) {
      if (!text.line[r][0]) continue;
      char *tab = strchr(text.line[r], '\t');
      size_t len = tab ? (size_t)(tab - text.line[r]) : strlen(text.line[r]);
      dmx_error err;
      total += dmx_encode_single(tok, text.line[r], len, 128, ids, MAX_IDS, &err);
      rows++;
    }
    double dt = dmx_now_seconds() - t0;
    CHECK(rows == 67349);
    printf("  SST-2 train: %d sentences, %ld tokens in %.3f s (%.0f sentences/s)\n", rows, total, dt, rows / dt);
    free_lines(&text);
  }
  th_end();
}

static void test_cli(void) {
  th_begin("datamux tokenize: single, pair with padding, words, errors name the path");
  const char *bin = th_datamux_bin();
  char cmd[1024], out[4096];
  snprintf(cmd, sizeof cmd, "printf 'Hello world\\nHello <mask>.\\r\\n' | %s tokenize", bin);
  int rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 0 && strcmp(out, "0 31414 232 2\n0 31414 50264 4 2\n") == 0, "rc %d, output:\n%s", rc, out);
  snprintf(cmd, sizeof cmd,
           "printf 'a b c d e f g\\th i j k l m n o p\\na\\tb\\n' | %s tokenize --pair --max-length 18", bin);
  rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 0 && strcmp(out,
                           "0 102 741 740 385 364 856 821 2 2 298 939 1236 449 784 475 295 2\n"
                           "0 102 2 2 428 2 1 1 1 1 1 1 1 1 1 1 1 1\n") == 0,
         "rc %d, output:\n%s", rc, out);
  snprintf(cmd, sizeof cmd, "echo 'EU rejects German' | %s tokenize --words --tokenizer tokenizers/roberta-base", bin);
  rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 0 && strcmp(out, "0 1281 24020 1859 2\n") == 0, "rc %d, output:\n%s", rc, out);
  snprintf(cmd, sizeof cmd, "echo x | %s tokenize --tokenizer /no/such/dir", bin);
  rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 1 && strstr(out, "/no/such/dir/vocab.json") != NULL, "rc %d, output:\n%s", rc, out);
  snprintf(cmd, sizeof cmd, "echo 'no tab' | %s tokenize --pair", bin);
  rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 1 && strstr(out, "stdin:1:") != NULL, "rc %d, output:\n%s", rc, out);
  th_end();
}

int main(void) {
  test_unicode_classes();
  test_loading_errors();
  dmx_tokenizer *tok = load_roberta();
  if (tok) {
    time_sst2_train(tok);
    test_vocabulary(tok);
    test_sst2_dev(tok);
    test_conll_valid(tok);
    test_hard_single(tok);
    test_hard_words(tok);
    test_truncation(tok);
    test_api_edges(tok);
    test_random_text(tok);
    test_cli();
  }
  dmx_tokenizer_free(tok);
  return th_finish();
}
