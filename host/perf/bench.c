/* `datamux bench --gemm` and `--build`: GEMM throughput and program build times (inference
 * throughput is in host/bench_throughput.c, training steps in host/bench_train.c). Everything timed here is timed to device completion (dmx_finish), after untimed warm-up calls
 * that compile the kernels (CLBlast compiles a routine on its first call; our programs are built on
 * a kernel's first use). */
#include "host/perf/bench.h"
#include "host/perf/bench_common.h"
#include "host/run/train.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/batch.h"
#include "data/dataset.h"
#include "host/runtime/cl_sources.h"
#include "host/runtime/gemm.h"
#include "host/runtime/runtime.h"
#include "layers/model.h"

/* ------------------------------------------------------------------ GEMM */

typedef struct {
  const char *name, *what;
  bool batched, ta, tb;
  size_t m, n, k, batch;
} gemm_case;

/* The model's GEMMs (row-major; linear layers compute X W^T: NT forward, NN dX, TN dW). */
static const gemm_case gemm_cases[] = {
    {"tiny_qkv_fwd", "tiny quickstart QKV projection, B*T = 24*67 rows", false, false, true, 1608, 384, 128, 1},
    {"tiny_ffn_up_fwd", "tiny FFN up projection", false, false, true, 1608, 512, 128, 1},
    {"tiny_ffn_down_fwd", "tiny FFN down projection", false, false, true, 1608, 128, 512, 1},
    {"tiny_ffn_up_dw", "tiny FFN up projection, weight gradient", false, true, false, 512, 128, 1608, 1},
    {"tiny_ffn_up_dx", "tiny FFN up projection, input gradient", false, false, false, 1608, 128, 512, 1},
    {"vocab_fwd", "retrieval vocabulary projection (600 rows)", false, false, true, 600, 50265, 128, 1},
    {"vocab_dw", "retrieval vocabulary projection, weight gradient", false, true, false, 50265, 128, 600, 1},
    {"base_qkv_fwd", "base model QKV projection, B*T = 24*131 rows", false, false, true, 3144, 2304, 768, 1},
    {"base_ffn_up_fwd", "base model FFN up projection", false, false, true, 3144, 3072, 768, 1},
    {"attn_scores", "attention Q K^T, strided-batched over B*H = 96", true, false, true, 67, 67, 32, 96},
    {"attn_values", "attention P V, strided-batched over B*H = 96", true, false, false, 67, 32, 67, 96},
    {"square_1024", "square 1024^3", false, false, false, 1024, 1024, 1024, 1},
};
#define N_GEMM_CASES (int)(sizeof gemm_cases / sizeof gemm_cases[0])

const char *const *dmx_bench_gemm_shape_names(void) {
  static const char *names[N_GEMM_CASES + 1];
  for (int i = 0; i < N_GEMM_CASES; i++) names[i] = gemm_cases[i].name;
  names[N_GEMM_CASES] = NULL;
  return names;
}

/* Checks every item of a comma-separated list against names[0..n); 0 or -1 naming the first unknown one. */
static int check_list(const char *flag, const char *list, const char *const *names, int n, dmx_error *err) {
  if (!*list) return dmx_fail(err, "%s needs at least one name", flag);
  for (const char *p = list;;) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    bool found = false;
    for (int i = 0; i < n && !found; i++) found = strlen(names[i]) == len && !strncmp(p, names[i], len);
    if (!found) {
      char all[1024] = "";
      for (int i = 0; i < n; i++) {
        strncat(all, names[i], sizeof all - strlen(all) - 1);
        if (i + 1 < n) strncat(all, " ", sizeof all - strlen(all) - 1);
      }
      return dmx_fail(err, "%s: unknown name '%.*s'; the names are: %s", flag, (int)(len < 100 ? len : 100), p, all);
    }
    if (!c) break;
    p = c + 1;
  }
  return 0;
}

int dmx_bench_check_shapes(const char *list, dmx_error *err) {
  return check_list("--shapes", list, dmx_bench_gemm_shape_names(), N_GEMM_CASES, err);
}

int dmx_bench_check_files(const char *list, dmx_error *err) {
  const char *names[64];
  int n = 0;
  for (const dmx_cl_source *s = dmx_cl_sources; s->name && n < 64; s++) names[n++] = s->name;
  return check_list("--files", list, names, n, err);
}

