/* The OpenCL runtime: device choice, one context and one in-order queue, programs built once per
 * process and cached on disk, kernels created once, kernel launches, and device memory arenas.
 * Knows nothing of the model. */
#ifndef DMX_RUNTIME_H
#define DMX_RUNTIME_H

#include <CL/cl.h>
#include <stdbool.h>
#include <stdint.h>

#include "host/base/common.h"

const char *dmx_cl_status_name(cl_int status);

/* Checks an OpenCL status; on failure ends the process naming the call, the site and the status. */
void dmx_cl_check_at(cl_int status, const char *what, const char *file, int line);
#define CL_CHECK(call) dmx_cl_check_at((call), #call, __FILE__, __LINE__)

typedef struct {
  cl_platform_id platform;
  cl_device_id device;
  cl_device_type type;
  char name[256], vendor[256], driver_version[128], platform_name[256], platform_version[256];
  char device_version[128], opencl_c_version[128];
  cl_uint compute_units, clock_mhz;
  cl_ulong global_mem, local_mem, max_alloc;
  size_t max_work_group;
  cl_uint mem_base_addr_align_bits;
  bool fp16, fp64;
} dmx_device_info;

/* Every device of every platform, in platform order. Returns the count; *out is malloc'd. */
int dmx_list_devices(dmx_device_info **out);
void dmx_print_devices(FILE *f, const dmx_device_info *devs, int n);

typedef struct dmx_program dmx_program;

typedef struct {
  dmx_device_info info;
  cl_context ctx;
  cl_command_queue queue;
  bool profiling;
  /* Reductions over a row (layer norm, softmax) or a column (bias and LayerNorm gradients) as a
   * loop inside one work-item per row or column, instead of a tree across a work-group: chosen on
   * CPU devices, where PoCL runs each barrier-separated region as its own loop over the
   * work-items (a 128-wide row group was 20x slower). DATAMUX_SERIAL_REDUCTIONS=0/1 overrides. */
  bool serial_reductions;
  /* programs built (or loaded from the cache) in this process, and the kernels created from them */
  struct dmx_program *programs;
  int n_programs;
  struct dmx_kernel_entry *kernels;
  int n_kernels, cap_kernels;
  /* counters that tests read to prove the cache works without timing anything */
  int stat_source_builds, stat_cache_hits, stat_cache_writes, stat_cache_rejects;
  /* host<->device traffic, so tests can prove what a training step moves */
  long stat_downloads, stat_uploads;
  size_t stat_download_bytes, stat_upload_bytes;
  void *gemm; /* state of host/gemm.c */
  /* profiling by synchronisation (DATAMUX_PROFILE): GEMMs finish the queue before and after, and
   * their wall time accumulates here, so a step's time splits into CLBlast and our kernels */
  bool time_gemms;
  double gemm_seconds;
  /* op-level profiling by events (host/profile.h): NULL = off, and then no event is created */
  struct dmx_prof *prof;
  const char *prof_scope; /* the layer role of the next GEMMs (see dmx_prof_scope) */
} dmx_runtime;

/* Names the layer role of the GEMMs that follow ("qkv", "attn_out", "ffn_up", "ffn_down",
 * "attention", "mux", "heads", "vocab"), so the op-level profile can split GEMM time by role.
 * A pointer store: free when profiling is off. The string must be a literal (kept, not copied). */
static inline void dmx_prof_scope(dmx_runtime *rt, const char *scope) { rt->prof_scope = scope; }

/* Chooses the device: `selector` (index or case-insensitive name substring), else
 * $DATAMUX_DEVICE, else the first GPU, else the first device. Prints the device to `log`
 * when non-NULL. Ends the process with a clear message when nothing matches. */
dmx_runtime *dmx_runtime_create(const char *selector, bool profiling, FILE *log);
void dmx_runtime_destroy(dmx_runtime *rt);

/* Returns the kernel `kernel` of cl/<file> (e.g. "layernorm.cl"), building the program on first
 * use (from the embedded source, or $DATAMUX_CL_DIR/<file> when set) with the binary cache.
 * The cl_kernel is created once and owned by the runtime. */
cl_kernel dmx_kernel(dmx_runtime *rt, const char *file, const char *kernel);

/* Builds a program from explicit source (tests, tools). Cached like the embedded ones. */
cl_program dmx_build_program(dmx_runtime *rt, const char *name, const char *src, size_t len,
                             const char *options);

/* A tensor is a (buffer, element offset) pair into an arena; n is its element count. */
typedef struct {
  cl_mem buf;
  size_t off; /* in floats (or in 4-byte elements for int tensors) */
  size_t n;
} dmx_tensor;

/* Kernel arguments for dmx_launch. A tensor takes two kernel parameters: (__global T *p, ulong off). */
typedef struct {
  int kind; /* 0 tensor, 1 int, 2 float, 3 mem, 4 local bytes, 5 ulong */
  dmx_tensor t;
  int i;
  float f;
  cl_mem m;
  size_t bytes;
} dmx_karg;
#define KA_T(x) ((dmx_karg){.kind = 0, .t = (x)})
#define KA_I(x) ((dmx_karg){.kind = 1, .i = (int)(x)})
#define KA_F(x) ((dmx_karg){.kind = 2, .f = (float)(x)})
#define KA_MEM(x) ((dmx_karg){.kind = 3, .m = (x)})
#define KA_LOCAL(b) ((dmx_karg){.kind = 4, .bytes = (b)})
#define KA_UL(x) ((dmx_karg){.kind = 5, .bytes = (size_t)(x)})

