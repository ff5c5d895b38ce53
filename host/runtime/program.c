/* Programs and kernels: each cl/ file is built once per process and cached on disk as a device
 * binary (keyed by source, options, device and driver); each kernel is resolved once into a slot
 * of rt->kernels by its handle (host/runtime/kernels.def). */
#include "host/runtime/program.h"

#include <stdlib.h>
#include <string.h>

#include "host/runtime/cl_sources.h"

#define CL_FORMAT_VERSION 1 /* bump when the cache file layout or build options change */
#define CL_BUILD_OPTIONS "-cl-std=CL1.2"

/* 128-bit key from two independent 64-bit FNV-1a streams; collisions are not a practical risk
 * for a cache whose entries are validated by a build anyway. */
typedef struct {
  uint64_t a, b;
} hash128;

static void hash_bytes(hash128 *h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h->a = (h->a ^ p[i]) * 0x100000001b3ULL;
    h->b = (h->b ^ p[i]) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL;
  }
  /* a separator so ("ab","c") and ("a","bc") differ */
  h->a = (h->a ^ 0xff) * 0x100000001b3ULL;
  h->b = (h->b ^ 0xfe) * 0x100000001b3ULL;
}

static hash128 cache_key(const dmx_runtime *rt, const char *src, size_t len, const char *options) {
  hash128 h = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL};
  int version = CL_FORMAT_VERSION;
  hash_bytes(&h, &version, sizeof version);
  hash_bytes(&h, src, len);
  hash_bytes(&h, options, strlen(options));
  hash_bytes(&h, rt->info.name, strlen(rt->info.name));
  hash_bytes(&h, rt->info.driver_version, strlen(rt->info.driver_version));
  hash_bytes(&h, rt->info.platform_version, strlen(rt->info.platform_version));
  return h;
}

static bool cache_enabled(void) {
  const char *e = getenv("DATAMUX_NO_CACHE");
  return !(e && *e && strcmp(e, "0") != 0);
}

static void cache_path(char *out, size_t cap, hash128 k) {
  snprintf(out, cap, "%s/programs/%016llx%016llx.bin", dmx_cache_dir(), (unsigned long long)k.a,
           (unsigned long long)k.b);
}

/* Cache file: "DMXCLBIN" | u32 format | u64 key.a | u64 key.b | u64 size | u64 checksum | binary */
#define CACHE_MAGIC "DMXCLBIN"
#define CACHE_HEADER 44

static uint64_t checksum(const unsigned char *p, size_t n) {
  hash128 h = {0x1234567812345678ULL, 0};
  hash_bytes(&h, p, n);
  return h.a;
}

static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void print_build_log(dmx_runtime *rt, cl_program prog, const char *name) {
  size_t n = 0;
  clGetProgramBuildInfo(prog, rt->info.device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
  char *logtxt = dmx_malloc(n + 1);
  logtxt[0] = 0;
  clGetProgramBuildInfo(prog, rt->info.device, CL_PROGRAM_BUILD_LOG, n, logtxt, NULL);
  logtxt[n] = 0;
  fprintf(stderr, "datamux: building cl/%s failed on %s. Compiler log (line numbers are lines of cl/%s):\n%s\n", name,
          rt->info.name, name, logtxt);
  free(logtxt);
}

static cl_program try_cached_binary(dmx_runtime *rt, const char *path, hash128 key, const char *options) {
  size_t len = 0;
  unsigned char *data = (unsigned char *)dmx_read_file(path, &len, NULL);
  if (!data) return NULL;
  cl_program prog = NULL;
  if (len < CACHE_HEADER || memcmp(data, CACHE_MAGIC, 8) != 0 || data[8] != CL_FORMAT_VERSION ||
      get64(data + 12) != key.a || get64(data + 20) != key.b || get64(data + 28) != len - CACHE_HEADER ||
      get64(data + 36) != checksum(data + CACHE_HEADER, len - CACHE_HEADER)) {
    rt->stat_cache_rejects++;
    free(data);
    return NULL;
  }
  size_t bin_len = len - CACHE_HEADER;
  const unsigned char *bin = data + CACHE_HEADER;
  cl_int st, bin_st;
  prog = clCreateProgramWithBinary(rt->ctx, 1, &rt->info.device, &bin_len, &bin, &bin_st, &st);
  if (st == CL_SUCCESS && bin_st == CL_SUCCESS) {
    st = clBuildProgram(prog, 1, &rt->info.device, options, NULL, NULL);
    if (st != CL_SUCCESS) {
      clReleaseProgram(prog);
      prog = NULL;
    }
  } else {
    if (prog) clReleaseProgram(prog);
    prog = NULL;
  }
  free(data);
  if (!prog) rt->stat_cache_rejects++;
  return prog;
}

static void write_cache(dmx_runtime *rt, cl_program prog, const char *path, hash128 key) {
  size_t bin_len = 0;
  if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof bin_len, &bin_len, NULL) != CL_SUCCESS || !bin_len)
    return; /* a driver without binaries just means no cache */
  unsigned char *file = dmx_malloc(CACHE_HEADER + bin_len);
  unsigned char *bin = file + CACHE_HEADER;
  if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) != CL_SUCCESS) {
    free(file);
    return;
  }
  memcpy(file, CACHE_MAGIC, 8);
  memset(file + 8, 0, 4);
  file[8] = CL_FORMAT_VERSION;
  put64(file + 12, key.a);
  put64(file + 20, key.b);
  put64(file + 28, bin_len);
  put64(file + 36, checksum(bin, bin_len));
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/programs", dmx_cache_dir());
  dmx_error err;
  if (dmx_mkdirs(dir, &err) != 0 || dmx_write_file_atomic(path, file, CACHE_HEADER + bin_len, &err) != 0)
    fprintf(stderr, "datamux: warning: kernel cache not written (%s); builds will not be cached\n", err.msg);
  else
    rt->stat_cache_writes++;
  free(file);
}

