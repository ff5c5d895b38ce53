/* `datamux bench EXP.yaml`: inference throughput versus N as the paper measured it (eval mode, no
 * retrieval head, base_bs(N)*N instances per batch, each batch timed to device completion). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "data/dataset.h"
#include "host/perf/bench.h"
#include "host/perf/bench_common.h"
#include "host/perf/peak.h"
#include "host/runtime/profile.h"
#include "host/runtime/runtime.h"
#include "host/run/train.h"
#include "layers/model.h"

int dmx_bench_parse_n_list(const char *s, dmx_bench_tp_opts *o, dmx_error *err) {
  o->n_count = 0;
  if (!*s) return dmx_fail(err, "-N needs a list such as 1,2,5,10");
  const char *p = s;
  for (;;) {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || (*end && *end != ','))
      return dmx_fail(err, "-N '%s': expected comma-separated whole numbers such as 1,2,5,10", s);
    if (v < 1 || v > DMX_MAX_INSTANCES)
      return dmx_fail(err, "-N '%s': %ld is out of range (1..%d)", s, v, DMX_MAX_INSTANCES);
    for (int i = 0; i < o->n_count; i++)
      if (o->n_list[i] == v) return dmx_fail(err, "-N '%s': %ld is listed twice", s, v);
    if (o->n_count == DMX_BENCH_MAX_N) return dmx_fail(err, "-N '%s': at most %d values", s, DMX_BENCH_MAX_N);
    o->n_list[o->n_count++] = (int)v;
    if (!*end) break;
    p = end + 1;
  }
  return 0;
}

typedef struct {
  char label[16];
  int N, groups, instances, T, batches, warmup;
  double seconds, ms_mean, ms_median, inst_per_s, speedup;
  double ref_inst_per_s; /* the speedup reference's instances/s measured alongside (0: this row is the reference) */
  size_t device_bytes;
  int profiled;      /* batches recorded with events after the timed ones */
  double profiled_s; /* their wall time */
  dmx_prof_totals prof;
  bool failed;
  char why[DMX_ERRMSG];
} tp_row;

/* Decimals for a rate: a base model on a CPU runs about one instance per second. */
static int digits(double v) { return v < 10 ? 3 : 1; }

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* One configuration's model, batch and batcher, and the times of its batches. */
typedef struct {
  dmx_model *model;
  dmx_batch batch;
  dmx_batcher bt;
  const dmx_dataset *ds;
  int epoch, instances;
  double *times, total;
  int timed;
} runner;

/* Builds the model of e (its N and setting already set) and fills row's shape fields; false with
 * row->why on failure. */
static bool runner_open(runner *r, dmx_runtime *rt, const dmx_experiment *e, const dmx_dataset *ds, int capacity,
                        tp_row *row) {
  dmx_error err = {{0}};
  memset(r, 0, sizeof *r);
  int N = e->setting == DMX_SETTING_BASELINE ? 1 : e->mux.num_instances;
  int B = dmx_base_batch_size(N);
  dmx_input_kind kind = e->setting == DMX_SETTING_BASELINE   ? DMX_INPUT_PLAIN
                        : e->mux.demuxing == DMX_DEMUX_INDEX ? DMX_INPUT_INDEX
                                                             : DMX_INPUT_MLP;
  row->N = N;
  row->groups = B;
  row->instances = B * N;
  if (dmx_batch_alloc(&r->batch, B, N, e->task.max_length, kind, ds->kind, &err)) {
    row->failed = true;
    snprintf(row->why, sizeof row->why, "%s", err.msg);
    return false;
  }
  row->T = r->batch.Lp;
  r->model = dmx_model_create(rt, e, B, r->batch.Lp, ds->num_labels, ds->kind == DMX_TARGET_TOKENS, &err);
  if (!r->model) {
    row->failed = true;
    snprintf(row->why, sizeof row->why, "%s", err.msg);
    dmx_batch_free(&r->batch);
    return false;
  }
  dmx_model_init_params(r->model, (uint64_t)e->train.seed);
  row->device_bytes = dmx_model_device_bytes(r->model);
  r->ds = ds;
  r->instances = B * N;
  dmx_batcher_init(&r->bt, ds, B * N, false, false, (uint64_t)e->train.seed);
  dmx_batcher_begin_epoch(&r->bt, 0);
  r->times = dmx_calloc((size_t)capacity, sizeof(double));
  return true;
}

