/* Experiments: the field table, parsing one value, origins, defaults and YAML loading (flags.c,
 * validate.c and print.c do the rest of host/config/config.h).
 * Everything is driven by one table of dmx_cfg_fields (section, key, type, where it lives in the struct), so
 * the YAML reader, `--set`, the printer and the comparison can never disagree about a field. */
#include "host/config/config.h"
#include "host/config/fields.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "host/base/yaml_util.h"

/* ---------------------------------------------------------------------------------------------- */
/* The field table                                                                                 */

static const char *const muxing_names[] = {"gaussian_hadamard", "binary_hadamard", "random_ortho", NULL};
static const char *const demuxing_names[] = {"index", "mlp", NULL};
static const char *const setting_names[] = {"baseline", "retrieval_pretraining", "finetuning", NULL};
static const char *const schedule_names[] = {"linear", "constant", NULL};
static const char *const task_names[] = {"sst2", "mnli", "qnli", "qqp",   "cola",          "mrpc", "stsb", "rte",
                                         "wnli", "ner",  "text", "mnist", "fashion_mnist", "idx",  NULL};
static const char *const vision_model_names[] = {"lenet", "mlp", NULL};
static const char *const vision_muxing_names[] = {"none", "gaussian",    "graded",    "identity",         "learnable",
                                                  "so_n", "learnable_w", "nonlinear", "nonlinear_expand", "rotation",
                                                  NULL};
static const char *const vision_activation_names[] = {"tanh", "relu", NULL};
static const char *const vision_loss_names[] = {"mse", "xent", NULL};
static const char *const vision_optimizer_names[] = {"sgd", "adamw", NULL};
static const char *const gemm_backend_names[] = {"auto", "clblast", "host_blas", NULL};

_Static_assert(sizeof(dmx_vision_model_kind) == sizeof(int) && sizeof(dmx_vision_muxing) == sizeof(int) &&
                   sizeof(dmx_vision_activation) == sizeof(int) && sizeof(dmx_vision_loss) == sizeof(int) &&
                   sizeof(dmx_vision_optimizer) == sizeof(int),
               "vision enum fields are read and written as int");
_Static_assert(sizeof(dmx_muxing) == sizeof(int) && sizeof(dmx_demuxing) == sizeof(int) &&
                   sizeof(dmx_setting) == sizeof(int) && sizeof(dmx_schedule) == sizeof(int) &&
                   sizeof(dmx_cfg_gemm_backend) == sizeof(int),
               "enum fields are read and written as int");

