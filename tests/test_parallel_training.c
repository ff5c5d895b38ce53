/* Data-parallel training under mpirun (README.md, Several devices and machines), through the
 * datamux binary: 2 ranks x batch B train the parameters of 1 rank x batch 2B (same global batch,
 * same order; the sums differ in order only) for a text and a vision model; a job killed on one
 * rank fails as a whole, keeps its last checkpoint, and resumes under mpirun bit for bit; SIGTERM
 * to the ranks writes one coordinated last/; a rank that fails at start-up ends the job with a message
 * naming it; a resume under another world size and other commands under mpirun are refused.
 * Needs DATAMUX_MPIRUN (set by CMake when Open MPI is there) and DATAMUX_DATA. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/base/common.h"
#include "host/formats/safetensors.h"
#include "host/run/train_state.h"
#include "tests/harness.h"

static char out[1 << 17];
static char root[256];
static const char *mpirun;

/* Text: a micro model at N=2 with task and retrieval losses, no dropout (each rank draws its own
 * masks, so only a dropout-free run can equal one process). */
#define TEXT_ARGS                                                                                  \
  "experiments/quickstart.yaml --config_name experiments/models/micro.yaml --set model_path= "     \
  "--max_steps 10 --set task.max_length=16 --set training.eval_interval=5 "                        \
  "--set training.save_interval=5 --set training.log_interval=5 --set task.max_train_examples=400 " \
  "--set task.max_eval_examples=64 --set training.time_budget_seconds=0 "                          \
  "--set training.task_loss_coeff=0.9 --set training.retrieval_loss_coeff=0.1 "                    \
  "--set model.hidden_dropout=0 --set model.attention_dropout=0"
#define VISION_ARGS                                                                         \
  "experiments/vision/cpu_fashion.yaml --set task.max_train_examples=256 "                  \
  "--set task.max_eval_examples=64 --set training.max_steps=10 --set training.eval_interval=5 " \
  "--set training.save_interval=5 --set training.log_interval=5 --set training.time_budget_seconds=0"
/* With dropout, retrieval picks and saves at 4 and 8: what a resumed job must reproduce. */
#define RESUME_ARGS                                                                                \
  "experiments/quickstart.yaml --config_name experiments/models/micro.yaml --set model_path= "     \
  "--max_steps 12 --set task.max_length=16 --set training.eval_interval=6 --batch_size 2 "         \
  "--set training.save_interval=4 --set training.log_interval=3 --set task.max_train_examples=400 " \
  "--set task.max_eval_examples=64 --set training.time_budget_seconds=0 "                          \
  "--set training.task_loss_coeff=0.9 --set training.retrieval_loss_coeff=0.1"

#define run(...) th_runf(out, sizeof out, __VA_ARGS__)

/* How far apart two checkpoints are: over all tensors |a - b| / |a| (2-norms), and the largest
 * such ratio of one tensor (its name in worst). Attention key biases are left out of the latter:
 * their gradient is zero in exact arithmetic (a softmax does not change when every score of a row
 * moves by the same amount), so they hold AdamW's steps on rounding noise, ±lr each, which no two
 * summation orders share. -1 when the files cannot be compared. */
static double compare(const char *fa, const char *fb, double *whole, char *worst, size_t cap) {
  dmx_error err;
  dmx_st_file *a = dmx_st_load(fa, &err), *b = a ? dmx_st_load(fb, &err) : NULL;
  double max = -1, d_all = 0, n_all = 0;
  if (!a || !b || dmx_st_count(a) != dmx_st_count(b)) {
    snprintf(worst, cap, "%.200s", a && b ? "tensor counts differ" : err.msg);
    goto done;
  }
  max = 0;
  for (size_t i = 0; i < dmx_st_count(a); i++) {
    const dmx_st_tensor *ta = dmx_st_at(a, i), *tb = dmx_st_find(b, ta->name);
    if (!tb || tb->numel != ta->numel || ta->dtype != DMX_ST_F32) {
      snprintf(worst, cap, "%s: missing or reshaped", ta->name);
      max = -1;
      goto done;
    }
    float *x = dmx_malloc(ta->numel * sizeof(float)), *y = dmx_malloc(ta->numel * sizeof(float));
    memcpy(x, ta->data, ta->numel * sizeof(float));
    memcpy(y, tb->data, ta->numel * sizeof(float));
    double d = 0, n = 0;
    for (size_t k = 0; k < ta->numel; k++) {
      d += ((double)x[k] - y[k]) * ((double)x[k] - y[k]);
      n += (double)x[k] * x[k];
    }
    d_all += d;
    n_all += n;
    double r = n > 0 ? sqrt(d / n) : sqrt(d);
    if (r > max && !strstr(ta->name, "attention.self.key.bias")) {
      max = r;
      snprintf(worst, cap, "%s", ta->name);
    }
    free(x);
    free(y);
  }
  *whole = n_all > 0 ? sqrt(d_all / n_all) : sqrt(d_all);
done:
  if (a) dmx_st_free(a);
  if (b) dmx_st_free(b);
  return max;
}

