/* The GEMM front end: the backend choice, and what every call does whatever the backend (the
 * profile span, statistics, timing by synchronisation). */
#include <stdlib.h>
#include <string.h>

#include "host/runtime/gemm.h"
#include "host/runtime/gemm_internal.h"

const char *const dmx_gemm_backend_names[] = {"auto", "clblast", "host_blas", NULL};

typedef struct {
  dmx_gemm_backend backend; /* DMX_GEMM_AUTO until chosen */
  dmx_clblast_state *clblast;
  char note[160]; /* the self-test's finding, for the start-up line */
  dmx_gemm_stats stats;
  /* profiling by synchronisation (DATAMUX_PROFILE): GEMMs finish the queue before and after, and
   * their wall time accumulates here, so a step's time splits into GEMMs and our kernels */
  bool time_gemms;
  double gemm_seconds;
} gemm_state;

static void release_state(void *p) {
  gemm_state *gs = p;
  dmx_clblast_release(gs->clblast);
  free(gs);
}

static void *make_state(dmx_runtime *rt) { return dmx_calloc(1, sizeof(gemm_state)); }

static gemm_state *raw_state(dmx_runtime *rt) { return dmx_ext_get(rt, DMX_EXT_GEMM, make_state, release_state); }

/* The state of rt with a backend chosen: the first GEMM of a runtime nobody chose for takes auto
 * (and DATAMUX_GEMM_BACKEND). */
static gemm_state *state(dmx_runtime *rt) {
  gemm_state *gs = raw_state(rt);
  if (gs->backend == DMX_GEMM_AUTO) {
    dmx_error err;
    if (dmx_gemm_select(rt, DMX_GEMM_AUTO, NULL, &err)) dmx_die("%s", err.msg);
  }
  return gs;
}

dmx_gemm_backend dmx_gemm_auto_backend(const dmx_device_info *d, const char **why) {
  if (!dmx_device_is_cpu(d)) {
    *why = dmx_device_is_simulator(d) ? "a simulator standing in for a GPU" : "not a CPU device";
    return DMX_GEMM_CLBLAST;
  }
  if (!d->native_kernels) {
    *why = "a CPU device without OpenCL native kernels";
    return DMX_GEMM_CLBLAST;
  }
  if (!dmx_host_blas_built()) {
    *why = "a CPU device, but this build has no host BLAS (install libopenblas-dev and rebuild)";
    return DMX_GEMM_CLBLAST;
  }
  *why = "a CPU device with OpenCL native kernels";
  return DMX_GEMM_HOST_BLAS;
}

/* DATAMUX_BLAS_THREADS, or the default: one per compute unit. The native kernel runs on one PoCL
 * worker while the in-order queue keeps the others idle (blocked on a condition variable), so the
 * BLAS's threads take those cores; measured on 2 cores: 1.9x on the dense GEMMs, and the whole
 * model faster too (README.md, Performance). */
static int blas_threads(const dmx_runtime *rt) {
  const char *v = getenv("DATAMUX_BLAS_THREADS");
  if (!v || !*v) return rt->info.compute_units > 0 ? (int)rt->info.compute_units : 1;
  char *end;
  long n = strtol(v, &end, 10);
  if (*end || n < 1 || n > 1024)
    dmx_die("DATAMUX_BLAS_THREADS is '%s': give the host BLAS's thread count, a number from 1 to 1024", v);
  return (int)n;
}

int dmx_gemm_use(dmx_runtime *rt, dmx_gemm_backend backend, dmx_error *err) {
  gemm_state *gs = raw_state(rt);
  if (backend == DMX_GEMM_AUTO) {
    const char *why;
    backend = dmx_gemm_auto_backend(&rt->info, &why);
  }
  gs->note[0] = 0;
  /* set whatever the backend: `bench --gemm` times the BLAS directly beside either one */
  if (dmx_host_blas_built()) dmx_host_blas_threads(blas_threads(rt));
  if (backend == DMX_GEMM_HOST_BLAS) {
    if (dmx_host_gemm_selftest(rt, gs->note, sizeof gs->note, err)) return -1;
  } else if (!gs->clblast) {
    gs->clblast = dmx_clblast_create(rt);
  }
  gs->backend = backend;
  return 0;
}