#define MEMBER_SIZE(m) sizeof(((dmx_experiment *)0)->m)
#define FIELD(sec, key, type, member, choices) \
  { sec, #key, sec "." #key, type, offsetof(dmx_experiment, member), MEMBER_SIZE(member), choices }
#define TOP(key, type, choices) \
  { "", #key, #key, type, offsetof(dmx_experiment, key), MEMBER_SIZE(key), choices }
#define MODEL(key, type) FIELD("model", key, type, model.key, NULL)
#define MUX(key, type, choices) FIELD("multiplexing", key, type, mux.key, choices)
#define TASK(key, type, choices) FIELD("task", key, type, task.key, choices)
#define TRAIN(key, type, choices) FIELD("training", key, type, train.key, choices)
#define VISION(key, type, choices) FIELD("vision", key, type, vision.key, choices)

/* Table order is print order. */
const dmx_cfg_field dmx_cfg_fields[] = {
    TOP(name, DMX_FT_STRING, NULL),
    TOP(setting, DMX_FT_ENUM, setting_names),
    MODEL(vocab_size, DMX_FT_INT),
    MODEL(hidden_size, DMX_FT_INT),
    MODEL(num_layers, DMX_FT_INT),
    MODEL(num_heads, DMX_FT_INT),
    MODEL(intermediate_size, DMX_FT_INT),
    MODEL(max_position_embeddings, DMX_FT_INT),
    MODEL(type_vocab_size, DMX_FT_INT),
    MODEL(pad_token_id, DMX_FT_INT),
    MODEL(hidden_dropout, DMX_FT_FLOAT),
    MODEL(attention_dropout, DMX_FT_FLOAT),
    MODEL(layer_norm_eps, DMX_FT_FLOAT),
    MODEL(initializer_range, DMX_FT_FLOAT),
    MUX(num_instances, DMX_FT_INT, NULL),
    MUX(muxing, DMX_FT_ENUM, muxing_names),
    MUX(demuxing, DMX_FT_ENUM, demuxing_names),
    MUX(learn_muxing, DMX_FT_BOOL, NULL),
    MUX(gaussian_hadamard_norm, DMX_FT_FLOAT, NULL),
    MUX(binary_hadamard_epsilon, DMX_FT_FLOAT, NULL),
    MUX(attention_mask, DMX_FT_BOOL, NULL),
    MUX(second_embedding_pass, DMX_FT_BOOL, NULL),
    TASK(name, DMX_FT_CHOICE, task_names),
    TASK(data_dir, DMX_FT_STRING, NULL),
    TASK(train_file, DMX_FT_STRING, NULL),
    TASK(eval_file, DMX_FT_STRING, NULL),
    TASK(text_file, DMX_FT_STRING, NULL),
    TASK(tokenizer, DMX_FT_STRING, NULL),
    TASK(max_length, DMX_FT_INT, NULL),
    TASK(drop_last, DMX_FT_BOOL, NULL),
    TASK(max_train_examples, DMX_FT_INT, NULL),
    TASK(max_eval_examples, DMX_FT_INT, NULL),
    TRAIN(learning_rate, DMX_FT_FLOAT, NULL),
    TRAIN(batch_size, DMX_FT_INT, NULL),
    TRAIN(max_steps, DMX_FT_INT, NULL),
    TRAIN(epochs, DMX_FT_FLOAT, NULL),
    TRAIN(eval_interval, DMX_FT_INT, NULL),
    TRAIN(log_interval, DMX_FT_INT, NULL),
    TRAIN(save_interval, DMX_FT_INT, NULL),
    TRAIN(seed, DMX_FT_INT, NULL),
    TRAIN(max_grad_norm, DMX_FT_FLOAT, NULL),
    TRAIN(schedule, DMX_FT_ENUM, schedule_names),
    TRAIN(warmup_steps, DMX_FT_INT, NULL),
    TRAIN(weight_decay, DMX_FT_FLOAT, NULL),
    TRAIN(adam_beta1, DMX_FT_FLOAT, NULL),
    TRAIN(adam_beta2, DMX_FT_FLOAT, NULL),
    TRAIN(adam_eps, DMX_FT_FLOAT, NULL),
    TRAIN(task_loss_coeff, DMX_FT_FLOAT, NULL),
    TRAIN(retrieval_loss_coeff, DMX_FT_FLOAT, NULL),
    TRAIN(retrieval_percentage, DMX_FT_FLOAT, NULL),
    TRAIN(time_budget_seconds, DMX_FT_FLOAT, NULL),
    TRAIN(do_train, DMX_FT_BOOL, NULL),
    TRAIN(do_eval, DMX_FT_BOOL, NULL),
    VISION(model, DMX_FT_ENUM, vision_model_names),
    VISION(hidden_sizes, DMX_FT_STRING, NULL),
    VISION(muxing, DMX_FT_ENUM, vision_muxing_names),
    VISION(expand_channels, DMX_FT_INT, NULL),
    VISION(conv1_channels, DMX_FT_INT, NULL),
    VISION(activation, DMX_FT_ENUM, vision_activation_names),
    VISION(loss, DMX_FT_ENUM, vision_loss_names),
    VISION(optimizer, DMX_FT_ENUM, vision_optimizer_names),
    VISION(crop, DMX_FT_INT, NULL),
    TOP(model_path, DMX_FT_STRING, NULL),
    TOP(output_dir, DMX_FT_STRING, NULL),
    TOP(device, DMX_FT_STRING, NULL),
    TOP(gemm_backend, DMX_FT_ENUM, gemm_backend_names),
};
const int dmx_cfg_num_fields = (int)(sizeof dmx_cfg_fields / sizeof *dmx_cfg_fields);
_Static_assert(sizeof dmx_cfg_fields / sizeof *dmx_cfg_fields <= DMX_MAX_FIELDS, "raise DMX_MAX_FIELDS in config.h");

/* Top-level keys that are not plain dmx_cfg_fields. */
const char *const dmx_cfg_section_names[] = {"model", "multiplexing", "task", "training", "vision"};
const char *const dmx_cfg_top_level_keys[] = {"name",         "setting", "model",    "config_name",
                                              "multiplexing", "task",    "training", "model_path",
                                              "output_dir",   "device",  "vision",   "gemm_backend"};

int dmx_cfg_find_field(const char *section, const char *key) {
  for (int i = 0; i < DMX_CFG_NUM_FIELDS; i++)
    if (!strcmp(dmx_cfg_fields[i].section, section) && !strcmp(dmx_cfg_fields[i].key, key)) return i;
  return -1;
}

int dmx_cfg_find_field_path(const char *path) {
  for (int i = 0; i < DMX_CFG_NUM_FIELDS; i++)
    if (!strcmp(dmx_cfg_fields[i].path, path)) return i;
  return -1;
}

/* Internal lookups name paths literally; an unknown one is a bug in this file. */
int dmx_cfg_field_index(const char *path) {
  int i = dmx_cfg_find_field_path(path);
  if (i < 0) dmx_die("no experiment field '%s'", path);
  return i;
}

void *dmx_cfg_field_ptr(dmx_experiment *e, int i) { return (char *)e + dmx_cfg_fields[i].offset; }
const void *dmx_cfg_field_cptr(const dmx_experiment *e, int i) { return (const char *)e + dmx_cfg_fields[i].offset; }

const char *const *dmx_experiment_field_paths(void) {
  static const char *paths[DMX_MAX_FIELDS + 1];
  for (int i = 0; i < DMX_CFG_NUM_FIELDS; i++) paths[i] = dmx_cfg_fields[i].path;
  paths[DMX_CFG_NUM_FIELDS] = NULL;
  return paths;
}

/* ---------------------------------------------------------------------------------------------- */
/* Names                                                                                           */

const char *dmx_cfg_enum_name(const char *const *names, int count, int v) {
  return v >= 0 && v < count ? names[v] : "(invalid)";
}
const char *dmx_muxing_name(dmx_muxing m) { return dmx_cfg_enum_name(muxing_names, 3, (int)m); }
const char *dmx_demuxing_name(dmx_demuxing d) { return dmx_cfg_enum_name(demuxing_names, 2, (int)d); }
const char *dmx_setting_name(dmx_setting s) { return dmx_cfg_enum_name(setting_names, 3, (int)s); }
const char *dmx_schedule_name(dmx_schedule s) { return dmx_cfg_enum_name(schedule_names, 2, (int)s); }

bool dmx_task_is_vision(const char *task_name) {
  return !strcmp(task_name, "mnist") || !strcmp(task_name, "fashion_mnist") || !strcmp(task_name, "idx");
}
const char *dmx_vision_muxing_name(dmx_vision_muxing m) {
  return dmx_cfg_enum_name(vision_muxing_names, (int)DMX_CFG_COUNT(vision_muxing_names) - 1, (int)m);
}

int dmx_vision_hidden_sizes(const char *text, int *sizes, int max) {
  int n = 0;
  const char *p = text;
  while (*p == ' ') p++;
  if (!*p) return 0;
  for (;;) {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v < 1 || v > 1 << 20 || n == max) return -1;
    sizes[n++] = (int)v;
    p = end;
    while (*p == ' ') p++;
    if (!*p) return n;
    if (*p != ',') return -1;
    p++;
  }
}

int dmx_base_batch_size(int num_instances) {
  if (num_instances <= 1) return 32;
  if (num_instances < 20) return 24;
  if (num_instances < 40) return 20;
  return 16;
}

/* ---------------------------------------------------------------------------------------------- */
/* Parsing one value                                                                               */

static void join_choices(const char *const *choices, char *out, size_t cap) {
  size_t n = 0;
  out[0] = 0;
  for (int i = 0; choices[i]; i++) {
    int w = snprintf(out + n, cap - n, "%s%s", i ? ", " : "", choices[i]);
    if (w < 0 || (size_t)w >= cap - n) return;
    n += (size_t)w;
  }
}

const char *dmx_cfg_type_description(const dmx_cfg_field *f) {
  switch (f->type) {
    case DMX_FT_INT: return "an integer";
    case DMX_FT_FLOAT: return "a number";
    case DMX_FT_BOOL: return "true or false";
    case DMX_FT_STRING: return "a string";
    case DMX_FT_ENUM:
    case DMX_FT_CHOICE: return "one of its names";
  }
  return "a value";
}

bool dmx_cfg_parse_bool(const char *s, bool *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < DMX_CFG_COUNT(yes); i++) {
    if (!strcasecmp(s, yes[i])) return *out = true, true;
    if (!strcasecmp(s, no[i])) return *out = false, true;
  }
  return false;
}

