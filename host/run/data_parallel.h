/* Data-parallel training for the trainers (host/run/train.c, train_vision.c): device buffers through
 * host/dist's collectives (README.md, Several devices and machines). Each rank holds the whole
 * global batch on the host (R x batch_size groups, in the order a one-process run with that batch
 * would take them), runs its shard on its device, and after the backward pass the ranks add their
 * gradients: each shard's losses are divided by the global batch's counts, so the sum is the
 * global batch's gradient. Every rank then takes the same AdamW step; rank 0 alone writes. In a
 * world of one every function here costs nothing. */
#ifndef DMX_RUN_DATA_PARALLEL_H
#define DMX_RUN_DATA_PARALLEL_H

#include <stdbool.h>
#include <stdio.h>

#include "host/dist/dist.h"
#include "host/runtime/runtime.h"
#include "layers/model_types.h"

/* Joins the job for `datamux train` (dmx_dist_init), places this rank on its device
 * (dmx_runtime_set_placement) and, on ranks other than 0, sends stdout to /dev/null (their
 * progress is rank 0's; errors still reach stderr, prefixed with the rank). 0, or -1 with err. */
int dmx_dp_begin(int *argc, char ***argv, dmx_error *err);
/* Ends the job after a trainer returned `rc`: MPI_Finalize when every rank got here (rc 0, or a
 * coordinated stop's 128 + signal), the whole job aborted otherwise (one rank's error must not
 * leave the others waiting in a collective). Returns rc. */
int dmx_dp_end(int rc);

/* Adds every rank's tensors in place (the gradient all-reduce: a blocking map, MPI_Allreduce on
 * the host, unmap). */
void dmx_dp_sum_tensors(dmx_runtime *rt, const dmx_tensor *t, int n);
/* Rows of a table whose gradient is sparse: the table (rows of `width` floats, inside one of the
 * tensors given to dmx_dp_sum_sparse), and the rows that may be non-zero on some rank, sorted and
 * unique. Every other row is zero on every rank, so it needs no reduction. */
typedef struct {
  dmx_tensor table;
  int width;
  const int32_t *rows;
  int n_rows;
} dmx_dp_rows;
/* dmx_dp_sum_tensors, except that inside `sparse.table` only sparse.rows go through MPI (packed
 * into one buffer): the word-embedding gradient of a text model is mostly zero rows. NULL: all
 * dense. */
void dmx_dp_sum_sparse(dmx_runtime *rt, const dmx_tensor *t, int n, const dmx_dp_rows *sparse);
/* Prints how long the gradient all-reduces took against `train_seconds` (each of `floats`). */
void dmx_dp_report(double train_seconds, size_t floats, FILE *log);
/* Rank 0's arena contents to every rank (initial or loaded parameters). */
void dmx_dp_bcast_arena(dmx_runtime *rt, const dmx_arena *a);
/* Stops with a message when the ranks' arenas differ (they must stay bit-identical: the same
 * reduced gradient and the same update on each); `what` names it. Checkpoints call this. */
void dmx_dp_check_same(dmx_runtime *rt, const dmx_arena *a, const char *what);
/* Adds the ranks' step statistics (counts, hits, loss sums); the caller recomputes the means. */
void dmx_dp_sum_stats(dmx_step_stats *st);
/* The stop every rank takes after this step: the largest signal any rank received, and rank 0's
 * clock for the time budget (ranks' clocks differ). Returns the signal (0: none). */
int dmx_dp_agree_stop(int signal, bool *out_of_time);
/* Rank 0 prints which device each rank took on which host ("data-parallel: ..."). */
void dmx_dp_announce(const dmx_runtime *rt, FILE *log);
/* Refuses (-1 with err) to resume a run whose last/ was written by a job of another world size:
 * the global batch (ranks x batch_size), and with it the data order, would change. */
int dmx_dp_check_resume(const char *run_dir, int written_by, dmx_error *err);
/* True on the rank that writes logs, metrics, checkpoints and results. */
bool dmx_dp_writer(void);

#endif
