/* Vision training smoke test through the datamux binary, CI-sized (a few thousand Fashion-MNIST
 * images, ~25 s on 2 cores): LeNet must beat chance (10%) by a wide margin (> 50% test accuracy)
 * at N=1 and at N=2, and the run directory must hold what it promises (results.json with one
 * accuracy per instance, metrics.jsonl, a loadable last/model.safetensors). Also checks that
 * vision settings are validated with the YAML file and line. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/base/common.h"
#include "host/formats/safetensors.h"
#include "tests/harness.h"

static char out[1 << 16];
static char root[256];

/* The number after "key": following "section" in results.json. */
static double number_after(const char *json, const char *section, const char *key) {
  const char *p = strstr(json, section);
  if (!p) return -1;
  char pat[96];
  snprintf(pat, sizeof pat, "\"%s\": ", key);
  const char *q = strstr(p, pat);
  return q ? atof(q + strlen(pat)) : -1;
}

static double final_accuracy(const char *name) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s/results.json", root, name);
  dmx_error err;
  char *json = dmx_read_file(path, NULL, &err);
  if (!json) return -1;
  double acc = number_after(json, "\"final\"", "mean_accuracy");
  free(json);
  return acc;
}

/* Evaluating the saved last/ checkpoint must reproduce the final accuracy of the run exactly. */
static void reload_and_check(const char *name, int N, const char *flags) {
  th_begin("a saved checkpoint evaluates to the run's final accuracy");
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "%s train experiments/vision/cpu_fashion.yaml --set multiplexing.num_instances=%d %s "
           "--set task.max_eval_examples=500 --set training.do_train=false --set model_path=%s/%s/last "
           "--set output_dir=%s/%s_eval",
           th_datamux_bin(), N, flags, root, name, root, name);
  int rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 0, "datamux train (evaluation only) exited %d:\n%s", rc, out);
  char evalname[128];
  snprintf(evalname, sizeof evalname, "%s_eval", name);
  double a = final_accuracy(name), b = final_accuracy(evalname);
  CHECKF(a >= 0 && a == b, "trained run %.6f, reloaded checkpoint %.6f", a, b);
  th_end();
}

static void train_and_check(const char *name, int N, const char *flags, double min_acc) {
  char title[160];
  snprintf(title, sizeof title, "fashion-mnist lenet N=%d %s beats chance", N, name);
  th_begin(title);
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "%s train experiments/vision/cpu_fashion.yaml --set multiplexing.num_instances=%d %s "
           "--set task.max_eval_examples=500 --set training.epochs=3 --set training.log_interval=1000 "
           "--set output_dir=%s/%s",
           th_datamux_bin(), N, flags, root, name);
  int rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 0, "datamux train exited %d:\n%s", rc, out);
  char path[512];
  snprintf(path, sizeof path, "%s/%s/results.json", root, name);
  dmx_error err;
  char *json = dmx_read_file(path, NULL, &err);
  CHECKF(json != NULL, "%s", err.msg);
  if (json) {
    double acc = number_after(json, "\"final\"", "mean_accuracy");
    printf("  %s: final mean test accuracy %.4f, %.0f training images/s\n", name, acc,
           number_after(json, "\"task\"", "train_images_per_second"));
    CHECKF(acc > min_acc, "%s: mean accuracy %.4f is not above %.2f", name, acc, min_acc);
    /* one accuracy per instance */
    const char *a = strstr(json, "\"accuracy_per_instance\": [");
    int commas = 0;
    if (a)
      for (const char *c = a; *c && *c != ']'; c++) commas += *c == ',';
    CHECKF(a && commas == N - 1, "%s: accuracy_per_instance does not list %d values", name, N);
    free(json);
  }
  snprintf(path, sizeof path, "%s/%s/metrics.jsonl", root, name);
  CHECK(access(path, R_OK) == 0);
  snprintf(path, sizeof path, "%s/%s/last/model.safetensors", root, name);
  dmx_st_file *f = dmx_st_load(path, &err);
  CHECKF(f != NULL, "%s", f ? "" : err.msg);
  if (f) {
    CHECK(dmx_st_find(f, "conv1.weight") && dmx_st_find(f, "head.bias"));
    CHECK((N > 1) == (dmx_st_find(f, "demux.weight") != NULL));
    dmx_st_free(f);
  }
  th_end();
}