typedef struct {
  const gemm_case *c;
  bool skipped;
  char why[160];
  int reps;
  double first_ms, ms, gflops;
  double blas_gflops; /* the host BLAS called directly on host arrays; 0 without one */
} gemm_result;

/* The yardstick: the same shape through cblas_sgemm on host memory, with no OpenCL in between
 * (a batched case is a loop, as the host-BLAS backend runs it). */
typedef struct {
  float *A, *B, *C;
} direct_operands;

#ifdef DATAMUX_HAVE_HOST_BLAS
#include <cblas.h>
static void direct_open(direct_operands *d, const gemm_case *c) {
  size_t b = c->batched ? c->batch : 1;
  size_t na = b * c->m * c->k, nb = b * c->k * c->n, nc = b * c->m * c->n;
  d->A = dmx_malloc(na * sizeof(float));
  d->B = dmx_malloc(nb * sizeof(float));
  d->C = dmx_calloc(nc, sizeof(float));
  for (size_t i = 0; i < na; i++) d->A[i] = 0.01f;
  for (size_t i = 0; i < nb; i++) d->B[i] = 0.02f;
}
/* Seconds for `reps` calls. */
static double direct_time(const direct_operands *d, const gemm_case *c, int reps) {
  size_t b = c->batched ? c->batch : 1;
  size_t lda = c->ta ? c->m : c->k, ldb = c->tb ? c->k : c->n, ldc = c->n;
  double t0 = dmx_now_seconds();
  for (int i = 0; i < reps; i++)
    for (size_t q = 0; q < b; q++)
      cblas_sgemm(CblasRowMajor, c->ta ? CblasTrans : CblasNoTrans, c->tb ? CblasTrans : CblasNoTrans, (blasint)c->m,
                  (blasint)c->n, (blasint)c->k, 1.0f, d->A + q * c->m * c->k, (blasint)lda, d->B + q * c->k * c->n,
                  (blasint)ldb, 0.0f, d->C + q * c->m * c->n, (blasint)ldc);
  return dmx_now_seconds() - t0;
}
static int blas_threads_now(void) { return openblas_get_num_threads(); }
#else
static void direct_open(direct_operands *d, const gemm_case *c) { memset(d, 0, sizeof *d); }
static double direct_time(const direct_operands *d, const gemm_case *c, int reps) { return 0; }
static int blas_threads_now(void) { return 0; }
#endif
static void direct_close(direct_operands *d) {
  free(d->A);
  free(d->B);
  free(d->C);
}

/* Timed rounds of each shape: the device and the direct BLAS alternate, and each keeps its fastest
 * round, so a hiccup of this shared VM lands in one round of one side, not in the ratio. */
#define GEMM_ROUNDS 3

