#include "data/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/text.h"

int dmx_dataset_from_glue(const dmx_glue_data *g, const dmx_encoder *enc, int L, dmx_dataset *out, dmx_error *err) {
  bool regression = g->task->num_labels == 1;
  dmx_dataset_alloc(out, g->n, L, regression ? DMX_TARGET_SCORE : DMX_TARGET_CLASS);
  out->num_labels = g->task->num_labels;
  out->label_names = g->task->label_names;
  out->has_labels = g->has_labels;
  for (int i = 0; i < g->n; i++) {
    bool truncated = false;
    dmx_error why;
    if (enc->encode(enc->ctx, g->text_a[i], g->text_b ? g->text_b[i] : NULL, L, out->ids + (size_t)i * (size_t)L,
                    &truncated, &why) != 0) {
      dmx_dataset_free(out);
      return dmx_fail(err, "%s: row %d: cannot tokenize: %s", g->path, i + 1, why.msg);
    }
    out->n_truncated += truncated;
    if (regression)
      out->scores[i] = g->scores[i];
    else
      out->labels[i] = g->labels[i];
  }
  return 0;
}

int dmx_dataset_from_conll(const dmx_conll *c, const dmx_encoder *enc, int L, dmx_dataset *out, dmx_error *err) {
  dmx_dataset_alloc(out, c->n_sentences, L, DMX_TARGET_TOKENS);
  out->num_labels = DMX_NER_NUM_LABELS;
  out->label_names = dmx_ner_label_names;
  out->has_labels = true;
  int32_t *word_of_token = dmx_malloc((size_t)L * sizeof *word_of_token);
  for (int s = 0; s < c->n_sentences; s++) {
    int first = c->sentence_start[s], n_words = c->sentence_start[s + 1] - first;
    int32_t *ids = out->ids + (size_t)s * (size_t)L, *labels = out->token_labels + (size_t)s * (size_t)L;
    bool truncated = false;
    dmx_error why;
    if (enc->encode_words(enc->ctx, (const char *const *)c->words + first, n_words, L, ids, word_of_token, &truncated,
                          &why) != 0) {
      free(word_of_token);
      dmx_dataset_free(out);
      return dmx_fail(err, "%s: sentence %d: cannot tokenize: %s", c->path, s + 1, why.msg);
    }
    out->n_truncated += truncated;
    for (int j = 0; j < L; j++) {
      int32_t w = word_of_token[j];
      if (w < -1 || w >= n_words) {
        free(word_of_token);
        dmx_dataset_free(out);
        return dmx_fail(err, "%s: sentence %d: tokenizer returned word index %d for a %d-word sentence", c->path, s + 1,
                        (int)w, n_words);
      }
      labels[j] = w >= 0 ? c->ner[first + w] : DMX_IGNORE_LABEL;
    }
  }
  free(word_of_token);
  return 0;
}

const char *dmx_data_root(const char *explicit_dir, char *buf, size_t cap) {
  const char *env = getenv("DATAMUX_DATA");
  if (explicit_dir && *explicit_dir)
    snprintf(buf, cap, "%s", explicit_dir);
  else if (env && *env)
    snprintf(buf, cap, "%s", env);
  else
    snprintf(buf, cap, "%s/data", dmx_cache_dir());
  return buf;
}

dmx_dataset_opts dmx_dataset_opts_default(void) {
  return (dmx_dataset_opts){.max_length = 128, .text_lines_per_chunk = 1000, .seed = 42, .log = stdout};
}

static bool is_plain_name(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
      return false;
  return true;
}

static int print_path(char *path, size_t cap, dmx_error *err, const char *fmt, const char *root, const char *a,
                      const char *b) {
  int n = snprintf(path, cap, fmt, root, a, b);
  if (n < 0 || (size_t)n >= cap) return dmx_fail(err, "data path under '%s' is too long", root);
  return 0;
}

