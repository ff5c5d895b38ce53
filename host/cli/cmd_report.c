/* `datamux report A.json B.json ... [--out DIR]`: see host/perf/report.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli/commands.h"
#include "host/perf/report.h"

int dmx_cmd_report(int argc, char **argv) {
  const char **paths = dmx_calloc((size_t)argc + 1, sizeof *paths);
  const char *out = NULL;
  int n = 0, rc = 2;
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      printf(
          "usage: datamux report A.json B.json ... [--out DIR]\n"
          "Puts the JSON files of `datamux bench` (throughput.json, gemm.json, build.json, train.json,\n"
          "vision_throughput.json) from any number of devices and machines side by side: per benchmark a\n"
          "table with a column per file, headed by\n"
          "the device, platform, driver, GEMM backend, library versions, tuning, commit, date and host it was\n"
          "measured with. With --out DIR also report.md, report.csv and report.png (throughput against N).\n"
          "`datamux bench EXP.yaml --all-devices` writes one such file per device.\n");
      rc = 0;
      goto done;
    } else if (!strcmp(argv[i], "--out")) {
      if (i + 1 >= argc || !argv[i + 1][0]) {
        fprintf(stderr, "datamux report: --out needs a folder\n");
        goto done;
      }
      out = argv[++i];
    } else if (argv[i][0] == '-') {
      fprintf(stderr, "datamux report: unknown flag '%s' (see datamux report --help)\n", argv[i]);
      goto done;
    } else {
      paths[n++] = argv[i];
    }
  }
  if (n == 0) {
    fprintf(stderr, "datamux report: give the benchmark JSON files (datamux report A.json B.json [--out DIR])\n");
    goto done;
  }
  dmx_error err = {{0}};
  if (dmx_report(paths, n, out, &err)) {
    fprintf(stderr, "datamux report: %s\n", err.msg);
    rc = 2; /* an unreadable or foreign file: bad input */
  } else {
    rc = 0;
  }
done:
  free(paths);
  return rc;
}
