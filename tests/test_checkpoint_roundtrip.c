/* Checkpoint round trip of every model variant: each mux x demux x head, the baselines and a learned
 * muxing, saved as a run checkpoint (host/run/checkpoint.h's commit: model.safetensors + config.json)
 * and, converted, as a released-format pytorch_model.bin, then loaded into a model initialised
 * from another seed. Every parameter (frozen instance vectors included) must come back bit for bit.
 * A model that loads nothing must differ, so the comparison can fail. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/run/checkpoint.h"
#include "host/config/config.h"
#include "host/runtime/runtime.h"
#include "host/formats/torch_bin.h"
#include "host/run/train_state.h"
#include "layers/model.h"
#include "tests/harness.h"

typedef struct {
  const char *name;
  dmx_setting setting;
  dmx_muxing mux;
  dmx_demuxing demux;
  bool token, learn;
} variant;

static dmx_experiment experiment(const variant *v) {
  dmx_experiment e;
  dmx_experiment_defaults(&e);
  e.setting = v->setting;
  e.model.vocab_size = 300;
  e.model.hidden_size = 16;
  e.model.num_layers = 1;
  e.model.num_heads = 2;
  e.model.intermediate_size = 32;
  e.model.max_position_embeddings = 40;
  e.mux.num_instances = v->setting == DMX_SETTING_BASELINE ? 1 : 3;
  e.mux.muxing = v->mux;
  e.mux.demuxing = v->demux;
  e.mux.learn_muxing = v->learn;
  snprintf(e.task.name, sizeof e.task.name, "%s", v->token ? "ner" : "sst2");
  return e;
}

static int T_of(const dmx_experiment *e) {
  return 8 + (e->setting != DMX_SETTING_BASELINE && e->mux.demuxing == DMX_DEMUX_INDEX ? e->mux.num_instances + 1 : 0);
}

/* Number of parameters whose values differ between a and b. */
static int differing(dmx_model *a, dmx_model *b) {
  int n = 0;
  for (int i = 0; i < dmx_model_num_params(a); i++) {
    const dmx_param *p = dmx_model_param(a, i), *q = dmx_model_param(b, i);
    float *x = malloc(p->n * sizeof(float)), *y = malloc(q->n * sizeof(float));
    dmx_download(dmx_model_runtime(a), x, dmx_param_tensor(p), p->n * sizeof(float));
    dmx_download(dmx_model_runtime(b), y, dmx_param_tensor(q), q->n * sizeof(float));
    if (p->n != q->n || memcmp(x, y, p->n * sizeof(float))) {
      if (n == 0) printf("  first difference: %s\n", p->name);
      n++;
    }
    free(x);
    free(y);
  }
  return n;
}