int dmx_dataset_file(const char *task, const char *split, const char *root, char *path, size_t cap,
                     bool *labels_required, dmx_conll_scheme *scheme, dmx_error *err) {
  if (!is_plain_name(split)) return dmx_fail(err, "bad split name '%s' (letters, digits, '-' and '_' only)", split);
  *labels_required = strncmp(split, "test", 4) != 0;
  *scheme = DMX_CONLL_IOB2;
  const dmx_glue_task *g = dmx_glue_find(task);
  if (g) {
    const char *stem = !strcmp(split, "dev") ? g->dev_split : split;
    return print_path(path, cap, err, "%s/glue/%s/%s.tsv", root, g->dir, stem);
  }
  if (!strcmp(task, "ner")) {
    *labels_required = true;
    static const char *const names[][3] = {{"train", "train.txt", "original_iob1/eng.train"},
                                           {"dev", "valid.txt", "original_iob1/eng.testa"},
                                           {"valid", "valid.txt", "original_iob1/eng.testa"},
                                           {"test", "test.txt", "original_iob1/eng.testb"}};
    bool iob1 = !strncmp(split, "iob1-", 5);
    const char *base = iob1 ? split + 5 : split;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
      if (strcmp(base, names[i][0])) continue;
      *scheme = iob1 ? DMX_CONLL_IOB1 : DMX_CONLL_IOB2;
      return print_path(path, cap, err, "%s/conll2003/%s%s", root, iob1 ? names[i][2] : names[i][1], "");
    }
    return dmx_fail(err, "ner: unknown split '%s' (train, dev, test, iob1-train, iob1-dev, iob1-test)", split);
  }
  if (!strcmp(task, "text")) {
    const char *stem = !strcmp(split, "dev") ? "valid" : split;
    if (strcmp(stem, "train") && strcmp(stem, "valid") && strcmp(stem, "test"))
      return dmx_fail(err, "text: unknown split '%s' (train, dev, test)", split);
    return print_path(path, cap, err, "%s/wikitext-103-raw/wiki.%s.raw%s", root, stem, "");
  }
  return dmx_fail(err, "unknown task '%s' (%s ner text)", task, dmx_glue_task_names());
}

/* A missing file is the common first-run problem: say where the root came from and how to fill it. */
static int require_file(const char *path, const char *root, dmx_error *err) {
  if (access(path, R_OK) == 0) return 0;
  return dmx_fail(err,
                  "%s: not found or not readable (data root %s, from --data-dir, else $DATAMUX_DATA, else the "
                  "cache folder; download the public datasets with: bash data/fetch.sh %s)",
                  path, root, root);
}

/* Appends ", L=128, 3 truncated" style facts to the summary line. */
static void finish_summary(dmx_dataset *d, const char *what, const dmx_dataset_opts *o) {
  snprintf(d->task, sizeof d->task, "%s", o->task);
  snprintf(d->split, sizeof d->split, "%s", o->split);
  size_t used = strlen(what) < sizeof d->summary ? strlen(what) : sizeof d->summary - 1;
  memcpy(d->summary, what, used);
  d->summary[used] = 0;
  snprintf(d->summary + used, sizeof d->summary - used, "; %s/%s: %d rows of L=%d, %d truncated", o->task, o->split,
           d->n, d->L, d->n_truncated);
  if (o->log) fprintf(o->log, "%s\n", d->summary);
}

static int load_glue(const dmx_dataset_opts *o, const dmx_encoder *enc, const char *path, bool labels_required,
                     dmx_dataset *out, dmx_error *err) {
  dmx_glue_data g;
  if (dmx_glue_load(dmx_glue_find(o->task), path, labels_required, &g, err) != 0) return -1;
  char line[1024];
  dmx_glue_summary(&g, line, sizeof line);
  int rc = dmx_dataset_from_glue(&g, enc, o->max_length, out, err);
  if (rc == 0) finish_summary(out, line, o);
  dmx_glue_free(&g);
  return rc;
}

