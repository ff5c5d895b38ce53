/* `datamux sweep`: the sweep file, the points, and running them as child processes (sweep.h). */
#define _GNU_SOURCE
#include "host/run/sweep.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host/base/yaml_util.h"
#include "host/run/train_state.h"
#include "host/runtime/device.h"

static const char *const top_keys[] = {"base", "output_dir", "set", "grid", "list"};

/* A scalar value of an override: numbers, words, strings; never a list or mapping. */
static int read_kv(dmx_yaml_file *y, const char *path, yaml_node_t *key, yaml_node_t *value, dmx_sweep_kv *kv,
                   dmx_error *err) {
  if (key->type != YAML_SCALAR_NODE)
    return dmx_yaml_fail_at(err, path, key->start_mark, "keys must be experiment paths, got %s",
                            dmx_yaml_kind_name(key));
  const char *k = dmx_yaml_scalar(key);
  if (strlen(k) >= sizeof kv->key) return dmx_yaml_fail_at(err, path, key->start_mark, "key '%.60s...' is too long", k);
  if (!strcmp(k, "output_dir"))
    return dmx_yaml_fail_at(err, path, key->start_mark,
                            "output_dir is the sweep's: each point runs in <output_dir>/<its name> (set the sweep's "
                            "own output_dir at the top level)");
  if (value->type != YAML_SCALAR_NODE)
    return dmx_yaml_fail_at(err, path, value->start_mark, "%s: expected one value, got %s", k,
                            dmx_yaml_kind_name(value));
  const char *v = dmx_yaml_is_null(value) ? "" : dmx_yaml_scalar(value);
  if (strlen(v) >= sizeof kv->value) return dmx_yaml_fail_at(err, path, value->start_mark, "%s: value too long", k);
  snprintf(kv->key, sizeof kv->key, "%s", k);
  snprintf(kv->value, sizeof kv->value, "%s", v);
  kv->line = (int)value->start_mark.line + 1;
  kv->column = (int)value->start_mark.column + 1;
  /* the key and the value, checked alone now, so the message points at the file's line */
  dmx_experiment scratch;
  dmx_experiment_defaults(&scratch);
  dmx_error why;
  if (dmx_experiment_set(&scratch, kv->key, kv->value, &why)) /* its message is worded for the flag */
    return dmx_yaml_fail_at(err, path, key->start_mark, "%s", why.msg + (strncmp(why.msg, "--set ", 6) ? 0 : 6));
  (void)y;
  return 0;
}

static int add_axis(dmx_sweep *s, const char *key, bool grid, const char *path, yaml_mark_t mark, dmx_error *err) {
  for (int a = 0; a < s->naxes; a++)
    if (!strcmp(s->axes[a], key)) return 0;
  if (s->naxes == DMX_SWEEP_MAX_AXES)
    return dmx_yaml_fail_at(err, path, mark, "more than %d keys vary", DMX_SWEEP_MAX_AXES);
  s->grid_axis[s->naxes] = grid;
  snprintf(s->axes[s->naxes++], sizeof s->axes[0], "%s", key);
  return 0;
}

typedef struct {
  dmx_sweep_kv *values; /* nvalues of key */
  int nvalues;
} grid_axis;

/* A folder-name-safe copy: letters, digits, '.', '-', '+' stay; anything else becomes '_'. */
static void safe_name(const char *in, char *out, size_t cap) {
  size_t j = 0;
  for (const char *p = in; *p && j + 1 < cap; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '+';
    out[j++] = ok ? c : '_';
  }
  out[j] = 0;
  if (!j) snprintf(out, cap, "empty");
}

static const char *last_part(const char *key) {
  const char *dot = strrchr(key, '.');
  return dot ? dot + 1 : key;
}

