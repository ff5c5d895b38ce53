/* Finite-difference gradient check of the whole model (embeddings, mux, encoder, task head,
 * retrieval head, losses) on a tiny configuration, for every mux variant x demux variant x head,
 * plus the N=1 baselines. Unlike test_model_oracle (which compares against PyTorch fixtures), this
 * needs no reference: the analytic gradient dmx_param_grad() after one training step must agree
 * with the central difference of dmx_model_stats().loss.
 *
 * For every trainable parameter (every registry entry, so the query/key/value views and each
 * demux instance's MLP are separate) three entries are checked: the one with the largest |grad|,
 * a random one among the entries with |grad| >= 10% of that, and a uniformly random one. Padding
 * rows of the embeddings are skipped: their gradient is zero by definition (padding_idx), not by
 * calculus.
 *
 * Precision. The model is float32, so the loss L carries rounding noise of a few ulps
 * (~1e-6 relative). With a step of eps = 1e-2 the central difference
 *   n = (L(x+eps) - L(x-eps)) / (x+eps - (x-eps))      (the denominator as the floats really are)
 * has a rounding error ~ |L| * 1e-6 / 2e-2 ~ 1e-4 and a truncation error ~ eps^2 |L'''| / 6.
 * Accepted when |a - n| <= 0.05 * max(|a|, |n|) + 3e-4. To keep that meaningful the parameters
 * are not left at their initialisation (weights N(0, 0.02), zero biases, unit LN gains, where most
 * gradients are tiny and would pass on the absolute term alone): weights are drawn with std 0.2
 * and every bias / LN parameter gets noise, so typical gradients are 1e-3..1e-1. The test also
 * counts, per variant, the compared entries whose tolerance would reject a 20% error, and fails if
 * fewer than half of them are that sharp: a check that anything passes would otherwise go
 * unnoticed.
 *
 * DATAMUX_GRADCHECK_SABOTAGE=<parameter name> negates that parameter's analytic gradient before
 * comparing, to see the test fail (a self-test of the harness, not of the model). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "host/config/config.h"
#include "layers/model.h"
#include "tests/harness.h"

#define V 512
#define D 16
#define LAYERS 2
#define HEADS 2
#define FFN 32
#define POSITIONS 64
#define GROUPS 2
#define SEQ 6
#define MUX_N 2
#define EPS 1e-2
#define RTOL 0.05
#define ATOL 3e-4
#define PER_PARAM 3

static uint64_t rng_state = 12345;
static uint64_t rnd(void) { return dmx_splitmix64(&rng_state); }
static int rnd_below(int n) { return (int)dmx_rand_below(&rng_state, (uint64_t)n); }
static double rnd_normal(void) {
  double u1 = ((rnd() >> 11) + 0.5) / 9007199254740992.0, u2 = ((rnd() >> 11) + 0.5) / 9007199254740992.0;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

typedef struct {
  const char *name;
  dmx_setting setting;
  dmx_muxing mux;
  dmx_demuxing demux;
  bool token;
  bool attention_mask; /* the clean variant's padding mask on a multiplexed model */
} variant;

typedef struct {
  int32_t *ids, *pos, *labels, *rinst, *rtarg;
  dmx_batch_view view;
} hand_batch;

/* Rows as data/batch.c would build them, with ids < V: index demux gets the N+1 prefix (filler,
 * the instance's own id, CLS), mlp demux replaces <s> by CLS. Each sentence is
 * <s> w1 .. wk </s> <pad>..., lengths varying so some rows have pads. */
