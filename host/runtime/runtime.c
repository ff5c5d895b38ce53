/* OpenCL runtime: device choice, context and queue, program build with an on-disk binary cache,
 * kernels created once, launches, arenas and copies. */
#include "host/runtime/runtime.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "host/runtime/cl_sources.h"
#include "host/runtime/gemm.h"
#include "host/runtime/profile.h"

#define CL_FORMAT_VERSION 1 /* bump when the cache file layout or build options change */
#define CL_BUILD_OPTIONS "-cl-std=CL1.2"

const char *dmx_cl_status_name(cl_int s) {
  switch (s) {
#define C(x) \
  case x:    \
    return #x;
    C(CL_SUCCESS) C(CL_DEVICE_NOT_FOUND) C(CL_DEVICE_NOT_AVAILABLE) C(CL_COMPILER_NOT_AVAILABLE)
    C(CL_MEM_OBJECT_ALLOCATION_FAILURE) C(CL_OUT_OF_RESOURCES) C(CL_OUT_OF_HOST_MEMORY)
    C(CL_PROFILING_INFO_NOT_AVAILABLE) C(CL_MEM_COPY_OVERLAP) C(CL_IMAGE_FORMAT_MISMATCH)
    C(CL_IMAGE_FORMAT_NOT_SUPPORTED) C(CL_BUILD_PROGRAM_FAILURE) C(CL_MAP_FAILURE)
    C(CL_MISALIGNED_SUB_BUFFER_OFFSET) C(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    C(CL_COMPILE_PROGRAM_FAILURE) C(CL_LINKER_NOT_AVAILABLE) C(CL_LINK_PROGRAM_FAILURE)
    C(CL_DEVICE_PARTITION_FAILED) C(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) C(CL_INVALID_VALUE)
    C(CL_INVALID_DEVICE_TYPE) C(CL_INVALID_PLATFORM) C(CL_INVALID_DEVICE) C(CL_INVALID_CONTEXT)
    C(CL_INVALID_QUEUE_PROPERTIES) C(CL_INVALID_COMMAND_QUEUE) C(CL_INVALID_HOST_PTR)
    C(CL_INVALID_MEM_OBJECT) C(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) C(CL_INVALID_IMAGE_SIZE)
    C(CL_INVALID_SAMPLER) C(CL_INVALID_BINARY) C(CL_INVALID_BUILD_OPTIONS) C(CL_INVALID_PROGRAM)
    C(CL_INVALID_PROGRAM_EXECUTABLE) C(CL_INVALID_KERNEL_NAME) C(CL_INVALID_KERNEL_DEFINITION)
    C(CL_INVALID_KERNEL) C(CL_INVALID_ARG_INDEX) C(CL_INVALID_ARG_VALUE) C(CL_INVALID_ARG_SIZE)
    C(CL_INVALID_KERNEL_ARGS) C(CL_INVALID_WORK_DIMENSION) C(CL_INVALID_WORK_GROUP_SIZE)
    C(CL_INVALID_WORK_ITEM_SIZE) C(CL_INVALID_GLOBAL_OFFSET) C(CL_INVALID_EVENT_WAIT_LIST)
    C(CL_INVALID_EVENT) C(CL_INVALID_OPERATION) C(CL_INVALID_GL_OBJECT) C(CL_INVALID_BUFFER_SIZE)
    C(CL_INVALID_MIP_LEVEL) C(CL_INVALID_GLOBAL_WORK_SIZE) C(CL_INVALID_PROPERTY)
    C(CL_INVALID_IMAGE_DESCRIPTOR) C(CL_INVALID_COMPILER_OPTIONS) C(CL_INVALID_LINKER_OPTIONS)
    C(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef C
    case -1001:
      return "CL_PLATFORM_NOT_FOUND_KHR (no OpenCL platform: install an ICD, e.g. pocl-opencl-icd)";
    default:
      return "unknown OpenCL status";
  }
}

void dmx_cl_check_at(cl_int status, const char *what, const char *file, int line) {
  if (status == CL_SUCCESS) return;
  const char *hint = "";
  if (status == CL_OUT_OF_RESOURCES || status == CL_MEM_OBJECT_ALLOCATION_FAILURE)
    hint = " (the device ran out of memory or resources: try a smaller batch or model)";
  dmx_die_at(file, line, "%s failed: %s (%d)%s", what, dmx_cl_status_name(status), (int)status, hint);
}

/* ---------------------------------------------------------------- devices */

static void device_string(cl_device_id d, cl_device_info what, char *out, size_t cap) {
  out[0] = 0;
  if (clGetDeviceInfo(d, what, cap, out, NULL) != CL_SUCCESS) snprintf(out, cap, "?");
  out[cap - 1] = 0;
}

static void fill_device_info(dmx_device_info *di, cl_platform_id p, cl_device_id d) {
  memset(di, 0, sizeof *di);
  di->platform = p;
  di->device = d;
  CL_CHECK(clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof di->platform_name, di->platform_name, NULL));
  CL_CHECK(clGetPlatformInfo(p, CL_PLATFORM_VERSION, sizeof di->platform_version, di->platform_version, NULL));
  device_string(d, CL_DEVICE_NAME, di->name, sizeof di->name);
  device_string(d, CL_DEVICE_VENDOR, di->vendor, sizeof di->vendor);
  device_string(d, CL_DRIVER_VERSION, di->driver_version, sizeof di->driver_version);
  device_string(d, CL_DEVICE_VERSION, di->device_version, sizeof di->device_version);
  device_string(d, CL_DEVICE_OPENCL_C_VERSION, di->opencl_c_version, sizeof di->opencl_c_version);
  CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof di->type, &di->type, NULL));
  CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof di->compute_units, &di->compute_units, NULL));
  CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof di->clock_mhz, &di->clock_mhz, NULL));
  CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof di->global_mem, &di->global_mem, NULL));
  CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof di->local_mem, &di->local_mem, NULL));
  CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof di->max_alloc, &di->max_alloc, NULL));
  CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof di->max_work_group, &di->max_work_group, NULL));
  CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof di->mem_base_addr_align_bits,
                           &di->mem_base_addr_align_bits, NULL));
  size_t ext_len = 0;
  CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, 0, NULL, &ext_len));
  char *ext = dmx_malloc(ext_len + 1);
  CL_CHECK(clGetDeviceInfo(d, CL_DEVICE_EXTENSIONS, ext_len, ext, NULL));
  ext[ext_len] = 0;
  di->fp16 = strstr(ext, "cl_khr_fp16") != NULL;
  di->fp64 = strstr(ext, "cl_khr_fp64") != NULL;
  free(ext);
}

