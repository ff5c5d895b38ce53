/* What every trainer (text and vision) shares: the run directory, the learning-rate schedule, and
 * the SIGINT/SIGTERM protocol. */
#include "host/run/rundir.h"

#include "host/base/json.h"
#include "host/base/output.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The run directory's lock: flock on <run_dir>/.lock, held (fd open) until the process ends, so a
 * killed run never leaves a stale lock behind; the file holds the holder's pid for the message. */
static int lock_fd = -1;

static int lock_run_dir(const char *run_dir, dmx_error *err) {
  char path[1100];
  snprintf(path, sizeof path, "%s/.lock", run_dir);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return dmx_fail(err, "%s: cannot open the run directory's lock: %s", path, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char pid[32] = "";
    ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    pid[n > 0 ? n : 0] = 0;
    pid[strcspn(pid, "\n")] = 0;
    close(fd);
    if (e == EWOULDBLOCK)
      return dmx_fail(err,
                      "%s is in use by another datamux train (pid %s): two runs in one output_dir would "
                      "interleave their checkpoints and logs; wait for it to end, or give another --output_dir",
                      run_dir, pid[0] ? pid : "unknown");
    return dmx_fail(err, "%s: flock failed: %s", path, strerror(e));
  }
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
    int e = errno;
    close(fd);
    return dmx_fail(err, "%s: cannot write the lock holder's pid: %s", path, strerror(e));
  }
  if (lock_fd >= 0) close(lock_fd); /* a second run directory in one process: the first is done */
  lock_fd = fd;
  return 0;
}

/* A crash can cut metrics.jsonl's last line short (a write the kernel stopped between pages); a
 * JSON-lines reader would fail on it, so it goes before anything is appended. */
static int drop_torn_line(const char *path, dmx_error *err) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : dmx_fail(err, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0) {
    rc = dmx_fail(err, "%s: fstat failed: %s", path, strerror(errno));
  } else if (st.st_size > 0) {
    char c;
    off_t end = st.st_size;
    if (pread(fd, &c, 1, end - 1) != 1) {
      rc = dmx_fail(err, "%s: cannot read: %s", path, strerror(errno));
    } else if (c != '\n') {
      char buf[4096];
      off_t keep = 0;
      for (off_t at = end; at > 0 && keep == 0;) { /* back to the last newline */
        size_t k = at > (off_t)sizeof buf ? sizeof buf : (size_t)at;
        at -= (off_t)k;
        if (pread(fd, buf, k, at) != (ssize_t)k) {
          rc = dmx_fail(err, "%s: cannot read: %s", path, strerror(errno));
          break;
        }
        for (size_t i = k; i-- > 0;)
          if (buf[i] == '\n') {
            keep = at + (off_t)i + 1;
            break;
          }
      }
      if (rc == 0 && ftruncate(fd, keep) != 0) rc = dmx_fail(err, "%s: cannot truncate: %s", path, strerror(errno));
      if (rc == 0)
        printf("%s: dropped a torn last line of %lld bytes (left by a crash while it was written)\n", path,
               (long long)(end - keep));
    }
  }
  close(fd);
  return rc;
}

int dmx_open_run_dir(const dmx_experiment *e, char *run_dir, size_t cap, FILE **metrics, dmx_error *err) {
  snprintf(run_dir, cap, "%s", e->output_dir);
  if (dmx_mkdirs(run_dir, err) != 0) return -1;
  if (lock_run_dir(run_dir, err) != 0) return -1;
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
  if (drop_torn_line(path, err) != 0) return -1;
  *metrics = fopen(path, "a"); /* appended: a resumed run continues the same log */
  if (!*metrics) return dmx_fail(err, "%s: cannot open for writing: %s", path, strerror(errno));
  /* whole lines only: the trainers flush after each line, so each write() holds whole lines */
  if (setvbuf(*metrics, NULL, _IOFBF, 1 << 16) != 0)
    return dmx_fail(err, "%s: setvbuf failed", path);
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

/* ------------------------------------------------------------------ curves */

void dmx_plot_run_curves(const char *run_dir) {
  char path[1200];
  snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
  dmx_error err;
  size_t len;
  char *text = dmx_read_file(path, &len, &err);
  if (!text) {
    printf("plot curves.png: skipped (%s)\n", err.msg);
    return;
  }
  dmx_membuf loss, evals;
  if (dmx_membuf_open(&loss, &err) || dmx_membuf_open(&evals, &err)) {
    free(text);
    printf("plot curves.png: skipped (%s)\n", err.msg);
    return;
  }
  int nloss = 0, neval = 0;
  char metric[64] = "dev metric";
  for (char *line = text, *next; line && *line; line = next) {
    next = strchr(line, '\n');
    if (next) *next++ = 0;
    dmx_json v;
    dmx_json_opts o = {.what = path, .require_object = true, .max_depth = 8};
    if (dmx_json_parse(line, strlen(line), &o, &v, &err)) continue; /* a torn line: skip it */
    const char *ev = dmx_json_string(dmx_json_member(&v, "event"));
    double step, x;
    if (ev && dmx_json_number(dmx_json_member(&v, "step"), &step)) {
      if (!strcmp(ev, "log") && dmx_json_number(dmx_json_member(&v, "loss"), &x)) {
        fprintf(loss.f, "%.0f %.6g\n", step, x);
        nloss++;
      } else if (!strcmp(ev, "eval")) {
        /* text runs: "value" of "metric"; vision runs: eval_mean_accuracy */
        const char *name = dmx_json_string(dmx_json_member(&v, "metric"));
        if (dmx_json_number(dmx_json_member(&v, "value"), &x) ||
            dmx_json_number(dmx_json_member(&v, "eval_mean_accuracy"), &x)) {
          snprintf(metric, sizeof metric, "dev %s", name ? name : "mean accuracy");
          fprintf(evals.f, "%.0f %.6g\n", step, x);
          neval++;
        }
      }
    }
    dmx_json_free(&v);
  }
  free(text);
  fflush(loss.f);
  fflush(evals.f);
  dmx_membuf dat;
  char written[1300];
  if (nloss == 0 || dmx_membuf_open(&dat, &err)) {
    dmx_membuf_discard(&loss);
    dmx_membuf_discard(&evals);
    if (nloss == 0) printf("plot curves.png: skipped (no logged step in %s)\n", path);
    return;
  }
  fprintf(dat.f, "# step training_loss\n%s\n\n# step %s\n%s", loss.text, metric, neval ? evals.text : "0 NaN\n");
  dmx_membuf_discard(&loss);
  dmx_membuf_discard(&evals);
  if (dmx_membuf_write(&dat, run_dir, "curves.dat", written, sizeof written, &err)) {
    printf("plot curves.png: skipped (%s)\n", err.msg);
    return;
  }
  for (char *c = metric; *c; c++)
    if (*c == '\'') *c = '"';
  char script[1024];
  snprintf(script, sizeof script,
           "set title 'training loss and %s'\nset xlabel 'step'\nset ylabel 'training loss'\nset y2label '%s'\n"
           "set ytics nomirror\nset y2tics\nset grid\nset key outside bottom center horizontal\n"
           "plot 'curves.dat' index 0 using 1:2 with lines title 'training loss', "
           "'curves.dat' index 1 using 1:2 axes x1y2 with linespoints pt 7 title '%s'\n",
           metric, metric, metric);
  dmx_plot_png(run_dir, "curves", script);
}