static void build_batch(hand_batch *hb, const variant *v, int N, int T, int C) {
  int rows = GROUPS * N;
  int prefix = v->setting != DMX_SETTING_BASELINE && v->demux == DMX_DEMUX_INDEX ? N + 1 : 0;
  const int32_t filler = V - 20, cls = V - 21;
  hb->ids = calloc((size_t)rows * T, sizeof(int32_t));
  hb->pos = calloc((size_t)rows * T, sizeof(int32_t));
  hb->labels = calloc((size_t)rows * T, sizeof(int32_t));
  hb->rinst = calloc((size_t)GROUPS * T, sizeof(int32_t));
  hb->rtarg = calloc((size_t)GROUPS * T, sizeof(int32_t));
  if (!hb->ids || !hb->pos || !hb->labels || !hb->rinst || !hb->rtarg) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  for (int r = 0; r < rows; r++) {
    int32_t *row = hb->ids + (size_t)r * T;
    int inst = r % N;
    for (int j = 0; j < prefix - 1; j++) row[j] = j == inst ? V - 2 - j : filler;
    if (prefix) row[prefix - 1] = cls;
    /* words: SEQ-2, SEQ-3, SEQ-4; with the padding mask never SEQ-2, so every group has a position
     * that is padding in all its instances (one the mask removes) */
    int k = v->attention_mask ? SEQ - 3 - (r % 2) : SEQ - 2 - (r % 3);
    int32_t *s = row + prefix;
    for (int j = 0; j < SEQ; j++) s[j] = DMX_PAD_ID;
    s[0] = DMX_BOS_ID;
    for (int j = 1; j <= k; j++) s[j] = 4 + rnd_below(V - 40);
    s[k + 1] = DMX_EOS_ID;
    if (!prefix && v->setting != DMX_SETTING_BASELINE) s[0] = cls; /* mlp */
    dmx_roberta_positions(row, T, hb->pos + (size_t)r * T);
  }
  /* labels: sentence (rows), one padding instance ignored; token (rows, T) on words only */
  if (v->token) {
    for (int r = 0; r < rows; r++)
      for (int j = 0; j < T; j++) {
        int32_t id = hb->ids[(size_t)r * T + j];
        bool word = j >= prefix && id != DMX_PAD_ID && id != DMX_BOS_ID && id != DMX_EOS_ID && id != cls;
        hb->labels[(size_t)r * T + j] = word && rnd_below(5) ? rnd_below(C) : DMX_IGNORE_LABEL;
      }
  } else {
    for (int r = 0; r < rows; r++) hb->labels[r] = rnd_below(C);
    if (rows > 2) hb->labels[rows - 1] = DMX_IGNORE_LABEL;
  }
  /* retrieval picks as dmx_draw_retrieval (data/batch.c) draws them: instance k per muxed position, its token there */
  int first = prefix ? prefix : (v->token ? 0 : 1);
  for (int b = 0; b < GROUPS; b++)
    for (int j = 0; j < T; j++) {
      int k = rnd_below(N);
      int32_t y = hb->ids[((size_t)b * N + k) * T + j];
      hb->rinst[b * T + j] = k;
      hb->rtarg[b * T + j] = j >= first && y != DMX_PAD_ID ? y : DMX_IGNORE_LABEL;
    }
  bool retrieval = v->setting != DMX_SETTING_BASELINE;
  hb->view = (dmx_batch_view){.ids = hb->ids,
                              .positions = hb->pos,
                              .labels = hb->labels,
                              .retrieval_instance = retrieval ? hb->rinst : NULL,
                              .retrieval_targets = retrieval ? hb->rtarg : NULL};
}

static void free_batch(hand_batch *hb) {
  free(hb->ids);
  free(hb->pos);
  free(hb->labels);
  free(hb->rinst);
  free(hb->rtarg);
}

