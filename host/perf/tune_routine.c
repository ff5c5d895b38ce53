/* `datamux tune`, second half: installing the tuned kernel parameters, and the direct/indirect
 * threshold (CLBlast's GemmRoutine XGEMM_MIN_INDIRECT_SIZE) chosen from timings of our own wrapper
 * at the experiment's shapes. */
#include <clblast_c.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/base/json.h"
#include "host/perf/bench_common.h"
#include "host/runtime/gemm.h"
#include "host/perf/tune_internal.h"

/* Which CLBlast kernel a tuner family configures, as host/runtime/gemm_clblast.c maps it; NULL for others. */
static const char *family_kernel(const char *family) {
  if (!strncmp(family, "xgemm_direct", 12)) return "XgemmDirect";
  if (!strncmp(family, "xgemm", 5)) return "Xgemm";
  if (strstr(family, "gemm_routine") || strstr(family, "routine_xgemm")) return "GemmRoutine";
  return NULL;
}

int dmx_tune_current_threshold(const dmx_runtime *rt, const char *devdir) {
  int thr = 0;
  DIR *d = opendir(devdir);
  struct dirent *e;
  while (d && (e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l < 6 || strcmp(e->d_name + l - 5, ".json")) continue;
    char path[4400], fam[64], params[512];
    snprintf(path, sizeof path, "%s/%s", devdir, e->d_name);
    dmx_json root;
    dmx_error why;
    if (dmx_json_parse_file(path, NULL, &root, &why)) continue; /* not a tuner result: not ours to read */
    if (dmx_json_copy_string(&root, path, "kernel_family", fam, sizeof fam, &why) == 0 && family_kernel(fam) &&
        !strcmp(family_kernel(fam), "GemmRoutine") &&
        dmx_json_copy_string(&root, path, "best_parameters", params, sizeof params, &why) == 0) {
      const char *p = strstr(params, "XGEMM_MIN_INDIRECT_SIZE=");
      if (p) thr = atoi(p + 24);
    }
    dmx_json_free(&root);
  }
  if (d) closedir(d);
  if (thr > 0) return thr;
  /* CLBlast's defaults (src/database/kernel_selection.hpp) */
  if ((rt->info.type & CL_DEVICE_TYPE_GPU) && strstr(rt->info.vendor, "NVIDIA")) return 768;
  if ((rt->info.type & CL_DEVICE_TYPE_GPU) && strstr(rt->info.vendor, "Intel")) return 384;
  return 512;
}

/* Moves devdir's files that configure `kernel` into tuning/previous/, so the new file is the only
 * one host/runtime/gemm_clblast.c applies for it (it applies every file, in name order). */
static int retire(const char *devdir, const char *tuning, const char *kernel, dmx_error *err) {
  char prev[4400];
  snprintf(prev, sizeof prev, "%s/previous", tuning);
  DIR *d = opendir(devdir);
  if (!d) return 0;
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l < 6 || strcmp(e->d_name + l - 5, ".json")) continue;
    char path[4400], to[4700], fam[64];
    snprintf(path, sizeof path, "%s/%s", devdir, e->d_name);
    bool same = dmx_json_file_string(path, "kernel_family", fam, sizeof fam, NULL) == 0 && family_kernel(fam) &&
                !strcmp(family_kernel(fam), kernel);
    if (!same) continue;
    if (dmx_mkdirs(prev, err)) rc = -1;
    snprintf(to, sizeof to, "%s/%s", prev, e->d_name);
    if (rc == 0 && rename(path, to) != 0) rc = dmx_fail(err, "cannot move %s to %s: %s", path, to, strerror(errno));
    if (rc == 0) printf("  moved the older %s to %s\n", e->d_name, prev);
  }
  closedir(d);
  return rc;
}

