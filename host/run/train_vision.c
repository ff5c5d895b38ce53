/* The vision training loop (docs/datamux-spec.md §4): IDX data, centre crops, epochs of random
 * batches (each instance slot walks its own shuffle of the training set), evaluation on the test
 * split where instance slot i sees the test set in its own fixed order, so every slot is scored
 * on every test image. Inside a step only the images and labels go to the device; the loss and
 * predictions come back at log and evaluation intervals. */
#include "host/run/train_vision.h"
#include "host/run/rundir.h"
#include "host/run/train_state.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "data/idx.h"
#include "host/runtime/runtime.h"
#include "host/formats/safetensors.h"
#include "host/run/data_parallel.h"
#include "host/run/experiment_runtime.h"
#include "layers/vision_model.h"

#define FASHION_SYSTEM_DIR "/usr/share/datasets/fashion-mnist"

typedef struct {
  const dmx_experiment *e;
  dmx_runtime *rt;
  dmx_vision_model *m;
  int N, B, S, P, classes; /* B: groups of this rank's shard of the ranks * B of a step */
  int rank, ranks;
  int n_train, n_test;
  float *train_x, *test_x; /* (n, S*S) crops in [0, 1] */
  uint8_t *train_y, *test_y;
  float *bx;            /* (N*B, S*S) the step's images */
  int32_t *by, *pred;   /* (N*B) */
  uint32_t **perm;      /* per instance: training order of the epoch */
  uint32_t **test_perm; /* per instance: test order */
  FILE *metrics;
  char run_dir[1024];
} vtrainer;

/* ------------------------------------------------------------------ data */

/* dir/base(.gz) -> out when either exists */
static bool find_in(const char *dir, const char *base, char *out, size_t cap) {
  const char *ext[2] = {".gz", ""};
  for (int k = 0; k < 2; k++) {
    snprintf(out, cap, "%s/%s%s", dir, base, ext[k]);
    if (dmx_is_file(out)) return true;
  }
  return false;
}

int dmx_vision_split_paths(const dmx_experiment *e, const char *split, char *images, char *labels, size_t cap,
                           dmx_error *err) {
  bool train = !strcmp(split, "train");
  const char *given = train ? e->task.train_file : e->task.eval_file;
  if (given[0]) {
    const char *comma = strchr(given, ',');
    if (comma) {
      snprintf(images, cap, "%.*s", (int)(comma - given), given);
      snprintf(labels, cap, "%s", comma + 1);
    } else {
      snprintf(images, cap, "%s", given);
      if (dmx_idx_labels_path(images, labels, cap))
        return dmx_fail(err,
                        "%s: cannot tell the labels file from this name (no 'images-idx3' in it); give "
                        "task.%s as \"IMAGES,LABELS\"",
                        given, train ? "train_file" : "eval_file");
    }
    return 0;
  }
  const char *t = e->task.name;
  char dirs[2][1100];
  int nd = 0;
  if (!strcmp(t, "idx"))
    snprintf(dirs[nd++], sizeof dirs[0], "%s", e->task.data_dir);
  else
    snprintf(dirs[nd++], sizeof dirs[0], "%s/%s", e->task.data_dir, !strcmp(t, "mnist") ? "mnist" : "fashion-mnist");
  if (!strcmp(t, "fashion_mnist")) snprintf(dirs[nd++], sizeof dirs[0], "%s", FASHION_SYSTEM_DIR);
  const char *pre = train ? "train" : "t10k";
  char ib[64], lb[64];
  snprintf(ib, sizeof ib, "%s-images-idx3-ubyte", pre);
  snprintf(lb, sizeof lb, "%s-labels-idx1-ubyte", pre);
  for (int d = 0; d < nd; d++)
    if (find_in(dirs[d], ib, images, cap) && find_in(dirs[d], lb, labels, cap)) return 0;
  return dmx_fail(err, "%s %s split not found: looked for %s(.gz) and %s(.gz) in %s%s%s (%s)", t, split, ib, lb,
                  dirs[0], nd > 1 ? " and " : "", nd > 1 ? dirs[1] : "",
                  !strcmp(t, "mnist")           ? "data/fetch.sh --only mnist downloads MNIST"
                  : !strcmp(t, "fashion_mnist") ? "Debian: apt-get install dataset-fashion-mnist"
                                                : "set task.train_file / task.eval_file");
}

