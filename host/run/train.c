/* The training loop: one experiment's data, model, optimizer schedule, evaluation, logs and
 * checkpoints. Inside a step only the batch (ids, positions, labels, retrieval picks) goes to the
 * device; losses and predictions come back at log and evaluation intervals only. */
#include "host/run/train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/batch.h"
#include "data/dataset.h"
#include "data/metrics.h"
#include "host/run/checkpoint.h"
#include "host/run/data_parallel.h"
#include "host/runtime/gemm.h"
#include "host/runtime/runtime.h"
#include "host/run/train_state.h"
#include "layers/model.h"
#include "host/run/rundir.h"
#include "host/run/experiment_runtime.h"

typedef struct {
  const dmx_experiment *e;
  dmx_runtime *rt;
  dmx_model *model;
  dmx_dataset train, dev;
  bool have_train, have_dev;
  dmx_batch batch; /* the global batch: ranks * B groups */
  int N, B, L, T; /* B: groups of this rank's shard; the global batch holds ranks * B */
  int rank, ranks; /* data-parallel: this rank's shard is groups [rank*B, (rank+1)*B) of the batch */
  bool token;
  int32_t *r_inst, *r_targets; /* (ranks*B, T) retrieval picks of the current step, all shards' */
  FILE *metrics;               /* metrics.jsonl */
  char run_dir[1024];
  uint64_t rng;
  float last_loss; /* of the last logged step */
  uint8_t *seen;    /* (V) data-parallel: word rows the global batch touches */
  int32_t *touched; /* (V) their ids, sorted */
} trainer;

/* ------------------------------------------------------------------ set-up */

static dmx_input_kind input_kind(const dmx_experiment *e) {
  if (e->setting == DMX_SETTING_BASELINE) return DMX_INPUT_PLAIN;
  return e->mux.demuxing == DMX_DEMUX_INDEX ? DMX_INPUT_INDEX : DMX_INPUT_MLP;
}

int dmx_load_split(const dmx_experiment *e, const char *split, dmx_dataset *out, int max_rows, FILE *log,
                   dmx_error *err) {
  dmx_dataset_opts o = dmx_dataset_opts_default();
  o.log = log;
  o.task = e->task.name;
  o.split = split;
  o.data_dir = e->task.data_dir[0] ? e->task.data_dir : NULL;
  char tok[2048] = "";
  if (e->task.tokenizer[0]) {
    if (e->task.tokenizer[0] == '/') {
      snprintf(tok, sizeof tok, "%s", e->task.tokenizer);
    } else {
      char root[1024];
      snprintf(tok, sizeof tok, "%s/%s", dmx_data_root(o.data_dir, root, sizeof root), e->task.tokenizer);
    }
    o.tokenizer_dir = tok;
  }
  o.max_length = e->task.max_length;
  /* warm-up text: the train split reads text_file; dev reads eval_file, or the dev split of the
   * GLUE task named by text_file, or WikiText's validation file */
  const char *src = e->task.text_file;
  if (strcmp(split, "train") != 0 && e->task.eval_file[0])
    src = e->task.eval_file;
  else if (strcmp(split, "train") != 0 && (strchr(src, '/') || strchr(src, '.')))
    src = "";
  o.text_source = src[0] ? src : NULL;
  if (strcmp(e->task.name, "text") != 0) o.file = strcmp(split, "train") ? e->task.eval_file : e->task.train_file;
  o.seed = (uint64_t)e->train.seed;
  if (dmx_dataset_load(&o, out, err) != 0) return -1;
  if (max_rows > 0 && out->n > max_rows) {
    out->n = max_rows; /* the first rows, in file order: a stated cap, not a silent drop */
    if (log)
      fprintf(log, "  using the first %d rows (max_%s_examples)\n", max_rows,
              strcmp(split, "train") ? "eval" : "train");
  }
  return 0;
}

static int open_run_dir(trainer *t, dmx_error *err) {
  if (!dmx_dp_writer()) { /* rank 0 writes the run directory; the others only name it */
    snprintf(t->run_dir, sizeof t->run_dir, "%s", t->e->output_dir);
    return 0;
  }
  return dmx_open_run_dir(t->e, t->run_dir, sizeof t->run_dir, &t->metrics, err);
}