static void run_gemm_case(dmx_runtime *rt, const gemm_case *c, const dmx_bench_gemm_opts *o, gemm_result *r) {
  memset(r, 0, sizeof *r);
  r->c = c;
  size_t b = c->batched ? c->batch : 1;
  size_t na = b * c->m * c->k, nb = b * c->k * c->n, nc = b * c->m * c->n;
  size_t biggest = na > nb ? na : nb;
  if (nc > biggest) biggest = nc;
  double total_bytes = (double)(na + nb + nc) * sizeof(float);
  if ((cl_ulong)biggest * sizeof(float) > rt->info.max_alloc || total_bytes > 0.8 * (double)rt->info.global_mem) {
    r->skipped = true;
    snprintf(r->why, sizeof r->why, "needs %.0f MiB (largest operand %.0f MiB); the device allows %.0f MiB per buffer",
             total_bytes / 1048576.0, (double)biggest * sizeof(float) / 1048576.0,
             (double)rt->info.max_alloc / 1048576.0);
    return;
  }
  dmx_tensor A = dmx_buffer_create(rt, na), B = dmx_buffer_create(rt, nb), C = dmx_buffer_create(rt, nc);
  dmx_fill(rt, A, 0.01f);
  dmx_fill(rt, B, 0.02f);
  dmx_fill(rt, C, 0.0f);
  size_t lda = c->ta ? c->m : c->k, ldb = c->tb ? c->k : c->n, ldc = c->n;
#define RUN_ONCE()                                                                                                  \
  do {                                                                                                              \
    if (c->batched)                                                                                                 \
      dmx_gemm_batched(rt, c->ta, c->tb, c->m, c->n, c->k, 1.0f, A, lda, c->m * c->k, B, ldb, c->k * c->n, 0.0f, C, \
                       ldc, c->m * c->n, c->batch);                                                                 \
    else                                                                                                            \
      dmx_gemm(rt, c->ta, c->tb, c->m, c->n, c->k, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);                             \
  } while (0)
  dmx_finish(rt);
  /* first call: CLBlast compiles the routine (or loads it from its in-process cache) */
  double t0 = dmx_now_seconds();
  RUN_ONCE();
  dmx_finish(rt);
  r->first_ms = (dmx_now_seconds() - t0) * 1e3;
  /* a pilot call sizes the timed run to the time cap */
  t0 = dmx_now_seconds();
  RUN_ONCE();
  dmx_finish(rt);
  double pilot = dmx_now_seconds() - t0;
  int reps = o->repeat;
  /* the time cap covers all rounds of both sides */
  if (o->max_seconds > 0 && pilot > 0 && pilot * reps * GEMM_ROUNDS * 2 > o->max_seconds) {
    double fit = floor(o->max_seconds / (pilot * GEMM_ROUNDS * 2));
    reps = fit < 1 ? 1 : (int)fit;
  }
  direct_operands d;
  bool yardstick = dmx_host_blas_built();
  if (yardstick) {
    direct_open(&d, c);
    direct_time(&d, c, 1); /* its first call: pages and threads */
  }
  double dt = INFINITY, dd = INFINITY;
  for (int round = 0; round < GEMM_ROUNDS; round++) {
    t0 = dmx_now_seconds();
    for (int i = 0; i < reps; i++) RUN_ONCE();
    dmx_finish(rt);
    dt = fmin(dt, dmx_now_seconds() - t0);
    if (yardstick) dd = fmin(dd, direct_time(&d, c, reps));
  }
#undef RUN_ONCE
  double flop = 2.0 * (double)c->m * (double)c->n * (double)c->k * (double)b * reps;
  r->reps = reps;
  r->ms = dt / reps * 1e3;
  r->gflops = flop / dt / 1e9;
  if (yardstick) {
    r->blas_gflops = flop / dd / 1e9;
    direct_close(&d);
  }
  dmx_buffer_release(A);
  dmx_buffer_release(B);
  dmx_buffer_release(C);
}

static const char *op_name(const gemm_case *c) {
  static const char *ops[4] = {"NN", "NT", "TN", "TT"};
  return ops[(c->ta ? 2 : 0) + (c->tb ? 1 : 0)];
}

