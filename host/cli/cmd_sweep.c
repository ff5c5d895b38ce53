/* `datamux sweep SWEEP.yaml [--dry-run] [--jobs J] [--collect] [--device LIST] [--data-dir D]`:
 * see host/run/sweep.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli/commands.h"
#include "host/run/sweep.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: datamux sweep SWEEP.yaml [--dry-run] [--jobs J] [--collect] [--device LIST] [--data-dir D]\n"
          "Runs every point of a sweep: one `datamux train` of the base experiment per point, with the point's\n"
          "overrides, in <output_dir>/<point name>. A sweep file:\n"
          "  base: experiments/quickstart.yaml   # the experiment every point starts from\n"
          "  output_dir: runs/sweep_n            # default runs/sweeps/<sweep file name>\n"
          "  grid:                               # every combination; any experiment key\n"
          "    multiplexing.num_instances: [1, 2, 5, 10]\n"
          "    training.seed: [42, 43]           # the seed axis: results are mean +- std over it\n"
          "  set:                                # every point\n"
          "    training.time_budget_seconds: 300\n"
          "  list:                               # explicit points (each combined with the grid's)\n"
          "    - {setting: baseline, multiplexing.num_instances: 1}\n"
          "Points with a results.json are skipped, points with a last/ checkpoint resume, so running the\n"
          "sweep again finishes it. Ctrl-C or SIGTERM: the running points write last/ and stop.\n"
          "  --dry-run     check the sweep and print its points and their state; run nothing\n"
          "  --jobs J      run J points at once, one per device: --device's list in turn, else GPU J mod the\n"
          "                GPUs, else all on the CPU with its cores shared (default 1)\n"
          "  --collect     only write the tables and plots from the results there are\n"
          "  --device SEL  a device (or SEL1,SEL2,... one per job) for every point; see `datamux devices`\n"
          "  --data-dir D  the data folder for every point\n"
          "Writes into output_dir: results.csv (a row per point, seeds averaged), runs.csv (a row per run),\n"
          "throughput.csv, results.md, metric.png and throughput.png (with gnuplot).\n");
}

int dmx_cmd_sweep(int argc, char **argv) {
  dmx_sweep_opts o = {.jobs = 1};
  const char *path = NULL;
  bool collect_only = false;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--dry-run")) {
      o.dry_run = true;
    } else if (!strcmp(a, "--collect")) {
      collect_only = true;
    } else if (!strcmp(a, "--jobs") || !strcmp(a, "--device") || !strcmp(a, "--data-dir")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "datamux sweep: %s needs a value\n", a);
        return 2;
      }
      const char *v = argv[++i];
      if (!strcmp(a, "--jobs")) {
        char *end;
        errno = 0;
        long j = strtol(v, &end, 10);
        if (end == v || *end || errno || j < 1 || j > 256) {
          fprintf(stderr, "datamux sweep: --jobs: '%s' is not a number of jobs from 1 to 256\n", v);
          return 2;
        }
        o.jobs = (int)j;
      } else if (!strcmp(a, "--device")) {
        o.devices = v;
      } else {
        o.data_dir = v;
      }
    } else if (a[0] == '-') {
      fprintf(stderr, "datamux sweep: unknown flag '%s' (see datamux sweep --help)\n", a);
      return 2;
    } else if (path) {
      fprintf(stderr, "datamux sweep: one sweep file at a time ('%s' and '%s')\n", path, a);
      return 2;
    } else {
      path = a;
    }
  }
  if (!path) {
    usage(stderr);
    return 2;
  }
  dmx_sweep s;
  dmx_error err = {{0}};
  if (dmx_sweep_load(&s, path, o.data_dir, &err)) {
    fprintf(stderr, "datamux sweep: %s\n", err.msg);
    return 2;
  }
  int rc;
  if (collect_only) {
    rc = dmx_sweep_collect(&s, &err) ? 1 : 0;
    if (rc) fprintf(stderr, "datamux sweep: %s\n", err.msg);
  } else {
    rc = dmx_sweep_run(&s, &o);
  }
  dmx_sweep_free(&s);
  return rc;
}