int dmx_list_devices(dmx_device_info **out) {
  *out = NULL;
  cl_uint np = 0;
  cl_int st = clGetPlatformIDs(0, NULL, &np);
  if (st == -1001 || np == 0) return 0; /* no ICD installed */
  CL_CHECK(st);
  cl_platform_id *plats = dmx_calloc(np, sizeof *plats);
  CL_CHECK(clGetPlatformIDs(np, plats, NULL));
  int n = 0, cap = 8;
  dmx_device_info *devs = dmx_calloc((size_t)cap, sizeof *devs);
  for (cl_uint p = 0; p < np; p++) {
    cl_uint nd = 0;
    st = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
    if (st == CL_DEVICE_NOT_FOUND || nd == 0) continue;
    CL_CHECK(st);
    cl_device_id *ids = dmx_calloc(nd, sizeof *ids);
    CL_CHECK(clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, ids, NULL));
    for (cl_uint d = 0; d < nd; d++) {
      if (n == cap) {
        cap *= 2;
        devs = dmx_realloc(devs, (size_t)cap * sizeof *devs);
      }
      fill_device_info(&devs[n++], plats[p], ids[d]);
    }
    free(ids);
  }
  free(plats);
  *out = devs;
  return n;
}

static const char *type_name(cl_device_type t) {
  if (t & CL_DEVICE_TYPE_GPU) return "GPU";
  if (t & CL_DEVICE_TYPE_CPU) return "CPU";
  if (t & CL_DEVICE_TYPE_ACCELERATOR) return "accelerator";
  return "other";
}

