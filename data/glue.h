/* GLUE TSV files as distributed by the GLUE benchmark (the layout Hugging Face `glue` reads):
 * columns are found by header name, labels become Hugging Face label ids, test files without a
 * label column give label -1. Nothing is tokenized here; see data/dataset.h. */
#ifndef DMX_DATA_GLUE_H
#define DMX_DATA_GLUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/base/common.h"

typedef struct {
  const char *name;               /* "sst2", "mnli", ... */
  const char *dir;                /* folder under <data root>/glue: "SST-2", "MNLI", ... */
  const char *col_a;              /* header name of the first text column */
  const char *col_b;              /* second text column; NULL for single-sentence tasks */
  const char *col_label;          /* header name of the label column */
  int num_labels;                 /* 1 for the regression task STS-B */
  const char *const *label_names; /* Hugging Face order; NULL for regression */
  const char *dev_split;          /* file stem of the split called "dev" ("dev", MNLI "dev_matched") */
} dmx_glue_task;

/* NULL when the name is not a GLUE task. Names: sst2 mnli qnli qqp cola mrpc stsb rte wnli. */
const dmx_glue_task *dmx_glue_find(const char *name);
/* Space-separated list of the task names, for messages. */
const char *dmx_glue_task_names(void);

typedef struct {
  const dmx_glue_task *task;
  char *path;
  int n;
  char **text_a;   /* n pointers into storage */
  char **text_b;   /* n pointers, or NULL for single-sentence tasks */
  int32_t *labels; /* n class ids; -1 where the file has no labels; NULL for regression */
  float *scores;   /* n regression targets (STS-B); NULL otherwise */
  bool has_labels;
  char *storage; /* the file's bytes, cut into fields in place */
} dmx_glue_data;

/* Loads one TSV. When labels_required is false a file without the label column (GLUE test
 * files) is accepted and every label is -1 (scores NAN). */
int dmx_glue_load(const dmx_glue_task *task, const char *path, bool labels_required, dmx_glue_data *out,
                  dmx_error *err);
void dmx_glue_free(dmx_glue_data *d);

/* "<path>: <n> rows, labels: negative 428, positive 444" (or the score range for STS-B). */
void dmx_glue_summary(const dmx_glue_data *d, char *buf, size_t cap);

/* Class id of a label cell: one of task->label_names, or an integer in [0, num_labels).
 * -1 when it is neither. */
int dmx_glue_parse_label(const dmx_glue_task *task, const char *cell);

#endif
