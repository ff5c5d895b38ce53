/* Experiments: every shipped YAML loads, validates and round-trips through print; bad files and bad
 * flags fail with messages that point at file:line:column or name the flag; flags override YAML;
 * defaults that depend on the setting and on N. Runs from the repository root (ctest sets that). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/config/config.h"
#include "tests/harness.h"

#define FIXTURES "tests/fixtures/config/"

/* ---------------------------------------------------------------------------------------------- */
/* Helpers                                                                                         */

/* Loads path, applies flags, validates; returns 0 or -1 with err. */
static int load_with_flags(dmx_experiment *e, const char *path, int argc, char **argv, dmx_error *err) {
  if (path) {
    if (dmx_experiment_load(e, path, err)) return -1;
  } else {
    dmx_experiment_defaults(e);
  }
  if (dmx_experiment_apply_flags(e, argc, argv, err)) return -1;
  return dmx_experiment_validate(e, err);
}

/* Prints e to a temporary file, loads that back and returns how many fields differ (what = first). */
static int round_trip_differences(const dmx_experiment *e, char *what, size_t cap) {
  char path[] = "/tmp/datamux_test_config_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) {
    snprintf(what, cap, "mkstemp failed");
    return -1;
  }
  FILE *f = fdopen(fd, "w");
  if (!f) {
    close(fd);
    unlink(path);
    snprintf(what, cap, "fdopen failed");
    return -1;
  }
  dmx_experiment_print_yaml(f, e);
  if (fclose(f) != 0) {
    unlink(path);
    snprintf(what, cap, "fclose failed");
    return -1;
  }
  dmx_experiment *back = malloc(sizeof *back);
  dmx_error err;
  int rc;
  if (!back) {
    rc = -1;
    snprintf(what, cap, "out of memory");
  } else if (dmx_experiment_load(back, path, &err) || dmx_experiment_validate(back, &err)) {
    rc = -1;
    snprintf(what, cap, "printed YAML does not load back: %.200s", err.msg);
  } else {
    rc = dmx_experiment_diff(e, back, what, cap);
  }
  free(back);
  unlink(path);
  return rc;
}

static bool has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

/* Collects every .yaml under dir into paths (skipping experiments/models, which hold model files,
 * and experiments/sweeps, which hold sweep files: tests/test_sweep.c loads those). */