/* Loads a split, keeps the first max_rows, and centre-crops to S x S floats in [0, 1]. */
static int load_split(vtrainer *t, const char *split, int max_rows, float **x, uint8_t **y, int *n, int *classes,
                      dmx_error *err) {
  char ip[1200], lp[1200];
  if (dmx_vision_split_paths(t->e, split, ip, lp, sizeof ip, err)) return -1;
  dmx_idx_set s;
  if (dmx_idx_load(ip, lp, &s, err)) return -1;
  if (s.rows < t->S || s.cols < t->S) {
    dmx_fail(err, "%s: %dx%d images are smaller than vision.crop %d", ip, s.rows, s.cols, t->S);
    dmx_idx_free(&s);
    return -1;
  }
  *n = max_rows > 0 && s.n > max_rows ? max_rows : s.n;
  *classes = s.num_classes;
  int r0 = (s.rows - t->S) / 2, c0 = (s.cols - t->S) / 2; /* 28 -> 20 trims 4 pixels per side */
  *x = dmx_malloc((size_t)*n * t->P * sizeof(float));
  *y = dmx_malloc((size_t)*n);
  for (int i = 0; i < *n; i++) {
    const uint8_t *img = s.pixels + (size_t)i * s.rows * s.cols;
    for (int r = 0; r < t->S; r++)
      for (int c = 0; c < t->S; c++) (*x)[(size_t)i * t->P + r * t->S + c] = img[(r + r0) * s.cols + c + c0] / 255.0f;
    (*y)[i] = s.labels[i];
  }
  printf("%s: %d of %d images (%dx%d, centre crop %d), %d classes, from %s\n", split, *n, s.n, s.rows, s.cols, t->S,
         s.num_classes, ip);
  dmx_idx_free(&s);
  return 0;
}

static void shuffle(uint32_t *p, int n, uint64_t *rng) {
  for (int i = 0; i < n; i++) p[i] = (uint32_t)i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)dmx_rand_below(rng, (uint64_t)i + 1);
    uint32_t tmp = p[i];
    p[i] = p[j];
    p[j] = tmp;
  }
}

/* ------------------------------------------------------------------ set-up */

/* Loads parameters saved by save_checkpoint: model_path is the file, a folder holding
 * model.safetensors, or a run directory (its best/ checkpoint). Shapes must match exactly. */
static int load_checkpoint(vtrainer *t, const char *model_path, dmx_error *err) {
  char path[1200];
  snprintf(path, sizeof path, "%s", model_path);
  if (!dmx_is_file(path)) snprintf(path, sizeof path, "%s/model.safetensors", model_path);
  if (!dmx_is_file(path)) snprintf(path, sizeof path, "%s/best/model.safetensors", model_path);
  if (!dmx_is_file(path))
    return dmx_fail(err,
                    "%s: no vision checkpoint there (looked for the file, model.safetensors and "
                    "best/model.safetensors)",
                    model_path);
  dmx_st_file *f = dmx_st_load(path, err);
  if (!f) return -1;
  int rc = 0;
  for (int i = 0; i < dmx_vision_model_num_params(t->m) && !rc; i++) {
    const dmx_vparam *p = dmx_vision_model_param(t->m, i);
    int64_t shape[4];
    for (int k = 0; k < p->ndim; k++) shape[k] = p->shape[k];
    float *h = dmx_malloc(p->n * sizeof(float));
    rc = dmx_st_expect_shape(f, p->name, p->ndim, shape, err);
    if (!rc) rc = dmx_st_get_f32(f, p->name, h, p->n, err);
    if (!rc) dmx_upload(t->rt, *p->t, h, p->n * sizeof(float));
    free(h);
  }
  dmx_st_free(f);
  if (rc) return -1; /* the safetensors reader's messages name the file */
  printf("loaded parameters from %s\n", path);
  return 0;
}