void dmx_print_devices(FILE *f, const dmx_device_info *devs, int n) {
  for (int i = 0; i < n; i++) {
    const dmx_device_info *d = &devs[i];
    fprintf(f, "[%d] %s (%s)\n", i, d->name, type_name(d->type));
    fprintf(f, "    platform:        %s (%s)\n", d->platform_name, d->platform_version);
    fprintf(f, "    vendor:          %s\n", d->vendor);
    fprintf(f, "    driver:          %s\n", d->driver_version);
    fprintf(f, "    OpenCL C:        %s (%s)\n", d->opencl_c_version, d->device_version);
    fprintf(f, "    compute units:   %u at %u MHz\n", d->compute_units, d->clock_mhz);
    fprintf(f, "    global memory:   %.1f MiB\n", (double)d->global_mem / 1048576.0);
    fprintf(f, "    local memory:    %.1f KiB\n", (double)d->local_mem / 1024.0);
    fprintf(f, "    max allocation:  %.1f MiB\n", (double)d->max_alloc / 1048576.0);
    fprintf(f, "    max work group:  %zu\n", d->max_work_group);
    fprintf(f, "    fp16: %s, fp64: %s\n", d->fp16 ? "yes" : "no", d->fp64 ? "yes" : "no");
  }
}

static bool contains_ci(const char *hay, const char *needle) {
  size_t nl = strlen(needle);
  for (const char *h = hay; *h; h++) {
    size_t i = 0;
    while (i < nl && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i])) i++;
    if (i == nl) return true;
  }
  return nl == 0;
}

static int choose_device(const dmx_device_info *devs, int n, const char *sel, const char **why) {
  if (sel && *sel) {
    char *end;
    long idx = strtol(sel, &end, 10);
    if (*end == 0) {
      *why = "by index";
      return idx >= 0 && idx < n ? (int)idx : -1;
    }
    *why = "by name";
    for (int i = 0; i < n; i++)
      if (contains_ci(devs[i].name, sel) || contains_ci(devs[i].platform_name, sel)) return i;
    return -1;
  }
  *why = "first GPU";
  for (int i = 0; i < n; i++)
    if (devs[i].type & CL_DEVICE_TYPE_GPU) return i;
  *why = "first device (no GPU found)";
  return n > 0 ? 0 : -1;
}