/* The point's experiment: base, then set, then its own overrides, output_dir its folder. */
static int resolve_point(const dmx_sweep *s, const dmx_sweep_point *p, const char *data_dir, dmx_experiment *e,
                         dmx_error *err) {
  dmx_error why;
  if (dmx_experiment_load(e, s->base, &why)) return dmx_fail(err, "%s: the base experiment: %s", s->path, why.msg);
  for (int i = 0; i < s->nset; i++)
    if (dmx_experiment_set(e, s->set[i].key, s->set[i].value, &why))
      return dmx_fail(err, "%s:%d:%d: %s", s->path, s->set[i].line, s->set[i].column, why.msg);
  for (int i = 0; i < p->n; i++)
    if (dmx_experiment_set(e, p->kv[i].key, p->kv[i].value, &why))
      return dmx_fail(err, "%s:%d:%d: %s", s->path, p->kv[i].line, p->kv[i].column, why.msg);
  if (dmx_experiment_set(e, "output_dir", p->dir, &why)) return dmx_fail(err, "%s: %s", s->path, why.msg);
  if (data_dir && dmx_experiment_set(e, "task.data_dir", data_dir, &why))
    return dmx_fail(err, "--data-dir: %s", why.msg);
  if (dmx_experiment_validate(e, &why)) {
    char where[256] = "";
    size_t used = 0;
    for (int i = 0; i < p->n; i++) {
      int w = snprintf(where + used, sizeof where - used, "%s%d", i ? ", " : "", p->kv[i].line);
      if (w > 0 && (size_t)w < sizeof where - used) used += (size_t)w;
    }
    return dmx_fail(err, "%s: point %s (overrides on line%s %s): %s", s->path, p->name, p->n > 1 ? "s" : "",
                    p->n ? where : "-", why.msg);
  }
  return 0;
}

/* Whether the run directory holds this point's experiment: a sweep file edited after a point ran
 * must not resume or skip that point under the old settings silently. */
static int check_same_experiment(const dmx_sweep_point *p, const dmx_experiment *want, dmx_error *err) {
  char stored_path[1700];
  snprintf(stored_path, sizeof stored_path, "%s/experiment.yaml", p->dir);
  if (!dmx_is_file(stored_path)) return 0;
  dmx_experiment stored, w = *want;
  dmx_error why;
  if (dmx_experiment_load(&stored, stored_path, &why)) return dmx_fail(err, "%s", why.msg);
  /* what `datamux train --resume` lets change */
  snprintf(w.device, sizeof w.device, "%s", stored.device);
  snprintf(w.task.data_dir, sizeof w.task.data_dir, "%s", stored.task.data_dir);
  w.train.time_budget_seconds = stored.train.time_budget_seconds;
  w.train.log_interval = stored.train.log_interval;
  snprintf(w.output_dir, sizeof w.output_dir, "%s", stored.output_dir);
  char what[128];
  if (dmx_experiment_diff(&w, &stored, what, sizeof what) == 0) return 0;
  return dmx_fail(err,
                  "%s holds a run of another experiment than point %s (%s differs, among others perhaps): the "
                  "sweep file or the base experiment changed since it ran. Move that folder away to run the point "
                  "again, or restore the sweep",
                  p->dir, p->name, what);
}

static void point_state(dmx_sweep_point *p) {
  char f[1800], ckpt[1800];
  snprintf(f, sizeof f, "%s/results.json", p->dir);
  dmx_error ignored;
  if (dmx_is_file(f))
    p->state = DMX_POINT_DONE;
  else if (dmx_checkpoint_dir(p->dir, "last", ckpt, sizeof ckpt, &ignored) == 0)
    p->state = DMX_POINT_RESUME;
  else
    p->state = DMX_POINT_NEW;
}

