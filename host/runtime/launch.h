/* Kernel launches. A tensor argument takes two kernel parameters: (__global T *p, ulong off). */
#ifndef DMX_RUNTIME_LAUNCH_H
#define DMX_RUNTIME_LAUNCH_H

#include <string.h>

#include "host/runtime/context.h"
#include "host/runtime/program.h"

typedef enum { DMX_KA_TENSOR, DMX_KA_INT, DMX_KA_FLOAT, DMX_KA_MEM, DMX_KA_LOCAL, DMX_KA_ULONG } dmx_karg_kind;

typedef struct {
  dmx_karg_kind kind;
  dmx_tensor t;
  int i;
  float f;
  cl_mem m;
  size_t bytes; /* DMX_KA_LOCAL: local memory bytes; DMX_KA_ULONG: the value */
} dmx_karg;
#define KA_T(x) ((dmx_karg){.kind = DMX_KA_TENSOR, .t = (x)})
#define KA_I(x) ((dmx_karg){.kind = DMX_KA_INT, .i = (int)(x)})
#define KA_F(x) ((dmx_karg){.kind = DMX_KA_FLOAT, .f = (float)(x)})
#define KA_MEM(x) ((dmx_karg){.kind = DMX_KA_MEM, .m = (x)})
#define KA_LOCAL(b) ((dmx_karg){.kind = DMX_KA_LOCAL, .bytes = (b)})
#define KA_UL(x) ((dmx_karg){.kind = DMX_KA_ULONG, .bytes = (size_t)(x)})
/* a kernel's `uint` parameter: the same 32 bits as an int argument */
static inline int dmx_uint_bits(uint32_t v) {
  int i;
  memcpy(&i, &v, sizeof i);
  return i;
}
#define KA_U(x) KA_I(dmx_uint_bits(x))
#define DMX_KARGS(...) \
  (int)(sizeof((dmx_karg[]){__VA_ARGS__}) / sizeof(dmx_karg)), (dmx_karg[]) { __VA_ARGS__ }

/* The largest work-group kernel id runs on this device (see rt->kernel_wg_max); resolves it. */
static inline size_t dmx_kernel_wg_max(dmx_runtime *rt, dmx_kernel_id id) {
  dmx_kernel(rt, id);
  return rt->kernel_wg_max[id];
}
/* The local size of dimension dim of a launch of kernel id: the largest power of two <= want (at
 * least 1) that, times `rest` (the product of the group's other dimensions), stays within the
 * kernel's work-group limit, and within the device's limit for that dimension. Launchers derive
 * every work-group from this, never from an assumed size. */
size_t dmx_local_pow2(dmx_runtime *rt, dmx_kernel_id id, int dim, size_t want, size_t rest);
/* Bytes of local memory kernel id can take in KA_LOCAL arguments: the device's less its own. */
size_t dmx_kernel_local_mem_max(dmx_runtime *rt, dmx_kernel_id id);

/* Enqueues kernel k (handle id, or DMX_KERNEL_COUNT for a kernel from outside kernels.def) over a
 * 1-, 2- or 3-D global size (rounded up to the local size, so every work-group is whole, as OpenCL
 * 1.2 requires; kernels guard their bounds). local may be NULL (the runtime picks). A local size
 * above the kernel's or the device's limits, or local memory above the device's, stops the program
 * naming the kernel and the call site, rather than failing on some devices only. Never waits. */
void dmx_launch_at(dmx_runtime *rt, cl_kernel k, dmx_kernel_id id, int dims, const size_t *global, const size_t *local,
                   int nargs, const dmx_karg *args, const char *file, int line);
#define dmx_launch(rt, id, dims, global, local, ...)                                                             \
  dmx_launch_at((rt), dmx_kernel((rt), (id)), (id), (dims), (global), (local), DMX_KARGS(__VA_ARGS__), __FILE__, \
                __LINE__)
/* The same for a kernel the caller created itself (tests, tools). */
#define dmx_launch_cl(rt, k, dims, global, local, ...) \
  dmx_launch_at((rt), (k), DMX_KERNEL_COUNT, (dims), (global), (local), DMX_KARGS(__VA_ARGS__), __FILE__, __LINE__)

/* Enqueues over exactly `global` work-items: the kernel has no bounds guard, because on PoCL
 * an early `if (i >= n) return` stops the work-group vectoriser (elementwise kernels ran 2.5-3.5x
 * slower with one). Dimension 0 runs in work-groups of local[0] (rounded down to a power of two the
 * device allows), its remainder as a second launch at a global offset; local[d] for d > 0 must
 * divide global[d]. Never waits. */
void dmx_launch_exact_at(dmx_runtime *rt, cl_kernel k, dmx_kernel_id id, int dims, const size_t *global,
                         const size_t *local, int nargs, const dmx_karg *args, const char *file, int line);
#define dmx_launch_exact(rt, id, dims, global, local, ...)                                                             \
  dmx_launch_exact_at((rt), dmx_kernel((rt), (id)), (id), (dims), (global), (local), DMX_KARGS(__VA_ARGS__), __FILE__, \
                      __LINE__)

/* Enqueues zeroing (or any value) of t's n floats, as a kernel: 2-3x faster than
 * clEnqueueFillBuffer on PoCL. */
void dmx_fill(dmx_runtime *rt, dmx_tensor t, float value);

#endif
