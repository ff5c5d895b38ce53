/* What a run leaves on disk when things go wrong, through the datamux binary: a disk that fills
 * while last/ is written (a small tmpfs when this process may mount one, and always a file-size
 * limit, `ulimit -f`) ends the run with a clear error and leaves last/ and best/ as they were; a
 * second `datamux train` into a busy output_dir is refused naming the holder's pid, and the lock
 * ends with its holder (even a killed one); a torn last line of metrics.jsonl, as a crash leaves
 * it, is dropped before a resumed run appends, and every line stays JSON. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/base/common.h"
#include "host/base/json.h"
#include "host/formats/safetensors.h"
#include "host/run/train_state.h"
#include "tests/harness.h"

static char out[1 << 16];
static char root[256];

/* A micro model; evaluations and saves at steps 4 and 8. */
#define RUN_ARGS                                                                                  \
  "experiments/quickstart.yaml --config_name experiments/models/micro.yaml --set model_path= "    \
  "--batch_size 4 --max_steps 8 --set task.max_length=16 --set training.eval_interval=4 "         \
  "--set training.save_interval=4 --set training.log_interval=2 --set task.max_train_examples=400 " \
  "--set task.max_eval_examples=64 --set training.time_budget_seconds=0"

#define run(...) th_runf(out, sizeof out, __VA_ARGS__)

static bool same_checkpoint(const char *a, const char *b) {
  const char *files[] = {"model.safetensors", "optimizer.safetensors", "trainer_state.json"};
  for (int i = 0; i < 3; i++) {
    char fa[700], fb[700];
    snprintf(fa, sizeof fa, "%s/%s", a, files[i]);
    snprintf(fb, sizeof fb, "%s/%s", b, files[i]);
    if (access(fa, F_OK) != 0 && access(fb, F_OK) != 0) continue; /* best/ has no optimizer */
    if (!th_same_file(fa, fb)) return false;
  }
  return true;
}

/* Every line of the run's metrics.jsonl is a JSON object, and the file ends with a newline. */
static bool metrics_whole(const char *dir, char *why, size_t cap) {
  char path[600];
  snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
  dmx_error err;
  size_t len;
  char *text = dmx_read_file(path, &len, &err);
  if (!text) return snprintf(why, cap, "%.300s", err.msg), false;
  bool ok = len > 0 && text[len - 1] == '\n';
  if (!ok) snprintf(why, cap, "%.300s does not end with a newline", path);
  int lines = 0;
  for (char *line = strtok(text, "\n"); line && ok; line = strtok(NULL, "\n")) {
    dmx_json j;
    dmx_json_opts o = {.what = path, .max_depth = 8, .require_object = true};
    if (dmx_json_parse(line, strlen(line), &o, &j, &err) != 0) {
      snprintf(why, cap, "line %d is not JSON: %.200s", lines + 1, err.msg);
      ok = false;
    } else {
      dmx_json_free(&j);
    }
    lines++;
  }
  free(text);
  return ok && lines > 0;
}

/* Resumes `dir` (last/ at step 4) under a full disk: the save at step 8 must fail cleanly. */
static void full_disk_resume(const char *how, const char *dir, const char *prefix, const char *expect) {
  const char *bin = th_datamux_bin();
  char last[600], best[600], ref_last[600], ref_best[600];
  int rc = run("%s %s train --resume %s", prefix, bin, dir);
  CHECKF(rc != 0 && strstr(out, expect) && strstr(out, "is as it was"),
         "%s: the run exited %d without saying '%s':\n%s", how, rc, expect, out);
  snprintf(last, sizeof last, "%s/last", dir);
  snprintf(best, sizeof best, "%s/best", dir);
  snprintf(ref_last, sizeof ref_last, "%s/killed/last", root);
  snprintf(ref_best, sizeof ref_best, "%s/killed/best", root);
  CHECKF(same_checkpoint(last, ref_last), "%s: last/ changed", how);
  /* best/ is step 4's, or step 8's when that evaluation was better and its copy still fitted */
  char model[700];
  snprintf(model, sizeof model, "%s/model.safetensors", best);
  dmx_error err;
  dmx_st_file *f = dmx_st_load(model, &err);
  CHECKF(f != NULL, "%s: best/ does not load: %s", how, err.msg);
  if (f) dmx_st_free(f);
  if (!strstr(out, "saved best/")) CHECKF(same_checkpoint(best, ref_best), "%s: best/ changed", how);
  const char *tmps[] = {"last.tmp", "best.tmp"};
  for (int i = 0; i < 2; i++) {
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s/%s", dir, tmps[i]);
    CHECKF(access(tmp, F_OK) != 0, "%s: the unfinished %s was left behind", how, tmp);
  }
  dmx_train_state s;
  CHECKF(dmx_train_state_read(last, &s, &err) == 0 && s.step == 4, "%s: last/ is not step 4's: %s", how, err.msg);
  char why[400] = "";
  CHECKF(metrics_whole(dir, why, sizeof why), "%s: %s", how, why);
}