static int setup(vtrainer *t, const dmx_experiment *e, dmx_error *err) {
  memset(t, 0, sizeof *t);
  t->e = e;
  t->N = e->mux.num_instances;
  t->B = e->train.batch_size;
  t->rank = dmx_dist_world()->rank;
  t->ranks = dmx_dist_world()->size;
  t->S = e->vision.crop;
  t->P = t->S * t->S;
  int ctrain = 0, ctest = 0;
  if (e->train.do_train &&
      load_split(t, "train", e->task.max_train_examples, &t->train_x, &t->train_y, &t->n_train, &ctrain, err))
    return -1;
  if (load_split(t, "test", e->task.max_eval_examples, &t->test_x, &t->test_y, &t->n_test, &ctest, err)) return -1;
  t->classes = ctrain > ctest ? ctrain : ctest;
  if (!strcmp(e->task.name, "mnist") || !strcmp(e->task.name, "fashion_mnist")) t->classes = 10;
  if (t->classes < 2) return dmx_fail(err, "the labels have %d class(es); need at least 2", t->classes);
  if (e->train.do_train && t->n_train < t->B * t->ranks)
    return dmx_fail(err, "%d training images are fewer than one batch of %d groups", t->n_train, t->B * t->ranks);
  size_t R = (size_t)t->N * t->B;
  t->bx = dmx_malloc(R * t->P * sizeof(float));
  t->by = dmx_malloc(R * sizeof(int32_t));
  t->pred = dmx_malloc(R * sizeof(int32_t));
  t->perm = dmx_calloc((size_t)t->N, sizeof *t->perm);
  t->test_perm = dmx_calloc((size_t)t->N, sizeof *t->test_perm);
  uint64_t rng = (uint64_t)e->train.seed * 0x9E3779B97F4A7C15ULL + 99;
  for (int i = 0; i < t->N; i++) {
    t->test_perm[i] = dmx_malloc((size_t)t->n_test * sizeof(uint32_t));
    shuffle(t->test_perm[i], t->n_test, &rng);
    if (i == 0)
      for (int k = 0; k < t->n_test; k++) t->test_perm[0][k] = (uint32_t)k; /* slot 0: file order */
    if (t->n_train) t->perm[i] = dmx_malloc((size_t)t->n_train * sizeof(uint32_t));
  }
  t->rt = dmx_experiment_runtime(e, NULL, false, stdout);
  dmx_dp_announce(t->rt, stdout);
  t->m = dmx_vision_model_create(t->rt, &e->vision, t->N, t->B, t->classes, err);
  if (!t->m) return -1;
  dmx_vision_model_set_loss_batch(t->m, t->B * t->ranks);
  dmx_vision_model_init(t->m, (uint64_t)e->train.seed);
  if (e->model_path[0] && load_checkpoint(t, e->model_path, err)) return -1;
  dmx_dp_bcast_arena(t->rt, dmx_vision_model_param_arena(t->m)); /* every rank starts from rank 0's */
  printf(
      "model: %s, muxing %s, N=%d, %d groups per step, loss %s, optimizer %s, %zu trainable parameters, %.1f MiB "
      "on the device\n",
      e->vision.model == DMX_VMODEL_LENET ? "lenet" : "mlp", dmx_vision_muxing_name(e->vision.muxing), t->N, t->B,
      e->vision.loss == DMX_VLOSS_MSE ? "mse" : "xent", e->vision.optimizer == DMX_VOPT_SGD ? "sgd" : "adamw",
      dmx_vision_model_trainable_floats(t->m), dmx_vision_model_device_bytes(t->m) / 1048576.0);
  return 0;
}

