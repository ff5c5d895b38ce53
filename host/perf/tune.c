/* `datamux tune`: the plan (which shapes, which tuner), running the tuners with resume, and picking
 * the parameters host/runtime/gemm_clblast.c applies. The direct/indirect threshold is in host/perf/tune_routine.c. */
#include "host/perf/tune.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/base/json.h"
#include "host/perf/bench_common.h"
#include "host/runtime/runtime.h"
#include "host/perf/tune_internal.h"
#include "host/runtime/gemm.h"

/* ------------------------------------------------------------------ the experiment's GEMMs */

static void add(tune_shape *s, int *n, const char *role, bool batched, bool ta, bool tb, size_t m, size_t nn, size_t k,
                size_t batch, double count) {
  if (*n == TUNE_MAX_SHAPES) return;
  s[(*n)++] = (tune_shape){role, batched, ta, tb, m, nn, k, batch ? batch : 1, count};
}

/* A linear layer of R rows, C inputs, OC outputs: forward NT (R, OC, C); training adds dX NN
 * (R, C, OC) and dW TN (OC, C, R) (layers/linear.c). */
static void linear(tune_shape *s, int *n, const char *role, size_t R, size_t C, size_t OC, double count) {
  add(s, n, role, false, false, true, R, OC, C, 1, count);
  add(s, n, role, false, false, false, R, C, OC, 1, count);
  add(s, n, role, false, true, false, OC, C, R, 1, count);
}

int dmx_tune_shapes(const dmx_experiment *e, tune_shape *s) {
  int n = 0;
  bool baseline = e->setting == DMX_SETTING_BASELINE;
  int N = baseline ? 1 : e->mux.num_instances;
  size_t B = (size_t)(e->train.batch_size > 0 ? e->train.batch_size : dmx_base_batch_size(N));
  size_t T = (size_t)e->task.max_length + (!baseline && e->mux.demuxing == DMX_DEMUX_INDEX ? (size_t)N + 1 : 0);
  size_t d = (size_t)e->model.hidden_size, I = (size_t)e->model.intermediate_size, H = (size_t)e->model.num_heads;
  size_t V = (size_t)e->model.vocab_size, BT = B * T, hd = d / (H ? H : 1);
  double L = e->model.num_layers;
  linear(s, &n, "qkv", BT, d, 3 * d, L);
  linear(s, &n, "attn_out", BT, d, d, L);
  linear(s, &n, "ffn_up", BT, d, I, L);
  linear(s, &n, "ffn_down", BT, I, d, L);
  /* attention (layers/attention.c): scores and P V forward, dv, dP, dq, dk backward */
  add(s, &n, "attention", true, false, true, T, T, hd, B * H, L);
  add(s, &n, "attention", true, false, false, T, hd, T, B * H, 2 * L);
  add(s, &n, "attention", true, true, false, T, hd, T, B * H, 2 * L);
  add(s, &n, "attention", true, false, true, T, T, hd, B * H, L);
  if (!baseline && e->train.retrieval_loss_coeff > 0) {
    /* the rows the retrieval head scores: about retrieval_percentage of the muxed positions, in
     * blocks of at most 512 (RETRIEVAL_BLOCK_ROWS) */
    double S = (double)BT * (e->train.retrieval_percentage > 0 ? e->train.retrieval_percentage : 1.0);
    size_t rows = S > 512 ? 512 : (size_t)(S < 1 ? 1 : S);
    linear(s, &n, "vocab", rows, d, V, S > 512 ? S / 512 : 1);
  }
  return n;
}

/* ------------------------------------------------------------------ files and folders */

void dmx_tune_device_dir(const dmx_runtime *rt, char *out, size_t cap) {
  char dev[256];
  dmx_device_folder_name(rt->info.name, dev, sizeof dev);
  snprintf(out, cap, "%s/clblast/%s", dmx_cache_dir(), dev);
}

/* Scratch folders hold the tuners' output only; failing to delete one is worth a warning, not a stop. */
static void remove_flat_dir(const char *dir) {
  dmx_error err;
  if (dmx_remove_flat_dir(dir, &err)) fprintf(stderr, "datamux tune: warning: %s\n", err.msg);
}

/* Scratch folders of runs that were stopped: ".tmp-*" in the tuning folder. */
static void remove_stale_scratch(const char *tuning) {
  DIR *d = opendir(tuning);
  if (!d) return;
  struct dirent *e;
  char path[8192];
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, ".tmp-", 5) != 0) continue;
    snprintf(path, sizeof path, "%s/%s", tuning, e->d_name);
    remove_flat_dir(path);
  }
  closedir(d);
}

