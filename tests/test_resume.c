/* Resumable training, through the datamux binary: a run killed with SIGKILL mid-way and resumed
 * with --resume ends with the same parameters and optimizer state, bit for bit, as a run that was
 * never interrupted; SIGTERM writes a checkpoint and exits with 143 and a resume hint; a resume
 * with another experiment or a damaged trainer state is refused with a clear message; a crash
 * during checkpoint replacement leaves a loadable checkpoint; `datamux eval` reads the run's
 * parameters converted to the released models' format (config.json + pytorch_model.bin). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/base/common.h"
#include "host/run/train_state.h"
#include "tests/harness.h"

static char out[1 << 16];
static char root[256];

/* A micro model at N=2 with dropout, retrieval picks and evaluation between saves: everything a
 * resumed run must reproduce. Saves at 4 and 8; evaluations at 6 and 12. */
#define RUN_ARGS                                                                                    \
  "experiments/quickstart.yaml --config_name experiments/models/micro.yaml --set model_path= "      \
  "--batch_size 4 --max_steps 12 --set task.max_length=16 --set training.eval_interval=6 "          \
  "--set training.save_interval=4 --set training.log_interval=3 --set task.max_train_examples=400 " \
  "--set task.max_eval_examples=64 --set training.time_budget_seconds=0 "                           \
  "--set training.task_loss_coeff=0.9 --set training.retrieval_loss_coeff=0.1"

static int sh(const char *fmt, const char *a, const char *b) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, fmt, a, b);
  return th_run(cmd, out, sizeof out);
}