/* ------------------------------------------------------------------ retrieval picks */

/* For every muxed position the original draws a random instance k and asks the retrieval head
 * for instance k's token there (spec §1.10). Prefix positions, pads and (with probability
 * 1 - retrieval_percentage) other positions are not scored. */
static void draw_retrieval(trainer *t) {
  int first = t->e->mux.demuxing == DMX_DEMUX_INDEX ? t->N + 1 : (t->token ? 0 : 1);
  dmx_draw_retrieval(&t->batch, first, t->e->train.retrieval_percentage, &t->rng, t->r_inst, t->r_targets);
}

/* Shard `r` of the global batch (the retrieval picks already drawn for all of it). */
static dmx_batch_view shard_view(const trainer *t, int r, bool with_retrieval) {
  size_t rows = (size_t)r * t->B * t->N; /* the shard's first instance row */
  size_t Lp = (size_t)t->batch.Lp;
  dmx_batch_view v = {0};
  v.ids = t->batch.ids + rows * Lp;
  v.positions = t->batch.positions + rows * Lp;
  v.labels = t->token ? t->batch.token_labels_prefixed + rows * Lp : t->batch.labels + rows;
  if (with_retrieval) {
    v.retrieval_instance = t->r_inst + (size_t)r * t->B * t->T;
    v.retrieval_targets = t->r_targets + (size_t)r * t->B * t->T;
  }
  return v;
}

/* This rank's shard of the batch just filled, drawing the retrieval picks for the whole global
 * batch first (so they are a one-process run's). With several ranks the losses are divided by
 * the global batch's counts, which every rank can count: it holds all of the batch. */
/* The rows of the word-embedding table the global batch touches, sorted: the only rows whose
 * gradient can be non-zero on any rank (the pad id never gets one), so the only ones to add. */
static dmx_dp_rows touched_rows(trainer *t) {
  int d;
  dmx_tensor table = dmx_model_word_grad(t->model, &d);
  size_t V = table.n / (size_t)d, n = (size_t)t->batch.rows * t->batch.Lp;
  int pad = t->e->model.pad_token_id;
  for (size_t i = 0; i < n; i++) {
    int32_t id = t->batch.ids[i];
    if (id >= 0 && (size_t)id < V && id != pad) t->seen[id] = 1;
  }
  int k = 0;
  for (size_t v = 0; v < V; v++)
    if (t->seen[v]) {
      t->touched[k++] = (int32_t)v;
      t->seen[v] = 0;
    }
  return (dmx_dp_rows){table, d, t->touched, k};
}

static dmx_batch_view batch_view(trainer *t, bool with_retrieval) {
  if (with_retrieval) draw_retrieval(t);
  dmx_batch_view v = shard_view(t, t->rank, with_retrieval);
  if (t->ranks > 1) {
    for (int r = 0; r < t->ranks; r++) {
      dmx_batch_view s = shard_view(t, r, with_retrieval);
      int task, retrieval;
      dmx_model_count_scored(t->model, &s, true, &task, &retrieval);
      v.task_norm += task;
      v.retrieval_norm += retrieval;
    }
    /* 0 means "this shard's own count": a global batch with nothing scored needs no norm */
    if (v.task_norm == 0) v.task_norm = 1;
    if (v.retrieval_norm == 0) v.retrieval_norm = 1;
  }
  return v;
}

/* ------------------------------------------------------------------ evaluation */

typedef struct {
  double accuracy, f1, precision, recall, retrieval_accuracy, retrieval_loss, task_loss;
  int examples;
  char metric_name[32];
  double metric; /* the one that picks the best model */
} eval_result;