int dmx_bench_gemm(const dmx_bench_gemm_opts *o) {
  dmx_error err = {{0}};
  if (o->repeat < 1) {
    fprintf(stderr, "datamux bench: --repeat must be at least 1\n");
    return 1;
  }
  if (o->shapes && dmx_bench_check_shapes(o->shapes, &err)) {
    fprintf(stderr, "datamux bench: %s\n", err.msg);
    return 1;
  }
  if (dmx_bench_prepare_out_dir(o->out_dir, &err)) {
    fprintf(stderr, "datamux bench: %s\n", err.msg);
    return 1;
  }
  dmx_runtime *rt = dmx_bench_runtime(NULL, o->device, o->no_tuning, false);
  char tuning[4400];
  dmx_bench_tuning_status(rt, o->no_tuning, tuning, sizeof tuning);
  printf("CLBlast tuning: %s\n", tuning);
  char backend[600];
  dmx_gemm_describe(rt, backend, sizeof backend);
  printf(
      "GEMM (row-major SGEMM through dmx_gemm / dmx_gemm_batched, backend %s): first call untimed (compiles), then "
      "%d rounds of up to %d timed repetition(s)%s, each finished with dmx_finish; the fastest round counts\n",
      dmx_gemm_backend_names[dmx_gemm_backend_of(rt)], GEMM_ROUNDS, o->repeat,
      o->max_seconds > 0 ? " within the time cap" : "");
  printf("backend: %s\n", backend);
  if (dmx_host_blas_built())
    printf(
        "BLAS GFLOP/s: cblas_sgemm called directly on host arrays (%d thread(s)), the same shapes and repetitions, "
        "its rounds alternating with the device's; ratio = GFLOP/s / BLAS GFLOP/s\n",
        blas_threads_now());
  printf("%-18s %-3s %6s %6s %6s %5s %5s %12s %10s %9s %12s %6s\n", "shape", "op", "m", "n", "k", "batch", "reps",
         "first call ms", "ms", "GFLOP/s", "BLAS GFLOP/s", "ratio");
  gemm_result res[N_GEMM_CASES];
  int nres = 0;
  for (int i = 0; i < N_GEMM_CASES; i++) {
    const gemm_case *c = &gemm_cases[i];
    if (o->shapes && !dmx_bench_in_list(o->shapes, c->name)) continue;
    gemm_result *r = &res[nres++];
    run_gemm_case(rt, c, o, r);
    if (r->skipped)
      printf("%-18s %-3s %6zu %6zu %6zu %5zu skipped: %s\n", c->name, op_name(c), c->m, c->n, c->k,
             c->batched ? c->batch : (size_t)1, r->why);
    else
      printf("%-18s %-3s %6zu %6zu %6zu %5zu %5d %12.1f %10.3f %9.1f %12.1f %6.2f\n", c->name, op_name(c), c->m, c->n,
             c->k, c->batched ? c->batch : (size_t)1, r->reps, r->first_ms, r->ms, r->gflops, r->blas_gflops,
             r->blas_gflops > 0 ? r->gflops / r->blas_gflops : 0.0);
    fflush(stdout);
  }
  int rc = 0;
  if (o->out_dir) {
    dmx_membuf csv, js;
    if (dmx_membuf_open(&csv, &err) == 0) {
      fprintf(csv.f, "shape,op,m,n,k,batch,reps,first_call_ms,ms,gflops,blas_gflops,skipped\n");
      for (int i = 0; i < nres; i++) {
        const gemm_result *r = &res[i];
        fprintf(csv.f, "%s,%s,%zu,%zu,%zu,%zu,%d,%.3f,%.4f,%.3f,%.3f,%d\n", r->c->name, op_name(r->c), r->c->m, r->c->n,
                r->c->k, r->c->batched ? r->c->batch : (size_t)1, r->reps, r->first_ms, r->ms, r->gflops,
                r->blas_gflops, r->skipped ? 1 : 0);
      }
      if (dmx_membuf_commit(&csv, o->out_dir, "gemm.csv", &err)) rc = 1;
    } else {
      rc = 1;
    }
    if (rc == 0 && dmx_membuf_open(&js, &err) == 0) {
      fprintf(js.f, "{\n  \"benchmark\": \"gemm\",\n");
      dmx_bench_json_device(js.f, rt);
      fprintf(js.f, "  \"tuning\": ");
      dmx_json_put_str(js.f, tuning);
      fprintf(js.f, ",\n  \"gemm_backend_detail\": "); /* "gemm_backend" is in the device block */
      dmx_json_put_str(js.f, backend);
      fprintf(js.f, ",\n  \"tuning_applied\": %s,\n  \"repeat\": %d,\n  \"max_seconds\": %g,\n  \"shapes\": [\n",
              !o->no_tuning && strncmp(tuning, "applied", 7) == 0 ? "true" : "false", o->repeat, o->max_seconds);
      for (int i = 0; i < nres; i++) {
        const gemm_result *r = &res[i];
        fprintf(js.f, "    {\"shape\": \"%s\", \"what\": ", r->c->name);
        dmx_json_put_str(js.f, r->c->what);
        fprintf(js.f,
                ", \"op\": \"%s\", \"m\": %zu, \"n\": %zu, \"k\": %zu, \"batch\": %zu, \"reps\": %d, "
                "\"first_call_ms\": %.3f, \"ms\": %.4f, \"gflops\": %.3f, \"blas_gflops\": %.3f, \"skipped\": %s}%s\n",
                op_name(r->c), r->c->m, r->c->n, r->c->k, r->c->batched ? r->c->batch : (size_t)1, r->reps, r->first_ms,
                r->ms, r->gflops, r->blas_gflops, r->skipped ? "true" : "false", i + 1 < nres ? "," : "");
      }
      fprintf(js.f, "  ]\n}\n");
      if (dmx_membuf_commit(&js, o->out_dir, "gemm.json", &err)) rc = 1;
    } else if (rc == 0) {
      rc = 1;
    }
    if (rc) fprintf(stderr, "datamux bench: %s\n", err.msg);
  }
  dmx_runtime_destroy(rt);
  return rc;
}

