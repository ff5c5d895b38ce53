/* An experiment: everything one YAML file (plus command-line overrides) selects.
 * Defaults follow the original DataMUX scripts (docs/datamux-spec.md §2-§3). */
#ifndef DMX_CONFIG_H
#define DMX_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "host/base/common.h"

typedef enum { DMX_MUX_GAUSSIAN_HADAMARD, DMX_MUX_BINARY_HADAMARD, DMX_MUX_RANDOM_ORTHO } dmx_muxing;
typedef enum { DMX_DEMUX_INDEX, DMX_DEMUX_MLP } dmx_demuxing;
typedef enum { DMX_SETTING_BASELINE, DMX_SETTING_RETRIEVAL_PRETRAINING, DMX_SETTING_FINETUNING } dmx_setting;
typedef enum { DMX_SCHEDULE_LINEAR, DMX_SCHEDULE_CONSTANT } dmx_schedule;
/* the GEMM backend asked for: in the order of host/runtime/gemm.h's dmx_gemm_backend */
typedef enum { DMX_CFG_GEMM_AUTO, DMX_CFG_GEMM_CLBLAST, DMX_CFG_GEMM_HOST_BLAS } dmx_cfg_gemm_backend;

typedef struct {
  int vocab_size;  /* 50265 */
  int hidden_size; /* d */
  int num_layers;
  int num_heads;
  int intermediate_size;
  int max_position_embeddings; /* 514 */
  int type_vocab_size;         /* 1 */
  int pad_token_id;            /* 1 */
  float hidden_dropout;        /* 0.1 */
  float attention_dropout;     /* 0.1 */
  float layer_norm_eps;        /* 1e-5 */
  float initializer_range;     /* 0.02 */
} dmx_model_config;

typedef struct {
  int num_instances; /* N */
  dmx_muxing muxing;
  dmx_demuxing demuxing;
  bool learn_muxing;
  float gaussian_hadamard_norm; /* 20 for retrieval warm-up, 1 otherwise */
  float binary_hadamard_epsilon;
  bool attention_mask;        /* false: the original's quirk (no mask) */
  bool second_embedding_pass; /* true: the original's quirk */
} dmx_mux_config;

typedef struct {
  char name[32];         /* sst2, mnli, qnli, qqp, cola, mrpc, stsb, rte, wnli, ner, text */
  char data_dir[1024];   /* data root (--data-dir, $DATAMUX_DATA, default) */
  char train_file[1024]; /* optional explicit files; empty = the task's standard layout */
  char eval_file[1024];
  char text_file[1024];   /* raw text for retrieval warm-up; empty = the task's own sentences */
  char tokenizer[1024];   /* folder holding vocab.json + merges.txt; relative to data_dir */
  int max_length;         /* 128 */
  bool drop_last;         /* original's truncated evaluation */
  int max_train_examples; /* 0 = all */
  int max_eval_examples;  /* 0 = all */
} dmx_task_config;

typedef struct {
  float learning_rate;
  int batch_size; /* groups of N per step; 0 = by N (32/24/20/16) */
  int max_steps;  /* 0 = use epochs */
  float epochs;
  int eval_interval; /* steps; 0 = once per epoch */
  int log_interval;
  int save_interval;   /* steps between resumable checkpoints (last/); 0 = at each evaluation */
  int seed;            /* 42 */
  float max_grad_norm; /* 1.0; 0 disables */
  dmx_schedule schedule;
  int warmup_steps;
  float weight_decay;
  float adam_beta1, adam_beta2, adam_eps;
  float task_loss_coeff, retrieval_loss_coeff;
  float retrieval_percentage;
  float time_budget_seconds; /* 0 = none: stop training after this long */
  bool do_train, do_eval;
} dmx_train_config;

/* Vision multiplexing (docs/datamux-spec.md §4): tasks fashion_mnist, mnist, idx. */
typedef enum { DMX_VMODEL_LENET, DMX_VMODEL_MLP } dmx_vision_model_kind;
typedef enum {
  DMX_VMUX_NONE,             /* N = 1 only: the plain model */
  DMX_VMUX_GAUSSIAN,         /* fixed random 3x3 kernel per instance (pad 1) */
  DMX_VMUX_GRADED,           /* constant kernel i+1 */
  DMX_VMUX_IDENTITY,         /* all-ones kernel */
  DMX_VMUX_LEARNABLE,        /* trainable 3x3 kernel per instance */
  DMX_VMUX_SO_N,             /* fixed random orthogonal (det +1) crop^2 x crop^2 matrix per instance */
  DMX_VMUX_LEARNABLE_W,      /* trainable crop^2 x crop^2 matrix per instance */
  DMX_VMUX_NONLINEAR,        /* conv 1->16 3x3, tanh, conv 16->1 3x3, tanh per instance */
  DMX_VMUX_NONLINEAR_EXPAND, /* ... conv 16->expand_channels: an expand_channels-channel muxed image */
  DMX_VMUX_ROTATION          /* rotate instance i by 360 i/N degrees, times (1 - 2i) */
} dmx_vision_muxing;
typedef enum { DMX_VACT_TANH, DMX_VACT_RELU } dmx_vision_activation;
typedef enum { DMX_VLOSS_MSE, DMX_VLOSS_XENT } dmx_vision_loss;
typedef enum { DMX_VOPT_SGD, DMX_VOPT_ADAMW } dmx_vision_optimizer;