static eval_result evaluate(trainer *t) {
  const dmx_experiment *e = t->e;
  eval_result r = {0};
  dmx_batcher bt;
  int per_step = t->B * t->N * t->ranks; /* the global batch; this rank runs its shard */
  dmx_batcher_init(&bt, &t->dev, per_step, false, e->task.drop_last, (uint64_t)e->train.seed);
  dmx_batcher_begin_epoch(&bt, 0);
  int steps = dmx_batcher_steps(&bt);
  int rows_per_step = t->token ? per_step * t->T : per_step;
  int shard_rows = rows_per_step / t->ranks;
  int32_t *shard_pred = t->ranks > 1 ? dmx_malloc((size_t)shard_rows * sizeof(int32_t)) : NULL;
  int32_t *pred = dmx_malloc((size_t)steps * rows_per_step * sizeof(int32_t));
  int32_t *gold = dmx_malloc((size_t)steps * rows_per_step * sizeof(int32_t));
  uint8_t *scored = dmx_malloc((size_t)steps * per_step);
  bool retrieval = e->setting != DMX_SETTING_BASELINE && e->train.retrieval_loss_coeff > 0;
  double rloss = 0, tloss = 0;
  long rcount = 0, rcorrect = 0, tcount = 0;
  int n = 0;
  uint64_t saved_rng = t->rng;
  t->rng = (uint64_t)e->train.seed * 7919u + 1; /* evaluation draws the same picks every time */
  while (dmx_batcher_next(&bt, &t->batch)) {
    dmx_batch_view v = batch_view(t, retrieval);
    dmx_model_step(t->model, &v, false, 0);
    dmx_step_stats st = dmx_model_stats(t->model);
    rloss += (double)st.retrieval_loss * st.retrieval_count;
    rcount += st.retrieval_count;
    rcorrect += st.retrieval_correct;
    tloss += (double)st.task_loss * st.task_count;
    tcount += st.task_count;
    if (shard_pred) { /* the ranks' predictions, in shard order: the global batch's */
      dmx_model_predictions(t->model, shard_pred);
      dmx_dist_allgather(shard_pred, (size_t)shard_rows * sizeof(int32_t), pred + (size_t)n * rows_per_step);
    } else {
      dmx_model_predictions(t->model, pred + (size_t)n * rows_per_step);
    }
    memcpy(gold + (size_t)n * rows_per_step, shard_view(t, 0, false).labels, (size_t)rows_per_step * sizeof(int32_t));
    memcpy(scored + (size_t)n * per_step, t->batch.scored, (size_t)per_step);
    n++;
  }
  t->rng = saved_rng;
  free(shard_pred);
  double sums[5] = {rloss, (double)rcount, (double)rcorrect, tloss, (double)tcount};
  dmx_dist_sum_f64(sums, 5);
  rloss = sums[0];
  rcount = (long)sums[1];
  rcorrect = (long)sums[2];
  tloss = sums[3];
  tcount = (long)sums[4];
  r.retrieval_loss = rcount ? rloss / rcount : 0;
  r.retrieval_accuracy = rcount ? (double)rcorrect / rcount : 0;
  r.task_loss = tcount ? tloss / tcount : 0;
  if (t->token) {
    dmx_ner_scores s = dmx_ner_metrics_tokens(pred, gold, n * per_step, t->T, scored);
    r.f1 = s.f1;
    r.precision = s.precision;
    r.recall = s.recall;
    r.accuracy = s.accuracy;
    snprintf(r.metric_name, sizeof r.metric_name, "f1");
    r.metric = r.f1;
    for (int i = 0; i < n * per_step; i++) r.examples += scored[i];
  } else {
    /* keep only real examples (padding instances are not scored) */
    int k = 0;
    for (int i = 0; i < n * per_step; i++)
      if (scored[i]) {
        pred[k] = pred[i];
        gold[k] = gold[i];
        k++;
      }
    r.examples = k;
    if (!strcmp(e->task.name, "text")) {
      r.accuracy = r.retrieval_accuracy; /* the dummy labels of text blocks mean nothing */
      snprintf(r.metric_name, sizeof r.metric_name, "retrieval_accuracy");
      r.metric = r.retrieval_accuracy;
    } else {
      dmx_glue_scores g = dmx_glue_metrics(e->task.name, pred, gold, NULL, NULL, k);
      r.accuracy = g.accuracy;
      r.f1 = g.f1;
      snprintf(r.metric_name, sizeof r.metric_name, "accuracy");
      r.metric = g.accuracy;
    }
  }
  free(pred);
  free(gold);
  free(scored);
  dmx_batcher_free(&bt);
  return r;
}

/* A JSON number, or null for values JSON cannot hold (F1 of a task without one is NaN). */
static const char *json_number(char *buf, size_t cap, double v) {
  if (isfinite(v))
    snprintf(buf, cap, "%.6f", v);
  else
    snprintf(buf, cap, "null");
  return buf;
}

