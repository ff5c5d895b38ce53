/* host/perf/bench_vision.c: the vision throughput table (vanilla row plus one per N) is filled with
 * positive numbers and written as CSV and JSON. Tiny: two timed batches per row. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/perf/bench_vision.h"
#include "tests/harness.h"

int main(void) {
  dmx_runtime *rt = dmx_runtime_create(NULL, false, stdout);
  th_begin("vision bench rows and files");
  dmx_experiment e;
  dmx_experiment_defaults(&e);
  e.vision.muxing = DMX_VMUX_ROTATION; /* cheap muxing keeps the test fast */
  e.train.batch_size = 8;
  int Ns[2] = {2, 4};
  dmx_vision_bench_row rows[3];
  dmx_error err = {{0}};
  int n = dmx_bench_vision(rt, &e, Ns, 2, 1, 2, rows, stdout, &err);
  CHECKF(n == 3, "rows %d: %s", n, err.msg);
  for (int i = 0; i < n && n == 3; i++) {
    CHECK(rows[i].images_per_second > 0 && rows[i].ms_per_batch > 0 && rows[i].device_bytes > 0);
    CHECK(rows[i].N == (i ? Ns[i - 1] : 1));
  }
  if (n == 3) {
    CHECK(!strcmp(rows[0].muxing, "none") && !strcmp(rows[1].muxing, "rotation"));
    CHECK(rows[0].speedup == 1.0 && rows[0].ref_images_per_second == 0);
    for (int i = 1; i < n; i++) /* each N against the plain model timed alongside it */
      CHECKF(rows[i].ref_images_per_second > 0 &&
                 fabs(rows[i].speedup - rows[i].images_per_second / rows[i].ref_images_per_second) < 1e-9,
             "row %d: speedup %g, %g images/s against %g alongside", i, rows[i].speedup, rows[i].images_per_second,
             rows[i].ref_images_per_second);
    char dir[] = "/tmp/datamux-vbench.XXXXXX";
    if (mkdtemp(dir)) {
      CHECKF(dmx_bench_vision_write(rt, dir, rows, n, &err) == 0, "%s", err.msg);
      char path[128], *text;
      snprintf(path, sizeof path, "%s/vision_throughput.csv", dir);
      text = dmx_read_file(path, NULL, &err);
      CHECKF(text && strstr(text, "N,muxing,images_per_second,plain_images_per_second_alongside,speedup") &&
                 strstr(text, "\n4,rotation,"),
             "%s", text ? text : err.msg);
      free(text);
      snprintf(path, sizeof path, "%s/vision_throughput.json", dir);
      text = dmx_read_file(path, NULL, &err);
      CHECKF(text && strstr(text, "\"benchmark\": \"vision_throughput\"") && strstr(text, "\"device\": ") &&
                 strstr(text, "\"label\": \"N=4\""),
             "%s", text ? text : err.msg);
      free(text);
      char cmd[160];
      snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
      if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    }
  }
  th_end();
  dmx_runtime_destroy(rt);
  return th_finish();
}