/* The "loss" of the last log line of a run's metrics.jsonl; NAN when there is none. */
static double last_logged_loss(const char *dir) {
  char path[600];
  snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
  dmx_error err;
  size_t len;
  char *text = dmx_read_file(path, &len, &err);
  if (!text) return NAN;
  double loss = NAN;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    char *p = strstr(line, "\"loss\": ");
    if (strstr(line, "\"event\": \"log\"") && p) loss = atof(p + 8);
  }
  free(text);
  return loss;
}

static void same_training(const char *what, const char *args, const char *one_batch, const char *two_batch) {
  char title[256], a[600], b[600], c[600], worst[256];
  snprintf(title, sizeof title, "%s: 2 ranks x batch %s train the parameters of 1 process x batch %s (10 steps)", what,
           two_batch, one_batch);
  th_begin(title);
  const char *bin = th_datamux_bin();
  int rc = run("%s train %s --batch_size %s --output_dir %s/%s_one", bin, args, one_batch, root, what);
  CHECKF(rc == 0, "one-process run exited %d:\n%s", rc, out);
  rc = run("%s -np 2 %s train %s --batch_size %s --output_dir %s/%s_two", mpirun, bin, args, two_batch, root, what);
  CHECKF(rc == 0 && strstr(out, "data-parallel: 2 ranks on 1 host"), "2-rank run exited %d:\n%s", rc, out);
  snprintf(a, sizeof a, "%s/%s_one/last/model.safetensors", root, what);
  snprintf(b, sizeof b, "%s/%s_two/last/model.safetensors", root, what);
  double whole = 0, r = compare(a, b, &whole, worst, sizeof worst);
  CHECKF(r >= 0 && r <= 1e-5 && whole <= 1e-5,
         "parameters differ by %.3g (relative, in %s; %.3g over all) between 1 process and 2 ranks", r, worst, whole);
  printf("    relative difference %.3g over all parameters, at most %.3g in one tensor (%s)\n", whole, r, worst);
  snprintf(a, sizeof a, "%s/%s_one", root, what);
  snprintf(b, sizeof b, "%s/%s_two", root, what);
  double la = last_logged_loss(a), lb = last_logged_loss(b);
  CHECKF(fabs(la - lb) <= 1e-4 * fabs(la), "the logged loss at step 10 differs: %.6f in one process, %.6f over 2 ranks",
         la, lb);
  /* the comparison can fail: one process with the shard's batch is another training */
  rc = run("%s train %s --batch_size %s --output_dir %s/%s_half", bin, args, two_batch, root, what);
  CHECK(rc == 0);
  snprintf(a, sizeof a, "%s/%s_one/last/model.safetensors", root, what);
  snprintf(c, sizeof c, "%s/%s_half/last/model.safetensors", root, what);
  r = compare(a, c, &whole, worst, sizeof worst);
  CHECKF(r > 1e-5 && whole > 1e-5, "a run with half the batch is within %.3g of the full one: the check cannot fail",
         whole);
  th_end();
}