/* One evaluation as a JSON object: which metric picks the best model, and every metric once. */
static void eval_json(char *out, size_t cap, const eval_result *r, int step) {
  char a[32], f[32], p[32], rc[32], ra[32], rl[32], m[32];
  int n = step >= 0 ? snprintf(out, cap, "{\"step\": %d, ", step) : snprintf(out, cap, "{");
  snprintf(out + n, cap - (size_t)n,
           "\"metric\": \"%s\", \"value\": %s, \"accuracy\": %s, \"f1\": %s, \"precision\": %s, \"recall\": %s, "
           "\"retrieval_accuracy\": %s, \"retrieval_loss\": %s, \"examples\": %d}",
           r->metric_name, json_number(m, sizeof m, r->metric), json_number(a, sizeof a, r->accuracy),
           json_number(f, sizeof f, r->f1), json_number(p, sizeof p, r->precision),
           json_number(rc, sizeof rc, r->recall), json_number(ra, sizeof ra, r->retrieval_accuracy),
           json_number(rl, sizeof rl, r->retrieval_loss), r->examples);
}

static void log_eval(trainer *t, int step, double epoch, const eval_result *r) {
  printf("eval step %d: %s %.4f (accuracy %.4f", step, r->metric_name, r->metric, r->accuracy);
  if (t->token) printf(", precision %.4f, recall %.4f, f1 %.4f", r->precision, r->recall, r->f1);
  if (r->retrieval_loss > 0)
    printf(", retrieval accuracy %.4f, retrieval loss %.4f", r->retrieval_accuracy, r->retrieval_loss);
  printf(") over %d examples\n", r->examples);
  fflush(stdout);
  if (t->metrics) {
    char body[1024];
    eval_json(body, sizeof body, r, step);
    fprintf(t->metrics, "{\"event\": \"eval\", \"epoch\": %.4f, \"task_loss\": %.6f, %s\n", epoch, r->task_loss,
            body + 1);
    fflush(t->metrics);
  }
}

/* ------------------------------------------------------------------ schedule */

/* ------------------------------------------------------------------ the run */

static int setup(trainer *t, const dmx_experiment *e, bool need_train, dmx_error *err) {
  memset(t, 0, sizeof *t);
  t->e = e;
  t->token = !strcmp(e->task.name, "ner");
  t->N = e->setting == DMX_SETTING_BASELINE ? 1 : e->mux.num_instances;
  t->B = e->train.batch_size > 0 ? e->train.batch_size : dmx_base_batch_size(t->N);
  t->rank = dmx_dist_world()->rank;
  t->ranks = dmx_dist_world()->size;
  t->L = e->task.max_length;
  t->rng = (uint64_t)e->train.seed * 0x9E3779B97F4A7C15ULL + 17;
  if (need_train) {
    if (dmx_load_split(e, "train", &t->train, e->task.max_train_examples, stdout, err)) return -1;
    t->have_train = true;
  }
  if (e->train.do_eval || !need_train) {
    if (dmx_load_split(e, "dev", &t->dev, e->task.max_eval_examples, stdout, err)) return -1;
    t->have_dev = true;
  }
  const dmx_dataset *ref = t->have_train ? &t->train : &t->dev;
  if (dmx_batch_alloc(&t->batch, t->B * t->ranks, t->N, t->L, input_kind(e), ref->kind, err)) return -1;
  t->T = t->batch.Lp;
  t->r_inst = dmx_calloc((size_t)t->B * t->ranks * t->T, sizeof(int32_t));
  t->r_targets = dmx_calloc((size_t)t->B * t->ranks * t->T, sizeof(int32_t));
  t->rt = dmx_experiment_runtime(e, NULL, false, stdout);
  dmx_dp_announce(t->rt, stdout);
  t->model = dmx_model_create(t->rt, e, t->B, t->T, ref->num_labels, t->token, err);
  if (!t->model) return -1;
  dmx_model_set_rank(t->model, t->rank);
  if (t->ranks > 1) {
    int d;
    dmx_tensor table = dmx_model_word_grad(t->model, &d); /* sets d: read it only after the call */
    size_t V = table.n / (size_t)d;
    t->seen = dmx_calloc(V, 1);
    t->touched = dmx_calloc(V, sizeof(int32_t));
  }
  dmx_model_init_params(t->model, (uint64_t)e->train.seed);
  if (e->model_path[0]) {
    if (dmx_checkpoint_load(t->model, e->model_path, err)) return -1;
    printf("loaded parameters from %s\n", e->model_path);
  }
  dmx_dp_bcast_arena(t->rt, dmx_model_param_arena(t->model)); /* every rank starts from rank 0's */
  printf("model: %d layers, hidden %d, %d heads, N=%d (%s, %s), %zu trainable parameters, %.1f MiB on the device\n",
         e->model.num_layers, e->model.hidden_size, e->model.num_heads, t->N, dmx_muxing_name(e->mux.muxing),
         dmx_demuxing_name(e->mux.demuxing), dmx_model_trainable_floats(t->model),
         dmx_model_device_bytes(t->model) / 1048576.0);
  return 0;
}