static void config_errors(void) {
  th_begin("vision settings are validated with file and line");
  char yaml[300], cmd[1024];
  snprintf(yaml, sizeof yaml, "%s/bad.yaml", root);
  FILE *f = fopen(yaml, "w");
  if (f) {
    fputs("task:\n  name: fashion_mnist\nvision:\n  model: lenet\n  crop: 12\n", f);
    fclose(f);
  }
  snprintf(cmd, sizeof cmd, "%s config %s", th_datamux_bin(), yaml);
  int rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 2 && strstr(out, "bad.yaml:5:") && strstr(out, "vision.crop"), "exit %d: %s", rc, out);
  snprintf(cmd, sizeof cmd, "%s config experiments/vision/mnist_n4.yaml --set vision.muxing=none", th_datamux_bin());
  rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 2 && strstr(out, "cannot combine 4 instances"), "exit %d: %s", rc, out);
  snprintf(cmd, sizeof cmd, "%s config experiments/vision/mlp_fashion.yaml --set vision.hidden_sizes=12,x",
           th_datamux_bin());
  rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 2 && strstr(out, "hidden_sizes"), "exit %d: %s", rc, out);
  th_end();
}

/* A vision run killed by SIGKILL after step 15 (last/ written at 12, mid-way through the second
 * epoch of 8 steps, so the data order depends on the saved RNG state)
 * and resumed ends with the parameters and AdamW moments of the uninterrupted run, bit for bit;
 * SIGTERM writes last/ and exits 143; another seed differs (so the comparison can fail). */
static void resume_and_check(void) {
  th_begin("vision: a run killed after step 15 and resumed matches the uninterrupted run bit for bit");
  const char *bin = th_datamux_bin();
  const char *args =
      "experiments/vision/cpu_fashion.yaml --set task.max_train_examples=256 "
      "--set task.max_eval_examples=64 --set training.max_steps=20 --set training.eval_interval=5 "
      "--set training.save_interval=4 --set training.log_interval=3 --set training.time_budget_seconds=0";
  char cmd[2048], f1[600], f2[600];
  snprintf(cmd, sizeof cmd, "%s train %s --output_dir %s/vr_straight", bin, args, root);
  int rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 0, "uninterrupted run exited %d:\n%s", rc, out);
  snprintf(cmd, sizeof cmd, "DATAMUX_KILL_AT_STEP=15 %s train %s --output_dir %s/vr_killed", bin, args, root);
  rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 128 + 9, "the run to kill exited with %d, not by SIGKILL:\n%s", rc, out);
  snprintf(cmd, sizeof cmd, "%s train --resume %s/vr_killed", bin, root);
  rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 0 && strstr(out, "resuming") && strstr(out, "at step 13 of 20"), "resume exited %d:\n%s", rc, out);
  const char *files[] = {"model.safetensors", "optimizer.safetensors"};
  for (int i = 0; i < 2; i++) {
    snprintf(f1, sizeof f1, "%s/vr_straight/last/%s", root, files[i]);
    snprintf(f2, sizeof f2, "%s/vr_killed/last/%s", root, files[i]);
    CHECKF(th_same_file(f1, f2), "%s differs between the uninterrupted and the resumed run", files[i]);
  }
  snprintf(cmd, sizeof cmd, "%s train %s --set training.seed=43 --output_dir %s/vr_other", bin, args, root);
  CHECK(th_run(cmd, out, sizeof out) == 0);
  snprintf(f1, sizeof f1, "%s/vr_straight/last/model.safetensors", root);
  snprintf(f2, sizeof f2, "%s/vr_other/last/model.safetensors", root);
  CHECKF(!th_same_file(f1, f2), "another seed gave identical parameters: the comparison cannot fail");
  th_end();

  th_begin("vision: SIGTERM writes last/ and exits 143 with a resume hint");
  snprintf(cmd, sizeof cmd,
           "%s train %s --set training.max_steps=100000 --output_dir %s/vr_term & pid=$!; "
           "while kill -0 $pid 2>/dev/null && [ ! -d %s/vr_term/last ]; do sleep 0.2; done; kill -TERM $pid; wait $pid",
           bin, args, root, root);
  rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 143 && strstr(out, "terminated at step") && strstr(out, "--resume"), "exit %d:\n%s", rc, out);
  snprintf(f1, sizeof f1, "%s/vr_term/last/trainer_state.json", root);
  CHECKF(access(f1, R_OK) == 0, "no %s after SIGTERM", f1);
  th_end();
}

int main(void) {
  snprintf(root, sizeof root, "/tmp/datamux-vision-smoke.XXXXXX");
  if (!mkdtemp(root)) {
    perror("mkdtemp");
    return 2;
  }
  config_errors();
  if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", R_OK) != 0) {
    printf("skipped training: Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)\n");
  } else {
    train_and_check("n1", 1, "--set vision.muxing=none --set task.max_train_examples=1000", 0.5);
    train_and_check("n2", 2, "--set vision.muxing=rotation --set task.max_train_examples=2000", 0.5);
    reload_and_check("n2", 2, "--set vision.muxing=rotation");
    resume_and_check();
  }
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
  return th_finish();
}