/* Moves the parameters away from the special point of their initialisation (see the top). */
static void randomize_params(dmx_model *m) {
  dmx_runtime *rt = dmx_model_runtime(m);
  for (int i = 0; i < dmx_model_num_params(m); i++) {
    const dmx_param *p = dmx_model_param(m, i);
    if (p->init == DMX_INIT_INSTANCES) continue; /* keep the structured instance vectors */
    float *h = malloc(p->n * sizeof(float));
    if (!h) {
      fprintf(stderr, "out of memory\n");
      exit(2);
    }
    dmx_download(rt, h, dmx_param_tensor(p), p->n * sizeof(float));
    for (size_t k = 0; k < p->n; k++) {
      switch (p->init) {
        case DMX_INIT_NORMAL: h[k] = (float)(0.2 * rnd_normal()); break;
        case DMX_INIT_ZEROS: h[k] = (float)(0.1 * rnd_normal()); break;
        case DMX_INIT_ONES: h[k] = (float)(1.0 + 0.2 * rnd_normal()); break;
        default: break;
      }
    }
    if (p->padding_row >= 0 && p->ndim == 2 && p->padding_row < p->shape[0])
      memset(h + (size_t)p->padding_row * p->shape[1], 0, (size_t)p->shape[1] * sizeof(float));
    dmx_upload(rt, dmx_param_tensor(p), h, p->n * sizeof(float));
    free(h);
  }
}

static bool in_padding_row(const dmx_param *p, size_t k) {
  return p->padding_row >= 0 && p->ndim == 2 && (int)(k / (size_t)p->shape[1]) == p->padding_row;
}

static double loss_at(dmx_model *m, const dmx_batch_view *bv) {
  dmx_model_step(m, bv, true, 1);
  return dmx_model_stats(m).loss;
}

static bool within(double a, double n) { return fabs(a - n) <= RTOL * fmax(fabs(a), fabs(n)) + ATOL; }

