/* Device peak measurement and its per-device cache (host/peak.h). */
#include "host/perf/peak.h"

#include "host/base/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "host/perf/bench_common.h"
#include "host/runtime/gemm.h"

void dmx_peak_path(dmx_runtime *rt, char *out, size_t cap) {
  char dev[256];
  dmx_device_folder_name(rt->info.name, dev, sizeof dev);
  /* one peak per GEMM backend: the host BLAS and CLBlast reach different rates on one device */
  snprintf(out, cap, "%s/peak/%s-%s.json", dmx_cache_dir(), dev, dmx_gemm_backend_names[dmx_gemm_backend_of(rt)]);
}

/* Repeats fn until about max_seconds were spent (at least once, at most 100 times) after one
 * untimed call; returns seconds per call. Every call is finished before the clock stops. */
typedef void (*op_fn)(dmx_runtime *rt, void *ctx);
static double time_op(dmx_runtime *rt, op_fn fn, void *ctx, double max_seconds, int *reps_out) {
  fn(rt, ctx); /* compiles (CLBlast) or touches the pages */
  dmx_finish(rt);
  double t0 = dmx_now_seconds();
  fn(rt, ctx);
  dmx_finish(rt);
  double pilot = dmx_now_seconds() - t0;
  int reps = pilot > 0 ? (int)(max_seconds / pilot) : 100;
  if (reps < 1) reps = 1;
  if (reps > 100) reps = 100;
  t0 = dmx_now_seconds();
  for (int i = 0; i < reps; i++) fn(rt, ctx);
  dmx_finish(rt);
  if (reps_out) *reps_out = reps;
  return (dmx_now_seconds() - t0) / reps;
}

typedef struct {
  dmx_tensor a, b, c;
  size_t n, bytes;
  void *host;
} op_ctx;

static void op_sgemm(dmx_runtime *rt, void *p) {
  op_ctx *c = p;
  dmx_gemm(rt, false, false, c->n, c->n, c->n, 1.0f, c->a, c->n, c->b, c->n, 0.0f, c->c, c->n);
}
static void op_d2d(dmx_runtime *rt, void *p) {
  op_ctx *c = p;
  DMX_CL_CHECK(clEnqueueCopyBuffer(rt->queue, c->a.buf, c->b.buf, 0, 0, c->bytes, 0, NULL, NULL));
}
static void op_h2d(dmx_runtime *rt, void *p) {
  op_ctx *c = p;
  DMX_CL_CHECK(clEnqueueWriteBuffer(rt->queue, c->a.buf, CL_TRUE, 0, c->bytes, c->host, 0, NULL, NULL));
}
static void op_d2h(dmx_runtime *rt, void *p) {
  op_ctx *c = p;
  DMX_CL_CHECK(clEnqueueReadBuffer(rt->queue, c->a.buf, CL_TRUE, 0, c->bytes, c->host, 0, NULL, NULL));
}

/* The current UTC time, ISO 8601, into out. */
static void utc_now(char *out, size_t cap) {
  time_t now = time(NULL);
  struct tm tm;
  if (!gmtime_r(&now, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm)) snprintf(out, cap, "unknown");
}

/* The best SGEMM rate over square sizes into p->sgemm_gflops / sgemm_size (0 when none fitted). */
static void measure_sgemm(dmx_runtime *rt, int max_size, double max_seconds, dmx_peak *p, FILE *log) {
  /* SGEMM: square sizes doubling from 512 while they fit (three operands in half the memory, one
   * operand in one allocation) and one call takes less than the time cap */
  for (int n = 512; n <= max_size; n *= 2) {
    size_t floats = (size_t)n * n;
    if (floats * 4 > rt->info.max_alloc || 3.0 * floats * 4 > 0.5 * (double)rt->info.global_mem) break;
    op_ctx c = {.n = (size_t)n};
    c.a = dmx_buffer_create(rt, floats);
    c.b = dmx_buffer_create(rt, floats);
    c.c = dmx_buffer_create(rt, floats);
    dmx_fill(rt, c.a, 0.5f);
    dmx_fill(rt, c.b, 0.25f);
    int reps = 0;
    double s = time_op(rt, op_sgemm, &c, max_seconds, &reps);
    double gf = 2.0 * n * (double)n * n / s / 1e9;
    if (log) fprintf(log, "  SGEMM %d^3: %.2f GFLOP/s (%d timed call(s), %.1f ms each)\n", n, gf, reps, s * 1e3);
    if (gf > p->sgemm_gflops) {
      p->sgemm_gflops = gf;
      p->sgemm_size = n;
    }
    dmx_buffer_release(c.a);
    dmx_buffer_release(c.b);
    dmx_buffer_release(c.c);
    if (s * 8 > max_seconds) break; /* the next size costs 8x: it would not fit the cap */
  }
}