/* Enqueues `k` over a 1-, 2- or 3-D global size (rounded up to the local size; kernels guard
 * their bounds). local may be NULL (the runtime picks). Never waits. */
void dmx_launch_at(dmx_runtime *rt, cl_kernel k, int dims, const size_t *global, const size_t *local,
                   int nargs, const dmx_karg *args, const char *file, int line);
#define dmx_launch(rt, k, dims, global, local, ...)                                                \
  dmx_launch_at((rt), (k), (dims), (global), (local),                                             \
                (int)(sizeof((dmx_karg[]){__VA_ARGS__}) / sizeof(dmx_karg)), (dmx_karg[]){__VA_ARGS__}, \
                __FILE__, __LINE__)

/* Enqueues `k` over exactly `global` work-items: the kernel has no bounds guard, because on PoCL
 * an early `if (i >= n) return` stops the work-group vectoriser (elementwise kernels ran 2.5-3.5x
 * slower with one). Dimension 0 runs in work-groups of local[0] (rounded down to a power of two the
 * device allows), its remainder as a second launch at a global offset; local[d] for d > 0 must
 * divide global[d]. Never waits. */
void dmx_launch_exact_at(dmx_runtime *rt, cl_kernel k, int dims, const size_t *global, const size_t *local,
                         int nargs, const dmx_karg *args, const char *file, int line);
#define dmx_launch_exact(rt, k, dims, global, local, ...)                                          \
  dmx_launch_exact_at((rt), (k), (dims), (global), (local),                                       \
                      (int)(sizeof((dmx_karg[]){__VA_ARGS__}) / sizeof(dmx_karg)), (dmx_karg[]){__VA_ARGS__}, \
                      __FILE__, __LINE__)

/* Device memory arenas: one per tensor group (llm.c's malloc_and_point, on the device).
 * Register every tensor of the group with dmx_arena_add (it records where the tensor lives and
 * its offset, aligned to DMX_ALIGN floats so kernels may use vector loads), then dmx_arena_commit
 * allocates the buffers once and fills in every registered tensor's buffer. When one buffer would
 * pass the device's max allocation, a new buffer starts, so a tensor never straddles two. */
#define DMX_ALIGN 32
typedef struct {
  const char *name;
  dmx_runtime *rt;
  size_t max_floats_per_buffer;
  int n_buffers;
  cl_mem *bufs;
  size_t *used; /* floats used in each buffer */
  dmx_tensor **tensors;
  int *tensor_buffer; /* which buffer each registered tensor lives in */
  int n_tensors, cap_tensors;
  bool committed;
} dmx_arena;

void dmx_arena_init(dmx_arena *a, dmx_runtime *rt, const char *name);
/* Registers *t (n floats). *t must stay at the same address until commit. */
void dmx_arena_add(dmx_arena *a, dmx_tensor *t, size_t n);
/* Allocates the buffers; 0, or -1 with err naming the bytes needed and available. */
int dmx_arena_commit(dmx_arena *a, dmx_error *err);
size_t dmx_arena_bytes(const dmx_arena *a);
void dmx_arena_release(dmx_arena *a);
/* Enqueues zeroing of every buffer of the arena. */
void dmx_arena_zero(dmx_arena *a);

/* Blocking host<->device copies; only for setup, checkpoints, tests and log intervals. */
void dmx_upload(dmx_runtime *rt, dmx_tensor t, const void *src, size_t bytes);
void dmx_download(dmx_runtime *rt, void *dst, dmx_tensor t, size_t bytes);
/* Non-blocking upload (the batch ids of a step); src must stay valid until the queue finishes. */
void dmx_upload_async(dmx_runtime *rt, dmx_tensor t, const void *src, size_t bytes);
void dmx_fill(dmx_runtime *rt, dmx_tensor t, float value);
void dmx_finish(dmx_runtime *rt);

/* Per-step uploads without a per-step sync: the host copies each step's inputs into one of two
 * staging slots and enqueues non-blocking writes from there. Before a slot is refilled (two steps
 * later), dmx_stager_begin waits for the event that marked the end of its previous writes, which
 * the in-order queue reached long before. So the caller may refill its own arrays at once. */
typedef struct {
  unsigned char *slot[2];
  size_t cap, used;
  int current;
  cl_event done[2];
} dmx_stager;
void dmx_stager_init(dmx_stager *s, size_t capacity_bytes);
void dmx_stager_begin(dmx_runtime *rt, dmx_stager *s);
/* Copies src into the current slot and enqueues the write into t. */
void dmx_stager_upload(dmx_runtime *rt, dmx_stager *s, dmx_tensor t, const void *src, size_t bytes);
void dmx_stager_end(dmx_runtime *rt, dmx_stager *s);
void dmx_stager_free(dmx_stager *s);

/* A standalone device buffer for tests and tools, as a tensor at offset 0. */
dmx_tensor dmx_buffer_create(dmx_runtime *rt, size_t n_floats);
void dmx_buffer_release(dmx_tensor t);

#endif
