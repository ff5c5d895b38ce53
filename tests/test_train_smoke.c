/* Training smoke tests on the real data at CI size, through the datamux binary: a retrieval
 * warm-up must lift retrieval accuracy far above chance (1/50265), and SST-2 models at N=1 and N=2
 * must beat the majority class (50.9% of dev) after a few hundred steps. Small models and short runs: the point
 * is that learning happens end to end, not the final numbers. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/base/common.h"
#include "tests/harness.h"

static char out[1 << 16];
static char run_root[256];

/* The number after "key": inside the object that follows "section": in results.json. */
static double result_number(const char *run, const char *section, const char *key) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s/results.json", run_root, run);
  dmx_error err;
  char *json = dmx_read_file(path, NULL, &err);
  if (!json) {
    th_fail_at(__FILE__, __LINE__, "%s", err.msg);
    return -1;
  }
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\"", section);
  const char *p = strstr(json, pat);
  double v = -1;
  if (p) {
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *q = strstr(p, pat);
    if (q) v = atof(q + strlen(pat));
  }
  if (v < 0) th_fail_at(__FILE__, __LINE__, "%s: no %s.%s", path, section, key);
  free(json);
  return v;
}

static int train(const char *run, const char *args) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s train %s --output_dir %s/%s", th_datamux_bin(), args, run_root, run);
  int rc = th_run(cmd, out, sizeof out);
  if (rc != 0) printf("%s\n--- output ---\n%s\n", cmd, out);
  return rc;
}

/* Trains run `run` with `args` and checks its final SST-2 dev accuracy is above `threshold` (the
 * majority class is 50.9% of dev). */
static void sst2_beats_majority(const char *what, const char *run, const char *args, double threshold) {
  th_begin(what);
  CHECK(train(run, args) == 0);
  double acc = result_number(run, "final", "accuracy");
  CHECKF(acc > threshold, "dev accuracy %.4f (threshold %.2f); the majority class is 0.509", acc, threshold);
  th_end();
}

int main(void) {
  if (!th_need_data("training smoke tests")) return th_finish();
  snprintf(run_root, sizeof run_root, "/tmp/datamux-smoke-%ld", (long)getpid());

  th_begin("retrieval warm-up lifts retrieval accuracy far above chance");
  CHECK(train("warmup",
              "experiments/quickstart_warmup.yaml --config_name experiments/models/micro.yaml "
              "--batch_size 8 --max_steps 60 --set task.max_length=32 --set training.eval_interval=60 "
              "--set task.max_eval_examples=128 --set training.time_budget_seconds=0 "
              "--set training.retrieval_percentage=1 --set training.warmup_steps=0") == 0);
  double racc = result_number("warmup", "final", "retrieval_accuracy");
  /* chance is 1/50265; the most frequent token alone would score a few percent */
  CHECKF(racc > 0.03, "retrieval accuracy %.4f after 60 steps; chance is 0.00002", racc);
  th_end();

  sst2_beats_majority("SST-2 baseline (N=1) beats the majority class on dev", "baseline",
                      "experiments/quickstart_baseline.yaml --config_name experiments/models/micro.yaml "
                      "--max_steps 150 --set task.max_length=32 --set training.eval_interval=150 "
                      "--set training.time_budget_seconds=0",
                      0.60);
  /* The quickstart's N=2 recipe (gaussian hadamard, mlp demux, padding mask, task loss) from
   * scratch on the micro model, at the from-scratch learning rate of 1e-3: 63-66% at step 400
   * over seeds 42-46. */
  sst2_beats_majority("SST-2 at N=2 (the quickstart's recipe) beats the majority class on dev", "n2",
                      "experiments/quickstart.yaml --model_path '' --config_name experiments/models/micro.yaml "
                      "--lr 1e-3 --max_steps 400 --set task.max_length=32 --set training.eval_interval=400 "
                      "--set training.time_budget_seconds=0",
                      0.58);

  char cmd[512], junk[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", run_root);
  th_run(cmd, junk, sizeof junk);
  return th_finish();
}
