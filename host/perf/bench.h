/* Benchmarks behind `datamux bench`: GEMM throughput of the CLBlast wrapper at the model's shapes,
 * kernel program build times (cold, cache write, cache hit), and inference throughput versus N as
 * the paper measured it (eval mode, no retrieval head, base_bs(N)*N instances per batch, each batch
 * timed to device completion). Each writes a CSV and a JSON file when given an output folder. */
#ifndef DMX_BENCH_H
#define DMX_BENCH_H

#include <stdbool.h>

#include "host/config/config.h"

typedef struct {
  const char *device;  /* as dmx_choose_device takes it; NULL/"" = default */
  int repeat;          /* timed repetitions per shape (>= 1) */
  double max_seconds;  /* stop a shape's repetitions once this much was timed (> 0), after at least one */
  bool no_tuning;      /* do not apply the tuner files of the cache dir */
  const char *shapes;  /* comma-separated shape names to run; NULL = all */
  const char *out_dir; /* gemm.csv / gemm.json go there; NULL = print only */
} dmx_bench_gemm_opts;

typedef struct {
  const char *device;
  const char *files;   /* comma-separated cl/ file names to build; NULL = all */
  const char *out_dir; /* build.csv / build.json; NULL = print only */
} dmx_bench_build_opts;

#define DMX_BENCH_MAX_N 16
typedef struct {
  const char *device; /* overrides the experiment's device when non-empty */
  int n_list[DMX_BENCH_MAX_N];
  int n_count;         /* 0 = default list: 1,2,5,10,20,40 */
  int batches;         /* timed batches per N (>= 1) */
  int warmup;          /* untimed batches per N before timing (>= 0) */
  double max_seconds;  /* 0 = none; else stop timing an N once this much was timed (after one batch) */
  bool synthetic;      /* synthetic ids even when the data is there */
  bool vanilla;        /* also time the plain (baseline, N=1) model and use it as the speedup reference */
  bool no_tuning;      /* as for the GEMM benchmark */
  int profile_batches; /* batches per N recorded with events after the timed ones (0 = no breakdown) */
  const char *out_dir; /* throughput.csv / .json (/ .png with gnuplot) */
} dmx_bench_tp_opts;

typedef struct {
  const char *device; /* overrides the experiment's device when non-empty */
  int steps;          /* timed training steps, no profiling (>= 1) */
  int warmup;         /* untimed steps first: kernel builds, CLBlast compiles (>= 0) */
  int profile_steps;  /* steps recorded with events after the timed ones (0 = no breakdown) */
  double max_seconds; /* 0 = none; else the timed and the profiled steps each stop after this much */
  bool synthetic;     /* synthetic ids even when the data is there */
  bool no_tuning;
  const char *out_dir; /* train.csv / train.json; NULL = print only */
} dmx_bench_train_opts;

/* Names of the GEMM shapes, NULL-terminated (for help and --shapes). */
const char *const *dmx_bench_gemm_shape_names(void);
/* Parses "1,2,5" into o->n_list; 0 or -1 with err (values 1..64, no repeats, at most DMX_BENCH_MAX_N). */
int dmx_bench_parse_n_list(const char *s, dmx_bench_tp_opts *o, dmx_error *err);
/* Checks a --shapes list against the shape names; 0 or -1 with err. */
int dmx_bench_check_shapes(const char *list, dmx_error *err);
/* Checks a --files list against the embedded cl/ files; 0 or -1 with err. */
int dmx_bench_check_files(const char *list, dmx_error *err);

/* Each returns the exit status: 0, or 1 with a message on stderr (throughput: 2 when an N of the list does not
 * fit the experiment, e.g. N > 1 with setting baseline). */
int dmx_bench_gemm(const dmx_bench_gemm_opts *o);
int dmx_bench_build(const dmx_bench_build_opts *o);
/* e: the loaded, validated experiment; its num_instances is replaced by each N of the list. */
int dmx_bench_throughput(const dmx_experiment *e, const dmx_bench_tp_opts *o);
/* Seconds per training step and its op-level breakdown (host/bench_train.c). */
int dmx_bench_train(const dmx_experiment *e, const dmx_bench_train_opts *o);

#endif
