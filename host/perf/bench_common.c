/* Benchmarks behind `datamux bench`: the helpers they share (the device block of the JSON files,
 * synthetic data, the tuning status line). */
#include "host/perf/bench_common.h"

#include "host/run/experiment_runtime.h"
#include "host/runtime/gemm.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dmx_build_info.h"

#include "data/batch.h"

/* Where the GEMM wrapper looks for tuner files for this device, and how many .json files are there. */
int dmx_bench_tuning_files(const dmx_runtime *rt, char *dir, size_t cap) {
  char dev[256];
  dmx_device_folder_name(rt->info.name, dev, sizeof dev);
  snprintf(dir, cap, "%s/clblast/%s", dmx_cache_dir(), dev);
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l > 5 && !strcmp(e->d_name + l - 5, ".json")) n++;
  }
  closedir(d);
  return n;
}

void dmx_bench_tuning_status(const dmx_runtime *rt, bool no_tuning, char *out, size_t cap) {
  char dir[4096];
  int n = dmx_bench_tuning_files(rt, dir, sizeof dir);
  if (no_tuning)
    snprintf(out, cap, "ignored (--no-tuning): CLBlast's built-in parameters; %d tuner file(s) in %s not applied", n,
             dir);
  else if (n == 0)
    snprintf(out, cap, "none: no tuner files in %s, CLBlast's built-in parameters", dir);
  else
    snprintf(out, cap, "applied: %d tuner file(s) in %s", n, dir);
}

/* The runtime, optionally without the tuned CLBlast parameters (DATAMUX_NO_TUNING=1 makes the
 * CLBlast backend skip the tuner files). With an experiment, its gemm_backend applies as in training. */
dmx_runtime *dmx_bench_runtime(const dmx_experiment *e, const char *device, bool no_tuning, bool profiling) {
  if (no_tuning && setenv("DATAMUX_NO_TUNING", "1", 1) != 0)
    dmx_die("setenv(DATAMUX_NO_TUNING) failed: %s", strerror(errno));
  if (e) return dmx_experiment_runtime(e, device, profiling, stdout);
  dmx_runtime *rt = dmx_runtime_create(device, profiling, stdout);
  dmx_error err;
  if (dmx_gemm_select(rt, DMX_GEMM_AUTO, NULL, &err)) dmx_die("%s", err.msg);
  return rt;
}

void dmx_bench_json_device(FILE *f, const dmx_runtime *rt) {
  fprintf(f, "  \"device\": ");
  dmx_json_put_str(f, rt->info.name);
  fprintf(f, ",\n  \"device_type\": \"%s\",\n  \"device_vendor\": ", dmx_device_type_name(rt->info.type));
  dmx_json_put_str(f, rt->info.vendor);
  fprintf(f, ",\n  \"platform\": ");
  dmx_json_put_str(f, rt->info.platform_name);
  fprintf(f, ",\n  \"platform_version\": ");
  dmx_json_put_str(f, rt->info.platform_version);
  fprintf(f, ",\n  \"driver_version\": ");
  dmx_json_put_str(f, rt->info.driver_version);
  fprintf(f, ",\n  \"compute_units\": %u,\n", rt->info.compute_units);
  /* what the numbers depend on besides the device: which GEMM code ran, with which tuning, built
   * from which commit, measured when and where (datamux report prints these per column) */
  dmx_gemm_backend be = dmx_gemm_backend_of((dmx_runtime *)rt);
  fprintf(f, "  \"gemm_backend\": \"%s\",\n  \"clblast_version\": ", dmx_gemm_backend_names[be]);
  dmx_json_put_str(f, DATAMUX_CLBLAST_VERSION[0] ? DATAMUX_CLBLAST_VERSION : "unknown");
  fprintf(f, ",\n  \"openblas_version\": ");
  dmx_json_put_str(f, DATAMUX_OPENBLAS_VERSION[0] ? DATAMUX_OPENBLAS_VERSION : "none");
  char dir[4200], state[4400];
  int files = dmx_bench_tuning_files(rt, dir, sizeof dir);
  bool off = getenv("DATAMUX_NO_TUNING") != NULL;
  if (be == DMX_GEMM_HOST_BLAS)
    snprintf(state, sizeof state, "not used (host BLAS)");
  else if (off)
    snprintf(state, sizeof state, "off (DATAMUX_NO_TUNING)");
  else if (files)
    snprintf(state, sizeof state, "tuned: %d files in %s", files, dir);
  else
    snprintf(state, sizeof state, "untuned (CLBlast defaults)");
  fprintf(f, ",\n  \"tuning_state\": ");
  dmx_json_put_str(f, state);
  fprintf(f, ",\n  \"commit\": ");
  dmx_json_put_str(f, DATAMUX_COMMIT);
  char date[64] = "unknown", host[256] = "unknown";
  time_t now = time(NULL);
  struct tm tm;
  if (gmtime_r(&now, &tm)) strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown");
  host[sizeof host - 1] = 0;
  fprintf(f, ",\n  \"date\": \"%s\",\n  \"host\": ", date);
  dmx_json_put_str(f, host);
  fprintf(f, ",\n");
}

int dmx_bench_prepare_out_dir(const char *dir, dmx_error *err) {
  if (!dir) return 0;
  if (!*dir) return dmx_fail(err, "the output folder (--out) is empty");
  return dmx_mkdirs(dir, err);
}

/* Whether `name` is one of the comma-separated items of list. */
bool dmx_bench_in_list(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; *p;) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    if (len == n && !strncmp(p, name, n)) return true;
    if (!c) break;
    p = c + 1;
  }
  return false;
}

/* Full-length synthetic rows: <s> random ordinary ids </s>, labels 0. */
void dmx_bench_synthetic_rows(const dmx_experiment *e, int n, dmx_dataset *out) {
  bool token = !strcmp(e->task.name, "ner");
  const dmx_glue_task *g = dmx_glue_find(e->task.name);
  dmx_target_kind kind = token ? DMX_TARGET_TOKENS : (g && g->num_labels == 1 ? DMX_TARGET_SCORE : DMX_TARGET_CLASS);
  int L = e->task.max_length;
  dmx_dataset_alloc(out, n, L, kind);
  snprintf(out->task, sizeof out->task, "%s", e->task.name);
  snprintf(out->split, sizeof out->split, "synthetic");
  out->num_labels = token ? DMX_NER_NUM_LABELS : g ? g->num_labels : 2;
  out->has_labels = true;
  uint64_t rng = 0x5eed5eedULL;
  for (int r = 0; r < n; r++) {
    int32_t *ids = out->ids + (size_t)r * L;
    ids[0] = DMX_BOS_ID;
    for (int j = 1; j < L - 1; j++) ids[j] = 4 + (int32_t)dmx_rand_below(&rng, 40000);
    ids[L - 1] = DMX_EOS_ID;
    if (kind == DMX_TARGET_CLASS) out->labels[r] = 0;
    if (kind == DMX_TARGET_SCORE) out->scores[r] = 0.0f;
    if (kind == DMX_TARGET_TOKENS)
      for (int j = 1; j < L - 1; j++) out->token_labels[(size_t)r * L + j] = 0;
  }
  snprintf(out->summary, sizeof out->summary, "%d synthetic rows of %d ids", n, L);
}

