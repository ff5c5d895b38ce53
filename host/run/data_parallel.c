#include "host/run/data_parallel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int dmx_dp_begin(int *argc, char ***argv, dmx_error *err) {
  if (dmx_dist_init(argc, argv, err)) return -1;
  const dmx_dist *w = dmx_dist_world();
  if (w->size == 1) return 0;
  dmx_runtime_set_placement(w->local_rank, w->local_size);
  const char *all = getenv("DATAMUX_RANK_OUTPUT");
  if (w->rank != 0 && !(all && !strcmp(all, "all"))) {
    fflush(stdout);
    int fd = open("/dev/null", O_WRONLY);
    if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
      return dmx_fail(err, "rank %d: cannot send stdout to /dev/null: %s", w->rank, strerror(errno));
    close(fd);
  }
  return 0;
}

int dmx_dp_end(int rc) {
  const dmx_dist *w = dmx_dist_world();
  if (!w->mpi) return rc;
  /* 128 + signal: every rank agreed to stop at the same step (dmx_dp_agree_stop) */
  if (rc == 0 || rc > 128) {
    dmx_dist_barrier(); /* rank 0 may still be writing last/ */
    dmx_dist_finalize();
    return rc;
  }
  fprintf(stderr, "datamux rank %d of %d: exiting with status %d: ending the whole job\n", w->rank, w->size, rc);
  dmx_dist_abort(rc);
}

bool dmx_dp_writer(void) { return dmx_dist_world()->rank == 0; }

int dmx_dp_check_resume(const char *run_dir, int written_by, dmx_error *err) {
  int now = dmx_dist_world()->size;
  if (written_by == now) return 0;
  return dmx_fail(err,
                  "cannot resume %s: its last/ was written by a job of %d rank%s, this one has %d; the global batch "
                  "(ranks x batch_size) and with it the data order would change: resume with %s",
                  run_dir, written_by, written_by == 1 ? "" : "s", now,
                  written_by == 1 ? "no mpirun (or -np 1)" : "mpirun -np of that job");
}

static double allreduce_seconds, allreduce_floats;
static long allreduce_calls;

static float *pack;
static size_t pack_cap;

static void sum_dense(dmx_runtime *rt, dmx_tensor t) {
  if (t.n == 0) return;
  allreduce_floats += (double)t.n;
  float *p = dmx_map(rt, t);
  dmx_dist_sum_f32(p, t.n);
  dmx_unmap(rt, t, p);
}

void dmx_dp_sum_tensors(dmx_runtime *rt, const dmx_tensor *t, int n) { dmx_dp_sum_sparse(rt, t, n, NULL); }

void dmx_dp_sum_sparse(dmx_runtime *rt, const dmx_tensor *t, int n, const dmx_dp_rows *sp) {
  if (dmx_dist_world()->size == 1) return;
  dmx_finish(rt); /* the backward pass is compute, not all-reduce time */
  double t0 = dmx_now_seconds();
  for (int i = 0; i < n; i++) {
    dmx_tensor a = t[i], tb = sp ? sp->table : (dmx_tensor){NULL, 0, 0};
    if (!sp || tb.buf != a.buf || tb.off < a.off || tb.off + tb.n > a.off + a.n) {
      sum_dense(rt, a);
      continue;
    }
    sum_dense(rt, (dmx_tensor){a.buf, a.off, tb.off - a.off});
    size_t w = (size_t)sp->width, need = (size_t)sp->n_rows * w;
    if (need > pack_cap) {
      free(pack);
      pack = dmx_malloc(need * sizeof(float));
      pack_cap = need;
    }
    float *p = dmx_map(rt, tb);
    for (int r = 0; r < sp->n_rows; r++) memcpy(pack + r * w, p + (size_t)sp->rows[r] * w, w * sizeof(float));
    dmx_dist_sum_f32(pack, need);
    allreduce_floats += (double)need;
    for (int r = 0; r < sp->n_rows; r++) memcpy(p + (size_t)sp->rows[r] * w, pack + r * w, w * sizeof(float));
    dmx_unmap(rt, tb, p);
    sum_dense(rt, (dmx_tensor){a.buf, tb.off + tb.n, a.off + a.n - tb.off - tb.n});
  }
  dmx_finish(rt);
  allreduce_seconds += dmx_now_seconds() - t0;
  allreduce_calls++;
}