dmx_runtime *dmx_runtime_create(const char *selector, bool profiling, FILE *log) {
  dmx_device_info *devs;
  int n = dmx_list_devices(&devs);
  if (n == 0)
    dmx_die("no OpenCL device found: install an OpenCL driver (on Debian: apt-get install pocl-opencl-icd "
            "for the CPU, or your GPU vendor's ICD) and check with `clinfo -l`");
  const char *sel = selector && *selector ? selector : getenv("DATAMUX_DEVICE");
  const char *why = "";
  int idx = choose_device(devs, n, sel, &why);
  if (idx < 0) {
    fprintf(stderr, "datamux: no OpenCL device matches '%s'; the devices are:\n", sel);
    dmx_print_devices(stderr, devs, n);
    free(devs);
    exit(2);
  }
  dmx_runtime *rt = dmx_calloc(1, sizeof *rt);
  rt->info = devs[idx];
  free(devs);
  rt->profiling = profiling;
  rt->serial_reductions = (rt->info.type & CL_DEVICE_TYPE_CPU) != 0;
  const char *sr = getenv("DATAMUX_SERIAL_REDUCTIONS");
  if (sr && *sr) {
    if (strcmp(sr, "0") != 0 && strcmp(sr, "1") != 0)
      dmx_die("DATAMUX_SERIAL_REDUCTIONS is '%s': use 1 (a loop per work-item) or 0 (work-group trees)", sr);
    rt->serial_reductions = sr[0] == '1';
  }
  cl_int st;
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)rt->info.platform, 0};
  rt->ctx = clCreateContext(props, 1, &rt->info.device, NULL, NULL, &st);
  CL_CHECK(st);
  rt->queue = clCreateCommandQueue(rt->ctx, rt->info.device, profiling ? CL_QUEUE_PROFILING_ENABLE : 0, &st);
  CL_CHECK(st);
  if (log)
    fprintf(log, "device: [%d] %s (%s, %s; %s)\n", idx, rt->info.name, type_name(rt->info.type),
            rt->info.platform_name, why);
  const char *no_tuning = getenv("DATAMUX_NO_TUNING");
  if (!(no_tuning && *no_tuning && strcmp(no_tuning, "0") != 0)) {
    dmx_error err;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/clblast", dmx_cache_dir());
    int applied = dmx_gemm_load_tuning(rt, dir, &err);
    if (applied < 0) dmx_die("%s (delete or fix the file, or set DATAMUX_NO_TUNING=1, to continue)", err.msg);
    if (applied > 0 && log)
      fprintf(log, "applied %d tuned CLBlast parameter set(s) from %s/<device> (DATAMUX_NO_TUNING=1 ignores them)\n",
              applied, dir);
  }
  return rt;
}

/* ---------------------------------------------------------------- programs and the cache */

struct dmx_program {
  char name[128];
  cl_program program;
};

struct dmx_kernel_entry {
  char file[128];
  char name[128];
  cl_kernel kernel;
  int prof_cat; /* its category in the op-level profile */
};

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
  fprintf(stderr, "datamux: building cl/%s failed on %s. Compiler log (line numbers are lines of cl/%s):\n%s\n",
          name, rt->info.name, name, logtxt);
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
  bool use_cache = cache_enabled();
  if (use_cache) {
    cl_program p = try_cached_binary(rt, path, key, options);
    if (p) {
      rt->stat_cache_hits++;
      return p;
    }
  }
  cl_int st;
  cl_program prog = clCreateProgramWithSource(rt->ctx, 1, &src, &len, &st);
  CL_CHECK(st);
  st = clBuildProgram(prog, 1, &rt->info.device, options, NULL, NULL);
  if (st != CL_SUCCESS) {
    print_build_log(rt, prog, name);
    dmx_die("clBuildProgram(cl/%s) failed: %s; fix the kernel source (see the log above)", name,
            dmx_cl_status_name(st));
  }
  rt->stat_source_builds++;
  if (use_cache) write_cache(rt, prog, path, key);
  return prog;
}

static cl_program program_for(dmx_runtime *rt, const char *file) {
  for (int i = 0; i < rt->n_programs; i++)
    if (!strcmp(rt->programs[i].name, file)) return rt->programs[i].program;
  char *src = NULL;
  size_t len = 0;
  const char *dir = getenv("DATAMUX_CL_DIR");
  if (dir && *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    dmx_error err;
    src = dmx_read_file(path, &len, &err);
    if (!src) dmx_die("%s (DATAMUX_CL_DIR is set to '%s': point it at the cl/ folder of a source tree, or unset it)",
                      err.msg, dir);
  } else {
    for (const dmx_cl_source *s = dmx_cl_sources; s->name; s++)
      if (!strcmp(s->name, file)) {
        src = dmx_malloc(s->len + 1);
        memcpy(src, s->text, s->len + 1);
        len = s->len;
      }
    if (!src) dmx_die("no kernel file cl/%s is embedded in this binary (a build problem: re-run cmake)", file);
  }
  cl_program prog = dmx_build_program(rt, file, src, len, NULL);
  free(src);
  rt->programs = dmx_realloc(rt->programs, (size_t)(rt->n_programs + 1) * sizeof *rt->programs);
  struct dmx_program *p = &rt->programs[rt->n_programs++];
  snprintf(p->name, sizeof p->name, "%s", file);
  p->program = prog;
  return prog;
}

