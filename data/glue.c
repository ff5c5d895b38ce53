#include "data/glue.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/lines.h"

static const char *const sst2_labels[] = {"negative", "positive"};
static const char *const mnli_labels[] = {"entailment", "neutral", "contradiction"};
static const char *const entail_labels[] = {"entailment", "not_entailment"};
static const char *const qqp_labels[] = {"not_duplicate", "duplicate"};
static const char *const cola_labels[] = {"unacceptable", "acceptable"};
static const char *const mrpc_labels[] = {"not_equivalent", "equivalent"};
static const char *const wnli_labels[] = {"not_entailment", "entailment"};

/* Column names are those of the GLUE distribution (and of Hugging Face's glue loader). */
static const dmx_glue_task tasks[] = {
    {"sst2", "SST-2", "sentence", NULL, "label", 2, sst2_labels, "dev"},
    {"mnli", "MNLI", "sentence1", "sentence2", "gold_label", 3, mnli_labels, "dev_matched"},
    {"qnli", "QNLI", "question", "sentence", "label", 2, entail_labels, "dev"},
    {"qqp", "QQP", "question1", "question2", "is_duplicate", 2, qqp_labels, "dev"},
    {"cola", "CoLA", "sentence", NULL, "label", 2, cola_labels, "dev"},
    {"mrpc", "MRPC", "#1 String", "#2 String", "Quality", 2, mrpc_labels, "dev"},
    {"stsb", "STS-B", "sentence1", "sentence2", "score", 1, NULL, "dev"},
    {"rte", "RTE", "sentence1", "sentence2", "label", 2, entail_labels, "dev"},
    {"wnli", "WNLI", "sentence1", "sentence2", "label", 2, wnli_labels, "dev"},
};

const dmx_glue_task *dmx_glue_find(const char *name) {
  for (size_t i = 0; i < sizeof tasks / sizeof *tasks; i++)
    if (!strcmp(tasks[i].name, name)) return &tasks[i];
  return NULL;
}

const char *dmx_glue_task_names(void) { return "sst2 mnli qnli qqp cola mrpc stsb rte wnli"; }

int dmx_glue_parse_label(const dmx_glue_task *task, const char *cell) {
  for (int k = 0; k < task->num_labels; k++)
    if (!strcmp(cell, task->label_names[k])) return k;
  /* Several GLUE files store the class id itself ("0", "1"). */
  if (cell[0] >= '0' && cell[0] <= '9' && cell[1] == 0 && cell[0] - '0' < task->num_labels) return cell[0] - '0';
  return -1;
}

/* Where each needed column sits in a row, and how many columns a row must have. */
typedef struct {
  int ncols, col_a, col_b, col_label; /* -1 when absent */
} column_layout;

static int find_column(char **names, int n, const char *want) {
  if (!want) return -1;
  for (int i = 0; i < n; i++)
    if (!strcmp(names[i], want)) return i;
  return -1;
}

#define MAX_COLS 64

/* CoLA's train and dev files have no header: source, label, original mark, sentence. Its test
 * file does have one ("index\tsentence"). */
static bool is_headerless_cola(const dmx_glue_task *task, const char *first_line) {
  return !strcmp(task->name, "cola") && strncmp(first_line, "index\t", 6) != 0;
}

static int layout_from_header(const dmx_glue_task *task, char *header, bool labels_required, column_layout *lay,
                              const char *path, dmx_error *err) {
  char *names[MAX_COLS];
  int n = dmx_split_tabs(header, names, MAX_COLS);
  if (n > MAX_COLS) return dmx_fail(err, "%s:1: header has %d columns, more than the %d supported", path, n, MAX_COLS);
  lay->ncols = n;
  lay->col_a = find_column(names, n, task->col_a);
  lay->col_b = find_column(names, n, task->col_b);
  lay->col_label = find_column(names, n, task->col_label);
  if (lay->col_a < 0)
    return dmx_fail(err, "%s:1: header mismatch: no column '%s' for %s (is this the right task's file?)", path,
                    task->col_a, task->name);
  if (task->col_b && lay->col_b < 0)
    return dmx_fail(err, "%s:1: header mismatch: no column '%s' for %s (is this the right task's file?)", path,
                    task->col_b, task->name);
  if (labels_required && lay->col_label < 0)
    return dmx_fail(err, "%s:1: header mismatch: no label column '%s' (only test splits may lack labels)", path,
                    task->col_label);
  return 0;
}

static int store_label(dmx_glue_data *d, int row, const char *cell, const char *path, long lineno, dmx_error *err) {
  const dmx_glue_task *task = d->task;
  if (task->num_labels == 1) {
    char *end;
    errno = 0;
    double v = strtod(cell, &end);
    if (cell[0] == 0 || *end != 0 || errno != 0 || !isfinite(v))
      return dmx_fail(err, "%s:%ld: bad score '%s' for %s (want a number)", path, lineno, cell, task->name);
    d->scores[row] = (float)v;
    return 0;
  }
  int id = dmx_glue_parse_label(task, cell);
  if (id < 0) return dmx_fail(err, "%s:%ld: unknown label '%s' for %s", path, lineno, cell, task->name);
  d->labels[row] = id;
  return 0;
}

