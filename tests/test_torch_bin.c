/* Released-model import: tests/reference/make_torch_bin_fixture.py did a real torch.save of a tiny
 * DataMUX state dict (original key names, a storage shared by two keys, a slice at a storage
 * offset, a strided view, half tables, an int64 buffer) beside a Hugging Face config.json, and
 * recorded the logits of a fixed batch. The model built from that config.json and loaded through
 * the .bin path must give those logits; `datamux convert` to safetensors and back must keep every
 * tensor, and the converted folders must load and give the same logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/batch.h"
#include "host/run/checkpoint.h"
#include "host/run/hf_config.h"
#include "host/formats/torch_bin.h"
#include "tests/harness.h"

#define FIX "tests/fixtures/torch_bin"

static dmx_runtime *rt;
static char tmpdir[256];

/* Element-by-element equality of two tensor sets (names, dtypes, shapes, bytes). */
static void check_same_tensors(const dmx_st_file *a, const dmx_st_file *b, const char *what) {
  CHECKF(dmx_st_count(a) == dmx_st_count(b), "%s: %zu vs %zu tensors", what, dmx_st_count(a), dmx_st_count(b));
  for (size_t i = 0; i < dmx_st_count(a); i++) {
    const dmx_st_tensor *x = dmx_st_at(a, i), *y = dmx_st_find(b, x->name);
    CHECKF(y != NULL, "%s: %s is missing after the round trip", what, x->name);
    if (!y) continue;
    bool same = x->dtype == y->dtype && x->ndim == y->ndim && x->nbytes == y->nbytes &&
                !memcmp(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim) &&
                (x->nbytes == 0 || !memcmp(x->data, y->data, x->nbytes));
    CHECKF(same, "%s: %s differs after the round trip", what, x->name);
  }
}

static float *get_f32(const dmx_st_file *f, const char *name, size_t *n) {
  const dmx_st_tensor *t = dmx_st_find(f, name);
  if (!t) {
    th_fail_at(__FILE__, __LINE__, "no tensor %s", name);
    return NULL;
  }
  float *v = malloc(t->numel * sizeof *v);
  dmx_error err;
  if (dmx_st_get_f32(f, name, v, t->numel, &err)) {
    th_fail_at(__FILE__, __LINE__, "%s", err.msg);
    free(v);
    return NULL;
  }
  *n = t->numel;
  return v;
}

static void test_read_bin(void) {
  th_begin("pytorch_model.bin: keys, shared storage, offset slice, strided view, half tables, int64 buffer");
  dmx_error err;
  dmx_st_file *f = dmx_torch_bin_load(FIX "/model/pytorch_model.bin", &err);
  CHECKF(f != NULL, "%s", f ? "" : err.msg);
  if (!f) goto out;
  CHECKF(dmx_st_count(f) == 38, "%zu tensors", dmx_st_count(f));
  const dmx_st_tensor *pos = dmx_st_find(f, "roberta.embeddings.position_ids");
  CHECK(pos && pos->dtype == DMX_ST_I64 && pos->ndim == 2 && pos->shape[1] == 32);
  int32_t ids[32] = {0};
  CHECK(dmx_st_get_i32(f, "roberta.embeddings.position_ids", ids, 32, &err) == 0 && ids[0] == 0 && ids[31] == 31);
  const dmx_st_tensor *we = dmx_st_find(f, "roberta.embeddings.word_embeddings.weight");
  CHECK(we && we->dtype == DMX_ST_F32 && we->shape[0] == 512 && we->shape[1] == 16); /* half, converted */
  size_t n1 = 0, n2 = 0;
  float *a = get_f32(f, "retrieval_head.bias", &n1), *b = get_f32(f, "retrieval_head.decoder.bias", &n2);
  CHECK(a && b && n1 == 512 && n2 == 512 && !memcmp(a, b, n1 * sizeof *a));
  free(a);
  free(b);
  const dmx_st_tensor *ow = dmx_st_find(f, "demultiplexer.out_proj.weight");
  CHECK(ow && ow->ndim == 2 && ow->shape[0] == 3 && ow->shape[1] == 16);
  const dmx_st_tensor *lb = dmx_st_find(f, "demultiplexer.layer_norm.bias");
  CHECK(lb && lb->ndim == 1 && lb->shape[0] == 16);
  dmx_st_free(f);
out:
  th_end();
}