/* Parses text into the field's slot of e. On failure writes the reason to why and leaves e alone. */
int dmx_cfg_parse_value(dmx_experiment *e, int i, const char *text, char *why, size_t cap) {
  const dmx_cfg_field *f = &dmx_cfg_fields[i];
  if (!*text && f->type != DMX_FT_STRING) {
    snprintf(why, cap, "expected %s, got an empty value", dmx_cfg_type_description(f));
    return -1;
  }
  switch (f->type) {
    case DMX_FT_INT: {
      char *end;
      errno = 0;
      long v = strtol(text, &end, 10);
      if (*end || end == text) {
        snprintf(why, cap, "expected an integer, got '%s'", text);
        return -1;
      }
      if (errno == ERANGE || v < INT_MIN || v > INT_MAX) {
        snprintf(why, cap, "%s is out of range for an integer", text);
        return -1;
      }
      *(int *)dmx_cfg_field_ptr(e, i) = (int)v;
      return 0;
    }
    case DMX_FT_FLOAT: {
      char *end;
      errno = 0;
      double v = strtod(text, &end);
      if (*end || end == text || isnan(v) || isinf(v)) {
        snprintf(why, cap, "expected a number, got '%s'", text);
        return -1;
      }
      if (errno == ERANGE || fabs(v) > FLT_MAX) {
        snprintf(why, cap, "%s is out of range for a 32-bit float", text);
        return -1;
      }
      *(float *)dmx_cfg_field_ptr(e, i) = (float)v;
      return 0;
    }
    case DMX_FT_BOOL: {
      bool b;
      if (!dmx_cfg_parse_bool(text, &b)) {
        snprintf(why, cap, "expected true or false, got '%s'", text);
        return -1;
      }
      *(bool *)dmx_cfg_field_ptr(e, i) = b;
      return 0;
    }
    case DMX_FT_STRING:
    case DMX_FT_CHOICE: {
      size_t n = strlen(text);
      if (n >= f->size) {
        snprintf(why, cap, "value is too long (%zu bytes; at most %zu)", n, f->size - 1);
        return -1;
      }
      if (f->type == DMX_FT_CHOICE) {
        int k = 0;
        while (f->choices[k] && strcmp(f->choices[k], text)) k++;
        if (!f->choices[k]) goto unknown_choice;
      }
      memcpy(dmx_cfg_field_ptr(e, i), text, n + 1);
      return 0;
    }
    case DMX_FT_ENUM: {
      for (int k = 0; f->choices[k]; k++)
        if (!strcmp(f->choices[k], text)) {
          *(int *)dmx_cfg_field_ptr(e, i) = k;
          return 0;
        }
      goto unknown_choice;
    }
  }
  snprintf(why, cap, "unsupported field type");
  return -1;

unknown_choice : {
  char list[512];
  join_choices(f->choices, list, sizeof list);
  size_t n = 0;
  while (f->choices[n]) n++;
  const char *near = dmx_closest_word(text, f->choices, n);
  if (near)
    snprintf(why, cap, "unknown value '%s' (did you mean '%s'? valid: %s)", text, near, list);
  else
    snprintf(why, cap, "unknown value '%s' (valid: %s)", text, list);
  return -1;
}
}

