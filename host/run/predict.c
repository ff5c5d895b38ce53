/* `datamux predict`: labels for raw text read from a stream, one example per line.
 *
 * Every line is one instance. Lines are tokenized as the training data is (data/roberta_encoder.h:
 * `<s> a </s>`, pairs `<s> a </s></s> b </s>`, NER words with a prefix space each), grouped N at a
 * time into multiplexed batches in input order (the last group padded with padding instances),
 * run through the model in evaluation mode (no dropout, no retrieval head) and demultiplexed: one
 * output line per input line, in input order. A class task prints the class name (argmax of the
 * logits), NER one tag per input word, STS-B the regression output.
 *
 * All input is read and checked before the model runs, so a bad line gives an error naming
 * <stdin>:LINE and no partial output. Only labels go to `out`; everything else goes to stderr. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "data/batch.h"
#include "data/conll.h"
#include "data/dataset.h"
#include "data/glue.h"
#include "data/roberta_encoder.h"
#include "data/tokenizer.h"
#include "host/base/output.h"
#include "host/run/checkpoint.h"
#include "host/runtime/runtime.h"
#include "host/formats/safetensors.h"
#include "host/run/train.h"
#include "host/run/experiment_runtime.h"
#include "layers/model.h"

#define WHAT "<stdin>"

typedef struct {
  char **text;   /* one string per line, newline (and a trailing CR) removed */
  char **text_b; /* pair tasks: the part after the TAB (points into text[i]) */
  int n, cap;
} lines;

static void lines_free(lines *l) {
  for (int i = 0; i < l->n; i++) free(l->text[i]);
  free(l->text);
  free(l->text_b);
  memset(l, 0, sizeof *l);
}

static int read_lines(FILE *in, bool pair, const char *task, lines *l, dmx_error *err) {
  memset(l, 0, sizeof *l);
  char *buf = NULL;
  size_t bufcap = 0;
  ssize_t len;
  errno = 0;
  while ((len = getline(&buf, &bufcap, in)) >= 0) {
    if (l->n == INT32_MAX / 2) {
      free(buf);
      return dmx_fail(err, "%s: too many lines", WHAT);
    }
    size_t n = (size_t)len;
    if (n && buf[n - 1] == '\n') buf[--n] = 0;
    if (n && buf[n - 1] == '\r') buf[--n] = 0;
    if (strlen(buf) != n) {
      free(buf);
      return dmx_fail(err, "%s:%d: the line holds a NUL byte", WHAT, l->n + 1);
    }
    if (l->n == l->cap) {
      l->cap = l->cap ? 2 * l->cap : 256;
      l->text = dmx_realloc(l->text, (size_t)l->cap * sizeof *l->text);
      l->text_b = dmx_realloc(l->text_b, (size_t)l->cap * sizeof *l->text_b);
    }
    char *copy = dmx_malloc(n + 1);
    memcpy(copy, buf, n + 1);
    l->text[l->n] = copy;
    l->text_b[l->n] = NULL;
    l->n++;
    if (pair) {
      char *tab = strchr(copy, '\t');
      if (!tab || strchr(tab + 1, '\t')) {
        free(buf);
        return dmx_fail(err,
                        "%s:%d: task %s takes a pair of sentences: write them on one line separated by one TAB "
                        "(found %s)",
                        WHAT, l->n, task, tab ? "more than one TAB" : "no TAB");
      }
      *tab = 0;
      l->text_b[l->n - 1] = tab + 1;
    }
    errno = 0;
  }
  int read_errno = errno;
  free(buf);
  if (ferror(in)) return dmx_fail(err, "%s: read error: %s", WHAT, strerror(read_errno ? read_errno : EIO));
  return 0;
}

/* Splits a NER line into words at spaces and TABs, in place. *words is grown with dmx_realloc. */
static int split_words(char *s, char ***words, int *cap) {
  int n = 0;
  for (char *p = s; *p;) {
    while (*p == ' ' || *p == '\t') *p++ = 0;
    if (!*p) break;
    if (n == *cap) {
      *cap = *cap ? 2 * *cap : 64;
      *words = dmx_realloc(*words, (size_t)*cap * sizeof **words);
    }
    (*words)[n++] = p;
    while (*p && *p != ' ' && *p != '\t') p++;
  }
  return n;
}

static bool is_head_param(const char *name) {
  return !strncmp(name, "demultiplexer.", 14) || !strncmp(name, "classifier.", 11);
}

/* dmx_checkpoint_load keeps a fresh task head, with a warning, when the checkpoint's head has
 * another class count. That is right for fine-tuning from another task and wrong here: predicting
 * with a random head. So every head tensor must be in the checkpoint with this model's shape. */