/* Runs one batch in eval mode and returns its time to device completion; the batch is built on the
 * host first, outside the timed region, like a data loader. */
static double runner_batch(runner *r, dmx_runtime *rt) {
  if (!dmx_batcher_next(&r->bt, &r->batch)) {
    dmx_batcher_begin_epoch(&r->bt, ++r->epoch);
    if (!dmx_batcher_next(&r->bt, &r->batch)) dmx_die("the batcher gave no batch from %d rows", r->ds->n);
  }
  dmx_batch_view v = {0};
  v.ids = r->batch.ids;
  v.positions = r->batch.positions;
  v.labels = NULL; /* no labels: the task head's loss scores nothing; no retrieval targets: no retrieval head */
  dmx_finish(rt);
  double t0 = dmx_now_seconds();
  dmx_model_step(r->model, &v, false, 0);
  dmx_finish(rt);
  return dmx_now_seconds() - t0;
}

static void runner_record(runner *r, double dt) {
  r->times[r->timed++] = dt;
  r->total += dt;
}

static void runner_close(runner *r) {
  if (!r->model) return;
  free(r->times);
  dmx_batcher_free(&r->bt);
  dmx_model_free(r->model);
  dmx_batch_free(&r->batch);
  memset(r, 0, sizeof *r);
}

/* The row's timing figures from its runner. */
static void runner_summary(const runner *r, tp_row *row) {
  row->batches = r->timed;
  row->seconds = r->total;
  row->ms_mean = r->total / r->timed * 1e3;
  double *t = dmx_calloc((size_t)r->timed, sizeof(double));
  memcpy(t, r->times, (size_t)r->timed * sizeof(double));
  qsort(t, (size_t)r->timed, sizeof(double), cmp_double);
  int n = r->timed;
  row->ms_median = (n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2])) * 1e3;
  row->inst_per_s = (double)n * r->instances / r->total;
  free(t);
}

/* Times one configuration; with ref_e, a second model of the speedup reference runs alongside,
 * batch for batch in alternating order, so the speedup compares the two under the same conditions
 * (clocks and shared hosts drift over a run: the 2-core VM here moved by 10% within minutes). */
static void time_config(dmx_runtime *rt, const dmx_experiment *e, const dmx_experiment *ref_e, const dmx_dataset *ds,
                        const dmx_bench_tp_opts *o, tp_row *row) {
  dmx_error err = {{0}};
  runner r, ref;
  tp_row ref_row = {0};
  row->warmup = o->warmup;
  if (!runner_open(&r, rt, e, ds, o->batches, row)) return;
  if (ref_e && !runner_open(&ref, rt, ref_e, ds, o->batches, &ref_row)) {
    /* both models may not fit where one does (a base model on a small GPU): fall back to the
     * reference's own timing, and say so */
    printf("note: %s: no reference model alongside (%.900s); its speedup is over the reference timed on its own\n",
           row->label, ref_row.why);
    ref_e = NULL;
  }
  for (int i = 0; i < o->warmup; i++) {
    runner_batch(&r, rt);
    if (ref_e) runner_batch(&ref, rt);
  }
  for (int i = 0; i < o->batches; i++) {
    if (ref_e && i % 2) runner_record(&ref, runner_batch(&ref, rt));
    runner_record(&r, runner_batch(&r, rt));
    if (ref_e && i % 2 == 0) runner_record(&ref, runner_batch(&ref, rt));
    if (o->max_seconds > 0 && r.total >= o->max_seconds) break;
  }
  runner_summary(&r, row);
  if (ref_e) {
    runner_summary(&ref, &ref_row);
    row->ref_inst_per_s = ref_row.inst_per_s;
    runner_close(&ref);
  }
  /* the profiled batches come after the timed ones, so the headline numbers carry no event overhead */
  for (int i = 0; i < o->profile_batches; i++) {
    dmx_prof_start(rt);
    double dt = runner_batch(&r, rt);
    row->profiled_s += dt;
    row->profiled++;
    if (dmx_prof_collect(rt, &row->prof, &err)) {
      row->failed = true;
      snprintf(row->why, sizeof row->why, "%s", err.msg);
      break;
    }
    if (o->max_seconds > 0 && row->profiled_s >= o->max_seconds) break;
  }
  dmx_prof_stop(rt);
  runner_close(&r);
}

