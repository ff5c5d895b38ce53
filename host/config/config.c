/* Experiments: defaults, YAML loading, command-line flags, validation and printing.
 * Everything is driven by one table of fields (section, key, type, where it lives in the struct), so
 * the YAML reader, `--set`, the printer and the comparison can never disagree about a field. */
#include "host/config/config.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "host/base/yaml_util.h"

/* ---------------------------------------------------------------------------------------------- */
/* The field table                                                                                 */

typedef enum { FT_INT, FT_FLOAT, FT_BOOL, FT_STRING, FT_ENUM, FT_CHOICE } field_type;

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

_Static_assert(sizeof(dmx_vision_model_kind) == sizeof(int) && sizeof(dmx_vision_muxing) == sizeof(int) &&
                   sizeof(dmx_vision_activation) == sizeof(int) && sizeof(dmx_vision_loss) == sizeof(int) &&
                   sizeof(dmx_vision_optimizer) == sizeof(int),
               "vision enum fields are read and written as int");
_Static_assert(sizeof(dmx_muxing) == sizeof(int) && sizeof(dmx_demuxing) == sizeof(int) &&
                   sizeof(dmx_setting) == sizeof(int) && sizeof(dmx_schedule) == sizeof(int),
               "enum fields are read and written as int");

typedef struct {
  const char *section; /* "" for top-level keys */
  const char *key;     /* = the struct member's name */
  const char *path;    /* "section.key", or key at top level */
  field_type type;
  size_t offset;
  size_t size;
  const char *const *choices; /* FT_ENUM, FT_CHOICE: NULL-terminated valid values */
} field_desc;

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
static const field_desc fields[] = {
    TOP(name, FT_STRING, NULL),
    TOP(setting, FT_ENUM, setting_names),
    MODEL(vocab_size, FT_INT),
    MODEL(hidden_size, FT_INT),
    MODEL(num_layers, FT_INT),
    MODEL(num_heads, FT_INT),
    MODEL(intermediate_size, FT_INT),
    MODEL(max_position_embeddings, FT_INT),
    MODEL(type_vocab_size, FT_INT),
    MODEL(pad_token_id, FT_INT),
    MODEL(hidden_dropout, FT_FLOAT),
    MODEL(attention_dropout, FT_FLOAT),
    MODEL(layer_norm_eps, FT_FLOAT),
    MODEL(initializer_range, FT_FLOAT),
    MUX(num_instances, FT_INT, NULL),
    MUX(muxing, FT_ENUM, muxing_names),
    MUX(demuxing, FT_ENUM, demuxing_names),
    MUX(learn_muxing, FT_BOOL, NULL),
    MUX(gaussian_hadamard_norm, FT_FLOAT, NULL),
    MUX(binary_hadamard_epsilon, FT_FLOAT, NULL),
    MUX(attention_mask, FT_BOOL, NULL),
    MUX(second_embedding_pass, FT_BOOL, NULL),
    TASK(name, FT_CHOICE, task_names),
    TASK(data_dir, FT_STRING, NULL),
    TASK(train_file, FT_STRING, NULL),
    TASK(eval_file, FT_STRING, NULL),
    TASK(text_file, FT_STRING, NULL),
    TASK(tokenizer, FT_STRING, NULL),
    TASK(max_length, FT_INT, NULL),
    TASK(drop_last, FT_BOOL, NULL),
    TASK(max_train_examples, FT_INT, NULL),
    TASK(max_eval_examples, FT_INT, NULL),
    TRAIN(learning_rate, FT_FLOAT, NULL),
    TRAIN(batch_size, FT_INT, NULL),
    TRAIN(max_steps, FT_INT, NULL),
    TRAIN(epochs, FT_FLOAT, NULL),
    TRAIN(eval_interval, FT_INT, NULL),
    TRAIN(log_interval, FT_INT, NULL),
    TRAIN(save_interval, FT_INT, NULL),
    TRAIN(seed, FT_INT, NULL),
    TRAIN(max_grad_norm, FT_FLOAT, NULL),
    TRAIN(schedule, FT_ENUM, schedule_names),
    TRAIN(warmup_steps, FT_INT, NULL),
    TRAIN(weight_decay, FT_FLOAT, NULL),
    TRAIN(adam_beta1, FT_FLOAT, NULL),
    TRAIN(adam_beta2, FT_FLOAT, NULL),
    TRAIN(adam_eps, FT_FLOAT, NULL),
    TRAIN(task_loss_coeff, FT_FLOAT, NULL),
    TRAIN(retrieval_loss_coeff, FT_FLOAT, NULL),
    TRAIN(retrieval_percentage, FT_FLOAT, NULL),
    TRAIN(time_budget_seconds, FT_FLOAT, NULL),
    TRAIN(do_train, FT_BOOL, NULL),
    TRAIN(do_eval, FT_BOOL, NULL),
    VISION(model, FT_ENUM, vision_model_names),
    VISION(hidden_sizes, FT_STRING, NULL),
    VISION(muxing, FT_ENUM, vision_muxing_names),
    VISION(expand_channels, FT_INT, NULL),
    VISION(conv1_channels, FT_INT, NULL),
    VISION(activation, FT_ENUM, vision_activation_names),
    VISION(loss, FT_ENUM, vision_loss_names),
    VISION(optimizer, FT_ENUM, vision_optimizer_names),
    VISION(crop, FT_INT, NULL),
    TOP(model_path, FT_STRING, NULL),
    TOP(output_dir, FT_STRING, NULL),
    TOP(device, FT_STRING, NULL),
};
#define NUM_FIELDS ((int)(sizeof fields / sizeof *fields))
_Static_assert(sizeof fields / sizeof *fields <= DMX_MAX_FIELDS, "raise DMX_MAX_FIELDS in config.h");

