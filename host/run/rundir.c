/* What every trainer (text and vision) shares: the run directory, the learning-rate schedule, and
 * the SIGINT/SIGTERM protocol. */
#include "host/run/rundir.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

int dmx_open_run_dir(const dmx_experiment *e, char *run_dir, size_t cap, FILE **metrics, dmx_error *err) {
  snprintf(run_dir, cap, "%s", e->output_dir);
  if (dmx_mkdirs(run_dir, err) != 0) return -1;
  char path[1100];
  snprintf(path, sizeof path, "%s/experiment.yaml", run_dir);
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  if (!mem) return dmx_fail(err, "open_memstream failed: %s", strerror(errno));
  dmx_experiment_print_yaml(mem, e);
  fclose(mem);
  int rc = dmx_write_file_atomic(path, text, len, err);
  free(text);
  if (rc) return -1;
  snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
  *metrics = fopen(path, "a"); /* appended: a resumed run continues the same log */
  if (!*metrics) return dmx_fail(err, "%s: cannot open for writing: %s", path, strerror(errno));
  return 0;
}

/* transformers' get_linear_schedule_with_warmup: the update that completes step t (1-based) uses
 * lambda(t - 1). */
float dmx_learning_rate(const dmx_train_config *tc, int t, int total) {
  int s = t - 1;
  if (tc->schedule == DMX_SCHEDULE_CONSTANT)
    return s < tc->warmup_steps ? tc->learning_rate * (float)s / (float)tc->warmup_steps : tc->learning_rate;
  if (s < tc->warmup_steps) return tc->learning_rate * (float)s / (float)(tc->warmup_steps > 0 ? tc->warmup_steps : 1);
  double frac = (double)(total - s) / (double)(total - tc->warmup_steps > 0 ? total - tc->warmup_steps : 1);
  return (float)(tc->learning_rate * (frac > 0 ? frac : 0));
}

/* SIGINT/SIGTERM/SIGUSR1 ask the loop to checkpoint and stop after the current step. The handler resets
 * itself, so a second signal kills at once (the previous checkpoint stays loadable: see
 * host/run/train_state.h). */
static volatile sig_atomic_t stop_signal = 0;
static void on_stop_signal(int sig) { stop_signal = sig; }

static struct sigaction previous_int, previous_term, previous_usr1;

void dmx_stop_handlers_install(void) {
  stop_signal = 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, NULL, &previous_int);
  sigaction(SIGTERM, NULL, &previous_term);
  sigaction(SIGUSR1, NULL, &previous_usr1);
  /* a signal the parent ignores (nohup, `&` in a script) stays ignored */
  if (previous_int.sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL);
  if (previous_term.sa_handler != SIG_IGN) sigaction(SIGTERM, &sa, NULL);
  /* SIGUSR1 to one rank of a data-parallel job stops the whole job after the same step (the
   * ranks agree on the largest signal), without going through mpirun's SIGTERM handling */
  if (previous_usr1.sa_handler != SIG_IGN) sigaction(SIGUSR1, &sa, NULL);
}

void dmx_stop_handlers_restore(void) {
  sigaction(SIGINT, &previous_int, NULL);
  sigaction(SIGTERM, &previous_term, NULL);
  sigaction(SIGUSR1, &previous_usr1, NULL);
}

/* For the resume test: DATAMUX_KILL_AT_STEP=k makes the process SIGKILL itself right after step k,
 * exactly as an outside kill would, at a step the test can name. */
int dmx_kill_at_step(void) {
  const char *s = getenv("DATAMUX_KILL_AT_STEP");
  return s && *s ? atoi(s) : -1;
}

bool dmx_kill_this_rank(int rank) {
  const char *s = getenv("DATAMUX_KILL_RANK");
  return !s || !*s || atoi(s) == rank;
}

int dmx_stop_signal(void) { return (int)stop_signal; }