/* ---------------------------------------------------------------------------------------------- */
/* Origins: what the user set, and where                                                           */

static bool user_set(const dmx_experiment *e, const char *path) {
  return e->origin[dmx_cfg_field_index(path)].kind != DMX_ORIGIN_DEFAULT;
}

bool dmx_experiment_is_explicit(const dmx_experiment *e, const char *path) {
  int i = dmx_cfg_find_field_path(path);
  return i >= 0 && e->origin[i].kind != DMX_ORIGIN_DEFAULT;
}

static dmx_field_origin file_origin(dmx_origin_kind kind, yaml_mark_t mark) {
  dmx_field_origin o = {.kind = kind, .line = (int)mark.line + 1, .column = (int)mark.column + 1};
  return o;
}

dmx_field_origin dmx_cfg_flag_origin(const char *flag, const char *value) {
  dmx_field_origin o = {.kind = DMX_ORIGIN_FLAG};
  /* Bounded so a long path value cannot crowd out the flag's name in messages. */
  snprintf(o.flag, sizeof o.flag, "%.40s%s%.50s", flag, value ? " " : "", value ? value : "");
  return o;
}

/* "file:line:col: " or "flag -N 5: " or "" for a default: the start of a message about field i. */
void dmx_cfg_describe_origin(const dmx_experiment *e, int i, char *out, size_t cap) {
  const dmx_field_origin *o = &e->origin[i];
  switch (o->kind) {
    case DMX_ORIGIN_EXPERIMENT_FILE: snprintf(out, cap, "%s:%d:%d: ", e->source_path, o->line, o->column); return;
    case DMX_ORIGIN_MODEL_FILE: snprintf(out, cap, "%s:%d:%d: ", e->model_config_file, o->line, o->column); return;
    case DMX_ORIGIN_FLAG: snprintf(out, cap, "flag %s: ", o->flag); return;
    case DMX_ORIGIN_DEFAULT: out[0] = 0; return;
  }
  out[0] = 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* Defaults                                                                                        */

static void copy_string(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  if (n >= cap) dmx_die("string '%.40s...' longer than its %zu-byte field", src, cap - 1);
  memcpy(dst, src, n + 1);
}

/* The base name of path without folder or .yaml/.yml: the experiment's name when it gives none. */
static void file_stem(const char *path, char *out, size_t cap) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t n = strlen(base);
  if (n > 5 && !strcmp(base + n - 5, ".yaml"))
    n -= 5;
  else if (n > 4 && !strcmp(base + n - 4, ".yml"))
    n -= 4;
  if (n >= cap) n = cap - 1;
  memcpy(out, base, n);
  out[n] = 0;
}

