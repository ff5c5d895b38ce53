/* `datamux tune`: argument parsing; the work is in host/tune.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli/commands.h"
#include "host/run/train.h"
#include "host/perf/tune.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: datamux tune EXP.yaml [--fraction F] [--max-shapes K] [--force] [--no-routine] [--dry-run] [flags]\n"
          "Tunes CLBlast's GEMM kernels for the device at the GEMM shapes of one training step of EXP.yaml with\n"
          "clblast_tuner_xgemm (the heaviest plain GEMMs, padded to multiples of 128) and clblast_tuner_xgemm_direct\n"
          "(the heaviest below XGEMM_MIN_INDIRECT_SIZE^3), installs the winners in ~/.cache/datamux/clblast/<device>/\n"
          "(applied by every datamux command; DATAMUX_NO_TUNING=1 ignores them), then sets XGEMM_MIN_INDIRECT_SIZE\n"
          "from timings of both paths at every shape. Stop with Ctrl-C and run again: finished shapes are skipped.\n"
          "  --fraction F     each tuner explores 1/F of its search space (the tuners' -fraction; default 100)\n"
          "  --max-shapes K   per kernel, the K shapes with the most FLOPs per step (default 3)\n"
          "  --force          tune shapes again even when they have a result\n"
          "  --no-routine     keep XGEMM_MIN_INDIRECT_SIZE as it is\n"
          "  --dry-run        print the plan only\n"
          "  --device D       INDEX, PLATFORM:INDEX (pocl:0) or part of a name (`datamux devices --help`)\n"
          "  other flags      as in `datamux config --help` (e.g. -N 5, --set task.max_length=64)\n"
          "DATAMUX_CLBLAST_TUNER_DIR: folder of the tuner binaries (default: $PATH; Debian package clblast-utils)\n");
}

int dmx_cmd_tune(int argc, char **argv) {
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    }
  dmx_tune_opts o = {.fraction = 100, .max_shapes = 3};
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  if (!rest) {
    fprintf(stderr, "datamux tune: out of memory\n");
    return 1;
  }
  int nrest = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--force")) {
      o.force = true;
    } else if (!strcmp(a, "--no-routine")) {
      o.no_routine = true;
    } else if (!strcmp(a, "--dry-run")) {
      o.dry_run = true;
    } else if ((!strcmp(a, "--fraction") || !strcmp(a, "--max-shapes") || !strcmp(a, "--device")) && i + 1 >= argc) {
      fprintf(stderr, "datamux tune: %s needs a value\n", a);
      free(rest);
      return 2;
    } else if (!strcmp(a, "--fraction")) {
      char *end;
      errno = 0;
      o.fraction = strtod(argv[++i], &end);
      if (*end || errno || !isfinite(o.fraction) || o.fraction < 1) {
        fprintf(stderr,
                "datamux tune: --fraction: '%s' is not a number >= 1 (1 explores everything, 100 one "
                "configuration in 100)\n",
                argv[i]);
        free(rest);
        return 2;
      }
    } else if (!strcmp(a, "--max-shapes")) {
      char *end;
      long k = strtol(argv[++i], &end, 10);
      if (*end || k < 1 || k > 16) {
        fprintf(stderr, "datamux tune: --max-shapes: '%s' is not a whole number in 1..16\n", argv[i]);
        free(rest);
        return 2;
      }
      o.max_shapes = (int)k;
    } else if (!strcmp(a, "--device")) {
      o.device = argv[++i];
    } else {
      rest[nrest++] = argv[i];
    }
  }
  if (nrest == 0 || rest[0][0] == '-') {
    fprintf(stderr, "datamux tune: give the experiment first: datamux tune EXP.yaml [flags] (see --help)\n");
    free(rest);
    return 2;
  }
  dmx_experiment *e = malloc(sizeof *e);
  if (!e) {
    fprintf(stderr, "datamux tune: out of memory\n");
    free(rest);
    return 1;
  }
  int rc = dmx_load_experiment_args("tune", nrest, rest, e);
  free(rest);
  if (rc == 0) rc = dmx_tune(e, &o);
  free(e);
  return rc;
}