/* The grid's value lists (grid, ngrid) are the caller's to free, whatever this returns. */
static int load_sweep(dmx_sweep *s, dmx_yaml_file *y, const char *path, const char *data_dir, grid_axis *grid,
                      int *ngrid_out, dmx_error *err) {
  yaml_node_t *root = dmx_yaml_root(y);
  if (root->type != YAML_MAPPING_NODE)
    return dmx_yaml_fail_at(err, path, root->start_mark, "a sweep file is a mapping (base:, grid:, list:, set:)");
  int ngrid = 0;
  yaml_node_t *list = NULL;
  bool seen[5] = {false};
  for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
    yaml_node_t *k = dmx_yaml_node(y, pr->key), *v = dmx_yaml_node(y, pr->value);
    const char *name = dmx_yaml_scalar(k);
    int which = -1;
    for (int i = 0; name && i < 5; i++)
      if (!strcmp(name, top_keys[i])) which = i;
    if (which < 0) {
      const char *near = name ? dmx_closest_word(name, top_keys, 5) : NULL;
      return dmx_yaml_fail_at(err, path, k->start_mark, "unknown key '%s' at top level (%s%s%s)", name ? name : "?",
                              near ? "did you mean '" : "valid: base, output_dir, set, grid, list",
                              near ? near : "", near ? "'?" : "");
    }
    if (seen[which]) return dmx_yaml_fail_at(err, path, k->start_mark, "duplicate key '%s'", name);
    seen[which] = true;
    if (which <= 1) { /* base, output_dir */
      if (v->type != YAML_SCALAR_NODE || dmx_yaml_is_null(v))
        return dmx_yaml_fail_at(err, path, v->start_mark, "%s: expected a path", name);
      char *dst = which == 0 ? s->base : s->out_dir;
      if (strlen(dmx_yaml_scalar(v)) >= sizeof s->base)
        return dmx_yaml_fail_at(err, path, v->start_mark, "%s: path too long", name);
      snprintf(dst, sizeof s->base, "%s", dmx_yaml_scalar(v));
      if (which == 0 && !dmx_is_file(s->base))
        return dmx_yaml_fail_at(err, path, v->start_mark,
                                "base: no experiment file %s (paths are taken from the current directory: run "
                                "datamux sweep from the folder the sweep was written for)",
                                s->base);
    } else if (which == 2) { /* set */
      if (v->type != YAML_MAPPING_NODE)
        return dmx_yaml_fail_at(err, path, v->start_mark, "set: expected a mapping of KEY: VALUE, got %s",
                                dmx_yaml_kind_name(v));
      for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
        if (s->nset == DMX_SWEEP_MAX_SET)
          return dmx_yaml_fail_at(err, path, v->start_mark, "set: more than %d keys", DMX_SWEEP_MAX_SET);
        if (read_kv(y, path, dmx_yaml_node(y, q->key), dmx_yaml_node(y, q->value), &s->set[s->nset], err)) return -1;
        s->nset++;
      }
    } else if (which == 3) { /* grid */
      if (v->type != YAML_MAPPING_NODE)
        return dmx_yaml_fail_at(err, path, v->start_mark, "grid: expected a mapping of KEY: [VALUES], got %s",
                                dmx_yaml_kind_name(v));
      for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
        yaml_node_t *gk = dmx_yaml_node(y, q->key), *gv = dmx_yaml_node(y, q->value);
        if (ngrid == DMX_SWEEP_MAX_AXES)
          return dmx_yaml_fail_at(err, path, gk->start_mark, "grid: more than %d keys", DMX_SWEEP_MAX_AXES);
        if (gv->type != YAML_SEQUENCE_NODE || gv->data.sequence.items.top == gv->data.sequence.items.start)
          return dmx_yaml_fail_at(err, path, gv->start_mark, "grid: %s: expected a list of values, [A, B, ...]",
                                  dmx_yaml_scalar(gk) ? dmx_yaml_scalar(gk) : "?");
        int nv = (int)(gv->data.sequence.items.top - gv->data.sequence.items.start);
        grid[ngrid].values = dmx_calloc((size_t)nv, sizeof(dmx_sweep_kv));
        grid[ngrid].nvalues = nv;
        *ngrid_out = ++ngrid;
        for (int j = 0; j < nv; j++) {
          if (read_kv(y, path, gk, dmx_yaml_node(y, gv->data.sequence.items.start[j]), &grid[ngrid - 1].values[j],
                      err))
            return -1;
          for (int jj = 0; jj < j; jj++)
            if (!strcmp(grid[ngrid - 1].values[jj].value, grid[ngrid - 1].values[j].value)) {
              dmx_yaml_fail_at(err, path, dmx_yaml_node(y, gv->data.sequence.items.start[j])->start_mark,
                               "grid: %s lists '%s' twice", grid[ngrid - 1].values[j].key,
                               grid[ngrid - 1].values[j].value);
              return -1;
            }
        }
        for (int g = 0; g + 1 < ngrid; g++)
          if (!strcmp(grid[g].values[0].key, grid[ngrid - 1].values[0].key)) {
            dmx_yaml_fail_at(err, path, gk->start_mark, "duplicate key '%s'", grid[g].values[0].key);
            return -1;
          }
        if (add_axis(s, grid[ngrid - 1].values[0].key, true, path, gk->start_mark, err)) return -1;
      }
    } else { /* list */
      if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start)
        return dmx_yaml_fail_at(err, path, v->start_mark, "list: expected a list of mappings, - {KEY: VALUE, ...}");
      list = v;
      /* its keys become axes here, so the axes keep the file's order */
      for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
        yaml_node_t *m = dmx_yaml_node(y, *it);
        if (m->type != YAML_MAPPING_NODE) continue; /* refused below */
        for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < m->data.mapping.pairs.top; q++) {
          const char *key = dmx_yaml_scalar(dmx_yaml_node(y, q->key));
          if (key && add_axis(s, key, false, path, m->start_mark, err)) return -1;
        }
      }
    }
  }
  if (!seen[0]) {
    dmx_fail(err, "%s: no base: name the experiment every point starts from (base: experiments/quickstart.yaml)",
             path);
    return -1;
  }
  if (!s->out_dir[0]) {
    const char *slash = strrchr(path, '/');
    char stem[256];
    snprintf(stem, sizeof stem, "%s", slash ? slash + 1 : path);
    char *dot = strrchr(stem, '.');
    if (dot) *dot = 0;
    snprintf(s->out_dir, sizeof s->out_dir, "runs/sweeps/%s", stem);
  }
  /* list entries: their keys become axes too */
  int nlist = list ? (int)(list->data.sequence.items.top - list->data.sequence.items.start) : 0;
  if (list)
    for (int j = 0; j < nlist; j++) {
      yaml_node_t *m = dmx_yaml_node(y, list->data.sequence.items.start[j]);
      if (m->type != YAML_MAPPING_NODE || m->data.mapping.pairs.top == m->data.mapping.pairs.start) {
        dmx_yaml_fail_at(err, path, m->start_mark, "list: each entry is a mapping of KEY: VALUE, got %s",
                         m->type == YAML_MAPPING_NODE ? "an empty one" : dmx_yaml_kind_name(m));
        return -1;
      }
    }
  long total = nlist ? nlist : 1;
  for (int g = 0; g < ngrid; g++) total *= grid[g].nvalues;
  if (total > DMX_SWEEP_MAX_POINTS) {
    dmx_fail(err, "%s: %ld points: more than %d", path, total, DMX_SWEEP_MAX_POINTS);
    return -1;
  }
  s->points = dmx_calloc((size_t)total, sizeof *s->points);
  s->seed_axis = -1;
  for (int a = 0; a < s->naxes; a++)
    if (!strcmp(s->axes[a], "training.seed")) s->seed_axis = a;
  /* short names for folder names: the last part of each key, unless two axes share it */
  char shortname[DMX_SWEEP_MAX_AXES][128];
  for (int a = 0; a < s->naxes; a++) {
    bool clash = false;
    for (int b = 0; b < s->naxes; b++)
      if (b != a && !strcmp(last_part(s->axes[a]), last_part(s->axes[b]))) clash = true;
    safe_name(clash ? s->axes[a] : last_part(s->axes[a]), shortname[a], sizeof shortname[a]);
  }
  for (long i = 0; i < total; i++) {
    dmx_sweep_point *p = &s->points[s->npoints++];
    long rest = i;
    int li = 0;
    /* the grid's last key varies fastest; list entries slowest */
    int idx[DMX_SWEEP_MAX_AXES];
    for (int g = ngrid - 1; g >= 0; g--) {
      idx[g] = (int)(rest % grid[g].nvalues);
      rest /= grid[g].nvalues;
    }
    li = (int)rest;
    if (list) {
      yaml_node_t *m = dmx_yaml_node(y, list->data.sequence.items.start[li]);
      for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < m->data.mapping.pairs.top; q++) {
        if (p->n == DMX_SWEEP_MAX_AXES) {
          dmx_yaml_fail_at(err, path, m->start_mark, "list: too many keys");
          return -1;
        }
        if (read_kv(y, path, dmx_yaml_node(y, q->key), dmx_yaml_node(y, q->value), &p->kv[p->n], err)) return -1;
        for (int g = 0; g < ngrid; g++)
          if (!strcmp(grid[g].values[0].key, p->kv[p->n].key)) {
            dmx_yaml_fail_at(err, path, dmx_yaml_node(y, q->key)->start_mark,
                             "%s is both a grid key and a list key: give it in one place", p->kv[p->n].key);
            return -1;
          }
        p->n++;
      }
    }
    for (int g = 0; g < ngrid; g++) p->kv[p->n++] = grid[g].values[idx[g]];
  }
  /* names: every grid key's value, and a list key's only where the others leave two points alike
   * (a model_path that goes with each N stays out of the folder name) */
  bool in_name[DMX_SWEEP_MAX_AXES];
  for (int a = 0; a < s->naxes; a++) in_name[a] = true;
  for (int a = s->naxes - 1; a >= 0; a--) {
    if (s->grid_axis[a]) continue;
    in_name[a] = false;
    for (int i = 0; i < s->npoints && !in_name[a]; i++)
      for (int j = 0; j < i && !in_name[a]; j++) {
        bool alike = true;
        for (int b = 0; b < s->naxes && alike; b++) {
          if (!in_name[b]) continue;
          const char *vi = "", *vj = "";
          for (int k = 0; k < s->points[i].n; k++)
            if (!strcmp(s->points[i].kv[k].key, s->axes[b])) vi = s->points[i].kv[k].value;
          for (int k = 0; k < s->points[j].n; k++)
            if (!strcmp(s->points[j].kv[k].key, s->axes[b])) vj = s->points[j].kv[k].value;
          alike = !strcmp(vi, vj);
        }
        if (alike) in_name[a] = true; /* needed to tell points i and j apart */
      }
  }
  /* folders, resolved experiments, states */
  for (int i = 0; i < s->npoints; i++) {
    dmx_sweep_point *p = &s->points[i];
    size_t used = 0;
    for (int a = 0; a < s->naxes; a++)
      for (int k = 0; k < p->n && in_name[a]; k++) {
        if (strcmp(p->kv[k].key, s->axes[a])) continue;
        char v[256];
        safe_name(p->kv[k].value, v, sizeof v);
        int w = snprintf(p->name + used, sizeof p->name - used, "%s%s-%s", used ? "_" : "", shortname[a], v);
        if (w > 0 && (size_t)w < sizeof p->name - used) used += (size_t)w;
      }
    if (!used) snprintf(p->name, sizeof p->name, "run");
    for (int j = 0; j < i; j++)
      if (!strcmp(s->points[j].name, p->name)) {
        dmx_fail(err,
                 "%s: two points would share the folder %s (values that differ only in characters a folder "
                 "name cannot hold, or a list entry repeated)",
                 path, p->name);
        return -1;
      }
    snprintf(p->dir, sizeof p->dir, "%s/%s", s->out_dir, p->name);
    dmx_experiment e;
    if (resolve_point(s, p, data_dir, &e, err)) return -1;
    for (int a = 0; a < s->naxes; a++) dmx_experiment_field_text(&e, s->axes[a], p->axis_text[a], sizeof p->axis_text[a]);
    point_state(p);
    if (p->state != DMX_POINT_NEW && check_same_experiment(p, &e, err)) return -1;
  }
  return 0;
}

