/* Programs and kernels of cl/, built once per process through an on-disk binary cache. */
#ifndef DMX_RUNTIME_PROGRAM_H
#define DMX_RUNTIME_PROGRAM_H

#include "host/runtime/context.h"

/* The kernel behind a handle, created on first use (building its program then) and owned by the
 * runtime; afterwards an array read. */
cl_kernel dmx_kernel_resolve(dmx_runtime *rt, dmx_kernel_id id);
static inline cl_kernel dmx_kernel(dmx_runtime *rt, dmx_kernel_id id) {
  return rt->kernels[id] ? rt->kernels[id] : dmx_kernel_resolve(rt, id);
}
/* Kernel k's work-group limit on rt's device (CL_KERNEL_WORK_GROUP_SIZE capped by the device's and
 * DATAMUX_MAX_WORK_GROUP) and its own local memory (CL_KERNEL_LOCAL_MEM_SIZE before arguments are set);
 * for handles this is read once at resolution (rt->kernel_wg_max). */
void dmx_kernel_query_limits(const dmx_runtime *rt, cl_kernel k, size_t *wg_max, cl_ulong *static_local);
/* The kernel's function name and its cl/ file ("layernorm.cl"). */
const char *dmx_kernel_name(dmx_kernel_id k);
const char *dmx_kernel_file(dmx_kernel_id k);

/* The program of cl/<file>, built on first use (tests compare its kernels with kernels.def). */
cl_program dmx_program_of(dmx_runtime *rt, const char *file);

/* The source the runtime builds for cl/<file>: cl/prelude.h, `#line 1`, then the file (embedded, or
 * from $DATAMUX_CL_DIR when set); malloc'd and NUL-terminated, its length in *len. */
char *dmx_program_source(const char *file, size_t *len);

/* Builds a program from explicit source (tests, tools). Cached like the embedded ones. */
cl_program dmx_build_program(dmx_runtime *rt, const char *name, const char *src, size_t len, const char *options);

/* Releases every kernel and program (dmx_runtime_destroy). */
void dmx_programs_release(dmx_runtime *rt);

#endif
