/* End-to-end oracle (llm.c's test_gpt2 pattern): tests/reference/datamux_reference.py, a PyTorch
 * implementation of the original model, wrote tiny DataMUX checkpoints with the original parameter
 * names, a batch, the expected logits, losses and every parameter gradient, and the losses of 10
 * AdamW steps. The C model must match: logits and losses within 1e-4 relative error, gradients
 * within 1e-3 (max error over the tensor's max magnitude), and every step loss. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "host/config/config.h"
#include "host/formats/safetensors.h"
#include "layers/model.h"
#include "tests/harness.h"

static int meta_int(const dmx_st_file *f, const char *key) {
  const char *v = dmx_st_meta(f, key);
  if (!v) {
    th_fail_at(__FILE__, __LINE__, "fixture lacks metadata '%s'", key);
    return 0;
  }
  return atoi(v);
}

static float meta_float(const dmx_st_file *f, const char *key) {
  const char *v = dmx_st_meta(f, key);
  if (!v) {
    th_fail_at(__FILE__, __LINE__, "fixture lacks metadata '%s'", key);
    return 0;
  }
  return (float)atof(v);
}

static const char *meta_str(const dmx_st_file *f, const char *key) {
  const char *v = dmx_st_meta(f, key);
  return v ? v : "";
}

/* max |got - want| / max |want|: a tensor-level relative error that tiny entries cannot inflate.
 * Gradients that are zero in exact arithmetic (the key bias: softmax ignores a constant shift)
 * come out as float noise; there the absolute error is what counts. */
static double rel_error(const float *got, const float *want, size_t n, size_t *worst) {
  double maxw = 0, maxd = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - want[i]);
    if (isnan(got[i])) d = INFINITY;
    if (d > maxd) {
      maxd = d;
      *worst = i;
    }
    if (fabs(want[i]) > maxw) maxw = fabs(want[i]);
  }
  return maxd / fmax(maxw, 1e-5);
}

static float *fixture_f32(const dmx_st_file *f, const char *name, size_t *n) {
  const dmx_st_tensor *t = dmx_st_find(f, name);
  if (!t) {
    th_fail_at(__FILE__, __LINE__, "fixture lacks tensor '%s'", name);
    return NULL;
  }
  float *out = malloc(t->numel * sizeof(float));
  dmx_error err;
  if (dmx_st_get_f32(f, name, out, t->numel, &err)) {
    th_fail_at(__FILE__, __LINE__, "%s", err.msg);
    free(out);
    return NULL;
  }
  *n = t->numel;
  return out;
}

static int32_t *fixture_i32(const dmx_st_file *f, const char *name, size_t *n) {
  const dmx_st_tensor *t = dmx_st_find(f, name);
  if (!t) {
    th_fail_at(__FILE__, __LINE__, "fixture lacks tensor '%s'", name);
    return NULL;
  }
  int32_t *out = malloc(t->numel * sizeof(int32_t));
  dmx_error err;
  if (dmx_st_get_i32(f, name, out, t->numel, &err)) {
    th_fail_at(__FILE__, __LINE__, "%s", err.msg);
    free(out);
    return NULL;
  }
  *n = t->numel;
  return out;
}

static void check_scalar(const char *what, float got, float want, double rtol) {
  double e = fabs((double)got - want) / fmax(fabs(want), 1e-6);
  CHECKF(e <= rtol, "%s: got %.7g want %.7g (relative error %.2e > %.0e)", what, got, want, e, rtol);
}