int dmx_sweep_load(dmx_sweep *s, const char *path, const char *data_dir, dmx_error *err) {
  memset(s, 0, sizeof *s);
  s->seed_axis = -1;
  snprintf(s->path, sizeof s->path, "%s", path);
  dmx_yaml_file y;
  if (dmx_yaml_load_file(&y, path, err)) return -1;
  grid_axis grid[DMX_SWEEP_MAX_AXES];
  int ngrid = 0;
  int rc = load_sweep(s, &y, path, data_dir, grid, &ngrid, err);
  for (int g = 0; g < ngrid; g++) free(grid[g].values);
  dmx_yaml_free(&y);
  if (rc) dmx_sweep_free(s);
  return rc;
}

void dmx_sweep_free(dmx_sweep *s) {
  free(s->points);
  s->points = NULL;
  s->npoints = 0;
}

/* ------------------------------------------------------------------ running */

static volatile sig_atomic_t stop_signal, signals_seen;

static void on_stop(int sig) {
  stop_signal = sig;
  signals_seen++;
}
static void on_child(int sig) { (void)sig; }

typedef struct {
  pid_t pid;
  int point;
  char device[64]; /* the --device given, "" for none */
} job;

/* The device of job slot `slot` of `jobs`, as MPI ranks on one host get theirs: a list entry, GPU
 * slot modulo the GPUs, else all share the default device. Into sel (a device index; "" when one
 * job runs at a time and no --device was given: each point then chooses as train does), and how
 * many slots share it when it is a CPU device (their PoCL threads are a share of the cores). */
