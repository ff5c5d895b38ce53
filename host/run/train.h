/* The training loop: drives model + data + checkpoints for one experiment, and evaluation. */
#ifndef DMX_TRAIN_H
#define DMX_TRAIN_H

#include <stdio.h>

#include "data/dataset.h"
#include "host/config/config.h"

/* Runs the experiment's setting (training when do_train, then evaluation when do_eval) and writes
 * the run directory (experiment.yaml, metrics.jsonl, results.json, checkpoints). Returns the exit
 * status: 0 on success, 1 with a message on stderr otherwise. */
int dmx_run_experiment(const dmx_experiment *e);

/* Continues the run in run_dir from its last/ checkpoint (parameters, AdamW moments, data order,
 * RNG, best metric, training time), so that the parameters after step k equal those of a run that
 * was never interrupted, bit for bit on the same device. e must be the run's experiment. Exit
 * status as dmx_run_experiment; 128 + signal after SIGINT/SIGTERM (a checkpoint was written). */
int dmx_resume_experiment(const dmx_experiment *e, const char *run_dir);

/* Evaluates the model of e->model_path on the experiment's dev split and prints the metrics. */
int dmx_run_eval(const dmx_experiment *e);

/* Reads one example per line from `in` (TAB separates a pair; NER: space-separated words) and
 * prints one line per input line, in input order: the label (NER: a tag per word), or with
 * DMX_PREDICT_JSONL one JSON object {"label", "probabilities", "logits"} (NER: arrays per word;
 * STS-B: the score and its one logit). */
typedef enum { DMX_PREDICT_LABELS, DMX_PREDICT_JSONL } dmx_predict_format;
int dmx_run_predict(const dmx_experiment *e, FILE *in, FILE *out, dmx_predict_format format);

/* One split of the experiment's task, encoded, as training reads it (tokenizer and data root from
 * the experiment; warm-up text from text_file/eval_file); max_rows > 0 keeps the first rows. The
 * summary line goes to log (NULL: none). */
int dmx_load_split(const dmx_experiment *e, const char *split, dmx_dataset *out, int max_rows, FILE *log,
                   dmx_error *err);

#endif
