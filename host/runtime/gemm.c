/* CLBlast wrapper: row-major SGEMM and strided-batched SGEMM over (buffer, offset) operands,
 * with a reused temporary buffer and per-device tuned parameters. */
#include "host/runtime/gemm.h"

#include "host/base/json.h"

#include <clblast_c.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  cl_mem temp; /* reused by CLBlastSgemmWithTempBuffer; grows, never shrinks */
  size_t temp_bytes;
  dmx_gemm_stats stats;
  /* profiling by synchronisation (DATAMUX_PROFILE): GEMMs finish the queue before and after, and
   * their wall time accumulates here, so a step's time splits into CLBlast and our kernels */
  bool time_gemms;
  double gemm_seconds;
} gemm_state;

static void release_state(void *p) {
  gemm_state *gs = p;
  if (gs->temp) clReleaseMemObject(gs->temp);
  free(gs);
}

/* The tuned CLBlast parameters of this device (<cache>/clblast/<device>/), applied before the
 * first GEMM unless DATAMUX_NO_TUNING is set. A malformed file ends the process. */
static void load_default_tuning(dmx_runtime *rt) {
  const char *no_tuning = getenv("DATAMUX_NO_TUNING");
  if (no_tuning && *no_tuning && strcmp(no_tuning, "0") != 0) return;
  dmx_error err;
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/clblast", dmx_cache_dir());
  int applied = dmx_gemm_load_tuning(rt, dir, &err);
  if (applied < 0) dmx_die("%s (delete or fix the file, or set DATAMUX_NO_TUNING=1, to continue)", err.msg);
  if (applied > 0 && rt->log)
    fprintf(rt->log, "applied %d tuned CLBlast parameter set(s) from %s/<device> (DATAMUX_NO_TUNING=1 ignores them)\n",
            applied, dir);
}

static void *make_state(dmx_runtime *rt) { return dmx_calloc(1, sizeof(gemm_state)); }

/* The GEMM state of rt; the first call creates it and then applies the device's tuned parameters
 * (which asks for the state again and finds it). */
static gemm_state *state(dmx_runtime *rt) {
  gemm_state *gs = rt->ext[DMX_EXT_GEMM].state;
  if (gs) return gs;
  gs = dmx_ext_get(rt, DMX_EXT_GEMM, make_state, release_state);
  load_default_tuning(rt);
  return gs;
}

/* CLBlast's status names; the OpenCL codes it passes through go to dmx_cl_status_name. */
/* clang-format off */
const char *dmx_clblast_status_name(int s) {
  switch (s) {
#define C(x) \
  case x:    \
    return #x;
    C(CLBlastSuccess) C(CLBlastOpenCLCompilerNotAvailable) C(CLBlastTempBufferAllocFailure)
    C(CLBlastOpenCLOutOfResources) C(CLBlastOpenCLOutOfHostMemory) C(CLBlastOpenCLBuildProgramFailure)
    C(CLBlastInvalidValue) C(CLBlastInvalidCommandQueue) C(CLBlastInvalidMemObject) C(CLBlastInvalidBinary)
    C(CLBlastInvalidBuildOptions) C(CLBlastInvalidProgram) C(CLBlastInvalidProgramExecutable)
    C(CLBlastInvalidKernelName) C(CLBlastInvalidKernelDefinition) C(CLBlastInvalidKernel)
    C(CLBlastInvalidArgIndex) C(CLBlastInvalidArgValue) C(CLBlastInvalidArgSize) C(CLBlastInvalidKernelArgs)
    C(CLBlastInvalidLocalNumDimensions) C(CLBlastInvalidLocalThreadsTotal) C(CLBlastInvalidLocalThreadsDim)
    C(CLBlastInvalidGlobalOffset) C(CLBlastInvalidEventWaitList) C(CLBlastInvalidEvent)
    C(CLBlastInvalidOperation) C(CLBlastInvalidBufferSize) C(CLBlastInvalidGlobalWorkSize)
    C(CLBlastNotImplemented) C(CLBlastInvalidMatrixA) C(CLBlastInvalidMatrixB) C(CLBlastInvalidMatrixC)
    C(CLBlastInvalidVectorX) C(CLBlastInvalidVectorY) C(CLBlastInvalidDimension) C(CLBlastInvalidLeadDimA)
    C(CLBlastInvalidLeadDimB) C(CLBlastInvalidLeadDimC) C(CLBlastInvalidIncrementX) C(CLBlastInvalidIncrementY)
    C(CLBlastInsufficientMemoryA) C(CLBlastInsufficientMemoryB) C(CLBlastInsufficientMemoryC)
    C(CLBlastInsufficientMemoryX) C(CLBlastInsufficientMemoryY) C(CLBlastInsufficientMemoryTemp)
    C(CLBlastInvalidBatchCount) C(CLBlastInvalidOverrideKernel) C(CLBlastMissingOverrideParameter)
    C(CLBlastInvalidLocalMemUsage) C(CLBlastNoHalfPrecision) C(CLBlastNoDoublePrecision)
    C(CLBlastInvalidVectorScalar) C(CLBlastInsufficientMemoryScalar) C(CLBlastDatabaseError)
    C(CLBlastUnknownError) C(CLBlastUnexpectedError)
#undef C
    default:
      return dmx_cl_status_name(s);
  }
}
/* clang-format on */

