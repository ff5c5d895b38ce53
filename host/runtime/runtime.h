/* The OpenCL runtime: device choice, one context and one in-order queue, programs built once per
 * process and cached on disk, kernels resolved once by handle, launches, and device memory
 * arenas. Knows nothing of the model, and nothing of the modules that attach to it (the GEMM
 * wrapper, the profiler): they use the observer and extension slots of context.h. */
#ifndef DMX_RUNTIME_H
#define DMX_RUNTIME_H

#include "host/runtime/arena.h"
#include "host/runtime/context.h"
#include "host/runtime/device.h"
#include "host/runtime/launch.h"
#include "host/runtime/native.h"
#include "host/runtime/program.h"

/* Chooses the device: `selector` (INDEX, PLATFORM:INDEX or part of a name: dmx_choose_device), else
 * $DATAMUX_DEVICE, else the first GPU that is not a simulator, else the first other device. Prints the device to `log`
 * when non-NULL (later start-up notes, such as tuned GEMM parameters, go there too). Ends the
 * process with a clear message when nothing matches. */
dmx_runtime *dmx_runtime_create(const char *selector, bool profiling, FILE *log);
/* This process's place among the ranks of a data-parallel job on its host (host/dist), for
 * dmx_runtime_create: the device is dmx_choose_device_for_rank's, and ranks that share the host's
 * CPU device each get an equal part of its cores (POCL_MAX_PTHREAD_COUNT, unless set). Process-wide,
 * as the job is; call it before the first OpenCL call. 0 of 1 (one process) by default. */
void dmx_runtime_set_placement(int local_rank, int local_size);
void dmx_runtime_destroy(dmx_runtime *rt);

#endif