/* Defaults that depend on the setting, N or the file name. Re-run after every change (YAML, flags,
 * --set) so that switching `-s` re-derives whatever the user did not choose. */
void dmx_cfg_derive_defaults(dmx_experiment *e) {
  dmx_setting s = e->setting;
  dmx_train_config *t = &e->train;
  if (!user_set(e, "training.task_loss_coeff"))
    t->task_loss_coeff = s == DMX_SETTING_RETRIEVAL_PRETRAINING ? 0.0f : s == DMX_SETTING_FINETUNING ? 0.9f : 1.0f;
  if (!user_set(e, "training.retrieval_loss_coeff"))
    t->retrieval_loss_coeff = s == DMX_SETTING_RETRIEVAL_PRETRAINING ? 1.0f : s == DMX_SETTING_FINETUNING ? 0.1f : 0.0f;
  if (!user_set(e, "multiplexing.gaussian_hadamard_norm"))
    e->mux.gaussian_hadamard_norm = s == DMX_SETTING_RETRIEVAL_PRETRAINING ? 20.0f : 1.0f;
  if (!user_set(e, "training.learning_rate")) t->learning_rate = s == DMX_SETTING_BASELINE ? 2e-5f : 5e-5f;
  /* Baselines do not multiplex; an explicit N > 1 is left for validate to reject by name. */
  if (s == DMX_SETTING_BASELINE && !user_set(e, "multiplexing.num_instances")) e->mux.num_instances = 1;
  /* run_glue.sh: multiplexed runs train 500k steps evaluating every 10k; baselines 10 epochs. */
  if (!user_set(e, "training.max_steps")) t->max_steps = s == DMX_SETTING_BASELINE ? 0 : 500000;
  if (!user_set(e, "training.eval_interval")) t->eval_interval = s == DMX_SETTING_BASELINE ? 0 : 10000;
  if (!user_set(e, "task.drop_last")) e->task.drop_last = s != DMX_SETTING_BASELINE;
  if (!user_set(e, "task.name"))
    copy_string(e->task.name, sizeof e->task.name, s == DMX_SETTING_RETRIEVAL_PRETRAINING ? "text" : "mnli");
  /* batch_size 0 means "by N" wherever it came from, so it must follow later changes of N. */
  if (t->batch_size == 0) e->origin[dmx_cfg_field_index("training.batch_size")].kind = DMX_ORIGIN_DEFAULT;
  if (!user_set(e, "training.batch_size")) t->batch_size = dmx_base_batch_size(e->mux.num_instances);
  /* Vision tasks follow the notebook: SGD lr 0.1 (AdamW 1e-3), 32 groups, epochs with an
   * evaluation after each, no clipping; one instance means the plain model unless set. */
  if (dmx_task_is_vision(e->task.name)) {
    if (!user_set(e, "training.learning_rate")) t->learning_rate = e->vision.optimizer == DMX_VOPT_SGD ? 0.1f : 1e-3f;
    if (!user_set(e, "training.batch_size")) t->batch_size = 32;
    if (!user_set(e, "training.max_steps")) t->max_steps = 0;
    if (!user_set(e, "training.eval_interval")) t->eval_interval = 0;
    if (!user_set(e, "training.max_grad_norm")) t->max_grad_norm = 0.0f;
    if (!user_set(e, "training.schedule")) t->schedule = DMX_SCHEDULE_CONSTANT;
    if (!user_set(e, "vision.muxing"))
      e->vision.muxing = e->mux.num_instances == 1 ? DMX_VMUX_NONE : DMX_VMUX_NONLINEAR_EXPAND;
  }
  if (!user_set(e, "name")) {
    if (e->source_path[0])
      file_stem(e->source_path, e->name, sizeof e->name);
    else
      copy_string(e->name, sizeof e->name, "default");
  }
  if (!user_set(e, "output_dir")) snprintf(e->output_dir, sizeof e->output_dir, "runs/%s", e->name);
}

