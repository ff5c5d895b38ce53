/* `datamux bench`: GEMM throughput, program build times and inference throughput versus N.
 * Everything timed here is timed to device completion (dmx_finish), after untimed warm-up calls
 * that compile the kernels (CLBlast compiles a routine on its first call; our programs are built on
 * a kernel's first use). */
#include "host/bench.h"
#include "host/train.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/batch.h"
#include "data/dataset.h"
#include "host/cl_sources.h"
#include "host/gemm.h"
#include "host/runtime.h"
#include "layers/model.h"

/* ------------------------------------------------------------------ shared helpers */

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

/* A memory stream for building a file's text; written atomically by finish_file. */
typedef struct {
  char *text;
  size_t len;
  FILE *f;
} membuf;

static int membuf_open(membuf *m, dmx_error *err) {
  m->text = NULL;
  m->len = 0;
  m->f = open_memstream(&m->text, &m->len);
  if (!m->f) return dmx_fail(err, "open_memstream failed: %s", strerror(errno));
  return 0;
}

static int membuf_write(membuf *m, const char *dir, const char *name, char *written, size_t cap, dmx_error *err) {
  if (fclose(m->f) != 0) {
    free(m->text);
    return dmx_fail(err, "building %s failed: %s", name, strerror(errno));
  }
  snprintf(written, cap, "%s/%s", dir, name);
  int rc = dmx_write_file_atomic(written, m->text, m->len, err);
  free(m->text);
  m->text = NULL;
  return rc;
}

static void sanitize_name(const char *in, char *out, size_t cap) {
  size_t n = 0;
  for (; *in && n + 1 < cap; in++)
    out[n++] = (char)((*in >= 'a' && *in <= 'z') || (*in >= 'A' && *in <= 'Z') || (*in >= '0' && *in <= '9') ? *in : '_');
  out[n] = 0;
}

/* Where dmx_runtime_create looks for tuner files for this device, and how many .json files are there. */
static int tuning_files(const dmx_runtime *rt, char *dir, size_t cap) {
  char dev[256];
  sanitize_name(rt->info.name, dev, sizeof dev);
  snprintf(dir, cap, "%s/clblast/%s", dmx_cache_dir(), dev);
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    size_t l = strlen(e->d_name);
    if (l > 5 && !strcmp(e->d_name + l - 5, ".json")) n++;
  }
  closedir(d);
  return n;
}

static void tuning_status(const dmx_runtime *rt, bool no_tuning, char *out, size_t cap) {
  char dir[4096];
  int n = tuning_files(rt, dir, sizeof dir);
  if (no_tuning)
    snprintf(out, cap, "ignored (--no-tuning): CLBlast's built-in parameters; %d tuner file(s) in %s not applied", n,
             dir);
  else if (n == 0)
    snprintf(out, cap, "none: no tuner files in %s, CLBlast's built-in parameters", dir);
  else
    snprintf(out, cap, "applied: %d tuner file(s) in %s", n, dir);
}

/* The runtime, optionally without the tuned CLBlast parameters (DATAMUX_NO_TUNING=1 makes
 * dmx_runtime_create skip the tuner files). */
static dmx_runtime *create_runtime(const char *device, bool no_tuning) {
  if (no_tuning && setenv("DATAMUX_NO_TUNING", "1", 1) != 0) dmx_die("setenv(DATAMUX_NO_TUNING) failed: %s", strerror(errno));
  return dmx_runtime_create(device, false, stdout);
}

static const char *device_type_name(cl_device_type t) {
  if (t & CL_DEVICE_TYPE_GPU) return "GPU";
  if (t & CL_DEVICE_TYPE_CPU) return "CPU";
  if (t & CL_DEVICE_TYPE_ACCELERATOR) return "accelerator";
  return "other";
}

static void json_device(FILE *f, const dmx_runtime *rt) {
  fprintf(f, "  \"device\": ");
  json_str(f, rt->info.name);
  fprintf(f, ",\n  \"device_type\": \"%s\",\n  \"platform\": ", device_type_name(rt->info.type));
  json_str(f, rt->info.platform_name);
  fprintf(f, ",\n  \"driver_version\": ");
  json_str(f, rt->info.driver_version);
  fprintf(f, ",\n  \"compute_units\": %u,\n", rt->info.compute_units);
}

