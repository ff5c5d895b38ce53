/* `datamux devices --peak`: what this device can do, measured through the same paths the model
 * uses: SGEMM through CLBlast (large square sizes, tuned parameters applied) and copy bandwidth
 * (device-to-device buffer copy, host-to-device and device-to-host). Cached per device as JSON in
 * <cache>/peak/<device name, non-alphanumerics as _>.json; `bench --train` reads it to turn GEMM
 * GFLOP/s into a utilisation. */
#ifndef DMX_PEAK_H
#define DMX_PEAK_H

#include <stdbool.h>
#include <stdio.h>

#include "host/runtime/runtime.h"

typedef struct {
  char device[256], platform[256], driver[128];
  double sgemm_gflops;       /* the best over the sizes tried */
  int sgemm_size;            /* the square size (m = n = k) that gave it */
  bool tuned;                /* CLBlast tuner files were applied */
  double d2d_gbps;           /* clEnqueueCopyBuffer, counting bytes read + written */
  double h2d_gbps, d2h_gbps; /* clEnqueueWriteBuffer / clEnqueueReadBuffer, blocking, from pageable memory */
  double seconds;            /* how long the measurement took */
  char measured_at[32];      /* UTC, ISO 8601 */
} dmx_peak;

typedef struct {
  int max_size;       /* largest square SGEMM size tried (default 4096; capped by memory) */
  double max_seconds; /* per size: timed repetitions stop after this much (default 2) */
  size_t copy_bytes;  /* buffer size of the copy tests (default 256 MiB; capped by the device) */
} dmx_peak_opts;

/* <cache>/peak/<device>-<gemm backend>.json for this runtime. */
void dmx_peak_path(dmx_runtime *rt, char *out, size_t cap);
/* Measures (progress lines to log when non-NULL). 0, or -1 with err. */
int dmx_peak_measure(dmx_runtime *rt, const dmx_peak_opts *o, dmx_peak *p, FILE *log, dmx_error *err);
/* Writes p as JSON atomically (folders created); 0 or -1 with err. */
int dmx_peak_save(const dmx_peak *p, const char *path, dmx_error *err);
/* Reads a file written by dmx_peak_save; 0, or -1 with err (missing file: err says to run
 * `datamux devices --peak`). */
int dmx_peak_load(const char *path, dmx_peak *p, dmx_error *err);
void dmx_peak_print(FILE *f, const dmx_peak *p);
/* The SGEMM peak measured now, in a second or two (copies skipped), for a utilisation taken side by
 * side with the GEMMs it rates: clocks and shared hosts drift between runs. 0 or -1 with err. */
int dmx_peak_measure_quick(dmx_runtime *rt, dmx_peak *p, dmx_error *err);

#endif
