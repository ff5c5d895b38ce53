/* `datamux bench`, end to end and small: bad flags give messages and status 2; the GEMM, build and
 * throughput benchmarks (micro model, N in {1,2}, 3 timed batches, synthetic ids) write CSV and
 * JSON files with the documented columns and positive numbers. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/common.h"
#include "tests/harness.h"

static char out[1 << 16];

static void expect_error(const char *args, const char *message) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "%s bench %s", th_datamux_bin(), args);
  int st = th_run(cmd, out, sizeof out);
  CHECKF(st == 2, "`datamux bench %s` exited %d, want 2; output:\n%s", args, st, out);
  CHECKF(strstr(out, message) != NULL, "`datamux bench %s`: no '%s' in:\n%s", args, message, out);
  CHECKF(strstr(out, "datamux bench:") != NULL, "`datamux bench %s`: message lacks the command name:\n%s", args, out);
}

/* Reads a CSV: the header line into header, the data rows (up to max) into rows. Returns the row count or -1. */
static int read_csv(const char *path, char *header, size_t hcap, char rows[][512], int max) {
  dmx_error err;
  size_t len;
  char *text = dmx_read_file(path, &len, &err);
  if (!text) {
    th_fail_at(__FILE__, __LINE__, "%s", err.msg);
    return -1;
  }
  int n = -1;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (n < 0) snprintf(header, hcap, "%s", line);
    else if (n < max) snprintf(rows[n], sizeof rows[n], "%s", line);
    n++;
  }
  free(text);
  return n < 0 ? 0 : n;
}

/* The idx-th comma-separated field of a row, as a number (fields hold no commas). */
static double field(const char *row, int idx) {
  const char *p = row;
  for (int i = 0; i < idx && p; i++) {
    p = strchr(p, ',');
    if (p) p++;
  }
  return p ? atof(p) : -1;
}

static bool file_has(const char *path, const char *what) {
  dmx_error err;
  size_t len;
  char *text = dmx_read_file(path, &len, &err);
  bool ok = text && strstr(text, what);
  free(text);
  return ok;
}

static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[4096];
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