static void grow_rows(dmx_glue_data *d, int *cap) {
  if (d->n < *cap) return;
  *cap = *cap ? *cap * 2 : 1024;
  size_t c = (size_t)*cap;
  d->text_a = dmx_realloc(d->text_a, c * sizeof *d->text_a);
  if (d->task->col_b) d->text_b = dmx_realloc(d->text_b, c * sizeof *d->text_b);
  if (d->task->num_labels == 1)
    d->scores = dmx_realloc(d->scores, c * sizeof *d->scores);
  else
    d->labels = dmx_realloc(d->labels, c * sizeof *d->labels);
}

static int load_rows(dmx_glue_data *d, dmx_lines *r, bool labels_required, dmx_error *err) {
  const dmx_glue_task *task = d->task;
  char *line;
  size_t len;
  int got = dmx_lines_next(r, &line, &len, err);
  if (got < 0) return -1;
  if (got == 0) return dmx_fail(err, "%s: file is empty", r->path);
  column_layout lay = {0, -1, -1, -1};
  bool first_line_is_data = false;
  if (is_headerless_cola(task, line)) {
    lay = (column_layout){4, 3, -1, 1};
    first_line_is_data = true;
  } else if (layout_from_header(task, line, labels_required, &lay, r->path, err) != 0) {
    return -1;
  }
  d->has_labels = lay.col_label >= 0;
  int cap = 0;
  char *fields[MAX_COLS];
  for (;;) {
    if (!first_line_is_data) {
      got = dmx_lines_next(r, &line, &len, err);
      if (got < 0) return -1;
      if (got == 0) break;
    }
    first_line_is_data = false;
    if (len == 0) return dmx_fail(err, "%s:%ld: empty line inside the table", r->path, r->lineno);
    int n = dmx_split_tabs(line, fields, MAX_COLS);
    if (n != lay.ncols)
      return dmx_fail(err, "%s:%ld: wrong column count: expected %d TAB-separated columns, found %d", r->path,
                      r->lineno, lay.ncols, n);
    grow_rows(d, &cap);
    d->text_a[d->n] = fields[lay.col_a];
    if (task->col_b) d->text_b[d->n] = fields[lay.col_b];
    if (lay.col_label >= 0) {
      if (store_label(d, d->n, fields[lay.col_label], r->path, r->lineno, err) != 0) return -1;
    } else if (task->num_labels == 1) {
      d->scores[d->n] = NAN;
    } else {
      d->labels[d->n] = -1;
    }
    d->n++;
  }
  if (d->n == 0) return dmx_fail(err, "%s: no data rows after the header", r->path);
  return 0;
}

int dmx_glue_load(const dmx_glue_task *task, const char *path, bool labels_required, dmx_glue_data *out,
                  dmx_error *err) {
  memset(out, 0, sizeof *out);
  out->task = task;
  dmx_lines r;
  if (dmx_lines_open(&r, path, err) != 0) return -1;
  int rc = load_rows(out, &r, labels_required, err);
  out->storage = r.buf; /* fields point into it */
  r.buf = NULL;
  out->path = r.path;
  r.path = NULL;
  dmx_lines_close(&r);
  if (rc != 0) dmx_glue_free(out);
  return rc;
}

void dmx_glue_free(dmx_glue_data *d) {
  free(d->path);
  free(d->text_a);
  free(d->text_b);
  free(d->labels);
  free(d->scores);
  free(d->storage);
  memset(d, 0, sizeof *d);
}

void dmx_glue_summary(const dmx_glue_data *d, char *buf, size_t cap) {
  size_t used = (size_t)snprintf(buf, cap, "%s: %d rows", d->path, d->n);
  if (used >= cap) return;
  if (!d->has_labels) {
    snprintf(buf + used, cap - used, ", no labels (test split)");
    return;
  }
  if (d->task->num_labels == 1) {
    float lo = INFINITY, hi = -INFINITY;
    double sum = 0;
    for (int i = 0; i < d->n; i++) {
      lo = fminf(lo, d->scores[i]);
      hi = fmaxf(hi, d->scores[i]);
      sum += d->scores[i];
    }
    snprintf(buf + used, cap - used, ", scores min %.3g mean %.3g max %.3g", lo, sum / d->n, hi);
    return;
  }
  int counts[8] = {0};
  for (int i = 0; i < d->n; i++) counts[d->labels[i]]++;
  for (int k = 0; k < d->task->num_labels && used < cap; k++)
    used +=
        (size_t)snprintf(buf + used, cap - used, "%s %s %d", k ? "," : ", labels:", d->task->label_names[k], counts[k]);
}
