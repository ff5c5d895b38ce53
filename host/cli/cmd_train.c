#include <stdio.h>
#include <string.h>

#include "host/cli/commands.h"
#include "host/config/config.h"
#include "host/run/data_parallel.h"
#include "host/run/train.h"
#include "host/run/train_vision.h"

int dmx_load_experiment_args(const char *cmd, int argc, char **argv, dmx_experiment *e) {
  dmx_error err;
  dmx_experiment_defaults(e);
  int first = 0;
  if (argc > 0 && argv[0][0] != '-') {
    if (dmx_experiment_load(e, argv[0], &err)) {
      fprintf(stderr, "datamux %s: %s\n", cmd, err.msg);
      return 2;
    }
    first = 1;
  }
  if (dmx_experiment_apply_flags(e, argc - first, argv + first, &err) || dmx_experiment_validate(e, &err)) {
    fprintf(stderr, "datamux %s: %s\n", cmd, err.msg);
    return 2;
  }
  return 0;
}

/* Settings a resumed run may change: where and how long it runs, not what it computes. */
static void keep_run_settings(dmx_experiment *dst, const dmx_experiment *src) {
  dst->train.time_budget_seconds = src->train.time_budget_seconds;
  dst->train.log_interval = src->train.log_interval;
  memcpy(dst->task.data_dir, src->task.data_dir, sizeof dst->task.data_dir);
  memcpy(dst->device, src->device, sizeof dst->device);
  memcpy(dst->output_dir, src->output_dir, sizeof dst->output_dir);
  memcpy(dst->source_path, src->source_path, sizeof dst->source_path);
}

/* `--resume RUN`: the experiment is the run's own experiment.yaml unless EXP.yaml is given, which
 * must then resolve to the same settings (a different experiment cannot continue this run). */
static int resume(int argc, char **argv, const char *run_dir) {
  dmx_error err;
  char saved_path[1100];
  snprintf(saved_path, sizeof saved_path, "%s/experiment.yaml", run_dir);
  dmx_experiment saved, e;
  dmx_experiment_defaults(&saved);
  if (dmx_experiment_load(&saved, saved_path, &err)) {
    fprintf(stderr, "datamux train: cannot resume %s: %s\n", run_dir, err.msg);
    return 2;
  }
  int rc;
  if (argc > 0 && argv[0][0] != '-') {
    rc = dmx_load_experiment_args("train", argc, argv, &e);
  } else {
    e = saved;
    rc = dmx_experiment_apply_flags(&e, argc, argv, &err) || dmx_experiment_validate(&e, &err);
    if (rc) fprintf(stderr, "datamux train: %s\n", err.msg);
    rc = rc ? 2 : 0;
  }
  if (rc) return rc;
  keep_run_settings(&saved, &e);
  char what[128];
  if (dmx_experiment_diff(&saved, &e, what, sizeof what)) {
    fprintf(stderr,
            "datamux train: cannot resume %s: this experiment differs from the run's %s in %s (only the time "
            "budget, log interval, data folder, device and output folder may change; give no EXP.yaml to use "
            "the run's own)\n",
            run_dir, saved_path, what);
    return 2;
  }
  return dmx_task_is_vision(e.task.name) ? dmx_resume_vision_experiment(&e, run_dir)
                                         : dmx_resume_experiment(&e, run_dir);
}

static int train_command(int argc, char **argv);

/* Under mpirun every rank runs this: the job is joined first (device placement, quiet ranks) and
 * ended last, as a whole, whatever the trainer returned (host/run/data_parallel.h). */
int dmx_cmd_train(int argc, char **argv) {
  if (argc > 0 && (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help"))) return train_command(argc, argv);
  dmx_error err;
  if (dmx_dp_begin(&argc, &argv, &err)) {
    fprintf(stderr, "datamux train: %s\n", err.msg);
    return 2;
  }
  return dmx_dp_end(train_command(argc, argv));
}

static int train_command(int argc, char **argv) {
  if (argc > 0 && (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help"))) {
    printf(
        "usage: datamux train EXP.yaml [flags]\n"
        "       datamux train [EXP.yaml] --resume RUN_DIR [flags]\n"
        "Trains the experiment's setting (retrieval_pretraining, finetuning or baseline), evaluating on the dev\n"
        "split at the eval interval and keeping the best model. Flags as in `datamux config --help`.\n"
        "The run directory (output_dir) receives experiment.yaml, metrics.jsonl, results.json, best/ and last/.\n"
        "last/ is rewritten every training.save_interval steps (default: at each evaluation) with the optimizer\n"
        "and trainer state, so --resume continues exactly where it left off. SIGINT/SIGTERM (Ctrl-C) write\n"
        "last/ after the current step and exit with status 130/143; a second Ctrl-C stops at once.\n"
        "Data-parallel: `mpirun -np R datamux train EXP.yaml` runs R ranks, one device each (--device A,B,...\n"
        "gives one per local rank; by default a GPU each, or all share the CPU), each with batch_size groups\n"
        "of every global batch of R x batch_size; rank 0 writes the run directory (README.md, Several devices).\n");
    return 0;
  }
  /* pull --resume RUN out; the remaining arguments are the experiment and its flags */
  const char *run_dir = NULL;
  char **rest = argv;
  int n = 0;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--resume")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "datamux train: --resume needs a run directory\n");
        return 2;
      }
      run_dir = argv[++i];
    } else if (!strncmp(argv[i], "--resume=", 9)) {
      run_dir = argv[i] + 9;
    } else {
      rest[n++] = argv[i];
    }
  }
  if (run_dir) return resume(n, rest, run_dir);
  dmx_experiment e;
  int rc = dmx_load_experiment_args("train", n, rest, &e);
  if (rc) return rc;
  return dmx_task_is_vision(e.task.name) ? dmx_run_vision_experiment(&e) : dmx_run_experiment(&e);
}