static int collect_yaml(const char *dir, bool skip_models, char paths[][512], int cap, int n) {
  DIR *d = opendir(dir);
  if (!d) return n;
  struct dirent *ent;
  while ((ent = readdir(d)) != NULL) {
    if (ent->d_name[0] == '.') continue;
    char full[512];
    snprintf(full, sizeof full, "%s/%s", dir, ent->d_name);
    struct stat st;
    if (stat(full, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (skip_models && (!strcmp(ent->d_name, "models") || !strcmp(ent->d_name, "sweeps"))) continue;
      n = collect_yaml(full, skip_models, paths, cap, n);
    } else if (has_suffix(ent->d_name, ".yaml") && n < cap) {
      snprintf(paths[n++], 512, "%s", full);
    }
  }
  closedir(d);
  return n;
}

/* ---------------------------------------------------------------------------------------------- */
/* Shipped experiments                                                                             */

static void test_shipped_experiments_round_trip(void) {
  th_begin("every shipped experiment loads, validates and round-trips through print");
  static char paths[256][512];
  int n = collect_yaml("experiments", true, paths, 256, 0);
  /* 5 retrieval + 25 fine-tuning + 5 baselines + ablations + quickstart. */
  CHECKF(n >= 50, "found only %d experiment files under experiments/", n);
  dmx_experiment *e = malloc(sizeof *e);
  CHECK(e != NULL);
  for (int i = 0; e && i < n; i++) {
    dmx_error err;
    if (dmx_experiment_load(e, paths[i], &err) || dmx_experiment_validate(e, &err)) {
      th_fail_at(__FILE__, __LINE__, "%s: %s", paths[i], err.msg);
      continue;
    }
    /* vision experiments (experiments/vision/) have no text model: their model is the vision: section */
    CHECKF(e->model_config_file[0] || dmx_task_is_vision(e->task.name),
           "%s: shipped experiments name their model with config_name", paths[i]);
    char what[256];
    int diffs = round_trip_differences(e, what, sizeof what);
    CHECKF(diffs == 0, "%s: %d fields differ after print -> load, first %s", paths[i], diffs, what);
  }
  free(e);
  th_end();
}

static void test_model_files(void) {
  th_begin("every model file loads through --config_name and validates");
  static char paths[64][512];
  int n = collect_yaml("experiments/models", false, paths, 64, 0);
  CHECKF(n >= 13, "found only %d model files", n);
  dmx_experiment *e = malloc(sizeof *e);
  for (int i = 0; e && i < n; i++) {
    dmx_error err;
    char *argv[] = {"--config_name", paths[i]};
    if (load_with_flags(e, NULL, 2, argv, &err)) th_fail_at(__FILE__, __LINE__, "%s: %s", paths[i], err.msg);
    CHECK(e->origin[0].kind == DMX_ORIGIN_DEFAULT); /* name: untouched by a model file */
    CHECKF(dmx_experiment_is_explicit(e, "model.hidden_size"), "%s sets no hidden_size", paths[i]);
  }
  if (e && dmx_experiment_load(e, "experiments/ablations/width_156.yaml", &(dmx_error){{0}}) == 0) {
    CHECK(e->model.hidden_size == 156 && e->model.intermediate_size == 624 && e->model.num_heads == 12);
    CHECK(e->model.num_layers == 12);
  } else {
    CHECK(!"experiments/ablations/width_156.yaml loads");
  }
  free(e);
  th_end();
}

static void test_diff_detects_changes(void) {
  th_begin("diff reports a changed field (so the round-trip test can fail)");
  dmx_experiment a, b;
  dmx_experiment_defaults(&a);
  b = a;
  char what[128];
  CHECK(dmx_experiment_diff(&a, &b, what, sizeof what) == 0);
  b.train.adam_eps = 1.0000001e-8f;
  CHECK(dmx_experiment_diff(&a, &b, what, sizeof what) == 1 && !strcmp(what, "training.adam_eps"));
  b = a;
  strcpy(b.task.text_file, "x");
  b.mux.attention_mask = true;
  CHECK(dmx_experiment_diff(&a, &b, what, sizeof what) == 2 && !strcmp(what, "multiplexing.attention_mask"));
  th_end();
}

static void test_round_trip_odd_values(void) {
  th_begin("round trip keeps awkward strings and floats exactly");
  dmx_experiment e;
  dmx_error err;
  dmx_experiment_defaults(&e);
  char *argv[] = {"--set",        "name=a: \"quoted\" # not a comment\\",
                  "--set",        "training.learning_rate=3.3333333e-4",
                  "--set",        "model.layer_norm_eps=1e-12",
                  "--output_dir", "true",
                  "--device",     "  spaced  "};
  CHECKF(load_with_flags(&e, NULL, 10, argv, &err) == 0, "%s", err.msg);
  CHECK(!strcmp(e.name, "a: \"quoted\" # not a comment\\"));
  char what[256];
  int diffs = round_trip_differences(&e, what, sizeof what);
  CHECKF(diffs == 0, "%d differ, first %s", diffs, what);
  th_end();
}

/* ---------------------------------------------------------------------------------------------- */
/* Bad files and bad flags                                                                         */

typedef struct {
  const char *file;     /* under tests/fixtures/config/ */
  const char *expected; /* substring of the message */
} bad_file_case;

static const bad_file_case bad_files[] = {
    {"invalid_yaml.yaml", "invalid_yaml.yaml:4:13: invalid YAML: did not find expected ',' or ']'"},
    {"bad_indent.yaml", "bad_indent.yaml:4:14: invalid YAML: mapping values are not allowed"},
    {"two_documents.yaml", "two_documents.yaml:3:1: a second YAML document"},
    {"empty.yaml", "empty.yaml: file is empty"},
    {"top_not_mapping.yaml", "top_not_mapping.yaml:1:1: an experiment must be a mapping of keys, got a list"},
    {"unknown_key.yaml",
     "unknown_key.yaml:3:3: unknown key 'hiden_size' in section 'model' (did you mean 'hidden_size'?)"},
    {"unknown_top_key.yaml", "unknown_top_key.yaml:2:1: unknown key 'trainng' at top level (did you mean 'training'?)"},
    {"unknown_key_no_suggestion.yaml",
     "unknown_key_no_suggestion.yaml:2:3: unknown key 'zzzzzzzz' in section 'training' (valid: learning_rate,"},
    {"wrong_type_int.yaml", "wrong_type_int.yaml:2:16: model.hidden_size: expected an integer, got 'abc'"},
    {"wrong_type_float.yaml", "wrong_type_float.yaml:2:18: training.learning_rate: expected a number, got 'fast'"},
    {"wrong_type_bool.yaml", "wrong_type_bool.yaml:2:13: training.do_train: expected true or false, got 'maybe'"},
    {"int_overflow.yaml", "int_overflow.yaml:2:9: training.seed: 99999999999 is out of range"},
    {"list_for_scalar.yaml", "list_for_scalar.yaml:2:9: training.seed: expected an integer, got a list"},
    {"mapping_for_scalar.yaml", "mapping_for_scalar.yaml:2:3: name: expected a string, got a mapping"},
    {"section_not_mapping.yaml", "section_not_mapping.yaml:1:11: 'training' must be a mapping of keys, got a scalar"},
    {"duplicate_key.yaml", "duplicate_key.yaml:3:3: duplicate key 'seed'"},
    {"bad_enum.yaml",
     "bad_enum.yaml:2:11: multiplexing.muxing: unknown value 'gausian_hadamard' (did you mean 'gaussian_hadamard'? "
     "valid: gaussian_hadamard, binary_hadamard, random_ortho)"},
    {"bad_setting.yaml",
     "bad_setting.yaml:1:10: setting: unknown value 'pretraining' (valid: baseline, retrieval_pretraining, "
     "finetuning)"},
    {"bad_task.yaml", "bad_task.yaml:2:9: task.name: unknown value 'imdb'"},
    {"n_zero.yaml", "n_zero.yaml:2:18: multiplexing.num_instances must be between 1 and 64, got 0"},
    {"n_too_large.yaml", "n_too_large.yaml:2:18: multiplexing.num_instances must be between 1 and 64, got 65"},
    {"heads_not_dividing.yaml",
     "heads_not_dividing.yaml:3:14: model.hidden_size 100 is not divisible by model.num_heads 12"},
    {"positions_overflow.yaml",
     "positions_overflow.yaml:4:15: task.max_length 480 + 41 index prefix tokens (num_instances + 1) + 2 (positions "
     "start at 2) = 523 exceeds model.max_position_embeddings 514"},
    {"negative_lr.yaml", "negative_lr.yaml:2:18: training.learning_rate must be positive, got -0.001"},
    {"dropout_range.yaml", "dropout_range.yaml:2:19: model.hidden_dropout must be in [0, 1), got 1"},
    {"negative_steps.yaml", "negative_steps.yaml:2:14: training.max_steps must be at least 0, got -5"},
    {"baseline_with_n.yaml",
     "baseline_with_n.yaml:3:18: setting baseline does not multiplex: multiplexing.num_instances must be 1, got 2"},
    {"text_task_finetuning.yaml", "text_task_finetuning.yaml:3:9: task text has no labels"},
    {"binary_too_narrow.yaml", "binary_too_narrow.yaml:6:11: binary_hadamard muxing gives each instance a block"},
    {"missing_config_name.yaml",
     "missing_config_name.yaml:2:14: config_name: model file 'models/does_not_exist.yaml' not found (looked for "
     "tests/fixtures/config/models/does_not_exist.yaml"},
    {"model_and_config_name.yaml",
     "model_and_config_name.yaml:3:14: give the model either inline under 'model:' or as 'config_name:', not both"},
    {"bad_model_ref.yaml",
     "bad_model_ref.yaml:2:14: in config_name 'bad_model_file.yaml': tests/fixtures/config/bad_model_file.yaml:2:1: "
     "unknown key 'num_layer' in section 'model' (did you mean 'num_layers'?)"},
    {"does_not_exist.yaml", "does_not_exist.yaml: cannot open: No such file or directory"},
};

static void test_bad_files(void) {
  th_begin("bad experiment files fail with file:line:column and the reason");
  for (size_t i = 0; i < sizeof bad_files / sizeof *bad_files; i++) {
    char path[512];
    snprintf(path, sizeof path, FIXTURES "%s", bad_files[i].file);
    dmx_experiment e;
    dmx_error err = {{0}};
    int rc = load_with_flags(&e, path, 0, NULL, &err);
    CHECKF(rc == -1, "%s: accepted", bad_files[i].file);
    if (rc == -1)
      CHECKF(strstr(err.msg, bad_files[i].expected) != NULL, "%s:\n    got  %s\n    want %s", bad_files[i].file,
             err.msg, bad_files[i].expected);
  }
  th_end();
}

typedef struct {
  const char *args[6];
  const char *expected;
} bad_flag_case;

static const bad_flag_case bad_flags[] = {
    {{"-N", "abc"}, "flag -N: expected an integer, got 'abc'"},
    {{"--num_instances=0"}, "flag --num_instances 0: multiplexing.num_instances must be between 1 and 64, got 0"},
    {{"-N"}, "flag -N needs a value"},
    {{"--lrr", "1e-3"}, "unknown flag '--lrr' (did you mean '--lr'?)"},
    {{"--frobnicate"}, "unknown flag '--frobnicate'"},
    {{"-m", "foo"}, "flag -m: unknown value 'foo' (valid: gaussian_hadamard, binary_hadamard, random_ortho)"},
    {{"--demuxing=indx"}, "flag --demuxing: unknown value 'indx' (did you mean 'index'?"},
    {{"-s", "baseline", "-N", "3"}, "flag -N 3: setting baseline does not multiplex"},
    {{"--lr", "-1"}, "flag --lr -1: training.learning_rate must be positive, got -1"},
    {{"--set", "model.hidden_size"}, "flag --set expects key.path=value, got 'model.hidden_size'"},
    {{"--set", "model.hiden_size=64"},
     "flag --set model.hiden_size: unknown key 'model.hiden_size' (did you mean 'model.hidden_size'?)"},
    {{"--set", "model.hidden_size=100"},
     "flag --set model.hidden_size=100: model.hidden_size 100 is not divisible by model.num_heads 12"},
    {{"--set", "training.lr=1"},
     "flag --set training.lr: unknown key 'training.lr' (did you mean 'training.learning_rate'?)"},
    {{"--set", "training.seed=x"}, "flag --set training.seed: expected an integer, got 'x'"},
    {{"--learn_muxing=maybe"}, "flag --learn_muxing: expected true or false, got 'maybe'"},
    {{"stray.yaml"}, "unexpected argument 'stray.yaml'"},
    {{"--config_name", "models/nope.yaml"}, "flag --config_name: model file 'models/nope.yaml' not found"},
    {{"--config_name", FIXTURES "bad_model_file.yaml"},
     "flag --config_name: " FIXTURES "bad_model_file.yaml:2:1: unknown key 'num_layer'"},
    {{"--batch_size", "-2"}, "flag --batch_size -2: training.batch_size must be at least 1, got -2"},
    {{"--gemm-backend", "openblas"}, "flag --gemm-backend: unknown value 'openblas' (valid: auto, clblast, host_blas)"},
};

static void test_bad_flags(void) {
  th_begin("bad flags fail naming the flag");
  for (size_t i = 0; i < sizeof bad_flags / sizeof *bad_flags; i++) {
    int argc = 0;
    while (argc < 6 && bad_flags[i].args[argc]) argc++;
    dmx_experiment e;
    dmx_error err = {{0}};
    int rc = load_with_flags(&e, NULL, argc, (char **)bad_flags[i].args, &err);
    CHECKF(rc == -1, "case %zu (%s): accepted", i, bad_flags[i].args[0]);
    if (rc == -1)
      CHECKF(strstr(err.msg, bad_flags[i].expected) != NULL, "case %zu:\n    got  %s\n    want %s", i, err.msg,
             bad_flags[i].expected);
  }
  th_end();
}

/* ---------------------------------------------------------------------------------------------- */
/* Flags and defaults                                                                              */

static void test_flags_override_yaml(void) {
  th_begin("flags override YAML; the rest of the file stays");
  dmx_experiment e;
  dmx_error err;
  char *argv[] = {"-N",
                  "5",
                  "--lr=0.01",
                  "-m",
                  "random_ortho",
                  "--set",
                  "model.hidden_size=64",
                  "--set=model.num_heads=4",
                  "--task",
                  "qnli",
                  "--seed",
                  "7",
                  "--max_steps=11",
                  "--output_dir",
                  "/tmp/x",
                  "--data-dir",
                  "/d"};
  int rc = load_with_flags(&e, "experiments/quickstart.yaml", (int)(sizeof argv / sizeof *argv), argv, &err);
  CHECKF(rc == 0, "%s", err.msg);
  CHECK(e.mux.num_instances == 5 && e.mux.muxing == DMX_MUX_RANDOM_ORTHO);
  CHECK(e.train.learning_rate == 0.01f && e.train.seed == 7 && e.train.max_steps == 11);
  CHECK(e.model.hidden_size == 64 && e.model.num_heads == 4);
  CHECK(!strcmp(e.task.name, "qnli") && !strcmp(e.output_dir, "/tmp/x") && !strcmp(e.task.data_dir, "/d"));
  /* From the file (and its tiny model), untouched by the flags: */
  CHECK(e.task.max_length == 48 && e.train.time_budget_seconds == 360.0f && e.model.num_layers == 2 &&
        e.mux.attention_mask && e.train.retrieval_loss_coeff == 0.0f && e.mux.demuxing == DMX_DEMUX_MLP);
  CHECK(!strcmp(e.name, "quickstart") && e.setting == DMX_SETTING_FINETUNING);
  CHECK(e.train.batch_size == 24); /* by N=5, since the file sets none */
  th_end();
}

static void test_config_name_flag_then_set(void) {
  th_begin("--config_name replaces the model; --set model.* wins wherever it appears");
  dmx_experiment e;
  dmx_error err;
  char *argv[] = {"--set", "model.num_layers=3", "--config_name", "models/micro.yaml"};
  CHECKF(load_with_flags(&e, "experiments/finetune/sst2_n2.yaml", 4, argv, &err) == 0, "%s", err.msg);
  CHECK(e.model.hidden_size == 64 && e.model.num_heads == 2 && e.model.intermediate_size == 128);
  CHECK(e.model.num_layers == 3);
  CHECK(strstr(e.model_config_file, "models/micro.yaml") != NULL);
  th_end();
}

static void test_flag_forms(void) {
  th_begin("--flag value, --flag=value, aliases and bare boolean flags");
  dmx_experiment a, b;
  dmx_error err;
  char *space[] = {"--num-instances", "3", "--lr", "1e-3", "--learn_muxing", "--do_train", "0", "--do_eval"};
  char *equals[] = {"--num_instances=3", "--lr=1e-3", "--learn_muxing=1", "--do_train=false", "--do_eval=yes"};
  CHECKF(load_with_flags(&a, NULL, 8, space, &err) == 0, "%s", err.msg);
  CHECKF(load_with_flags(&b, NULL, 5, equals, &err) == 0, "%s", err.msg);
  CHECK(a.mux.num_instances == 3 && a.train.learning_rate == 1e-3f);
  CHECK(a.mux.learn_muxing && !a.train.do_train && a.train.do_eval);
  char what[128];
  CHECKF(dmx_experiment_diff(&a, &b, what, sizeof what) == 0, "forms differ at %s", what);
  char *off[] = {"--learn_muxing", "0"};
  CHECK(load_with_flags(&a, NULL, 2, off, &err) == 0 && !a.mux.learn_muxing);
  th_end();
}

static void test_setting_defaults(void) {
  th_begin("defaults by setting, unless set explicitly");
  dmx_experiment e;
  dmx_error err;
  dmx_experiment_defaults(&e);
  CHECK(e.setting == DMX_SETTING_FINETUNING && e.train.task_loss_coeff == 0.9f && e.train.retrieval_loss_coeff == 0.1f);
  CHECK(e.mux.gaussian_hadamard_norm == 1.0f && e.train.learning_rate == 5e-5f && e.mux.num_instances == 1);
  CHECK(e.model.vocab_size == 50265 && e.model.max_position_embeddings == 514 && e.model.hidden_size == 768);
  CHECK(e.model.layer_norm_eps == 1e-5f && e.train.seed == 42 && e.train.max_grad_norm == 1.0f);
  CHECK(e.train.schedule == DMX_SCHEDULE_LINEAR && e.train.warmup_steps == 0 && e.train.adam_eps == 1e-8f);

  char *retrieval[] = {"-s", "retrieval_pretraining"};
  CHECK(load_with_flags(&e, NULL, 2, retrieval, &err) == 0);
  CHECK(e.train.task_loss_coeff == 0.0f && e.train.retrieval_loss_coeff == 1.0f);
  CHECK(e.mux.gaussian_hadamard_norm == 20.0f && e.train.learning_rate == 5e-5f && !strcmp(e.task.name, "text"));

  char *baseline[] = {"-s", "baseline"};
  CHECK(load_with_flags(&e, NULL, 2, baseline, &err) == 0);
  CHECK(e.train.task_loss_coeff == 1.0f && e.train.retrieval_loss_coeff == 0.0f);
  CHECK(e.train.learning_rate == 2e-5f && e.mux.num_instances == 1 && e.train.batch_size == 32);
  CHECK(e.train.max_steps == 0 && e.train.epochs == 10.0f && !e.task.drop_last);

  /* The retrieval file sets N and lr (for N=40) itself; switching setting keeps what the user chose. */
  char *to_finetune[] = {"-s", "finetuning", "--set", "multiplexing.gaussian_hadamard_norm=3", "--task", "mnli"};
  CHECKF(load_with_flags(&e, "experiments/retrieval/n40.yaml", 6, to_finetune, &err) == 0, "%s", err.msg);
  CHECK(e.train.learning_rate == 2e-5f && e.mux.num_instances == 40 && e.mux.gaussian_hadamard_norm == 3.0f);
  CHECK(e.train.task_loss_coeff == 0.9f && e.train.retrieval_loss_coeff == 0.1f);
  CHECK(!strcmp(e.task.name, "mnli") && e.task.drop_last && e.train.max_steps == 500000);
  CHECK(dmx_experiment_is_explicit(&e, "training.learning_rate"));
  CHECK(!dmx_experiment_is_explicit(&e, "training.task_loss_coeff"));
  CHECK(!dmx_experiment_is_explicit(&e, "no.such.key"));
  th_end();
}

static void test_batch_size_by_n(void) {
  th_begin("batch size by N (32/24/20/16 groups) unless given");
  CHECK(dmx_base_batch_size(1) == 32 && dmx_base_batch_size(2) == 24 && dmx_base_batch_size(19) == 24);
  CHECK(dmx_base_batch_size(20) == 20 && dmx_base_batch_size(39) == 20 && dmx_base_batch_size(40) == 16);
  static const int ns[] = {1, 2, 5, 10, 20, 40}, want[] = {32, 24, 24, 24, 20, 16};
  for (int i = 0; i < 6; i++) {
    dmx_experiment e;
    dmx_error err;
    char n[8];
    snprintf(n, sizeof n, "%d", ns[i]);
    char *argv[] = {"-N", n};
    CHECK(load_with_flags(&e, NULL, 2, argv, &err) == 0 && e.train.batch_size == want[i]);
  }
  dmx_experiment e;
  dmx_error err;
  char *fixed[] = {"--batch_size", "7", "-N", "40"};
  CHECK(load_with_flags(&e, NULL, 4, fixed, &err) == 0 && e.train.batch_size == 7);
  char *zero[] = {"--batch_size", "0", "-N", "20"};
  CHECK(load_with_flags(&e, NULL, 4, zero, &err) == 0 && e.train.batch_size == 20);
  /* -N after a file follows N too. */
  char *n20[] = {"-N", "20"};
  CHECK(load_with_flags(&e, "experiments/finetune/mnli_n2.yaml", 2, n20, &err) == 0 && e.train.batch_size == 20);
  th_end();
}

static void test_set_function(void) {
  th_begin("dmx_experiment_set sets by path and re-derives defaults");
  dmx_experiment e;
  dmx_error err;
  dmx_experiment_defaults(&e);
  CHECK(dmx_experiment_set(&e, "setting", "retrieval_pretraining", &err) == 0);
  CHECK(e.mux.gaussian_hadamard_norm == 20.0f);
  CHECK(dmx_experiment_set(&e, "multiplexing.num_instances", "40", &err) == 0 && e.train.batch_size == 16);
  CHECK(dmx_experiment_set(&e, "training.lr", "1", &err) == -1 && strstr(err.msg, "unknown key 'training.lr'"));
  CHECK(dmx_experiment_set(&e, "config_name", "models/tiny.yaml", &err) == 0 && e.model.hidden_size == 128);
  th_end();
}

/* ---------------------------------------------------------------------------------------------- */
/* The command                                                                                     */

static void test_config_command(void) {
  th_begin("datamux config prints the resolved experiment, or the error with exit 2");
  char cmd[1024], out[65536];
  snprintf(cmd, sizeof cmd, "%s config experiments/quickstart.yaml -N 5 -m random_ortho", th_datamux_bin());
  int rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 0, "exit %d: %s", rc, out);
  CHECKF(strstr(out, "\n  num_instances: 5\n") != NULL, "output: %s", out);
  CHECKF(strstr(out, "\n  muxing: random_ortho\n") != NULL, "output: %s", out);
  CHECK(strstr(out, "\n  hidden_size: 128\n") != NULL); /* tiny.yaml, inline */

  snprintf(cmd, sizeof cmd, "%s config " FIXTURES "unknown_key.yaml", th_datamux_bin());
  rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 2, "exit %d", rc);
  CHECKF(strstr(out, "unknown_key.yaml:3:3: unknown key 'hiden_size'") != NULL, "output: %s", out);

  snprintf(cmd, sizeof cmd, "%s config experiments/quickstart.yaml --nope", th_datamux_bin());
  rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 2 && strstr(out, "unknown flag '--nope'"), "exit %d: %s", rc, out);

  /* Without a file: the defaults, which load back to the defaults. */
  char path[] = "/tmp/datamux_test_config_cmd_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) {
    close(fd);
    snprintf(cmd, sizeof cmd, "%s config > %s", th_datamux_bin(), path);
    rc = th_run(cmd, out, sizeof out);
    CHECKF(rc == 0, "exit %d: %s", rc, out);
    dmx_experiment printed, defaults;
    dmx_error err;
    dmx_experiment_defaults(&defaults);
    if (dmx_experiment_load(&printed, path, &err) == 0) {
      char what[128];
      /* The name comes from the file unless printed; it was printed, so everything matches. */
      CHECKF(dmx_experiment_diff(&printed, &defaults, what, sizeof what) == 0, "differs at %s", what);
    } else {
      CHECKF(0, "printed defaults do not load: %s", err.msg);
    }
    unlink(path);
  }
  th_end();
}

int main(void) {
  test_shipped_experiments_round_trip();
  test_model_files();
  test_diff_detects_changes();
  test_round_trip_odd_values();
  test_bad_files();
  test_bad_flags();
  test_flags_override_yaml();
  test_config_name_flag_then_set();
  test_flag_forms();
  test_setting_defaults();
  test_batch_size_by_n();
  test_set_function();
  test_config_command();
  return th_finish();
}
