/* Vision inference throughput vs N (host/bench_vision.h). Kept apart from host/bench.c, which
 * measures the text model. */
#include "host/perf/bench_vision.h"

#include "host/perf/bench_common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "layers/vision_model.h"

/* One model of the benchmark with its synthetic batch. */
typedef struct {
  dmx_vision_model *m;
  float *x;
  int32_t *y;
  size_t images; /* per batch: N * B */
} vrun;

static int vrun_open(vrun *r, dmx_runtime *rt, const dmx_experiment *e, dmx_vision_config cfg, int N, dmx_error *err) {
  int B = e->train.batch_size > 0 ? e->train.batch_size : 32;
  memset(r, 0, sizeof *r);
  r->m = dmx_vision_model_create(rt, &cfg, N, B, 10, err);
  if (!r->m) return -1;
  dmx_vision_model_init(r->m, 1);
  size_t P = (size_t)cfg.crop * cfg.crop;
  r->images = (size_t)N * B;
  r->x = dmx_malloc(r->images * P * sizeof(float));
  r->y = dmx_malloc(r->images * sizeof(int32_t));
  uint64_t s = 12345;
  for (size_t i = 0; i < r->images * P; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    r->x[i] = (float)(s >> 40) / 16777216.0f;
  }
  for (size_t i = 0; i < r->images; i++) r->y[i] = (int32_t)(i % 10);
  return 0;
}

/* One eval batch, timed to device completion. */
static double vrun_batch(vrun *r, dmx_runtime *rt) {
  dmx_finish(rt);
  double t0 = dmx_now_seconds();
  dmx_vision_model_step(r->m, r->x, r->y, false);
  dmx_finish(rt);
  return dmx_now_seconds() - t0;
}

static void vrun_close(vrun *r) {
  if (r->m) dmx_vision_model_free(r->m);
  free(r->x);
  free(r->y);
  memset(r, 0, sizeof *r);
}

/* Times the model of cfg at N; with plain (the vanilla configuration), a plain model runs alongside
 * in alternate batches, and the row's speedup is over it (the same stretch of time: clocks drift). */
static int bench_one(dmx_runtime *rt, const dmx_experiment *e, dmx_vision_config cfg, int N,
                     const dmx_vision_config *plain, int warmup, int batches, dmx_vision_bench_row *row,
                     dmx_error *err) {
  vrun r, ref;
  if (vrun_open(&r, rt, e, cfg, N, err)) return -1;
  if (plain && vrun_open(&ref, rt, e, *plain, 1, err)) {
    vrun_close(&r);
    return -1;
  }
  for (int i = 0; i < warmup; i++) { /* kernels compile here */
    vrun_batch(&r, rt);
    if (plain) vrun_batch(&ref, rt);
  }
  double secs = 0, ref_secs = 0;
  for (int i = 0; i < batches; i++) {
    if (plain && i % 2) ref_secs += vrun_batch(&ref, rt);
    secs += vrun_batch(&r, rt);
    if (plain && i % 2 == 0) ref_secs += vrun_batch(&ref, rt);
  }
  row->N = N;
  row->muxing = dmx_vision_muxing_name(cfg.muxing);
  row->images_per_second = secs > 0 ? (double)batches * r.images / secs : 0;
  row->ms_per_batch = batches ? secs * 1000.0 / batches : 0;
  row->device_bytes = dmx_vision_model_device_bytes(r.m);
  row->ref_images_per_second = plain && ref_secs > 0 ? (double)batches * ref.images / ref_secs : 0;
  vrun_close(&r);
  if (plain) vrun_close(&ref);
  return 0;
}