static void teardown(vtrainer *t) {
  if (t->metrics) fclose(t->metrics);
  dmx_vision_model_free(t->m);
  if (t->rt) dmx_runtime_destroy(t->rt);
  for (int i = 0; t->perm && i < t->N; i++) free(t->perm[i]);
  for (int i = 0; t->test_perm && i < t->N; i++) free(t->test_perm[i]);
  free(t->perm);
  free(t->test_perm);
  free(t->train_x);
  free(t->train_y);
  free(t->test_x);
  free(t->test_y);
  free(t->bx);
  free(t->by);
  free(t->pred);
}

static int open_run_dir(vtrainer *t, dmx_error *err) {
  if (!dmx_dp_writer()) { /* rank 0 writes the run directory; the others only name it */
    snprintf(t->run_dir, sizeof t->run_dir, "%s", t->e->output_dir);
    return 0;
  }
  return dmx_open_run_dir(t->e, t->run_dir, sizeof t->run_dir, &t->metrics, err);
}

/* ------------------------------------------------------------------ evaluation */

typedef struct {
  double mean_accuracy, loss, acc[64];
  int examples;
  double seconds;
} veval;

/* Every instance slot sees every test image once, in its own order; the last step is padded by
 * wrapping around, and padded rows are not scored. With several ranks each step's groups are
 * shared out as in training and the counts added. */
static veval evaluate(vtrainer *t) {
  veval r = {0};
  int N = t->N, B = t->B, P = t->P, off = t->rank * B;
  double correct[65] = {0}; /* per slot, then the loss sum; exact as integers far past 2^31 */
  double loss = 0;
  int steps = 0;
  double t0 = dmx_now_seconds();
  for (int g0 = 0; g0 < t->n_test; g0 += B * t->ranks) {
    for (int i = 0; i < N; i++)
      for (int b = 0; b < B; b++) {
        uint32_t k = t->test_perm[i][(g0 + off + b) % t->n_test];
        memcpy(t->bx + ((size_t)i * B + b) * P, t->test_x + (size_t)k * P, (size_t)P * sizeof(float));
        t->by[i * B + b] = t->test_y[k];
      }
    dmx_vision_model_step(t->m, t->bx, t->by, false);
    dmx_vision_model_predictions(t->m, t->pred);
    loss += dmx_vision_model_loss(t->m);
    steps++;
    for (int i = 0; i < N; i++)
      for (int b = 0; b < B && g0 + off + b < t->n_test; b++) correct[i] += t->pred[i * B + b] == t->by[i * B + b];
  }
  correct[N] = loss;
  dmx_dist_sum_f64(correct, (size_t)N + 1);
  loss = correct[N] / t->ranks; /* each rank's is a mean over its shard's equal share */
  for (int i = 0; i < N; i++) {
    r.acc[i] = (double)correct[i] / t->n_test;
    r.mean_accuracy += r.acc[i] / N;
  }
  r.loss = steps ? loss / steps : 0;
  r.examples = t->n_test;
  r.seconds = dmx_now_seconds() - t0;
  return r;
}

static void json_accs(FILE *f, const veval *r, int N) {
  fputc('[', f);
  for (int i = 0; i < N; i++) fprintf(f, "%s%.6f", i ? ", " : "", r->acc[i]);
  fputc(']', f);
}