cl_kernel dmx_kernel(dmx_runtime *rt, const char *file, const char *kernel) {
  for (int i = 0; i < rt->n_kernels; i++)
    if (!strcmp(rt->kernels[i].name, kernel) && !strcmp(rt->kernels[i].file, file)) return rt->kernels[i].kernel;
  cl_program prog = program_for(rt, file);
  cl_int st;
  cl_kernel k = clCreateKernel(prog, kernel, &st);
  if (st == CL_INVALID_KERNEL_NAME) dmx_die("cl/%s has no kernel named '%s'", file, kernel);
  CL_CHECK(st);
  if (rt->n_kernels == rt->cap_kernels) {
    rt->cap_kernels = rt->cap_kernels ? 2 * rt->cap_kernels : 32;
    rt->kernels = dmx_realloc(rt->kernels, (size_t)rt->cap_kernels * sizeof *rt->kernels);
  }
  struct dmx_kernel_entry *e = &rt->kernels[rt->n_kernels++];
  snprintf(e->file, sizeof e->file, "%s", file);
  snprintf(e->name, sizeof e->name, "%s", kernel);
  e->kernel = k;
  e->prof_cat = dmx_prof_kernel_category(file, kernel);
  return k;
}

/* Records a launch of a kernel made by dmx_kernel under its category and name (a linear search:
 * only while profiling). */
static void record_kernel(dmx_runtime *rt, cl_event ev, cl_kernel k) {
  for (int i = 0; i < rt->n_kernels; i++)
    if (rt->kernels[i].kernel == k) {
      dmx_prof_record(rt, ev, rt->kernels[i].prof_cat, rt->kernels[i].name);
      return;
    }
  dmx_prof_record(rt, ev, DMX_PROF_OTHER, NULL);
}

/* ---------------------------------------------------------------- launches */

static void set_args(cl_kernel k, int nargs, const dmx_karg *args, const char *file, int line) {
  cl_uint idx = 0;
  for (int i = 0; i < nargs; i++) {
    const dmx_karg *a = &args[i];
    cl_int st = CL_SUCCESS;
    switch (a->kind) {
      case 0: {
        cl_ulong off = a->t.off;
        st = clSetKernelArg(k, idx++, sizeof(cl_mem), &a->t.buf);
        if (st == CL_SUCCESS) st = clSetKernelArg(k, idx++, sizeof off, &off);
        break;
      }
      case 1:
        st = clSetKernelArg(k, idx++, sizeof(cl_int), &a->i);
        break;
      case 2:
        st = clSetKernelArg(k, idx++, sizeof(cl_float), &a->f);
        break;
      case 3:
        st = clSetKernelArg(k, idx++, sizeof(cl_mem), &a->m);
        break;
      case 4:
        st = clSetKernelArg(k, idx++, a->bytes, NULL);
        break;
      case 5: {
        cl_ulong v = a->bytes;
        st = clSetKernelArg(k, idx++, sizeof v, &v);
        break;
      }
    }
    if (st != CL_SUCCESS) {
      char kname[128] = "?";
      clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof kname, kname, NULL);
      dmx_die_at(file, line, "clSetKernelArg(%s, argument %u) failed: %s", kname, idx - 1, dmx_cl_status_name(st));
    }
  }
}

static void enqueue_range(dmx_runtime *rt, cl_kernel k, int dims, const size_t *offset, const size_t *global,
                          const size_t *local, const char *file, int line) {
  /* an event only while the op-level profile records: none otherwise */
  cl_event ev = NULL;
  cl_int st =
      clEnqueueNDRangeKernel(rt->queue, k, (cl_uint)dims, offset, global, local, 0, NULL, rt->prof ? &ev : NULL);
  if (st != CL_SUCCESS) {
    char kname[128] = "?";
    clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, sizeof kname, kname, NULL);
    dmx_die_at(file, line, "clEnqueueNDRangeKernel(%s) failed: %s", kname, dmx_cl_status_name(st));
  }
  if (rt->prof) record_kernel(rt, ev, k);
}