/* ------------------------------------------------------------------ running one tuner */

/* The index of the device's platform among all platforms, and of the device within it: the
 * tuners' -platform and -device. */
static int tuner_indices(const dmx_runtime *rt, int *plat, int *dev, dmx_error *err) {
  cl_uint np = 0;
  DMX_CL_CHECK(clGetPlatformIDs(0, NULL, &np));
  cl_platform_id ps[64];
  DMX_CL_CHECK(clGetPlatformIDs(np < 64 ? np : 64, ps, NULL));
  for (cl_uint p = 0; p < np && p < 64; p++) {
    if (ps[p] != rt->info.platform) continue;
    cl_uint nd = 0;
    DMX_CL_CHECK(clGetDeviceIDs(ps[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd));
    cl_device_id ds[64];
    DMX_CL_CHECK(clGetDeviceIDs(ps[p], CL_DEVICE_TYPE_ALL, nd < 64 ? nd : 64, ds, NULL));
    for (cl_uint i = 0; i < nd && i < 64; i++)
      if (ds[i] == rt->info.device) {
        *plat = (int)p;
        *dev = (int)i;
        return 0;
      }
  }
  return dmx_fail(err, "cannot find %s among the OpenCL platforms for the tuner's -platform/-device", rt->info.name);
}

static bool has_quote(const char *s) { return strchr(s, '\'') != NULL; }

/* The tuner binary: $DATAMUX_CLBLAST_TUNER_DIR/<name>, else <name> on $PATH. 0 or -1 with a hint. */
static int tuner_path(const char *name, char *out, size_t cap, dmx_error *err) {
  const char *dir = getenv("DATAMUX_CLBLAST_TUNER_DIR");
  if (dir && *dir) {
    snprintf(out, cap, "%s/%s", dir, name);
    if (access(out, X_OK) != 0)
      return dmx_fail(err, "%s is not an executable (DATAMUX_CLBLAST_TUNER_DIR is set to '%s')", out, dir);
    return 0;
  }
  char cmd[256];
  snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
  if (system(cmd) != 0)
    return dmx_fail(err, "%s is not installed: apt-get install clblast-utils (scripts/install-deps.sh does it)", name);
  snprintf(out, cap, "%s", name);
  return 0;
}

/* Runs the tuner of item `it` in a scratch folder, showing progress, and keeps its best result as
 * it->result (atomically). 0, or -1 with err (the scratch folder and the tuner's log are kept). */
static int run_tuner(const dmx_runtime *rt, const tune_item *it, const char *tuning, double fraction, int idx,
                     int total, dmx_error *err) {
  const char *bin_name = it->direct ? "clblast_tuner_xgemm_direct" : "clblast_tuner_xgemm";
  char bin[4096], scratch[4400], cmd[9000], log_path[4500];
  if (tuner_path(bin_name, bin, sizeof bin, err)) return -1;
  int plat = 0, dev = 0;
  if (tuner_indices(rt, &plat, &dev, err)) return -1;
  snprintf(scratch, sizeof scratch, "%s/.tmp-%s-XXXXXX", tuning, it->name);
  if (!mkdtemp(scratch)) return dmx_fail(err, "cannot create a scratch folder in %s: %s", tuning, strerror(errno));
  if (has_quote(scratch) || has_quote(bin))
    return dmx_fail(err, "the cache or tuner path has a quote character: set XDG_CACHE_HOME to a plain path");
  snprintf(log_path, sizeof log_path, "%s/tuner.log", scratch);
  /* the tuners write their JSON into the current folder, hence the cd; into a pipe their printf
   * output would be block-buffered and the progress would arrive at the end: stdbuf -oL when there */
  bool line_buffered = system("command -v stdbuf >/dev/null 2>&1") == 0;
  snprintf(cmd, sizeof cmd,
           "cd '%s' && exec %s'%s' -precision 32 -m %zu -n %zu -k %zu -fraction %g -platform %d "
           "-device %d 2>&1",
           scratch, line_buffered ? "stdbuf -oL " : "", bin, it->m, it->n, it->k, fraction, plat, dev);
  FILE *log = fopen(log_path, "w");
  if (!log) return dmx_fail(err, "cannot write %s: %s", log_path, strerror(errno));
  printf("[%d/%d] %s -m %zu -n %zu -k %zu -fraction %g (log: %s)\n", idx, total, bin_name, it->m, it->n, it->k,
         fraction, log_path);
  fflush(stdout);
  FILE *p = popen(cmd, "r");
  if (!p) {
    fclose(log);
    return dmx_fail(err, "cannot start %s: %s", bin_name, strerror(errno));
  }
  bool tty = isatty(STDOUT_FILENO);
  char line[4096];
  long next_mark = 0;
  while (fgets(line, sizeof line, p)) {
    fputs(line, log);
    fflush(log);
    if (line[0] == '*' && (line[2] == '(' || !strncmp(line, "* Exploring", 11))) {
      /* "* (2/4) Tuning ...", "* Exploring a random subset of N configuration(s)" (without the colour codes) */
      char clean[256];
      size_t n = 0;
      for (const char *c = line + 2; *c && *c != '\n' && n + 1 < sizeof clean; c++) {
        if (*c == 27) {
          while (*c && *c != 'm') c++;
          if (!*c) break;
          continue;
        }
        clean[n++] = *c;
      }
      clean[n] = 0;
      printf("%s      %s\n", tty ? "\r" : "", clean);
      next_mark = 0;
    } else if (line[0] == '|') { /* "|   17 |   578 | ..." : configuration 17 of 578 */
      long a = 0, b = 0;
      if (sscanf(line, "| %ld | %ld |", &a, &b) == 2) {
        if (tty) {
          printf("\r      configuration %ld/%ld   ", a, b);
        } else if (a >= next_mark) { /* a log file gets a line per tenth */
          printf("      configuration %ld/%ld\n", a, b);
          next_mark = a + (b >= 10 ? b / 10 : 1);
        }
      }
    }
    fflush(stdout);
  }
  fclose(log);
  int st = pclose(p);
  if (tty) printf("\r");
  /* each phase of the tuner writes clblast_<family>_32.json: keep the fastest */
  DIR *d = opendir(scratch);
  char best_file[4700] = "";
  double best = INFINITY;
  struct dirent *de;
  while (d && (de = readdir(d))) {
    size_t l = strlen(de->d_name);
    if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0) continue;
    char path[4700], t[64];
    snprintf(path, sizeof path, "%s/%s", scratch, de->d_name);
    double ms = dmx_json_file_string(path, "best_time", t, sizeof t, NULL) == 0 ? atof(t) : INFINITY;
    if (ms > 0 && ms < best) {
      best = ms;
      snprintf(best_file, sizeof best_file, "%s", path);
    }
  }
  if (d) closedir(d);
  if (!best_file[0])
    return dmx_fail(err, "%s exited with status %d and wrote no result (see %s); run `datamux tune` again to retry",
                    bin_name, st, log_path);
  if (st != 0)
    printf("      warning: %s exited with status %d after writing results; keeping the best of them (see %s)\n",
           bin_name, st, log_path);
  size_t len;
  char *json = dmx_read_file(best_file, &len, err);
  if (!json) return -1;
  int rc = dmx_write_file_atomic(it->result, json, len, err);
  free(json);
  if (rc) return -1;
  printf("      best %.3f ms = %.2f GFLOP/s -> %s\n", best, 2.0 * it->m * (double)it->n * it->k / (best * 1e-3) / 1e9,
         it->result);
  remove_flat_dir(scratch);
  return 0;
}