int main(void) {
  const char *bin = th_datamux_bin();
  char dir[] = "/tmp/datamux-test-bench-XXXXXX";
  if (!mkdtemp(dir)) {
    fprintf(stderr, "mkdtemp failed\n");
    return 1;
  }
  char cmd[4096], header[512], rows[8][512], path[4200];

  th_begin("bad flags are reported");
  expect_error("", "nothing to measure");
  expect_error("--gemm --repeat 0", "--repeat: 0 is out of range");
  expect_error("--gemm --repeat x", "not a whole number");
  expect_error("--gemm --shapes nope", "unknown name 'nope'");
  expect_error("--build --files nope.cl", "unknown name 'nope.cl'");
  expect_error("--shapes tiny_qkv_fwd", "applies to --gemm");
  expect_error("-N 1,2", "give the experiment first");
  expect_error("experiments/quickstart.yaml -N 1,x", "comma-separated whole numbers");
  expect_error("experiments/quickstart.yaml -N 1,1", "listed twice");
  expect_error("experiments/quickstart.yaml -N 0", "out of range");
  expect_error("experiments/quickstart.yaml --batches 0", "out of range");
  expect_error("experiments/quickstart.yaml --max-seconds -1", "positive number of seconds");
  expect_error("experiments/quickstart.yaml --bogus", "unknown flag '--bogus'");
  expect_error("--gemm stray.yaml", "the experiment file goes first");
  expect_error("--gemm=yes", "takes no value");
  expect_error("--gemm --out", "needs a value");
  expect_error("no-such-experiment.yaml", "no-such-experiment.yaml");
  th_end();

  th_begin("--gemm writes gemm.csv and gemm.json");
  snprintf(cmd, sizeof cmd, "%s bench --gemm --shapes tiny_qkv_fwd,attn_scores --repeat 2 --out %s/g", bin, dir);
  int st = th_run(cmd, out, sizeof out);
  CHECKF(st == 0, "exit %d:\n%s", st, out);
  CHECKF(strstr(out, "CLBlast tuning: ") != NULL, "no tuning line:\n%s", out);
  snprintf(path, sizeof path, "%s/g/gemm.csv", dir);
  int n = read_csv(path, header, sizeof header, rows, 8);
  CHECKF(!strcmp(header, "shape,op,m,n,k,batch,reps,first_call_ms,ms,gflops,skipped"), "header '%s'", header);
  CHECKF(n == 2, "%d rows, want 2", n);
  for (int i = 0; i < n && i < 2; i++) {
    CHECKF(!strncmp(rows[i], i ? "attn_scores,NT,67,67,32,96," : "tiny_qkv_fwd,NT,1608,384,128,1,", 20), "row '%s'",
           rows[i]);
    CHECKF(field(rows[i], 6) >= 1 && field(rows[i], 8) > 0 && field(rows[i], 9) > 0 && field(rows[i], 10) == 0,
           "row '%s': reps, ms and GFLOP/s must be positive", rows[i]);
  }
  snprintf(path, sizeof path, "%s/g/gemm.json", dir);
  CHECK(file_has(path, "\"tuning_applied\": ") && file_has(path, "\"gflops\": ") && file_has(path, "\"device\": "));
  th_end();

  th_begin("--build writes build.csv and build.json");
  snprintf(cmd, sizeof cmd, "%s bench --build --files util.cl --out %s/b", bin, dir);
  st = th_run(cmd, out, sizeof out);
  CHECKF(st == 0, "exit %d:\n%s", st, out);
  snprintf(path, sizeof path, "%s/b/build.csv", dir);
  n = read_csv(path, header, sizeof header, rows, 8);
  CHECKF(!strcmp(header, "file,kernels,cold_s,write_s,hit_s,cache_written,cache_hit"), "header '%s'", header);
  CHECKF(n == 2, "%d rows, want util.cl and total", n);
  if (n == 2) {
    CHECKF(!strncmp(rows[0], "util.cl,", 8) && field(rows[0], 1) >= 1 && field(rows[0], 2) > 0 &&
               field(rows[0], 3) > 0 && field(rows[0], 4) > 0,
           "row '%s'", rows[0]);
    CHECKF(!strncmp(rows[1], "total,", 6), "row '%s'", rows[1]);
  }
  snprintf(path, sizeof path, "%s/b/build.json", dir);
  CHECK(file_has(path, "\"cold_s\": ") && file_has(path, "\"hit_s\": "));
  th_end();

  th_begin("throughput of the micro model for N in {1,2} writes throughput.csv and .json");
  snprintf(cmd, sizeof cmd,
           "%s bench experiments/quickstart.yaml --config_name experiments/models/micro.yaml --set task.max_length=16 "
           "-N 1,2 --batches 3 --warmup 1 --synthetic --out %s/t",
           bin, dir);
  st = th_run(cmd, out, sizeof out);
  CHECKF(st == 0, "exit %d:\n%s", st, out);
  CHECKF(strstr(out, "data: synthetic") != NULL, "no synthetic data line:\n%s", out);
  snprintf(path, sizeof path, "%s/t/throughput.csv", dir);
  n = read_csv(path, header, sizeof header, rows, 8);
  CHECKF(!strcmp(header, "label,N,groups,instances_per_batch,seq_len,batches,warmup,seconds,ms_per_batch,"
                         "ms_per_batch_median,instances_per_s,speedup,device_mib_allocated"),
         "header '%s'", header);
  CHECKF(n == 2, "%d rows, want 2", n);
  if (n == 2) {
    /* index demux: T = L + N + 1; groups 32 at N=1, 24 at N=2 */
    CHECKF(!strncmp(rows[0], "N=1,1,32,32,18,3,1,", 19), "row '%s'", rows[0]);
    CHECKF(!strncmp(rows[1], "N=2,2,24,48,19,3,1,", 19), "row '%s'", rows[1]);
    for (int i = 0; i < 2; i++)
      for (int f = 7; f <= 12; f++) CHECKF(field(rows[i], f) > 0, "row '%s': field %d not positive", rows[i], f);
    CHECKF(field(rows[0], 11) == 1.0, "speedup of N=1 is %g, want 1", field(rows[0], 11));
  }
  snprintf(path, sizeof path, "%s/t/throughput.json", dir);
  CHECK(file_has(path, "\"rows\": [") && file_has(path, "\"speedup_reference\": \"N=1\"") &&
        file_has(path, "\"instances_per_s\": "));
  th_end();

  remove_dir(strcat(strcpy(path, dir), "/g"));
  remove_dir(strcat(strcpy(path, dir), "/b"));
  remove_dir(strcat(strcpy(path, dir), "/t"));
  rmdir(dir);
  return th_finish();
}
