/* config.json of Hugging Face / DataMUX checkpoints; see hf_config.h. */
#include "host/run/hf_config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/json.h"

typedef struct {
  const dmx_json *root;
  const char *text; /* for the line of a bad value */
  const char *path;
  dmx_error *err;
} reader;

static const dmx_json *field(reader *r, const char *key) { return dmx_json_member(r->root, key); }

static int fail_at(reader *r, const dmx_json *n, const char *key, const char *what) {
  return dmx_fail(r->err, "%s:%d: '%s' must be %s", r->path, dmx_json_line(r->text, n->pos), key, what);
}

/* An integer field (true/false read as 1/0); `required` false leaves *out as it is when absent. */
static int get_int(reader *r, const char *key, int *out, bool required) {
  const dmx_json *n = field(r, key);
  if (!n) return required ? dmx_fail(r->err, "%s: '%s' is missing (it fixes tensor shapes)", r->path, key) : 0;
  if (n->type == DMX_JSON_TRUE || n->type == DMX_JSON_FALSE) {
    *out = n->type == DMX_JSON_TRUE;
    return 0;
  }
  long long v;
  if (!dmx_json_integer(n, -1000000000LL, 1000000000LL, &v)) return fail_at(r, n, key, "an integer");
  *out = (int)v;
  return 0;
}

static int get_float(reader *r, const char *key, float *out, bool required) {
  const dmx_json *n = field(r, key);
  if (!n) return required ? dmx_fail(r->err, "%s: '%s' is missing", r->path, key) : 0;
  double v;
  if (!dmx_json_number(n, &v) || !isfinite(v)) return fail_at(r, n, key, "a number");
  *out = (float)v;
  return 0;
}

/* A string field copied into out (cap bytes); absent or null leaves out unchanged. */
static int get_str(reader *r, const char *key, char *out, size_t cap) {
  const dmx_json *n = field(r, key);
  if (!n || n->type == DMX_JSON_NULL) return 0;
  const char *s = dmx_json_string(n);
  if (!s || strlen(s) >= cap) {
    char what[64];
    snprintf(what, sizeof what, "a string shorter than %zu bytes", cap);
    return fail_at(r, n, key, what);
  }
  snprintf(out, cap, "%s", s);
  return 0;
}

static int read_model(reader *r, dmx_model_config *m) {
  const struct {
    const char *key;
    int *v;
  } ints[] = {{"vocab_size", &m->vocab_size},
              {"hidden_size", &m->hidden_size},
              {"num_hidden_layers", &m->num_layers},
              {"num_attention_heads", &m->num_heads},
              {"intermediate_size", &m->intermediate_size},
              {"max_position_embeddings", &m->max_position_embeddings},
              {"type_vocab_size", &m->type_vocab_size}};
  for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
    if (get_int(r, ints[i].key, ints[i].v, true)) return -1;
  for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
    if (*ints[i].v <= 0) return dmx_fail(r->err, "%s: '%s' must be positive, not %d", r->path, ints[i].key, *ints[i].v);
  if (get_float(r, "layer_norm_eps", &m->layer_norm_eps, true)) return -1;
  /* optional: RoBERTa's values unless given (they do not change any shape) */
  m->pad_token_id = 1;
  m->hidden_dropout = m->attention_dropout = 0.1f;
  m->initializer_range = 0.02f;
  if (get_int(r, "pad_token_id", &m->pad_token_id, false) ||
      get_float(r, "hidden_dropout_prob", &m->hidden_dropout, false) ||
      get_float(r, "attention_probs_dropout_prob", &m->attention_dropout, false) ||
      get_float(r, "initializer_range", &m->initializer_range, false))
    return -1;
  char act[32] = "gelu";
  if (get_str(r, "hidden_act", act, sizeof act)) return -1;
  if (strcmp(act, "gelu"))
    return dmx_fail(r->err, "%s: hidden_act '%s' is not supported (DataMUX-CL implements the exact erf GELU, 'gelu')",
                    r->path, act);
  return 0;
}

static int parse_enum(reader *r, const char *key, const char *const *names, int n, int *out) {
  char s[64] = "";
  if (get_str(r, key, s, sizeof s)) return -1;
  if (!s[0]) return 0;
  for (int i = 0; i < n; i++)
    if (!strcmp(s, names[i])) {
      *out = i;
      return 0;
    }
  return dmx_fail(r->err, "%s: %s '%s' is not one DataMUX-CL implements (%s%s%s)", r->path, key, s, names[0],
                  n > 1 ? ", " : "", n > 1 ? names[1] : "");
}

