/* Command-line flags: the original scripts' names, and --set section.key=value. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "host/config/config.h"
#include "host/base/yaml_util.h"
#include "host/config/fields.h"

/* ---------------------------------------------------------------------------------------------- */
/* Flags                                                                                           */

typedef struct {
  const char *names[3];
  const char *path;    /* field path, "config_name" or "set" */
  bool optional_value; /* boolean flags: bare means true */
} flag_desc;

static const flag_desc flag_table[] = {
    {{"-N", "--num_instances", "--num-instances"}, "multiplexing.num_instances", false},
    {{"-d", "--demuxing"}, "multiplexing.demuxing", false},
    {{"-m", "--muxing"}, "multiplexing.muxing", false},
    {{"-s", "--setting"}, "setting", false},
    {{"--task"}, "task.name", false},
    {{"--lr", "--learning_rate"}, "training.learning_rate", false},
    {{"--batch_size"}, "training.batch_size", false},
    {{"--config_name"}, "config_name", false},
    {{"--model_path"}, "model_path", false},
    {{"--learn_muxing"}, "multiplexing.learn_muxing", true},
    {{"--do_train"}, "training.do_train", true},
    {{"--do_eval"}, "training.do_eval", true},
    {{"--output_dir"}, "output_dir", false},
    {{"--device"}, "device", false},
    {{"--gemm-backend", "--gemm_backend"}, "gemm_backend", false},
    {{"--data-dir", "--data_dir"}, "task.data_dir", false},
    {{"--seed"}, "training.seed", false},
    {{"--max_steps"}, "training.max_steps", false},
    {{"--set"}, "set", false},
};

typedef struct {
  const flag_desc *desc;
  const char *name;  /* as typed, without any "=value" */
  const char *value; /* NULL only if missing */
} parsed_flag;

static int unknown_flag(const char *name, dmx_error *err) {
  const char *all[DMX_CFG_COUNT(flag_table) * 3];
  size_t n = 0;
  for (size_t k = 0; k < DMX_CFG_COUNT(flag_table); k++)
    for (int j = 0; j < 3 && flag_table[k].names[j]; j++) all[n++] = flag_table[k].names[j];
  const char *near = dmx_closest_word(name, all, n);
  if (near) return dmx_fail(err, "unknown flag '%s' (did you mean '%s'?)", name, near);
  return dmx_fail(err, "unknown flag '%s' (see `datamux config --help`)", name);
}

/* Reads the flag at argv[*i] (and its value), advancing *i past what it used. name_buf holds the
 * flag's name when it was given as --flag=value. */
static int next_flag(int argc, char **argv, int *i, parsed_flag *out, char *name_buf, size_t cap, dmx_error *err) {
  const char *arg = argv[*i];
  if (arg[0] != '-' || !arg[1])
    return dmx_fail(err, "unexpected argument '%s' (the experiment file goes first; flags start with '-')", arg);
  const char *eq = !strncmp(arg, "--", 2) ? strchr(arg, '=') : NULL;
  const char *name = arg;
  if (eq) {
    if ((size_t)(eq - arg) >= cap) return dmx_fail(err, "flag '%.40s...' is too long", arg);
    snprintf(name_buf, cap, "%.*s", (int)(eq - arg), arg);
    name = name_buf;
  }
  const flag_desc *d = NULL;
  for (size_t k = 0; k < DMX_CFG_COUNT(flag_table) && !d; k++)
    for (int j = 0; j < 3 && flag_table[k].names[j]; j++)
      if (!strcmp(flag_table[k].names[j], name)) d = &flag_table[k];
  if (!d) return unknown_flag(name, err);
  out->desc = d;
  out->name = name;
  (*i)++;
  bool b;
  if (eq) {
    out->value = eq + 1;
  } else if (d->optional_value) {
    /* Take the next word only if it reads as a boolean, so "--do_train --do_eval" works. */
    if (*i < argc && dmx_cfg_parse_bool(argv[*i], &b))
      out->value = argv[(*i)++];
    else
      out->value = "true";
  } else if (*i < argc) {
    out->value = argv[(*i)++];
  } else {
    return dmx_fail(err, "flag %s needs a value", name);
  }
  return 0;
}

static int set_field_text(dmx_experiment *e, int i, const char *value, dmx_field_origin origin, const char *who,
                          dmx_error *err) {
  char why[700];
  if (dmx_cfg_parse_value(e, i, value, why, sizeof why)) return dmx_fail(err, "%s: %s", who, why);
  e->origin[i] = origin;
  return 0;
}