void dmx_launch_at(dmx_runtime *rt, cl_kernel k, int dims, const size_t *global, const size_t *local, int nargs,
                   const dmx_karg *args, const char *file, int line) {
  set_args(k, nargs, args, file, line);
  size_t g[3];
  for (int d = 0; d < dims; d++) {
    g[d] = global[d] ? global[d] : 1;
    if (local) g[d] = (g[d] + local[d] - 1) / local[d] * local[d];
  }
  enqueue_range(rt, k, dims, NULL, g, local, file, line);
}

void dmx_launch_exact_at(dmx_runtime *rt, cl_kernel k, int dims, const size_t *global, const size_t *local, int nargs,
                         const dmx_karg *args, const char *file, int line) {
  if (dims < 1 || dims > 3) dmx_die_at(file, line, "dmx_launch_exact: %d dimensions (1 to 3 supported)", dims);
  for (int d = 0; d < dims; d++)
    if (global[d] == 0) return; /* nothing to run */
  size_t l[3] = {1, 1, 1}, wg = 1;
  for (int d = 1; d < dims; d++) {
    l[d] = local ? local[d] : 1;
    if (l[d] == 0 || global[d] % l[d] != 0)
      dmx_die_at(file, line,
                 "dmx_launch_exact: local size %zu does not divide global size %zu in dimension %d (a program bug)",
                 l[d], global[d], d);
    wg *= l[d];
  }
  size_t want = local && local[0] ? local[0] : 256;
  while (l[0] * 2 <= want && l[0] * 2 * wg <= rt->info.max_work_group) l[0] *= 2;
  set_args(k, nargs, args, file, line);
  size_t bulk = global[0] / l[0] * l[0], tail = global[0] - bulk;
  size_t g[3] = {bulk, dims > 1 ? global[1] : 1, dims > 2 ? global[2] : 1};
  if (bulk) enqueue_range(rt, k, dims, NULL, g, l, file, line);
  if (tail) {
    size_t off[3] = {bulk, 0, 0};
    g[0] = tail;
    /* the remainder's work-group shape is the runtime's: any divisor of the remainder will do */
    enqueue_range(rt, k, dims, off, g, NULL, file, line);
  }
}

/* ---------------------------------------------------------------- arenas */

void dmx_arena_init(dmx_arena *a, dmx_runtime *rt, const char *name) {
  memset(a, 0, sizeof *a);
  a->name = name;
  a->rt = rt;
  a->max_floats_per_buffer = (size_t)(rt->info.max_alloc / sizeof(float));
}

void dmx_arena_add(dmx_arena *a, dmx_tensor *t, size_t n) {
  if (a->committed) dmx_die("arena '%s': tensor added after commit (a program bug)", a->name);
  size_t aligned = (n + DMX_ALIGN - 1) / DMX_ALIGN * DMX_ALIGN;
  if (aligned > a->max_floats_per_buffer)
    dmx_die("arena '%s': one tensor of %zu bytes exceeds the device's max allocation of %zu bytes; use a smaller "
            "model or batch",
            a->name, n * sizeof(float), a->max_floats_per_buffer * sizeof(float));
  if (a->n_buffers == 0 || a->used[a->n_buffers - 1] + aligned > a->max_floats_per_buffer) {
    a->bufs = dmx_realloc(a->bufs, (size_t)(a->n_buffers + 1) * sizeof *a->bufs);
    a->used = dmx_realloc(a->used, (size_t)(a->n_buffers + 1) * sizeof *a->used);
    a->bufs[a->n_buffers] = NULL;
    a->used[a->n_buffers] = 0;
    a->n_buffers++;
  }
  if (a->n_tensors == a->cap_tensors) {
    a->cap_tensors = a->cap_tensors ? 2 * a->cap_tensors : 64;
    a->tensors = dmx_realloc(a->tensors, (size_t)a->cap_tensors * sizeof *a->tensors);
    a->tensor_buffer = dmx_realloc(a->tensor_buffer, (size_t)a->cap_tensors * sizeof *a->tensor_buffer);
  }
  t->buf = NULL;
  t->off = a->used[a->n_buffers - 1];
  t->n = n;
  a->tensors[a->n_tensors] = t;
  a->tensor_buffer[a->n_tensors] = a->n_buffers - 1;
  a->n_tensors++;
  a->used[a->n_buffers - 1] += aligned;
}

