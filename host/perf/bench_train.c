/* `datamux bench --train EXP.yaml`: seconds per training step (forward, backward and AdamW, as
 * `datamux train` runs them), tokens/s and instances/s, then an op-level breakdown of further steps
 * from OpenCL profiling events (host/profile.h). The timed steps run with no event at all; the
 * profiled steps come after them, so the headline numbers carry no profiling cost and the profile
 * says what its own overhead was. */
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

typedef struct {
  int B, N, L, T, instances, tokens;
  int timed, profiled;
  double timed_s, timed_median_s, profiled_s;
  dmx_prof_totals prof;
  bool have_peak, have_run_peak;
  dmx_peak peak, run_peak; /* the cached one (`devices --peak`) and one measured right after the profiled steps */
  char peak_why[DMX_ERRMSG];
  char data_desc[1200], tuning[4400];
} train_result;

/* The retrieval picks of one step, as host/train.c draws them: a random instance per muxed
 * position, scored unless a prefix slot, a pad, a padding instance or left out by
 * retrieval_percentage. */
static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void print_result(const train_result *r) {
  double step = r->profiled_s / r->profiled;
  printf("\nstep: %d groups x N=%d = %d instances of %d tokens (T=%d as the encoder sees it)\n", r->B, r->N,
         r->instances, r->L, r->T);
  printf(
      "timed (no profiling): %d steps, %.4f s/step (median %.4f), %.1f instances/s, %.0f tokens/s (B*N*L input "
      "tokens, padding included)\n",
      r->timed, r->timed_s / r->timed, r->timed_median_s, r->instances * r->timed / r->timed_s,
      (double)r->tokens * r->timed / r->timed_s);
  if (r->profiled == 0) return;
  printf("profiled: %d more steps with an event per command: %.4f s/step (%+.1f%% against the timed steps)\n",
         r->profiled, step, 100.0 * (step / (r->timed_s / r->timed) - 1.0));
  printf("\n%-16s %10s %7s %9s %9s  %s\n", "category", "ms/step", "share", "count/st", "GFLOP/s", "what");
  double sum = 0, gemm_s = 0, gemm_f = 0;
  for (int c = 0; c < DMX_PROF_N; c++) {
    double s = r->prof.seconds[c] / r->profiled;
    sum += s;
    if (dmx_prof_cat_is_gemm(c)) {
      gemm_s += s;
      gemm_f += r->prof.flops[c] / r->profiled;
    }
    if (r->prof.count[c] == 0) continue;
    char gf[32] = "";
    if (dmx_prof_cat_is_gemm(c) && r->prof.seconds[c] > 0)
      snprintf(gf, sizeof gf, "%.2f", r->prof.flops[c] / r->prof.seconds[c] / 1e9);
    printf("%-16s %10.3f %6.1f%% %9.1f %9s  %s\n", dmx_prof_cat_name(c), s * 1e3, 100.0 * s / step,
           (double)r->prof.count[c] / r->profiled, gf, dmx_prof_cat_what(c));
  }
  printf("%-16s %10.3f %6.1f%%\n", "sum", sum * 1e3, 100.0 * sum / step);
  printf("%-16s %10.3f %6.1f%%  (gaps between commands: host enqueue time while the device idles, sync)\n",
         "unattributed", (step - sum) * 1e3, 100.0 * (step - sum) / step);
  printf("coverage: %.1f%% of the measured step time is in the categories above (target >= 95%%)\n",
         100.0 * sum / step);
  dmx_prof_print_top(stdout, &r->prof, r->profiled, step, 15);
  if (r->prof.unavailable)
    printf("warning: %ld of %ld events had no timestamps from the driver; their time is missing\n", r->prof.unavailable,
           r->prof.records);
  double gemm_rate = gemm_s > 0 ? gemm_f / gemm_s / 1e9 : 0;
  printf("GEMMs: %.3f ms/step, %.1f%% of the step, %.2f GFLOP/s achieved over %.3f GFLOP/step", gemm_s * 1e3,
         100.0 * gemm_s / step, gemm_rate, gemm_f / 1e9);
  if (r->have_run_peak)
    printf(" = %.1f%% of the SGEMM peak measured right after the profiled steps (%.1f GFLOP/s at %d^3)",
           100.0 * gemm_rate / r->run_peak.sgemm_gflops, r->run_peak.sgemm_gflops, r->run_peak.sgemm_size);
  if (r->have_peak)
    printf("%s %.1f%% of the cached peak (%.1f GFLOP/s at %d^3, %s)\n", r->have_run_peak ? ";" : " =",
           100.0 * gemm_rate / r->peak.sgemm_gflops, r->peak.sgemm_gflops, r->peak.sgemm_size, r->peak.measured_at);
  else
    printf("; cached peak unknown: %s\n", r->peak_why);
}