static void run_case(dmx_runtime *rt, const char *name) {
  char path[512], title[600];
  snprintf(path, sizeof path, "tests/fixtures/oracle/%s.safetensors", name);
  snprintf(title, sizeof title, "oracle %s: logits, losses, gradients and 10 AdamW steps match PyTorch", name);
  th_begin(title);
  dmx_error err;
  dmx_st_file *f = dmx_st_load(path, &err);
  if (!f) {
    th_fail_at(__FILE__, __LINE__, "%s", err.msg);
    th_end();
    return;
  }
  dmx_experiment e;
  dmx_experiment_defaults(&e);
  e.setting = !strcmp(meta_str(f, "setting"), "baseline") ? DMX_SETTING_BASELINE : DMX_SETTING_FINETUNING;
  e.model.vocab_size = meta_int(f, "vocab_size");
  e.model.hidden_size = meta_int(f, "hidden_size");
  e.model.num_layers = meta_int(f, "num_layers");
  e.model.num_heads = meta_int(f, "num_heads");
  e.model.intermediate_size = meta_int(f, "intermediate_size");
  e.model.max_position_embeddings = meta_int(f, "max_position_embeddings");
  e.model.hidden_dropout = e.model.attention_dropout = 0.0f;
  e.model.layer_norm_eps = meta_float(f, "layer_norm_eps");
  e.mux.num_instances = meta_int(f, "num_instances");
  const char *mux = meta_str(f, "muxing");
  e.mux.muxing = !strcmp(mux, "random_ortho")      ? DMX_MUX_RANDOM_ORTHO
                 : !strcmp(mux, "binary_hadamard") ? DMX_MUX_BINARY_HADAMARD
                                                   : DMX_MUX_GAUSSIAN_HADAMARD;
  e.mux.demuxing = !strcmp(meta_str(f, "demuxing"), "mlp") ? DMX_DEMUX_MLP : DMX_DEMUX_INDEX;
  e.mux.learn_muxing = meta_int(f, "learn_muxing") != 0;
  e.mux.attention_mask = false;
  e.mux.second_embedding_pass = true;
  e.train.task_loss_coeff = meta_float(f, "task_loss_coeff");
  e.train.retrieval_loss_coeff = meta_float(f, "retrieval_loss_coeff");
  e.train.learning_rate = meta_float(f, "learning_rate");
  e.train.max_grad_norm = meta_float(f, "max_grad_norm");
  e.train.weight_decay = 0.0f;
  e.train.adam_beta1 = 0.9f;
  e.train.adam_beta2 = 0.999f;
  e.train.adam_eps = 1e-8f;
  bool token = !strcmp(meta_str(f, "task_type"), "token");
  int B = meta_int(f, "groups"), L = meta_int(f, "seq_len"), C = meta_int(f, "num_labels");
  int N = e.setting == DMX_SETTING_BASELINE ? 1 : e.mux.num_instances;
  size_t n_ids;
  int32_t *ids = fixture_i32(f, "input.ids", &n_ids);
  int T = ids ? (int)(n_ids / ((size_t)B * N)) : L;
  int prefix = e.setting != DMX_SETTING_BASELINE && e.mux.demuxing == DMX_DEMUX_INDEX ? N + 1 : 0;
  CHECK(T == L + prefix);

  dmx_model *m = dmx_model_create(rt, &e, B, T, C, token, &err);
  CHECKF(m != NULL, "model: %s", err.msg);
  if (!m || !ids) goto done;
  dmx_model_init_params(m, 42);
  for (int i = 0; i < dmx_model_num_params(m); i++) {
    const dmx_param *p = dmx_model_param(m, i);
    size_t n = 0;
    float *v = fixture_f32(f, p->name, &n);
    if (!v) continue;
    CHECKF(n == p->n, "%s: fixture has %zu values, model %zu", p->name, n, p->n);
    if (n == p->n) dmx_upload(rt, dmx_param_tensor(p), v, n * sizeof(float));
    free(v);
  }

  /* the batch: positions are RoBERTa's pad-aware ids; token labels are moved to the T grid */
  int rows = B * N;
  int32_t *pos = malloc((size_t)rows * T * sizeof(int32_t));
  for (int r = 0; r < rows; r++) dmx_roberta_positions(ids + (size_t)r * T, T, pos + (size_t)r * T);
  size_t n_lab, n_ri, n_rt;
  int32_t *lab = fixture_i32(f, "input.labels", &n_lab);
  int32_t *labels = lab;
  if (token && lab) {
    labels = malloc((size_t)rows * T * sizeof(int32_t));
    for (int r = 0; r < rows; r++)
      for (int j = 0; j < T; j++) labels[(size_t)r * T + j] = j < prefix ? -100 : lab[(size_t)r * L + j - prefix];
  }
  int32_t *rinst = NULL, *rtarg = NULL;
  if (dmx_st_find(f, "input.retrieval_instance")) {
    rinst = fixture_i32(f, "input.retrieval_instance", &n_ri);
    rtarg = fixture_i32(f, "input.retrieval_targets", &n_rt);
  }
  dmx_batch_view v = {.ids = ids, .positions = pos, .labels = labels, .retrieval_instance = rinst, .retrieval_targets = rtarg};

  size_t n_losses = 0;
  float *step_losses = fixture_f32(f, "expect.step_losses", &n_losses);
  dmx_model_step(m, &v, true, 1);
  dmx_step_stats st = dmx_model_stats(m);
  size_t n1;
  float *want;
  if ((want = fixture_f32(f, "expect.task_loss", &n1))) {
    check_scalar("task loss", st.task_loss, want[0], 1e-4);
    free(want);
  }
  if (e.train.retrieval_loss_coeff > 0 && (want = fixture_f32(f, "expect.retrieval_loss", &n1))) {
    check_scalar("retrieval loss", st.retrieval_loss, want[0], 1e-4);
    free(want);
  }
  if ((want = fixture_f32(f, "expect.loss", &n1))) {
    check_scalar("total loss", st.loss, want[0], 1e-4);
    free(want);
  }
  /* logits: the model's are on the T grid for token tasks; the fixture's drop the prefix */
  size_t n_logits;
  if ((want = fixture_f32(f, "expect.logits", &n_logits))) {
    size_t per_row = token ? (size_t)T * C : (size_t)C;
    float *all = malloc((size_t)rows * per_row * sizeof(float));
    float *got = malloc(n_logits * sizeof(float));
    dmx_model_logits(m, all);
    size_t k = 0;
    for (int r = 0; r < rows; r++)
      for (int j = token ? prefix : 0; j < (token ? T : 1); j++)
        for (int c = 0; c < C; c++) got[k++] = all[(size_t)r * per_row + (size_t)j * C + c];
    CHECKF(k == n_logits, "logits: %zu compared, fixture has %zu", k, n_logits);
    size_t worst = 0;
    double re = rel_error(got, want, k < n_logits ? k : n_logits, &worst);
    CHECKF(re <= 1e-4, "logits: relative error %.2e at [%zu] (got %.7g want %.7g)", re, worst, got[worst], want[worst]);
    free(all);
    free(got);
    free(want);
  }
  /* every trainable parameter's gradient */
  int checked = 0;
  for (int i = 0; i < dmx_model_num_params(m); i++) {
    const dmx_param *p = dmx_model_param(m, i);
    if (!p->trainable) {
      char gname[200];
      snprintf(gname, sizeof gname, "grad.%s", p->name);
      CHECKF(!dmx_st_find(f, gname), "%s is frozen here but the fixture has its gradient", p->name);
      continue;
    }
    char gname[200];
    snprintf(gname, sizeof gname, "grad.%s", p->name);
    size_t n = 0;
    float *wg = fixture_f32(f, gname, &n);
    if (!wg) continue;
    float *got = malloc(p->n * sizeof(float));
    dmx_download(rt, got, dmx_param_grad(p), p->n * sizeof(float));
    size_t worst = 0;
    double re = rel_error(got, wg, p->n < n ? p->n : n, &worst);
    CHECKF(re <= 1e-3, "gradient of %s: relative error %.2e at [%zu] (got %.7g want %.7g)", p->name, re, worst,
           got[worst], wg[worst]);
    checked++;
    free(got);
    free(wg);
  }
  CHECKF(checked >= 10, "only %d gradients compared", checked);
  /* 10 AdamW steps on the same batch, with clipping. Between two stats reads, a step and an update
   * must download nothing and upload only the batch (ids, positions, labels, mask, retrieval picks
   * and the embedding-gradient buckets built from them). */
  if (step_losses) {
    check_scalar("step 1 loss", st.loss, step_losses[0], 1e-4);
    size_t batch_bytes = (size_t)rows * T * 4 * 2 + (size_t)(token ? rows * T : rows) * 4;
    for (int t = 1; t < (int)n_losses; t++) {
      long downloads = rt->stat_downloads;
      size_t uploaded = rt->stat_upload_bytes;
      dmx_model_update(m, e.train.learning_rate, t);
      dmx_model_step(m, &v, true, (uint64_t)t + 1);
      CHECKF(rt->stat_downloads == downloads, "step %d read %ld buffers back", t + 1, rt->stat_downloads - downloads);
      size_t up = rt->stat_upload_bytes - uploaded;
      CHECKF(up >= batch_bytes &&
                 up <= 4 * batch_bytes + (size_t)(e.model.vocab_size + e.model.max_position_embeddings) * 4 * 2,
             "step %d uploaded %zu bytes for a %zu-byte batch", t + 1, up, batch_bytes);
      dmx_step_stats s2 = dmx_model_stats(m);
      char what[64];
      snprintf(what, sizeof what, "step %d loss", t + 1);
      check_scalar(what, s2.loss, step_losses[t], 2e-4);
    }
    free(step_losses);
  }
  if (labels != lab) free(labels);
  free(lab);
  free(pos);
  free(rinst);
  free(rtarg);
done:
  free(ids);
  dmx_model_free(m);
  dmx_st_free(f);
  th_end();
}

int main(void) {
  dmx_runtime *rt = dmx_runtime_create(NULL, false, stdout);
  const char *cases[] = {"gh_index_n4_sentence", "ro_mlp_n3_token", "baseline_n1", "bh_index_n2_token",
                         "gh_mlp_n2_sentence"};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(rt, cases[i]);
  dmx_runtime_destroy(rt);
  return th_finish();
}