static int read_mux(reader *r, dmx_hf_config *c) {
  dmx_mux_config *x = &c->mux;
  x->num_instances = 1;
  x->muxing = DMX_MUX_GAUSSIAN_HADAMARD;
  x->demuxing = DMX_DEMUX_INDEX;
  x->gaussian_hadamard_norm = 1.0f;
  x->binary_hadamard_epsilon = 0.0f;
  x->attention_mask = false;       /* the original's behaviour (spec §1.8) */
  x->second_embedding_pass = true; /* likewise (§1.7) */
  int learn = 0, should_mux = -1, mux = 0, demux = 0;
  static const char *const muxes[] = {"gaussian_hadamard", "binary_hadamard", "random_ortho"};
  static const char *const demuxes[] = {"index", "mlp"};
  bool has_n = field(r, "num_instances") != NULL;
  if (get_int(r, "num_instances", &x->num_instances, false) || get_int(r, "learn_muxing", &learn, false) ||
      get_int(r, "should_mux", &should_mux, false) || parse_enum(r, "muxing_variant", muxes, 3, &mux) ||
      parse_enum(r, "demuxing_variant", demuxes, 2, &demux) ||
      get_float(r, "gaussian_hadamard_norm", &x->gaussian_hadamard_norm, false) ||
      get_float(r, "binary_hadamard_epsilon", &x->binary_hadamard_epsilon, false))
    return -1;
  if (x->num_instances < 1 || x->num_instances > 1000)
    return dmx_fail(r->err, "%s: num_instances %d is out of range", r->path, x->num_instances);
  x->muxing = (dmx_muxing)mux;
  x->demuxing = (dmx_demuxing)demux;
  x->learn_muxing = learn != 0;
  char arch[128] = "";
  const dmx_json *a = field(r, "architectures");
  if (a && a->type == DMX_JSON_ARRAY && a->n > 0) {
    const char *s = dmx_json_string(&a->kids[0]);
    if (s) snprintf(arch, sizeof arch, "%s", s);
  }
  c->token_task = strstr(arch, "TokenClassification") != NULL || !strcmp(c->task, "ner");
  bool plain = !strcmp(arch, "RobertaForSequenceClassification") || !strcmp(arch, "RobertaForTokenClassification");
  if (!has_n || should_mux == 0 || plain)
    c->setting = DMX_SETTING_BASELINE;
  else if (c->task_loss_coeff == 0.0f)
    c->setting = DMX_SETTING_RETRIEVAL_PRETRAINING;
  else
    c->setting = DMX_SETTING_FINETUNING;
  return 0;
}

int dmx_hf_config_load(const char *path, dmx_hf_config *c, dmx_error *err) {
  memset(c, 0, sizeof *c);
  size_t len = 0;
  char *text = dmx_read_file_max(path, (size_t)16 << 20, "config.json", &len, err);
  if (!text) return -1;
  dmx_json root;
  dmx_json_opts o = {.what = path,
                     .kind = "config.json (it must be one JSON object)",
                     .max_depth = DMX_JSON_MAX_DEPTH,
                     .require_object = true};
  if (dmx_json_parse(text, len, &o, &root, err)) {
    free(text);
    return -1;
  }
  reader r = {&root, text, path, err};
  int rc = 0;
  c->task_loss_coeff = c->retrieval_loss_coeff = -1.0f;
  c->num_labels = 2;
  if (!rc) rc = read_model(&r, &c->model);
  if (!rc) rc = get_str(&r, "finetuning_task", c->task, sizeof c->task);
  if (!rc) rc = get_float(&r, "task_loss_coeff", &c->task_loss_coeff, false);
  if (!rc) rc = get_float(&r, "retrieval_loss_coeff", &c->retrieval_loss_coeff, false);
  if (!rc) rc = get_int(&r, "num_labels", &c->num_labels, false);
  const dmx_json *labels = rc ? NULL : field(&r, "id2label");
  if (labels && labels->type == DMX_JSON_OBJECT) c->num_labels = (int)labels->n;
  if (!rc) rc = read_mux(&r, c);
  if (!rc && c->num_labels < 1) rc = dmx_fail(err, "%s: num_labels %d must be positive", path, c->num_labels);
  dmx_json_free(&root);
  free(text);
  return rc;
}

