#include "host/run/checkpoint.h"
#include "host/run/train_state.h"

#include <stdlib.h>
#include <string.h>

#include "host/run/hf_config.h"
#include "host/formats/safetensors.h"
#include "host/formats/torch_bin.h"

static int write_config_json(const dmx_model *m, const dmx_experiment *e, const char *path, dmx_error *err) {
  const dmx_model_config *mc = &e->model;
  const dmx_mux_config *mx = &e->mux;
  char buf[4096];
  bool baseline = e->setting == DMX_SETTING_BASELINE;
  int n = snprintf(
      buf, sizeof buf,
      "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"roberta\",\n  \"vocab_size\": %d,\n"
      "  \"hidden_size\": %d,\n  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
      "  \"intermediate_size\": %d,\n  \"hidden_act\": \"gelu\",\n  \"hidden_dropout_prob\": %g,\n"
      "  \"attention_probs_dropout_prob\": %g,\n  \"max_position_embeddings\": %d,\n  \"type_vocab_size\": %d,\n"
      "  \"initializer_range\": %g,\n  \"layer_norm_eps\": %g,\n  \"pad_token_id\": %d,\n  \"bos_token_id\": 0,\n"
      "  \"eos_token_id\": 2,\n  \"num_labels\": %d,\n  \"finetuning_task\": \"%s\",\n  \"num_instances\": %d,\n"
      "  \"muxing_variant\": \"%s\",\n  \"demuxing_variant\": \"%s\",\n  \"gaussian_hadamard_norm\": %g,\n"
      "  \"binary_hadamard_epsilon\": %g,\n  \"learn_muxing\": %d,\n  \"retrieval_percentage\": %g,\n"
      "  \"retrieval_loss_coeff\": %g,\n  \"task_loss_coeff\": %g,\n  \"should_mux\": %d\n}\n",
      baseline
          ? "RobertaForSequenceClassification"
          : (!strcmp(e->task.name, "ner") ? "RobertaTokenClassificationMuxed" : "RobertaSequenceClassificationMuxed"),
      mc->vocab_size, mc->hidden_size, mc->num_layers, mc->num_heads, mc->intermediate_size, mc->hidden_dropout,
      mc->attention_dropout, mc->max_position_embeddings, mc->type_vocab_size, mc->initializer_range,
      mc->layer_norm_eps, mc->pad_token_id, dmx_model_num_labels(m), e->task.name, dmx_model_N(m),
      dmx_muxing_name(mx->muxing), dmx_demuxing_name(mx->demuxing), mx->gaussian_hadamard_norm,
      mx->binary_hadamard_epsilon, mx->learn_muxing ? 1 : 0, e->train.retrieval_percentage,
      e->train.retrieval_loss_coeff, e->train.task_loss_coeff, baseline ? 0 : 1);
  if (n < 0 || (size_t)n >= sizeof buf) return dmx_fail(err, "config.json for %s does not fit its buffer", path);
  return dmx_write_file_atomic(path, buf, (size_t)n, err);
}

int dmx_checkpoint_save(dmx_model *m, const dmx_experiment *e, const char *run_dir, const char *tag, dmx_error *err) {
  char dir[2048];
  snprintf(dir, sizeof dir, "%s/%s", run_dir, tag);
  if (dmx_mkdirs(dir, err)) return -1;
  return dmx_checkpoint_save_into(m, e, dir, err);
}

int dmx_checkpoint_save_into(dmx_model *m, const dmx_experiment *e, const char *dir, dmx_error *err) {
  char path[2200];
  int np = dmx_model_num_params(m);
  size_t total = 0;
  for (int i = 0; i < np; i++) total += dmx_model_param(m, i)->n;
  float *host = dmx_malloc(total * sizeof(float));
  dmx_st_writer *w = dmx_st_writer_new();
  size_t off = 0;
  int rc = 0;
  for (int i = 0; i < np && rc == 0; i++) {
    const dmx_param *p = dmx_model_param(m, i);
    dmx_tensor t = dmx_param_tensor(p);
    /* a checkpoint is a log-interval event: this download is outside any step */
    dmx_download(dmx_model_runtime(m), host + off, t, p->n * sizeof(float));
    int64_t shape[3] = {p->shape[0], p->shape[1], p->shape[2]};
    rc = dmx_st_writer_add(w, p->name, DMX_ST_F32, p->ndim, shape, host + off, err);
    if (rc == 0 && p->alias[0]) rc = dmx_st_writer_add(w, p->alias, DMX_ST_F32, p->ndim, shape, host + off, err);
    off += p->n;
  }
  if (rc == 0) rc = dmx_st_writer_meta(w, "format", "pt", err);
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  if (rc == 0) rc = dmx_st_writer_write(w, path, err);
  dmx_st_writer_free(w);
  free(host);
  if (rc) return -1;
  snprintf(path, sizeof path, "%s/config.json", dir);
  return write_config_json(m, e, path, err);
}