static void check_blast(CLBlastStatusCode st, const char *what, size_t m, size_t n, size_t k, bool ta, bool tb) {
  if (st == CLBlastSuccess) return;
  dmx_die("%s(%s%s, m=%zu n=%zu k=%zu) failed: %s (%d)%s", what, ta ? "T" : "N", tb ? "T" : "N", m, n, k,
          dmx_clblast_status_name(st), (int)st,
          st == CLBlastInvalidLocalMemUsage ? " (tuned parameters need more local memory than the device has: "
                                              "delete the tuning files in the cache dir)"
                                            : "");
}

static CLBlastTranspose tr(bool t) { return t ? CLBlastTransposeYes : CLBlastTransposeNo; }

static double sync_mark(dmx_runtime *rt) {
  if (!state(rt)->time_gemms) return 0;
  dmx_finish(rt);
  return dmx_now_seconds();
}

static void sync_account(dmx_runtime *rt, double t0) {
  gemm_state *gs = state(rt);
  if (!gs->time_gemms) return;
  dmx_finish(rt);
  gs->gemm_seconds += dmx_now_seconds() - t0;
}

void dmx_gemm(dmx_runtime *rt, bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, dmx_tensor A, size_t lda,
              dmx_tensor B, size_t ldb, float beta, dmx_tensor C, size_t ldc) {
  gemm_state *gs = state(rt);
  double ts = sync_mark(rt);
  double t0 = dmx_now_seconds();
  size_t need = 0;
  CLBlastStatusCode st = CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, A.off, lda, B.off,
                                                    ldb, C.off, ldc, &rt->queue, &need);
  check_blast(st, "CLBlastSGemmTempBufferSize", m, n, k, ta, tb);
  if (need > gs->temp_bytes) {
    /* Grows only during the first steps (or a warm-up): never inside a steady-state step. */
    if (gs->temp) clReleaseMemObject(gs->temp);
    cl_int cst;
    gs->temp = clCreateBuffer(rt->ctx, CL_MEM_READ_WRITE, need, NULL, &cst);
    DMX_CL_CHECK(cst);
    gs->temp_bytes = need;
  }
  if (!gs->temp) {
    cl_int cst;
    gs->temp = clCreateBuffer(rt->ctx, CL_MEM_READ_WRITE, 64, NULL, &cst);
    DMX_CL_CHECK(cst);
    gs->temp_bytes = 64;
  }
  /* markers around the call: CLBlast's own event would cover only its last kernel */
  cl_event before = dmx_span_begin(rt);
  st = CLBlastSgemmWithTempBuffer(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, alpha, A.buf, A.off, lda, B.buf,
                                  B.off, ldb, beta, C.buf, C.off, ldc, &rt->queue, NULL, gs->temp);
  check_blast(st, "CLBlastSgemmWithTempBuffer", m, n, k, ta, tb);
  if (before) {
    char label[64];
    snprintf(label, sizeof label, "%s %zux%zux%zu %c%c", rt->scope ? rt->scope : "gemm", m, n, k, ta ? 'T' : 'N',
             tb ? 'T' : 'N');
    dmx_span_end(rt, before, 2.0 * (double)m * (double)n * (double)k, label);
  }
  gs->stats.calls++;
  gs->stats.host_seconds += dmx_now_seconds() - t0;
  sync_account(rt, ts);
}

