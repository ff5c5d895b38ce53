/* `datamux tokenize`: roberta-base ids for each line of stdin, for checking against other tools. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer.h"
#include "host/cli/commands.h"

static void tokenize_usage(FILE *f) {
  fprintf(f,
          "usage: datamux tokenize [--tokenizer DIR] [--pair | --words] [--max-length L]\n"
          "\n"
          "Reads lines from stdin and prints one line of space-separated token ids per input line,\n"
          "with RoBERTa's specials: <s> A </s>, or <s> A </s></s> B </s> for a pair.\n"
          "A line's trailing LF (and a CR before it) is not part of the text.\n"
          "\n"
          "  --tokenizer DIR   folder with vocab.json and merges.txt, or such a folder under\n"
          "                    $DATAMUX_DATA (default $DATAMUX_DATA/tokenizers/roberta-base)\n"
          "  --pair            each line is two texts separated by the first TAB\n"
          "  --words           each line is words separated by spaces, encoded one by one with a\n"
          "                    prefix space (the NER input: is_split_into_words, add_prefix_space)\n"
          "  --max-length L    truncate (pairs: longest first) and pad with <pad>=1 to L ids;\n"
          "                    without it nothing is truncated or padded\n"
          "  -h, --help        this help\n");
}

typedef struct {
  const char *tokenizer;
  bool pair, words;
  int max_length;
} tokenize_args;

/* 0 ok, 1 help shown, -1 bad usage (message printed). */
static int parse_args(int argc, char **argv, tokenize_args *a) {
  *a = (tokenize_args){NULL, false, false, 0};
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    bool has_value = i + 1 < argc; /* for the flags that take one */
    if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
      tokenize_usage(stdout);
      return 1;
    } else if (!strcmp(f, "--pair")) {
      a->pair = true;
    } else if (!strcmp(f, "--words")) {
      a->words = true;
    } else if (!strcmp(f, "--tokenizer") && has_value) {
      a->tokenizer = argv[++i];
    } else if (!strcmp(f, "--max-length") && has_value) {
      char *end;
      const char *s = argv[++i];
      errno = 0;
      long v = strtol(s, &end, 10);
      if (*s == 0 || *end != 0 || errno || v < 2 || v > 1000000) {
        fprintf(stderr, "datamux tokenize: --max-length wants an integer in 2..1000000, got '%s'\n", s);
        return -1;
      }
      a->max_length = (int)v;
    } else {
      bool wants_value = !strcmp(f, "--tokenizer") || !strcmp(f, "--max-length");
      fprintf(stderr, "datamux tokenize: %s '%s'\n\n", wants_value ? "missing value for" : "unknown argument", f);
      tokenize_usage(stderr);
      return -1;
    }
  }
  if (a->pair && a->words) {
    fprintf(stderr, "datamux tokenize: --pair and --words cannot be combined\n");
    return -1;
  }
  if (a->pair && a->max_length && a->max_length < 4) {
    fprintf(stderr, "datamux tokenize: --max-length must be at least 4 for pairs (4 special tokens)\n");
    return -1;
  }
  return 0;
}

/* Splits line[0..len) at spaces into words (pointers into line). */
static int split_words(const char *line, size_t len, const char ***words, size_t **lens, int *cap) {
  int n = 0;
  for (size_t i = 0; i < len;) {
    while (i < len && line[i] == ' ') i++;
    if (i == len) break;
    size_t start = i;
    while (i < len && line[i] != ' ') i++;
    if (n == *cap) {
      *cap = *cap ? *cap * 2 : 64;
      *words = dmx_realloc(*words, (size_t)*cap * sizeof **words);
      *lens = dmx_realloc(*lens, (size_t)*cap * sizeof **lens);
    }
    (*words)[n] = line + start;
    (*lens)[n] = i - start;
    n++;
  }
  return n;
}

typedef struct {
  dmx_tokenizer *tok;
  const tokenize_args *args;
  const char **words;
  size_t *word_lens;
  int words_cap;
} line_encoder;

/* Encodes one line into ids (cap entries); returns the count to print or -1 with err. */
static int encode_line(line_encoder *e, const char *line, size_t len, long line_no, int32_t *ids, int cap,
                       dmx_error *err) {
  const tokenize_args *a = e->args;
  int n;
  if (a->pair) {
    const char *tab = memchr(line, '\t', len);
    if (!tab) return dmx_fail(err, "stdin:%ld: --pair wants two texts separated by a TAB", line_no);
    size_t a_len = (size_t)(tab - line);
    n = dmx_encode_pair(e->tok, line, a_len, tab + 1, len - a_len - 1, a->max_length, ids, cap, err);
  } else if (a->words) {
    int n_words = split_words(line, len, &e->words, &e->word_lens, &e->words_cap);
    n = dmx_encode_words(e->tok, e->words, e->word_lens, n_words, a->max_length, ids, NULL, cap, err);
  } else {
    n = dmx_encode_single(e->tok, line, len, a->max_length, ids, cap, err);
  }
  if (n >= 0 && a->max_length > 0) n = a->max_length; /* print the padding too */
  return n;
}

static int tokenize_stream(dmx_tokenizer *tok, const tokenize_args *a) {
  line_encoder e = {tok, a, NULL, NULL, 0};
  int cap = a->max_length > 0 ? a->max_length : 1024;
  int32_t *ids = dmx_malloc((size_t)cap * sizeof *ids);
  char *line = NULL;
  size_t line_cap = 0;
  long line_no = 0;
  ssize_t got;
  int rc = 0;
  dmx_error err;
  while (rc == 0 && (got = getline(&line, &line_cap, stdin)) >= 0) {
    size_t len = (size_t)got;
    line_no++;
    if (len && line[len - 1] == '\n') len--;
    if (len && line[len - 1] == '\r') len--;
    int n = encode_line(&e, line, len, line_no, ids, cap, &err);
    if (n > cap) { /* no --max-length and a long line: grow and encode again */
      cap = n;
      ids = dmx_realloc(ids, (size_t)cap * sizeof *ids);
      n = encode_line(&e, line, len, line_no, ids, cap, &err);
    }
    if (n < 0) {
      fprintf(stderr, "datamux tokenize: %s\n", err.msg);
      rc = 1;
      break;
    }
    for (int k = 0; k < n; k++) printf(k ? " %d" : "%d", (int)ids[k]);
    putchar('\n');
  }
  if (rc == 0 && ferror(stdin)) {
    fprintf(stderr, "datamux tokenize: stdin:%ld: read error: %s\n", line_no + 1, strerror(errno));
    rc = 1;
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    fprintf(stderr, "datamux tokenize: cannot write to stdout: %s\n", strerror(errno));
    rc = 1;
  }
  free(line);
  free(ids);
  free(e.words);
  free(e.word_lens);
  return rc;
}

int dmx_cmd_tokenize(int argc, char **argv) {
  tokenize_args a;
  int parsed = parse_args(argc, argv, &a);
  if (parsed) return parsed > 0 ? 0 : 2;
  char dir[4096];
  dmx_error err;
  if (dmx_tokenizer_resolve_dir(a.tokenizer, dir, sizeof dir, &err)) {
    fprintf(stderr, "datamux tokenize: %s\n", err.msg);
    return 1;
  }
  dmx_tokenizer *tok = dmx_tokenizer_load(dir, &err);
  if (!tok) {
    fprintf(stderr, "datamux tokenize: %s\n", err.msg);
    return 1;
  }
  int rc = tokenize_stream(tok, &a);
  dmx_tokenizer_free(tok);
  return rc;
}