/* The checkpoint file `path` names: the file itself, or inside the folder model.safetensors,
 * pytorch_model.bin (a released Hugging Face model), then a run's best/ and last/. */
int dmx_checkpoint_resolve(const char *path, char *out, size_t cap, dmx_error *err) {
  const char *tries[] = {"%s", "%s/model.safetensors", "%s/pytorch_model.bin", "%s/best/model.safetensors",
                         "%s/last/model.safetensors"};
  for (size_t i = 0; i < sizeof tries / sizeof *tries; i++) {
    if (snprintf(out, cap, tries[i], path) >= (int)cap) return dmx_fail(err, "%s: path too long", path);
    if (dmx_is_file(out)) return 0;
  }
  return dmx_fail(err,
                  "%s: no checkpoint there (looked for the file itself, model.safetensors, pytorch_model.bin, "
                  "best/ and last/)",
                  path);
}

/* A zip archive (torch.save) starts with a local file header; safetensors with a length. */
static bool is_zip(const char *file) {
  FILE *f = fopen(file, "rb");
  if (!f) return false;
  unsigned char sig[4] = {0};
  bool zip = fread(sig, 1, 4, f) == 4 && sig[0] == 'P' && sig[1] == 'K' && sig[2] == 3 && sig[3] == 4;
  fclose(f);
  return zip;
}

dmx_st_file *dmx_checkpoint_open(const char *path, char *file, size_t cap, dmx_error *err) {
  if (dmx_checkpoint_resolve(path, file, cap, err)) return NULL;
  return is_zip(file) ? dmx_torch_bin_load(file, err) : dmx_st_load(file, err);
}

int dmx_checkpoint_config_path(const char *file, char *out, size_t cap) {
  const char *slash = strrchr(file, '/');
  int n = slash ? snprintf(out, cap, "%.*s/config.json", (int)(slash - file), file) : snprintf(out, cap, "config.json");
  return n > 0 && (size_t)n < cap && dmx_is_file(out) ? 0 : -1;
}

bool dmx_checkpoint_shape_matches(const dmx_st_tensor *t, const dmx_param *p, char *have, char *want, size_t cap) {
  bool same = t->ndim == p->ndim;
  for (int k = 0; same && k < p->ndim; k++) same = t->shape[k] == p->shape[k];
  int64_t ws[3] = {p->shape[0], p->shape[1], p->shape[2]};
  dmx_st_shape_str(t->ndim, t->shape, have, cap);
  dmx_st_shape_str(p->ndim, ws, want, cap);
  return same;
}

static bool head_param(const char *name) {
  return !strncmp(name, "demultiplexer.", 14) || !strncmp(name, "classifier.", 11);
}

/* The checkpoint tensor for parameter p: its name or alias, else the names older checkpoints used
 * (DataParallel's "module." prefix; the training code's sentence_embedding and lm_head.*, which
 * the released models renamed, spec §6.2). */
static const dmx_st_tensor *find_tensor(const dmx_st_file *f, const dmx_param *p) {
  const char *names[2] = {p->name, p->alias[0] ? p->alias : NULL};
  char alt[300];
  for (int k = 0; k < 2; k++) {
    if (!names[k]) continue;
    const dmx_st_tensor *t = dmx_st_find(f, names[k]);
    if (t) return t;
    snprintf(alt, sizeof alt, "module.%s", names[k]);
    if ((t = dmx_st_find(f, alt))) return t;
    if (!strcmp(names[k], "instance_embedding") && (t = dmx_st_find(f, "sentence_embedding"))) return t;
    if (!strncmp(names[k], "demultiplexer.", 14)) {
      snprintf(alt, sizeof alt, "lm_head.%s", names[k] + 14);
      if ((t = dmx_st_find(f, alt))) return t;
    }
  }
  return NULL;
}

static void append_name(char *list, size_t cap, const char *name) {
  size_t l = strlen(list);
  if (l + strlen(name) + 8 < cap)
    snprintf(list + l, cap - l, "%s%s", l ? ", " : "", name);
  else if (l + 5 < cap && strcmp(list + l - 3, "..."))
    snprintf(list + l, cap - l, ", ...");
}

/* Checks the architecture in the config.json beside `file` (when there is one) against m. */
static int check_config(dmx_model *m, const char *file, dmx_error *err) {
  char cfg[4200];
  if (dmx_checkpoint_config_path(file, cfg, sizeof cfg)) return 0;
  dmx_hf_config c;
  if (dmx_hf_config_load(cfg, &c, err)) return -1;
  return dmx_hf_config_check_model(&c, m, cfg, err);
}