static void teardown(trainer *t) {
  if (t->metrics) fclose(t->metrics);
  dmx_model_free(t->model);
  if (t->rt) dmx_runtime_destroy(t->rt);
  dmx_batch_free(&t->batch);
  if (t->have_train) dmx_dataset_free(&t->train);
  if (t->have_dev) dmx_dataset_free(&t->dev);
  free(t->r_inst);
  free(t->r_targets);
  free(t->seen);
  free(t->touched);
}

static int write_results(trainer *t, const eval_result *final, const eval_result *best, int best_step, int steps,
                         double seconds, double inst_per_s, dmx_error *err) {
  char path[1100], buf[4096], fin[1024], bst[1024];
  snprintf(path, sizeof path, "%s/results.json", t->run_dir);
  eval_json(fin, sizeof fin, final, -1);
  eval_json(bst, sizeof bst, best, best_step);
  int n = snprintf(buf, sizeof buf,
                   "{\n  \"task\": \"%s\",\n  \"setting\": \"%s\",\n  \"num_instances\": %d,\n  \"steps\": %d,\n"
                   "  \"train_seconds\": %.2f,\n  \"train_instances_per_second\": %.2f,\n"
                   "  \"final\": %s,\n  \"best\": %s\n}\n",
                   t->e->task.name, dmx_setting_name(t->e->setting), t->N, steps, seconds, inst_per_s, fin, bst);
  return dmx_write_file_atomic(path, buf, (size_t)n, err);
}

static void progress(int step, int total, float loss, double ips, double elapsed, double budget) {
  double eta = step ? elapsed / step * (total - step) : 0;
  if (budget > 0 && budget - elapsed < eta) eta = budget - elapsed;
  if (isatty(STDOUT_FILENO)) {
    int width = 30, filled = total ? (int)((double)step / total * width) : 0;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
    bar[width] = 0;
    printf("\r[%s] step %d/%d  loss %.4f  %.1f inst/s  ETA %.0fs   ", bar, step, total, loss, ips, eta > 0 ? eta : 0);
  } else {
    printf("step %d/%d  loss %.4f  %.1f inst/s  ETA %.0fs\n", step, total, loss, ips, eta > 0 ? eta : 0);
  }
  fflush(stdout);
}

/* ------------------------------------------------------------------ training */

typedef struct {
  int step; /* steps completed */
  int best_step;
  eval_result best, final;
  double train_seconds;
  int exit_code; /* 0, or 128 + signal when interrupted */
} train_outcome;

static void log_step(trainer *t, int step, int per_epoch, float lr, double ips) {
  dmx_step_stats st = dmx_model_stats(t->model); /* waits for the queue: the log interval's only sync */
  dmx_dp_sum_stats(&st);
  dmx_model_finish_stats(t->model, &st);
  t->last_loss = st.loss;
  if (!t->metrics) return;
  fprintf(t->metrics,
          "{\"event\": \"log\", \"step\": %d, \"epoch\": %.4f, \"loss\": %.6f, \"task_loss\": %.6f, "
          "\"retrieval_loss\": %.6f, \"task_accuracy\": %.6f, \"retrieval_accuracy\": %.6f, "
          "\"learning_rate\": %.8g, \"grad_norm\": %.4f, \"instances_per_second\": %.2f}\n",
          step, (double)step / per_epoch, st.loss, st.task_loss, st.retrieval_loss,
          st.task_count ? (double)st.task_correct / st.task_count : 0.0,
          st.retrieval_count ? (double)st.retrieval_correct / st.retrieval_count : 0.0, lr, st.grad_norm, ips);
  fflush(t->metrics);
}

