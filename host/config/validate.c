/* Experiment validation: every rule on a field's value, or on dmx_cfg_fields together, with a message that
 * starts where the offending value came from (file:line:col, or the flag). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "host/config/config.h"

/* ---------------------------------------------------------------------------------------------- */
/* Validation                                                                                      */

/* Formats a message about a field, prefixed with where its value came from. */
static int fail_field(const dmx_experiment *e, dmx_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#ifdef __clang_analyzer__ /* see dmx_fail */
#define fail_field(...) (fail_field(__VA_ARGS__), -1)
#endif
static int(fail_field)(const dmx_experiment *e, dmx_error *err, const char *path, const char *fmt, ...) {
  char where[1200], msg[800];
  dmx_experiment_describe_origin(e, path, where, sizeof where);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  bool is_default = !dmx_experiment_is_explicit(e, path);
  return dmx_fail(err, "%s%s%s", where, msg, is_default ? " (default value)" : "");
}

/* Of dmx_cfg_fields that together break a rule, the one to point at: the first the user set, else the first. */
static const char *blame(const dmx_experiment *e, const char *a, const char *b, const char *c) {
  if (dmx_experiment_is_explicit(e, a)) return a;
  if (b && dmx_experiment_is_explicit(e, b)) return b;
  if (c && dmx_experiment_is_explicit(e, c)) return c;
  return a;
}

#define REQUIRE(cond, path, ...)                               \
  do {                                                         \
    if (!(cond)) return fail_field(e, err, path, __VA_ARGS__); \
  } while (0)
#define REQUIRE_INT_MIN(field, path, lo) \
  REQUIRE((field) >= (lo), path, "%s must be at least %d, got %d", path, (lo), (field))
/* Written as !(x op y) elsewhere too, so that a NaN set programmatically fails every check. */
#define REQUIRE_FLOAT_IN(field, path, lo, hi, range_text) \
  REQUIRE((field) >= (lo) && (field) <= (hi), path, "%s must be in %s, got %g", path, range_text, (double)(field))

static int validate_model(const dmx_experiment *e, dmx_error *err) {
  const dmx_model_config *m = &e->model;
  REQUIRE_INT_MIN(m->vocab_size, "model.vocab_size", 1);
  REQUIRE_INT_MIN(m->hidden_size, "model.hidden_size", 1);
  REQUIRE_INT_MIN(m->num_layers, "model.num_layers", 1);
  REQUIRE_INT_MIN(m->num_heads, "model.num_heads", 1);
  REQUIRE_INT_MIN(m->intermediate_size, "model.intermediate_size", 1);
  REQUIRE_INT_MIN(m->max_position_embeddings, "model.max_position_embeddings", 3);
  REQUIRE_INT_MIN(m->type_vocab_size, "model.type_vocab_size", 1);
  REQUIRE(m->pad_token_id >= 0 && m->pad_token_id < m->vocab_size, "model.pad_token_id",
          "model.pad_token_id must be in [0, vocab_size %d), got %d", m->vocab_size, m->pad_token_id);
  REQUIRE(m->hidden_size % m->num_heads == 0, blame(e, "model.num_heads", "model.hidden_size", NULL),
          "model.hidden_size %d is not divisible by model.num_heads %d", m->hidden_size, m->num_heads);
  REQUIRE(m->hidden_dropout >= 0 && m->hidden_dropout < 1, "model.hidden_dropout",
          "model.hidden_dropout must be in [0, 1), got %g", (double)m->hidden_dropout);
  REQUIRE(m->attention_dropout >= 0 && m->attention_dropout < 1, "model.attention_dropout",
          "model.attention_dropout must be in [0, 1), got %g", (double)m->attention_dropout);
  REQUIRE(m->layer_norm_eps > 0, "model.layer_norm_eps", "model.layer_norm_eps must be positive, got %g",
          (double)m->layer_norm_eps);
  REQUIRE(m->initializer_range > 0, "model.initializer_range", "model.initializer_range must be positive, got %g",
          (double)m->initializer_range);
  return 0;
}

/* Index demux prefixes filler id 50000, ids V-2-i per instance and 49923 (spec §1.4); MLP demux uses 49923. */
static int validate_reserved_ids(const dmx_experiment *e, dmx_error *err) {
  int v = e->model.vocab_size, n = e->mux.num_instances;
  if (e->setting == DMX_SETTING_BASELINE) return 0;
  if (e->mux.demuxing == DMX_DEMUX_INDEX)
    REQUIRE(v - 2 - (n - 1) > 50000, blame(e, "model.vocab_size", "multiplexing.num_instances", NULL),
            "model.vocab_size %d is too small for index demuxing with %d instances: the prefix uses token ids 50000 "
            "and %d down to %d, so vocab_size must be at least %d",
            v, n, v - 2, v - 1 - n, 50002 + n);
  else
    REQUIRE(v > 49923, "model.vocab_size",
            "model.vocab_size %d is too small for mlp demuxing, which uses token id 49923 (needs at least 49924)", v);
  return 0;
}

static int validate_mux(const dmx_experiment *e, dmx_error *err) {
  const dmx_mux_config *x = &e->mux;
  REQUIRE(x->num_instances >= 1 && x->num_instances <= 64, "multiplexing.num_instances",
          "multiplexing.num_instances must be between 1 and 64, got %d", x->num_instances);
  REQUIRE(e->setting != DMX_SETTING_BASELINE || x->num_instances == 1,
          blame(e, "multiplexing.num_instances", "setting", NULL),
          "setting baseline does not multiplex: multiplexing.num_instances must be 1, got %d", x->num_instances);
  REQUIRE(x->gaussian_hadamard_norm > 0, "multiplexing.gaussian_hadamard_norm",
          "multiplexing.gaussian_hadamard_norm must be positive, got %g", (double)x->gaussian_hadamard_norm);
  REQUIRE_FLOAT_IN(x->binary_hadamard_epsilon, "multiplexing.binary_hadamard_epsilon", 0.0f, 1.0f, "[0, 1]");
  REQUIRE(x->muxing != DMX_MUX_BINARY_HADAMARD || e->model.hidden_size >= x->num_instances,
          blame(e, "multiplexing.muxing", "multiplexing.num_instances", "model.hidden_size"),
          "binary_hadamard muxing gives each instance a block of hidden_size / num_instances coordinates, but "
          "model.hidden_size %d < multiplexing.num_instances %d",
          e->model.hidden_size, x->num_instances);
  return validate_reserved_ids(e, err);
}

static int validate_task(const dmx_experiment *e, dmx_error *err) {
  const dmx_task_config *t = &e->task;
  REQUIRE_INT_MIN(t->max_length, "task.max_length", 1);
  REQUIRE_INT_MIN(t->max_train_examples, "task.max_train_examples", 0);
  REQUIRE_INT_MIN(t->max_eval_examples, "task.max_eval_examples", 0);
  REQUIRE(t->data_dir[0], "task.data_dir", "task.data_dir must not be empty");
  REQUIRE(t->tokenizer[0], "task.tokenizer", "task.tokenizer must not be empty");
  REQUIRE(strcmp(t->name, "text") || e->setting == DMX_SETTING_RETRIEVAL_PRETRAINING,
          blame(e, "task.name", "setting", NULL),
          "task text has no labels; it is only for setting retrieval_pretraining (setting is %s)",
          dmx_setting_name(e->setting));
  /* RoBERTa positions start at 2 (pad-aware ids, spec §1.5), and index demux adds N + 1 prefix ids. */
  bool index_prefix = e->setting != DMX_SETTING_BASELINE && e->mux.demuxing == DMX_DEMUX_INDEX;
  int prefix = index_prefix ? e->mux.num_instances + 1 : 0;
  long needed = (long)t->max_length + prefix + 2;
  if (index_prefix)
    REQUIRE(needed <= e->model.max_position_embeddings,
            blame(e, "task.max_length", "multiplexing.num_instances", "model.max_position_embeddings"),
            "task.max_length %d + %d index prefix tokens (num_instances + 1) + 2 (positions start at 2) = %ld exceeds "
            "model.max_position_embeddings %d",
            t->max_length, prefix, needed, e->model.max_position_embeddings);
  else
    REQUIRE(needed <= e->model.max_position_embeddings,
            blame(e, "task.max_length", "model.max_position_embeddings", NULL),
            "task.max_length %d + 2 (positions start at 2) = %ld exceeds model.max_position_embeddings %d",
            t->max_length, needed, e->model.max_position_embeddings);
  return 0;
}

static int validate_training(const dmx_experiment *e, dmx_error *err) {
  const dmx_train_config *t = &e->train;
  REQUIRE(t->learning_rate > 0, "training.learning_rate", "training.learning_rate must be positive, got %g",
          (double)t->learning_rate);
  REQUIRE_INT_MIN(t->batch_size, "training.batch_size", 1);
  REQUIRE_INT_MIN(t->max_steps, "training.max_steps", 0);
  REQUIRE(t->epochs >= 0, "training.epochs", "training.epochs must not be negative, got %g", (double)t->epochs);
  REQUIRE(!t->do_train || t->max_steps > 0 || t->epochs > 0, blame(e, "training.max_steps", "training.epochs", NULL),
          "nothing to train: training.max_steps is 0 and training.epochs is %g", (double)t->epochs);
  REQUIRE_INT_MIN(t->eval_interval, "training.eval_interval", 0);
  REQUIRE_INT_MIN(t->log_interval, "training.log_interval", 1);
  REQUIRE_INT_MIN(t->save_interval, "training.save_interval", 0);
  REQUIRE_INT_MIN(t->seed, "training.seed", 0);
  REQUIRE(t->max_grad_norm >= 0, "training.max_grad_norm",
          "training.max_grad_norm must not be negative (0 disables clipping), got %g", (double)t->max_grad_norm);
  REQUIRE_INT_MIN(t->warmup_steps, "training.warmup_steps", 0);
  /* a warm-up longer than a (short, e.g. smoke-test) run is allowed, as in transformers: the
   * learning rate then never reaches its peak */
  REQUIRE(t->weight_decay >= 0, "training.weight_decay", "training.weight_decay must not be negative, got %g",
          (double)t->weight_decay);
  REQUIRE(t->adam_beta1 >= 0 && t->adam_beta1 < 1, "training.adam_beta1",
          "training.adam_beta1 must be in [0, 1), got %g", (double)t->adam_beta1);
  REQUIRE(t->adam_beta2 >= 0 && t->adam_beta2 < 1, "training.adam_beta2",
          "training.adam_beta2 must be in [0, 1), got %g", (double)t->adam_beta2);
  REQUIRE(t->adam_eps > 0, "training.adam_eps", "training.adam_eps must be positive, got %g", (double)t->adam_eps);
  REQUIRE(t->task_loss_coeff >= 0, "training.task_loss_coeff", "training.task_loss_coeff must not be negative, got %g",
          (double)t->task_loss_coeff);
  REQUIRE(t->retrieval_loss_coeff >= 0, "training.retrieval_loss_coeff",
          "training.retrieval_loss_coeff must not be negative, got %g", (double)t->retrieval_loss_coeff);
  REQUIRE(!t->do_train || t->task_loss_coeff > 0 || t->retrieval_loss_coeff > 0,
          blame(e, "training.task_loss_coeff", "training.retrieval_loss_coeff", NULL),
          "nothing to learn: training.task_loss_coeff and training.retrieval_loss_coeff are both 0");
  REQUIRE_FLOAT_IN(t->retrieval_percentage, "training.retrieval_percentage", 0.0f, 1.0f, "[0, 1]");
  REQUIRE(t->time_budget_seconds >= 0, "training.time_budget_seconds",
          "training.time_budget_seconds must not be negative (0 = no limit), got %g", (double)t->time_budget_seconds);
  return 0;
}

/* LeNet's spatial chain: crop -> conv3 -> pool -> conv4 -> pool -> conv3 must leave >= 1 pixel. */
static int lenet_final_size(int crop) {
  int s = (crop - 2) / 2;
  s = (s - 3) / 2;
  return s - 2;
}

static int validate_vision(const dmx_experiment *e, dmx_error *err) {
  const dmx_vision_config *v = &e->vision;
  int n = e->mux.num_instances;
  REQUIRE(v->crop >= 1 && v->crop <= 28, "vision.crop",
          "vision.crop must be in [1, 28] (centre crop of 28x28 images), got %d", v->crop);
  if (v->model == DMX_VMODEL_LENET)
    REQUIRE(v->crop - 2 >= 2 && (v->crop - 2) / 2 >= 4 && lenet_final_size(v->crop) >= 1, "vision.crop",
            "vision.crop %d is too small for LeNet (20 -> 18 -> 9 -> 6 -> 3 -> 1 needs at least 20)", v->crop);
  int sizes[16];
  REQUIRE(v->model != DMX_VMODEL_MLP || dmx_vision_hidden_sizes(v->hidden_sizes, sizes, 16) >= 1, "vision.hidden_sizes",
          "vision.hidden_sizes must be 1 to 16 comma-separated positive widths, got '%s'", v->hidden_sizes);
  REQUIRE(v->muxing != DMX_VMUX_NONE || n == 1, blame(e, "vision.muxing", "multiplexing.num_instances", NULL),
          "vision.muxing none cannot combine %d instances; choose a muxing scheme or num_instances 1", n);
  REQUIRE(v->expand_channels >= 1 && v->expand_channels <= 256, "vision.expand_channels",
          "vision.expand_channels must be in [1, 256], got %d", v->expand_channels);
  REQUIRE(v->conv1_channels >= 0, "vision.conv1_channels",
          "vision.conv1_channels must not be negative (0 = auto), got %d", v->conv1_channels);
  if (!strcmp(e->task.name, "idx"))
    REQUIRE(
        e->task.train_file[0] || !e->train.do_train, "task.train_file",
        "task idx needs task.train_file: the images file (labels next to it as *labels-idx1*, or \"IMAGES,LABELS\")");
  return 0;
}

int dmx_experiment_validate(const dmx_experiment *e, dmx_error *err) {
  REQUIRE(e->name[0], "name", "name must not be empty");
  REQUIRE(e->output_dir[0], "output_dir", "output_dir must not be empty");
  REQUIRE(e->setting >= DMX_SETTING_BASELINE && e->setting <= DMX_SETTING_FINETUNING, "setting",
          "setting is invalid (%d)", (int)e->setting);
  if (validate_model(e, err) || validate_mux(e, err) || validate_task(e, err) || validate_training(e, err)) return -1;
  if (dmx_task_is_vision(e->task.name) && validate_vision(e, err)) return -1;
  return 0;
}