size_t dmx_arena_bytes(const dmx_arena *a) {
  size_t total = 0;
  for (int i = 0; i < a->n_buffers; i++) total += a->used[i] * sizeof(float);
  return total;
}

int dmx_arena_commit(dmx_arena *a, dmx_error *err) {
  size_t need = dmx_arena_bytes(a);
  if (need > a->rt->info.global_mem)
    return dmx_fail(err, "arena '%s' needs %.1f MiB but %s has %.1f MiB of global memory; use a smaller model, batch "
                    "or sequence length",
                    a->name, need / 1048576.0, a->rt->info.name, a->rt->info.global_mem / 1048576.0);
  for (int i = 0; i < a->n_buffers; i++) {
    cl_int st;
    a->bufs[i] = clCreateBuffer(a->rt->ctx, CL_MEM_READ_WRITE, a->used[i] * sizeof(float), NULL, &st);
    if (st != CL_SUCCESS)
      return dmx_fail(err, "arena '%s': clCreateBuffer of %.1f MiB failed: %s (device memory is %.1f MiB); use a "
                      "smaller model or batch",
                      a->name, a->used[i] * sizeof(float) / 1048576.0, dmx_cl_status_name(st),
                      a->rt->info.global_mem / 1048576.0);
  }
  for (int i = 0; i < a->n_tensors; i++) a->tensors[i]->buf = a->bufs[a->tensor_buffer[i]];
  a->committed = true;
  return 0;
}

void dmx_arena_zero(dmx_arena *a) {
  for (int i = 0; i < a->n_buffers; i++)
    if (a->used[i]) dmx_fill(a->rt, (dmx_tensor){a->bufs[i], 0, a->used[i]}, 0.0f);
}