void dmx_gemm_describe(dmx_runtime *rt, char *out, size_t cap) {
  gemm_state *gs = state(rt);
  if (gs->backend == DMX_GEMM_HOST_BLAS) {
    int t = dmx_host_blas_threads(0);
    snprintf(out, cap, "host_blas: %s, %d thread%s, in OpenCL native kernels (%s)", dmx_host_blas_name(), t,
             t == 1 ? "" : "s", gs->note);
  } else {
    snprintf(out, cap, "clblast: CLBlast kernels");
  }
}

int dmx_gemm_select(dmx_runtime *rt, dmx_gemm_backend request, const char *origin, dmx_error *err) {
  char where[1200];
  const char *env = getenv("DATAMUX_GEMM_BACKEND");
  if (env && *env) {
    int i = 0;
    while (dmx_gemm_backend_names[i] && strcmp(dmx_gemm_backend_names[i], env)) i++;
    if (!dmx_gemm_backend_names[i])
      return dmx_fail(err, "DATAMUX_GEMM_BACKEND is '%s': use auto, clblast or host_blas", env);
    request = (dmx_gemm_backend)i;
    snprintf(where, sizeof where, "DATAMUX_GEMM_BACKEND=%s", env);
  } else if (origin && *origin) {
    snprintf(where, sizeof where, "%s gemm_backend: %s", origin, dmx_gemm_backend_names[request]);
  } else {
    snprintf(where, sizeof where, "gemm_backend: %s", dmx_gemm_backend_names[request]);
  }
  const char *why;
  dmx_gemm_backend want = request == DMX_GEMM_AUTO ? dmx_gemm_auto_backend(&rt->info, &why) : request;
  if (request == DMX_GEMM_HOST_BLAS) {
    if (!rt->info.native_kernels)
      return dmx_fail(err,
                      "%s: device '%s' (%s) does not run OpenCL native kernels (no CL_EXEC_NATIVE_KERNEL), so "
                      "the host BLAS cannot run in its queue; use gemm_backend: clblast or auto",
                      where, rt->info.name, dmx_device_type_name(rt->info.type));
    if (!dmx_host_blas_built())
      return dmx_fail(err,
                      "%s: this datamux was built without a host BLAS, so device '%s' cannot run one; install "
                      "libopenblas-dev (./scripts/install-deps.sh) and rebuild, or use gemm_backend: clblast or auto",
                      where, rt->info.name);
  }
  dmx_error why_not;
  if (dmx_gemm_use(rt, want, &why_not)) {
    if (request == DMX_GEMM_HOST_BLAS) return dmx_fail(err, "%s: %s; use gemm_backend: clblast", where, why_not.msg);
    if (rt->log) fprintf(rt->log, "gemm: %s; falling back to CLBlast\n", why_not.msg);
    if (dmx_gemm_use(rt, DMX_GEMM_CLBLAST, err)) return -1;
  }
  if (rt->log) {
    char line[600];
    dmx_gemm_describe(rt, line, sizeof line);
    fprintf(rt->log, "gemm: %s [%s]\n", line, where);
  }
  return 0;
}

dmx_gemm_backend dmx_gemm_backend_of(dmx_runtime *rt) { return state(rt)->backend; }

static double sync_mark(dmx_runtime *rt, gemm_state *gs) {
  if (!gs->time_gemms) return 0;
  dmx_finish(rt);
  return dmx_now_seconds();
}

static void sync_account(dmx_runtime *rt, gemm_state *gs, double t0) {
  if (!gs->time_gemms) return;
  dmx_finish(rt);
  gs->gemm_seconds += dmx_now_seconds() - t0;
}