/* Copies tensor t into parameter p on the device. */
static int upload_param(dmx_model *m, const dmx_st_file *f, const dmx_st_tensor *t, const dmx_param *p,
                        dmx_error *err) {
  float *h = dmx_malloc(p->n * sizeof(float));
  int rc = dmx_st_get_f32(f, t->name, h, p->n, err);
  if (rc == 0) dmx_upload(dmx_model_runtime(m), dmx_param_tensor(p), h, p->n * sizeof(float));
  free(h);
  return rc;
}

int dmx_checkpoint_load(dmx_model *m, const char *path, dmx_error *err) {
  char file[4096];
  dmx_st_file *f = dmx_checkpoint_open(path, file, sizeof file, err);
  if (!f) return -1;
  if (check_config(m, file, err)) {
    dmx_st_free(f);
    return -1;
  }
  size_t nt = dmx_st_count(f);
  bool *used = dmx_calloc(nt + 1, sizeof *used);
  int np = dmx_model_num_params(m), missing = 0, loaded = 0, rc = 0;
  char missing_list[1024] = "";
  for (int i = 0; i < np && rc == 0; i++) {
    const dmx_param *p = dmx_model_param(m, i);
    const dmx_st_tensor *t = find_tensor(f, p);
    if (!t) {
      if (!head_param(p->name) && strncmp(p->name, "retrieval_head.", 15)) {
        append_name(missing_list, sizeof missing_list, p->name);
        missing++;
      } else {
        printf("  %s: not in the checkpoint, keeps its fresh initialisation\n", p->name);
      }
      continue;
    }
    used[t - dmx_st_at(f, 0)] = true;
    if (p->alias[0]) { /* a tied pair stored twice is one parameter here */
      const dmx_st_tensor *twin = dmx_st_find(f, strcmp(t->name, p->name) ? p->name : p->alias);
      if (twin) used[twin - dmx_st_at(f, 0)] = true;
    }
    char have[96], want[96];
    if (!dmx_checkpoint_shape_matches(t, p, have, want, sizeof have)) {
      if (head_param(p->name)) {
        printf("  %s: checkpoint shape %s, model %s (another task's head): keeps its fresh initialisation\n", p->name,
               have, want);
        continue;
      }
      rc = dmx_fail(err,
                    "%s: tensor %s has shape %s but this model needs %s (check the model config against the "
                    "checkpoint's config.json)",
                    file, t->name, have, want);
      break;
    }
    rc = upload_param(m, f, t, p, err);
    if (rc == 0) loaded++;
  }
  if (rc == 0 && missing) rc = dmx_fail(err, "%s: %d parameter(s) missing: %s", file, missing, missing_list);
  if (rc == 0) {
    char unexpected[1024] = "";
    int n_unexpected = 0;
    for (size_t i = 0; i < nt; i++) {
      const char *name = dmx_st_at(f, i)->name;
      if (used[i] || !strcmp(name, "roberta.embeddings.position_ids")) continue;
      append_name(unexpected, sizeof unexpected, name);
      n_unexpected++;
    }
    if (n_unexpected)
      printf("  %d tensor(s) in the checkpoint but not in this model (ignored): %s\n", n_unexpected, unexpected);
    printf("loaded %d parameter tensors from %s\n", loaded, file);
  }
  free(used);
  dmx_st_free(f);
  return rc;
}

typedef struct {
  dmx_model *m;
  const dmx_experiment *e;
  const dmx_train_state *state;
} commit_ctx;

static int fill_text_checkpoint(void *p, const char *dir, dmx_error *err) {
  commit_ctx *c = p;
  if (dmx_checkpoint_save_into(c->m, c->e, dir, err)) return -1;
  if (!c->state) return 0;
  dmx_runtime *rt = dmx_model_runtime(c->m);
  if (dmx_moments_save(rt, dmx_model_adam_state(c->m, 0), dmx_model_adam_state(c->m, 1), dir, c->state->step, err))
    return -1;
  return dmx_train_state_write(dir, c->state, err);
}

int dmx_checkpoint_commit(dmx_model *m, const dmx_experiment *e, const char *run_dir, const char *tag,
                          const dmx_train_state *state, dmx_error *err) {
  commit_ctx c = {m, e, state};
  return dmx_checkpoint_swap(run_dir, tag, fill_text_checkpoint, &c, err);
}

int dmx_optimizer_load(dmx_model *m, const char *dir, int step, dmx_error *err) {
  return dmx_moments_load(dmx_model_runtime(m), dmx_model_adam_state(m, 0), dmx_model_adam_state(m, 1), dir, step, err);
}