void dmx_arena_release(dmx_arena *a) {
  for (int i = 0; i < a->n_buffers; i++)
    if (a->bufs[i]) clReleaseMemObject(a->bufs[i]);
  free(a->bufs);
  free(a->used);
  free(a->tensors);
  free(a->tensor_buffer);
  memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------- copies */

void dmx_upload(dmx_runtime *rt, dmx_tensor t, const void *src, size_t bytes) {
  if (bytes == 0) return;
  rt->stat_uploads++;
  rt->stat_upload_bytes += bytes;
  CL_CHECK(clEnqueueWriteBuffer(rt->queue, t.buf, CL_TRUE, t.off * 4, bytes, src, 0, NULL, NULL));
}

/* The caller guarantees src outlives the write (see dmx_stager for per-step inputs). */
void dmx_upload_async(dmx_runtime *rt, dmx_tensor t, const void *src, size_t bytes) {
  if (bytes == 0) return;
  rt->stat_uploads++;
  rt->stat_upload_bytes += bytes;
  cl_event ev = NULL;
  CL_CHECK(clEnqueueWriteBuffer(rt->queue, t.buf, CL_FALSE, t.off * 4, bytes, src, 0, NULL, rt->prof ? &ev : NULL));
  if (rt->prof) dmx_prof_record(rt, ev, DMX_PROF_UPLOAD, NULL);
}

void dmx_download(dmx_runtime *rt, void *dst, dmx_tensor t, size_t bytes) {
  if (bytes == 0) return;
  rt->stat_downloads++;
  rt->stat_download_bytes += bytes;
  CL_CHECK(clEnqueueReadBuffer(rt->queue, t.buf, CL_TRUE, t.off * 4, bytes, dst, 0, NULL, NULL));
}

void dmx_fill(dmx_runtime *rt, dmx_tensor t, float value) {
  if (t.n == 0) return;
  size_t n = t.n;
  dmx_launch_exact(rt, dmx_kernel(rt, "util.cl", "fill_value"), 1, &n, NULL, KA_T(t), KA_F(value));
}

void dmx_finish(dmx_runtime *rt) { CL_CHECK(clFinish(rt->queue)); }

void dmx_stager_init(dmx_stager *s, size_t capacity_bytes) {
  memset(s, 0, sizeof *s);
  s->cap = capacity_bytes;
  s->slot[0] = dmx_malloc(capacity_bytes);
  s->slot[1] = dmx_malloc(capacity_bytes);
}

void dmx_stager_begin(dmx_runtime *rt, dmx_stager *s) {
  (void)rt;
  s->current ^= 1;
  s->used = 0;
  if (s->done[s->current]) {
    CL_CHECK(clWaitForEvents(1, &s->done[s->current]));
    CL_CHECK(clReleaseEvent(s->done[s->current]));
    s->done[s->current] = NULL;
  }
}

void dmx_stager_upload(dmx_runtime *rt, dmx_stager *s, dmx_tensor t, const void *src, size_t bytes) {
  if (bytes == 0) return;
  size_t aligned = (bytes + 63) / 64 * 64;
  if (s->used + aligned > s->cap)
    dmx_die("staging slot overflow: %zu + %zu bytes > %zu (a program bug: size the stager for a step's inputs)",
            s->used, bytes, s->cap);
  unsigned char *dst = s->slot[s->current] + s->used;
  memcpy(dst, src, bytes);
  rt->stat_uploads++;
  rt->stat_upload_bytes += bytes;
  s->used += aligned;
  cl_event ev = NULL;
  CL_CHECK(clEnqueueWriteBuffer(rt->queue, t.buf, CL_FALSE, t.off * 4, bytes, dst, 0, NULL, rt->prof ? &ev : NULL));
  if (rt->prof) dmx_prof_record(rt, ev, DMX_PROF_UPLOAD, NULL);
}

void dmx_stager_end(dmx_runtime *rt, dmx_stager *s) {
  if (s->done[s->current]) CL_CHECK(clReleaseEvent(s->done[s->current]));
  CL_CHECK(clEnqueueMarkerWithWaitList(rt->queue, 0, NULL, &s->done[s->current]));
}

void dmx_stager_free(dmx_stager *s) {
  for (int i = 0; i < 2; i++) {
    if (s->done[i]) {
      clWaitForEvents(1, &s->done[i]);
      clReleaseEvent(s->done[i]);
    }
    free(s->slot[i]);
  }
  memset(s, 0, sizeof *s);
}

dmx_tensor dmx_buffer_create(dmx_runtime *rt, size_t n_floats) {
  cl_int st;
  cl_mem m = clCreateBuffer(rt->ctx, CL_MEM_READ_WRITE, (n_floats ? n_floats : 1) * sizeof(float), NULL, &st);
  CL_CHECK(st);
  return (dmx_tensor){m, 0, n_floats};
}

void dmx_buffer_release(dmx_tensor t) {
  if (t.buf) clReleaseMemObject(t.buf);
}

void dmx_runtime_destroy(dmx_runtime *rt) {
  if (!rt) return;
  clFinish(rt->queue);
  dmx_prof_stop(rt);
  dmx_gemm_release(rt);
  for (int i = 0; i < rt->n_kernels; i++) clReleaseKernel(rt->kernels[i].kernel);
  for (int i = 0; i < rt->n_programs; i++) clReleaseProgram(rt->programs[i].program);
  free(rt->kernels);
  free(rt->programs);
  clReleaseCommandQueue(rt->queue);
  clReleaseContext(rt->ctx);
  free(rt);
}