/* ------------------------------------------------------------------ plan */

static size_t up128(size_t x) { return (x + 127) / 128 * 128; }

/* Distinct (m, n, k) of one kernel, heaviest first, at most max. */
static int plan_kernel(const tune_shape *s, int ns, bool direct, unsigned long long thr3, int max, const char *tuning,
                       tune_item *items, int ni) {
  tune_item cand[TUNE_MAX_SHAPES];
  int nc = 0;
  for (int i = 0; i < ns; i++) {
    unsigned long long mnk = (unsigned long long)s[i].m * s[i].n * s[i].k;
    /* the direct kernel: the shapes below the threshold; the indirect one: the heaviest plain GEMMs
     * whatever the threshold, which the routine step may move */
    if (direct ? mnk >= thr3 : s[i].batched) continue;
    /* the indirect kernel runs on operands padded to its tile, and its tuner needs multiples of 128 */
    size_t m = direct ? s[i].m : up128(s[i].m), n = direct ? s[i].n : up128(s[i].n),
           k = direct ? s[i].k : up128(s[i].k);
    double fl = 2.0 * s[i].m * (double)s[i].n * s[i].k * s[i].batch * s[i].count;
    int j = 0;
    while (j < nc && !(cand[j].m == m && cand[j].n == n && cand[j].k == k)) j++;
    if (j == nc) cand[nc++] = (tune_item){.direct = direct, .m = m, .n = n, .k = k, .role = s[i].role};
    cand[j].flops += fl;
  }
  for (int a = 1; a < nc; a++)
    for (int b = a; b > 0 && cand[b].flops > cand[b - 1].flops; b--) {
      tune_item t = cand[b];
      cand[b] = cand[b - 1];
      cand[b - 1] = t;
    }
  for (int j = 0; j < nc && j < max; j++) {
    tune_item *it = &items[ni++];
    *it = cand[j];
    snprintf(it->name, sizeof it->name, "%s_%zux%zux%zu", direct ? "xgemm_direct" : "xgemm", it->m, it->n, it->k);
    snprintf(it->result, sizeof it->result, "%s/%s.json", tuning, it->name);
  }
  return ni;
}