int main(void) {
  static const variant variants[] = {
      {"gaussian_hadamard index sentence", DMX_SETTING_FINETUNING, DMX_MUX_GAUSSIAN_HADAMARD, DMX_DEMUX_INDEX, false,
       false},
      {"gaussian_hadamard index token", DMX_SETTING_FINETUNING, DMX_MUX_GAUSSIAN_HADAMARD, DMX_DEMUX_INDEX, true,
       false},
      {"gaussian_hadamard mlp sentence", DMX_SETTING_FINETUNING, DMX_MUX_GAUSSIAN_HADAMARD, DMX_DEMUX_MLP, false,
       false},
      {"gaussian_hadamard mlp token", DMX_SETTING_FINETUNING, DMX_MUX_GAUSSIAN_HADAMARD, DMX_DEMUX_MLP, true, false},
      {"binary_hadamard index sentence", DMX_SETTING_FINETUNING, DMX_MUX_BINARY_HADAMARD, DMX_DEMUX_INDEX, false,
       false},
      {"binary_hadamard mlp token", DMX_SETTING_FINETUNING, DMX_MUX_BINARY_HADAMARD, DMX_DEMUX_MLP, true, false},
      {"random_ortho index token", DMX_SETTING_FINETUNING, DMX_MUX_RANDOM_ORTHO, DMX_DEMUX_INDEX, true, false},
      {"random_ortho mlp sentence", DMX_SETTING_FINETUNING, DMX_MUX_RANDOM_ORTHO, DMX_DEMUX_MLP, false, false},
      {"random_ortho index sentence, learned muxing", DMX_SETTING_FINETUNING, DMX_MUX_RANDOM_ORTHO, DMX_DEMUX_INDEX,
       false, true},
      {"retrieval warm-up (gaussian_hadamard index)", DMX_SETTING_RETRIEVAL_PRETRAINING, DMX_MUX_GAUSSIAN_HADAMARD,
       DMX_DEMUX_INDEX, false, false},
      {"baseline N=1 sentence", DMX_SETTING_BASELINE, DMX_MUX_GAUSSIAN_HADAMARD, DMX_DEMUX_INDEX, false, false},
      {"baseline N=1 token", DMX_SETTING_BASELINE, DMX_MUX_GAUSSIAN_HADAMARD, DMX_DEMUX_INDEX, true, false},
  };
  char root[128];
  snprintf(root, sizeof root, "/tmp/datamux-ckpt-%ld", (long)getpid());
  dmx_runtime *rt = dmx_runtime_create(NULL, false, stdout);
  for (size_t i = 0; i < sizeof variants / sizeof *variants; i++) {
    const variant *v = &variants[i];
    char title[256], run[256], path[600], bin_dir[400];
    snprintf(title, sizeof title, "checkpoint round trip, %s: safetensors and pytorch_model.bin, bit for bit", v->name);
    th_begin(title);
    dmx_experiment e = experiment(v);
    dmx_error err;
    int C = v->token ? 9 : 2, T = T_of(&e);
    dmx_model *a = dmx_model_create(rt, &e, 2, T, C, v->token, &err);
    dmx_model *b = dmx_model_create(rt, &e, 2, T, C, v->token, &err);
    CHECKF(a && b, "model: %s", err.msg);
    if (!a || !b) {
      dmx_model_free(a);
      dmx_model_free(b);
      th_end();
      continue;
    }
    dmx_model_init_params(a, 1);
    dmx_model_init_params(b, 2);
    CHECKF(differing(a, b) > 0, "two seeds gave the same parameters: the comparison cannot fail");
    snprintf(run, sizeof run, "%s/%zu", root, i);
    CHECKF(dmx_checkpoint_commit(a, &e, run, "best", NULL, &err) == 0, "save: %s", err.msg);
    snprintf(path, sizeof path, "%s/best", run);
    CHECKF(dmx_checkpoint_load(b, path, &err) == 0, "load: %s", err.msg);
    int d = differing(a, b);
    CHECKF(d == 0, "%d parameter(s) differ after the safetensors round trip", d);

    /* the released format: config.json + pytorch_model.bin, loaded into a third fresh model */
    snprintf(bin_dir, sizeof bin_dir, "%s/released", run);
    CHECK(dmx_mkdirs(bin_dir, &err) == 0);
    snprintf(path, sizeof path, "%s/best/model.safetensors", run);
    dmx_st_file *f = dmx_st_load(path, &err);
    CHECKF(f != NULL, "%s", err.msg);
    snprintf(path, sizeof path, "%s/pytorch_model.bin", bin_dir);
    CHECKF(f && dmx_torch_bin_write(f, path, &err) == 0, "write .bin: %s", err.msg);
    dmx_st_free(f);
    char cmd[1200], out[256];
    snprintf(cmd, sizeof cmd, "cp %s/best/config.json %s/", run, bin_dir);
    CHECK(th_run(cmd, out, sizeof out) == 0);
    dmx_model *c = dmx_model_create(rt, &e, 2, T, C, v->token, &err);
    if (c) {
      dmx_model_init_params(c, 3);
      CHECKF(dmx_checkpoint_load(c, bin_dir, &err) == 0, "load .bin: %s", err.msg);
      d = differing(a, c);
      CHECKF(d == 0, "%d parameter(s) differ after the pytorch_model.bin round trip", d);
      dmx_model_free(c);
    }
    dmx_model_free(a);
    dmx_model_free(b);
    th_end();
  }
  dmx_runtime_destroy(rt);
  char cmd[256], out[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  th_run(cmd, out, sizeof out);
  return th_finish();
}