static int unknown_path(const char *who, const char *path, dmx_error *err) {
  const char *all[DMX_MAX_FIELDS + 1];
  int n = 0;
  /* When the section is right, match the key among that section's keys (so "lr" finds learning_rate). */
  const char *dot = strchr(path, '.');
  for (int i = 0; dot && i < DMX_CFG_NUM_FIELDS; i++)
    if (!strncmp(dmx_cfg_fields[i].path, path, (size_t)(dot - path) + 1)) all[n++] = dmx_cfg_fields[i].key;
  const char *near_key = n ? dmx_closest_word(dot + 1, all, (size_t)n) : NULL;
  if (near_key)
    return dmx_fail(err, "%s: unknown key '%s' (did you mean '%.*s%s'?)", who, path, (int)(dot - path) + 1, path,
                    near_key);
  n = 0;
  for (int i = 0; i < DMX_CFG_NUM_FIELDS; i++) all[n++] = dmx_cfg_fields[i].path;
  all[n++] = "config_name";
  const char *near = dmx_closest_word(path, all, (size_t)n);
  if (near) return dmx_fail(err, "%s: unknown key '%s' (did you mean '%s'?)", who, path, near);
  return dmx_fail(err, "%s: unknown key '%s' (keys look like training.learning_rate or model.hidden_size)", who, path);
}

static int apply_config_name_flag(dmx_experiment *e, const char *who, const char *name, dmx_error *err) {
  if (!*name) return dmx_fail(err, "%s: expected a path to a model YAML file, got an empty value", who);
  char found[1024], tried[4096];
  if (!dmx_cfg_find_model_file(name, NULL, found, sizeof found, tried, sizeof tried))
    return dmx_fail(err, "%s: model file '%s' not found (looked for %s)", who, name, tried);
  dmx_error inner;
  if (dmx_cfg_load_model_file(e, found, &inner)) return dmx_fail(err, "%s: %s", who, inner.msg);
  return 0;
}

/* Applies one parsed flag; config_only selects the first pass (model files) or the second (the rest). */
static int apply_flag(dmx_experiment *e, const parsed_flag *f, bool config_only, dmx_error *err) {
  char who[160];
  snprintf(who, sizeof who, "flag %s", f->name);
  const char *path = f->desc->path, *value = f->value;
  char set_path[128];
  if (!strcmp(path, "set")) {
    const char *eq = strchr(value, '=');
    if (!eq) return dmx_fail(err, "flag --set expects key.path=value, got '%s'", value);
    if ((size_t)(eq - value) >= sizeof set_path) return dmx_fail(err, "flag --set: key '%.40s...' is too long", value);
    snprintf(set_path, sizeof set_path, "%.*s", (int)(eq - value), value);
    snprintf(who, sizeof who, "flag --set %s", set_path);
    path = set_path;
    value = eq + 1;
  }
  bool is_config = !strcmp(path, "config_name");
  if (is_config != config_only) return 0;
  if (is_config) return apply_config_name_flag(e, who, value, err);
  int i = dmx_cfg_find_field_path(path);
  if (i < 0) return unknown_path(who, path, err);
  /* For --set, f->value is the whole "path=value", which is what the message should quote. */
  bool via_set = !strcmp(f->desc->path, "set");
  dmx_field_origin o = dmx_cfg_flag_origin(via_set ? "--set" : f->name, f->value);
  return set_field_text(e, i, value, o, who, err);
}

int dmx_experiment_apply_flags(dmx_experiment *e, int argc, char **argv, dmx_error *err) {
  /* Two passes: a model file (--config_name) replaces the whole model, so it goes first and a
   * --set model.* anywhere on the line still wins over it. */
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < argc;) {
      parsed_flag f = {0};
      char name_buf[128];
      if (next_flag(argc, argv, &i, &f, name_buf, sizeof name_buf, err)) return -1;
      if (apply_flag(e, &f, pass == 0, err)) return -1;
    }
  }
  dmx_cfg_derive_defaults(e);
  return 0;
}

int dmx_experiment_set(dmx_experiment *e, const char *path, const char *value, dmx_error *err) {
  char who[160];
  snprintf(who, sizeof who, "--set %s", path);
  if (!strcmp(path, "config_name")) {
    if (apply_config_name_flag(e, who, value, err)) return -1;
  } else {
    int i = dmx_cfg_find_field_path(path);
    if (i < 0) return unknown_path(who, path, err);
    char text[256];
    snprintf(text, sizeof text, "%s=%s", path, value);
    if (set_field_text(e, i, value, dmx_cfg_flag_origin("--set", text), who, err)) return -1;
  }
  dmx_cfg_derive_defaults(e);
  return 0;
}

void dmx_experiment_describe_origin(const dmx_experiment *e, const char *path, char *out, size_t cap) {
  dmx_cfg_describe_origin(e, dmx_cfg_field_index(path), out, cap);
}