void dmx_hf_config_apply(const dmx_hf_config *c, dmx_experiment *e) {
  e->model = c->model;
  e->mux = c->mux;
  e->setting = c->setting;
  if (c->task[0]) snprintf(e->task.name, sizeof e->task.name, "%s", c->task);
  if (c->task_loss_coeff >= 0) e->train.task_loss_coeff = c->task_loss_coeff;
  if (c->retrieval_loss_coeff >= 0) e->train.retrieval_loss_coeff = c->retrieval_loss_coeff;
}

/* dims of parameter `name` in m, or 0 when m has no such parameter */
static int param_dims(const dmx_model *m, const char *name, int *d0, int *d1) {
  const dmx_param *p = dmx_model_find_param(m, name);
  if (!p) return 0;
  *d0 = p->shape[0];
  *d1 = p->ndim > 1 ? p->shape[1] : 0;
  return p->ndim;
}

static int mismatch(dmx_error *err, const char *path, const char *what, long want, long have, const char *fix) {
  return dmx_fail(err, "%s: the checkpoint's config.json has %s %ld but this model was built with %ld: %s", path, what,
                  want, have, fix);
}

int dmx_hf_config_check_model(const dmx_hf_config *c, const dmx_model *m, const char *path, dmx_error *err) {
  const dmx_model_config *mc = &c->model;
  int v = 0, d = 0, p = 0, d2 = 0, inter = 0, d3 = 0;
  const char *cfg = "give the model section the checkpoint's values (--config_name or --set model.<field>=...)";
  if (param_dims(m, "roberta.embeddings.word_embeddings.weight", &v, &d)) {
    if (v != mc->vocab_size) return mismatch(err, path, "vocab_size", mc->vocab_size, v, cfg);
    if (d != mc->hidden_size) return mismatch(err, path, "hidden_size", mc->hidden_size, d, cfg);
  }
  if (param_dims(m, "roberta.embeddings.position_embeddings.weight", &p, &d2) && p != mc->max_position_embeddings)
    return mismatch(err, path, "max_position_embeddings", mc->max_position_embeddings, p, cfg);
  if (param_dims(m, "roberta.encoder.layer.0.intermediate.dense.weight", &inter, &d3) && inter != mc->intermediate_size)
    return mismatch(err, path, "intermediate_size", mc->intermediate_size, inter, cfg);
  int layers = 0;
  for (char name[96];; layers++) {
    snprintf(name, sizeof name, "roberta.encoder.layer.%d.attention.self.query.weight", layers);
    if (!dmx_model_find_param(m, name)) break;
  }
  if (layers != mc->num_layers) return mismatch(err, path, "num_hidden_layers", mc->num_layers, layers, cfg);
  if (c->setting == DMX_SETTING_BASELINE) return 0;
  if (dmx_model_N(m) != c->mux.num_instances)
    return mismatch(err, path, "num_instances", c->mux.num_instances, dmx_model_N(m), "run with -N <that value>");
  const dmx_param *ie = dmx_model_find_param(m, "instance_embedding");
  if (ie && (ie->ndim == 3) != (c->mux.muxing == DMX_MUX_RANDOM_ORTHO))
    return dmx_fail(err,
                    "%s: the checkpoint's config.json has muxing_variant %s but this model uses %s: run with -m %s",
                    path, dmx_muxing_name(c->mux.muxing), ie->ndim == 3 ? "random_ortho" : "a Hadamard variant",
                    dmx_muxing_name(c->mux.muxing));
  bool mlp = dmx_model_find_param(m, "demultiplexer.demux_module.dense_0.weight") ||
             dmx_model_find_param(m, "retrieval_head.demux_module.dense_0.weight");
  if (mlp != (c->mux.demuxing == DMX_DEMUX_MLP))
    return dmx_fail(
        err, "%s: the checkpoint's config.json has demuxing_variant %s but this model uses %s: run with -d %s", path,
        dmx_demuxing_name(c->mux.demuxing), mlp ? "mlp" : "index", dmx_demuxing_name(c->mux.demuxing));
  return 0;
}
