/* `datamux config [EXP.yaml] [flags]`: prints the fully resolved experiment as YAML, which loads back
 * to the same experiment, or says exactly what is wrong with the file or the flags (exit 2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli/commands.h"
#include "host/config/config.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: datamux config [EXP.yaml] [flags]\n"
          "\n"
          "Prints the experiment with every default filled in. Without a file, prints the defaults.\n"
          "\n"
          "flags (later ones win; all override the file):\n"
          "  -N, --num_instances, --num-instances N   instances multiplexed together (1-64)\n"
          "  -m, --muxing gaussian_hadamard|binary_hadamard|random_ortho\n"
          "  -d, --demuxing index|mlp\n"
          "  -s, --setting baseline|retrieval_pretraining|finetuning\n"
          "  --task NAME          sst2 mnli qnli qqp cola mrpc stsb rte wnli ner text\n"
          "  --lr X               learning rate\n"
          "  --batch_size B       groups of N per step (0 = by N: 32/24/20/16)\n"
          "  --config_name FILE   model YAML (relative to here or to experiments/)\n"
          "  --model_path DIR     checkpoint to start from\n"
          "  --learn_muxing [0|1], --do_train [0|1], --do_eval [0|1]\n"
          "  --output_dir DIR, --device NAME, --data-dir DIR, --seed S, --max_steps S\n"
          "  --set key.path=VALUE any field, e.g. --set training.warmup_steps=100 --set model.hidden_size=64\n"
          "\n"
          "Each flag also takes the form --flag=value.\n");
}

int dmx_cmd_config(int argc, char **argv) {
  if (argc > 0 && (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help"))) {
    usage(stdout);
    return 0;
  }
  /* The struct holds several path buffers; keep it off the stack. */
  dmx_experiment *e = dmx_malloc(sizeof *e);
  dmx_error err;
  int first_flag = 0;
  int rc = 0;
  if (argc > 0 && argv[0][0] != '-') {
    rc = dmx_experiment_load(e, argv[0], &err);
    first_flag = 1;
  } else {
    dmx_experiment_defaults(e);
  }
  if (rc == 0) rc = dmx_experiment_apply_flags(e, argc - first_flag, argv + first_flag, &err);
  if (rc == 0) rc = dmx_experiment_validate(e, &err);
  if (rc != 0) {
    fprintf(stderr, "datamux config: %s\n", err.msg);
    free(e);
    return 2;
  }
  dmx_experiment_print_yaml(stdout, e);
  free(e);
  if (fflush(stdout) != 0 || ferror(stdout)) {
    perror("datamux config: writing to stdout");
    return 1;
  }
  return 0;
}