static int slot_device(const dmx_sweep_opts *o, const dmx_device_info *devs, int ndev, int slot, char *sel,
                       size_t cap, int *cpu_sharers, dmx_error *err) {
  *cpu_sharers = 1;
  sel[0] = 0;
  if (o->jobs <= 1 && !o->devices) return 0;
  char why[256] = "";
  int idx = dmx_choose_device_for_rank(devs, ndev, o->devices, slot, o->jobs, why, sizeof why);
  if (idx < 0)
    return dmx_fail(err, "--device %s: no device for job %d (%s); see `datamux devices`", o->devices ? o->devices : "",
                    slot, why);
  snprintf(sel, cap, "%d", idx);
  int same = 0;
  for (int j = 0; j < o->jobs; j++) {
    char w[256];
    if (dmx_choose_device_for_rank(devs, ndev, o->devices, j, o->jobs, w, sizeof w) == idx) same++;
  }
  if (devs[idx].type & CL_DEVICE_TYPE_CPU) *cpu_sharers = same;
  return 0;
}

static pid_t start_point(const dmx_sweep *s, const dmx_sweep_point *p, const dmx_sweep_opts *o, const char *device,
                         int cpu_sharers, const sigset_t *old_mask, dmx_error *err) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return dmx_fail(err, "cannot find the datamux binary (/proc/self/exe): %s", strerror(errno));
  exe[n] = 0;
  if (dmx_mkdirs(p->dir, err)) return -1;
  char log[1800];
  snprintf(log, sizeof log, "%s/train.log", p->dir);
  int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return dmx_fail(err, "cannot open %s: %s", log, strerror(errno));
  /* argv: built before fork, so the child only execs */
  enum { MAXA = 2 * (DMX_SWEEP_MAX_SET + DMX_SWEEP_MAX_AXES) + 16 };
  char *argv[MAXA];
  static char sets[DMX_SWEEP_MAX_SET + DMX_SWEEP_MAX_AXES + 1][1800];
  int a = 0, ns = 0;
  argv[a++] = exe;
  argv[a++] = "train";
  if (p->state == DMX_POINT_RESUME) {
    argv[a++] = "--resume";
    argv[a++] = (char *)p->dir;
  } else {
    argv[a++] = (char *)s->base;
    for (int i = 0; i < s->nset; i++) {
      snprintf(sets[ns], sizeof sets[ns], "%s=%s", s->set[i].key, s->set[i].value);
      argv[a++] = "--set";
      argv[a++] = sets[ns++];
    }
    for (int i = 0; i < p->n; i++) {
      snprintf(sets[ns], sizeof sets[ns], "%s=%s", p->kv[i].key, p->kv[i].value);
      argv[a++] = "--set";
      argv[a++] = sets[ns++];
    }
    snprintf(sets[ns], sizeof sets[ns], "output_dir=%s", p->dir);
    argv[a++] = "--set";
    argv[a++] = sets[ns++];
  }
  if (device[0]) {
    argv[a++] = "--device";
    argv[a++] = (char *)device;
  }
  if (o->data_dir) {
    argv[a++] = "--data-dir";
    argv[a++] = (char *)o->data_dir;
  }
  argv[a] = NULL;
  char threads[24] = "";
  if (cpu_sharers > 1 && !getenv("POCL_MAX_PTHREAD_COUNT")) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long t = (cores > 0 ? cores : 1) / cpu_sharers;
    snprintf(threads, sizeof threads, "%ld", t > 0 ? t : 1);
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    close(fd);
    return dmx_fail(err, "fork failed: %s", strerror(errno));
  }
  if (pid == 0) {
    /* its own process group: a Ctrl-C at the terminal reaches the sweep alone, which passes it on
     * once (a second signal would make train stop without writing last/) */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* a sweep killed outright still stops its points cleanly */
    if (getppid() == 1) _exit(143);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    sigprocmask(SIG_SETMASK, old_mask, NULL);
    if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) _exit(127);
    if (threads[0]) setenv("POCL_MAX_PTHREAD_COUNT", threads, 1);
    execv(exe, argv);
    dprintf(STDERR_FILENO, "datamux sweep: cannot run %s: %s\n", exe, strerror(errno));
    _exit(127);
  }
  close(fd);
  return pid;
}