static void model_defaults(dmx_model_config *m) {
  m->vocab_size = 50265;
  m->hidden_size = 768;
  m->num_layers = 12;
  m->num_heads = 12;
  m->intermediate_size = 3072;
  m->max_position_embeddings = 514;
  m->type_vocab_size = 1;
  m->pad_token_id = 1;
  m->hidden_dropout = 0.1f;
  m->attention_dropout = 0.1f;
  m->layer_norm_eps = 1e-5f;
  m->initializer_range = 0.02f;
}

void dmx_experiment_defaults(dmx_experiment *e) {
  memset(e, 0, sizeof *e);
  e->setting = DMX_SETTING_FINETUNING; /* the Python scripts' defaults: mux on, coefficients 0.9 / 0.1 */
  model_defaults(&e->model);
  e->mux.num_instances = 1;
  e->mux.muxing = DMX_MUX_GAUSSIAN_HADAMARD;
  e->mux.demuxing = DMX_DEMUX_INDEX;
  e->mux.learn_muxing = false;
  e->mux.binary_hadamard_epsilon = 0.0f;
  e->mux.attention_mask = false;       /* the original passes no mask */
  e->mux.second_embedding_pass = true; /* the original runs the embedding module twice */
  const char *data = getenv("DATAMUX_DATA");
  if (data && *data) {
    if (strlen(data) >= sizeof e->task.data_dir)
      dmx_die("$DATAMUX_DATA is longer than %zu bytes", sizeof e->task.data_dir - 1);
    copy_string(e->task.data_dir, sizeof e->task.data_dir, data);
  } else {
    copy_string(e->task.data_dir, sizeof e->task.data_dir, "data");
  }
  copy_string(e->task.tokenizer, sizeof e->task.tokenizer, "tokenizers/roberta-base");
  e->task.max_length = 128;
  e->train.epochs = 10.0f;
  e->train.log_interval = 100;
  e->train.seed = 42;
  e->train.max_grad_norm = 1.0f;
  e->train.schedule = DMX_SCHEDULE_LINEAR;
  e->train.warmup_steps = 0;
  e->train.weight_decay = 0.0f;
  e->train.adam_beta1 = 0.9f;
  e->train.adam_beta2 = 0.999f;
  e->train.adam_eps = 1e-8f;
  e->train.retrieval_percentage = 1.0f;
  e->train.do_train = true;
  e->train.do_eval = true;
  e->vision.model = DMX_VMODEL_LENET;
  copy_string(e->vision.hidden_sizes, sizeof e->vision.hidden_sizes, "256,128");
  e->vision.muxing = DMX_VMUX_NONE;
  e->vision.expand_channels = 8;
  e->vision.crop = 20;
  dmx_cfg_derive_defaults(e);
}

/* Resets the model dmx_cfg_fields to defaults (and their origins), before a model file replaces them. */
static void reset_model(dmx_experiment *e) {
  model_defaults(&e->model);
  for (int i = 0; i < DMX_CFG_NUM_FIELDS; i++)
    if (!strcmp(dmx_cfg_fields[i].section, "model")) e->origin[i].kind = DMX_ORIGIN_DEFAULT;
}

/* ---------------------------------------------------------------------------------------------- */
/* Model files named by config_name                                                               */

/* The repository's experiments/ folder, found from this file's own path at build time. */
static const char *source_experiments_dir(void) {
  static char dir[1024];
  const char *here = __FILE__;
  const char *tail = strstr(here, "host/config.c");
  if (!tail || here[0] != '/') return NULL;
  int n = snprintf(dir, sizeof dir, "%.*sexperiments", (int)(tail - here), here);
  return n > 0 && (size_t)n < sizeof dir ? dir : NULL;
}

/* Looks for name relative to base_dir (the experiment's folder; NULL for the working directory), then
 * ./experiments/, then the source tree's experiments/. tried lists the candidates for the message. */
bool dmx_cfg_find_model_file(const char *name, const char *base_dir, char *out, size_t cap, char *tried, size_t tcap) {
  char cands[3][2048];
  int nc = 0;
  if (name[0] == '/') {
    snprintf(cands[nc++], sizeof cands[0], "%s", name);
  } else {
    if (base_dir)
      snprintf(cands[nc++], sizeof cands[0], "%s/%s", base_dir, name);
    else
      snprintf(cands[nc++], sizeof cands[0], "%s", name);
    snprintf(cands[nc++], sizeof cands[0], "experiments/%s", name);
    const char *src = source_experiments_dir();
    if (src) snprintf(cands[nc++], sizeof cands[0], "%s/%s", src, name);
  }
  size_t used = 0;
  tried[0] = 0;
  for (int k = 0; k < nc; k++) {
    if (dmx_is_file(cands[k]) && strlen(cands[k]) < cap) {
      memcpy(out, cands[k], strlen(cands[k]) + 1);
      return true;
    }
    int w = snprintf(tried + used, tcap - used, "%s%s", k ? ", " : "", cands[k]);
    if (w > 0 && (size_t)w < tcap - used) used += (size_t)w;
  }
  return false;
}