/* Builds the model config.json describes, loads `path`, runs the fixture batch and compares logits. */
static void check_logits_from(const char *path, const char *title) {
  th_begin(title);
  dmx_error err;
  dmx_st_file *ref = dmx_st_load(FIX "/reference.safetensors", &err);
  dmx_hf_config c;
  CHECKF(ref != NULL, "%s", ref ? "" : err.msg);
  int rc = dmx_hf_config_load(FIX "/model/config.json", &c, &err);
  CHECKF(rc == 0, "%s", rc ? err.msg : "");
  if (!ref || rc) goto out;
  CHECK(c.setting == DMX_SETTING_FINETUNING && c.num_labels == 3 && c.mux.num_instances == 2 && !c.token_task &&
        c.model.hidden_size == 16 && c.mux.muxing == DMX_MUX_GAUSSIAN_HADAMARD && c.mux.demuxing == DMX_DEMUX_INDEX);
  dmx_experiment e;
  dmx_experiment_defaults(&e);
  dmx_hf_config_apply(&c, &e);
  e.model.hidden_dropout = e.model.attention_dropout = 0.0f;
  int B = 2, N = 2, T = 8 + N + 1, rows = B * N;
  dmx_model *m = dmx_model_create(rt, &e, B, T, c.num_labels, false, &err);
  CHECKF(m != NULL, "model: %s", m ? "" : err.msg);
  if (!m) goto out;
  dmx_model_init_params(m, 1);
  rc = dmx_checkpoint_load(m, path, &err);
  CHECKF(rc == 0, "load: %s", rc ? err.msg : "");
  int32_t ids[64], pos[64], labels[4], rinst[32], rtarg[32];
  dmx_st_get_i32(ref, "input.ids", ids, (size_t)rows * T, &err);
  dmx_st_get_i32(ref, "input.labels", labels, (size_t)rows, &err);
  dmx_st_get_i32(ref, "input.retrieval_instance", rinst, (size_t)B * T, &err);
  dmx_st_get_i32(ref, "input.retrieval_targets", rtarg, (size_t)B * T, &err);
  for (int r = 0; r < rows; r++) dmx_roberta_positions(ids + r * T, T, pos + r * T);
  dmx_batch_view v = {.ids = ids, .positions = pos, .labels = labels, .retrieval_instance = rinst, .retrieval_targets = rtarg};
  dmx_model_step(m, &v, false, 1);
  float got[12];
  size_t n = 0;
  float *want = get_f32(ref, "expect.logits", &n);
  dmx_model_logits(m, got);
  if (want && n == 12) {
    double maxd = 0, maxw = 0;
    for (size_t i = 0; i < n; i++) {
      maxd = fmax(maxd, fabs((double)got[i] - want[i]));
      maxw = fmax(maxw, fabs((double)want[i]));
    }
    CHECKF(maxd / fmax(maxw, 1e-6) <= 1e-4, "logits: max error %.3g (max |logit| %.3g)", maxd, maxw);
  } else {
    CHECKF(0, "reference logits: %zu values", n);
  }
  free(want);
  dmx_model_free(m);
out:
  dmx_st_free(ref);
  th_end();
}

static int copy_file(const char *from, const char *to) {
  dmx_error err;
  size_t len;
  char *b = dmx_read_file(from, &len, &err);
  if (!b) return -1;
  int rc = dmx_write_file_atomic(to, b, len, &err);
  free(b);
  return rc;
}