int dmx_tune_install(const dmx_runtime *rt, const tune_item *items, int n, const char *devdir, const char *tuning,
                     dmx_error *err) {
  (void)rt;
  for (int direct = 0; direct < 2; direct++) {
    const tune_item *best = NULL;
    double best_cost = -1, best_ms = 0;
    for (int i = 0; i < n; i++) {
      if (items[i].direct != (direct == 1)) continue;
      char t[64];
      if (dmx_json_file_string(items[i].result, "best_time", t, sizeof t, NULL)) continue;
      /* the step time this shape costs with its own winner: its FLOPs at the tuned rate */
      double ms = atof(t), rate = 2.0 * items[i].m * (double)items[i].n * items[i].k / (ms * 1e-3);
      double cost = items[i].flops / rate;
      if (cost > best_cost) {
        best_cost = cost;
        best = &items[i];
        best_ms = ms;
      }
    }
    if (!best) continue;
    size_t len;
    char *json = dmx_read_file(best->result, &len, err);
    if (!json) return -1;
    const char *kernel = direct ? "XgemmDirect" : "Xgemm";
    char dst[4400];
    snprintf(dst, sizeof dst, "%s/clblast_%s_32.json", devdir, direct ? "xgemm_direct" : "xgemm");
    printf(
        "%s: the parameters tuned at %zu x %zu x %zu (%.2f GFLOP/s there; the shape that costs the step most "
        "GEMM time) -> %s\n",
        kernel, best->m, best->n, best->k, 2.0 * best->m * (double)best->n * best->k / (best_ms * 1e-3) / 1e9, dst);
    int rc = retire(devdir, tuning, kernel, err);
    if (rc == 0) rc = dmx_write_file_atomic(dst, json, len, err);
    free(json);
    if (rc) return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------ the threshold */

static void set_threshold(dmx_runtime *rt, size_t v) {
  const char *names[1] = {"XGEMM_MIN_INDIRECT_SIZE"};
  size_t values[1] = {v};
  CLBlastStatusCode st =
      CLBlastOverrideParameters(rt->info.device, "GemmRoutine", CLBlastPrecisionSingle, 1, names, values);
  if (st != CLBlastSuccess)
    dmx_die("CLBlastOverrideParameters(GemmRoutine, XGEMM_MIN_INDIRECT_SIZE=%zu) failed: %s", v,
            dmx_clblast_status_name(st));
}

static void run_shape(dmx_runtime *rt, const tune_shape *s, dmx_tensor A, dmx_tensor B, dmx_tensor C) {
  size_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
  if (s->batched)
    dmx_gemm_batched(rt, s->ta, s->tb, s->m, s->n, s->k, 1.0f, A, lda, s->m * s->k, B, ldb, s->k * s->n, 0.0f, C, s->n,
                     s->m * s->n, s->batch);
  else
    dmx_gemm(rt, s->ta, s->tb, s->m, s->n, s->k, 1.0f, A, lda, B, ldb, 0.0f, C, s->n);
}

/* Seconds per call: one untimed call (compiles), then repetitions for about 0.3 s (2..20). */
static double time_shape(dmx_runtime *rt, const tune_shape *s, dmx_tensor A, dmx_tensor B, dmx_tensor C) {
  run_shape(rt, s, A, B, C);
  dmx_finish(rt);
  double t0 = dmx_now_seconds();
  run_shape(rt, s, A, B, C);
  dmx_finish(rt);
  double pilot = dmx_now_seconds() - t0;
  int reps = pilot > 0 ? (int)(0.3 / pilot) : 20;
  reps = reps < 2 ? 2 : reps > 20 ? 20 : reps;
  t0 = dmx_now_seconds();
  for (int i = 0; i < reps; i++) run_shape(rt, s, A, B, C);
  dmx_finish(rt);
  return (dmx_now_seconds() - t0) / reps;
}

int dmx_tune_routine(const dmx_experiment *e, const char *device, const tune_shape *s, int n, const char *devdir,
                     const char *tuning, bool force, dmx_error *err) {
  char record[4400], dst[4400];
  snprintf(record, sizeof record, "%s/routine.json", tuning);
  if (!force && access(record, R_OK) == 0) {
    printf("XGEMM_MIN_INDIRECT_SIZE: kept (chosen before: %s; --force chooses again)\n", record);
    return 0;
  }
  /* the runtime applies the kernels just installed: the threshold is chosen for them */
  if (unsetenv("DATAMUX_NO_TUNING") != 0) return dmx_fail(err, "unsetenv failed: %s", strerror(errno));
  dmx_runtime *rt = dmx_runtime_create(device, false, NULL);
  /* the tuner tunes CLBlast's kernels, whatever backend the device would get */
  if (dmx_gemm_use(rt, DMX_GEMM_CLBLAST, err)) {
    dmx_runtime_destroy(rt);
    return -1;
  }
  printf("XGEMM_MIN_INDIRECT_SIZE: timing every shape on the direct and on the indirect path\n");
  double direct[TUNE_MAX_SHAPES], indirect[TUNE_MAX_SHAPES];
  for (int i = 0; i < n; i++) {
    size_t b = s[i].batched ? s[i].batch : 1;
    dmx_tensor A = dmx_buffer_create(rt, b * s[i].m * s[i].k), B = dmx_buffer_create(rt, b * s[i].k * s[i].n),
               C = dmx_buffer_create(rt, b * s[i].m * s[i].n);
    dmx_fill(rt, A, 0.01f);
    dmx_fill(rt, B, 0.02f);
    set_threshold(rt, (size_t)1 << 20); /* m*n*k < 2^60: always direct */
    direct[i] = time_shape(rt, &s[i], A, B, C);
    set_threshold(rt, 1); /* m*n*k < 1: never direct */
    indirect[i] = time_shape(rt, &s[i], A, B, C);
    double fl = 2.0 * s[i].m * (double)s[i].n * s[i].k * b;
    printf("  %-9s %s%s%s %5zu x %5zu x %5zu x %4zu: direct %8.2f GFLOP/s, indirect %8.2f GFLOP/s\n", s[i].role,
           s[i].batched ? "batched " : "", s[i].ta ? "T" : "N", s[i].tb ? "T" : "N", s[i].m, s[i].n, s[i].k, b,
           fl / direct[i] / 1e9, fl / indirect[i] / 1e9);
    fflush(stdout);
    dmx_buffer_release(A);
    dmx_buffer_release(B);
    dmx_buffer_release(C);
  }
  dmx_runtime_destroy(rt);
  /* candidates: 1 (never direct) and, for every shape, the smallest t with m*n*k < t^3 */
  size_t best_t = 1;
  double best_total = INFINITY, total_direct = 0, total_indirect = 0;
  for (int c = -1; c < n; c++) {
    size_t t = 1;
    if (c >= 0) {
      unsigned long long mnk = (unsigned long long)s[c].m * s[c].n * s[c].k;
      t = (size_t)cbrt((double)mnk);
      while ((unsigned long long)t * t * t <= mnk) t++;
    }
    double total = 0;
    for (int i = 0; i < n; i++) {
      unsigned long long mnk = (unsigned long long)s[i].m * s[i].n * s[i].k;
      total += s[i].count * (mnk < (unsigned long long)t * t * t ? direct[i] : indirect[i]);
    }
    if (total < best_total || (total == best_total && t < best_t)) {
      best_total = total;
      best_t = t;
    }
  }
  for (int i = 0; i < n; i++) {
    total_direct += s[i].count * direct[i];
    total_indirect += s[i].count * indirect[i];
  }
  printf("  GEMM time per step: %.2f ms all direct, %.2f ms all indirect, %.2f ms with XGEMM_MIN_INDIRECT_SIZE=%zu\n",
         total_direct * 1e3, total_indirect * 1e3, best_total * 1e3, best_t);
  char json[1024];
  int len = snprintf(json, sizeof json,
                     "{\n  \"kernel_family\": \"gemm_routine\",\n  \"precision\": \"32\",\n  \"best_kernel\": "
                     "\"GemmRoutine\",\n  \"best_parameters\": \"XGEMM_MIN_INDIRECT_SIZE=%zu PRECISION=32\",\n  "
                     "\"note\": \"datamux tune: minimises the GEMM time of one training step of %.200s (%.3f ms; all "
                     "direct %.3f ms, all indirect %.3f ms)\"\n}\n",
                     best_t, e->source_path, best_total * 1e3, total_direct * 1e3, total_indirect * 1e3);
  snprintf(dst, sizeof dst, "%s/gemm_routine_32.json", devdir);
  if (retire(devdir, tuning, "GemmRoutine", err) || dmx_write_file_atomic(dst, json, (size_t)len, err) ||
      dmx_write_file_atomic(record, json, (size_t)len, err))
    return -1;
  printf("  -> %s\n", dst);
  return 0;
}
