#include "host/run/train_state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/base/json.h"
#include "host/formats/safetensors.h"

/* A rename is durable only once the folder holding the entry is synced. */
static int sync_dir(const char *dir, dmx_error *err) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return dmx_fail(err, "%s: cannot open to sync: %s", dir, strerror(errno));
  int rc = fsync(fd);
  close(fd);
  return rc == 0 ? 0 : dmx_fail(err, "%s: fsync failed: %s", dir, strerror(errno));
}

/* optimizer.safetensors: one F32 tensor per arena buffer and moment, named adam_m.<b> / adam_v.<b>. */
int dmx_moments_save(dmx_runtime *rt, const dmx_arena *adam_m, const dmx_arena *adam_v, const char *dir, int step,
                     dmx_error *err) {
  const dmx_arena *arena[2] = {adam_m, adam_v};
  int nb = arena[0]->n_buffers;
  char names[2 * 64][32];
  if (nb > 64) return dmx_fail(err, "optimizer state spans %d buffers; at most 64 are supported", nb);
  float **host = dmx_calloc((size_t)(2 * nb) + 1, sizeof(float *));
  dmx_st_writer *w = dmx_st_writer_new();
  int rc = 0;
  for (int k = 0; k < 2 && rc == 0; k++)
    for (int b = 0; b < nb && rc == 0; b++) {
      size_t n = arena[k]->used[b];
      float *h = host[k * nb + b] = dmx_malloc(n * sizeof(float) + 1);
      dmx_download(rt, h, (dmx_tensor){arena[k]->bufs[b], 0, n}, n * sizeof(float));
      snprintf(names[k * nb + b], sizeof names[0], "adam_%c.%d", k ? 'v' : 'm', b);
      int64_t shape[1] = {(int64_t)n};
      rc = dmx_st_writer_add(w, names[k * nb + b], DMX_ST_F32, 1, shape, h, err);
    }
  char stepstr[32], path[4200];
  snprintf(stepstr, sizeof stepstr, "%d", step);
  if (rc == 0) rc = dmx_st_writer_meta(w, "step", stepstr, err);
  snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
  if (rc == 0) rc = dmx_st_writer_write(w, path, err);
  dmx_st_writer_free(w);
  for (int i = 0; i < 2 * nb; i++) free(host[i]);
  free(host);
  return rc;
}

int dmx_moments_load(dmx_runtime *rt, const dmx_arena *adam_m, const dmx_arena *adam_v, const char *dir, int step,
                     dmx_error *err) {
  const dmx_arena *arena[2] = {adam_m, adam_v};
  char path[4200];
  snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
  dmx_st_file *f = dmx_st_load(path, err);
  if (!f) return -1;
  const char *saved = dmx_st_meta(f, "step");
  if (!saved || atoi(saved) != step) {
    dmx_fail(err,
             "%s: optimizer state is from step %s but trainer_state.json says %d (a mixed checkpoint: resume "
             "from another run directory or start over)",
             path, saved ? saved : "(none)", step);
    dmx_st_free(f);
    return -1;
  }
  int rc = 0;
  for (int k = 0; k < 2 && rc == 0; k++) {
    const dmx_arena *a = arena[k];
    for (int b = 0; b < a->n_buffers && rc == 0; b++) {
      char name[32];
      snprintf(name, sizeof name, "adam_%c.%d", k ? 'v' : 'm', b);
      size_t n = a->used[b];
      float *h = dmx_malloc(n * sizeof(float) + 1);
      rc = dmx_st_get_f32(f, name, h, n, err);
      if (rc == 0) dmx_upload(rt, (dmx_tensor){a->bufs[b], 0, n}, h, n * sizeof(float));
      free(h);
    }
  }
  if (rc == 0 && dmx_st_count(f) != (size_t)(2 * adam_m->n_buffers))
    rc = dmx_fail(err, "%s: %zu tensors, but this model's optimizer state has %d (another model?)", path,
                  dmx_st_count(f), 2 * adam_m->n_buffers);
  dmx_st_free(f);
  return rc;
}

int dmx_train_state_write(const char *dir, const dmx_train_state *s, dmx_error *err) {
  char path[4200], buf[1024];
  snprintf(path, sizeof path, "%s/trainer_state.json", dir);
  /* %.17g: doubles round-trip exactly, so a resumed run compares best metrics bit for bit */
  int n =
      snprintf(buf, sizeof buf,
               "{\n  \"step\": %d,\n  \"total_steps\": %d,\n  \"epoch\": %d,\n  \"next_row\": %d,\n"
               "  \"rng\": \"%016" PRIx64
               "\",\n  \"best_step\": %d,\n  \"best_metric\": %.17g,\n"
               "  \"train_seconds\": %.17g,\n  \"world_size\": %d\n}\n",
               s->step, s->total_steps, s->epoch, s->next_row, s->rng, s->best_step, s->best_metric, s->train_seconds,
               s->world_size > 0 ? s->world_size : 1);
  return dmx_write_file_atomic(path, buf, (size_t)n, err);
}

