/* Inference throughput of the vision models vs N (images/s), the paper's throughput measurement
 * applied to the vision notebook: eval mode, no backward, B groups of N images per batch. */
#ifndef DMX_BENCH_VISION_H
#define DMX_BENCH_VISION_H

#include <stdio.h>

#include "host/config/config.h"
#include "host/runtime/runtime.h"

typedef struct {
  int N; /* 1 with muxing none = the plain (vanilla) model */
  const char *muxing;
  double images_per_second, ms_per_batch;
  double ref_images_per_second; /* the plain model's, timed alongside this row (0 for the plain row itself) */
  double speedup;               /* images_per_second / ref_images_per_second (1 for the plain row) */
  size_t device_bytes;
} dmx_vision_bench_row;

/* Times e's vision model (e->vision, batch e->train.batch_size groups) at every N of Ns, after a
 * vanilla row (plain model, N = 1). e->vision.muxing is used for N > 1 (nonlinear_expand when it is
 * none). Synthetic images in [0, 1]; `warmup` untimed batches, then `batches` timed ones, each
 * finished on the device; for every N a plain model runs alongside in alternate batches and the
 * speedup is over it. rows has room for n_Ns + 1 entries; returns the count written, or -1
 * with err. Prints a table to log when non-NULL. */
int dmx_bench_vision(dmx_runtime *rt, const dmx_experiment *e, const int *Ns, int n_Ns, int warmup, int batches,
                     dmx_vision_bench_row *rows, FILE *log, dmx_error *err);

/* Writes rows as <dir>/vision_throughput.csv and .json (with the device block of every bench JSON,
 * for `datamux report`). 0 or -1 with err. */
int dmx_bench_vision_write(const dmx_runtime *rt, const char *dir, const dmx_vision_bench_row *rows, int n,
                           dmx_error *err);
#endif