static void log_eval(vtrainer *t, int step, double epoch, const veval *r) {
  printf("eval step %d (epoch %.2f): mean accuracy %.4f, loss %.4f, per instance", step, epoch, r->mean_accuracy,
         r->loss);
  for (int i = 0; i < t->N; i++) printf(" %.4f", r->acc[i]);
  printf(" (%d test images per instance, %.1f s)\n", r->examples, r->seconds);
  fflush(stdout);
  if (!t->metrics) return;
  fprintf(t->metrics,
          "{\"event\": \"eval\", \"step\": %d, \"epoch\": %.4f, \"eval_mean_accuracy\": %.6f, "
          "\"eval_loss\": %.6f, \"eval_accuracy_per_instance\": ",
          step, epoch, r->mean_accuracy, r->loss);
  json_accs(t->metrics, r, t->N);
  fprintf(t->metrics, ", \"eval_examples\": %d}\n", r->examples);
  fflush(t->metrics);
}

/* ------------------------------------------------------------------ checkpoints */

/* model.safetensors: every parameter by name (a few MB at most, so cheap). */
static int write_params(vtrainer *t, const char *dir, dmx_error *err) {
  char path[1300];
  int np = dmx_vision_model_num_params(t->m);
  float **bufs = dmx_calloc((size_t)np, sizeof *bufs);
  dmx_st_writer *w = dmx_st_writer_new();
  int rc = dmx_st_writer_meta(w, "format", "datamux-cl vision", err);
  if (!rc) rc = dmx_st_writer_meta(w, "muxing", dmx_vision_muxing_name(t->e->vision.muxing), err);
  for (int i = 0; i < np && !rc; i++) {
    const dmx_vparam *p = dmx_vision_model_param(t->m, i);
    bufs[i] = dmx_malloc(p->n * sizeof(float));
    dmx_download(t->rt, bufs[i], *p->t, p->n * sizeof(float));
    int64_t shape[4];
    for (int k = 0; k < p->ndim; k++) shape[k] = p->shape[k];
    rc = dmx_st_writer_add(w, p->name, DMX_ST_F32, p->ndim, shape, bufs[i], err);
  }
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  if (!rc) rc = dmx_st_writer_write(w, path, err);
  dmx_st_writer_free(w);
  for (int i = 0; i < np; i++) free(bufs[i]);
  free(bufs);
  return rc;
}

typedef struct {
  vtrainer *t;
  const dmx_train_state *state; /* NULL: best/ (parameters only) */
} vcommit;

static int fill_checkpoint(void *p, const char *dir, dmx_error *err) {
  vcommit *c = p;
  if (write_params(c->t, dir, err)) return -1;
  if (!c->state) return 0;
  if (dmx_moments_save(c->t->rt, dmx_vision_model_adam_state(c->t->m, 0), dmx_vision_model_adam_state(c->t->m, 1), dir,
                       c->state->step, err))
    return -1;
  return dmx_train_state_write(dir, c->state, err);
}

/* <run>/<which>/, atomically (host/run/train_state.h); last/ with the trainer state. */
static int save_checkpoint(vtrainer *t, const char *which, const dmx_train_state *state, dmx_error *err) {
  if (state) dmx_dp_check_same(t->rt, dmx_vision_model_param_arena(t->m), "parameters");
  if (!dmx_dp_writer()) return 0;
  vcommit c = {t, state};
  return dmx_checkpoint_swap(t->run_dir, which, fill_checkpoint, &c, err);
}

/* ------------------------------------------------------------------ the run */