static int load_ner(const dmx_dataset_opts *o, const dmx_encoder *enc, const char *path, dmx_conll_scheme scheme,
                    dmx_dataset *out, dmx_error *err) {
  dmx_conll c;
  if (dmx_conll_load(path, scheme, &c, err) != 0) return -1;
  char line[1024];
  dmx_conll_summary(&c, line, sizeof line);
  int rc = dmx_dataset_from_conll(&c, enc, o->max_length, out, err);
  if (rc == 0) finish_summary(out, line, o);
  dmx_conll_free(&c);
  return rc;
}

static int load_text(const dmx_dataset_opts *o, const dmx_encoder *enc, const char *root, dmx_dataset *out,
                     dmx_error *err) {
  dmx_token_lines lines;
  char path[4096], what[1024];
  if (o->text_source && *o->text_source) {
    const dmx_glue_task *t = dmx_glue_find(o->text_source);
    if (!t && (strchr(o->text_source, '/') || strchr(o->text_source, '.'))) {
      /* a text file, relative to the data root unless absolute */
      if (o->text_source[0] == '/')
        snprintf(path, sizeof path, "%.4000s", o->text_source);
      else
        snprintf(path, sizeof path, "%.2000s/%.2000s", root, o->text_source);
      if (require_file(path, root, err) != 0) return -1;
      if (dmx_text_lines_from_file(path, enc, &lines, err) != 0) return -1;
      goto pack;
    }
    if (!t)
      return dmx_fail(err, "text: unknown text source '%s' (a GLUE task: %s, or a text file path)", o->text_source,
                      dmx_glue_task_names());
    bool labels_required;
    dmx_conll_scheme scheme;
    if (dmx_dataset_file(t->name, o->split, root, path, sizeof path, &labels_required, &scheme, err) != 0) return -1;
    if (require_file(path, root, err) != 0) return -1;
    dmx_glue_data g;
    if (dmx_glue_load(t, path, false, &g, err) != 0) return -1;
    int rc = dmx_text_lines_from_glue(&g, enc, &lines, err);
    dmx_glue_free(&g);
    if (rc != 0) return -1;
  } else {
    bool labels_required;
    dmx_conll_scheme scheme;
    if (dmx_dataset_file("text", o->split, root, path, sizeof path, &labels_required, &scheme, err) != 0) return -1;
    if (require_file(path, root, err) != 0) return -1;
    if (dmx_text_lines_from_file(path, enc, &lines, err) != 0) return -1;
  }
pack:;
  int rc = dmx_text_pack_blocks(&lines, o->max_length, o->text_lines_per_chunk, o->seed, out, err);
  snprintf(what, sizeof what, "%.600s: %d non-blank lines, %lld tokens with <s> </s>, blocks per %d lines", path,
           lines.n_lines, (long long)lines.n_ids, o->text_lines_per_chunk);
  dmx_token_lines_free(&lines);
  if (rc == 0) finish_summary(out, what, o);
  return rc;
}

int dmx_dataset_load_with(const dmx_dataset_opts *o, const dmx_encoder *enc, dmx_dataset *out, dmx_error *err) {
  memset(out, 0, sizeof *out);
  if (!o->task || !o->split) return dmx_fail(err, "dataset: task and split are required");
  if (o->max_length < 4 || o->max_length > 512)
    return dmx_fail(err, "dataset: max length %d out of range 4..512 (RoBERTa has 514 positions)", o->max_length);
  char root[4096], path[4096];
  dmx_data_root(o->data_dir, root, sizeof root);
  if (!strcmp(o->task, "text")) return load_text(o, enc, root, out, err);
  bool labels_required;
  dmx_conll_scheme scheme;
  if (dmx_dataset_file(o->task, o->split, root, path, sizeof path, &labels_required, &scheme, err) != 0) return -1;
  if (o->file && *o->file) {
    if (o->file[0] == '/')
      snprintf(path, sizeof path, "%.4000s", o->file);
    else
      snprintf(path, sizeof path, "%.2000s/%.2000s", root, o->file);
  }
  if (require_file(path, root, err) != 0) return -1;
  if (!strcmp(o->task, "ner")) return load_ner(o, enc, path, scheme, out, err);
  return load_glue(o, enc, path, labels_required, out, err);
}
