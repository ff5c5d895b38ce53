/* `datamux tune EXP.yaml`: tunes CLBlast's GEMM kernels for this device at the GEMM shapes of one
 * experiment's training step, with the tuners of Debian's clblast-utils (clblast_tuner_xgemm,
 * clblast_tuner_xgemm_direct), and stores the winners where host/runtime/gemm_clblast.c loads them
 * (<cache>/clblast/<device>/). Then it picks XGEMM_MIN_INDIRECT_SIZE, the m*n*k below which CLBlast
 * runs the single direct kernel instead of pad/transpose + the indirect kernel, by timing both paths
 * at every shape through our own wrapper.
 *
 * Each (kernel, shape) result is kept in <cache>/clblast/<device>/tuning/ (written atomically once
 * its tuner finished), so a stopped run resumes where it was: shapes with a result are skipped.
 * DATAMUX_CLBLAST_TUNER_DIR names a folder holding the tuner binaries (default: $PATH), so tests can
 * substitute scripts. */
#ifndef DMX_TUNE_H
#define DMX_TUNE_H

#include <stdbool.h>

#include "host/config/config.h"

typedef struct {
  const char *device;
  double fraction; /* the tuners' -fraction: each explores 1/fraction of its search space (default 100) */
  int max_shapes;  /* per kernel, tune the shapes with the most FLOPs per step (default 3) */
  bool no_routine; /* keep XGEMM_MIN_INDIRECT_SIZE as it is */
  bool force;      /* tune again shapes that have a result */
  bool dry_run;    /* print the plan and stop */
} dmx_tune_opts;

/* Returns the exit status: 0, or 1 with a message on stderr. */
int dmx_tune(const dmx_experiment *e, const dmx_tune_opts *o);

#endif