/* ------------------------------------------------------------------ the command */

int dmx_tune(const dmx_experiment *e, const dmx_tune_opts *o0) {
  dmx_tune_opts o = *o0;
  if (o.fraction <= 0) o.fraction = 100;
  if (o.max_shapes <= 0) o.max_shapes = 3;
  dmx_error err = {{0}};
  const char *device = o.device && *o.device ? o.device : e->device;
  /* tuner files are not applied here: the tuners and the threshold timing start from CLBlast's own */
  if (setenv("DATAMUX_NO_TUNING", "1", 1) != 0) dmx_die("setenv(DATAMUX_NO_TUNING) failed: %s", strerror(errno));
  dmx_runtime *rt = dmx_runtime_create(device, false, stdout);
  if (dmx_gemm_use(rt, DMX_GEMM_CLBLAST, &err)) dmx_die("%s", err.msg); /* CLBlast is what is tuned */
  char devdir[4096], tuning[4200];
  dmx_tune_device_dir(rt, devdir, sizeof devdir);
  snprintf(tuning, sizeof tuning, "%s/tuning", devdir);
  tune_shape shapes[TUNE_MAX_SHAPES];
  int ns = dmx_tune_shapes(e, shapes);
  int thr = dmx_tune_current_threshold(rt, devdir);
  unsigned long long thr3 = (unsigned long long)thr * thr * thr;
  tune_item items[2 * TUNE_MAX_SHAPES];
  int ni = plan_kernel(shapes, ns, false, thr3, o.max_shapes, tuning, items, 0);
  ni = plan_kernel(shapes, ns, true, thr3, o.max_shapes, tuning, items, ni);
  printf(
      "tuning CLBlast for %s at the GEMM shapes of %s (%d shapes per step; XGEMM_MIN_INDIRECT_SIZE now %d: "
      "m*n*k below %d^3 runs the direct kernel)\n",
      rt->info.name, e->source_path, ns, thr, thr);
  printf("results: %s (a shape with a result is skipped: stop with Ctrl-C and run again to resume)\n", tuning);
  int todo = 0;
  for (int i = 0; i < ni; i++) {
    items[i].done = !o.force && access(items[i].result, R_OK) == 0;
    todo += !items[i].done;
    printf("  %-13s %6zu x %6zu x %6zu  %8.3f GFLOP/step (%s)%s\n", items[i].direct ? "xgemm_direct" : "xgemm",
           items[i].m, items[i].n, items[i].k, items[i].flops / 1e9, items[i].role, items[i].done ? "  [done]" : "");
  }
  int rc = 0;
  if (o.dry_run) {
    dmx_runtime_destroy(rt);
    return 0;
  }
  if (dmx_mkdirs(tuning, &err)) {
    fprintf(stderr, "datamux tune: %s\n", err.msg);
    dmx_runtime_destroy(rt);
    return 1;
  }
  remove_stale_scratch(tuning);
  int k = 0;
  for (int i = 0; i < ni && rc == 0; i++) {
    if (items[i].done) continue;
    if (run_tuner(rt, &items[i], tuning, o.fraction, ++k, todo, &err)) {
      fprintf(stderr, "datamux tune: %s\n", err.msg);
      rc = 1;
    }
  }
  if (rc == 0 && dmx_tune_install(rt, items, ni, devdir, tuning, &err)) {
    fprintf(stderr, "datamux tune: %s\n", err.msg);
    rc = 1;
  }
  dmx_runtime_destroy(rt);
  if (rc == 0 && !o.no_routine && dmx_tune_routine(e, device, shapes, ns, devdir, tuning, o.force, &err)) {
    fprintf(stderr, "datamux tune: %s\n", err.msg);
    rc = 1;
  }
  if (rc == 0)
    printf("done: `datamux bench --gemm` compares with --no-tuning; every datamux command now applies %s/*.json\n",
           devdir);
  return rc;
}