typedef struct {
  dmx_vision_model_kind model;      /* lenet */
  char hidden_sizes[128];           /* mlp: comma-separated widths, "256,128" */
  dmx_vision_muxing muxing;         /* nonlinear_expand (none forced for N = 1 unless set) */
  int expand_channels;              /* 8 */
  int conv1_channels;               /* 0 = 6 for the plain LeNet, 10 when muxed (the notebook) */
  dmx_vision_activation activation; /* tanh (LeNet is always tanh) */
  dmx_vision_loss loss;             /* mse on +-1 targets, as the notebook */
  dmx_vision_optimizer optimizer;   /* sgd, lr 0.1 */
  int crop;                         /* 20: centre crop of the 28x28 images */
} dmx_vision_config;

/* Where a field's value came from, so validation errors can point at it and so defaults that depend on
 * the setting never override a value the user chose. */
typedef enum { DMX_ORIGIN_DEFAULT, DMX_ORIGIN_EXPERIMENT_FILE, DMX_ORIGIN_MODEL_FILE, DMX_ORIGIN_FLAG } dmx_origin_kind;
typedef struct {
  dmx_origin_kind kind;
  int line, column; /* 1-based; for the two file kinds */
  char flag[96];    /* for DMX_ORIGIN_FLAG: the flag as given, e.g. "-N 5" */
} dmx_field_origin;
#define DMX_MAX_FIELDS 80

typedef struct dmx_experiment {
  char source_path[1024]; /* the experiment file it came from ("" for defaults) */
  char name[128];
  char model_config_file[1024]; /* config_name: where `model` came from, if separate */
  dmx_setting setting;
  dmx_model_config model;
  dmx_mux_config mux;
  dmx_task_config task;
  dmx_train_config train;
  dmx_vision_config vision; /* vision tasks only */
  char model_path[1024];    /* checkpoint to start from */
  char output_dir[1024];
  char device[256];                        /* INDEX, PLATFORM:INDEX or name part (dmx_choose_device); "" = default */
  dmx_cfg_gemm_backend gemm_backend;       /* auto: host BLAS on CPU devices with native kernels */
  dmx_field_origin origin[DMX_MAX_FIELDS]; /* per field of the table in config.c; not a setting */
} dmx_experiment;

void dmx_experiment_defaults(dmx_experiment *e);
/* Starts from the defaults, reads the file, then fills setting-dependent defaults not set explicitly
 * (coefficients, norm, lr, batch by N). Range checks are left to dmx_experiment_validate, since
 * flags applied later may fix them. */
int dmx_experiment_load(dmx_experiment *e, const char *path, dmx_error *err);
/* Applies command-line flags (the original scripts' names, and --set key.path=value). Parses
 * argv[0..argc); unknown flags are an error. Returns 0 or -1 with err. */
int dmx_experiment_apply_flags(dmx_experiment *e, int argc, char **argv, dmx_error *err);
/* "file:line:col: ", "flag -N 5: ", or "" for a default: where field `path` got its value. */
void dmx_experiment_describe_origin(const dmx_experiment *e, const char *path, char *out, size_t cap);
int dmx_experiment_validate(const dmx_experiment *e, dmx_error *err);
void dmx_experiment_print_yaml(FILE *f, const dmx_experiment *e);

int dmx_base_batch_size(int num_instances); /* 32 / 24 / 20 / 16 */

/* Sets one field by its YAML path ("training.learning_rate", "model.hidden_size", "name"), as
 * `--set path=value` does, marks it explicit and re-derives the dependent defaults. */
int dmx_experiment_set(dmx_experiment *e, const char *path, const char *value, dmx_error *err);
/* The value of field `path` as text, unquoted, as `datamux config` prints it ("0.001", "mlp",
 * "runs/x"); -1 (out "") for an unknown path. */
int dmx_experiment_field_text(const dmx_experiment *e, const char *path, char *out, size_t cap);
/* Whether the user set the field (YAML or flag) rather than it taking a default. False for unknown paths. */
bool dmx_experiment_is_explicit(const dmx_experiment *e, const char *path);
/* Compares every setting (not source_path, model_config_file or origins). Returns the number of
 * differing fields and names the first in what (may be NULL). */
int dmx_experiment_diff(const dmx_experiment *a, const dmx_experiment *b, char *what, size_t cap);
/* Every YAML path a field can have ("model.hidden_size", ...), NULL-terminated; for help and tests. */
const char *const *dmx_experiment_field_paths(void);
const char *dmx_muxing_name(dmx_muxing m);
const char *dmx_demuxing_name(dmx_demuxing d);
const char *dmx_setting_name(dmx_setting s);
const char *dmx_schedule_name(dmx_schedule s);
/* fashion_mnist, mnist, idx: trained by host/train_vision.c */
bool dmx_task_is_vision(const char *task_name);
const char *dmx_vision_muxing_name(dmx_vision_muxing m);
/* Parses vision.hidden_sizes into sizes[0..max); returns the count, or -1 on a malformed list. */
int dmx_vision_hidden_sizes(const char *text, int *sizes, int max);

#endif