/* ms per batch by op category, one column per configuration: where an N's time goes. */
static void print_breakdown(dmx_runtime *rt, const tp_row *rows, int n) {
  printf("\nop breakdown from the profiled batches (ms per batch; GEMM rows also give GFLOP/s):\n%-16s", "category");
  for (int i = 0; i < n; i++)
    if (!rows[i].failed && rows[i].profiled) printf(" %14s", rows[i].label);
  printf("\n");
  for (int c = 0; c < DMX_PROF_N; c++) {
    bool any = false;
    for (int i = 0; i < n; i++) any |= !rows[i].failed && rows[i].profiled && rows[i].prof.count[c] > 0;
    if (!any) continue;
    printf("%-16s", dmx_prof_cat_name(c));
    for (int i = 0; i < n; i++) {
      const tp_row *r = &rows[i];
      if (r->failed || !r->profiled) continue;
      double ms = r->prof.seconds[c] / r->profiled * 1e3;
      if (dmx_prof_cat_is_gemm(c) && r->prof.seconds[c] > 0)
        printf(" %8.2f %5.1f", ms, r->prof.flops[c] / r->prof.seconds[c] / 1e9);
      else
        printf(" %14.2f", ms);
    }
    printf("\n");
  }
  /* the peak measured now, side by side with the batches it rates; the cached one for reference */
  double peak = 0;
  dmx_peak pk, cached;
  dmx_error err = {{0}}, cerr = {{0}};
  if (dmx_peak_measure_quick(rt, &pk, &err) == 0) peak = pk.sgemm_gflops;
  char peak_path[4096];
  dmx_peak_path(rt, peak_path, sizeof peak_path);
  bool have_cached = dmx_peak_load(peak_path, &cached, &cerr) == 0;
  const char *lines[] = {"sum", "batch (profiled)", "coverage %", "GEMM share %", "GEMM GFLOP/s", "GEMM % of peak"};
  for (int l = 0; l < 6; l++) {
    if (l == 5 && peak <= 0) break;
    printf("%-16s", lines[l]);
    for (int i = 0; i < n; i++) {
      const tp_row *r = &rows[i];
      if (r->failed || !r->profiled) continue;
      double sum = 0, gs = 0, gf = 0;
      for (int c = 0; c < DMX_PROF_N; c++) {
        sum += r->prof.seconds[c];
        if (dmx_prof_cat_is_gemm(c)) gs += r->prof.seconds[c], gf += r->prof.flops[c];
      }
      double vals[6] = {sum / r->profiled * 1e3,     r->profiled_s / r->profiled * 1e3,
                        100.0 * sum / r->profiled_s, sum > 0 ? 100.0 * gs / sum : 0,
                        gs > 0 ? gf / gs / 1e9 : 0,  gs > 0 && peak > 0 ? 100.0 * gf / gs / 1e9 / peak : 0};
      printf(" %14.2f", vals[l]);
    }
    printf("\n");
  }
  if (peak <= 0)
    printf("GEMM utilisation unknown: %s\n", err.msg);
  else
    printf("peak: %.1f GFLOP/s SGEMM at %d^3, measured right after the profiled batches", pk.sgemm_gflops,
           pk.sgemm_size);
  if (have_cached)
    printf("%s(cached peak: %.1f GFLOP/s at %d^3, %s)\n", peak > 0 ? " " : "", cached.sgemm_gflops, cached.sgemm_size,
           cached.measured_at);
  else
    printf("\n");
  const tp_row *last = NULL; /* the largest N: where the per-instance work weighs most */
  for (int i = 0; i < n; i++)
    if (!rows[i].failed && rows[i].profiled && (!last || rows[i].N >= last->N)) last = &rows[i];
  if (last) {
    printf("%s:", last->label);
    dmx_prof_print_top(stdout, &last->prof, last->profiled, last->profiled_s / last->profiled, 12);
  }
}