int dmx_bench_vision(dmx_runtime *rt, const dmx_experiment *e, const int *Ns, int n_Ns, int warmup, int batches,
                     dmx_vision_bench_row *rows, FILE *log, dmx_error *err) {
  dmx_vision_config base = e->vision;
  base.muxing = DMX_VMUX_NONE;
  if (bench_one(rt, e, base, 1, NULL, warmup, batches, &rows[0], err)) return -1;
  rows[0].speedup = 1.0;
  dmx_vision_config mux = e->vision;
  if (mux.muxing == DMX_VMUX_NONE) mux.muxing = DMX_VMUX_NONLINEAR_EXPAND;
  int n = 1;
  for (int i = 0; i < n_Ns; i++) {
    if (Ns[i] < 1 || Ns[i] > 64) return dmx_fail(err, "N = %d is outside [1, 64]", Ns[i]);
    dmx_vision_bench_row *r = &rows[n++];
    if (bench_one(rt, e, mux, Ns[i], &base, warmup, batches, r, err)) return -1;
    r->speedup = r->ref_images_per_second > 0 ? r->images_per_second / r->ref_images_per_second : 0;
  }
  if (log) {
    fprintf(log, "%-4s %-18s %12s %16s %9s %12s %10s\n", "N", "muxing", "images/s", "plain alongside", "speedup",
            "ms/batch", "MiB");
    for (int i = 0; i < n; i++) {
      char along[32] = "-";
      if (i) snprintf(along, sizeof along, "%.1f", rows[i].ref_images_per_second);
      fprintf(log, "%-4d %-18s %12.1f %16s %8.2fx %12.2f %10.1f\n", rows[i].N, rows[i].muxing,
              rows[i].images_per_second, along, rows[i].speedup, rows[i].ms_per_batch,
              rows[i].device_bytes / 1048576.0);
    }
    fprintf(log, "speedup: images/s over the plain model timed alongside each row (alternate batches)\n");
  }
  return n;
}

int dmx_bench_vision_write(const dmx_runtime *rt, const char *dir, const dmx_vision_bench_row *rows, int n,
                           dmx_error *err) {
  if (dmx_mkdirs(dir, err)) return -1;
  char *csv = NULL, *json = NULL, path[1200];
  size_t lc = 0, lj = 0;
  FILE *c = open_memstream(&csv, &lc), *j = open_memstream(&json, &lj);
  if (!c || !j) return dmx_fail(err, "open_memstream failed: %s", strerror(errno));
  fprintf(c, "N,muxing,images_per_second,plain_images_per_second_alongside,speedup,ms_per_batch,device_bytes\n");
  fprintf(j, "{\n  \"benchmark\": \"vision_throughput\",\n");
  dmx_bench_json_device(j, rt);
  fprintf(j, "  \"rows\": [\n");
  for (int i = 0; i < n; i++) {
    const dmx_vision_bench_row *r = &rows[i];
    char along[32] = ""; /* empty for the plain row itself */
    if (r->ref_images_per_second > 0) snprintf(along, sizeof along, "%.2f", r->ref_images_per_second);
    fprintf(c, "%d,%s,%.2f,%s,%.4f,%.4f,%zu\n", r->N, r->muxing, r->images_per_second, along, r->speedup,
            r->ms_per_batch, r->device_bytes);
    fprintf(j,
            "    {\"label\": \"%s%d\", \"N\": %d, \"muxing\": \"%s\", \"images_per_second\": %.2f, \"speedup\": %.4f, "
            "\"ms_per_batch\": %.4f, \"device_bytes\": %zu",
            i == 0 ? "vanilla N=" : "N=", r->N, r->N, r->muxing, r->images_per_second, r->speedup, r->ms_per_batch, r->device_bytes);
    if (r->ref_images_per_second > 0)
      fprintf(j, ", \"plain_images_per_second_alongside\": %.2f", r->ref_images_per_second);
    fprintf(j, "}%s\n", i + 1 < n ? "," : "");
  }
  fprintf(j, "  ]\n}\n");
  fclose(c);
  fclose(j);
  snprintf(path, sizeof path, "%s/vision_throughput.csv", dir);
  int rc = dmx_write_file_atomic(path, csv, lc, err);
  snprintf(path, sizeof path, "%s/vision_throughput.json", dir);
  if (!rc) rc = dmx_write_file_atomic(path, json, lj, err);
  free(csv);
  free(json);
  return rc;
}
