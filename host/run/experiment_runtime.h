/* The runtime an experiment asks for. */
#ifndef DMX_RUN_EXPERIMENT_RUNTIME_H
#define DMX_RUN_EXPERIMENT_RUNTIME_H

#include "host/config/config.h"
#include "host/runtime/runtime.h"

/* Opens the device `device` names (NULL or "": the experiment's, then DATAMUX_DEVICE) and chooses
 * the GEMM backend from the experiment's gemm_backend (DATAMUX_GEMM_BACKEND overrides it). A
 * request the device cannot meet ends the process with exit status 2 and a message that names the
 * device and where the request came from. */
dmx_runtime *dmx_experiment_runtime(const dmx_experiment *e, const char *device, bool profiling, FILE *log);

#endif
