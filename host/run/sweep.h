/* `datamux sweep`: many training runs of one base experiment, each with some keys overridden.
 *
 * A sweep file (YAML) names the base experiment, an output folder, and the points:
 *   base: experiments/quickstart.yaml     the experiment every point starts from (path from the
 *                                         current directory, as output_dir is)
 *   output_dir: runs/sweep_n              default runs/sweeps/<sweep file name>
 *   set:  {KEY: VALUE, ...}               overrides every point gets
 *   grid: {KEY: [V1, V2, ...], ...}       every combination (the first key varies slowest)
 *   list: [{KEY: VALUE, ...}, ...]        explicit points; with a grid, each list entry is combined
 *                                         with every grid point
 * KEY is any experiment path (`datamux config --help`), as in `--set KEY=VALUE`. Each point runs
 * `datamux train BASE --set ...` as a child process in <output_dir>/<name>, the name made of its
 * varying values (num_instances-2_seed-42). A point whose results.json exists is done; one with a
 * last/ checkpoint is resumed; any other starts afresh. Every point is resolved and validated
 * before anything runs. results.csv, runs.csv, throughput.csv, results.md and the plots are
 * written at the end (dmx_sweep_collect). */
#ifndef DMX_RUN_SWEEP_H
#define DMX_RUN_SWEEP_H

#include <stdbool.h>

#include "host/base/common.h"
#include "host/config/config.h"

#define DMX_SWEEP_MAX_AXES 16
#define DMX_SWEEP_MAX_POINTS 4096
#define DMX_SWEEP_MAX_SET 64

typedef struct {
  char key[128];   /* experiment path, e.g. multiplexing.num_instances */
  char value[512]; /* as written in the sweep file */
  int line, column; /* of the value in the sweep file (1-based) */
} dmx_sweep_kv;

typedef enum { DMX_POINT_NEW, DMX_POINT_RESUME, DMX_POINT_DONE } dmx_point_state;

typedef struct {
  dmx_sweep_kv kv[DMX_SWEEP_MAX_AXES]; /* this point's overrides: list entry's, then the grid's */
  int n;
  char name[512];       /* folder name */
  char dir[1600];       /* output_dir/name */
  dmx_point_state state;
  char axis_text[DMX_SWEEP_MAX_AXES][256]; /* the resolved value of each axis (dmx_sweep.axes) */
} dmx_sweep_point;

typedef struct {
  char path[1024];    /* the sweep file */
  char base[1024];    /* the base experiment file */
  char out_dir[1024]; /* output_dir */
  dmx_sweep_kv set[DMX_SWEEP_MAX_SET];
  int nset;
  char axes[DMX_SWEEP_MAX_AXES][128]; /* every key a point overrides, in order of appearance */
  bool grid_axis[DMX_SWEEP_MAX_AXES]; /* a grid key (else a list key): plots draw a line per value */
  int naxes;
  int seed_axis; /* index in axes of training.seed, or -1: the axis results are averaged over */
  dmx_sweep_point *points;
  int npoints;
} dmx_sweep;

typedef struct {
  const char *data_dir; /* --data-dir for every point; NULL: the experiment's */
  const char *devices;  /* --device SEL or SEL1,SEL2,...: the devices job slots take; NULL: as MPI ranks do */
  int jobs;             /* points run at once (>= 1) */
  bool dry_run;         /* print the plan, run nothing */
} dmx_sweep_opts;

/* Reads and checks the sweep file, resolves and validates every point against the base experiment
 * and finds each point's state on disk. Errors name file:line:column. 0 or -1 with err. */
int dmx_sweep_load(dmx_sweep *s, const char *path, const char *data_dir, dmx_error *err);
void dmx_sweep_free(dmx_sweep *s);

/* Runs the points that are not done, `jobs` at a time, then collects. SIGINT/SIGTERM are passed on
 * to the running points (which write last/ and stop) and no new point starts. Returns the exit
 * status: 0 when every point finished, 1 when one failed, 128 + signal when interrupted, 2 on bad
 * input. */
int dmx_sweep_run(dmx_sweep *s, const dmx_sweep_opts *o);

/* Writes results.csv (one row per point, the seeds averaged: mean and std), runs.csv (one row per
 * run), throughput.csv, results.md and metric.png / throughput.png (against the first axis that is
 * not the seed) into out_dir from the points' results.json. results.csv and runs.csv hold only what
 * a run determines (metrics, steps), so an interrupted and resumed sweep gives the same files as an
 * uninterrupted one; times go to throughput.csv. 0, or -1 with err. */
int dmx_sweep_collect(const dmx_sweep *s, dmx_error *err);

#endif