static int write_results(vtrainer *t, const veval *final, const veval *best, int best_step, int steps, double secs,
                         double ips, double eval_ips, dmx_error *err) {
  char *text = NULL, path[1100];
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return dmx_fail(err, "open_memstream failed: %s", strerror(errno));
  const dmx_experiment *e = t->e;
  fprintf(f, "{\n  \"task\": \"%s\",\n  \"model\": \"%s\",\n  \"muxing\": \"%s\",\n  \"num_instances\": %d,\n",
          e->task.name, e->vision.model == DMX_VMODEL_LENET ? "lenet" : "mlp", dmx_vision_muxing_name(e->vision.muxing),
          t->N);
  fprintf(f, "  \"groups_per_step\": %d,\n  \"steps\": %d,\n  \"train_seconds\": %.2f,\n", t->B, steps, secs);
  fprintf(f, "  \"train_images_per_second\": %.2f,\n  \"eval_images_per_second\": %.2f,\n", ips, eval_ips);
  fprintf(f, "  \"final\": {\"mean_accuracy\": %.6f, \"loss\": %.6f, \"examples\": %d, \"accuracy_per_instance\": ",
          final->mean_accuracy, final->loss, final->examples);
  json_accs(f, final, t->N);
  fprintf(f, "},\n  \"best\": {\"step\": %d, \"mean_accuracy\": %.6f, \"accuracy_per_instance\": ", best_step,
          best->mean_accuracy);
  json_accs(f, best, t->N);
  fprintf(f, "}\n}\n");
  fclose(f);
  snprintf(path, sizeof path, "%s/results.json", t->run_dir);
  int rc = dmx_write_file_atomic(path, text, len, err);
  free(text);
  return rc;
}

/* Runs steps first..total; resume (NULL: a fresh run) restores the data order and best result of
 * a last/ checkpoint whose parameters and moments are already loaded. Every instance slot walks
 * its own shuffle per epoch; each epoch's shuffles restart from the identity, so the order is a
 * function of the RNG state before them, which is what last/ keeps ("rng", with "epoch" and
 * "next_row", the batch position within the epoch). */
