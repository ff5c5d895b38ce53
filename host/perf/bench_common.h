/* Helpers shared by the benchmarks (host/bench*.c), the peak measurement and the tuner driver. */
#ifndef DMX_BENCH_COMMON_H
#define DMX_BENCH_COMMON_H

#include <stdbool.h>
#include <stdio.h>

#include "data/dataset.h"
#include "host/base/output.h"
#include "host/config/config.h"
#include "host/runtime/runtime.h"

/* The tuner-file folder of this device (<cache>/clblast/<device>) into dir; returns its .json count. */
int dmx_bench_tuning_files(const dmx_runtime *rt, char *dir, size_t cap);
/* One line on whether tuned CLBlast parameters apply. */
void dmx_bench_tuning_status(const dmx_runtime *rt, bool no_tuning, char *out, size_t cap);
/* The runtime, without the tuned CLBlast parameters when no_tuning (sets DATAMUX_NO_TUNING=1), with
 * the GEMM backend of experiment e (NULL: auto; DATAMUX_GEMM_BACKEND overrides either). */
dmx_runtime *dmx_bench_runtime(const dmx_experiment *e, const char *device, bool no_tuning, bool profiling);
/* "device", "device_type", "platform", "driver_version", "compute_units" members of a JSON object. */
void dmx_bench_json_device(FILE *f, const dmx_runtime *rt);
/* mkdir -p of an output folder (NULL: nothing to do); 0 or -1 with err. */
int dmx_bench_prepare_out_dir(const char *dir, dmx_error *err);
/* Whether name is one of the comma-separated items of list. */
bool dmx_bench_in_list(const char *list, const char *name);
/* n full-length synthetic rows of the experiment's task: <s> random ordinary ids </s>, labels 0. */
void dmx_bench_synthetic_rows(const dmx_experiment *e, int n, dmx_dataset *out);

#endif