static int save_last(trainer *t, const dmx_batcher *bt, int step, int total, const train_outcome *o, dmx_error *err) {
  dmx_train_state s = {.step = step,
                       .total_steps = total,
                       .epoch = bt->epoch,
                       .next_row = bt->next,
                       .rng = t->rng,
                       .best_step = o->best_step,
                       .best_metric = o->best_step >= 0 ? o->best.metric : 0,
                       .train_seconds = o->train_seconds,
                       .world_size = t->ranks};
  dmx_dp_check_same(t->rt, dmx_model_param_arena(t->model), "parameters");
  if (!dmx_dp_writer()) return 0;
  return dmx_checkpoint_commit(t->model, t->e, t->run_dir, "last", &s, err);
}

/* Runs steps resume->step+1 .. total (all of them when resume is NULL). */
static int train(trainer *t, const dmx_train_state *resume, train_outcome *o, dmx_error *err) {
  const dmx_experiment *e = t->e;
  int per_step = t->B * t->N * t->ranks; /* the global batch */
  dmx_batcher bt;
  /* the original drops the last partial training batch (dataloader_drop_last) */
  dmx_batcher_init(&bt, &t->train, per_step, true, true, (uint64_t)e->train.seed);
  int per_epoch = dmx_batcher_steps(&bt);
  if (per_epoch < 1) {
    dmx_batcher_free(&bt);
    return dmx_fail(err, "%d training rows are fewer than one step's %d instances", t->train.n, per_step);
  }
  int total = e->train.max_steps > 0 ? e->train.max_steps : (int)ceil(e->train.epochs * per_epoch);
  int eval_every = e->train.eval_interval > 0 ? e->train.eval_interval : per_epoch;
  int log_every = e->train.log_interval > 0 ? e->train.log_interval : 50;
  int save_every = e->train.save_interval > 0 ? e->train.save_interval : eval_every;
  bool retrieval = e->setting != DMX_SETTING_BASELINE && e->train.retrieval_loss_coeff > 0;
  int first = 1, epoch = 0;
  if (resume) {
    if (resume->total_steps != total) {
      dmx_batcher_free(&bt);
      return dmx_fail(err,
                      "the run was planned for %d steps but this experiment makes it %d (max_steps, epochs, "
                      "batch size or data changed): resume with the run's own experiment.yaml",
                      resume->total_steps, total);
    }
    first = resume->step + 1;
    epoch = resume->epoch;
    t->rng = resume->rng;
    o->best_step = resume->best_step;
    o->best.metric = resume->best_metric;
    o->train_seconds = resume->train_seconds;
  }
  printf("training: %d steps (%d per epoch) of %d groups x N=%d = %d instances, lr %g, eval every %d steps%s\n", total,
         per_epoch, t->B * t->ranks, t->N, per_step, e->train.learning_rate, eval_every,
         e->train.time_budget_seconds > 0 ? ", with a time budget" : "");
  if (t->ranks > 1) printf("  each step: %d ranks of %d groups; gradients summed over the ranks\n", t->ranks, t->B);
  if (resume) printf("resuming after step %d (epoch %d)\n", resume->step, epoch);
  dmx_batcher_begin_epoch(&bt, epoch);
  if (resume) bt.next = resume->next_row;
  double t0 = dmx_now_seconds() - o->train_seconds, tlog = dmx_now_seconds();
  int since_log = 0, kill_step = dmx_kill_at_step(), step, stop = 0;
  dmx_stop_handlers_install();
  int rc = 0;
  for (step = first; step <= total; step++) {
    if (!dmx_batcher_next(&bt, &t->batch)) {
      dmx_batcher_begin_epoch(&bt, ++epoch);
      dmx_batcher_next(&bt, &t->batch);
    }
    dmx_batch_view v = batch_view(t, retrieval);
    dmx_model_step(t->model, &v, true, (uint64_t)step);
    if (t->ranks > 1) { /* the step's one all-reduce: the global batch's gradient on every rank */
      dmx_tensor spans[2];
      int n = dmx_model_grad_spans(t->model, spans);
      dmx_dp_rows rows = touched_rows(t);
      dmx_dp_sum_sparse(t->rt, spans, n, &rows);
    }
    float lr = dmx_learning_rate(&e->train, step, total);
    dmx_model_update(t->model, lr, step);
    since_log++;
    double now = dmx_now_seconds();
    bool out_of_time = e->train.time_budget_seconds > 0 && now - t0 >= e->train.time_budget_seconds;
    stop = dmx_dp_agree_stop(dmx_stop_signal(), &out_of_time); /* every rank stops after the same step */
    bool stopping = stop || out_of_time || step == total;
    if (step % log_every == 0 || stopping) {
      log_step(t, step, per_epoch, lr, 0);
      now = dmx_now_seconds();
      double ips = since_log * per_step / (now - tlog);
      progress(step, total, t->last_loss, ips, now - t0, e->train.time_budget_seconds);
      tlog = now;
      since_log = 0;
    }
    if (t->have_dev && (step % eval_every == 0 || (stopping && !stop))) {
      if (isatty(STDOUT_FILENO)) printf("\n");
      eval_result r = evaluate(t);
      log_eval(t, step, (double)step / per_epoch, &r);
      if (o->best_step < 0 || r.metric > o->best.metric) {
        o->best = r;
        o->best_step = step;
        if (dmx_dp_writer() && dmx_checkpoint_commit(t->model, e, t->run_dir, "best", NULL, err))
          fprintf(stderr, "datamux train: warning: best checkpoint not saved: %s\n", err->msg);
        else
          printf("  the best %s so far: saved best/\n", r.metric_name);
      }
      o->final = r;
      double after = dmx_now_seconds(); /* evaluation time is not training time */
      t0 += after - now;
      tlog = after;
    }
    o->train_seconds = dmx_now_seconds() - t0;
    if (step % save_every == 0 || stopping) {
      dmx_finish(t->rt); /* the step's queued work is training time, not checkpoint time */
      o->train_seconds = dmx_now_seconds() - t0;
      double before = dmx_now_seconds();
      if ((rc = save_last(t, &bt, step, total, o, err)) != 0) break;
      double after = dmx_now_seconds(); /* nor is checkpoint writing */
      t0 += after - before;
      tlog += after - before;
    }
    if (step == kill_step && dmx_kill_this_rank(t->rank)) raise(SIGKILL);
    if (stop) {
      char launch[64] = "";
      if (t->ranks > 1) snprintf(launch, sizeof launch, "mpirun -np %d ", t->ranks);
      printf("\n%s: checkpoint written after step %d. Resume with:\n  %sdatamux train %s --resume %s\n",
             stop == SIGINT ? "interrupted" : "terminated", step, launch, e->source_path[0] ? e->source_path : "",
             t->run_dir);
      o->exit_code = 128 + stop;
      break;
    }
    if (out_of_time) {
      printf("time budget of %.0f s reached at step %d\n", e->train.time_budget_seconds, step);
      break;
    }
  }
  dmx_stop_handlers_restore();
  o->step = step > total ? total : step;
  dmx_batcher_free(&bt);
  return rc;
}