/* `datamux convert` both ways with the real binary; the folders it fills load like the original. */
static void test_convert_cli(void) {
  th_begin("datamux convert: .bin -> .safetensors -> .bin keeps every tensor");
  char cmd[2048], out[4096], st_dir[300], bin_dir[300], path[400], path2[400];
  snprintf(st_dir, sizeof st_dir, "%s/st", tmpdir);
  snprintf(bin_dir, sizeof bin_dir, "%s/bin", tmpdir);
  dmx_error err;
  CHECK(dmx_mkdirs(st_dir, &err) == 0 && dmx_mkdirs(bin_dir, &err) == 0);
  snprintf(cmd, sizeof cmd, "%s convert " FIX "/model/pytorch_model.bin %s/model.safetensors", th_datamux_bin(),
           st_dir);
  int rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 0 && strstr(out, "wrote 38 tensors"), "convert to safetensors: rc %d: %s", rc, out);
  snprintf(cmd, sizeof cmd, "%s convert %s/model.safetensors %s/pytorch_model.bin", th_datamux_bin(), st_dir, bin_dir);
  rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 0 && strstr(out, "wrote 38 tensors"), "convert to bin: rc %d: %s", rc, out);
  snprintf(path, sizeof path, "%s/config.json", st_dir);
  snprintf(path2, sizeof path2, "%s/config.json", bin_dir);
  CHECK(copy_file(FIX "/model/config.json", path) == 0 && copy_file(FIX "/model/config.json", path2) == 0);
  dmx_st_file *orig = dmx_torch_bin_load(FIX "/model/pytorch_model.bin", &err);
  snprintf(path, sizeof path, "%s/model.safetensors", st_dir);
  dmx_st_file *st = dmx_st_load(path, &err);
  snprintf(path, sizeof path, "%s/pytorch_model.bin", bin_dir);
  dmx_st_file *back = dmx_torch_bin_load(path, &err);
  CHECK(orig && st && back);
  if (orig && st) check_same_tensors(orig, st, "bin -> safetensors");
  if (orig && back) check_same_tensors(orig, back, "bin -> safetensors -> bin");
  snprintf(cmd, sizeof cmd, "%s convert " FIX "/model/config.json %s/x.safetensors", th_datamux_bin(), tmpdir);
  rc = th_run(cmd, out, sizeof out);
  CHECKF(rc == 2 && strstr(out, "cannot tell the format"), "convert of a .json: rc %d: %s", rc, out);
  dmx_st_free(orig);
  dmx_st_free(st);
  dmx_st_free(back);
  th_end();
  check_logits_from(st_dir, "converted safetensors folder (+ config.json) gives the reference logits");
  check_logits_from(bin_dir, "converted-back pytorch_model.bin folder gives the reference logits");
}

/* A model whose N differs from config.json's is refused with the field and the fix named. */
static void test_config_mismatch(void) {
  th_begin("config.json mismatch: num_instances named, with the flag to use");
  dmx_error err;
  dmx_hf_config c;
  int rc = dmx_hf_config_load(FIX "/model/config.json", &c, &err);
  CHECKF(rc == 0, "%s", rc ? err.msg : "");
  if (rc) {
    th_end();
    return;
  }
  dmx_experiment e;
  dmx_experiment_defaults(&e);
  dmx_hf_config_apply(&c, &e);
  e.mux.num_instances = 4;
  dmx_model *m = dmx_model_create(rt, &e, 1, 8 + 4 + 1, 3, false, &err);
  CHECK(m != NULL);
  if (m) {
    rc = dmx_checkpoint_load(m, FIX "/model", &err);
    CHECKF(rc == -1 && strstr(err.msg, "num_instances 2") && strstr(err.msg, "-N"), "got %d: %s", rc,
           rc ? err.msg : "");
    dmx_model_free(m);
  }
  char path[400];
  snprintf(path, sizeof path, "%s/bad_config.json", tmpdir);
  const char *bad = "{\"vocab_size\": 512, \"hidden_size\": 16, \"num_hidden_layers\": \"two\"}";
  CHECK(dmx_write_file_atomic(path, bad, strlen(bad), &err) == 0);
  rc = dmx_hf_config_load(path, &c, &err);
  CHECKF(rc == -1 && strstr(err.msg, "num_hidden_layers") && strstr(err.msg, "integer"), "got: %s", err.msg);
  bad = "{\"hidden_size\": 16}";
  CHECK(dmx_write_file_atomic(path, bad, strlen(bad), &err) == 0);
  rc = dmx_hf_config_load(path, &c, &err);
  CHECKF(rc == -1 && strstr(err.msg, "'vocab_size' is missing"), "got: %s", err.msg);
  th_end();
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/datamux_test_torch_bin_%d", (int)getpid());
  dmx_error err;
  if (dmx_mkdirs(tmpdir, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  rt = dmx_runtime_create(NULL, false, stdout);
  test_read_bin();
  check_logits_from(FIX "/model", "released-model folder (config.json + pytorch_model.bin) gives the reference logits");
  test_convert_cli();
  test_config_mismatch();
  dmx_runtime_destroy(rt);
  char cmd[400], out[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  th_run(cmd, out, sizeof out);
  return th_finish();
}