static int vrun(const dmx_experiment *e, const char *resume_dir) {
  dmx_error err = {{0}};
  vtrainer t;
  dmx_train_state state = {0};
  char ckpt[1100] = "";
  if (resume_dir) {
    if (dmx_checkpoint_dir(resume_dir, "last", ckpt, sizeof ckpt, &err) || dmx_train_state_read(ckpt, &state, &err)) {
      fprintf(stderr, "datamux train: cannot resume: %s\n", err.msg);
      return 1;
    }
    if (dmx_dp_check_resume(resume_dir, state.world_size, &err)) {
      fprintf(stderr, "datamux train: %s\n", err.msg);
      return 2;
    }
  }
  dmx_experiment ex = *e;
  if (resume_dir) {
    int n = snprintf(ex.model_path, sizeof ex.model_path, "%s/model.safetensors", ckpt);
    if (n < 0 || (size_t)n >= sizeof ex.model_path) {
      fprintf(stderr, "datamux train: cannot resume: the path %s/model.safetensors is over %zu bytes\n", ckpt,
              sizeof ex.model_path - 1);
      return 1;
    }
  }
  int rc = setup(&t, &ex, &err);
  t.e = e; /* the run's own experiment from here on (model_path pointed setup at the checkpoint) */
  if (rc ||
      (resume_dir && dmx_moments_load(t.rt, dmx_vision_model_adam_state(t.m, 0), dmx_vision_model_adam_state(t.m, 1),
                                      ckpt, state.step, &err)) ||
      open_run_dir(&t, &err)) {
    fprintf(stderr, "datamux train: %s\n", err.msg);
    teardown(&t);
    return 1;
  }
  int N = t.N, B = t.B, P = t.P, Bg = B * t.ranks, off = t.rank * B; /* the global batch, this shard's start */
  veval final = {0}, best = {0};
  int best_step = -1, step = 0, exit_code = 0;
  double secs = 0, ips = 0;
  if (e->train.do_train) {
    int per_epoch = t.n_train / Bg; /* drop_last: every instance slot walks its own shuffle */
    int total = e->train.max_steps > 0 ? e->train.max_steps : (int)ceil(e->train.epochs * per_epoch);
    int eval_every = e->train.eval_interval > 0 ? e->train.eval_interval : per_epoch;
    int log_every = e->train.log_interval > 0 ? e->train.log_interval : 100;
    uint64_t rng = (uint64_t)e->train.seed * 0x2545F4914F6CDD1DULL + 5, rng_epoch = rng;
    int pos = per_epoch, epoch = 0, first = 1; /* pos: batch index within the epoch */
    double prior_seconds = 0;
    if (resume_dir) {
      if (state.total_steps != total) {
        fprintf(stderr, "datamux train: cannot resume %s: its schedule has %d steps, this experiment %d\n", resume_dir,
                state.total_steps, total);
        teardown(&t);
        return 2;
      }
      rng = rng_epoch = state.rng;
      epoch = state.epoch;
      for (int i = 0; i < N; i++) shuffle(t.perm[i], t.n_train, &rng);
      pos = state.next_row;
      first = state.step + 1;
      best_step = state.best_step;
      best.mean_accuracy = state.best_metric;
      prior_seconds = state.train_seconds;
      printf("resuming %s at step %d of %d (epoch %d, batch %d)\n", resume_dir, first, total, epoch, pos);
    }
    printf("training: %d steps (%d per epoch) of %d groups x N=%d = %d images, lr %g, eval every %d steps\n", total,
           per_epoch, Bg, N, Bg * N, e->train.learning_rate, eval_every);
    if (t.ranks > 1) printf("  each step: %d ranks of %d groups; gradients summed over the ranks\n", t.ranks, B);
    double t0 = dmx_now_seconds() - prior_seconds, tlog = dmx_now_seconds();
    int since_log = 0, kill_step = dmx_kill_at_step();
    dmx_stop_handlers_install();
    for (step = first; step <= total; step++) {
      if (pos == per_epoch) {
        rng_epoch = rng;
        for (int i = 0; i < N; i++) shuffle(t.perm[i], t.n_train, &rng);
        pos = 0;
        epoch++;
      }
      for (int i = 0; i < N; i++)
        for (int b = 0; b < B; b++) {
          uint32_t k = t.perm[i][pos * Bg + off + b];
          memcpy(t.bx + ((size_t)i * B + b) * P, t.train_x + (size_t)k * P, (size_t)P * sizeof(float));
          t.by[i * B + b] = t.train_y[k];
        }
      pos++;
      dmx_vision_model_step(t.m, t.bx, t.by, true);
      if (t.ranks > 1) { /* the step's one all-reduce: the global batch's gradient on every rank */
        dmx_tensor g = dmx_vision_model_grads(t.m);
        dmx_dp_sum_tensors(t.rt, &g, 1);
      }
      float lr = dmx_learning_rate(&e->train, step, total);
      dmx_vision_model_update(t.m, lr, step, &e->train);
      since_log++;
      double now = dmx_now_seconds();
      bool out_of_time = e->train.time_budget_seconds > 0 && now - t0 >= e->train.time_budget_seconds;
      int stop = dmx_dp_agree_stop(dmx_stop_signal(), &out_of_time); /* every rank stops after the same step */
      if (step % log_every == 0 || step == total || out_of_time) {
        float loss = dmx_vision_model_loss(t.m); /* the log interval's only sync */
        dmx_vision_model_predictions(t.m, t.pred);
        double v[2] = {loss, 0};
        for (int r = 0; r < N * B; r++) v[1] += t.pred[r] == t.by[r];
        dmx_dist_sum_f64(v, 2);
        loss = (float)(v[0] / t.ranks);
        double accuracy = v[1] / ((double)N * Bg);
        now = dmx_now_seconds();
        double rate = since_log * (double)N * Bg / (now - tlog);
        printf("step %d/%d  loss %.4f  batch accuracy %.3f  %.1f images/s\n", step, total, loss, accuracy, rate);
        if (t.metrics) {
          fprintf(t.metrics,
                  "{\"event\": \"log\", \"step\": %d, \"epoch\": %.4f, \"loss\": %.6f, \"train_accuracy\": %.6f, "
                  "\"learning_rate\": %.8g, \"images_per_second\": %.2f}\n",
                  step, (double)step / per_epoch, loss, accuracy, lr, rate);
          fflush(t.metrics);
        }
        tlog = now;
        since_log = 0;
      }
      if (e->train.do_eval && !stop && (step % eval_every == 0 || step == total || out_of_time)) {
        veval r = evaluate(&t);
        log_eval(&t, step, (double)step / per_epoch, &r);
        if (best_step < 0 || r.mean_accuracy > best.mean_accuracy) {
          best = r;
          best_step = step;
          if (save_checkpoint(&t, "best", NULL, &err)) fprintf(stderr, "datamux train: warning: %s\n", err.msg);
        }
        final = r;
        double after = dmx_now_seconds();
        t0 += after - now; /* evaluation time is not training throughput */
        tlog = after;
      }
      int save_every = e->train.save_interval > 0 ? e->train.save_interval : eval_every;
      bool stopping = stop || out_of_time || step == total;
      if (stopping || step % save_every == 0) {
        dmx_finish(t.rt); /* the step's queued work is training time, not checkpoint time */
        double before = dmx_now_seconds();
        dmx_train_state s = {.step = step,
                             .total_steps = total,
                             .epoch = epoch,
                             .next_row = pos,
                             .rng = rng_epoch,
                             .best_step = best_step,
                             .best_metric = best_step >= 0 ? best.mean_accuracy : 0,
                             .train_seconds = before - t0,
                             .world_size = t.ranks};
        if (save_checkpoint(&t, "last", &s, &err)) {
          fprintf(stderr, "datamux train: %s\n", err.msg);
          dmx_stop_handlers_restore();
          teardown(&t);
          return 1;
        }
        double after = dmx_now_seconds(); /* nor is checkpoint writing */
        t0 += after - before;
        tlog += after - before;
      }
      if (step == kill_step && dmx_kill_this_rank(t.rank)) raise(SIGKILL);
      if (stop) {
        char launch[64] = "";
        if (t.ranks > 1) snprintf(launch, sizeof launch, "mpirun -np %d ", t.ranks);
        printf("%s at step %d: last/ written; continue with `%sdatamux train --resume %s`\n",
               stop == SIGINT ? "interrupted" : "terminated", step, launch, t.run_dir);
        exit_code = 128 + stop;
        break;
      }
      if (out_of_time) {
        printf("time budget of %.0f s reached at step %d\n", e->train.time_budget_seconds, step);
        break;
      }
    }
    dmx_stop_handlers_restore();
    if (step > total) step = total;
    dmx_finish(t.rt);
    secs = dmx_now_seconds() - t0;
    double run_secs = secs - prior_seconds; /* this process's share: a resumed run's own throughput */
    ips = run_secs > 0 ? (double)(step - first + 1) * N * Bg / run_secs : 0;
    printf("trained %d steps in %.1f s: %.1f images/s\n", step, secs, ips);
    dmx_dp_report(run_secs, dmx_vision_model_grads(t.m).n, stdout);
    if (exit_code) {
      teardown(&t);
      return exit_code;
    }
  } else {
    final = evaluate(&t);
    log_eval(&t, 0, 0, &final);
    best = final;
    best_step = 0;
  }
  double eval_ips = final.seconds > 0 ? (double) final.examples * N / final.seconds : 0;
  printf("final test mean accuracy %.4f (best %.4f at step %d); evaluation %.1f images/s\n", final.mean_accuracy,
         best.mean_accuracy, best_step, eval_ips);
  if (dmx_dp_writer() && write_results(&t, &final, &best, best_step, step, secs, ips, eval_ips, &err))
    fprintf(stderr, "datamux train: %s\n", err.msg);
  if (dmx_dp_writer()) dmx_plot_run_curves(t.run_dir);
  printf("run directory: %s\n", t.run_dir);
  teardown(&t);
  return 0;
}

int dmx_run_vision_experiment(const dmx_experiment *e) { return vrun(e, NULL); }

int dmx_resume_vision_experiment(const dmx_experiment *e, const char *run_dir) { return vrun(e, run_dir); }