int dmx_peak_measure_quick(dmx_runtime *rt, dmx_peak *p, dmx_error *err) {
  memset(p, 0, sizeof *p);
  snprintf(p->device, sizeof p->device, "%s", rt->info.name);
  double start = dmx_now_seconds();
  measure_sgemm(rt, 4096, 0.5, p, NULL);
  if (p->sgemm_gflops <= 0) return dmx_fail(err, "no SGEMM size fitted %s's memory", rt->info.name);
  p->seconds = dmx_now_seconds() - start;
  utc_now(p->measured_at, sizeof p->measured_at);
  return 0;
}

int dmx_peak_measure(dmx_runtime *rt, const dmx_peak_opts *o0, dmx_peak *p, FILE *log, dmx_error *err) {
  dmx_peak_opts o = {.max_size = 4096, .max_seconds = 2.0, .copy_bytes = (size_t)256 << 20};
  if (o0) {
    if (o0->max_size > 0) o.max_size = o0->max_size;
    if (o0->max_seconds > 0) o.max_seconds = o0->max_seconds;
    if (o0->copy_bytes > 0) o.copy_bytes = o0->copy_bytes;
  }
  memset(p, 0, sizeof *p);
  snprintf(p->device, sizeof p->device, "%s", rt->info.name);
  snprintf(p->platform, sizeof p->platform, "%s", rt->info.platform_name);
  snprintf(p->driver, sizeof p->driver, "%s", rt->info.driver_version);
  char dir[4096];
  const char *nt = getenv("DATAMUX_NO_TUNING");
  p->tuned = dmx_bench_tuning_files(rt, dir, sizeof dir) > 0 && !(nt && *nt && strcmp(nt, "0") != 0);
  double start = dmx_now_seconds();
  measure_sgemm(rt, o.max_size, o.max_seconds, p, log);
  if (p->sgemm_gflops <= 0) return dmx_fail(err, "no SGEMM size fitted %s's memory", rt->info.name);
  /* copies: one buffer pair, sized to the device */
  size_t bytes = o.copy_bytes;
  if (bytes > rt->info.max_alloc) bytes = rt->info.max_alloc;
  if (2.0 * bytes > 0.5 * (double)rt->info.global_mem) bytes = (size_t)(rt->info.global_mem / 4);
  bytes &= ~(size_t)4095;
  op_ctx c = {.bytes = bytes};
  c.a = dmx_buffer_create(rt, bytes / 4);
  c.b = dmx_buffer_create(rt, bytes / 4);
  c.host = malloc(bytes);
  if (!c.host) {
    dmx_buffer_release(c.a);
    dmx_buffer_release(c.b);
    return dmx_fail(err, "cannot allocate %zu bytes of host memory for the copy test", bytes);
  }
  memset(c.host, 1, bytes);
  dmx_fill(rt, c.a, 1.0f);
  double s = time_op(rt, op_d2d, &c, o.max_seconds, NULL);
  p->d2d_gbps = 2.0 * bytes / s / 1e9; /* read + write */
  s = time_op(rt, op_h2d, &c, o.max_seconds, NULL);
  p->h2d_gbps = bytes / s / 1e9;
  s = time_op(rt, op_d2h, &c, o.max_seconds, NULL);
  p->d2h_gbps = bytes / s / 1e9;
  if (log)
    fprintf(log,
            "  copies of %.0f MiB: device-to-device %.2f GB/s (read + write), host-to-device %.2f GB/s, "
            "device-to-host %.2f GB/s\n",
            bytes / 1048576.0, p->d2d_gbps, p->h2d_gbps, p->d2h_gbps);
  free(c.host);
  dmx_buffer_release(c.a);
  dmx_buffer_release(c.b);
  p->seconds = dmx_now_seconds() - start;
  utc_now(p->measured_at, sizeof p->measured_at);
  return 0;
}