static int check_head(const dmx_model *m, const char *path, const char *task, dmx_error *err) {
  char file[4096];
  dmx_st_file *f = dmx_checkpoint_open(path, file, sizeof file, err);
  if (!f) return -1;
  int rc = 0;
  for (int i = 0; i < dmx_model_num_params(m) && !rc; i++) {
    const dmx_param *p = dmx_model_param(m, i);
    if (!is_head_param(p->name)) continue;
    const dmx_st_tensor *t = dmx_st_find(f, p->name);
    if (!t && p->alias[0]) t = dmx_st_find(f, p->alias);
    if (!t) {
      rc = dmx_fail(err,
                    "%s: the checkpoint has no %s: its task head is not this model's (trained for another kind "
                    "of task, demuxing or setting, or a retrieval warm-up), so it cannot predict task %s",
                    file, p->name, task);
      break;
    }
    char have[96], want[96];
    if (!dmx_checkpoint_shape_matches(t, p, have, want, sizeof have)) {
      rc = dmx_fail(err,
                    "%s: %s has shape %s but task %s needs %s: the checkpoint's head was trained for another "
                    "task (check --task)",
                    file, p->name, have, task, want);
    }
  }
  dmx_st_free(f);
  return rc;
}

/* dmx_checkpoint_load reports on stdout; here stdout carries the labels only, so its report is
 * sent to stderr for the duration of the call. */
static int load_checkpoint_quietly(dmx_model *m, const char *path, dmx_error *err) {
  if (fflush(stdout) != 0) return dmx_fail(err, "cannot flush stdout: %s", strerror(errno));
  int saved = dup(STDOUT_FILENO);
  if (saved < 0) return dmx_fail(err, "dup(stdout) failed: %s", strerror(errno));
  if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    int e = errno;
    close(saved);
    return dmx_fail(err, "dup2(stderr, stdout) failed: %s", strerror(e));
  }
  int rc = dmx_checkpoint_load(m, path, err);
  fflush(stdout);
  if (dup2(saved, STDOUT_FILENO) < 0) {
    int e = errno;
    close(saved);
    return dmx_fail(err, "cannot restore stdout: %s", strerror(e));
  }
  close(saved);
  return rc;
}

static int argmax(const float *v, int n) {
  int best = 0;
  for (int c = 1; c < n; c++)
    if (v[c] > v[best]) best = c;
  return best;
}

/* JSON arrays of one position's class scores: the softmax of the logits (computed in double), and
 * the logits themselves. */
static void put_probabilities(FILE *out, const float *logits, int C) {
  double mx = logits[0], sum = 0;
  for (int c = 1; c < C; c++)
    if (logits[c] > mx) mx = logits[c];
  for (int c = 0; c < C; c++) sum += exp((double)logits[c] - mx);
  fputc('[', out);
  for (int c = 0; c < C; c++) fprintf(out, "%s%.9g", c ? ", " : "", exp((double)logits[c] - mx) / sum);
  fputc(']', out);
}

static void put_logits(FILE *out, const float *logits, int C) {
  fputc('[', out);
  for (int c = 0; c < C; c++) fprintf(out, "%s%.9g", c ? ", " : "", (double)logits[c]);
  fputc(']', out);
}