static void run_variant(dmx_runtime *rt, const variant *v, int index) {
  rng_state = 12345 + 1000 * (uint64_t)index; /* each variant the same whether run alone or among all */
  char title[256];
  snprintf(title, sizeof title, "gradcheck %s: analytic gradients of every parameter match central differences",
           v->name);
  th_begin(title);
  const char *sabotage = getenv("DATAMUX_GRADCHECK_SABOTAGE");

  dmx_experiment e;
  dmx_experiment_defaults(&e);
  e.setting = v->setting;
  e.model.vocab_size = V;
  e.model.hidden_size = D;
  e.model.num_layers = LAYERS;
  e.model.num_heads = HEADS;
  e.model.intermediate_size = FFN;
  e.model.max_position_embeddings = POSITIONS;
  e.model.hidden_dropout = e.model.attention_dropout = 0.0f;
  e.mux.num_instances = v->setting == DMX_SETTING_BASELINE ? 1 : MUX_N;
  e.mux.muxing = v->mux;
  e.mux.demuxing = v->demux;
  e.mux.learn_muxing = true;
  e.mux.attention_mask = v->attention_mask;
  e.train.task_loss_coeff = v->setting == DMX_SETTING_BASELINE ? 1.0f : 0.7f;
  e.train.retrieval_loss_coeff = v->setting == DMX_SETTING_BASELINE ? 0.0f : 0.3f;
  e.train.weight_decay = 0.0f;
  int N = e.mux.num_instances;
  int T = SEQ + (v->setting != DMX_SETTING_BASELINE && v->demux == DMX_DEMUX_INDEX ? N + 1 : 0);
  int C = v->token ? 5 : 3;

  dmx_error err;
  dmx_model *m = dmx_model_create(rt, &e, GROUPS, T, C, v->token, &err);
  CHECKF(m != NULL, "model: %s", err.msg);
  if (!m) {
    th_end();
    return;
  }
  dmx_model_init_params(m, 7);
  randomize_params(m);
  hand_batch hb;
  build_batch(&hb, v, N, T, C);

  /* the analytic gradients at the unperturbed parameters */
  dmx_model_step(m, &hb.view, true, 1);
  dmx_step_stats st = dmx_model_stats(m);
  double loss0 = st.loss;
  CHECKF(isfinite(loss0) && loss0 > 0, "loss %g", loss0);
  CHECKF(st.task_count > 0, "no task rows scored");
  if (v->setting != DMX_SETTING_BASELINE) CHECKF(st.retrieval_count > 0, "no retrieval rows scored");
  int np = dmx_model_num_params(m);
  float **grads = calloc((size_t)np, sizeof(float *));
  for (int i = 0; i < np; i++) {
    const dmx_param *p = dmx_model_param(m, i);
    if (!p->trainable) continue;
    grads[i] = malloc(p->n * sizeof(float));
    dmx_download(rt, grads[i], dmx_param_grad(p), p->n * sizeof(float));
    if (sabotage && !strcmp(sabotage, p->name))
      for (size_t k = 0; k < p->n; k++) grads[i][k] = -grads[i][k];
  }
  /* determinism: the same parameters give the same loss bit for bit */
  double again = loss_at(m, &hb.view);
  CHECKF(again == loss0, "loss not deterministic: %.9g then %.9g", loss0, again);

  int checked = 0, sharp = 0, params = 0, frozen = 0;
  double worst_ratio = 0;
  char worst_what[256] = "";
  for (int i = 0; i < np; i++) {
    const dmx_param *p = dmx_model_param(m, i);
    if (!p->trainable) {
      frozen++;
      continue;
    }
    params++;
    const float *g = grads[i];
    /* entries: max |grad|, a large random one, a uniform random one */
    size_t picks[PER_PARAM];
    int npick = 0;
    size_t imax = SIZE_MAX;
    double gmax = -1;
    for (size_t k = 0; k < p->n; k++)
      if (!in_padding_row(p, k) && fabs(g[k]) > gmax) {
        gmax = fabs(g[k]);
        imax = k;
      }
    if (imax == SIZE_MAX) continue;
    picks[npick++] = imax;
    size_t n_large = 0;
    for (size_t k = 0; k < p->n; k++)
      if (!in_padding_row(p, k) && k != imax && fabs(g[k]) >= 0.1 * gmax) n_large++;
    if (n_large) {
      size_t want = (size_t)dmx_rand_below(&rng_state, n_large), c = 0;
      for (size_t k = 0; k < p->n; k++)
        if (!in_padding_row(p, k) && k != imax && fabs(g[k]) >= 0.1 * gmax && c++ == want) {
          picks[npick++] = k;
          break;
        }
    }
    for (int tries = 0; tries < 16 && npick < PER_PARAM; tries++) {
      size_t k = (size_t)dmx_rand_below(&rng_state, p->n);
      bool dup = in_padding_row(p, k);
      for (int q = 0; q < npick; q++) dup |= picks[q] == k;
      if (!dup) picks[npick++] = k;
    }

    dmx_tensor t = dmx_param_tensor(p);
    float *h = malloc(p->n * sizeof(float));
    dmx_download(rt, h, t, p->n * sizeof(float));
    for (int q = 0; q < npick; q++) {
      size_t k = picks[q];
      float x0 = h[k], xp = (float)(x0 + EPS), xm = (float)(x0 - EPS);
      h[k] = xp;
      dmx_upload(rt, t, h, p->n * sizeof(float));
      double lp = loss_at(m, &hb.view);
      h[k] = xm;
      dmx_upload(rt, t, h, p->n * sizeof(float));
      double lm = loss_at(m, &hb.view);
      h[k] = x0;
      double num = (lp - lm) / ((double)xp - (double)xm);
      double ana = g[k];
      checked++;
      double tol = RTOL * fmax(fabs(ana), fabs(num)) + ATOL;
      double ratio = fabs(ana - num) / tol;
      if (ratio > worst_ratio) {
        worst_ratio = ratio;
        snprintf(worst_what, sizeof worst_what, "%s[%zu]: analytic %.6g numeric %.6g", p->name, k, ana, num);
      }
      if (!within(ana, num))
        th_fail_at(__FILE__, __LINE__, "%s[%zu]: analytic %.6g, numeric %.6g (|diff| %.3g > tolerance %.3g)", p->name,
                   k, ana, num, fabs(ana - num), tol);
      /* would a 20% error in this entry be caught? */
      if (!within(1.2 * num, num)) sharp++;
    }
    dmx_upload(rt, t, h, p->n * sizeof(float)); /* restore exactly */
    free(h);
  }
  /* the restored parameters give the original loss */
  double after = loss_at(m, &hb.view);
  CHECKF(after == loss0, "parameters not restored: loss %.9g, was %.9g", after, loss0);
  CHECKF(params >= 20, "only %d trainable parameters", params);
  CHECKF(frozen == 0, "%d frozen parameters with learn_muxing on", frozen);
  CHECKF(2 * sharp >= checked,
         "only %d of %d compared entries are large enough for the tolerance to catch a 20%% error", sharp, checked);
  if (v->setting != DMX_SETTING_BASELINE) {
    const dmx_param *inst = dmx_model_find_param(m, "instance_embedding");
    CHECKF(inst && inst->trainable, "instance_embedding missing or frozen with learn_muxing");
  }
  printf("  %s: loss %.5f, %d parameters, %d entries compared (%d sharp), worst %.2f of tolerance at %s\n", v->name,
         loss0, params, checked, sharp, worst_ratio, worst_what);
  for (int i = 0; i < np; i++) free(grads[i]);
  free(grads);
  free_batch(&hb);
  dmx_model_free(m);
  th_end();
}