void dmx_dp_report(double train_seconds, size_t floats, FILE *log) {
  const dmx_dist *w = dmx_dist_world();
  if (w->size == 1 || !log) return;
  fprintf(log,
          "data-parallel: %ld gradient all-reduces of %.1f MiB on average (of %.1f MiB of gradients) took %.2f s, "
          "%.1f%% of the %.1f s of training (%.1f ms each, waiting for the slowest rank included)\n",
          allreduce_calls, allreduce_calls ? allreduce_floats * 4 / 1048576.0 / allreduce_calls : 0,
          floats * 4 / 1048576.0, allreduce_seconds,
          train_seconds > 0 ? 100 * allreduce_seconds / train_seconds : 0, train_seconds,
          allreduce_calls ? 1000 * allreduce_seconds / allreduce_calls : 0);
  allreduce_seconds = allreduce_floats = 0;
  allreduce_calls = 0;
}

void dmx_dp_bcast_arena(dmx_runtime *rt, const dmx_arena *a) {
  if (dmx_dist_world()->size == 1) return;
  for (int b = 0; b < a->n_buffers; b++) {
    dmx_tensor t = {a->bufs[b], 0, a->used[b]};
    if (t.n == 0) continue;
    float *p = dmx_map(rt, t);
    dmx_dist_bcast(p, t.n * sizeof(float), 0);
    dmx_unmap(rt, t, p);
  }
}

void dmx_dp_check_same(dmx_runtime *rt, const dmx_arena *a, const char *what) {
  const dmx_dist *w = dmx_dist_world();
  if (w->size == 1) return;
  uint64_t h = 1469598103934665603ULL; /* FNV-1a over the bits */
  for (int b = 0; b < a->n_buffers; b++) {
    dmx_tensor t = {a->bufs[b], 0, a->used[b]};
    if (t.n == 0) continue;
    float *p = dmx_map(rt, t);
    const unsigned char *c = (const unsigned char *)p;
    for (size_t i = 0; i < t.n * sizeof(float); i++) h = (h ^ c[i]) * 1099511628211ULL;
    dmx_unmap(rt, t, p);
  }
  uint64_t *all = dmx_malloc((size_t)w->size * sizeof *all);
  dmx_dist_allgather(&h, sizeof h, all);
  for (int r = 1; r < w->size; r++)
    if (all[r] != all[0])
      dmx_die("the %s of rank %d differ from rank 0's: the ranks no longer train one model (a rank's device or MPI "
              "returned different sums); rerun, and report it with `datamux devices` of each host",
              what, r);
  free(all);
}

void dmx_dp_sum_stats(dmx_step_stats *st) {
  if (dmx_dist_world()->size == 1) return;
  double v[6] = {st->task_loss_sum, st->retrieval_loss_sum, st->task_count,
                 st->retrieval_count, st->task_correct,  st->retrieval_correct};
  dmx_dist_sum_f64(v, 6);
  st->task_loss_sum = v[0];
  st->retrieval_loss_sum = v[1];
  st->task_count = (int)v[2];
  st->retrieval_count = (int)v[3];
  st->task_correct = (int)v[4];
  st->retrieval_correct = (int)v[5];
}

int dmx_dp_agree_stop(int signal, bool *out_of_time) {
  const dmx_dist *w = dmx_dist_world();
  if (w->size == 1) return signal;
  /* one MAX: the signal above bit 0, rank 0's time budget in it (lost only when a signal stops
   * the run anyway) */
  int agreed = dmx_dist_max_int(signal << 1 | (w->rank == 0 && *out_of_time));
  *out_of_time = agreed & 1;
  return agreed >> 1;
}

void dmx_dp_announce(const dmx_runtime *rt, FILE *log) {
  const dmx_dist *w = dmx_dist_world();
  if (w->size == 1) return;
  struct {
    char host[64], device[192];
  } mine, *all = dmx_calloc((size_t)w->size, sizeof mine);
  memset(&mine, 0, sizeof mine);
  if (gethostname(mine.host, sizeof mine.host - 1) != 0) snprintf(mine.host, sizeof mine.host, "?");
  snprintf(mine.device, sizeof mine.device, "%.120s (%.64s)", rt->info.name, rt->info.platform_name);
  dmx_dist_allgather(&mine, sizeof mine, all);
  int hosts = 0;
  for (int r = 0; r < w->size; r++) {
    bool seen = false;
    for (int q = 0; q < r; q++) seen |= !strcmp(all[q].host, all[r].host);
    hosts += !seen;
  }
  if (log && w->rank == 0) {
    fprintf(log, "data-parallel: %d ranks on %d host%s\n", w->size, hosts, hosts == 1 ? "" : "s");
    for (int r = 0; r < w->size; r++) fprintf(log, "  rank %d on %s: %s\n", r, all[r].host, all[r].device);
  }
  free(all);
}