int dmx_peak_save(const dmx_peak *p, const char *path, dmx_error *err) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) {
    *slash = 0;
    if (dmx_mkdirs(dir, err)) return -1;
  }
  dmx_membuf m;
  if (dmx_membuf_open(&m, err)) return -1;
  fprintf(m.f, "{\n  \"device\": ");
  dmx_json_put_str(m.f, p->device);
  fprintf(m.f, ",\n  \"platform\": ");
  dmx_json_put_str(m.f, p->platform);
  fprintf(m.f, ",\n  \"driver_version\": ");
  dmx_json_put_str(m.f, p->driver);
  fprintf(m.f, ",\n  \"measured_at\": ");
  dmx_json_put_str(m.f, p->measured_at);
  fprintf(m.f,
          ",\n  \"sgemm_gflops\": %.4f,\n  \"sgemm_size\": %d,\n  \"tuned\": %s,\n  \"d2d_gbps\": %.4f,\n"
          "  \"h2d_gbps\": %.4f,\n  \"d2h_gbps\": %.4f,\n  \"seconds\": %.2f\n}\n",
          p->sgemm_gflops, p->sgemm_size, p->tuned ? "true" : "false", p->d2d_gbps, p->h2d_gbps, p->d2h_gbps,
          p->seconds);
  if (fclose(m.f) != 0) {
    free(m.text);
    return dmx_fail(err, "building %s failed: %s", path, strerror(errno));
  }
  int rc = dmx_write_file_atomic(path, m.text, m.len, err);
  free(m.text);
  return rc;
}

static int number(const dmx_json *root, const char *key, double *out) {
  return dmx_json_number(dmx_json_member(root, key), out) && isfinite(*out) ? 0 : -1;
}

static int string(const dmx_json *root, const char *key, char *out, size_t cap) {
  const char *s = dmx_json_string(dmx_json_member(root, key));
  if (!s) return -1;
  snprintf(out, cap, "%s", s);
  return 0;
}

int dmx_peak_load(const char *path, dmx_peak *p, dmx_error *err) {
  memset(p, 0, sizeof *p);
  dmx_error e2;
  dmx_json root;
  if (access(path, F_OK) != 0)
    return dmx_fail(err, "no measured peak for this device (%s: %s); run `datamux devices --peak` once", path,
                    strerror(errno));
  if (dmx_json_parse_file(path, "peak file", &root, &e2))
    return dmx_fail(err, "%s (delete it and measure again with `datamux devices --peak --remeasure`)", e2.msg);
  double size = 0, secs = 0;
  int bad = number(&root, "sgemm_gflops", &p->sgemm_gflops) || number(&root, "sgemm_size", &size) ||
            number(&root, "d2d_gbps", &p->d2d_gbps) || number(&root, "h2d_gbps", &p->h2d_gbps) ||
            number(&root, "d2h_gbps", &p->d2h_gbps) || string(&root, "device", p->device, sizeof p->device) ||
            string(&root, "measured_at", p->measured_at, sizeof p->measured_at);
  string(&root, "platform", p->platform, sizeof p->platform);
  string(&root, "driver_version", p->driver, sizeof p->driver);
  number(&root, "seconds", &secs);
  const dmx_json *t = dmx_json_member(&root, "tuned");
  p->tuned = t && t->type == DMX_JSON_TRUE;
  dmx_json_free(&root);
  p->sgemm_size = (int)size;
  p->seconds = secs;
  if (bad || p->sgemm_gflops <= 0)
    return dmx_fail(err, "%s is not a peak file written by `datamux devices --peak` (delete it and measure again)",
                    path);
  return 0;
}

void dmx_peak_print(FILE *f, const dmx_peak *p) {
  fprintf(f, "peak of %s (%s, driver %s), measured %s in %.0f s:\n", p->device, p->platform, p->driver, p->measured_at,
          p->seconds);
  fprintf(f, "  SGEMM (CLBlast, %s): %.2f GFLOP/s at %d^3\n",
          p->tuned ? "tuned parameters applied" : "CLBlast's built-in parameters", p->sgemm_gflops, p->sgemm_size);
  fprintf(f,
          "  copy bandwidth: device-to-device %.2f GB/s (read + write), host-to-device %.2f GB/s, device-to-host "
          "%.2f GB/s\n",
          p->d2d_gbps, p->h2d_gbps, p->d2h_gbps);
}