/* ---------------------------------------------------------------------------------------------- */
/* YAML                                                                                            */

typedef struct {
  dmx_yaml_file *y;
  const char *path;
  dmx_origin_kind kind;
  bool seen[DMX_MAX_FIELDS]; /* duplicate keys are an error, not "last one wins" */
} yaml_source;

static int set_field_from_node(dmx_experiment *e, int i, yaml_source *src, yaml_node_t *key, yaml_node_t *value,
                               dmx_error *err) {
  const dmx_cfg_field *f = &dmx_cfg_fields[i];
  if (src->seen[i]) return dmx_yaml_fail_at(err, src->path, key->start_mark, "duplicate key '%s'", f->key);
  src->seen[i] = true;
  if (value->type != YAML_SCALAR_NODE)
    return dmx_yaml_fail_at(err, src->path, value->start_mark, "%s: expected %s, got %s", f->path,
                            dmx_cfg_type_description(f), dmx_yaml_kind_name(value));
  const char *text = dmx_yaml_is_null(value) ? "" : dmx_yaml_scalar(value);
  char why[700];
  if (dmx_cfg_parse_value(e, i, text, why, sizeof why) != 0)
    return dmx_yaml_fail_at(err, src->path, value->start_mark, "%s: %s", f->path, why);
  e->origin[i] = file_origin(src->kind, value->start_mark);
  return 0;
}

static int unknown_key(yaml_source *src, yaml_node_t *key, const char *section, const char *const *valid, size_t n,
                       dmx_error *err) {
  const char *name = dmx_yaml_scalar(key);
  const char *near = dmx_closest_word(name, valid, n);
  char where[64];
  if (*section)
    snprintf(where, sizeof where, " in section '%s'", section);
  else
    snprintf(where, sizeof where, " at top level");
  if (near)
    return dmx_yaml_fail_at(err, src->path, key->start_mark, "unknown key '%s'%s (did you mean '%s'?)", name, where,
                            near);
  char list[1024] = "";
  size_t used = 0;
  for (size_t k = 0; k < n; k++) {
    int w = snprintf(list + used, sizeof list - used, "%s%s", k ? ", " : "", valid[k]);
    if (w > 0 && (size_t)w < sizeof list - used) used += (size_t)w;
  }
  return dmx_yaml_fail_at(err, src->path, key->start_mark, "unknown key '%s'%s (valid: %s)", name, where, list);
}

static int require_scalar_key(yaml_source *src, yaml_node_t *key, dmx_error *err) {
  if (key->type == YAML_SCALAR_NODE) return 0;
  return dmx_yaml_fail_at(err, src->path, key->start_mark, "keys must be plain names, got %s", dmx_yaml_kind_name(key));
}

/* Reads the keys of one section (a mapping whose keys are that section's dmx_cfg_fields). */
static int load_section(dmx_experiment *e, yaml_source *src, const char *section, yaml_node_t *map, dmx_error *err) {
  if (dmx_yaml_is_null(map)) return 0; /* "training:" with nothing under it */
  if (map->type != YAML_MAPPING_NODE)
    return dmx_yaml_fail_at(err, src->path, map->start_mark, "'%s' must be a mapping of keys, got %s",
                            *section ? section : "the file", dmx_yaml_kind_name(map));
  const char *valid[DMX_MAX_FIELDS];
  size_t nvalid = 0;
  for (int i = 0; i < DMX_CFG_NUM_FIELDS; i++)
    if (!strcmp(dmx_cfg_fields[i].section, section)) valid[nvalid++] = dmx_cfg_fields[i].key;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *key = dmx_yaml_node(src->y, p->key), *value = dmx_yaml_node(src->y, p->value);
    if (require_scalar_key(src, key, err)) return -1;
    int i = dmx_cfg_find_field(section, dmx_yaml_scalar(key));
    if (i < 0) return unknown_key(src, key, section, valid, nvalid, err);
    if (set_field_from_node(e, i, src, key, value, err)) return -1;
  }
  return 0;
}

