/* Shared by host/tune.c and host/dmx_tune_routine.c only. */
#ifndef DMX_TUNE_INTERNAL_H
#define DMX_TUNE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "host/config/config.h"
#include "host/runtime/runtime.h"

#define TUNE_MAX_SHAPES 32

/* One GEMM of a training step, as dmx_gemm receives it, and how often a step runs it. */
typedef struct {
  const char *role;
  bool batched, ta, tb;
  size_t m, n, k, batch;
  double count;
} tune_shape;

/* One tuner run: a kernel at one (m, n, k), its result file, the step's FLOPs it stands for. */
typedef struct {
  bool direct, done;
  size_t m, n, k;
  double flops;
  const char *role;
  char name[96];
  char result[4400];
} tune_item;

/* The GEMMs of one training step of e (forward, backward; attention strided-batched). */
int dmx_tune_shapes(const dmx_experiment *e, tune_shape *out);
/* <cache>/clblast/<device> */
void dmx_tune_device_dir(const dmx_runtime *rt, char *out, size_t cap);

/* XGEMM_MIN_INDIRECT_SIZE in force: a GemmRoutine file of devdir, else CLBlast's default. */
int dmx_tune_current_threshold(const dmx_runtime *rt, const char *devdir);
/* Picks, per kernel, the result of the shape that costs the step most time, and installs it as
 * devdir/clblast_<kernel>_32.json (older files for the same kernel move to tuning/previous/). */
int dmx_tune_install(const dmx_runtime *rt, const tune_item *items, int n, const char *devdir, const char *tuning,
                     dmx_error *err);
/* Times every shape on the direct and the indirect path and installs the XGEMM_MIN_INDIRECT_SIZE that
 * minimises the step's GEMM time as devdir/gemm_routine_32.json. */
int dmx_tune_routine(const dmx_experiment *e, const char *device, const tune_shape *s, int n, const char *devdir,
                     const char *tuning, bool force, dmx_error *err);

#endif