int main(void) {
  if (!th_need_data("output safety tests")) return th_finish();
  snprintf(root, sizeof root, "/tmp/datamux-safety-%ld", (long)getpid());
  const char *bin = th_datamux_bin();
  char dir[700], why[400];

  th_begin("a run killed after step 5 leaves last/ and best/ of step 4 and whole metrics lines");
  int rc = run("DATAMUX_KILL_AT_STEP=5 %s train " RUN_ARGS " --output_dir %s/killed", bin, root);
  CHECKF(rc == 128 + 9, "the run to kill exited %d:\n%s", rc, out);
  snprintf(dir, sizeof dir, "%s/killed", root);
  CHECKF(metrics_whole(dir, why, sizeof why), "%s", why);
  th_end();

  th_begin("disk full (file-size limit) while last/ is written: a clear error, last/ and best/ intact");
  rc = run("cp -a %s/killed %s/fsize", root, root);
  CHECK(rc == 0);
  snprintf(dir, sizeof dir, "%s/fsize", root);
  /* 8 MiB per file: the 26 MB model file cannot be written; SIGXFSZ ignored, so write() fails */
  full_disk_resume("file-size limit", dir, "trap '' XFSZ; ulimit -f 16384;", "File too large");
  th_end();

  th_begin("disk full (a tmpfs too small for a second last/): a clear error, last/ and best/ intact");
  {
    char mnt[600];
    snprintf(mnt, sizeof mnt, "%s/tmpfs", root);
    /* room for the run as it is and half a checkpoint more */
    rc = run("mkdir -p %s && kb=$(du -sk %s/killed | cut -f1) && last=$(du -sk %s/killed/last | cut -f1) && "
             "mount -t tmpfs -o size=$((kb + last / 2))k datamux-test %s",
             mnt, root, root, mnt);
    if (rc != 0) {
      printf("    no tmpfs here (mount needs root and a permitting container): %s", out);
      printf("    the file-size limit above stands in for it\n");
    } else {
      rc = run("cp -a %s/killed %s/run", root, mnt);
      CHECKF(rc == 0, "copy into the tmpfs: %s", out);
      snprintf(dir, sizeof dir, "%s/run", mnt);
      full_disk_resume("tmpfs", dir, "", "No space left on device");
      run("umount %s", mnt);
    }
  }
  th_end();

  th_begin("two runs in one output_dir: the second is refused naming the first's pid; the lock ends with it");
  {
    rc = run("%s train " RUN_ARGS " --max_steps 100000 --set training.save_interval=100000 --output_dir %s/busy & "
             "pid=$!; while kill -0 $pid 2>/dev/null && ! grep -q '\"step\": 2,' %s/busy/metrics.jsonl 2>/dev/null; "
             "do sleep 0.2; done; echo \"first: $pid\"; %s train " RUN_ARGS " --output_dir %s/busy; echo \"second: $?\"; "
             "kill -KILL $pid; wait $pid",
             bin, root, root, bin, root);
    char *first = strstr(out, "first: "), *second = strstr(out, "second: ");
    long pid = first ? atol(first + 7) : -1;
    char expect[64];
    snprintf(expect, sizeof expect, "(pid %ld)", pid);
    CHECKF(first && second && atoi(second + 8) != 0 && strstr(out, "is in use by another datamux train") &&
               strstr(out, expect),
           "the second run was not refused with the first's pid %ld:\n%s", pid, out);
    /* the holder was SIGKILLed: its .lock file stays, its lock does not */
    rc = run("%s train " RUN_ARGS " --max_steps 2 --output_dir %s/busy", bin, root);
    CHECKF(rc == 0, "a run after the holder died was refused (%d):\n%s", rc, out);
  }
  th_end();

  th_begin("a torn last line of metrics.jsonl is dropped before a resumed run appends");
  {
    rc = run("printf '{\"event\": \"log\", \"step\": 5, \"lo' >> %s/killed/metrics.jsonl", root);
    CHECK(rc == 0);
    snprintf(dir, sizeof dir, "%s/killed", root);
    CHECKF(!metrics_whole(dir, why, sizeof why), "the torn line was not seen: the check cannot fail");
    rc = run("%s train --resume %s/killed", bin, root);
    CHECKF(rc == 0 && strstr(out, "dropped a torn last line of 31 bytes"), "resume exited %d:\n%s", rc, out);
    CHECKF(metrics_whole(dir, why, sizeof why), "%s", why);
  }
  th_end();

  run("rm -rf %s", root);
  return th_finish();
}