static void plot(const char *dir) {
  dmx_plot_png(dir, "throughput",
               "set datafile separator ','\nset title 'inference throughput vs N'\n"
               "set xlabel 'N (instances multiplexed)'\nset ylabel 'instances / s'\nset logscale x 2\nset grid\n"
               "set key left top\n"
               /* column 1 is a label: strcol, since $1 is numeric; column 11 is instances_per_s */
               "plot 'throughput.csv' using 2:(strcol(1) eq 'vanilla' ? NaN : $11) skip 1 with linespoints title "
               "'DataMUX', '' using 2:(strcol(1) eq 'vanilla' ? $11 : NaN) skip 1 with points pt 7 title "
               "'vanilla (N=1)'\n");
}

static int write_tp_files(const dmx_runtime *rt, const dmx_experiment *e, const dmx_bench_tp_opts *o,
                          const tp_row *rows, int n, const char *data_desc, const char *tuning, const char *ref,
                          dmx_error *err) {
  dmx_membuf csv, js;
  if (dmx_membuf_open(&csv, err)) return -1;
  fprintf(csv.f,
          "label,N,groups,instances_per_batch,seq_len,batches,warmup,seconds,ms_per_batch,ms_per_batch_median,"
          "instances_per_s,reference_instances_per_s_alongside,speedup,device_mib_allocated\n");
  for (int i = 0; i < n; i++) {
    const tp_row *r = &rows[i];
    if (r->failed) continue;
    char alongside[32] = ""; /* empty for the reference itself */
    if (r->ref_inst_per_s > 0) snprintf(alongside, sizeof alongside, "%.2f", r->ref_inst_per_s);
    fprintf(csv.f, "%s,%d,%d,%d,%d,%d,%d,%.4f,%.3f,%.3f,%.2f,%s,%.3f,%.1f\n", r->label, r->N, r->groups, r->instances,
            r->T, r->batches, r->warmup, r->seconds, r->ms_mean, r->ms_median, r->inst_per_s, alongside, r->speedup,
            r->device_bytes / 1048576.0);
  }
  if (dmx_membuf_commit(&csv, o->out_dir, "throughput.csv", err)) return -1;
  if (dmx_membuf_open(&js, err)) return -1;
  fprintf(js.f, "{\n  \"benchmark\": \"throughput\",\n");
  dmx_bench_json_device(js.f, rt);
  fprintf(js.f, "  \"experiment\": ");
  dmx_json_put_str(js.f, e->source_path);
  fprintf(js.f,
          ",\n  \"setting\": \"%s\",\n  \"model\": {\"num_layers\": %d, \"hidden_size\": %d, \"num_heads\": %d, "
          "\"intermediate_size\": %d, \"vocab_size\": %d},\n",
          dmx_setting_name(e->setting), e->model.num_layers, e->model.hidden_size, e->model.num_heads,
          e->model.intermediate_size, e->model.vocab_size);
  fprintf(js.f, "  \"muxing\": \"%s\",\n  \"demuxing\": \"%s\",\n  \"max_length\": %d,\n  \"data\": ",
          dmx_muxing_name(e->mux.muxing), dmx_demuxing_name(e->mux.demuxing), e->task.max_length);
  dmx_json_put_str(js.f, data_desc);
  fprintf(js.f, ",\n  \"tuning\": ");
  dmx_json_put_str(js.f, tuning);
  fprintf(js.f, ",\n  \"method\": ");
  dmx_json_put_str(
      js.f,
      "eval mode (dmx_model_step train=false), no labels and no retrieval targets; base_bs(N)*N instances "
      "per batch; warm-up batches excluded; each batch timed to dmx_finish; instances_per_s = sum of "
      "instances / sum of batch times; the speedup reference is timed on its own first, then a second "
      "model of it runs alongside every other row (alternate batches) and speedup = instances_per_s / "
      "reference_instances_per_s_alongside");
  fprintf(js.f, ",\n  \"speedup_reference\": ");
  dmx_json_put_str(js.f, ref);
  fprintf(js.f, ",\n  \"device_memory_note\": ");
  dmx_json_put_str(js.f,
                     "device_mib_allocated is everything dmx_model_create allocates, training buffers (gradients, Adam "
                     "moments, backward activations) included; CLBlast temporaries are not counted");
  fprintf(js.f, ",\n  \"rows\": [\n");
  for (int i = 0; i < n; i++) {
    const tp_row *r = &rows[i];
    fprintf(js.f, "    {\"label\": \"%s\", \"N\": %d, ", r->label, r->N);
    if (r->failed) {
      fprintf(js.f, "\"error\": ");
      dmx_json_put_str(js.f, r->why);
    } else {
      fprintf(js.f,
              "\"groups\": %d, \"instances_per_batch\": %d, \"seq_len\": %d, \"batches\": %d, \"warmup\": %d, "
              "\"seconds\": %.4f, \"ms_per_batch\": %.3f, \"ms_per_batch_median\": %.3f, \"instances_per_s\": %.2f, "
              "\"speedup\": %.3f, \"device_bytes_allocated\": %zu",
              r->groups, r->instances, r->T, r->batches, r->warmup, r->seconds, r->ms_mean, r->ms_median, r->inst_per_s,
              r->speedup, r->device_bytes);
      if (r->ref_inst_per_s > 0) fprintf(js.f, ", \"reference_instances_per_s_alongside\": %.2f", r->ref_inst_per_s);
      if (r->profiled) {
        fprintf(js.f, ",\n      \"profile\": {\"batches\": %d, \"seconds_per_batch\": %.6f, \"categories\": {",
                r->profiled, r->profiled_s / r->profiled);
        bool first = true;
        for (int c = 0; c < DMX_PROF_N; c++) {
          if (!r->prof.count[c]) continue;
          fprintf(js.f, "%s\"%s\": %.6f", first ? "" : ", ", dmx_prof_cat_name(c), r->prof.seconds[c] / r->profiled);
          first = false;
        }
        fprintf(js.f, "},\n        \"commands\": ");
        dmx_prof_json_commands(js.f, &r->prof, r->profiled, "        ");
        fprintf(js.f, "}");
      }
    }
    fprintf(js.f, "}%s\n", i + 1 < n ? "," : "");
  }
  fprintf(js.f, "  ]\n}\n");
  if (dmx_membuf_commit(&js, o->out_dir, "throughput.json", err)) return -1;
  return 0;
}

