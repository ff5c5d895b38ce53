/* Training and evaluation of the vision notebook's models (tasks fashion_mnist, mnist, idx). */
#ifndef DMX_TRAIN_VISION_H
#define DMX_TRAIN_VISION_H

#include "host/config/config.h"

/* Trains e's vision model (epochs of random batches, evaluation on the test split after each
 * epoch or eval_interval steps) and writes the run directory: experiment.yaml, metrics.jsonl,
 * results.json (per-instance and mean accuracy, images/s) and best/ and last/ model.safetensors.
 * Returns the exit status (0, or 1 with a message on stderr). */
int dmx_run_vision_experiment(const dmx_experiment *e);
/* Continues the vision run in run_dir from its last/ checkpoint (parameters, AdamW moments, data
 * order, best result, training time) as dmx_resume_experiment does for text runs: the parameters
 * after step k equal those of an uninterrupted run, bit for bit on the same device. SIGINT/SIGTERM
 * write last/ after the current step and return 128 + signal. */
int dmx_resume_vision_experiment(const dmx_experiment *e, const char *run_dir);

/* The images and labels files of a split ("train" or "test") of a vision task: task.train_file /
 * task.eval_file when set ("IMAGES" with the labels named *labels-idx1*, or "IMAGES,LABELS"),
 * else the standard names under data_dir (mnist/, fashion-mnist/, or data_dir itself for idx),
 * for fashion_mnist also /usr/share/datasets/fashion-mnist; ".gz" or not. 0, or -1 with err
 * listing what was tried. */
int dmx_vision_split_paths(const dmx_experiment *e, const char *split, char *images, char *labels, size_t cap,
                           dmx_error *err);
#endif