int main(void) {
  if (!th_need_data("resume tests")) return th_finish();
  snprintf(root, sizeof root, "/tmp/datamux-resume-%ld", (long)getpid());
  const char *bin = th_datamux_bin();
  char a[512], b[512], f1[600], f2[600];
  snprintf(a, sizeof a, "%s/straight", root);
  snprintf(b, sizeof b, "%s/killed", root);

  th_begin("a run killed by SIGKILL after step 6 and resumed matches the uninterrupted run bit for bit");
  {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s train " RUN_ARGS " --output_dir %s", bin, a);
    int rc = th_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "uninterrupted run failed (%d):\n%s", rc, out);
    snprintf(cmd, sizeof cmd, "DATAMUX_KILL_AT_STEP=6 %s train " RUN_ARGS " --output_dir %s", bin, b);
    rc = th_run(cmd, out, sizeof out);
    CHECKF(rc == 128 + 9, "the run to kill exited with %d, not by SIGKILL:\n%s", rc, out);
    dmx_train_state s;
    dmx_error err;
    snprintf(f1, sizeof f1, "%s/last", b);
    CHECKF(dmx_train_state_read(f1, &s, &err) == 0 && s.step == 4, "killed run's last checkpoint: %s, step %d", err.msg,
           s.step);
    snprintf(cmd, sizeof cmd, "%s train --resume %s", bin, b);
    rc = th_run(cmd, out, sizeof out);
    CHECKF(rc == 0 && strstr(out, "resuming after step 4"), "resume failed (%d):\n%s", rc, out);
    const char *files[] = {"model.safetensors", "optimizer.safetensors"};
    for (int i = 0; i < 2; i++) {
      snprintf(f1, sizeof f1, "%s/last/%s", a, files[i]);
      snprintf(f2, sizeof f2, "%s/last/%s", b, files[i]);
      CHECKF(th_same_file(f1, f2), "%s differs between the uninterrupted and the resumed run", files[i]);
    }
    dmx_train_state sa, sb;
    snprintf(f1, sizeof f1, "%s/last", a);
    snprintf(f2, sizeof f2, "%s/last", b);
    CHECK(dmx_train_state_read(f1, &sa, &err) == 0 && dmx_train_state_read(f2, &sb, &err) == 0);
    CHECKF(sa.step == 12 && sb.step == 12 && sa.rng == sb.rng && sa.epoch == sb.epoch && sa.next_row == sb.next_row &&
               sa.best_step == sb.best_step && sa.best_metric == sb.best_metric,
           "trainer states differ: step %d/%d rng %d epoch %d/%d row %d/%d best %d/%d", sa.step, sb.step,
           sa.rng == sb.rng, sa.epoch, sb.epoch, sa.next_row, sb.next_row, sa.best_step, sb.best_step);
    /* a mutation check: the comparison above must see a one-step difference */
    snprintf(cmd, sizeof cmd, "%s train " RUN_ARGS " --max_steps 12 --set training.seed=43 --output_dir %s/other", bin,
             root);
    CHECK(th_run(cmd, out, sizeof out) == 0);
    snprintf(f1, sizeof f1, "%s/last/model.safetensors", a);
    snprintf(f2, sizeof f2, "%s/other/last/model.safetensors", root);
    CHECKF(!th_same_file(f1, f2), "another seed gave identical parameters: the comparison cannot fail");
  }
  th_end();

  th_begin("resuming with a different experiment or a damaged trainer state is refused clearly");
  {
    int rc = sh("%s train " RUN_ARGS " --lr 0.5 --resume %s", bin, b);
    CHECKF(rc == 2 && strstr(out, "differs from the run's") && strstr(out, "training.learning_rate"), "exit %d:\n%s",
           rc, out);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "sed -i 's/\"next_row\": [0-9]*/\"next_row\": x/' %s/last/trainer_state.json", b);
    CHECK(th_run(cmd, out, sizeof out) == 0);
    rc = sh("%s train --resume %s", bin, b);
    CHECKF(rc == 1 && strstr(out, "trainer_state.json") && strstr(out, "next_row"), "exit %d:\n%s", rc, out);
    rc = sh("%s train --resume %s/nowhere", bin, root);
    CHECKF(rc != 0 && strstr(out, "nowhere"), "exit %d:\n%s", rc, out);
  }
  th_end();

  th_begin("datamux eval gives the same dev metrics from the run and from its released-format (.bin) conversion");
  {
    char cmd[4096], conv[600], want[256] = "", got[256] = "";
    snprintf(conv, sizeof conv, "%s/released", root);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && cp %s/last/config.json %s/ && %s convert %s/last/model.safetensors "
             "%s/pytorch_model.bin",
             conv, a, conv, bin, a, conv);
    int rc = th_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "convert failed (%d):\n%s", rc, out);
    snprintf(cmd, sizeof cmd, "%s eval " RUN_ARGS " --model_path %s/last", bin, a);
    rc = th_run(cmd, out, sizeof out);
    const char *line = strstr(out, "eval step 0:");
    CHECKF(rc == 0 && line, "eval of the run failed (%d):\n%s", rc, out);
    if (line) sscanf(line, "eval step 0: %255[^\n]", want);
    snprintf(cmd, sizeof cmd, "%s eval " RUN_ARGS " --model_path %s", bin, conv);
    rc = th_run(cmd, out, sizeof out);
    line = strstr(out, "eval step 0:");
    CHECKF(rc == 0 && line && strstr(out, "pytorch_model.bin"), "eval of the .bin failed (%d):\n%s", rc, out);
    if (line) sscanf(line, "eval step 0: %255[^\n]", got);
    CHECKF(want[0] && !strcmp(want, got), "run: '%s'\n.bin: '%s'", want, got);
  }
  th_end();

  th_begin("a crash while replacing a checkpoint leaves the previous one loadable");
  {
    /* the state between the two renames: last/ moved to last.old/, last.tmp/ half written */
    char cmd[4096], dir[1024];
    snprintf(cmd, sizeof cmd, "cd %s && mv last last.old && mkdir last.tmp && echo junk > last.tmp/model.safetensors",
             a);
    CHECK(th_run(cmd, out, sizeof out) == 0);
    dmx_error err;
    CHECK(dmx_checkpoint_dir(a, "last", dir, sizeof dir, &err) == 0);
    CHECKF(strstr(dir, "last.old") != NULL, "found %s", dir);
    dmx_train_state s;
    CHECK(dmx_train_state_read(dir, &s, &err) == 0 && s.step == 12);
  }
  th_end();

  th_begin("SIGTERM writes a checkpoint, says how to resume and exits with 143");
  {
    char cmd[4096];
    /* the signal arrives once the first checkpoint exists, i.e. mid-run */
    snprintf(cmd, sizeof cmd,
             "%s train " RUN_ARGS
             " --max_steps 100000 --output_dir %s/term & pid=$!; "
             "while [ ! -f %s/term/last/trainer_state.json ]; do sleep 0.1; done; kill -TERM $pid; wait $pid; "
             "echo exit=$?",
             bin, root, root);
    th_run(cmd, out, sizeof out);
    CHECKF(strstr(out, "exit=143") && strstr(out, "--resume") && strstr(out, "terminated"), "%s", out);
    snprintf(f1, sizeof f1, "%s/term/last", root);
    dmx_train_state s;
    dmx_error err;
    CHECKF(dmx_train_state_read(f1, &s, &err) == 0 && s.step >= 4 && s.step < 100000, "step %d: %s", s.step, err.msg);
  }
  th_end();

  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  th_run(cmd, out, sizeof out);
  return th_finish();
}