void dmx_gemm_batched(dmx_runtime *rt, bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, dmx_tensor A,
                      size_t lda, size_t stride_a, dmx_tensor B, size_t ldb, size_t stride_b, float beta, dmx_tensor C,
                      size_t ldc, size_t stride_c, size_t batch) {
  gemm_state *gs = state(rt);
  double t0 = dmx_now_seconds();
  if (batch == 1) {
    dmx_gemm(rt, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  double ts = sync_mark(rt);
  cl_event before = dmx_span_begin(rt);
  CLBlastStatusCode st = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, tr(ta), tr(tb), m, n, k, alpha, A.buf, A.off,
                                                    lda, stride_a, B.buf, B.off, ldb, stride_b, beta, C.buf, C.off, ldc,
                                                    stride_c, batch, &rt->queue, NULL);
  check_blast(st, "CLBlastSgemmStridedBatched", m, n, k, ta, tb);
  if (before) {
    char label[64];
    snprintf(label, sizeof label, "%s %zux%zux%zu %c%c x%zu", rt->scope ? rt->scope : "gemm", m, n, k, ta ? 'T' : 'N',
             tb ? 'T' : 'N', batch);
    dmx_span_end(rt, before, 2.0 * (double)m * (double)n * (double)k * (double)batch, label);
  }
  gs->stats.calls++;
  gs->stats.host_seconds += dmx_now_seconds() - t0;
  sync_account(rt, ts);
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

/* ---------------------------------------------------------------- tuning files */

int dmx_gemm_apply_tuning_file(dmx_runtime *rt, const char *path, dmx_error *err) {
  char family[64], precision[16], params[1024];
  dmx_error why;
  dmx_json root;
  if (dmx_json_parse_file(path, "CLBlast tuner file", &root, &why))
    return dmx_fail(err, "%s (not a CLBlast tuner result: it needs kernel_family, precision and best_parameters)",
                    why.msg);
  int bad = dmx_json_copy_string(&root, path, "kernel_family", family, sizeof family, &why) ||
            dmx_json_copy_string(&root, path, "precision", precision, sizeof precision, &why) ||
            dmx_json_copy_string(&root, path, "best_parameters", params, sizeof params, &why);
  dmx_json_free(&root);
  if (bad)
    return dmx_fail(err, "%s (not a CLBlast tuner result: it needs kernel_family, precision and best_parameters)",
                    why.msg);
  if (strcmp(precision, "32") != 0) return 0; /* only single precision is used */
  const char *kernel;
  if (!strncmp(family, "xgemm_direct", 12))
    kernel = "XgemmDirect";
  else if (!strncmp(family, "xgemm", 5))
    kernel = "Xgemm";
  else if (strstr(family, "gemm_routine") || strstr(family, "routine_xgemm"))
    kernel = "GemmRoutine"; /* XGEMM_MIN_INDIRECT_SIZE: where the direct kernel hands over */
  else
    return 0; /* other routines' tuning is not ours to apply */
  const char *names[32];
  size_t values[32];
  char names_buf[32][32];
  size_t count = 0;
  for (char *tok = strtok(params, " "); tok; tok = strtok(NULL, " ")) {
    char *eq = strchr(tok, '=');
    if (!eq) return dmx_fail(err, "%s: malformed best_parameters entry '%s'", path, tok);
    *eq = 0;
    if (!strcmp(tok, "PRECISION")) continue;
    if (count == 32) return dmx_fail(err, "%s: too many parameters", path);
    char *end;
    long v = strtol(eq + 1, &end, 10);
    if (*end || v < 0) return dmx_fail(err, "%s: parameter %s has a bad value '%s'", path, tok, eq + 1);
    snprintf(names_buf[count], sizeof names_buf[count], "%s", tok);
    names[count] = names_buf[count];
    values[count] = (size_t)v;
    count++;
  }
  CLBlastStatusCode st =
      CLBlastOverrideParameters(rt->info.device, kernel, CLBlastPrecisionSingle, count, names, values);
  if (st != CLBlastSuccess)
    return dmx_fail(err, "%s: CLBlastOverrideParameters(%s) rejected it: %s", path, kernel,
                    dmx_clblast_status_name(st));
  return 1;
}

int dmx_gemm_load_tuning(dmx_runtime *rt, const char *dir, dmx_error *err) {
  char dev[256], path[4096];
  dmx_device_folder_name(rt->info.name, dev, sizeof dev);
  snprintf(path, sizeof path, "%s/%s", dir, dev);
  DIR *d = opendir(path);
  if (!d) return 0;
  int applied = 0;
  struct dirent *e;
  /* Apply in name order so that a later, more specific file wins deterministically. */
  char **names = NULL;
  int n = 0;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l > 5 && !strcmp(e->d_name + l - 5, ".json")) {
      names = dmx_realloc(names, (size_t)(n + 1) * sizeof *names);
      names[n++] = dmx_strdup(e->d_name);
    }
  }
  closedir(d);
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
      char *t = names[j];
      names[j] = names[j - 1];
      names[j - 1] = t;
    }
  int rc = 0;
  for (int i = 0; i < n; i++) {
    char file[4096 + 256];
    snprintf(file, sizeof file, "%s/%s", path, names[i]);
    if (rc == 0) {
      int r = dmx_gemm_apply_tuning_file(rt, file, err);
      if (r < 0)
        rc = -1;
      else
        applied += r;
    }
    free(names[i]);
  }
  free(names);
  return rc < 0 ? -1 : applied;
}

dmx_gemm_stats dmx_gemm_get_stats(dmx_runtime *rt) { return state(rt)->stats; }

void dmx_gemm_set_timing(dmx_runtime *rt, bool on) { state(rt)->time_gemms = on; }

double dmx_gemm_take_seconds(dmx_runtime *rt) {
  gemm_state *gs = state(rt);
  double s = gs->gemm_seconds;
  gs->gemm_seconds = 0;
  return s;
}