cl_program dmx_build_program(dmx_runtime *rt, const char *name, const char *src, size_t len, const char *options) {
  if (!options) options = CL_BUILD_OPTIONS;
  hash128 key = cache_key(rt, src, len, options);
  char path[4096];
  cache_path(path, sizeof path, key);
  /* Oclgrind builds in a fraction of a second, and a program it loads from a binary has lost its
   * source, so its reports would show "(source not available)" where the kernel's line belongs */
  bool use_cache = cache_enabled() && !dmx_device_is_simulator(&rt->info);
  if (use_cache) {
    cl_program p = try_cached_binary(rt, path, key, options);
    if (p) {
      rt->stat_cache_hits++;
      return p;
    }
  }
  /* On a cold cache PoCL spends seconds to a minute per program: say what is happening rather
   * than go silent for minutes on a new user's first run. */
  double t0 = dmx_now_seconds();
  if (rt->log) {
    int total = 0;
    for (const dmx_cl_source *c = dmx_cl_sources; c->name; c++) total++;
    bool pocl = strstr(rt->info.platform_version, "PoCL") || strstr(rt->info.platform_name, "Portable");
    if (rt->stat_source_builds == 0 && use_cache)
      fprintf(rt->log,
              "compiling OpenCL programs for %s: they are not in the program cache (%s/programs) yet%s; once "
              "per device and driver\n",
              rt->info.name, dmx_cache_dir(),
              pocl ? ", and PoCL finishes each kernel at its first launch (its own cache), so the first steps run "
                     "slowly"
                   : "");
    else if (rt->stat_source_builds == 0)
      fprintf(rt->log, "compiling OpenCL programs for %s from source in every run (%s)\n", rt->info.name,
              cache_enabled() ? "a simulator: its reports show the source lines" : "DATAMUX_NO_CACHE is set");
    fprintf(rt->log, "  compiling cl/%s (build %d in this process; cl/ has %d programs)...", name,
            rt->stat_source_builds + 1, total);
    fflush(rt->log);
  }
  cl_int st;
  cl_program prog = clCreateProgramWithSource(rt->ctx, 1, &src, &len, &st);
  DMX_CL_CHECK(st);
  st = clBuildProgram(prog, 1, &rt->info.device, options, NULL, NULL);
  if (st != CL_SUCCESS) {
    if (rt->log) fprintf(rt->log, " failed\n");
    print_build_log(rt, prog, name);
    dmx_die("clBuildProgram(cl/%s) failed: %s; fix the kernel source (see the log above)", name,
            dmx_cl_status_name(st));
  }
  if (rt->log) {
    fprintf(rt->log, " %.1f s\n", dmx_now_seconds() - t0);
    fflush(rt->log);
  }
  rt->stat_source_builds++;
  if (use_cache) write_cache(rt, prog, path, key);
  return prog;
}

/* Index of cl/<file> in dmx_cl_sources (the process ends when it is not embedded); *count gets the
 * number of embedded files. */
static int source_index(const char *file, int *count) {
  int index = -1, n = 0;
  for (const dmx_cl_source *s = dmx_cl_sources; s->name; s++, n++)
    if (!strcmp(s->name, file)) index = n;
  if (index < 0) dmx_die("no kernel file cl/%s is embedded in this binary (a build problem: re-run cmake)", file);
  *count = n;
  return index;
}