static void run(dmx_runtime *rt, const dmx_gemm_call *c) {
  gemm_state *gs = state(rt);
  if (c->m == 0 || c->n == 0 || c->batch == 0) return;
  double ts = sync_mark(rt, gs);
  double t0 = dmx_now_seconds();
  /* markers around the call: CLBlast's own event would cover only its last kernel */
  cl_event before = dmx_span_begin(rt);
  if (gs->backend == DMX_GEMM_HOST_BLAS)
    dmx_host_gemm(rt, c);
  else
    dmx_clblast_gemm(rt, gs->clblast, c);
  if (before) {
    char label[80], batch[24] = "";
    if (c->batch > 1) snprintf(batch, sizeof batch, " x%zu", c->batch);
    snprintf(label, sizeof label, "%s %zux%zux%zu %c%c%s", rt->scope ? rt->scope : "gemm", c->m, c->n, c->k,
             c->ta ? 'T' : 'N', c->tb ? 'T' : 'N', batch);
    dmx_span_end(rt, before, 2.0 * (double)c->m * (double)c->n * (double)c->k * (double)c->batch, label);
  }
  gs->stats.calls++;
  gs->stats.host_seconds += dmx_now_seconds() - t0;
  sync_account(rt, gs, ts);
}

void dmx_gemm(dmx_runtime *rt, bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, dmx_tensor A, size_t lda,
              dmx_tensor B, size_t ldb, float beta, dmx_tensor C, size_t ldc) {
  dmx_gemm_call c = {ta, tb, m, n, k, alpha, beta, A, B, C, lda, ldb, ldc, 0, 0, 0, 1};
  run(rt, &c);
}

void dmx_gemm_batched(dmx_runtime *rt, bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, dmx_tensor A,
                      size_t lda, size_t stride_a, dmx_tensor B, size_t ldb, size_t stride_b, float beta, dmx_tensor C,
                      size_t ldc, size_t stride_c, size_t batch) {
  dmx_gemm_call c = {ta, tb, m, n, k, alpha, beta, A, B, C, lda, ldb, ldc, stride_a, stride_b, stride_c, batch};
  run(rt, &c);
}

void dmx_gemm_warmup(dmx_runtime *rt, const dmx_gemm_shape *shapes, int n) {
  size_t most = 0;
  for (int i = 0; i < n; i++) {
    const dmx_gemm_shape *s = &shapes[i];
    size_t b = s->batched ? s->batch : 1;
    size_t need = b * (s->m * s->k + s->k * s->n + s->m * s->n);
    if (need > most) most = need;
  }
  dmx_tensor buf = dmx_buffer_create(rt, most);
  dmx_fill(rt, buf, 0.0f);
  for (int i = 0; i < n; i++) {
    const dmx_gemm_shape *s = &shapes[i];
    size_t b = s->batched ? s->batch : 1;
    dmx_tensor A = buf, B = buf, C = buf;
    B.off = b * s->m * s->k;
    C.off = B.off + b * s->k * s->n;
    size_t lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    if (s->batched)
      dmx_gemm_batched(rt, s->ta, s->tb, s->m, s->n, s->k, 1.0f, A, lda, s->m * s->k, B, ldb, s->k * s->n, 0.0f, C,
                       s->n, s->m * s->n, s->batch);
    else
      dmx_gemm(rt, s->ta, s->tb, s->m, s->n, s->k, 1.0f, A, lda, B, ldb, 0.0f, C, s->n);
  }
  dmx_finish(rt);
  dmx_buffer_release(buf);
}

dmx_gemm_stats dmx_gemm_get_stats(dmx_runtime *rt) { return raw_state(rt)->stats; }

void dmx_gemm_set_timing(dmx_runtime *rt, bool on) { raw_state(rt)->time_gemms = on; }

double dmx_gemm_take_seconds(dmx_runtime *rt) {
  gemm_state *gs = raw_state(rt);
  double s = gs->gemm_seconds;
  gs->gemm_seconds = 0;
  return s;
}