static void resume_and_faults(void) {
  const char *bin = th_datamux_bin();
  char f1[600], f2[600];
  th_begin("a job whose rank 1 is killed after step 6 fails, keeps last/ of step 4, and resumes bit for bit");
  {
    int rc = run("%s -np 2 %s train " RESUME_ARGS " --output_dir %s/straight", mpirun, bin, root);
    CHECKF(rc == 0, "uninterrupted 2-rank run exited %d:\n%s", rc, out);
    rc = run("DATAMUX_KILL_AT_STEP=6 DATAMUX_KILL_RANK=1 timeout 300 %s -np 2 %s train " RESUME_ARGS
             " --output_dir %s/killed",
             mpirun, bin, root);
    CHECKF(rc != 0 && rc != 124 && strstr(out, "rank 1"), "the job with a killed rank exited %d:\n%s", rc, out);
    dmx_train_state s;
    dmx_error err;
    snprintf(f1, sizeof f1, "%s/killed/last", root);
    CHECKF(dmx_train_state_read(f1, &s, &err) == 0 && s.step == 4 && s.world_size == 2,
           "killed job's last checkpoint: %s, step %d, world size %d", err.msg, s.step, s.world_size);
    rc = run("%s train --resume %s/killed", bin, root);
    CHECKF(rc == 2 && strstr(out, "written by a job of 2 ranks"), "a one-process resume was not refused (%d):\n%s", rc,
           out);
    rc = run("%s -np 2 %s train --resume %s/killed", mpirun, bin, root);
    CHECKF(rc == 0 && strstr(out, "resuming after step 4"), "resume under mpirun exited %d:\n%s", rc, out);
    const char *files[] = {"model.safetensors", "optimizer.safetensors"};
    for (int i = 0; i < 2; i++) {
      snprintf(f1, sizeof f1, "%s/straight/last/%s", root, files[i]);
      snprintf(f2, sizeof f2, "%s/killed/last/%s", root, files[i]);
      CHECKF(th_same_file(f1, f2), "%s differs between the uninterrupted and the resumed job", files[i]);
    }
    /* the comparison can fail: the one-process run of the same global batch differs in its bits
     * (dropout masks are per rank, and the sums add in another order) */
    rc = run("%s train " RESUME_ARGS " --batch_size 4 --output_dir %s/single", bin, root);
    CHECK(rc == 0);
    snprintf(f1, sizeof f1, "%s/straight/last/model.safetensors", root);
    snprintf(f2, sizeof f2, "%s/single/last/model.safetensors", root);
    CHECKF(!th_same_file(f1, f2), "a one-process run has the 2-rank job's bits: the comparison cannot fail");
  }
  th_end();

  /* to the ranks, as a batch system's scancel does: SIGTERM to mpirun would reach their process
   * groups (PoCL's compiler children too) and SIGKILL them a second later (README.md) */
  th_begin("SIGTERM to the ranks: every rank stops after the same step, rank 0 writes last/, the job exits non-zero");
  {
    int rc = run("%s -np 2 %s train " RESUME_ARGS " --max_steps 100000 --set training.save_interval=50000 "
                 "--output_dir %s/term & pid=$!; "
                 "while kill -0 $pid 2>/dev/null && ! grep -q '\"step\": 30,' %s/term/metrics.jsonl 2>/dev/null; "
                 "do sleep 0.2; done; kill -TERM $(pgrep -P $pid); wait $pid",
                 mpirun, bin, root, root);
    CHECKF(rc != 0 && strstr(out, "terminated: checkpoint written after step") &&
               strstr(out, "mpirun -np 2 datamux train"),
           "the job exited %d:\n%s", rc, out);
    dmx_train_state s;
    dmx_error err;
    snprintf(f1, sizeof f1, "%s/term/last", root);
    CHECKF(dmx_train_state_read(f1, &s, &err) == 0 && s.step >= 30 && s.world_size == 2, "%s (step %d)", err.msg,
           s.step);
    snprintf(f1, sizeof f1, "%s/term/last.tmp", root);
    CHECKF(access(f1, F_OK) != 0, "a partial checkpoint %s was left", f1);
  }
  th_end();

  th_begin("a rank that fails at start-up ends the job at once, naming the rank");
  {
    int rc = run("timeout 300 %s -np 2 %s train " RESUME_ARGS " --device 'pocl:0,no such device' --output_dir %s/bad",
                 mpirun, bin, root);
    CHECKF(rc != 0 && rc != 124 && strstr(out, "datamux rank 1 of 2") && strstr(out, "no OpenCL device matches"),
           "the job exited %d:\n%s", rc, out);
  }
  th_end();

  th_begin("commands other than train refuse to run under mpirun");
  {
    int rc = run("%s -np 2 %s devices", mpirun, bin);
    CHECKF(rc != 0 && strstr(out, "only `datamux train` runs under mpirun"), "exited %d:\n%s", rc, out);
  }
  th_end();
}

int main(void) {
  mpirun = getenv("DATAMUX_MPIRUN");
  if (!getenv("DATAMUX_DATA") || !mpirun || !*mpirun) {
    th_begin("data-parallel tests need DATAMUX_DATA and DATAMUX_MPIRUN (mpirun with its options)");
    CHECKF(0, "DATAMUX_DATA or DATAMUX_MPIRUN is not set");
    th_end();
    return th_finish();
  }
  snprintf(root, sizeof root, "/tmp/datamux-dp-%ld", (long)getpid());
  same_training("text", TEXT_ARGS, "8", "4");
  same_training("vision", VISION_ARGS, "16", "8");
  resume_and_faults();
  run("rm -rf %s", root);
  return th_finish();
}