/* Top-level keys that are not plain fields. */
static const char *const section_names[] = {"model", "multiplexing", "task", "training", "vision"};
static const char *const top_level_keys[] = {"name",         "setting", "model",    "config_name",
                                             "multiplexing", "task",    "training", "model_path",
                                             "output_dir",   "device",  "vision"};
#define COUNT(a) (sizeof(a) / sizeof *(a))

static int find_field(const char *section, const char *key) {
  for (int i = 0; i < NUM_FIELDS; i++)
    if (!strcmp(fields[i].section, section) && !strcmp(fields[i].key, key)) return i;
  return -1;
}

static int find_field_path(const char *path) {
  for (int i = 0; i < NUM_FIELDS; i++)
    if (!strcmp(fields[i].path, path)) return i;
  return -1;
}

/* Internal lookups name paths literally; an unknown one is a bug in this file. */
static int field_index(const char *path) {
  int i = find_field_path(path);
  if (i < 0) dmx_die("no experiment field '%s'", path);
  return i;
}

static void *field_ptr(dmx_experiment *e, int i) { return (char *)e + fields[i].offset; }
static const void *field_cptr(const dmx_experiment *e, int i) { return (const char *)e + fields[i].offset; }

const char *const *dmx_experiment_field_paths(void) {
  static const char *paths[DMX_MAX_FIELDS + 1];
  for (int i = 0; i < NUM_FIELDS; i++) paths[i] = fields[i].path;
  paths[NUM_FIELDS] = NULL;
  return paths;
}

/* ---------------------------------------------------------------------------------------------- */
/* Names                                                                                           */

static const char *enum_name(const char *const *names, int count, int v) {
  return v >= 0 && v < count ? names[v] : "(invalid)";
}
const char *dmx_muxing_name(dmx_muxing m) { return enum_name(muxing_names, 3, (int)m); }
const char *dmx_demuxing_name(dmx_demuxing d) { return enum_name(demuxing_names, 2, (int)d); }
const char *dmx_setting_name(dmx_setting s) { return enum_name(setting_names, 3, (int)s); }
const char *dmx_schedule_name(dmx_schedule s) { return enum_name(schedule_names, 2, (int)s); }

bool dmx_task_is_vision(const char *task_name) {
  return !strcmp(task_name, "mnist") || !strcmp(task_name, "fashion_mnist") || !strcmp(task_name, "idx");
}
const char *dmx_vision_muxing_name(dmx_vision_muxing m) {
  return enum_name(vision_muxing_names, (int)COUNT(vision_muxing_names) - 1, (int)m);
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

static const char *type_description(const field_desc *f) {
  switch (f->type) {
    case FT_INT: return "an integer";
    case FT_FLOAT: return "a number";
    case FT_BOOL: return "true or false";
    case FT_STRING: return "a string";
    case FT_ENUM:
    case FT_CHOICE: return "one of its names";
  }
  return "a value";
}

static bool parse_bool_word(const char *s, bool *out) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (size_t i = 0; i < COUNT(yes); i++) {
    if (!strcasecmp(s, yes[i])) return *out = true, true;
    if (!strcasecmp(s, no[i])) return *out = false, true;
  }
  return false;
}