static int read_long(const dmx_json *root, const char *path, const char *key, long *out, dmx_error *err) {
  long long v;
  if (!dmx_json_integer(dmx_json_member(root, key), -1000000000000LL, 1000000000000LL, &v))
    return dmx_fail(err, "%s: missing or malformed \"%s\" (the file is damaged: resume from another checkpoint)", path,
                    key);
  *out = (long)v;
  return 0;
}

static int read_double(const dmx_json *root, const char *path, const char *key, double *out, dmx_error *err) {
  if (!dmx_json_number(dmx_json_member(root, key), out))
    return dmx_fail(err, "%s: missing or malformed \"%s\" (the file is damaged: resume from another checkpoint)", path,
                    key);
  return 0;
}

int dmx_train_state_read(const char *dir, dmx_train_state *s, dmx_error *err) {
  char path[4200];
  snprintf(path, sizeof path, "%s/trainer_state.json", dir);
  dmx_json root;
  if (dmx_json_parse_file(path, "trainer state (resume from another checkpoint)", &root, err)) return -1;
  long step = 0, total = 0, epoch = 0, next = 0, best_step = 0;
  int rc = read_long(&root, path, "step", &step, err);
  if (!rc) rc = read_long(&root, path, "total_steps", &total, err);
  if (!rc) rc = read_long(&root, path, "epoch", &epoch, err);
  if (!rc) rc = read_long(&root, path, "next_row", &next, err);
  if (!rc) rc = read_long(&root, path, "best_step", &best_step, err);
  if (!rc) rc = read_double(&root, path, "best_metric", &s->best_metric, err);
  if (!rc) rc = read_double(&root, path, "train_seconds", &s->train_seconds, err);
  long world = 1; /* absent in checkpoints written before data-parallel training: one process */
  if (!rc && dmx_json_member(&root, "world_size")) rc = read_long(&root, path, "world_size", &world, err);
  const char *r = rc ? NULL : dmx_json_string(dmx_json_member(&root, "rng"));
  char *end = NULL;
  if (r) {
    errno = 0;
    s->rng = (uint64_t)strtoull(r, &end, 16);
  }
  if (!rc && (!r || strlen(r) != 16 || strspn(r, "0123456789abcdefABCDEF") != 16 || errno || *end)) rc = dmx_fail(err, "%s: missing or malformed \"rng\"", path);
  dmx_json_free(&root);
  if (rc) return -1;
  if (step < 0 || total < 1 || step > total || epoch < 0 || next < 0 || best_step < -1 || best_step > step ||
      step > 1000000000 || total > 1000000000 || epoch > 1000000000 || next > 1000000000 || world < 1 ||
      world > 1000000)
    return dmx_fail(err, "%s: values out of range (step %ld of %ld, epoch %ld, row %ld, best step %ld, world size %ld)",
                    path, step, total, epoch, next, best_step, world);
  s->world_size = (int)world;
  s->step = (int)step;
  s->total_steps = (int)total;
  s->epoch = (int)epoch;
  s->next_row = (int)next;
  s->best_step = (int)best_step;
  return 0;
}

int dmx_checkpoint_swap(const char *run_dir, const char *tag, dmx_checkpoint_fill fill, void *ctx, dmx_error *err) {
  char tmp[2100], dst[2100], old[2100];
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", run_dir, tag);
  snprintf(dst, sizeof dst, "%s/%s", run_dir, tag);
  snprintf(old, sizeof old, "%s/%s.old", run_dir, tag);
  if (dmx_remove_flat_dir(tmp, err)) return -1; /* left by a crash mid-write: never complete, never read */
  if (dmx_mkdirs(tmp, err) || fill(ctx, tmp, err) || sync_dir(tmp, err)) {
    /* a full disk most often: free what the unfinished copy holds; <tag>/ is untouched */
    dmx_error ignored;
    if (dmx_remove_flat_dir(tmp, &ignored) == 0 && err) {
      size_t n = strlen(err->msg);
      snprintf(err->msg + n, sizeof err->msg - n, " (the unfinished %s/ was removed; %s/ is as it was)", tmp, tag);
    }
    return -1;
  }
  /* <tag>.old is complete whenever it exists, so a crash before the next rename loses nothing */
  if (dmx_is_dir(dst) && dmx_is_dir(old) && dmx_remove_flat_dir(old, err)) return -1;
  if (dmx_is_dir(dst) && rename(dst, old) != 0)
    return dmx_fail(err, "%s: cannot move aside to %s: %s", dst, old, strerror(errno));
  if (rename(tmp, dst) != 0) return dmx_fail(err, "%s: cannot rename to %s: %s", tmp, dst, strerror(errno));
  if (sync_dir(run_dir, err)) return -1;
  return dmx_remove_flat_dir(old, err);
}

int dmx_checkpoint_dir(const char *run_dir, const char *tag, char *out, size_t cap, dmx_error *err) {
  snprintf(out, cap, "%s/%s", run_dir, tag);
  if (dmx_is_dir(out)) return 0;
  snprintf(out, cap, "%s/%s.old", run_dir, tag);
  if (dmx_is_dir(out)) return 0;
  return dmx_fail(err, "%s: no %s/ checkpoint there (is it a run directory of `datamux train`?)", run_dir, tag);
}