/* The last lines of a point's log, for a failure message. */
static void print_log_tail(const char *dir, int lines) {
  char path[1800];
  snprintf(path, sizeof path, "%s/train.log", dir);
  dmx_error ignored;
  size_t len;
  char *text = dmx_read_file(path, &len, &ignored);
  if (!text) return;
  size_t start = len;
  int seen = 0;
  while (start > 0) {
    if (text[start - 1] == '\n' && start != len && ++seen == lines) break;
    start--;
  }
  fprintf(stderr, "  last lines of %s:\n", path);
  for (char *l = strtok(text + start, "\n"); l; l = strtok(NULL, "\n")) fprintf(stderr, "    %s\n", l);
  free(text);
}

static const char *state_word(dmx_point_state st) {
  return st == DMX_POINT_DONE ? "done" : st == DMX_POINT_RESUME ? "resume" : "new";
}

int dmx_sweep_run(dmx_sweep *s, const dmx_sweep_opts *o) {
  int todo = 0;
  for (int i = 0; i < s->npoints; i++) todo += s->points[i].state != DMX_POINT_DONE;
  printf("sweep %s: %d points from %s in %s (%d done, %d to run, %d at a time)\n", s->path, s->npoints, s->base,
         s->out_dir, s->npoints - todo, todo, o->jobs);
  for (int i = 0; i < s->npoints; i++) printf("  [%s] %s\n", state_word(s->points[i].state), s->points[i].name);
  if (o->dry_run) return 0;
  dmx_error err = {{0}};
  if (dmx_mkdirs(s->out_dir, &err)) {
    fprintf(stderr, "datamux sweep: %s\n", err.msg);
    return 1;
  }
  dmx_device_info *devs = NULL;
  int ndev = 0;
  if (todo && (o->jobs > 1 || o->devices)) {
    ndev = dmx_list_devices(&devs);
    if (ndev == 0) {
      fprintf(stderr, "datamux sweep: no OpenCL device found (see `datamux devices`)\n");
      return 1;
    }
  }
  job *jobs = dmx_calloc((size_t)o->jobs, sizeof *jobs);
  char (*slot_sel)[64] = dmx_calloc((size_t)o->jobs, sizeof *slot_sel);
  int *sharers = dmx_calloc((size_t)o->jobs, sizeof *sharers);
  for (int j = 0; j < o->jobs && todo; j++)
    if (slot_device(o, devs, ndev, j, slot_sel[j], sizeof slot_sel[j], &sharers[j], &err)) {
      fprintf(stderr, "datamux sweep: %s\n", err.msg);
      free(jobs), free(slot_sel), free(sharers), free(devs);
      return 2;
    }
  free(devs);
  /* signals: blocked except while waiting, so none is lost between a check and the wait */
  struct sigaction sa = {0}, old_int, old_term, old_chld;
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_stop;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  sa.sa_handler = on_child;
  sigaction(SIGCHLD, &sa, &old_chld);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGCHLD);
  sigprocmask(SIG_BLOCK, &block, &old_mask);
  stop_signal = 0;
  signals_seen = 0;
  int next = 0, running = 0, failed = 0, finished = 0, forwarded = 0, rc = 0;
  double t0 = dmx_now_seconds();
  for (;;) {
    if (stop_signal && forwarded < signals_seen) {
      /* the first signal asks the points to write last/ and stop; a second one ends them now */
      int sig = forwarded == 0 ? stop_signal : SIGKILL;
      for (int j = 0; j < o->jobs; j++)
        if (jobs[j].pid > 0) kill(jobs[j].pid, sig);
      if (forwarded == 0)
        printf("sweep: signal %d: the running points write last/ and stop; no new point starts (run the sweep again "
               "to finish it)\n",
               stop_signal);
      forwarded = signals_seen;
    }
    while (!stop_signal && running < o->jobs) {
      while (next < s->npoints && s->points[next].state == DMX_POINT_DONE) next++;
      if (next >= s->npoints) break;
      int slot = 0;
      while (jobs[slot].pid > 0) slot++;
      dmx_sweep_point *p = &s->points[next];
      pid_t pid = start_point(s, p, o, slot_sel[slot], sharers[slot], &old_mask, &err);
      if (pid < 0) {
        fprintf(stderr, "datamux sweep: point %s: %s\n", p->name, err.msg);
        failed++;
        next++;
        continue;
      }
      jobs[slot].pid = pid;
      jobs[slot].point = next;
      printf("point %d/%d %s: %s%s%s (log %s/train.log)\n", next + 1, s->npoints, p->name,
             p->state == DMX_POINT_RESUME ? "resuming" : "started", slot_sel[slot][0] ? " on device " : "",
             slot_sel[slot], p->dir);
      running++;
      next++;
    }
    if (running == 0) break;
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid == 0 || (pid < 0 && errno == EINTR)) {
      sigsuspend(&old_mask); /* until a child ends or a signal comes */
      continue;
    }
    if (pid < 0) {
      fprintf(stderr, "datamux sweep: waitpid failed: %s\n", strerror(errno));
      rc = 1;
      break;
    }
    int slot = -1;
    for (int j = 0; j < o->jobs; j++)
      if (jobs[j].pid == pid) slot = j;
    if (slot < 0) continue;
    dmx_sweep_point *p = &s->points[jobs[slot].point];
    jobs[slot].pid = 0;
    running--;
    point_state(p);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && p->state == DMX_POINT_DONE) {
      finished++;
      printf("point %s: done (%.0f s into the sweep)\n", p->name, dmx_now_seconds() - t0);
    } else if (stop_signal && (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) >= 128))) {
      printf("point %s: stopped%s\n", p->name, p->state == DMX_POINT_RESUME ? " (last/ written: it resumes)" : "");
    } else {
      failed++;
      if (WIFSIGNALED(status))
        fprintf(stderr, "datamux sweep: point %s was killed by signal %d\n", p->name, WTERMSIG(status));
      else if (WEXITSTATUS(status) == 0)
        fprintf(stderr, "datamux sweep: point %s ended without a results.json (a run without a dev split?)\n",
                p->name);
      else
        fprintf(stderr, "datamux sweep: point %s failed (exit status %d)\n", p->name, WEXITSTATUS(status));
      print_log_tail(p->dir, 6);
    }
  }
  sigprocmask(SIG_SETMASK, &old_mask, NULL);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sigaction(SIGCHLD, &old_chld, NULL);
  free(jobs);
  free(slot_sel);
  free(sharers);
  if (dmx_sweep_collect(s, &err)) {
    fprintf(stderr, "datamux sweep: %s\n", err.msg);
    rc = 1;
  }
  int done = 0;
  for (int i = 0; i < s->npoints; i++) done += s->points[i].state == DMX_POINT_DONE;
  printf("sweep: %d of %d points done (%d this time, %d failed)\n", done, s->npoints, finished, failed);
  if (stop_signal) return 128 + stop_signal;
  if (failed || rc) return 1;
  return 0;
}
