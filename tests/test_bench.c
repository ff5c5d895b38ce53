/* `datamux bench`, end to end and small: bad flags give messages and status 2; the GEMM, build and
 * throughput benchmarks (micro model, N in {1,2}, 3 timed batches, synthetic ids) write CSV and
 * JSON files with the documented columns and positive numbers; the training benchmark's op-level
 * breakdown adds up to the measured step and counts the GEMMs a step makes; the peak cache round
 * trips; `datamux tune` resumes (a fake tuner counts its runs). */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/base/common.h"
#include "host/perf/peak.h"
#include "host/runtime/gemm.h"
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
    if (n < 0)
      snprintf(header, hcap, "%s", line);
    else if (n < max)
      snprintf(rows[n], sizeof rows[n], "%s", line);
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

/* The number after "key": in a JSON text (the first occurrence after `from`), or -1. */
static double json_num(const char *text, const char *from, const char *key) {
  const char *p = from ? strstr(text, from) : text;
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\": ", key);
  p = p ? strstr(p, pat) : NULL;
  return p ? atof(p + strlen(pat)) : -1;
}

static int count_lines(const char *path) {
  dmx_error err;
  size_t len;
  char *text = dmx_read_file(path, &len, &err);
  if (!text) return 0;
  int n = 0;
  for (size_t i = 0; i < len; i++) n += text[i] == '\n';
  free(text);
  return n;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* A stand-in for clblast_tuner_xgemm(_direct): logs its arguments, fails when FAKE_TUNER_FAIL is set,
 * else writes one result into the current folder as the real tuner does. */
static void write_fake_tuner(const char *dir, const char *name, const char *family, const char *params) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) {
    th_fail_at(__FILE__, __LINE__, "cannot write %s", path);
    return;
  }
  fprintf(f,
          "#!/bin/sh\necho \"$(basename \"$0\") $*\" >> \"$FAKE_TUNER_LOG\"\n"
          "[ -n \"$FAKE_TUNER_FAIL\" ] && { echo failing on purpose; exit 3; }\n"
          "echo '* (1/1) fake tuning'\n"
          "printf '{\"kernel_family\": \"%s\", \"precision\": \"32\", \"best_time\": \"1.50\", "
          "\"best_parameters\": \"%s PRECISION=32\"}\\n' > clblast_%s_32.json\n",
          family, params, family);
  fclose(f);
  chmod(path, 0755);
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
  CHECKF(!strcmp(header, "shape,op,m,n,k,batch,reps,first_call_ms,ms,gflops,blas_gflops,skipped"), "header '%s'",
         header);
  CHECKF(n == 2, "%d rows, want 2", n);
  for (int i = 0; i < n && i < 2; i++) {
    CHECKF(!strncmp(rows[i], i ? "attn_scores,NT,67,67,32,96," : "tiny_qkv_fwd,NT,1608,384,128,1,", 20), "row '%s'",
           rows[i]);
    /* the direct-BLAS column is 0 only in a build without a BLAS */
    CHECKF(field(rows[i], 6) >= 1 && field(rows[i], 8) > 0 && field(rows[i], 9) > 0 &&
               (field(rows[i], 10) > 0) == dmx_host_blas_built() && field(rows[i], 11) == 0,
           "row '%s': reps, ms, GFLOP/s (and BLAS GFLOP/s) must be positive", rows[i]);
  }
  snprintf(path, sizeof path, "%s/g/gemm.json", dir);
  CHECK(file_has(path, "\"tuning_applied\": ") && file_has(path, "\"gflops\": ") && file_has(path, "\"device\": ") &&
        file_has(path, "\"gemm_backend\": ") && file_has(path, "\"blas_gflops\": "));
  th_end();

  th_begin("--build writes build.csv and build.json, building each file as the runtime does (prelude first)");
  /* optim.cl calls the prelude's dmx_group_sum: it builds only with the prelude in front */
  snprintf(cmd, sizeof cmd, "%s bench --build --files optim.cl --out %s/b", bin, dir);
  st = th_run(cmd, out, sizeof out);
  CHECKF(st == 0, "exit %d:\n%s", st, out);
  snprintf(path, sizeof path, "%s/b/build.csv", dir);
  n = read_csv(path, header, sizeof header, rows, 8);
  CHECKF(!strcmp(header, "file,kernels,cold_s,write_s,hit_s,cache_written,cache_hit"), "header '%s'", header);
  CHECKF(n == 2, "%d rows, want optim.cl and total", n);
  if (n == 2) {
    CHECKF(!strncmp(rows[0], "optim.cl,", 9) && field(rows[0], 1) >= 1 && field(rows[0], 2) > 0 &&
               field(rows[0], 3) > 0 && field(rows[0], 4) > 0,
           "row '%s'", rows[0]);
    CHECKF(!strncmp(rows[1], "total,", 6), "row '%s'", rows[1]);
  }
  snprintf(path, sizeof path, "%s/b/build.json", dir);
  CHECK(file_has(path, "\"cold_s\": ") && file_has(path, "\"hit_s\": "));
  th_end();

  th_begin("bench JSON records where it was measured; report puts two devices side by side");
  {
    /* PoCL and, when installed, Oclgrind (a build is quick even there); else PoCL twice */
    snprintf(cmd, sizeof cmd, "%s devices", bin);
    th_run(cmd, out, sizeof out);
    const char *second = strstr(out, "Oclgrind") ? "oclgrind:0" : "pocl:0";
    const char *devs[2] = {"pocl:0", second};
    for (int d = 0; d < 2; d++) {
      snprintf(cmd, sizeof cmd, "%s bench --build --files util.cl --device %s --out %s/r%d", bin, devs[d], dir, d);
      st = th_run(cmd, out, sizeof out);
      CHECKF(st == 0, "%s: exit %d:\n%s", devs[d], st, out);
    }
    snprintf(path, sizeof path, "%s/r1/build.json", dir);
    const char *keys[] = {"\"device\": ", "\"platform\": ", "\"driver_version\": ", "\"clblast_version\": ",
                          "\"gemm_backend\": ", "\"tuning_state\": ", "\"commit\": ", "\"date\": ", "\"host\": "};
    for (int k = 0; k < 9; k++) CHECKF(file_has(path, keys[k]), "%s lacks %s", path, keys[k]);
    snprintf(cmd, sizeof cmd, "%s report %s/r0/build.json %s/r1/build.json --out %s/rep", bin, dir, dir, dir);
    st = th_run(cmd, out, sizeof out);
    CHECKF(st == 0, "report: exit %d:\n%s", st, out);
    /* the table: a header cell per device, and the util.cl row with a number in each column */
    char *head = strstr(out, "\n| |");
    int cols = 0;
    if (head)
      for (char *c = head + 4; *c && *c != '\n'; c++) cols += *c == '|';
    CHECKF(cols == 2, "%d columns in the table header:\n%s", cols, out);
    char *row = strstr(out, "| **util.cl** |");
    double a = 0, b = 0;
    CHECKF(row && sscanf(row, "| **util.cl** | %lf | %lf |", &a, &b) == 2 && a > 0 && b > 0, "util.cl row:\n%s",
           out);
    CHECKF(strstr(out, "| platform |") && strstr(out, "| commit |"), "no header rows:\n%s", out);
    if (!strcmp(second, "oclgrind:0")) CHECKF(strstr(out, "Oclgrind"), "no Oclgrind column:\n%s", out);
    snprintf(path, sizeof path, "%s/rep/report.csv", dir);
    CHECK(file_has(path, "build,util.cl,"));
    /* a file that is not a bench JSON is refused, naming it */
    snprintf(cmd, sizeof cmd, "%s report %s/r0/build.csv", bin, dir);
    st = th_run(cmd, out, sizeof out);
    CHECKF(st == 2 && strstr(out, "build.csv"), "a CSV: exit %d:\n%s", st, out);
    /* --all-devices: a folder per device found (simulators left out), which report takes whole */
    snprintf(cmd, sizeof cmd, "%s bench --build --files util.cl --all-devices --out %s/all", bin, dir);
    st = th_run(cmd, out, sizeof out);
    CHECKF(st == 0, "--all-devices: exit %d:\n%s", st, out);
    if (!strcmp(second, "oclgrind:0")) CHECKF(strstr(out, "skipped (a simulator"), "Oclgrind not skipped:\n%s", out);
    int timed = 0;
    snprintf(path, sizeof path, "%s/all", dir);
    DIR *d = opendir(path);
    for (struct dirent *de; d && (de = readdir(d));) {
      char json[1024];
      snprintf(json, sizeof json, "%s/all/%s/build.json", dir, de->d_name);
      if (de->d_name[0] == '.' || access(json, R_OK) != 0) continue;
      CHECKF(de->d_name[0] >= '0' && de->d_name[0] <= '9' && strchr(de->d_name, '_'), "folder '%s'", de->d_name);
      CHECKF(!strstr(de->d_name, "Oclgrind"), "a simulator was timed: %s", de->d_name);
      timed++;
    }
    if (d) closedir(d);
    CHECKF(timed >= 1, "--all-devices wrote no build.json under %s:\n%s", path, out);
    snprintf(cmd, sizeof cmd, "%s report %s/all/*/build.json", bin, dir);
    st = th_run(cmd, out, sizeof out);
    CHECKF(st == 0 && strstr(out, "| **util.cl** |"), "report of --all-devices: exit %d:\n%s", st, out);
  }
  th_end();

  th_begin("throughput of the micro model for N in {1,2} writes throughput.csv and .json");
  snprintf(cmd, sizeof cmd,
           "%s bench experiments/quickstart.yaml --config_name experiments/models/micro.yaml --set task.max_length=16 "
           "-d index -N 1,2 --batches 3 --warmup 1 --profile-batches 2 --synthetic --out %s/t",
           bin, dir);
  st = th_run(cmd, out, sizeof out);
  CHECKF(st == 0, "exit %d:\n%s", st, out);
  CHECKF(strstr(out, "data: synthetic") != NULL, "no synthetic data line:\n%s", out);
  CHECKF(strstr(out, "op breakdown") && strstr(out, "coverage %") && strstr(out, "N=2:\ntop "), "no op breakdown:\n%s",
         out);
  snprintf(path, sizeof path, "%s/t/throughput.csv", dir);
  n = read_csv(path, header, sizeof header, rows, 8);
  CHECKF(!strcmp(header,
                 "label,N,groups,instances_per_batch,seq_len,batches,warmup,seconds,ms_per_batch,"
                 "ms_per_batch_median,instances_per_s,reference_instances_per_s_alongside,speedup,"
                 "device_mib_allocated"),
         "header '%s'", header);
  CHECKF(n == 2, "%d rows, want 2", n);
  if (n == 2) {
    /* index demux: T = L + N + 1; groups 32 at N=1, 24 at N=2 */
    CHECKF(!strncmp(rows[0], "N=1,1,32,32,18,3,1,", 19), "row '%s'", rows[0]);
    CHECKF(!strncmp(rows[1], "N=2,2,24,48,19,3,1,", 19), "row '%s'", rows[1]);
    for (int i = 0; i < 2; i++)
      for (int f = 7; f <= 13; f++)
        if (i == 1 || f != 11) CHECKF(field(rows[i], f) > 0, "row '%s': field %d not positive", rows[i], f);
    /* N=1 is the reference: no model alongside it, speedup 1; N=2's speedup is over the N=1 model timed with it */
    CHECKF(field(rows[0], 12) == 1.0, "speedup of N=1 is %g, want 1", field(rows[0], 12));
    double sp = field(rows[1], 10) / field(rows[1], 11);
    CHECKF(fabs(field(rows[1], 12) - sp) < 2e-3 * sp,
           "N=2 speedup %g, want %g (instances/s over the reference alongside)", field(rows[1], 12), sp);
  }
  snprintf(path, sizeof path, "%s/t/throughput.json", dir);
  CHECK(file_has(path, "\"rows\": [") && file_has(path, "\"speedup_reference\": \"N=1\"") &&
        file_has(path, "\"instances_per_s\": "));
  {
    dmx_error err;
    size_t len;
    char *js = dmx_read_file(path, &len, &err);
    CHECKF(js != NULL, "%s", err.msg);
    if (js) {
      /* eval: one QKV product per layer (micro: 2); N=2, index demux: B*T = 24*19 rows, d = 64 */
      const char *n2 = strstr(js, "\"label\": \"N=2\"");
      CHECKF(n2 && json_num(n2, "\"profile\"", "batches") == 2, "N=2 profile:\n%s", js);
      CHECKF(n2 && json_num(n2, "\"command\": \"qkv 456x192x64 NT\"", "count_per_step") == 2, "N=2 qkv:\n%s", js);
      CHECKF(n2 && json_num(n2, "\"command\": \"embed_ln_mux_hadamard_rows\"", "count_per_step") == 1,
             "N=2: the fused embedding + mux kernel once per batch:\n%s", js);
      free(js);
    }
  }
  expect_error("experiments/quickstart.yaml --train --profile-batches 2", "throughput flag");
  th_end();

  th_begin("bench --train: flags, and a breakdown that adds up to the measured step");
  expect_error("experiments/quickstart.yaml --train --steps 0", "--steps: 0 is out of range");
  expect_error("--train", "needs the experiment first");
  expect_error("experiments/quickstart.yaml --steps 3", "applies to --train");
  expect_error("experiments/quickstart.yaml --train -N 1,2", "throughput flag");
  snprintf(cmd, sizeof cmd,
           "%s bench experiments/quickstart.yaml --config_name experiments/models/micro.yaml --set task.max_length=16 "
           "-d index --set training.task_loss_coeff=0.9 --set training.retrieval_loss_coeff=0.1 --train --warmup 1 "
           "--steps 1 --profile-steps 2 --synthetic --out %s/tr",
           bin, dir);
  st = th_run(cmd, out, sizeof out);
  CHECKF(st == 0, "exit %d:\n%s", st, out);
  CHECKF(strstr(out, "coverage: ") && strstr(out, "instances/s") && strstr(out, "tokens/s"), "output:\n%s", out);
  snprintf(path, sizeof path, "%s/tr/train.json", dir);
  {
    dmx_error err;
    size_t len;
    char *js = dmx_read_file(path, &len, &err);
    CHECKF(js != NULL, "%s", err.msg);
    if (js) {
      double step = json_num(js, "\"profile\"", "seconds_per_step"), sum = json_num(js, NULL, "sum_seconds_per_step");
      double cov = json_num(js, NULL, "coverage");
      /* every command of the step is in a category: what is missing are the gaps between commands */
      CHECKF(step > 0 && sum > 0 && cov >= 0.80 && cov <= 1.02, "profiled step %g s, categories %g s, coverage %g",
             step, sum, cov);
      CHECKF(fabs(sum / step - cov) < 1e-3, "coverage %g is not sum/step %g", cov, sum / step);
      /* micro: 2 layers; a linear layer makes 3 GEMMs per step (forward, dX, dW), attention 6 per layer;
       * the retrieval vocabulary projection 3 per block */
      CHECKF(json_num(js, "\"gemm_qkv\"", "count_per_step") == 6, "gemm_qkv count:\n%s", js);
      CHECKF(json_num(js, "\"gemm_ffn_down\"", "count_per_step") == 6, "gemm_ffn_down count:\n%s", js);
      CHECKF(json_num(js, "\"gemm_attention\"", "count_per_step") == 12, "gemm_attention count:\n%s", js);
      CHECKF(json_num(js, "\"gemm_vocab\"", "count_per_step") == 3, "gemm_vocab count:\n%s", js);
      CHECKF(!strstr(js, "\"gemm_other\""), "a GEMM ran under no scope:\n%s", js);
      /* qkv forward: 2 (B*T) d (3d) per layer, B*T = 24*19 (index demux, N=2, L=16), d = 64, 3 products */
      double want = 2.0 * 24 * 19 * 64 * 192 * 3 * 2 / 1e9;
      CHECKF(fabs(json_num(js, "\"gemm_qkv\"", "gflop_per_step") - want) < 1e-4, "gemm_qkv GFLOP/step, want %g", want);
      CHECKF(json_num(js, NULL, "instances_per_s") > 0 && json_num(js, NULL, "tokens_per_s") > 0, "rates:\n%s", js);
      /* per command: the QKV forward, dX and dW once per layer each, and the commands add up to the categories */
      CHECKF(json_num(js, "\"command\": \"qkv 456x192x64 NT\"", "count_per_step") == 2, "qkv forward:\n%s", js);
      CHECKF(json_num(js, "\"command\": \"qkv 192x64x456 TN\"", "count_per_step") == 2, "qkv dW:\n%s", js);
      double cmd_sum = 0;
      const char *c = strstr(js, "\"commands\": ["), *end = c ? strchr(c, ']') : NULL;
      for (const char *q = c; q && end && (q = strstr(q, "\"seconds_per_step\": ")) && q < end; q++)
        cmd_sum += atof(q + strlen("\"seconds_per_step\": "));
      CHECKF(c && fabs(cmd_sum - sum) <= 1e-5 + 1e-3 * sum, "commands add up to %g s, categories to %g s", cmd_sum,
             sum);
      free(js);
    }
  }
  snprintf(path, sizeof path, "%s/tr/train.csv", dir);
  n = read_csv(path, header, sizeof header, rows, 8);
  CHECKF(!strcmp(header, "category,kind,ms_per_step,share_of_step,count_per_step,gflop_per_step,gflops"), "header '%s'",
         header);
  th_end();

  th_begin("the peak cache round trips, and a missing or broken file says what to do");
  {
    dmx_peak p = {.sgemm_gflops = 1234.5,
                  .sgemm_size = 2048,
                  .tuned = true,
                  .d2d_gbps = 800.25,
                  .h2d_gbps = 12.5,
                  .d2h_gbps = 13.75,
                  .seconds = 9};
    snprintf(p.device, sizeof p.device, "Some \"GPU\" 9000");
    snprintf(p.platform, sizeof p.platform, "Plat");
    snprintf(p.driver, sizeof p.driver, "1.2");
    snprintf(p.measured_at, sizeof p.measured_at, "2026-11-29T07:00:00Z");
    dmx_error err = {{0}};
    snprintf(path, sizeof path, "%s/peak/dev.json", dir);
    CHECKF(dmx_peak_save(&p, path, &err) == 0, "%s", err.msg);
    dmx_peak q;
    CHECKF(dmx_peak_load(path, &q, &err) == 0, "%s", err.msg);
    CHECKF(q.sgemm_gflops == 1234.5 && q.sgemm_size == 2048 && q.tuned && q.d2d_gbps == 800.25 && q.h2d_gbps == 12.5 &&
               q.d2h_gbps == 13.75 && !strcmp(q.device, p.device) && !strcmp(q.measured_at, p.measured_at),
           "loaded %g %d %d %g %g %g '%s'", q.sgemm_gflops, q.sgemm_size, q.tuned, q.d2d_gbps, q.h2d_gbps, q.d2h_gbps,
           q.device);
    snprintf(path, sizeof path, "%s/peak/none.json", dir);
    CHECK(dmx_peak_load(path, &q, &err) == -1 && strstr(err.msg, "datamux devices --peak"));
    snprintf(path, sizeof path, "%s/peak/bad.json", dir);
    CHECK(dmx_write_file_atomic(path, "{\"device\": 3}", 13, &err) == 0);
    CHECK(dmx_peak_load(path, &q, &err) == -1 && strstr(err.msg, "not a peak file"));
    snprintf(path, sizeof path, "%s/peak/dev.json", dir);
    unlink(path);
    unlink(strcat(strcpy(path, dir), "/peak/bad.json"));
    rmdir(strcat(strcpy(path, dir), "/peak"));
  }
  th_end();

  th_begin("tune runs each tuner once per shape, resumes, retries failures and installs the winners");
  {
    char tuners[256], cache[256], log[256], devdir[4096] = "", tune_cmd[2048], cmd2[2200];
    snprintf(tuners, sizeof tuners, "%s/tuners", dir);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    snprintf(log, sizeof log, "%s/tuners.log", dir);
    mkdir(tuners, 0755);
    write_fake_tuner(tuners, "clblast_tuner_xgemm", "xgemm_1",
                     "GEMMK=0 KREG=1 KWG=32 KWI=2 MDIMA=8 MDIMC=8 MWG=64 NDIMB=8 NDIMC=8 NWG=64 SA=1 SB=1 STRM=0 "
                     "STRN=0 VWM=4 VWN=4");
    write_fake_tuner(tuners, "clblast_tuner_xgemm_direct", "xgemm_direct_1",
                     "KWID=2 MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=1 PADB=1 VWMD=1 VWND=1 WGD=32");
    snprintf(tune_cmd, sizeof tune_cmd,
             "XDG_CACHE_HOME=%s DATAMUX_CLBLAST_TUNER_DIR=%s FAKE_TUNER_LOG=%s %s tune experiments/quickstart.yaml "
             "--config_name experiments/models/micro.yaml --set task.max_length=16 --max-shapes 1 --no-routine",
             cache, tuners, log, bin);
    /* the device folder, from the dry run's "results:" line */
    snprintf(cmd2, sizeof cmd2, "%s --dry-run", tune_cmd);
    st = th_run(cmd2, out, sizeof out);
    CHECKF(st == 0, "exit %d:\n%s", st, out);
    char *r = strstr(out, "results: ");
    if (r)
      snprintf(devdir, sizeof devdir, "%.*s", (int)(strstr(r, "/tuning ") ? strstr(r, "/tuning ") - r - 9 : 0), r + 9);
    CHECKF(devdir[0] && !exists(log), "dry run: device folder '%s', tuner log %s:\n%s", devdir,
           exists(log) ? "written" : "absent", out);
    /* an older file for Xgemm in the device folder is moved aside when the new one is installed */
    char older[4200], inst[4200], prev[4200];
    snprintf(older, sizeof older, "%s/clblast_xgemm_1_32.json", devdir);
    CHECK(dmx_mkdirs(devdir, NULL) == 0);
    const char *older_json = "{\"kernel_family\": \"xgemm_1\"}";
    CHECK(dmx_write_file_atomic(older, older_json, strlen(older_json), NULL) == 0);
    st = th_run(tune_cmd, out, sizeof out);
    CHECKF(st == 0 && count_lines(log) == 2, "first run: exit %d, %d tuner runs (want 2):\n%s", st, count_lines(log),
           out);
    snprintf(inst, sizeof inst, "%s/clblast_xgemm_32.json", devdir);
    snprintf(prev, sizeof prev, "%s/tuning/previous/clblast_xgemm_1_32.json", devdir);
    CHECKF(exists(inst) && !exists(older) && exists(prev), "install: %d, older moved: %d", exists(inst), exists(prev));
    snprintf(inst, sizeof inst, "%s/clblast_xgemm_direct_32.json", devdir);
    CHECK(exists(inst) && file_has(inst, "\"best_parameters\": \"KWID=2"));
    /* resume: nothing left to tune */
    st = th_run(tune_cmd, out, sizeof out);
    CHECKF(st == 0 && count_lines(log) == 2 && strstr(out, "[done]"), "second run: exit %d, %d tuner runs:\n%s", st,
           count_lines(log), out);
    /* one result gone: only that shape runs again */
    char res[4400];
    snprintf(res, sizeof res, "%s/tuning", devdir);
    DIR *d = opendir(res);
    struct dirent *e;
    while (d && (e = readdir(d)))
      if (!strncmp(e->d_name, "xgemm_direct_", 13)) snprintf(res, sizeof res, "%s/tuning/%s", devdir, e->d_name);
    if (d) closedir(d);
    CHECKF(unlink(res) == 0, "no direct result in %s/tuning", devdir);
    st = th_run(tune_cmd, out, sizeof out);
    CHECKF(st == 0 && count_lines(log) == 3 && exists(res), "after removing %s: exit %d, %d tuner runs:\n%s", res, st,
           count_lines(log), out);
    /* a failing tuner: exit 1 with the log's path; the earlier results stay */
    snprintf(cmd2, sizeof cmd2, "FAKE_TUNER_FAIL=1 %s --force", tune_cmd);
    st = th_run(cmd2, out, sizeof out);
    CHECKF(st == 1 && strstr(out, "wrote no result") && strstr(out, "tuner.log") && exists(res),
           "failing tuner: exit %d:\n%s", st, out);
  }
  th_end();

  remove_dir(strcat(strcpy(path, dir), "/g"));
  remove_dir(strcat(strcpy(path, dir), "/b"));
  remove_dir(strcat(strcpy(path, dir), "/t"));
  remove_dir(strcat(strcpy(path, dir), "/tr"));
  remove_dir(strcat(strcpy(path, dir), "/tuners"));
  unlink(strcat(strcpy(path, dir), "/tuners.log"));
  snprintf(cmd, sizeof cmd, "rm -rf '%s/cache'", dir); /* a tree of our own making, under our mkdtemp folder */
  if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s/cache\n", dir);
  rmdir(dir);
  return th_finish();
}