/* ------------------------------------------------------------------ program builds */

typedef struct {
  const char *file;
  double cold_s, write_s, hit_s;
  cl_uint kernels;
  bool wrote, hit;
} build_result;

/* Removes <tmp>/datamux/programs/ * and the folders above it, up to tmp itself. */
static void remove_temp_cache(const char *tmp) {
  char dir[4096], path[4400];
  snprintf(dir, sizeof dir, "%s/datamux/programs", tmp);
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      if (unlink(path) != 0) fprintf(stderr, "datamux bench: warning: cannot remove %s: %s\n", path, strerror(errno));
    }
    closedir(d);
    rmdir(dir);
  }
  snprintf(dir, sizeof dir, "%s/datamux", tmp);
  rmdir(dir);
  if (rmdir(tmp) != 0) fprintf(stderr, "datamux bench: warning: cannot remove %s: %s\n", tmp, strerror(errno));
}

static double timed_build(dmx_runtime *rt, const dmx_cl_source *s, cl_uint *kernels) {
  double t0 = dmx_now_seconds();
  size_t len = 0;
  char *src = dmx_program_source(s->name, &len);
  cl_program p = dmx_build_program(rt, s->name, src, len, NULL);
  double dt = dmx_now_seconds() - t0;
  free(src);
  if (kernels) DMX_CL_CHECK(clCreateKernelsInProgram(p, 0, NULL, kernels));
  DMX_CL_CHECK(clReleaseProgram(p));
  return dt;
}