char *dmx_program_source(const char *file, size_t *out_len) {
  int n_sources, index = source_index(file, &n_sources);
  char *body = NULL, *prelude = NULL;
  size_t body_len = 0, prelude_len = 0;
  const char *dir = getenv("DATAMUX_CL_DIR");
  if (dir && *dir) {
    char path[4096];
    dmx_error err;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    body = dmx_read_file(path, &body_len, &err);
    if (body) {
      snprintf(path, sizeof path, "%s/prelude.h", dir);
      prelude = dmx_read_file(path, &prelude_len, &err);
    }
    if (!body || !prelude)
      dmx_die("%s (DATAMUX_CL_DIR is set to '%s': point it at the cl/ folder of a source tree, or unset it)", err.msg,
              dir);
  }
  const char *pre = prelude ? prelude : dmx_cl_prelude.text, *text = body ? body : dmx_cl_sources[index].text;
  size_t pre_len = prelude ? prelude_len : dmx_cl_prelude.len, text_len = body ? body_len : dmx_cl_sources[index].len;
  /* prelude, then the file from its own line 1, so compiler messages name the file's lines */
  static const char line_reset[] = "\n#line 1\n";
  size_t len = pre_len + sizeof line_reset - 1 + text_len;
  char *src = dmx_malloc(len + 1);
  memcpy(src, pre, pre_len);
  memcpy(src + pre_len, line_reset, sizeof line_reset - 1);
  memcpy(src + pre_len + sizeof line_reset - 1, text, text_len);
  src[len] = 0;
  free(body);
  free(prelude);
  *out_len = len;
  return src;
}

/* The program of cl/<file>: built once per process through the binary cache. */
static cl_program program_for(dmx_runtime *rt, const char *file) {
  int n_sources, index = source_index(file, &n_sources);
  if (!rt->programs) {
    rt->programs = dmx_calloc((size_t)n_sources, sizeof *rt->programs);
    rt->n_programs = n_sources;
  }
  if (rt->programs[index]) return rt->programs[index];
  size_t len = 0;
  char *src = dmx_program_source(file, &len);
  rt->programs[index] = dmx_build_program(rt, file, src, len, NULL);
  free(src);
  return rt->programs[index];
}

static const struct {
  const char *file, *name;
} kernel_table[DMX_KERNEL_COUNT] = {
#define DMX_KERNEL(id, file, name) [id] = {file, name},
#include "host/runtime/kernels.def"
#undef DMX_KERNEL
};

const char *dmx_kernel_name(dmx_kernel_id k) { return k >= 0 && k < DMX_KERNEL_COUNT ? kernel_table[k].name : "?"; }
const char *dmx_kernel_file(dmx_kernel_id k) { return k >= 0 && k < DMX_KERNEL_COUNT ? kernel_table[k].file : "?"; }

cl_kernel dmx_kernel_resolve(dmx_runtime *rt, dmx_kernel_id id) {
  if (id < 0 || id >= DMX_KERNEL_COUNT) dmx_die("kernel handle %d out of range (a program bug)", (int)id);
  if (rt->kernels[id]) return rt->kernels[id];
  const char *file = kernel_table[id].file, *name = kernel_table[id].name;
  cl_program prog = program_for(rt, file);
  cl_int st;
  cl_kernel k = clCreateKernel(prog, name, &st);
  if (st == CL_INVALID_KERNEL_NAME)
    dmx_die("cl/%s has no kernel named '%s' (host/runtime/kernels.def is out of date)", file, name);
  DMX_CL_CHECK(st);
  dmx_kernel_query_limits(rt, k, &rt->kernel_wg_max[id], &rt->kernel_static_local[id]);
  rt->kernels[id] = k;
  return k;
}

void dmx_kernel_query_limits(const dmx_runtime *rt, cl_kernel k, size_t *wg_max, cl_ulong *static_local) {
  size_t wg = 0;
  cl_ulong lm = 0;
  DMX_CL_CHECK(clGetKernelWorkGroupInfo(k, rt->info.device, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, NULL));
  DMX_CL_CHECK(clGetKernelWorkGroupInfo(k, rt->info.device, CL_KERNEL_LOCAL_MEM_SIZE, sizeof lm, &lm, NULL));
  if (wg == 0 || wg > rt->info.max_work_group) wg = rt->info.max_work_group;
  if (rt->wg_cap && wg > rt->wg_cap) wg = rt->wg_cap;
  *wg_max = wg;
  *static_local = lm;
}

cl_program dmx_program_of(dmx_runtime *rt, const char *file) { return program_for(rt, file); }

void dmx_programs_release(dmx_runtime *rt) {
  for (int i = 0; i < DMX_KERNEL_COUNT; i++)
    if (rt->kernels[i]) clReleaseKernel(rt->kernels[i]), rt->kernels[i] = NULL;
  for (int i = 0; i < rt->n_programs; i++)
    if (rt->programs[i]) clReleaseProgram(rt->programs[i]);
  free(rt->programs);
  rt->programs = NULL;
  rt->n_programs = 0;
}