/* Replaces e's model with the one in a model file (whose keys are the model dmx_cfg_fields). */
int dmx_cfg_load_model_file(dmx_experiment *e, const char *path, dmx_error *err) {
  if (strlen(path) >= sizeof e->model_config_file) return dmx_fail(err, "%s: path too long", path);
  reset_model(e);
  memcpy(e->model_config_file, path, strlen(path) + 1);
  dmx_yaml_file y;
  if (dmx_yaml_load_file(&y, e->model_config_file, err)) return -1;
  yaml_source src = {.y = &y, .path = e->model_config_file, .kind = DMX_ORIGIN_MODEL_FILE};
  yaml_node_t *root = dmx_yaml_root(&y);
  int rc = 0;
  if (root->type != YAML_MAPPING_NODE)
    rc = dmx_yaml_fail_at(err, src.path, root->start_mark, "a model file must be a mapping of model keys, got %s",
                          dmx_yaml_kind_name(root));
  else
    rc = load_section(e, &src, "model", root, err);
  dmx_yaml_free(&y);
  return rc;
}

static int load_config_name_node(dmx_experiment *e, yaml_source *src, yaml_node_t *node, dmx_error *err) {
  const char *name = dmx_yaml_scalar(node);
  if (!name || dmx_yaml_is_null(node))
    return dmx_yaml_fail_at(err, src->path, node->start_mark,
                            "config_name: expected a path to a model YAML file, got %s",
                            name ? "an empty value" : dmx_yaml_kind_name(node));
  char dir[1024];
  const char *slash = strrchr(src->path, '/');
  snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - src->path) : 1, slash ? src->path : ".");
  char found[1024], tried[4096];
  if (!dmx_cfg_find_model_file(name, dir, found, sizeof found, tried, sizeof tried))
    return dmx_yaml_fail_at(err, src->path, node->start_mark, "config_name: model file '%s' not found (looked for %s)",
                            name, tried);
  dmx_error inner;
  if (dmx_cfg_load_model_file(e, found, &inner))
    return dmx_yaml_fail_at(err, src->path, node->start_mark, "in config_name '%s': %s", name, inner.msg);
  return 0;
}

static int load_top_level(dmx_experiment *e, yaml_source *src, yaml_node_t *root, dmx_error *err) {
  if (root->type != YAML_MAPPING_NODE)
    return dmx_yaml_fail_at(err, src->path, root->start_mark, "an experiment must be a mapping of keys, got %s",
                            dmx_yaml_kind_name(root));
  yaml_node_t *model = NULL, *config_name = NULL;
  bool section_seen[DMX_CFG_COUNT(dmx_cfg_section_names)] = {false};
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
    yaml_node_t *key = dmx_yaml_node(src->y, p->key), *value = dmx_yaml_node(src->y, p->value);
    if (require_scalar_key(src, key, err)) return -1;
    const char *k = dmx_yaml_scalar(key);
    if (!strcmp(k, "config_name")) {
      if (config_name) return dmx_yaml_fail_at(err, src->path, key->start_mark, "duplicate key 'config_name'");
      config_name = value;
      continue;
    }
    size_t s = 0;
    while (s < DMX_CFG_COUNT(dmx_cfg_section_names) && strcmp(dmx_cfg_section_names[s], k)) s++;
    if (s < DMX_CFG_COUNT(dmx_cfg_section_names)) {
      if (section_seen[s]) return dmx_yaml_fail_at(err, src->path, key->start_mark, "duplicate key '%s'", k);
      section_seen[s] = true;
      if (!strcmp(k, "model")) model = value;
      if (load_section(e, src, k, value, err)) return -1;
      continue;
    }
    int i = dmx_cfg_find_field("", k);
    if (i < 0) return unknown_key(src, key, "", dmx_cfg_top_level_keys, DMX_CFG_COUNT(dmx_cfg_top_level_keys), err);
    if (set_field_from_node(e, i, src, key, value, err)) return -1;
  }
  if (model && config_name)
    return dmx_yaml_fail_at(err, src->path, config_name->start_mark,
                            "give the model either inline under 'model:' or as 'config_name:', not both");
  if (config_name) return load_config_name_node(e, src, config_name, err);
  return 0;
}

int dmx_experiment_load(dmx_experiment *e, const char *path, dmx_error *err) {
  dmx_experiment_defaults(e);
  if (strlen(path) >= sizeof e->source_path) return dmx_fail(err, "%s: path too long", path);
  memcpy(e->source_path, path, strlen(path) + 1);
  dmx_yaml_file y;
  if (dmx_yaml_load_file(&y, e->source_path, err)) return -1;
  yaml_source src = {.y = &y, .path = e->source_path, .kind = DMX_ORIGIN_EXPERIMENT_FILE};
  int rc = load_top_level(e, &src, dmx_yaml_root(&y), err);
  dmx_yaml_free(&y);
  if (rc == 0) dmx_cfg_derive_defaults(e);
  return rc;
}