int main(void) {
  dmx_runtime *rt = dmx_runtime_create(NULL, false, stdout);
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
      {"binary_hadamard index token", DMX_SETTING_FINETUNING, DMX_MUX_BINARY_HADAMARD, DMX_DEMUX_INDEX, true, false},
      {"binary_hadamard mlp sentence", DMX_SETTING_FINETUNING, DMX_MUX_BINARY_HADAMARD, DMX_DEMUX_MLP, false, false},
      {"binary_hadamard mlp token", DMX_SETTING_FINETUNING, DMX_MUX_BINARY_HADAMARD, DMX_DEMUX_MLP, true, false},
      {"random_ortho index sentence", DMX_SETTING_FINETUNING, DMX_MUX_RANDOM_ORTHO, DMX_DEMUX_INDEX, false, false},
      {"random_ortho index token", DMX_SETTING_FINETUNING, DMX_MUX_RANDOM_ORTHO, DMX_DEMUX_INDEX, true, false},
      {"random_ortho mlp sentence", DMX_SETTING_FINETUNING, DMX_MUX_RANDOM_ORTHO, DMX_DEMUX_MLP, false, false},
      {"random_ortho mlp token", DMX_SETTING_FINETUNING, DMX_MUX_RANDOM_ORTHO, DMX_DEMUX_MLP, true, false},
      {"gaussian_hadamard index sentence, padding mask", DMX_SETTING_FINETUNING, DMX_MUX_GAUSSIAN_HADAMARD,
       DMX_DEMUX_INDEX, false, true},
      {"random_ortho mlp token, padding mask", DMX_SETTING_FINETUNING, DMX_MUX_RANDOM_ORTHO, DMX_DEMUX_MLP, true, true},
      {"baseline N=1 sentence", DMX_SETTING_BASELINE, DMX_MUX_GAUSSIAN_HADAMARD, DMX_DEMUX_INDEX, false, false},
      {"baseline N=1 token", DMX_SETTING_BASELINE, DMX_MUX_GAUSSIAN_HADAMARD, DMX_DEMUX_INDEX, true, false},
  };
  const char *only = getenv("DATAMUX_GRADCHECK_ONLY"); /* substring of a variant name, for debugging */
  for (size_t i = 0; i < sizeof variants / sizeof *variants; i++)
    if (!only || strstr(variants[i].name, only)) run_variant(rt, &variants[i], (int)i);
  dmx_runtime_destroy(rt);
  return th_finish();
}
