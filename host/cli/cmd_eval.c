#include <stdio.h>
#include <string.h>

#include "host/cli/commands.h"
#include "host/config/config.h"
#include "host/run/train.h"

int dmx_cmd_eval(int argc, char **argv) {
  if (argc > 0 && (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help"))) {
    printf(
        "usage: datamux eval EXP.yaml --model_path RUN [flags]\n"
        "Evaluates the checkpoint (a run directory, a checkpoint folder or a .safetensors file) on the dev split.\n");
    return 0;
  }
  dmx_experiment e;
  int rc = dmx_load_experiment_args("eval", argc, argv, &e);
  return rc ? rc : dmx_run_eval(&e);
}
