/* The CLBlast backend: row-major SGEMM and strided-batched SGEMM over (buffer, offset) operands,
 * with a reused temporary buffer, and the per-device tuned parameters (tuner JSON files). */
#include <clblast_c.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/json.h"
#include "host/runtime/gemm.h"
#include "host/runtime/gemm_internal.h"

struct dmx_clblast_state {
  cl_mem temp; /* reused by CLBlastSgemmWithTempBuffer; grows, never shrinks */
  size_t temp_bytes;
};

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

dmx_clblast_state *dmx_clblast_create(dmx_runtime *rt) {
  dmx_clblast_state *s = dmx_calloc(1, sizeof *s);
  load_default_tuning(rt);
  return s;
}

void dmx_clblast_release(dmx_clblast_state *s) {
  if (!s) return;
  if (s->temp) clReleaseMemObject(s->temp);
  free(s);
}

void dmx_clblast_gemm(dmx_runtime *rt, dmx_clblast_state *s, const dmx_gemm_call *c) {
  CLBlastStatusCode st;
  if (c->batch > 1) {
    st = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, tr(c->ta), tr(c->tb), c->m, c->n, c->k, c->alpha, c->A.buf,
                                    c->A.off, c->lda, c->stride_a, c->B.buf, c->B.off, c->ldb, c->stride_b, c->beta,
                                    c->C.buf, c->C.off, c->ldc, c->stride_c, c->batch, &rt->queue, NULL);
    check_blast(st, "CLBlastSgemmStridedBatched", c->m, c->n, c->k, c->ta, c->tb);
    return;
  }
  size_t need = 0;
  st = CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, tr(c->ta), tr(c->tb), c->m, c->n, c->k, c->A.off, c->lda,
                                  c->B.off, c->ldb, c->C.off, c->ldc, &rt->queue, &need);
  check_blast(st, "CLBlastSGemmTempBufferSize", c->m, c->n, c->k, c->ta, c->tb);
  if (need < 64) need = 64;
  if (need > s->temp_bytes) {
    /* Grows only during the first steps (or a warm-up): never inside a steady-state step. */
    if (s->temp) clReleaseMemObject(s->temp);
    cl_int cst;
    s->temp = clCreateBuffer(rt->ctx, CL_MEM_READ_WRITE, need, NULL, &cst);
    DMX_CL_CHECK(cst);
    s->temp_bytes = need;
  }
  st = CLBlastSgemmWithTempBuffer(CLBlastLayoutRowMajor, tr(c->ta), tr(c->tb), c->m, c->n, c->k, c->alpha, c->A.buf,
                                  c->A.off, c->lda, c->B.buf, c->B.off, c->ldb, c->beta, c->C.buf, c->C.off, c->ldc,
                                  &rt->queue, NULL, s->temp);
  check_blast(st, "CLBlastSgemmWithTempBuffer", c->m, c->n, c->k, c->ta, c->tb);
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