/* Parses text into the field's slot of e. On failure writes the reason to why and leaves e alone. */
static int parse_field_value(dmx_experiment *e, int i, const char *text, char *why, size_t cap) {
  const field_desc *f = &fields[i];
  if (!*text && f->type != FT_STRING) {
    snprintf(why, cap, "expected %s, got an empty value", type_description(f));
    return -1;
  }
  switch (f->type) {
    case FT_INT: {
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
      *(int *)field_ptr(e, i) = (int)v;
      return 0;
    }
    case FT_FLOAT: {
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
      *(float *)field_ptr(e, i) = (float)v;
      return 0;
    }
    case FT_BOOL: {
      bool b;
      if (!parse_bool_word(text, &b)) {
        snprintf(why, cap, "expected true or false, got '%s'", text);
        return -1;
      }
      *(bool *)field_ptr(e, i) = b;
      return 0;
    }
    case FT_STRING:
    case FT_CHOICE: {
      size_t n = strlen(text);
      if (n >= f->size) {
        snprintf(why, cap, "value is too long (%zu bytes; at most %zu)", n, f->size - 1);
        return -1;
      }
      if (f->type == FT_CHOICE) {
        int k = 0;
        while (f->choices[k] && strcmp(f->choices[k], text)) k++;
        if (!f->choices[k]) goto unknown_choice;
      }
      memcpy(field_ptr(e, i), text, n + 1);
      return 0;
    }
    case FT_ENUM: {
      for (int k = 0; f->choices[k]; k++)
        if (!strcmp(f->choices[k], text)) {
          *(int *)field_ptr(e, i) = k;
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
  return e->origin[field_index(path)].kind != DMX_ORIGIN_DEFAULT;
}

bool dmx_experiment_is_explicit(const dmx_experiment *e, const char *path) {
  int i = find_field_path(path);
  return i >= 0 && e->origin[i].kind != DMX_ORIGIN_DEFAULT;
}

static dmx_field_origin file_origin(dmx_origin_kind kind, yaml_mark_t mark) {
  dmx_field_origin o = {.kind = kind, .line = (int)mark.line + 1, .column = (int)mark.column + 1};
  return o;
}

static dmx_field_origin flag_origin(const char *flag, const char *value) {
  dmx_field_origin o = {.kind = DMX_ORIGIN_FLAG};
  /* Bounded so a long path value cannot crowd out the flag's name in messages. */
  snprintf(o.flag, sizeof o.flag, "%.40s%s%.50s", flag, value ? " " : "", value ? value : "");
  return o;
}

/* "file:line:col: " or "flag -N 5: " or "" for a default: the start of a message about field i. */
static void describe_origin(const dmx_experiment *e, int i, char *out, size_t cap) {
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
static void derive_defaults(dmx_experiment *e) {
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
  if (t->batch_size == 0) e->origin[field_index("training.batch_size")].kind = DMX_ORIGIN_DEFAULT;
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
  derive_defaults(e);
}

/* Resets the model fields to defaults (and their origins), before a model file replaces them. */
static void reset_model(dmx_experiment *e) {
  model_defaults(&e->model);
  for (int i = 0; i < NUM_FIELDS; i++)
    if (!strcmp(fields[i].section, "model")) e->origin[i].kind = DMX_ORIGIN_DEFAULT;
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

static bool is_regular_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Looks for name relative to base_dir (the experiment's folder; NULL for the working directory), then
 * ./experiments/, then the source tree's experiments/. tried lists the candidates for the message. */
static bool find_model_file(const char *name, const char *base_dir, char *out, size_t cap, char *tried, size_t tcap) {
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
    if (is_regular_file(cands[k]) && strlen(cands[k]) < cap) {
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
  const field_desc *f = &fields[i];
  if (src->seen[i]) return dmx_yaml_fail_at(err, src->path, key->start_mark, "duplicate key '%s'", f->key);
  src->seen[i] = true;
  if (value->type != YAML_SCALAR_NODE)
    return dmx_yaml_fail_at(err, src->path, value->start_mark, "%s: expected %s, got %s", f->path, type_description(f),
                            dmx_yaml_kind_name(value));
  const char *text = dmx_yaml_is_null(value) ? "" : dmx_yaml_scalar(value);
  char why[700];
  if (parse_field_value(e, i, text, why, sizeof why) != 0)
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

/* Reads the keys of one section (a mapping whose keys are that section's fields). */
static int load_section(dmx_experiment *e, yaml_source *src, const char *section, yaml_node_t *map, dmx_error *err) {
  if (dmx_yaml_is_null(map)) return 0; /* "training:" with nothing under it */
  if (map->type != YAML_MAPPING_NODE)
    return dmx_yaml_fail_at(err, src->path, map->start_mark, "'%s' must be a mapping of keys, got %s",
                            *section ? section : "the file", dmx_yaml_kind_name(map));
  const char *valid[DMX_MAX_FIELDS];
  size_t nvalid = 0;
  for (int i = 0; i < NUM_FIELDS; i++)
    if (!strcmp(fields[i].section, section)) valid[nvalid++] = fields[i].key;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *key = dmx_yaml_node(src->y, p->key), *value = dmx_yaml_node(src->y, p->value);
    if (require_scalar_key(src, key, err)) return -1;
    int i = find_field(section, dmx_yaml_scalar(key));
    if (i < 0) return unknown_key(src, key, section, valid, nvalid, err);
    if (set_field_from_node(e, i, src, key, value, err)) return -1;
  }
  return 0;
}

/* Replaces e's model with the one in a model file (whose keys are the model fields). */
static int load_model_file(dmx_experiment *e, const char *path, dmx_error *err) {
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
  if (!find_model_file(name, dir, found, sizeof found, tried, sizeof tried))
    return dmx_yaml_fail_at(err, src->path, node->start_mark, "config_name: model file '%s' not found (looked for %s)",
                            name, tried);
  dmx_error inner;
  if (load_model_file(e, found, &inner))
    return dmx_yaml_fail_at(err, src->path, node->start_mark, "in config_name '%s': %s", name, inner.msg);
  return 0;
}

static int load_top_level(dmx_experiment *e, yaml_source *src, yaml_node_t *root, dmx_error *err) {
  if (root->type != YAML_MAPPING_NODE)
    return dmx_yaml_fail_at(err, src->path, root->start_mark, "an experiment must be a mapping of keys, got %s",
                            dmx_yaml_kind_name(root));
  yaml_node_t *model = NULL, *config_name = NULL;
  bool section_seen[COUNT(section_names)] = {false};
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
    while (s < COUNT(section_names) && strcmp(section_names[s], k)) s++;
    if (s < COUNT(section_names)) {
      if (section_seen[s]) return dmx_yaml_fail_at(err, src->path, key->start_mark, "duplicate key '%s'", k);
      section_seen[s] = true;
      if (!strcmp(k, "model")) model = value;
      if (load_section(e, src, k, value, err)) return -1;
      continue;
    }
    int i = find_field("", k);
    if (i < 0) return unknown_key(src, key, "", top_level_keys, COUNT(top_level_keys), err);
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
  if (rc == 0) derive_defaults(e);
  return rc;
}

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
  const char *all[COUNT(flag_table) * 3];
  size_t n = 0;
  for (size_t k = 0; k < COUNT(flag_table); k++)
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
  for (size_t k = 0; k < COUNT(flag_table) && !d; k++)
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
    if (*i < argc && parse_bool_word(argv[*i], &b))
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
  if (parse_field_value(e, i, value, why, sizeof why)) return dmx_fail(err, "%s: %s", who, why);
  e->origin[i] = origin;
  return 0;
}

static int unknown_path(const char *who, const char *path, dmx_error *err) {
  const char *all[DMX_MAX_FIELDS + 1];
  int n = 0;
  /* When the section is right, match the key among that section's keys (so "lr" finds learning_rate). */
  const char *dot = strchr(path, '.');
  for (int i = 0; dot && i < NUM_FIELDS; i++)
    if (!strncmp(fields[i].path, path, (size_t)(dot - path) + 1)) all[n++] = fields[i].key;
  const char *near_key = n ? dmx_closest_word(dot + 1, all, (size_t)n) : NULL;
  if (near_key)
    return dmx_fail(err, "%s: unknown key '%s' (did you mean '%.*s%s'?)", who, path, (int)(dot - path) + 1, path,
                    near_key);
  n = 0;
  for (int i = 0; i < NUM_FIELDS; i++) all[n++] = fields[i].path;
  all[n++] = "config_name";
  const char *near = dmx_closest_word(path, all, (size_t)n);
  if (near) return dmx_fail(err, "%s: unknown key '%s' (did you mean '%s'?)", who, path, near);
  return dmx_fail(err, "%s: unknown key '%s' (keys look like training.learning_rate or model.hidden_size)", who, path);
}

static int apply_config_name_flag(dmx_experiment *e, const char *who, const char *name, dmx_error *err) {
  if (!*name) return dmx_fail(err, "%s: expected a path to a model YAML file, got an empty value", who);
  char found[1024], tried[4096];
  if (!find_model_file(name, NULL, found, sizeof found, tried, sizeof tried))
    return dmx_fail(err, "%s: model file '%s' not found (looked for %s)", who, name, tried);
  dmx_error inner;
  if (load_model_file(e, found, &inner)) return dmx_fail(err, "%s: %s", who, inner.msg);
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
  int i = find_field_path(path);
  if (i < 0) return unknown_path(who, path, err);
  /* For --set, f->value is the whole "path=value", which is what the message should quote. */
  bool via_set = !strcmp(f->desc->path, "set");
  dmx_field_origin o = flag_origin(via_set ? "--set" : f->name, f->value);
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
  derive_defaults(e);
  return 0;
}

int dmx_experiment_set(dmx_experiment *e, const char *path, const char *value, dmx_error *err) {
  char who[160];
  snprintf(who, sizeof who, "--set %s", path);
  if (!strcmp(path, "config_name")) {
    if (apply_config_name_flag(e, who, value, err)) return -1;
  } else {
    int i = find_field_path(path);
    if (i < 0) return unknown_path(who, path, err);
    char text[256];
    snprintf(text, sizeof text, "%s=%s", path, value);
    if (set_field_text(e, i, value, flag_origin("--set", text), who, err)) return -1;
  }
  derive_defaults(e);
  return 0;
}

void dmx_experiment_describe_origin(const dmx_experiment *e, const char *path, char *out, size_t cap) {
  describe_origin(e, field_index(path), out, cap);
}

/* ---------------------------------------------------------------------------------------------- */
/* Printing and comparing                                                                          */

/* The shortest %g form that reads back (through the loader's strtod-then-float) as the same float. */
static void format_float(float v, char *buf, size_t cap) {
  for (int prec = 6; prec <= 9; prec++) {
    snprintf(buf, cap, "%.*g", prec, (double)v);
    if ((float)strtod(buf, NULL) == v) return;
  }
}

/* Double-quoted YAML scalar, so any text (colons, '#', leading spaces, "true") stays a string. */
static void print_quoted(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f)
      fprintf(f, "\\x%02x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

/* For comments: one line, no control characters. */
static void print_comment_text(FILE *f, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) fputc(*p < 0x20 ? '?' : *p, f);
}

static void print_field(FILE *f, const dmx_experiment *e, int i) {
  const field_desc *d = &fields[i];
  const void *p = field_cptr(e, i);
  fprintf(f, "%s%s: ", *d->section ? "  " : "", d->key);
  char buf[64];
  switch (d->type) {
    case FT_INT: fprintf(f, "%d", *(const int *)p); break;
    case FT_FLOAT:
      format_float(*(const float *)p, buf, sizeof buf);
      fputs(buf, f);
      break;
    case FT_BOOL: fputs(*(const bool *)p ? "true" : "false", f); break;
    case FT_STRING:
    case FT_CHOICE: print_quoted(f, (const char *)p); break;
    case FT_ENUM: {
      int v = *(const int *)p, n = 0;
      while (d->choices[n]) n++;
      fputs(enum_name(d->choices, n, v), f);
      break;
    }
  }
  fputc('\n', f);
}

void dmx_experiment_print_yaml(FILE *f, const dmx_experiment *e) {
  fprintf(f, "# DataMUX-CL experiment, fully resolved from ");
  print_comment_text(f, e->source_path[0] ? e->source_path : "the defaults");
  fputc('\n', f);
  if (e->model_config_file[0]) {
    fprintf(f, "# model from config_name ");
    print_comment_text(f, e->model_config_file);
    fprintf(f, ", shown inline\n");
  }
  const char *section = "";
  for (int i = 0; i < NUM_FIELDS; i++) {
    if (strcmp(fields[i].section, section)) {
      section = fields[i].section;
      if (*section) fprintf(f, "%s:\n", section);
    }
    print_field(f, e, i);
  }
}

static bool field_equal(const dmx_experiment *a, const dmx_experiment *b, int i) {
  const void *pa = field_cptr(a, i), *pb = field_cptr(b, i);
  switch (fields[i].type) {
    case FT_INT:
    case FT_ENUM: return *(const int *)pa == *(const int *)pb;
    case FT_FLOAT: return memcmp(pa, pb, sizeof(float)) == 0; /* bitwise: a round trip must be exact */
    case FT_BOOL: return *(const bool *)pa == *(const bool *)pb;
    case FT_STRING:
    case FT_CHOICE: return strcmp((const char *)pa, (const char *)pb) == 0;
  }
  return false;
}

int dmx_experiment_diff(const dmx_experiment *a, const dmx_experiment *b, char *what, size_t cap) {
  int n = 0;
  if (what && cap) what[0] = 0;
  for (int i = 0; i < NUM_FIELDS; i++) {
    if (field_equal(a, b, i)) continue;
    if (n++ == 0 && what && cap) snprintf(what, cap, "%s", fields[i].path);
  }
  return n;
}