static int prepare_out_dir(const char *dir, dmx_error *err) {
  if (!dir) return 0;
  if (!*dir) return dmx_fail(err, "the output folder (--out) is empty");
  return dmx_mkdirs(dir, err);
}

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

/* Whether `name` is one of the comma-separated items of list. */
static bool in_list(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; *p;) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    if (len == n && !strncmp(p, name, n)) return true;
    if (!c) break;
    p = c + 1;
  }
  return false;
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
} gemm_result;

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
#define RUN_ONCE()                                                                                                     \
  do {                                                                                                               \
    if (c->batched)                                                                                                  \
      dmx_gemm_batched(rt, c->ta, c->tb, c->m, c->n, c->k, 1.0f, A, lda, c->m * c->k, B, ldb, c->k * c->n, 0.0f, C, \
                       ldc, c->m * c->n, c->batch);                                                                  \
    else                                                                                                             \
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
  if (o->max_seconds > 0 && pilot > 0 && pilot * reps > o->max_seconds) {
    double fit = floor(o->max_seconds / pilot);
    reps = fit < 1 ? 1 : (int)fit;
  }
  t0 = dmx_now_seconds();
  for (int i = 0; i < reps; i++) RUN_ONCE();
  dmx_finish(rt);
  double dt = dmx_now_seconds() - t0;
#undef RUN_ONCE
  r->reps = reps;
  r->ms = dt / reps * 1e3;
  r->gflops = 2.0 * (double)c->m * (double)c->n * (double)c->k * (double)b * reps / dt / 1e9;
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
  if (prepare_out_dir(o->out_dir, &err)) {
    fprintf(stderr, "datamux bench: %s\n", err.msg);
    return 1;
  }
  dmx_runtime *rt = create_runtime(o->device, o->no_tuning);
  char tuning[4400];
  tuning_status(rt, o->no_tuning, tuning, sizeof tuning);
  printf("CLBlast tuning: %s\n", tuning);
  printf("GEMM (row-major SGEMM through dmx_gemm / dmx_gemm_batched): first call untimed (compiles), then up to %d "
         "timed repetition(s)%s, finished with dmx_finish\n",
         o->repeat, o->max_seconds > 0 ? " within the time cap" : "");
  printf("%-18s %-3s %6s %6s %6s %5s %5s %12s %10s %9s\n", "shape", "op", "m", "n", "k", "batch", "reps", "first call ms",
         "ms", "GFLOP/s");
  gemm_result res[N_GEMM_CASES];
  int nres = 0;
  for (int i = 0; i < N_GEMM_CASES; i++) {
    const gemm_case *c = &gemm_cases[i];
    if (o->shapes && !in_list(o->shapes, c->name)) continue;
    gemm_result *r = &res[nres++];
    run_gemm_case(rt, c, o, r);
    if (r->skipped)
      printf("%-18s %-3s %6zu %6zu %6zu %5zu skipped: %s\n", c->name, op_name(c), c->m, c->n, c->k,
             c->batched ? c->batch : (size_t)1, r->why);
    else
      printf("%-18s %-3s %6zu %6zu %6zu %5zu %5d %12.1f %10.3f %9.1f\n", c->name, op_name(c), c->m, c->n, c->k,
             c->batched ? c->batch : (size_t)1, r->reps, r->first_ms, r->ms, r->gflops);
    fflush(stdout);
  }
  int rc = 0;
  if (o->out_dir) {
    membuf csv, js;
    char path[4200];
    if (membuf_open(&csv, &err) == 0) {
      fprintf(csv.f, "shape,op,m,n,k,batch,reps,first_call_ms,ms,gflops,skipped\n");
      for (int i = 0; i < nres; i++) {
        const gemm_result *r = &res[i];
        fprintf(csv.f, "%s,%s,%zu,%zu,%zu,%zu,%d,%.3f,%.4f,%.3f,%d\n", r->c->name, op_name(r->c), r->c->m, r->c->n,
                r->c->k, r->c->batched ? r->c->batch : (size_t)1, r->reps, r->first_ms, r->ms, r->gflops,
                r->skipped ? 1 : 0);
      }
      if (membuf_write(&csv, o->out_dir, "gemm.csv", path, sizeof path, &err) == 0) printf("wrote %s\n", path);
      else rc = 1;
    } else {
      rc = 1;
    }
    if (rc == 0 && membuf_open(&js, &err) == 0) {
      fprintf(js.f, "{\n  \"benchmark\": \"gemm\",\n");
      json_device(js.f, rt);
      fprintf(js.f, "  \"tuning\": ");
      json_str(js.f, tuning);
      fprintf(js.f, ",\n  \"tuning_applied\": %s,\n  \"repeat\": %d,\n  \"max_seconds\": %g,\n  \"shapes\": [\n",
              !o->no_tuning && strncmp(tuning, "applied", 7) == 0 ? "true" : "false", o->repeat, o->max_seconds);
      for (int i = 0; i < nres; i++) {
        const gemm_result *r = &res[i];
        fprintf(js.f, "    {\"shape\": \"%s\", \"what\": ", r->c->name);
        json_str(js.f, r->c->what);
        fprintf(js.f,
                ", \"op\": \"%s\", \"m\": %zu, \"n\": %zu, \"k\": %zu, \"batch\": %zu, \"reps\": %d, "
                "\"first_call_ms\": %.3f, \"ms\": %.4f, \"gflops\": %.3f, \"skipped\": %s}%s\n",
                op_name(r->c), r->c->m, r->c->n, r->c->k, r->c->batched ? r->c->batch : (size_t)1, r->reps,
                r->first_ms, r->ms, r->gflops, r->skipped ? "true" : "false", i + 1 < nres ? "," : "");
      }
      fprintf(js.f, "  ]\n}\n");
      if (membuf_write(&js, o->out_dir, "gemm.json", path, sizeof path, &err) == 0) printf("wrote %s\n", path);
      else rc = 1;
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
  cl_uint kernels;
  double cold_s, write_s, hit_s;
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
  cl_program p = dmx_build_program(rt, s->name, s->text, s->len, NULL);
  double dt = dmx_now_seconds() - t0;
  if (kernels) CL_CHECK(clCreateKernelsInProgram(p, 0, NULL, kernels));
  CL_CHECK(clReleaseProgram(p));
  return dt;
}

int dmx_bench_build(const dmx_bench_build_opts *o) {
  dmx_error err = {{0}};
  if ((o->files && dmx_bench_check_files(o->files, &err)) || prepare_out_dir(o->out_dir, &err)) {
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
  dmx_runtime *rt = create_runtime(o->device, false);
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
  printf("program builds of the embedded cl/ sources (default options): cold = DATAMUX_NO_CACHE=1 (compile "
         "from source); write = cache on, empty cache (compile + write the binary); hit = cache on again (load the "
         "binary); temporary cache %s/datamux\n",
         tmp);
  printf("%-16s %7s %9s %9s %9s\n", "file", "kernels", "cold s", "write s", "hit s");
  build_result res[64];
  int n = 0;
  double tot_cold = 0, tot_write = 0, tot_hit = 0;
  for (const dmx_cl_source *s = dmx_cl_sources; s->name && n < 64; s++) {
    if (o->files && !in_list(o->files, s->name)) continue;
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
           r->wrote ? "" : "  (no binary written: the driver gives none)", r->hit || !r->wrote ? "" : "  (no cache hit)");
    fflush(stdout);
  }
  printf("%-16s %7s %9.3f %9.3f %9.3f\n", "total", "", tot_cold, tot_write, tot_hit);
  if (strstr(rt->info.platform_name, "Portable Computing Language"))
    printf("note: PoCL generates machine code lazily (at a kernel's first launch, or when the program binary is "
           "requested), so on PoCL 'cold' is the front end only and 'write' includes machine code for every kernel\n");
  int rc = (saved_xdg ? setenv("XDG_CACHE_HOME", saved_xdg, 1) : unsetenv("XDG_CACHE_HOME")) |
           (saved_nc ? setenv("DATAMUX_NO_CACHE", saved_nc, 1) : unsetenv("DATAMUX_NO_CACHE"));
  if (rc != 0) dmx_die("restoring the environment failed: %s", strerror(errno));
  free(saved_xdg);
  free(saved_nc);
  remove_temp_cache(tmp);
  if (o->out_dir) {
    membuf csv, js;
    char path[4200];
    if (membuf_open(&csv, &err) == 0) {
      fprintf(csv.f, "file,kernels,cold_s,write_s,hit_s,cache_written,cache_hit\n");
      for (int i = 0; i < n; i++)
        fprintf(csv.f, "%s,%u,%.4f,%.4f,%.4f,%d,%d\n", res[i].file, res[i].kernels, res[i].cold_s, res[i].write_s,
                res[i].hit_s, res[i].wrote, res[i].hit);
      fprintf(csv.f, "total,,%.4f,%.4f,%.4f,,\n", tot_cold, tot_write, tot_hit);
      if (membuf_write(&csv, o->out_dir, "build.csv", path, sizeof path, &err) == 0) printf("wrote %s\n", path);
      else rc = 1;
    } else {
      rc = 1;
    }
    if (rc == 0 && membuf_open(&js, &err) == 0) {
      fprintf(js.f, "{\n  \"benchmark\": \"build\",\n");
      json_device(js.f, rt);
      fprintf(js.f, "  \"pocl_kernel_cache\": ");
      json_str(js.f, getenv("POCL_KERNEL_CACHE"));
      fprintf(js.f, ",\n  \"files\": [\n");
      for (int i = 0; i < n; i++)
        fprintf(js.f,
                "    {\"file\": \"%s\", \"kernels\": %u, \"cold_s\": %.4f, \"write_s\": %.4f, \"hit_s\": %.4f, "
                "\"cache_written\": %s, \"cache_hit\": %s}%s\n",
                res[i].file, res[i].kernels, res[i].cold_s, res[i].write_s, res[i].hit_s, res[i].wrote ? "true" : "false",
                res[i].hit ? "true" : "false", i + 1 < n ? "," : "");
      fprintf(js.f, "  ],\n  \"total\": {\"cold_s\": %.4f, \"write_s\": %.4f, \"hit_s\": %.4f}\n}\n", tot_cold, tot_write,
              tot_hit);
      if (membuf_write(&js, o->out_dir, "build.json", path, sizeof path, &err) == 0) printf("wrote %s\n", path);
      else rc = 1;
    } else if (rc == 0) {
      rc = 1;
    }
    if (rc) fprintf(stderr, "datamux bench: %s\n", err.msg);
  }
  dmx_runtime_destroy(rt);
  return rc;
}

/* ------------------------------------------------------------------ inference throughput */

int dmx_bench_parse_n_list(const char *s, dmx_bench_tp_opts *o, dmx_error *err) {
  o->n_count = 0;
  if (!*s) return dmx_fail(err, "-N needs a list such as 1,2,5,10");
  const char *p = s;
  for (;;) {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || (*end && *end != ','))
      return dmx_fail(err, "-N '%s': expected comma-separated whole numbers such as 1,2,5,10", s);
    if (v < 1 || v > DMX_MAX_INSTANCES)
      return dmx_fail(err, "-N '%s': %ld is out of range (1..%d)", s, v, DMX_MAX_INSTANCES);
    for (int i = 0; i < o->n_count; i++)
      if (o->n_list[i] == v) return dmx_fail(err, "-N '%s': %ld is listed twice", s, v);
    if (o->n_count == DMX_BENCH_MAX_N) return dmx_fail(err, "-N '%s': at most %d values", s, DMX_BENCH_MAX_N);
    o->n_list[o->n_count++] = (int)v;
    if (!*end) break;
    p = end + 1;
  }
  return 0;
}

/* Full-length synthetic rows: <s> random ordinary ids </s>, labels 0. */
static void synthetic_rows(const dmx_experiment *e, int n, dmx_dataset *out) {
  bool token = !strcmp(e->task.name, "ner");
  const dmx_glue_task *g = dmx_glue_find(e->task.name);
  dmx_target_kind kind = token ? DMX_TARGET_TOKENS : (g && g->num_labels == 1 ? DMX_TARGET_SCORE : DMX_TARGET_CLASS);
  int L = e->task.max_length;
  dmx_dataset_alloc(out, n, L, kind);
  snprintf(out->task, sizeof out->task, "%s", e->task.name);
  snprintf(out->split, sizeof out->split, "synthetic");
  out->num_labels = token ? DMX_NER_NUM_LABELS : g ? g->num_labels : 2;
  out->has_labels = true;
  uint64_t rng = 0x5eed5eedULL;
  for (int r = 0; r < n; r++) {
    int32_t *ids = out->ids + (size_t)r * L;
    ids[0] = DMX_BOS_ID;
    for (int j = 1; j < L - 1; j++) ids[j] = 4 + (int32_t)dmx_rand_below(&rng, 40000);
    ids[L - 1] = DMX_EOS_ID;
    if (kind == DMX_TARGET_CLASS) out->labels[r] = 0;
    if (kind == DMX_TARGET_SCORE) out->scores[r] = 0.0f;
    if (kind == DMX_TARGET_TOKENS)
      for (int j = 1; j < L - 1; j++) out->token_labels[(size_t)r * L + j] = 0;
  }
  snprintf(out->summary, sizeof out->summary, "%d synthetic rows of %d ids", n, L);
}

typedef struct {
  char label[16];
  int N, groups, instances, T, batches, warmup;
  double seconds, ms_mean, ms_median, inst_per_s, speedup;
  size_t device_bytes;
  bool failed;
  char why[DMX_ERRMSG];
} tp_row;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Times one configuration (e already has its N and setting). */
static void time_config(dmx_runtime *rt, const dmx_experiment *e, const dmx_dataset *ds, const dmx_bench_tp_opts *o,
                        tp_row *row) {
  dmx_error err = {{0}};
  int N = e->setting == SETTING_BASELINE ? 1 : e->mux.num_instances;
  int B = dmx_base_batch_size(N);
  dmx_input_kind kind = e->setting == SETTING_BASELINE ? DMX_INPUT_PLAIN
                        : e->mux.demuxing == DEMUX_INDEX ? DMX_INPUT_INDEX
                                                         : DMX_INPUT_MLP;
  row->N = N;
  row->groups = B;
  row->instances = B * N;
  row->warmup = o->warmup;
  dmx_batch batch;
  if (dmx_batch_alloc(&batch, B, N, e->task.max_length, kind, ds->kind, &err)) {
    row->failed = true;
    snprintf(row->why, sizeof row->why, "%s", err.msg);
    return;
  }
  row->T = batch.Lp;
  bool token = ds->kind == DMX_TARGET_TOKENS;
  dmx_model *model = dmx_model_create(rt, e, B, batch.Lp, ds->num_labels, token, &err);
  if (!model) {
    row->failed = true;
    snprintf(row->why, sizeof row->why, "%s", err.msg);
    dmx_batch_free(&batch);
    return;
  }
  dmx_model_init_params(model, (uint64_t)e->train.seed);
  row->device_bytes = dmx_model_device_bytes(model);
  dmx_batcher bt;
  dmx_batcher_init(&bt, ds, B * N, false, false, (uint64_t)e->train.seed);
  int epoch = 0;
  dmx_batcher_begin_epoch(&bt, epoch);
  double *times = dmx_calloc((size_t)o->batches, sizeof(double));
  double total = 0;
  int timed = 0;
  for (int i = 0; i < o->warmup + o->batches; i++) {
    /* the next batch is built on the host outside the timed region, like a data loader */
    if (!dmx_batcher_next(&bt, &batch)) {
      dmx_batcher_begin_epoch(&bt, ++epoch);
      if (!dmx_batcher_next(&bt, &batch)) dmx_die("the batcher gave no batch from %d rows", ds->n);
    }
    dmx_batch_view v = {0};
    v.ids = batch.ids;
    v.positions = batch.positions;
    v.labels = NULL; /* no labels: the task head's loss scores nothing; no retrieval targets: no retrieval head */
    dmx_finish(rt);
    double t0 = dmx_now_seconds();
    dmx_model_step(model, &v, false, 0);
    dmx_finish(rt);
    double dt = dmx_now_seconds() - t0;
    if (i < o->warmup) continue;
    times[timed++] = dt;
    total += dt;
    if (o->max_seconds > 0 && total >= o->max_seconds) break;
  }
  row->batches = timed;
  row->seconds = total;
  row->ms_mean = total / timed * 1e3;
  qsort(times, (size_t)timed, sizeof(double), cmp_double);
  row->ms_median = (timed % 2 ? times[timed / 2] : 0.5 * (times[timed / 2 - 1] + times[timed / 2])) * 1e3;
  row->inst_per_s = (double)timed * B * N / total;
  free(times);
  dmx_batcher_free(&bt);
  dmx_model_free(model);
  dmx_batch_free(&batch);
}

static bool have_gnuplot(void) { return system("command -v gnuplot >/dev/null 2>&1") == 0; }

static void plot(const char *dir) {
  if (!have_gnuplot()) {
    printf("plot: skipped (gnuplot is not installed; the CSV has the numbers)\n");
    return;
  }
  if (strchr(dir, '\'') || strchr(dir, '"') || strchr(dir, '\n')) {
    printf("plot: skipped (the output folder's name has quotes)\n");
    return;
  }
  char gp[4200], png[4200], csv[4200], cmd[4400];
  snprintf(gp, sizeof gp, "%s/throughput.gp", dir);
  snprintf(png, sizeof png, "%s/throughput.png", dir);
  snprintf(csv, sizeof csv, "%s/throughput.csv", dir);
  FILE *f = fopen(gp, "w");
  if (!f) {
    printf("plot: skipped (cannot write %s: %s)\n", gp, strerror(errno));
    return;
  }
  fprintf(f,
          "set terminal png size 800,500\nset output '%s'\nset datafile separator ','\n"
          "set title 'inference throughput vs N'\nset xlabel 'N (instances multiplexed)'\n"
          "set ylabel 'instances / s'\nset logscale x 2\nset grid\nset key left top\n"
          "plot '%s' using 2:($1 eq 'vanilla' ? NaN : $11) skip 1 with linespoints title 'DataMUX', "
          "'' using 2:($1 eq 'vanilla' ? $11 : NaN) skip 1 with points pt 7 title 'vanilla (N=1)'\n",
          png, csv);
  if (fclose(f) != 0) {
    printf("plot: skipped (writing %s failed)\n", gp);
    return;
  }
  snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>&1", gp);
  int rc = system(cmd);
  if (rc == 0) printf("wrote %s\n", png);
  else printf("plot: gnuplot failed (status %d); the CSV has the numbers\n", rc);
}

static int write_tp_files(const dmx_runtime *rt, const dmx_experiment *e, const dmx_bench_tp_opts *o, const tp_row *rows,
                          int n, const char *data_desc, const char *tuning, const char *ref, dmx_error *err) {
  membuf csv, js;
  char path[4200];
  if (membuf_open(&csv, err)) return -1;
  fprintf(csv.f, "label,N,groups,instances_per_batch,seq_len,batches,warmup,seconds,ms_per_batch,ms_per_batch_median,"
                 "instances_per_s,speedup,device_mib_allocated\n");
  for (int i = 0; i < n; i++) {
    const tp_row *r = &rows[i];
    if (r->failed) continue;
    fprintf(csv.f, "%s,%d,%d,%d,%d,%d,%d,%.4f,%.3f,%.3f,%.2f,%.3f,%.1f\n", r->label, r->N, r->groups, r->instances, r->T,
            r->batches, r->warmup, r->seconds, r->ms_mean, r->ms_median, r->inst_per_s, r->speedup,
            r->device_bytes / 1048576.0);
  }
  if (membuf_write(&csv, o->out_dir, "throughput.csv", path, sizeof path, err)) return -1;
  printf("wrote %s\n", path);
  if (membuf_open(&js, err)) return -1;
  fprintf(js.f, "{\n  \"benchmark\": \"throughput\",\n");
  json_device(js.f, rt);
  fprintf(js.f, "  \"experiment\": ");
  json_str(js.f, e->source_path);
  fprintf(js.f, ",\n  \"setting\": \"%s\",\n  \"model\": {\"num_layers\": %d, \"hidden_size\": %d, \"num_heads\": %d, "
                "\"intermediate_size\": %d, \"vocab_size\": %d},\n",
          dmx_setting_name(e->setting), e->model.num_layers, e->model.hidden_size, e->model.num_heads,
          e->model.intermediate_size, e->model.vocab_size);
  fprintf(js.f, "  \"muxing\": \"%s\",\n  \"demuxing\": \"%s\",\n  \"max_length\": %d,\n  \"data\": ",
          dmx_muxing_name(e->mux.muxing), dmx_demuxing_name(e->mux.demuxing), e->task.max_length);
  json_str(js.f, data_desc);
  fprintf(js.f, ",\n  \"tuning\": ");
  json_str(js.f, tuning);
  fprintf(js.f, ",\n  \"method\": ");
  json_str(js.f, "eval mode (dmx_model_step train=false), no labels and no retrieval targets; base_bs(N)*N instances "
                 "per batch; warm-up batches excluded; each batch timed to dmx_finish; instances_per_s = sum of "
                 "instances / sum of batch times");
  fprintf(js.f, ",\n  \"speedup_reference\": ");
  json_str(js.f, ref);
  fprintf(js.f, ",\n  \"device_memory_note\": ");
  json_str(js.f, "device_mib_allocated is everything dmx_model_create allocates, training buffers (gradients, Adam "
                 "moments, backward activations) included; CLBlast temporaries are not counted");
  fprintf(js.f, ",\n  \"rows\": [\n");
  for (int i = 0; i < n; i++) {
    const tp_row *r = &rows[i];
    fprintf(js.f, "    {\"label\": \"%s\", \"N\": %d, ", r->label, r->N);
    if (r->failed) {
      fprintf(js.f, "\"error\": ");
      json_str(js.f, r->why);
    } else {
      fprintf(js.f,
              "\"groups\": %d, \"instances_per_batch\": %d, \"seq_len\": %d, \"batches\": %d, \"warmup\": %d, "
              "\"seconds\": %.4f, \"ms_per_batch\": %.3f, \"ms_per_batch_median\": %.3f, \"instances_per_s\": %.2f, "
              "\"speedup\": %.3f, \"device_bytes_allocated\": %zu",
              r->groups, r->instances, r->T, r->batches, r->warmup, r->seconds, r->ms_mean, r->ms_median, r->inst_per_s,
              r->speedup, r->device_bytes);
    }
    fprintf(js.f, "}%s\n", i + 1 < n ? "," : "");
  }
  fprintf(js.f, "  ]\n}\n");
  if (membuf_write(&js, o->out_dir, "throughput.json", path, sizeof path, err)) return -1;
  printf("wrote %s\n", path);
  return 0;
}

int dmx_bench_throughput(const dmx_experiment *base, const dmx_bench_tp_opts *o0) {
  dmx_error err = {{0}};
  dmx_bench_tp_opts o = *o0;
  if (o.batches < 1 || o.warmup < 0) {
    fprintf(stderr, "datamux bench: --batches must be at least 1 and --warmup at least 0\n");
    return 1;
  }
  const char *out_dir = o.out_dir ? o.out_dir : "runs/bench";
  o.out_dir = out_dir;
  if (prepare_out_dir(out_dir, &err)) {
    fprintf(stderr, "datamux bench: %s\n", err.msg);
    return 1;
  }
  const char *device = o.device && *o.device ? o.device : base->device;
  dmx_runtime *rt = create_runtime(device, o.no_tuning);
  if (o.n_count == 0) {
    static const int cpu[] = {1, 2, 5, 10}, other[] = {1, 2, 5, 10, 20, 40};
    bool is_cpu = (rt->info.type & CL_DEVICE_TYPE_CPU) != 0;
    o.n_count = is_cpu ? 4 : 6;
    memcpy(o.n_list, is_cpu ? cpu : other, (size_t)o.n_count * sizeof(int));
  }
  /* every configuration is checked before anything is timed */
  int nconf = o.n_count + (o.vanilla ? 1 : 0);
  dmx_experiment *confs = dmx_calloc((size_t)nconf, sizeof *confs);
  tp_row *rows = dmx_calloc((size_t)nconf, sizeof *rows);
  int k = 0, maxrows = 0, rc = 0;
  if (o.vanilla) {
    confs[k] = *base;
    if (dmx_experiment_set(&confs[k], "setting", "baseline", &err) ||
        dmx_experiment_set(&confs[k], "multiplexing.num_instances", "1", &err) ||
        dmx_experiment_validate(&confs[k], &err)) {
      fprintf(stderr, "datamux bench: the vanilla (baseline) model: %s\n", err.msg);
      rc = 1;
    }
    snprintf(rows[k].label, sizeof rows[k].label, "vanilla");
    k++;
  }
  for (int i = 0; i < o.n_count && rc == 0; i++, k++) {
    confs[k] = *base;
    char v[16];
    snprintf(v, sizeof v, "%d", o.n_list[i]);
    if (dmx_experiment_set(&confs[k], "multiplexing.num_instances", v, &err) ||
        dmx_experiment_validate(&confs[k], &err)) {
      fprintf(stderr, "datamux bench: N=%d: %s\n", o.n_list[i], err.msg);
      rc = 1;
    }
    snprintf(rows[k].label, sizeof rows[k].label, "N=%d", o.n_list[i]);
  }
  for (int i = 0; i < nconf && rc == 0; i++) {
    int N = confs[i].setting == SETTING_BASELINE ? 1 : confs[i].mux.num_instances;
    if (dmx_base_batch_size(N) * N > maxrows) maxrows = dmx_base_batch_size(N) * N;
  }
  if (rc) { /* bad input: an N the experiment cannot take */
    free(confs);
    free(rows);
    dmx_runtime_destroy(rt);
    return 2;
  }
  char tuning[4400];
  tuning_status(rt, o.no_tuning, tuning, sizeof tuning);
  printf("CLBlast tuning: %s\n", tuning);
  dmx_dataset ds;
  char data_desc[1200];
  bool loaded = false;
  if (!o.synthetic) {
    if (dmx_load_split(base, "dev", &ds, 0, NULL, &err) == 0) {
      loaded = true;
      snprintf(data_desc, sizeof data_desc, "%s dev split: %s", base->task.name, ds.summary);
    } else {
      printf("data: the %s dev split is not available (%s); using synthetic ids instead\n", base->task.name, err.msg);
    }
  }
  if (!loaded) {
    synthetic_rows(base, maxrows, &ds);
    snprintf(data_desc, sizeof data_desc, "synthetic: %s", ds.summary);
  }
  printf("data: %s\n", data_desc);
  printf("model: %d layers, hidden %d, %d heads, FFN %d (%s); %s / %s; max_length %d; parameters randomly initialised "
         "(throughput does not depend on their values)\n",
         base->model.num_layers, base->model.hidden_size, base->model.num_heads, base->model.intermediate_size,
         base->model_config_file[0] ? base->model_config_file : "experiment", dmx_muxing_name(base->mux.muxing),
         dmx_demuxing_name(base->mux.demuxing), base->task.max_length);
  printf("method: eval mode, no labels, no retrieval targets; base_bs(N)*N instances per batch; %d warm-up batch(es) "
         "excluded, %d timed batch(es)%s, each timed to dmx_finish\n",
         o.warmup, o.batches, o.max_seconds > 0 ? " or the time cap" : "");
  if (o.warmup == 0) printf("note: --warmup 0 times the first batch, which builds the kernels\n");
  int ok = 0;
  for (int i = 0; i < nconf; i++) {
    tp_row *r = &rows[i];
    time_config(rt, &confs[i], &ds, &o, r);
    if (r->failed) {
      fprintf(stderr, "datamux bench: %s: %s\n", r->label, r->why);
      rc = 1;
      continue;
    }
    ok++;
    printf("%-8s %3d groups x N=%-2d = %4d instances/batch, T=%3d: %3d batches in %7.2f s: %9.1f instances/s, "
           "%8.2f ms/batch (median %.2f), %.1f MiB device memory allocated\n",
           r->label, r->groups, r->N, r->instances, r->T, r->batches, r->seconds, r->inst_per_s, r->ms_mean,
           r->ms_median, r->device_bytes / 1048576.0);
    fflush(stdout);
  }
  /* the speedup reference: the vanilla model, else N=1, else the first row measured */
  const tp_row *ref = NULL;
  char ref_desc[64] = "";
  for (int i = 0; i < nconf && !ref; i++)
    if (!rows[i].failed && !strcmp(rows[i].label, "vanilla")) ref = &rows[i];
  for (int i = 0; i < nconf && !ref; i++)
    if (!rows[i].failed && !strcmp(rows[i].label, "N=1")) ref = &rows[i];
  for (int i = 0; i < nconf && !ref; i++)
    if (!rows[i].failed) ref = &rows[i];
  if (ref) {
    snprintf(ref_desc, sizeof ref_desc, "%s", ref->label);
    printf("\n%-8s %5s %5s %11s %12s %9s %12s\n", "", "N", "T", "inst/batch", "instances/s", "speedup", "ms/batch");
    for (int i = 0; i < nconf; i++) {
      tp_row *r = &rows[i];
      if (r->failed) continue;
      r->speedup = r->inst_per_s / ref->inst_per_s;
      printf("%-8s %5d %5d %11d %12.1f %8.2fx %12.2f\n", r->label, r->N, r->T, r->instances, r->inst_per_s, r->speedup,
             r->ms_mean);
    }
    printf("speedup: instances/s over %s%s\n", ref_desc,
           strcmp(ref_desc, "vanilla") && strcmp(ref_desc, "N=1") ? " (no N=1 in the list)" : "");
  }
  if (ok > 0) {
    if (write_tp_files(rt, base, &o, rows, nconf, data_desc, tuning, ref_desc, &err)) {
      fprintf(stderr, "datamux bench: %s\n", err.msg);
      rc = 1;
    } else {
      plot(out_dir);
    }
  }
  dmx_dataset_free(&ds);
  free(confs);
  free(rows);
  dmx_runtime_destroy(rt);
  return rc;
}
