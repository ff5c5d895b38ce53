#include "host/checkpoint.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "host/safetensors.h"

static bool is_file(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int write_config_json(const dmx_model *m, const dmx_experiment *e, const char *path, dmx_error *err) {
  const dmx_model_config *mc = &e->model;
  const dmx_mux_config *mx = &e->mux;
  char buf[4096];
  bool baseline = e->setting == SETTING_BASELINE;
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
      baseline ? "RobertaForSequenceClassification"
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
  char dir[2048], path[2200];
  snprintf(dir, sizeof dir, "%s/%s", run_dir, tag);
  if (dmx_mkdirs(dir, err)) return -1;
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

static int resolve(const char *path, char *out, size_t cap, dmx_error *err) {
  const char *tries[] = {"%s", "%s/model.safetensors", "%s/best/model.safetensors", "%s/last/model.safetensors"};
  for (size_t i = 0; i < sizeof tries / sizeof *tries; i++) {
    snprintf(out, cap, tries[i], path);
    if (is_file(out)) return 0;
  }
  return dmx_fail(err, "%s: no checkpoint there (looked for the file itself, model.safetensors, best/ and last/)",
                  path);
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

int dmx_checkpoint_load(dmx_model *m, const char *path, dmx_error *err) {
  char file[4096];
  if (resolve(path, file, sizeof file, err)) return -1;
  dmx_st_file *f = dmx_st_load(file, err);
  if (!f) return -1;
  int np = dmx_model_num_params(m), missing = 0, loaded = 0;
  char missing_list[1024] = "";
  for (int i = 0; i < np; i++) {
    const dmx_param *p = dmx_model_param(m, i);
    const dmx_st_tensor *t = dmx_st_find(f, p->name);
    if (!t && p->alias[0]) t = dmx_st_find(f, p->alias);
    if (!t) {
      if (!head_param(p->name) && strncmp(p->name, "retrieval_head.", 15)) {
        size_t l = strlen(missing_list);
        if (l + strlen(p->name) + 3 < sizeof missing_list)
          snprintf(missing_list + l, sizeof missing_list - l, "%s%s", l ? ", " : "", p->name);
        missing++;
      } else {
        printf("  %s: not in the checkpoint, keeps its fresh initialisation\n", p->name);
      }
      continue;
    }
    char have[96], want[96];
    if (!dmx_checkpoint_shape_matches(t, p, have, want, sizeof have)) {
      if (head_param(p->name)) {
        printf("  %s: checkpoint shape %s, model %s (another task's head): keeps its fresh initialisation\n", p->name,
               have, want);
        continue;
      }
      dmx_fail(err, "%s: tensor %s has shape %s but this model needs %s (check the model config against the "
                    "checkpoint's config.json)",
               file, p->name, have, want);
      dmx_st_free(f);
      return -1;
    }
    float *h = dmx_malloc(p->n * sizeof(float));
    if (dmx_st_get_f32(f, t->name, h, p->n, err)) {
      free(h);
      dmx_st_free(f);
      return -1;
    }
    dmx_upload(dmx_model_runtime(m), dmx_param_tensor(p), h, p->n * sizeof(float));
    free(h);
    loaded++;
  }
  if (missing) {
    dmx_fail(err, "%s: %d parameter(s) missing: %s", file, missing, missing_list);
    dmx_st_free(f);
    return -1;
  }
  for (size_t i = 0; i < dmx_st_count(f); i++) {
    const char *name = dmx_st_at(f, i)->name;
    if (!dmx_model_find_param(m, name) && strcmp(name, "roberta.embeddings.position_ids"))
      printf("  %s: in the checkpoint but not in this model (ignored)\n", name);
  }
  dmx_st_free(f);
  printf("loaded %d parameter tensors from %s\n", loaded, file);
  return 0;
}