int dmx_bench_build(const dmx_bench_build_opts *o) {
  dmx_error err = {{0}};
  if ((o->files && dmx_bench_check_files(o->files, &err)) || dmx_bench_prepare_out_dir(o->out_dir, &err)) {
    fprintf(stderr, "datamux bench: %s\n", err.msg);
    return 1;
  }
  /* Driver caches would turn "cold" builds into lookups: PoCL's kernel cache and NVIDIA's compute
   * cache are off for this process unless the user set the variables. */
  bool pocl_cache_env = getenv("POCL_KERNEL_CACHE") != NULL;
  if (setenv("POCL_KERNEL_CACHE", "0", 0) != 0 || setenv("CUDA_CACHE_DISABLE", "1", 0) != 0) {
    fprintf(stderr, "datamux bench: setenv failed: %s\n", strerror(errno));
    return 1;
  }
  dmx_runtime *rt = dmx_bench_runtime(NULL, o->device, false, false);
  printf("driver caches: POCL_KERNEL_CACHE=%s%s, CUDA_CACHE_DISABLE=%s\n", getenv("POCL_KERNEL_CACHE"),
         pocl_cache_env ? " (yours)" : "", getenv("CUDA_CACHE_DISABLE"));
  /* our binary cache goes to a fresh folder, so the first cached build really writes */
  char tmp[] = "/tmp/datamux-bench-cache-XXXXXX";
  if (!mkdtemp(tmp)) {
    fprintf(stderr, "datamux bench: cannot create a temporary cache folder: %s\n", strerror(errno));
    dmx_runtime_destroy(rt);
    return 1;
  }
  const char *old_xdg = getenv("XDG_CACHE_HOME"), *old_nc = getenv("DATAMUX_NO_CACHE");
  char *saved_xdg = old_xdg ? dmx_strdup(old_xdg) : NULL, *saved_nc = old_nc ? dmx_strdup(old_nc) : NULL;
  if (setenv("XDG_CACHE_HOME", tmp, 1) != 0) dmx_die("setenv failed: %s", strerror(errno));
  printf(
      "program builds of the embedded cl/ sources (default options): cold = DATAMUX_NO_CACHE=1 (compile "
      "from source); write = cache on, empty cache (compile + write the binary); hit = cache on again (load the "
      "binary); temporary cache %s/datamux\n",
      tmp);
  printf("%-16s %7s %9s %9s %9s\n", "file", "kernels", "cold s", "write s", "hit s");
  build_result res[64];
  int n = 0;
  double tot_cold = 0, tot_write = 0, tot_hit = 0;
  for (const dmx_cl_source *s = dmx_cl_sources; s->name && n < 64; s++) {
    if (o->files && !dmx_bench_in_list(o->files, s->name)) continue;
    build_result *r = &res[n++];
    memset(r, 0, sizeof *r);
    r->file = s->name;
    if (setenv("DATAMUX_NO_CACHE", "1", 1) != 0) dmx_die("setenv failed: %s", strerror(errno));
    r->cold_s = timed_build(rt, s, &r->kernels);
    if (unsetenv("DATAMUX_NO_CACHE") != 0) dmx_die("unsetenv failed: %s", strerror(errno));
    int writes = rt->stat_cache_writes, hits = rt->stat_cache_hits;
    r->write_s = timed_build(rt, s, NULL);
    r->wrote = rt->stat_cache_writes > writes;
    r->hit_s = timed_build(rt, s, NULL);
    r->hit = rt->stat_cache_hits > hits;
    tot_cold += r->cold_s;
    tot_write += r->write_s;
    tot_hit += r->hit_s;
    printf("%-16s %7u %9.3f %9.3f %9.3f%s%s\n", r->file, r->kernels, r->cold_s, r->write_s, r->hit_s,
           r->wrote ? "" : "  (no binary written: the driver gives none)",
           r->hit || !r->wrote ? "" : "  (no cache hit)");
    fflush(stdout);
  }
  printf("%-16s %7s %9.3f %9.3f %9.3f\n", "total", "", tot_cold, tot_write, tot_hit);
  if (strstr(rt->info.platform_name, "Portable Computing Language"))
    printf(
        "note: PoCL generates machine code lazily (at a kernel's first launch, or when the program binary is "
        "requested), so on PoCL 'cold' is the front end only and 'write' includes machine code for every kernel\n");
  int rc = (saved_xdg ? setenv("XDG_CACHE_HOME", saved_xdg, 1) : unsetenv("XDG_CACHE_HOME")) |
           (saved_nc ? setenv("DATAMUX_NO_CACHE", saved_nc, 1) : unsetenv("DATAMUX_NO_CACHE"));
  if (rc != 0) dmx_die("restoring the environment failed: %s", strerror(errno));
  free(saved_xdg);
  free(saved_nc);
  remove_temp_cache(tmp);
  if (o->out_dir) {
    dmx_membuf csv, js;
    if (dmx_membuf_open(&csv, &err) == 0) {
      fprintf(csv.f, "file,kernels,cold_s,write_s,hit_s,cache_written,cache_hit\n");
      for (int i = 0; i < n; i++)
        fprintf(csv.f, "%s,%u,%.4f,%.4f,%.4f,%d,%d\n", res[i].file, res[i].kernels, res[i].cold_s, res[i].write_s,
                res[i].hit_s, res[i].wrote, res[i].hit);
      fprintf(csv.f, "total,,%.4f,%.4f,%.4f,,\n", tot_cold, tot_write, tot_hit);
      if (dmx_membuf_commit(&csv, o->out_dir, "build.csv", &err)) rc = 1;
    } else {
      rc = 1;
    }
    if (rc == 0 && dmx_membuf_open(&js, &err) == 0) {
      fprintf(js.f, "{\n  \"benchmark\": \"build\",\n");
      dmx_bench_json_device(js.f, rt);
      fprintf(js.f, "  \"pocl_kernel_cache\": ");
      dmx_json_put_str(js.f, getenv("POCL_KERNEL_CACHE"));
      fprintf(js.f, ",\n  \"files\": [\n");
      for (int i = 0; i < n; i++)
        fprintf(js.f,
                "    {\"file\": \"%s\", \"kernels\": %u, \"cold_s\": %.4f, \"write_s\": %.4f, \"hit_s\": %.4f, "
                "\"cache_written\": %s, \"cache_hit\": %s}%s\n",
                res[i].file, res[i].kernels, res[i].cold_s, res[i].write_s, res[i].hit_s,
                res[i].wrote ? "true" : "false", res[i].hit ? "true" : "false", i + 1 < n ? "," : "");
      fprintf(js.f, "  ],\n  \"total\": {\"cold_s\": %.4f, \"write_s\": %.4f, \"hit_s\": %.4f}\n}\n", tot_cold,
              tot_write, tot_hit);
      if (dmx_membuf_commit(&js, o->out_dir, "build.json", &err)) rc = 1;
    } else if (rc == 0) {
      rc = 1;
    }
    if (rc) fprintf(stderr, "datamux bench: %s\n", err.msg);
  }
  dmx_runtime_destroy(rt);
  return rc;
}