static int write_files(const dmx_runtime *rt, const dmx_experiment *e, const dmx_bench_train_opts *o,
                       const train_result *r, dmx_error *err) {
  dmx_membuf csv, js;
  double step = r->profiled ? r->profiled_s / r->profiled : 0, sum = 0, gemm_s = 0, gemm_f = 0;
  if (dmx_membuf_open(&csv, err)) return -1;
  fprintf(csv.f, "category,kind,ms_per_step,share_of_step,count_per_step,gflop_per_step,gflops\n");
  for (int c = 0; c < DMX_PROF_N && r->profiled; c++) {
    double s = r->prof.seconds[c] / r->profiled, f = r->prof.flops[c] / r->profiled;
    sum += s;
    if (dmx_prof_cat_is_gemm(c)) {
      gemm_s += s;
      gemm_f += f;
    }
    fprintf(csv.f, "%s,%s,%.4f,%.5f,%.2f,%.5f,%.3f\n", dmx_prof_cat_name(c), dmx_prof_cat_is_gemm(c) ? "gemm" : "op",
            s * 1e3, step > 0 ? s / step : 0, (double)r->prof.count[c] / r->profiled, f / 1e9,
            s > 0 && f > 0 ? f / s / 1e9 : 0.0);
  }
  fprintf(csv.f, "sum,total,%.4f,%.5f,,,\n", sum * 1e3, step > 0 ? sum / step : 0);
  fprintf(csv.f, "step,wall,%.4f,1,,%.5f,%.3f\n", step * 1e3, gemm_f / 1e9, gemm_s > 0 ? gemm_f / gemm_s / 1e9 : 0.0);
  if (dmx_membuf_commit(&csv, o->out_dir, "train.csv", err)) return -1;

  if (dmx_membuf_open(&js, err)) return -1;
  FILE *f = js.f;
  fprintf(f, "{\n  \"benchmark\": \"train\",\n");
  dmx_bench_json_device(f, rt);
  fprintf(f, "  \"experiment\": ");
  dmx_json_put_str(f, e->source_path);
  fprintf(f,
          ",\n  \"setting\": \"%s\",\n  \"model\": {\"num_layers\": %d, \"hidden_size\": %d, \"num_heads\": %d, "
          "\"intermediate_size\": %d, \"vocab_size\": %d},\n",
          dmx_setting_name(e->setting), e->model.num_layers, e->model.hidden_size, e->model.num_heads,
          e->model.intermediate_size, e->model.vocab_size);
  fprintf(f, "  \"data\": ");
  dmx_json_put_str(f, r->data_desc);
  fprintf(f, ",\n  \"tuning\": ");
  dmx_json_put_str(f, r->tuning);
  fprintf(
      f,
      ",\n  \"groups\": %d,\n  \"N\": %d,\n  \"max_length\": %d,\n  \"seq_len\": %d,\n  \"instances_per_step\": %d,\n"
      "  \"tokens_per_step\": %d,\n  \"warmup_steps\": %d,\n  \"timed_steps\": %d,\n",
      r->B, r->N, r->L, r->T, r->instances, r->tokens, o->warmup, r->timed);
  fprintf(f,
          "  \"seconds_per_step\": %.6f,\n  \"seconds_per_step_median\": %.6f,\n  \"instances_per_s\": %.3f,\n"
          "  \"tokens_per_s\": %.1f,\n",
          r->timed_s / r->timed, r->timed_median_s, r->instances * r->timed / r->timed_s,
          (double)r->tokens * r->timed / r->timed_s);
  fprintf(f, "  \"method\": ");
  dmx_json_put_str(f,
                     "dmx_model_step(train) + dmx_model_update (AdamW) per step, constant learning rate; warm-up "
                     "steps excluded; timed steps each timed to dmx_finish with no profiling event; profiled steps "
                     "after them: an OpenCL event per kernel, fill and upload (START..END) and two markers around "
                     "every GEMM call (END..END); tokens = B*N*L input tokens, padding included");
  fprintf(f, ",\n  \"profile\": {\n    \"steps\": %d,\n    \"seconds_per_step\": %.6f,\n    \"categories\": [\n",
          r->profiled, step);
  bool first = true;
  for (int c = 0; c < DMX_PROF_N && r->profiled; c++) {
    if (!r->prof.count[c]) continue;
    double s = r->prof.seconds[c] / r->profiled, fl = r->prof.flops[c] / r->profiled;
    fprintf(f,
            "%s      {\"name\": \"%s\", \"kind\": \"%s\", \"seconds_per_step\": %.6f, \"share\": %.5f, "
            "\"count_per_step\": %.2f",
            first ? "" : ",\n", dmx_prof_cat_name(c), dmx_prof_cat_is_gemm(c) ? "gemm" : "op", s,
            step > 0 ? s / step : 0, (double)r->prof.count[c] / r->profiled);
    if (dmx_prof_cat_is_gemm(c))
      fprintf(f, ", \"gflop_per_step\": %.5f, \"gflops\": %.3f", fl / 1e9, s > 0 ? fl / s / 1e9 : 0);
    fprintf(f, "}");
    first = false;
  }
  double gemm_rate = gemm_s > 0 ? gemm_f / gemm_s / 1e9 : 0;
  fprintf(f, "\n    ],\n    \"commands\": ");
  dmx_prof_json_commands(f, &r->prof, r->profiled, "    ");
  fprintf(f,
          ",\n    \"sum_seconds_per_step\": %.6f,\n    \"coverage\": %.5f,\n    \"events\": %ld,\n"
          "    \"events_without_timestamps\": %ld,\n",
          sum, step > 0 ? sum / step : 0, r->prof.records, r->prof.unavailable);
  fprintf(f, "    \"gemm\": {\"seconds_per_step\": %.6f, \"share\": %.5f, \"gflop_per_step\": %.5f, \"gflops\": %.3f, ",
          gemm_s, step > 0 ? gemm_s / step : 0, gemm_f / 1e9, gemm_rate);
  /* utilisation: against the peak measured in this run (side by side); the cached one for reference */
  if (r->have_run_peak)
    fprintf(f, "\"peak_gflops\": %.3f, \"peak_size\": %d, \"utilisation\": %.5f, ", r->run_peak.sgemm_gflops,
            r->run_peak.sgemm_size, gemm_rate / r->run_peak.sgemm_gflops);
  else
    fprintf(f, "\"peak_gflops\": null, \"utilisation\": null, ");
  if (r->have_peak)
    fprintf(f,
            "\"cached_peak_gflops\": %.3f, \"cached_peak_measured_at\": \"%s\", \"utilisation_of_cached_peak\": "
            "%.5f}\n  }\n}\n",
            r->peak.sgemm_gflops, r->peak.measured_at, gemm_rate / r->peak.sgemm_gflops);
  else
    fprintf(f, "\"cached_peak_gflops\": null, \"utilisation_of_cached_peak\": null}\n  }\n}\n");
  if (dmx_membuf_commit(&js, o->out_dir, "train.json", err)) return -1;
  return 0;
}

