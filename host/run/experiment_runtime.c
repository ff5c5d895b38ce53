#include "host/run/experiment_runtime.h"

#include <stdlib.h>
#include <string.h>

#include "host/runtime/gemm.h"

_Static_assert((int)DMX_CFG_GEMM_AUTO == (int)DMX_GEMM_AUTO && (int)DMX_CFG_GEMM_CLBLAST == (int)DMX_GEMM_CLBLAST &&
                   (int)DMX_CFG_GEMM_HOST_BLAS == (int)DMX_GEMM_HOST_BLAS,
               "the experiment's gemm_backend and the runtime's backends are in the same order");

dmx_runtime *dmx_experiment_runtime(const dmx_experiment *e, const char *device, bool profiling, FILE *log) {
  dmx_runtime *rt = dmx_runtime_create(device && *device ? device : e->device, profiling, log);
  char origin[1200];
  dmx_experiment_describe_origin(e, "gemm_backend", origin, sizeof origin);
  /* "file:line:col: " -> "file:line:col:" before the option's name */
  size_t n = strlen(origin);
  if (n >= 2 && origin[n - 1] == ' ') origin[n - 1] = 0;
  dmx_error err;
  if (dmx_gemm_select(rt, (dmx_gemm_backend)e->gemm_backend, origin, &err)) {
    fprintf(stderr, "%s: %s\n", dmx_program_name(), err.msg);
    dmx_runtime_destroy(rt);
    dmx_exit(2);
  }
  return rt;
}
