/* `datamux bench`: argument parsing; the benchmarks themselves are in host/bench.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/perf/bench.h"
#include "host/perf/bench_vision.h"
#include "host/cli/commands.h"
#include "host/config/config.h"
#include "host/run/experiment_runtime.h"

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: datamux bench [EXP.yaml] [--train] [--gemm] [--build] [flags]\n"
      "  --gemm             GFLOP/s of dmx_gemm (the GEMM backend in use) at the model's GEMM shapes, beside the host\n"
      "                     BLAS called directly on host arrays (backend: DATAMUX_GEMM_BACKEND=clblast|host_blas)\n"
      "  --build            build time of every cl/*.cl program: cold, cache write, cache hit\n"
      "  EXP.yaml           inference throughput vs N as the paper measured it: eval mode, no retrieval head,\n"
      "                     base_bs(N)*N instances per batch (32/24/20/16 groups), each batch timed to device\n"
      "                     completion; the experiment's model and max_length, its dev split (else synthetic ids)\n"
      "  EXP.yaml --train   seconds per training step (forward, backward, AdamW), tokens/s and instances/s, then an\n"
      "                     op-level breakdown from OpenCL profiling events (run `datamux devices --peak` first\n"
      "                     for the GEMM utilisation)\n"
      "Common flags:\n"
      "  --device D         INDEX, PLATFORM:INDEX (pocl:0) or part of a name (default: DATAMUX_DEVICE, the\n"
      "                     experiment's, the first GPU; see `datamux devices --help`)\n"
      "  --all-devices      run the benchmark on every device found (simulators left out), each into\n"
      "                     OUT/<index>_<device>/; `datamux report` puts the JSON files side by side\n"
      "  --out DIR          where CSV/JSON (and a PNG plot when gnuplot is installed) go; default runs/bench\n"
      "                     for throughput; --gemm and --build write files only when --out is given\n"
      "  --no-tuning        ignore the CLBlast tuner files of ~/.cache/datamux/clblast/<device>/\n"
      "  --max-seconds S    stop timing a shape (--gemm, default 3) or an N (throughput, default none) after S s\n"
      "GEMM flags:\n"
      "  --repeat R         timed repetitions per shape (default 10)\n"
      "  --shapes A,B       only these shapes:");
  for (const char *const *n = dmx_bench_gemm_shape_names(); *n; n++) fprintf(f, " %s", *n);
  fprintf(f,
          "\nBuild flags:\n"
          "  --files A,B        only these cl/ files (e.g. util.cl,mux.cl)\n"
          "Throughput flags (need EXP.yaml):\n"
          "  -N LIST            e.g. 1,2,5,10 (default 1,2,5,10,20,40)\n"
          "  --batches K        timed batches per N (default 50)\n"
          "  --warmup W         untimed batches per N first (default 3)\n"
          "  --synthetic        synthetic full-length ids even when the data is there\n"
          "  --vanilla          also time the plain model (setting baseline, N=1) and use it as the speedup reference\n"
          "  --profile-batches P  after the timed batches, P more per N recorded with OpenCL events: an op-level\n"
          "                     breakdown (ms per batch) for every N (default 0: none, and no profiling queue)\n"
          "  other flags        as in `datamux config --help` (e.g. --set task.max_length=64, --data-dir DIR)\n"
          "Training flags (EXP.yaml --train; --warmup, --synthetic, --max-seconds as above, --warmup default 3):\n"
          "  --steps K          timed steps, no profiling (default 20)\n"
          "  --profile-steps P  steps recorded with events after the timed ones (default: as --steps; 0 = none)\n");
}

/* "--flag=value" or "--flag value": the value, advancing *i; NULL (with a message) when missing. */
static const char *flag_value(int argc, char **argv, int *i, const char *eq) {
  if (eq) return eq + 1;
  if (*i + 1 >= argc) {
    fprintf(stderr, "datamux bench: %s needs a value\n", argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

static int parse_int(const char *flag, const char *v, long lo, long hi, int *out) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (end == v || *end || errno) {
    fprintf(stderr, "datamux bench: %s: '%s' is not a whole number\n", flag, v);
    return -1;
  }
  if (x < lo || x > hi) {
    fprintf(stderr, "datamux bench: %s: %ld is out of range (%ld..%ld)\n", flag, x, lo, hi);
    return -1;
  }
  *out = (int)x;
  return 0;
}

static int parse_seconds(const char *flag, const char *v, double *out) {
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (end == v || *end || errno || !isfinite(x) || x <= 0) {
    fprintf(stderr, "datamux bench: %s: '%s' is not a positive number of seconds\n", flag, v);
    return -1;
  }
  *out = x;
  return 0;
}

/* Vision models: images/s vs N (default the notebook's 1, 2, 4, 8, 16) after the plain model. */
static int bench_vision(const dmx_experiment *e, const dmx_bench_tp_opts *o) {
  static const int notebook_ns[] = {1, 2, 4, 8, 16};
  const int *ns = o->n_count ? o->n_list : notebook_ns;
  int n = o->n_count ? o->n_count : 5;
  dmx_error err = {{0}};
  dmx_runtime *rt = dmx_experiment_runtime(e, o->device, false, stdout);
  dmx_vision_bench_row rows[DMX_BENCH_MAX_N + 1];
  int count = dmx_bench_vision(rt, e, ns, n, o->warmup, o->batches, rows, stdout, &err);
  int rc = count < 0 ? 1 : 0;
  if (count >= 0 && o->out_dir && dmx_bench_vision_write(rt, o->out_dir, rows, count, &err)) rc = 1;
  if (rc) fprintf(stderr, "datamux bench: %s\n", err.msg);
  dmx_runtime_destroy(rt);
  return rc;
}

/* The benchmarks asked for, on one device (NULL: the default), writing into out (NULL: each one's default). */
static int run_benchmarks(const dmx_experiment *e, bool build, bool gemm, bool train, const char *device,
                          const char *out, dmx_bench_gemm_opts *go, dmx_bench_build_opts *bo, dmx_bench_tp_opts *to,
                          dmx_bench_train_opts *tro) {
  tro->device = go->device = bo->device = to->device = device;
  tro->out_dir = go->out_dir = bo->out_dir = to->out_dir = out;
  int status = 0;
  if (build && dmx_bench_build(bo)) status = 1;
  if (gemm && dmx_bench_gemm(go)) status = 1;
  if (e && dmx_task_is_vision(e->task.name)) {
    if (train) {
      fprintf(stderr, "datamux bench: --train times text models; for a vision model `datamux train` prints images/s\n");
      status = 2;
    } else if (to->profile_batches > 0) {
      fprintf(stderr, "datamux bench: --profile-batches profiles text models; a vision model has no breakdown yet\n");
      status = 2;
    } else {
      status = bench_vision(e, to);
    }
  } else if (e && train) {
    if (dmx_bench_train(e, tro)) status = 1;
  } else if (e) {
    int t = dmx_bench_throughput(e, to);
    if (t) status = t;
  }
  return status;
}

int dmx_cmd_bench(int argc, char **argv) {
  for (int i = 0; i < argc; i++)
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 0;
    }
  const char *exp_path = NULL;
  int first = 0;
  if (argc > 0 && argv[0][0] != '-') {
    exp_path = argv[0];
    first = 1;
  }
  bool gemm = false, build = false, train = false, all_devices = false;
  dmx_bench_gemm_opts go = {.repeat = 10, .max_seconds = 3.0};
  dmx_bench_build_opts bo = {0};
  dmx_bench_tp_opts to = {.batches = 50, .warmup = 3};
  dmx_bench_train_opts tro = {.steps = 20, .warmup = 3, .profile_steps = -1};
  const char *train_flag = NULL;
  const char *device = NULL, *out = NULL, *tp_flag = NULL, *gemm_flag = NULL, *build_flag = NULL;
  double max_seconds = 0;
  char **rest = calloc((size_t)argc + 1, sizeof *rest);
  if (!rest) {
    fprintf(stderr, "datamux bench: out of memory\n");
    return 1;
  }
  int nrest = 0, rc = 0;
  dmx_error err = {{0}};
  for (int i = first; i < argc && rc == 0; i++) {
    const char *a = argv[i];
    const char *eq = !strncmp(a, "--", 2) ? strchr(a, '=') : NULL;
    char name[64];
    size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
    if (nlen >= sizeof name) nlen = sizeof name - 1;
    memcpy(name, a, nlen);
    name[nlen] = 0;
    const char *v;
    bool is_switch = !strcmp(name, "--gemm") || !strcmp(name, "--build") || !strcmp(name, "--no-tuning") ||
                     !strcmp(name, "--train") || !strcmp(name, "--synthetic") || !strcmp(name, "--vanilla") ||
                     !strcmp(name, "--all-devices");
    if (is_switch && eq) {
      fprintf(stderr, "datamux bench: %s takes no value\n", name);
      rc = 2;
    } else if (!strcmp(name, "--gemm")) {
      gemm = true;
    } else if (!strcmp(name, "--all-devices")) {
      all_devices = true;
    } else if (!strcmp(name, "--train")) {
      train = true;
    } else if (!strcmp(name, "--steps")) {
      train_flag = "--steps";
      if (!(v = flag_value(argc, argv, &i, eq)) || parse_int("--steps", v, 1, 1000000, &tro.steps)) rc = 2;
    } else if (!strcmp(name, "--profile-steps")) {
      train_flag = "--profile-steps";
      if (!(v = flag_value(argc, argv, &i, eq)) || parse_int("--profile-steps", v, 0, 1000000, &tro.profile_steps))
        rc = 2;
    } else if (!strcmp(name, "--build")) {
      build = true;
    } else if (!strcmp(name, "--no-tuning")) {
      go.no_tuning = to.no_tuning = true;
    } else if (!strcmp(name, "--synthetic")) {
      to.synthetic = true;
      tp_flag = "--synthetic";
    } else if (!strcmp(name, "--vanilla")) {
      to.vanilla = true;
      tp_flag = "--vanilla";
    } else if (!strcmp(name, "--device")) {
      if (!(v = flag_value(argc, argv, &i, eq)))
        rc = 2;
      else
        device = v;
    } else if (!strcmp(name, "--out")) {
      if (!(v = flag_value(argc, argv, &i, eq)))
        rc = 2;
      else if (!*v) {
        fprintf(stderr, "datamux bench: --out needs a folder name\n");
        rc = 2;
      } else {
        out = v;
      }
    } else if (!strcmp(name, "--shapes")) {
      gemm_flag = "--shapes";
      if (!(v = flag_value(argc, argv, &i, eq)))
        rc = 2;
      else if (dmx_bench_check_shapes(v, &err)) {
        fprintf(stderr, "datamux bench: %s\n", err.msg);
        rc = 2;
      } else {
        go.shapes = v;
      }
    } else if (!strcmp(name, "--files")) {
      build_flag = "--files";
      if (!(v = flag_value(argc, argv, &i, eq)))
        rc = 2;
      else if (dmx_bench_check_files(v, &err)) {
        fprintf(stderr, "datamux bench: %s\n", err.msg);
        rc = 2;
      } else {
        bo.files = v;
      }
    } else if (!strcmp(name, "--repeat")) {
      gemm_flag = "--repeat";
      if (!(v = flag_value(argc, argv, &i, eq)) || parse_int("--repeat", v, 1, 1000000, &go.repeat)) rc = 2;
    } else if (!strcmp(name, "--max-seconds")) {
      if (!(v = flag_value(argc, argv, &i, eq)) || parse_seconds("--max-seconds", v, &max_seconds)) rc = 2;
    } else if (!strcmp(name, "--batches")) {
      tp_flag = "--batches";
      if (!(v = flag_value(argc, argv, &i, eq)) || parse_int("--batches", v, 1, 1000000, &to.batches)) rc = 2;
    } else if (!strcmp(name, "--profile-batches")) {
      tp_flag = "--profile-batches";
      if (!(v = flag_value(argc, argv, &i, eq)) || parse_int("--profile-batches", v, 0, 1000000, &to.profile_batches))
        rc = 2;
    } else if (!strcmp(name, "--warmup")) {
      tp_flag = "--warmup";
      if (!(v = flag_value(argc, argv, &i, eq)) || parse_int("--warmup", v, 0, 1000000, &to.warmup)) rc = 2;
    } else if (!strcmp(name, "-N") || !strcmp(name, "--num_instances") || !strcmp(name, "--num-instances")) {
      tp_flag = "-N";
      if (!(v = flag_value(argc, argv, &i, eq)))
        rc = 2;
      else if (dmx_bench_parse_n_list(v, &to, &err)) {
        fprintf(stderr, "datamux bench: %s\n", err.msg);
        rc = 2;
      }
    } else {
      rest[nrest++] = argv[i]; /* the experiment's flags and their values, in order */
    }
  }
  if (rc == 0 && !exp_path && nrest > 0) {
    if (rest[0][0] != '-')
      fprintf(stderr, "datamux bench: unexpected argument '%s' (the experiment file goes first)\n", rest[0]);
    else
      fprintf(stderr,
              "datamux bench: unknown flag '%s' (see `datamux bench --help`; experiment flags need EXP.yaml "
              "first)\n",
              rest[0]);
    rc = 2;
  }
  if (rc == 0 && tp_flag && !exp_path) {
    fprintf(stderr,
            "datamux bench: %s is a throughput flag: give the experiment first (datamux bench EXP.yaml %s ...)\n",
            tp_flag, tp_flag);
    rc = 2;
  }
  if (rc == 0 && train && !exp_path) {
    fprintf(stderr, "datamux bench: --train needs the experiment first (datamux bench EXP.yaml --train)\n");
    rc = 2;
  }
  if (rc == 0 && train_flag && !train) {
    fprintf(stderr, "datamux bench: %s applies to --train\n", train_flag);
    rc = 2;
  }
  if (rc == 0 && train && tp_flag &&
      (!strcmp(tp_flag, "-N") || !strcmp(tp_flag, "--batches") || !strcmp(tp_flag, "--vanilla") ||
       !strcmp(tp_flag, "--profile-batches"))) {
    fprintf(stderr,
            "datamux bench: %s is a throughput flag; --train times the experiment's own N (set it with "
            "--set multiplexing.num_instances=N)\n",
            tp_flag);
    rc = 2;
  }
  if (rc == 0 && all_devices && device) {
    fprintf(stderr, "datamux bench: --all-devices and --device exclude each other\n");
    rc = 2;
  }
  if (rc == 0 && build_flag && !build) {
    fprintf(stderr, "datamux bench: %s applies to --build\n", build_flag);
    rc = 2;
  }
  if (rc == 0 && gemm_flag && !gemm) {
    fprintf(stderr, "datamux bench: %s applies to --gemm\n", gemm_flag);
    rc = 2;
  }
  if (rc == 0 && !exp_path && !gemm && !build) {
    fprintf(stderr,
            "datamux bench: nothing to measure: give EXP.yaml, --gemm or --build (see `datamux bench --help`)\n");
    rc = 2;
  }
  dmx_experiment *e = NULL;
  if (rc == 0 && exp_path) {
    e = malloc(sizeof *e);
    if (!e) {
      fprintf(stderr, "datamux bench: out of memory\n");
      free(rest);
      return 1;
    }
    dmx_experiment_defaults(e);
    if (dmx_experiment_load(e, exp_path, &err) || dmx_experiment_apply_flags(e, nrest, rest, &err) ||
        dmx_experiment_validate(e, &err)) {
      fprintf(stderr, "datamux bench: %s\n", err.msg);
      rc = 2;
    }
  }
  free(rest);
  if (rc) {
    free(e);
    return rc;
  }
  if (max_seconds > 0) go.max_seconds = to.max_seconds = tro.max_seconds = max_seconds;
  tro.warmup = to.warmup;
  tro.synthetic = to.synthetic;
  tro.no_tuning = to.no_tuning;
  if (tro.profile_steps < 0) tro.profile_steps = tro.steps;
  int status = 0;
  if (!all_devices) {
    status = run_benchmarks(e, build, gemm, train, device, out, &go, &bo, &to, &tro);
  } else {
    /* one run per device, each into its own folder under --out (default runs/bench) */
    dmx_device_info *devs;
    int n = dmx_list_devices(&devs), ran = 0;
    const char *base = out ? out : "runs/bench";
    for (int i = 0; i < n; i++) {
      if (dmx_device_is_simulator(&devs[i])) {
        printf("\n== device [%d] %s: skipped (a simulator; time it alone with --device %d)\n", i, devs[i].name, i);
        continue;
      }
      char sel[16], folder[256], dir[4400];
      snprintf(sel, sizeof sel, "%d", i);
      dmx_device_folder_name(devs[i].name, folder, sizeof folder);
      snprintf(dir, sizeof dir, "%s/%d_%s", base, i, folder);
      printf("\n== device [%d] %s (%s) -> %s\n", i, devs[i].name, devs[i].platform_name, dir);
      int st = run_benchmarks(e, build, gemm, train, sel, dir, &go, &bo, &to, &tro);
      if (st > status) status = st;
      ran++;
    }
    free(devs);
    if (!ran) {
      fprintf(stderr, "datamux bench: --all-devices found no device to time (see `datamux devices`)\n");
      status = 1;
    } else {
      printf("\n%d devices timed; put them side by side with `datamux report %s/*/*.json`\n", ran, base);
    }
  }
  free(e);
  return status;
}