int dmx_bench_train(const dmx_experiment *e, const dmx_bench_train_opts *o) {
  dmx_error err = {{0}};
  if (o->steps < 1 || o->warmup < 0 || o->profile_steps < 0) {
    fprintf(stderr, "datamux bench --train: --steps must be at least 1, --warmup and --profile-steps at least 0\n");
    return 1;
  }
  if (dmx_bench_prepare_out_dir(o->out_dir, &err)) {
    fprintf(stderr, "datamux bench --train: %s\n", err.msg);
    return 1;
  }
  train_result *r = dmx_calloc(1, sizeof *r);
  const char *device = o->device && *o->device ? o->device : e->device;
  /* a profiling queue throughout; events exist only while the recorder is attached */
  dmx_runtime *rt = dmx_bench_runtime(e, device, o->no_tuning, true);
  dmx_bench_tuning_status(rt, o->no_tuning, r->tuning, sizeof r->tuning);
  printf("CLBlast tuning: %s\n", r->tuning);
  char peak_path[4096];
  dmx_peak_path(rt, peak_path, sizeof peak_path);
  r->have_peak = dmx_peak_load(peak_path, &r->peak, &err) == 0;
  if (!r->have_peak) snprintf(r->peak_why, sizeof r->peak_why, "%s", err.msg);

  bool baseline = e->setting == DMX_SETTING_BASELINE;
  r->N = baseline ? 1 : e->mux.num_instances;
  r->B = e->train.batch_size > 0 ? e->train.batch_size : dmx_base_batch_size(r->N);
  r->L = e->task.max_length;
  dmx_input_kind kind = baseline                             ? DMX_INPUT_PLAIN
                        : e->mux.demuxing == DMX_DEMUX_INDEX ? DMX_INPUT_INDEX
                                                             : DMX_INPUT_MLP;
  dmx_dataset ds;
  bool loaded = false;
  /* the dev split: a step costs the same whichever rows it holds (the retrieval head scores the
   * non-pad positions, so real sentences matter more than which ones), and it loads quickly */
  if (!o->synthetic) {
    if (dmx_load_split(e, "dev", &ds, 0, NULL, &err) == 0) {
      if (ds.n >= r->B * r->N) {
        loaded = true;
        snprintf(r->data_desc, sizeof r->data_desc, "%s dev split: %s", e->task.name, ds.summary);
      } else {
        snprintf(err.msg, sizeof err.msg, "%d rows, fewer than one step's %d", ds.n, r->B * r->N);
        dmx_dataset_free(&ds);
      }
    }
    if (!loaded)
      printf("data: the %s dev split is not usable (%s); using synthetic ids instead\n", e->task.name, err.msg);
  }
  if (!loaded) {
    dmx_bench_synthetic_rows(e, r->B * r->N * 4, &ds);
    snprintf(r->data_desc, sizeof r->data_desc, "synthetic: %s", ds.summary);
  }
  printf("data: %s\n", r->data_desc);
  bool token = ds.kind == DMX_TARGET_TOKENS;
  dmx_batch batch;
  int rc = 0;
  if (dmx_batch_alloc(&batch, r->B, r->N, r->L, kind, ds.kind, &err)) {
    fprintf(stderr, "datamux bench --train: %s\n", err.msg);
    dmx_dataset_free(&ds);
    dmx_runtime_destroy(rt);
    free(r);
    return 1;
  }
  r->T = batch.Lp;
  r->instances = r->B * r->N;
  r->tokens = r->instances * r->L;
  dmx_model *model = dmx_model_create(rt, e, r->B, r->T, ds.num_labels, token, &err);
  if (!model) {
    fprintf(stderr, "datamux bench --train: %s\n", err.msg);
    rc = 1;
  } else {
    dmx_model_init_params(model, (uint64_t)e->train.seed);
    bool retrieval = !baseline && e->train.retrieval_loss_coeff > 0;
    int32_t *inst = dmx_calloc((size_t)r->B * r->T, sizeof(int32_t));
    int32_t *targets = dmx_calloc((size_t)r->B * r->T, sizeof(int32_t));
    uint64_t rng = (uint64_t)e->train.seed * 0x9E3779B97F4A7C15ULL + 7;
    dmx_batcher bt;
    dmx_batcher_init(&bt, &ds, r->instances, true, true, (uint64_t)e->train.seed);
    int epoch = 0;
    dmx_batcher_begin_epoch(&bt, epoch);
    printf(
        "method: training steps (forward, backward, AdamW) of %s at N=%d, %d warm-up step(s) excluded, %d timed "
        "step(s)%s with no profiling, then %d profiled step(s)\n",
        e->model_config_file[0] ? e->model_config_file : "the experiment's model", r->N, o->warmup, o->steps,
        o->max_seconds > 0 ? " (or the time cap)" : "", o->profile_steps);
    int total = o->warmup + o->steps + o->profile_steps;
    double *times = dmx_calloc((size_t)o->steps, sizeof(double));
    for (int i = 0; i < total && rc == 0; i++) {
      bool timed = i >= o->warmup && i < o->warmup + o->steps, profiled = i >= o->warmup + o->steps;
      if (timed && o->max_seconds > 0 && r->timed > 0 && r->timed_s >= o->max_seconds) {
        i = o->warmup + o->steps - 1; /* the time cap ends the timed steps; the profiled ones still run */
        continue;
      }
      if (profiled && o->max_seconds > 0 && r->profiled > 0 && r->profiled_s >= o->max_seconds) break;
      /* the next batch is built outside the timed region, like a data loader */
      if (!dmx_batcher_next(&bt, &batch)) {
        dmx_batcher_begin_epoch(&bt, ++epoch);
        if (!dmx_batcher_next(&bt, &batch)) dmx_die("the batcher gave no batch from %d rows", ds.n);
      }
      dmx_batch_view v = {0};
      v.ids = batch.ids;
      v.positions = batch.positions;
      v.labels = token ? batch.token_labels_prefixed : batch.labels;
      if (retrieval) {
        int first = e->mux.demuxing == DMX_DEMUX_INDEX ? batch.N + 1 : (token ? 0 : 1);
        dmx_draw_retrieval(&batch, first, e->train.retrieval_percentage, &rng, inst, targets);
        v.retrieval_instance = inst;
        v.retrieval_targets = targets;
      }
      if (profiled && !dmx_prof_active(rt)) dmx_prof_start(rt);
      dmx_finish(rt);
      double t0 = dmx_now_seconds();
      dmx_model_step(model, &v, true, (uint64_t)(i + 1));
      dmx_model_update(model, e->train.learning_rate, i + 1);
      dmx_finish(rt);
      double dt = dmx_now_seconds() - t0;
      if (timed) {
        times[r->timed++] = dt;
        r->timed_s += dt;
      } else if (profiled) {
        r->profiled++;
        r->profiled_s += dt;
        if (dmx_prof_collect(rt, &r->prof, &err)) {
          fprintf(stderr, "datamux bench --train: %s\n", err.msg);
          rc = 1;
        }
      }
    }
    dmx_prof_stop(rt);
    if (rc == 0 && r->profiled > 0) {
      r->have_run_peak = dmx_peak_measure_quick(rt, &r->run_peak, &err) == 0;
      if (!r->have_run_peak) fprintf(stderr, "datamux bench --train: peak: %s\n", err.msg);
    }
    if (rc == 0) {
      qsort(times, (size_t)r->timed, sizeof(double), cmp_double);
      int n = r->timed;
      r->timed_median_s = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
      print_result(r);
      if (o->out_dir && write_files(rt, e, o, r, &err)) {
        fprintf(stderr, "datamux bench --train: %s\n", err.msg);
        rc = 1;
      }
    }
    free(times);
    free(inst);
    free(targets);
    dmx_batcher_free(&bt);
    dmx_model_free(model);
  }
  dmx_batch_free(&batch);
  dmx_dataset_free(&ds);
  dmx_runtime_destroy(rt);
  free(r);
  return rc;
}