int dmx_bench_throughput(const dmx_experiment *base, const dmx_bench_tp_opts *o0) {
  dmx_error err = {{0}};
  dmx_bench_tp_opts o = *o0;
  if (o.batches < 1 || o.warmup < 0) {
    fprintf(stderr, "datamux bench: --batches must be at least 1 and --warmup at least 0\n");
    return 1;
  }
  const char *out_dir = o.out_dir ? o.out_dir : "runs/bench";
  o.out_dir = out_dir;
  if (dmx_bench_prepare_out_dir(out_dir, &err)) {
    fprintf(stderr, "datamux bench: %s\n", err.msg);
    return 1;
  }
  const char *device = o.device && *o.device ? o.device : base->device;
  dmx_runtime *rt = dmx_bench_runtime(base, device, o.no_tuning, o.profile_batches > 0);
  if (o.n_count == 0) {
    /* the paper's list on every device: on the 2-core CPU the quickstart model takes about a second per N=40
     * batch, so the default run stays within minutes (--max-seconds caps each N) */
    static const int all[] = {1, 2, 5, 10, 20, 40};
    o.n_count = 6;
    memcpy(o.n_list, all, sizeof all);
  }
  /* every configuration is checked before anything is timed */
  int nconf = o.n_count + (o.vanilla ? 1 : 0);
  dmx_experiment *confs = dmx_calloc((size_t)nconf, sizeof *confs);
  tp_row *rows = dmx_calloc((size_t)nconf, sizeof *rows);
  int k = 0, maxrows = 0, rc = 0;
  if (o.vanilla) {
    confs[k] = *base;
    if (dmx_experiment_set(&confs[k], "setting", "baseline", &err) ||
        dmx_experiment_set(&confs[k], "multiplexing.num_instances", "1", &err) ||
        dmx_experiment_validate(&confs[k], &err)) {
      fprintf(stderr, "datamux bench: the vanilla (baseline) model: %s\n", err.msg);
      rc = 1;
    }
    snprintf(rows[k].label, sizeof rows[k].label, "vanilla");
    k++;
  }
  for (int i = 0; i < o.n_count && rc == 0; i++, k++) {
    confs[k] = *base;
    char v[16];
    snprintf(v, sizeof v, "%d", o.n_list[i]);
    if (dmx_experiment_set(&confs[k], "multiplexing.num_instances", v, &err) ||
        dmx_experiment_validate(&confs[k], &err)) {
      fprintf(stderr, "datamux bench: N=%d: %s\n", o.n_list[i], err.msg);
      rc = 1;
    }
    snprintf(rows[k].label, sizeof rows[k].label, "N=%d", o.n_list[i]);
  }
  for (int i = 0; i < nconf && rc == 0; i++) {
    int N = confs[i].setting == DMX_SETTING_BASELINE ? 1 : confs[i].mux.num_instances;
    if (dmx_base_batch_size(N) * N > maxrows) maxrows = dmx_base_batch_size(N) * N;
  }
  if (rc) { /* bad input: an N the experiment cannot take */
    free(confs);
    free(rows);
    dmx_runtime_destroy(rt);
    return 2;
  }
  char tuning[4400];
  dmx_bench_tuning_status(rt, o.no_tuning, tuning, sizeof tuning);
  printf("CLBlast tuning: %s\n", tuning);
  dmx_dataset ds;
  char data_desc[1200];
  bool loaded = false;
  if (!o.synthetic) {
    if (dmx_load_split(base, "dev", &ds, 0, NULL, &err) == 0) {
      loaded = true;
      snprintf(data_desc, sizeof data_desc, "%s dev split: %s", base->task.name, ds.summary);
    } else {
      printf("data: the %s dev split is not available (%s); using synthetic ids instead\n", base->task.name, err.msg);
    }
  }
  if (!loaded) {
    dmx_bench_synthetic_rows(base, maxrows, &ds);
    snprintf(data_desc, sizeof data_desc, "synthetic: %s", ds.summary);
  }
  printf("data: %s\n", data_desc);
  printf(
      "model: %d layers, hidden %d, %d heads, FFN %d (%s); %s / %s; max_length %d; parameters randomly initialised "
      "(throughput does not depend on their values)\n",
      base->model.num_layers, base->model.hidden_size, base->model.num_heads, base->model.intermediate_size,
      base->model_config_file[0] ? base->model_config_file : "experiment", dmx_muxing_name(base->mux.muxing),
      dmx_demuxing_name(base->mux.demuxing), base->task.max_length);
  printf(
      "method: eval mode, no labels, no retrieval targets; base_bs(N)*N instances per batch; %d warm-up batch(es) "
      "excluded, %d timed batch(es)%s, each timed to dmx_finish; the speedup reference runs alongside every row "
      "(alternate batches)\n",
      o.warmup, o.batches, o.max_seconds > 0 ? " or the time cap" : "");
  if (o.warmup == 0) printf("note: --warmup 0 times the first batch, which builds the kernels\n");
  /* the speedup reference: the vanilla model, else N=1, else the first row; timed first on its own,
   * then alongside every other row */
  int ref_i = 0;
  for (int i = nconf - 1; i >= 0; i--)
    if (!strcmp(rows[i].label, "N=1")) ref_i = i;
  if (o.vanilla) ref_i = 0;
  char ref_desc[64];
  snprintf(ref_desc, sizeof ref_desc, "%s", rows[ref_i].label);
  int ok = 0;
  for (int k = 0; k < nconf; k++) {
    int i = k == 0 ? ref_i : k <= ref_i ? k - 1 : k;
    tp_row *r = &rows[i];
    if (i != ref_i && rows[ref_i].failed) {
      r->failed = true;
      snprintf(r->why, sizeof r->why, "not timed: the speedup reference %s failed", ref_desc);
    } else {
      time_config(rt, &confs[i], i == ref_i ? NULL : &confs[ref_i], &ds, &o, r);
    }
    if (r->failed) {
      fprintf(stderr, "datamux bench: %s: %s\n", r->label, r->why);
      rc = 1;
      continue;
    }
    ok++;
    r->speedup = r->inst_per_s / (r->ref_inst_per_s > 0 ? r->ref_inst_per_s : rows[ref_i].inst_per_s);
    printf(
        "%-8s %3d groups x N=%-2d = %4d instances/batch, T=%3d: %3d batches in %7.2f s: %9.*f instances/s, "
        "%8.2f ms/batch (median %.2f), %.1f MiB device memory allocated",
        r->label, r->groups, r->N, r->instances, r->T, r->batches, r->seconds, digits(r->inst_per_s), r->inst_per_s,
        r->ms_mean, r->ms_median, r->device_bytes / 1048576.0);
    if (r->ref_inst_per_s > 0)
      printf("; %s alongside: %.*f instances/s", ref_desc, digits(r->ref_inst_per_s), r->ref_inst_per_s);
    printf("\n");
    fflush(stdout);
  }
  if (ok > 0) {
    printf("\n%-8s %5s %5s %11s %12s %14s %9s %12s\n", "", "N", "T", "inst/batch", "instances/s", "ref alongside",
           "speedup", "ms/batch");
    for (int i = 0; i < nconf; i++) {
      tp_row *r = &rows[i];
      if (r->failed) continue;
      char alongside[32] = "-";
      if (r->ref_inst_per_s > 0)
        snprintf(alongside, sizeof alongside, "%.*f", digits(r->ref_inst_per_s), r->ref_inst_per_s);
      printf("%-8s %5d %5d %11d %12.*f %14s %8.2fx %12.2f\n", r->label, r->N, r->T, r->instances, digits(r->inst_per_s),
             r->inst_per_s, alongside, r->speedup, r->ms_mean);
    }
    printf("speedup: instances/s over %s, each row against a %s model timed alongside it (alternate batches)%s\n",
           ref_desc, ref_desc, strcmp(ref_desc, "vanilla") && strcmp(ref_desc, "N=1") ? " (no N=1 in the list)" : "");
  }
  if (o.profile_batches > 0 && ok > 0) print_breakdown(rt, rows, nconf);
  if (ok > 0) {
    if (write_tp_files(rt, base, &o, rows, nconf, data_desc, tuning, ref_desc, &err)) {
      fprintf(stderr, "datamux bench: %s\n", err.msg);
      rc = 1;
    } else {
      plot(out_dir);
    }
  }
  dmx_dataset_free(&ds);
  free(confs);
  free(rows);
  dmx_runtime_destroy(rt);
  return rc;
}
