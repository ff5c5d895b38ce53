/* The runtime's core: one device, one context, one in-order queue, and the slots through which
 * higher modules attach to it without the runtime knowing them (ggml's interface-plus-context
 * pattern): an observer that sees every command (host/runtime/profile.c) and extension state
 * (host/runtime/gemm.c). Knows nothing of the model. The modules on top: device.h (choice),
 * program.h (cache, kernel handles), launch.h, arena.h (memory, copies), native.h (host functions
 * in the queue); runtime.h has them all. */
#ifndef DMX_RUNTIME_CONTEXT_H
#define DMX_RUNTIME_CONTEXT_H

#include <CL/cl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "host/base/common.h"
#include "host/runtime/cl_check.h"
#include "host/runtime/device.h"

/* Handles of every kernel of cl/ (host/runtime/kernels.def). */
typedef enum {
#define DMX_KERNEL(id, file, name) id,
#include "host/runtime/kernels.def"
#undef DMX_KERNEL
  DMX_KERNEL_COUNT
} dmx_kernel_id;

/* A tensor is a (buffer, element offset) pair into an arena; n is its element count. */
typedef struct {
  cl_mem buf;
  size_t off; /* in floats (or in 4-byte elements for int tensors) */
  size_t n;
} dmx_tensor;

/* What an observer sees. A kernel launch names its handle and the kernel (a kernel from outside
 * kernels.def has handle DMX_KERNEL_COUNT and a generic label); an upload has DMX_KERNEL_COUNT and
 * label NULL.
 * A span brackets commands the runtime did not enqueue itself (a CLBlast call): span_begin
 * enqueues a marker before them, span_end one after, and the span's time is END(after) - END(before). */
typedef struct {
  void (*command)(void *ctx, cl_event ev, dmx_kernel_id kernel, const char *label);
  cl_event (*span_begin)(void *ctx);
  void (*span_end)(void *ctx, cl_event before, double flops, const char *label);
} dmx_observer_iface;

/* Extension slots: state a higher module keeps per runtime, released with it. */
typedef enum { DMX_EXT_GEMM, DMX_EXT_COUNT } dmx_ext_slot;
typedef struct {
  void *state;
  void (*release)(void *state);
} dmx_extension;

typedef struct dmx_runtime {
  dmx_device_info info;
  cl_context ctx;
  cl_command_queue queue;
  bool profiling; /* the queue was created with CL_QUEUE_PROFILING_ENABLE */
  FILE *log;      /* where start-up notes go (NULL: nowhere) */
  /* Reductions over a row (layer norm, softmax) or a column (bias and LayerNorm gradients) as a
   * loop inside one work-item per row or column, instead of a tree across a work-group: chosen on
   * CPU devices, where PoCL runs each barrier-separated region as its own loop over the
   * work-items (a 128-wide row group was 20x slower). DATAMUX_SERIAL_REDUCTIONS=0/1 overrides. */
  bool serial_reductions;
  /* Attention as the fused kernels of cl/attention.cl (scores never materialised) instead of two
   * strided-batched GEMMs around a softmax kernel (layers/attention.c). DATAMUX_ATTENTION=fused|gemm
   * overrides the per-device default (host/runtime/runtime.c says how it was chosen). */
  bool fused_attention;
  /* Memory-bound loops (fills, bias gradients) as host functions in native kernels
   * (host/runtime/native.h) instead of OpenCL kernels: on by default on CPU devices that run native
   * kernels, where PoCL's forms of them ran 2-10x under the memory bandwidth. DATAMUX_NATIVE_LOOPS=0/1
   * overrides. */
  bool native_loops;
  /* programs of cl/ built (or loaded from the cache) in this process, by index into
   * dmx_cl_sources, and the kernels resolved from them, by handle (host/runtime/program.c) */
  cl_program *programs;
  int n_programs;
  cl_kernel kernels[DMX_KERNEL_COUNT];
  /* per kernel, read when it is resolved: CL_KERNEL_WORK_GROUP_SIZE (its registers and local memory
   * can make it lower than the device's limit) capped by CL_DEVICE_MAX_WORK_GROUP_SIZE and
   * DATAMUX_MAX_WORK_GROUP, and CL_KERNEL_LOCAL_MEM_SIZE before any argument is set (its own
   * __local arrays) */
  size_t kernel_wg_max[DMX_KERNEL_COUNT];
  cl_ulong kernel_static_local[DMX_KERNEL_COUNT];
  /* DATAMUX_MAX_WORK_GROUP: every kernel's limit capped at this (0: none), so the launchers' sizes
   * can be proved on a device with small limits without having one (tests) */
  size_t wg_cap;
  /* counters that tests read to prove the cache works without timing anything */
  int stat_source_builds, stat_cache_hits, stat_cache_writes, stat_cache_rejects;
  /* host<->device traffic, so tests can prove what a training step moves */
  long stat_downloads, stat_uploads;
  size_t stat_download_bytes, stat_upload_bytes;
  /* NULL iface: no observer, and then no event is created */
  const dmx_observer_iface *observer;
  void *observer_ctx;
  const char *scope; /* the layer role of the next GEMMs (see dmx_scope) */
  /* every buffer created through the runtime, oldest first (host/runtime/arena.c). A native kernel
   * gets its buffers in this order, because PoCL sorts a command's buffers by creation before it
   * writes their pointers into the caller's slots (host/runtime/gemm_host.c). */
  cl_mem *created;
  size_t n_created, cap_created;
  dmx_extension ext[DMX_EXT_COUNT];
} dmx_runtime;

