/* Vision inference throughput vs N (host/bench_vision.h). Kept apart from host/bench.c, which
 * measures the text model. */
#include "host/bench_vision.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "layers/vision_model.h"

static int bench_one(dmx_runtime *rt, const dmx_experiment *e, dmx_vision_config cfg, int N, int warmup, int batches,
                     dmx_vision_bench_row *row, dmx_error *err) {
  int B = e->train.batch_size > 0 ? e->train.batch_size : 32;
  dmx_vision_model *m = dmx_vision_model_create(rt, &cfg, N, B, 10, err);
  if (!m) return -1;
  dmx_vision_model_init(m, 1);
  size_t R = (size_t)N * B, P = (size_t)cfg.crop * cfg.crop;
  float *x = dmx_malloc(R * P * sizeof(float));
  int32_t *y = dmx_malloc(R * sizeof(int32_t));
  uint64_t s = 12345;
  for (size_t i = 0; i < R * P; i++) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    x[i] = (float)(s >> 40) / 16777216.0f;
  }
  for (size_t r = 0; r < R; r++) y[r] = (int32_t)(r % 10);
  for (int i = 0; i < warmup; i++) dmx_vision_model_step(m, x, y, false); /* kernels compile here */
  dmx_finish(rt);
  double t0 = dmx_now_seconds();
  for (int i = 0; i < batches; i++) {
    dmx_vision_model_step(m, x, y, false);
    dmx_finish(rt); /* each batch timed to device completion */
  }
  double secs = dmx_now_seconds() - t0;
  row->N = N;
  row->muxing = dmx_vision_muxing_name(cfg.muxing);
  row->images_per_second = secs > 0 ? (double)batches * R / secs : 0;
  row->ms_per_batch = batches ? secs * 1000.0 / batches : 0;
  row->device_bytes = dmx_vision_model_device_bytes(m);
  free(x);
  free(y);
  dmx_vision_model_free(m);
  return 0;
}

int dmx_bench_vision(dmx_runtime *rt, const dmx_experiment *e, const int *Ns, int n_Ns, int warmup, int batches,
                     dmx_vision_bench_row *rows, FILE *log, dmx_error *err) {
  dmx_vision_config base = e->vision;
  base.muxing = VMUX_NONE;
  if (bench_one(rt, e, base, 1, warmup, batches, &rows[0], err)) return -1;
  dmx_vision_config mux = e->vision;
  if (mux.muxing == VMUX_NONE) mux.muxing = VMUX_NONLINEAR_EXPAND;
  int n = 1;
  for (int i = 0; i < n_Ns; i++) {
    if (Ns[i] < 1 || Ns[i] > 64) return dmx_fail(err, "N = %d is outside [1, 64]", Ns[i]);
    if (bench_one(rt, e, mux, Ns[i], warmup, batches, &rows[n], err)) return -1;
    n++;
  }
  for (int i = 0; i < n; i++) rows[i].speedup = rows[0].images_per_second > 0 ? rows[i].images_per_second / rows[0].images_per_second : 0;
  if (log) {
    fprintf(log, "%-4s %-18s %12s %9s %12s %10s\n", "N", "muxing", "images/s", "speedup", "ms/batch", "MiB");
    for (int i = 0; i < n; i++)
      fprintf(log, "%-4d %-18s %12.1f %8.2fx %12.2f %10.1f\n", rows[i].N, rows[i].muxing, rows[i].images_per_second,
              rows[i].speedup, rows[i].ms_per_batch, rows[i].device_bytes / 1048576.0);
  }
  return n;
}

int dmx_bench_vision_write(const char *dir, const dmx_vision_bench_row *rows, int n, dmx_error *err) {
  if (dmx_mkdirs(dir, err)) return -1;
  char *csv = NULL, *json = NULL, path[1200];
  size_t lc = 0, lj = 0;
  FILE *c = open_memstream(&csv, &lc), *j = open_memstream(&json, &lj);
  if (!c || !j) return dmx_fail(err, "open_memstream failed: %s", strerror(errno));
  fprintf(c, "N,muxing,images_per_second,speedup,ms_per_batch,device_bytes\n");
  fprintf(j, "[\n");
  for (int i = 0; i < n; i++) {
    const dmx_vision_bench_row *r = &rows[i];
    fprintf(c, "%d,%s,%.2f,%.4f,%.4f,%zu\n", r->N, r->muxing, r->images_per_second, r->speedup, r->ms_per_batch,
            r->device_bytes);
    fprintf(j, "  {\"N\": %d, \"muxing\": \"%s\", \"images_per_second\": %.2f, \"speedup\": %.4f, \"ms_per_batch\": %.4f, "
               "\"device_bytes\": %zu}%s\n",
            r->N, r->muxing, r->images_per_second, r->speedup, r->ms_per_batch, r->device_bytes, i + 1 < n ? "," : "");
  }
  fprintf(j, "]\n");
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