static int run(const dmx_experiment *e, const char *resume_dir) {
  dmx_error err = {{0}};
  trainer t;
  dmx_train_state state, *resume = NULL;
  dmx_experiment from_ckpt;
  char ckpt[sizeof from_ckpt.model_path];
  if (resume_dir) {
    /* parameters come from the run's last checkpoint, not from the experiment's model_path */
    if (dmx_checkpoint_dir(resume_dir, "last", ckpt, sizeof ckpt, &err) || dmx_train_state_read(ckpt, &state, &err)) {
      fprintf(stderr, "datamux train: cannot resume: %s\n", err.msg);
      return 1;
    }
    if (dmx_dp_check_resume(resume_dir, state.world_size, &err)) {
      fprintf(stderr, "datamux train: %s\n", err.msg);
      return 2;
    }
    from_ckpt = *e;
    snprintf(from_ckpt.model_path, sizeof from_ckpt.model_path, "%s", ckpt);
    snprintf(from_ckpt.output_dir, sizeof from_ckpt.output_dir, "%s", resume_dir);
    e = &from_ckpt;
    resume = &state;
  }
  if (setup(&t, e, e->train.do_train, &err) || open_run_dir(&t, &err) ||
      (resume && dmx_optimizer_load(t.model, ckpt, state.step, &err))) {
    fprintf(stderr, "datamux train: %s\n", err.msg);
    teardown(&t);
    return 1;
  }
  if (resume && t.metrics) fprintf(t.metrics, "{\"event\": \"resume\", \"step\": %d}\n", state.step);
  train_outcome o = {.best_step = -1};
  double inst_per_s = 0;
  if (e->train.do_train) {
    int first = resume ? resume->step : 0;
    double seconds_before = resume ? resume->train_seconds : 0;
    if (train(&t, resume, &o, &err)) {
      fprintf(stderr, "datamux train: %s\n", err.msg);
      teardown(&t);
      return 1;
    }
    double secs = o.train_seconds - seconds_before;
    inst_per_s = secs > 0 ? (double)(o.step - first) * t.B * t.N * t.ranks / secs : 0;
    dmx_model_print_profile(t.model, stdout);
    dmx_tensor spans[2];
    size_t reduced = 0;
    for (int i = 0, n = dmx_model_grad_spans(t.model, spans); i < n; i++) reduced += spans[i].n;
    dmx_dp_report(secs, reduced, stdout);
    printf("trained %d steps in %.1f s: %.1f instances/s (%.3f s/step)\n", o.step - first, secs, inst_per_s,
           o.step > first ? secs / (o.step - first) : 0);
    if (o.exit_code) {
      teardown(&t);
      return o.exit_code;
    }
  } else if (t.have_dev) {
    o.final = evaluate(&t);
    log_eval(&t, 0, 0, &o.final);
    o.best = o.final;
    o.best_step = 0;
  }
  if (t.have_dev) {
    if (o.best.metric_name[0] == 0) {
      /* resumed after the best evaluation: trainer_state.json kept its step and metric value, not
       * the other measures of that evaluation, which results.json then gives as null */
      double value = o.best.metric;
      o.best = o.final;
      o.best.metric = value;
      o.best.accuracy = o.best.f1 = o.best.precision = o.best.recall = NAN;
      o.best.retrieval_accuracy = o.best.retrieval_loss = o.best.task_loss = NAN;
      if (!strcmp(o.best.metric_name, "accuracy")) o.best.accuracy = value;
      if (!strcmp(o.best.metric_name, "f1")) o.best.f1 = value;
    }
    printf("final dev %s: %.4f; best %.4f at step %d\n", o.final.metric_name, o.final.metric, o.best.metric,
           o.best_step);
    if (dmx_dp_writer() && write_results(&t, &o.final, &o.best, o.best_step, o.step, o.train_seconds, inst_per_s, &err))
      fprintf(stderr, "datamux train: %s\n", err.msg);
    if (dmx_dp_writer()) dmx_plot_run_curves(t.run_dir);
  }
  printf("run directory: %s\n", t.run_dir);
  teardown(&t);
  return 0;
}

int dmx_run_experiment(const dmx_experiment *e) { return run(e, NULL); }

int dmx_resume_experiment(const dmx_experiment *e, const char *run_dir) { return run(e, run_dir); }

int dmx_run_eval(const dmx_experiment *e) {
  dmx_error err = {{0}};
  trainer t;
  if (dmx_task_is_vision(e->task.name)) {
    fprintf(stderr,
            "datamux eval: vision task %s: evaluate with `datamux train EXP.yaml --set training.do_train=false "
            "--model_path RUN --output_dir NEW_DIR` (it writes results.json there)\n",
            e->task.name);
    return 2;
  }
  if (!e->model_path[0]) {
    fprintf(stderr, "datamux eval: give the model to evaluate with --model_path RUN_DIR\n");
    return 2;
  }
  if (setup(&t, e, false, &err)) {
    fprintf(stderr, "datamux eval: %s\n", err.msg);
    teardown(&t);
    return 1;
  }
  eval_result r = evaluate(&t);
  log_eval(&t, 0, 0, &r);
  teardown(&t);
  return 0;
}