/* Names the layer role of the GEMMs that follow ("qkv", "attn_out", "ffn_up", "ffn_down",
 * "attention", "mux", "heads", "vocab"), so the op-level profile can split GEMM time by role.
 * A pointer store: free when profiling is off. The string must be a literal (kept, not copied). */
static inline void dmx_scope(dmx_runtime *rt, const char *scope) { rt->scope = scope; }

/* The cheap size check at a layer's entry: tensor t must hold at least `count` elements (a program
 * bug otherwise, named with the call site). n == 0 means a hand-made view of unknown size, which
 * passes. */
#define DMX_NEED(t, count)                                                                                \
  do {                                                                                                    \
    size_t dmx_need_ = (size_t)(count);                                                                   \
    if ((t).n != 0 && (t).n < dmx_need_)                                                                  \
      dmx_die_at(__FILE__, __LINE__, "%s holds %zu elements but %zu are needed here (a program bug)", #t, \
                 (size_t)(t).n, dmx_need_);                                                               \
  } while (0)

/* Every buffer of the runtime is made here, so that its creation order is known. */
cl_mem dmx_mem_create(dmx_runtime *rt, size_t bytes, cl_int *status);
/* Where m stands in the creation order of rt's buffers (larger: newer); SIZE_MAX for a buffer the
 * runtime did not create. */
size_t dmx_mem_rank(const dmx_runtime *rt, cl_mem m);

/* Attaches (iface non-NULL) or detaches (NULL) the observer. */
void dmx_observer_set(dmx_runtime *rt, const dmx_observer_iface *iface, void *ctx);
static inline bool dmx_observed(const dmx_runtime *rt) { return rt->observer != NULL; }
/* Hands a command's event to the observer (which then owns it). Only while observed. */
static inline void dmx_observe(dmx_runtime *rt, cl_event ev, dmx_kernel_id kernel, const char *label) {
  rt->observer->command(rt->observer_ctx, ev, kernel, label);
}
/* A span around commands enqueued by someone else; NULL (and no marker) while not observed. */
static inline cl_event dmx_span_begin(dmx_runtime *rt) {
  return rt->observer ? rt->observer->span_begin(rt->observer_ctx) : NULL;
}
static inline void dmx_span_end(dmx_runtime *rt, cl_event before, double flops, const char *label) {
  if (before && rt->observer) rt->observer->span_end(rt->observer_ctx, before, flops, label);
}

/* The extension state in slot s, created by make() on first use and released by release() with
 * the runtime. */
void *dmx_ext_get(dmx_runtime *rt, dmx_ext_slot s, void *(*make)(dmx_runtime *rt), void (*release)(void *state));
/* Releases every extension's state (dmx_runtime_destroy, and tests that want a fresh one). */
void dmx_ext_release_all(dmx_runtime *rt);

#endif
