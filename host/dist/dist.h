/* Data-parallel training over MPI (README.md, Several devices and machines): one process (rank)
 * per device, launched by `mpirun -np R datamux train ...`. This layer knows MPI and nothing of
 * OpenCL; host/run moves device buffers through it. A build without MPI (DATAMUX_MPI=OFF, or no
 * Open MPI when it was configured) and a process not started by mpirun are a world of one, where
 * every collective is a no-op. MPI is process-wide state, so the world is too. */
#ifndef DMX_DIST_DIST_H
#define DMX_DIST_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/base/common.h"

typedef struct {
  int rank, size;             /* in the job */
  int local_rank, local_size; /* among the ranks on this host (MPI_COMM_TYPE_SHARED) */
  bool mpi;                   /* MPI_Init was called (a world of one otherwise) */
} dmx_dist;

/* The size of the job this process was started in, read from the launcher's environment
 * (Open MPI, MPICH/Hydra, PMIx); 1 when not started by an MPI launcher. */
int dmx_dist_launched_size(void);
/* True when this build can run under MPI. */
bool dmx_dist_available(void);

/* Joins the job: MPI_Init when started by mpirun with more than one rank (a world of one
 * otherwise). Refuses (-1 with err) a multi-rank launch in a build without MPI. Under MPI, a
 * fatal error (dmx_die) anywhere in the process then aborts the whole job, naming the rank. */
int dmx_dist_init(int *argc, char ***argv, dmx_error *err);
/* MPI_Finalize; no-op in a world of one. */
void dmx_dist_finalize(void);
/* The world joined by dmx_dist_init (rank 0 of 1 before it). */
const dmx_dist *dmx_dist_world(void);
/* Ends the whole job with `code` (MPI_Abort), or this process (exit) in a world of one. */
_Noreturn void dmx_dist_abort(int code);

/* Collectives over every rank, in place. Every rank must call them in the same order. The sums
 * are element-wise; each rank gets the same result. */
void dmx_dist_sum_f32(float *x, size_t n);
void dmx_dist_sum_f64(double *x, size_t n);
void dmx_dist_sum_i64(int64_t *x, size_t n);
int dmx_dist_max_int(int v);
void dmx_dist_bcast(void *buf, size_t bytes, int root);
/* all[size * bytes]: every rank's `mine`, by rank. */
void dmx_dist_allgather(const void *mine, size_t bytes, void *all);
void dmx_dist_barrier(void);
/* Seconds spent inside the collectives above since the last call (the all-reduce share). */
double dmx_dist_take_seconds(void);

#endif