static int predict(const dmx_experiment *e, FILE *in, FILE *out, dmx_predict_format format, dmx_error *err) {
  const char *task = e->task.name;
  bool token = !strcmp(task, "ner");
  const dmx_glue_task *glue = token ? NULL : dmx_glue_find(task);
  if (!token && !glue) {
    if (!strcmp(task, "text"))
      return dmx_fail(err, "task text is the retrieval warm-up: it has no labels to predict (give --task)");
    return dmx_fail(err, "task '%s' cannot predict: use ner or one of %s", task, dmx_glue_task_names());
  }
  if (!e->model_path[0]) return dmx_fail(err, "give the model with --model_path RUN_DIR");
  int C = token ? DMX_NER_NUM_LABELS : glue->num_labels;
  const char *const *names = token ? dmx_ner_label_names : glue->label_names;
  bool pair = glue && glue->col_b;

  /* the checkpoint file, before reading any input, so a wrong path fails at once */
  char ckpt[4096];
  if (dmx_checkpoint_resolve(e->model_path, ckpt, sizeof ckpt, err)) return -1;

  lines in_lines;
  if (read_lines(in, pair, task, &in_lines, err)) {
    lines_free(&in_lines);
    return -1;
  }
  if (in_lines.n == 0) {
    lines_free(&in_lines);
    return 0; /* empty input: nothing to say */
  }

  /* the tokenizer, found as load_split (host/train.c) finds it */
  char root[1024], tokdir[2048];
  dmx_data_root(e->task.data_dir[0] ? e->task.data_dir : NULL, root, sizeof root);
  if (!e->task.tokenizer[0])
    snprintf(tokdir, sizeof tokdir, "%s/tokenizers/roberta-base", root);
  else if (e->task.tokenizer[0] == '/')
    snprintf(tokdir, sizeof tokdir, "%s", e->task.tokenizer);
  else
    snprintf(tokdir, sizeof tokdir, "%s/%s", root, e->task.tokenizer);
  dmx_tokenizer *tok = dmx_tokenizer_load(tokdir, err);
  if (!tok) {
    lines_free(&in_lines);
    return -1;
  }
  dmx_encoder enc;
  dmx_roberta_encoder(tok, &enc);

  int N = e->setting == DMX_SETTING_BASELINE ? 1 : e->mux.num_instances;
  int B = e->train.batch_size > 0 ? e->train.batch_size : dmx_base_batch_size(N);
  int groups_needed = (in_lines.n + N - 1) / N;
  if (B > groups_needed) B = groups_needed; /* the same groups of N, fewer padding groups */
  int L = e->task.max_length;
  int per_step = B * N;
  dmx_input_kind input = e->setting == DMX_SETTING_BASELINE   ? DMX_INPUT_PLAIN
                         : e->mux.demuxing == DMX_DEMUX_INDEX ? DMX_INPUT_INDEX
                                                              : DMX_INPUT_MLP;
  dmx_target_kind kind = token ? DMX_TARGET_TOKENS : DMX_TARGET_CLASS;
  int rc = 0;
  dmx_runtime *rt = NULL;
  dmx_model *m = NULL;
  dmx_batch batch;
  memset(&batch, 0, sizeof batch);
  bool have_batch = false;
  dmx_dataset ds;
  dmx_dataset_alloc(&ds, per_step, L, kind);
  if (ds.labels)
    for (int r = 0; r < per_step; r++) ds.labels[r] = -1; /* no labels (the model gets none either) */
  int32_t *word_of = dmx_malloc((size_t)per_step * L * sizeof *word_of);
  int32_t *rows = dmx_malloc((size_t)per_step * sizeof *rows);
  int32_t *no_labels = NULL;
  float *logits = NULL;
  char **words = NULL;
  int words_cap = 0;

  if (dmx_batch_alloc(&batch, B, N, L, input, kind, err)) {
    rc = -1;
    goto done;
  }
  have_batch = true;
  int T = batch.Lp, prefix = input == DMX_INPUT_INDEX ? N + 1 : 0;
  rt = dmx_experiment_runtime(e, NULL, false, stderr);
  m = dmx_model_create(rt, e, B, T, C, token, err);
  if (!m) {
    rc = -1;
    goto done;
  }
  dmx_model_init_params(m, (uint64_t)e->train.seed);
  if (check_head(m, ckpt, task, err) || load_checkpoint_quietly(m, ckpt, err)) {
    rc = -1;
    goto done;
  }
  size_t label_cells = token ? (size_t)per_step * T : (size_t)per_step;
  no_labels = dmx_malloc(label_cells * sizeof *no_labels);
  for (size_t i = 0; i < label_cells; i++) no_labels[i] = DMX_IGNORE_LABEL;
  size_t logit_cells = label_cells * (size_t)C;
  logits = dmx_malloc(logit_cells * sizeof *logits);
  int n_truncated = 0;

  for (int start = 0; start < in_lines.n; start += per_step) {
    int count = in_lines.n - start < per_step ? in_lines.n - start : per_step;
    /* encode this step's lines into rows 0..count-1 of the scratch dataset */
    for (int r = 0; r < count; r++) {
      int li = start + r;
      int32_t *ids = ds.ids + (size_t)r * L;
      bool truncated = false;
      dmx_error why;
      int erc;
      if (token) {
        char *copy = dmx_malloc(strlen(in_lines.text[li]) + 1);
        strcpy(copy, in_lines.text[li]);
        int nw = split_words(copy, &words, &words_cap);
        erc = enc.encode_words(enc.ctx, (const char *const *)words, nw, L, ids, word_of + (size_t)r * L, &truncated,
                               &why);
        free(copy);
      } else {
        erc = enc.encode(enc.ctx, in_lines.text[li], in_lines.text_b[li], L, ids, &truncated, &why);
      }
      if (erc) {
        rc = dmx_fail(err, "%s:%d: cannot tokenize: %s", WHAT, li + 1, why.msg);
        goto done;
      }
      if (truncated) {
        if (n_truncated < 5)
          fprintf(stderr, "datamux predict: %s:%d: longer than max_length %d tokens: truncated%s\n", WHAT, li + 1, L,
                  token ? " (words past the end are tagged O)" : "");
        n_truncated++;
      }
      rows[r] = r;
    }
    ds.n = count;
    dmx_batch_fill(&batch, &ds, rows, count);
    dmx_batch_view v = {.ids = batch.ids, .positions = batch.positions, .labels = no_labels};
    dmx_model_step(m, &v, false, 0);
    dmx_model_logits(m, logits);
    for (int r = 0; r < per_step; r++) {
      int src = batch.source_row[r];
      if (src < 0) continue; /* padding instance */
      int li = start + src;
      if (token) {
        /* the tag of each word is the prediction at its first sub-token */
        char *copy = dmx_malloc(strlen(in_lines.text[li]) + 1);
        strcpy(copy, in_lines.text[li]);
        int nw = split_words(copy, &words, &words_cap);
        free(copy);
        int *tag = dmx_malloc((size_t)(nw ? nw : 1) * sizeof *tag);
        for (int w = 0; w < nw; w++) tag[w] = 0; /* O for words cut off by truncation */
        const int32_t *wo = word_of + (size_t)src * L;
        for (int j = 0; j < L; j++)
          if (wo[j] >= 0 && wo[j] < nw) tag[wo[j]] = argmax(logits + ((size_t)r * T + prefix + j) * C, C);
        if (format == DMX_PREDICT_JSONL) {
          /* per word: the distribution at its first sub-token (-1: cut off by truncation, tagged O) */
          int *at = dmx_malloc((size_t)(nw ? nw : 1) * sizeof *at);
          for (int w = 0; w < nw; w++) at[w] = -1;
          for (int j = L - 1; j >= 0; j--)
            if (wo[j] >= 0 && wo[j] < nw) at[wo[j]] = j;
          fprintf(out, "{\"label\": [");
          for (int w = 0; w < nw; w++) {
            fprintf(out, "%s", w ? ", " : "");
            dmx_json_put_str(out, names[tag[w]]);
          }
          for (int part = 0; part < 2; part++) {
            fprintf(out, part ? "], \"logits\": [" : "], \"probabilities\": [");
            for (int w = 0; w < nw; w++) {
              fprintf(out, "%s", w ? ", " : "");
              const float *lg = logits + ((size_t)r * T + prefix + at[w]) * C;
              if (at[w] < 0)
                fprintf(out, "null");
              else if (part)
                put_logits(out, lg, C);
              else
                put_probabilities(out, lg, C);
            }
          }
          fprintf(out, "]}\n");
          free(at);
        } else {
          for (int w = 0; w < nw; w++) fprintf(out, "%s%s", w ? " " : "", names[tag[w]]);
          fputc('\n', out);
        }
        free(tag);
      } else if (!names) { /* regression (STS-B): the score */
        if (format == DMX_PREDICT_JSONL)
          fprintf(out, "{\"label\": %.9g, \"logits\": [%.9g]}\n", (double)logits[(size_t)r * C],
                  (double)logits[(size_t)r * C]);
        else
          fprintf(out, "%.6g\n", (double)logits[(size_t)r * C]);
      } else if (format == DMX_PREDICT_JSONL) {
        fprintf(out, "{\"label\": ");
        dmx_json_put_str(out, names[argmax(logits + (size_t)r * C, C)]);
        fprintf(out, ", \"probabilities\": ");
        put_probabilities(out, logits + (size_t)r * C, C);
        fprintf(out, ", \"logits\": ");
        put_logits(out, logits + (size_t)r * C, C);
        fprintf(out, "}\n");
      } else {
        fprintf(out, "%s\n", names[argmax(logits + (size_t)r * C, C)]);
      }
    }
    if (ferror(out)) {
      rc = dmx_fail(err, "cannot write the predictions: %s", strerror(errno));
      goto done;
    }
  }
  if (fflush(out) != 0) rc = dmx_fail(err, "cannot write the predictions: %s", strerror(errno));
  if (n_truncated > 5) fprintf(stderr, "datamux predict: %d lines truncated in all\n", n_truncated);

done:
  free(words);
  free(logits);
  free(no_labels);
  free(rows);
  free(word_of);
  dmx_dataset_free(&ds);
  if (have_batch) dmx_batch_free(&batch);
  dmx_model_free(m);
  if (rt) dmx_runtime_destroy(rt);
  dmx_tokenizer_free(tok);
  lines_free(&in_lines);
  return rc;
}

int dmx_run_predict(const dmx_experiment *e, FILE *in, FILE *out, dmx_predict_format format) {
  dmx_error err = {{0}};
  if (predict(e, in, out, format, &err)) {
    fprintf(stderr, "datamux predict: %s\n", err.msg);
    return 1;
  }
  return 0;
}
