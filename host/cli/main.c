/* datamux: the command-line entry point. Dispatches to host/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "host/cli/commands.h"
#include "host/dist/dist.h"

typedef struct {
  const char *name;
  int (*run)(int, char **);
  const char *help;
} command;

static const command commands[] = {
    {"devices", dmx_cmd_devices, "list OpenCL platforms and devices"},
    {"config", dmx_cmd_config, "print the fully resolved experiment: config EXP.yaml [flags]"},
    {"tokenize", dmx_cmd_tokenize, "tokenize stdin: tokenize --tokenizer DIR [--pair] [--max-length L]"},
    {"data", dmx_cmd_data, "summarise a dataset: data --task T --split S [--data-dir D] [-N n]"},
    {"train", dmx_cmd_train, "train: train EXP.yaml [flags]"},
    {"eval", dmx_cmd_eval, "evaluate: eval EXP.yaml --model_path RUN [flags]"},
    {"predict", dmx_cmd_predict, "predict labels for stdin lines: predict --model_path RUN --task T"},
    {"bench", dmx_cmd_bench, "benchmarks: bench --gemm | --build | EXP.yaml [--train | -N list] (see bench --help)"},
    {"sweep", dmx_cmd_sweep, "run a sweep of experiments: sweep SWEEP.yaml [--dry-run] [--jobs J] (see sweep --help)"},
    {"report", dmx_cmd_report, "merge bench JSONs of several devices: report A.json B.json ... [--out DIR]"},
    {"tune", dmx_cmd_tune, "tune CLBlast's GEMM kernels for this device at an experiment's shapes: tune EXP.yaml"},
    {"convert", dmx_cmd_convert, "checkpoint format: convert IN.bin OUT.safetensors (or back; torch.save files)"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: datamux COMMAND [ARGS]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
  fprintf(f, "\nenvironment: DATAMUX_DEVICE, DATAMUX_DATA, DATAMUX_CL_DIR, DATAMUX_NO_CACHE, XDG_CACHE_HOME\n");
}

int main(int argc, char **argv) {
  /* progress and evaluation lines must appear as they are printed when piped (`| tee log`) */
  if (setvbuf(stdout, NULL, _IOLBF, 0) != 0) fprintf(stderr, "datamux: warning: stdout stays fully buffered\n");
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  int ranks = dmx_dist_launched_size();
  if (ranks > 1 && strcmp(argv[1], "train") != 0) {
    fprintf(stderr,
            "datamux %s: started as one of %d MPI ranks, but only `datamux train` runs under mpirun: run `datamux "
            "%s` as one process\n",
            argv[1], ranks, argv[1]);
    return 2;
  }
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 2, argv + 2);
  fprintf(stderr, "datamux: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
