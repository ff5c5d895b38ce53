/* What every trainer (text and vision) shares: the run directory, the learning-rate schedule, and
 * the SIGINT/SIGTERM protocol. */
#ifndef DMX_RUN_RUNDIR_H
#define DMX_RUN_RUNDIR_H

#include <stdbool.h>
#include <stdio.h>

#include "host/config/config.h"

/* Creates the run directory (output_dir, copied into run_dir[cap]), locks it for this process
 * (<run_dir>/.lock: a second datamux train there is refused, naming the holder's pid; the lock
 * ends with the process), writes the resolved experiment.yaml there atomically and opens
 * metrics.jsonl for appending, first dropping a torn last line a crash left. 0 or -1 with err. */
int dmx_open_run_dir(const dmx_experiment *e, char *run_dir, size_t cap, FILE **metrics, dmx_error *err);

/* <run_dir>/curves.png: training loss and dev metric against the step, from metrics.jsonl (also
 * written as curves.dat, the plotted numbers). A missing plot is never an error: a line says why
 * (no gnuplot, no metrics). */
void dmx_plot_run_curves(const char *run_dir);

/* The learning rate of the update that completes step t (1-based) of total: linear warm-up over
 * warmup_steps, then linear decay to 0 or constant (transformers' get_linear_schedule_with_warmup
 * and get_constant_schedule_with_warmup at lambda(t - 1)). */
float dmx_learning_rate(const dmx_train_config *tc, int t, int total);

/* SIGINT/SIGTERM/SIGUSR1 ask the training loop to write last/ and stop after the current step (exit
 * status 128 + signal); a second signal kills at once. install clears the flag. */
void dmx_stop_handlers_install(void);
void dmx_stop_handlers_restore(void);
/* The signal received since install, or 0. */
int dmx_stop_signal(void);

/* For the resume tests: DATAMUX_KILL_AT_STEP=k makes a trainer SIGKILL itself right after step k,
 * exactly as an outside kill would; -1 when unset. */
int dmx_kill_at_step(void);
/* With DATAMUX_KILL_RANK=r set, only rank r kills itself (a data-parallel test's failing rank). */
bool dmx_kill_this_rank(int rank);

#endif
