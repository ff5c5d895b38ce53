#include <stdio.h>
#include <string.h>

#include "host/commands.h"
#include "host/config.h"
#include "host/train.h"


int load_experiment_args(const char *cmd, int argc, char **argv, dmx_experiment *e) {
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

int cmd_train(int argc, char **argv) {
  if (argc > 0 && (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help"))) {
    printf("usage: datamux train EXP.yaml [flags]\n"
           "Trains the experiment's setting (retrieval_pretraining, finetuning or baseline), evaluating on the dev\n"
           "split at the eval interval and keeping the best model. Flags as in `datamux config --help`.\n"
           "The run directory (output_dir) receives experiment.yaml, metrics.jsonl, results.json, best/ and last/.\n");
    return 0;
  }
  dmx_experiment e;
  int rc = load_experiment_args("train", argc, argv, &e);
  return rc ? rc : dmx_run_experiment(&e);
}
