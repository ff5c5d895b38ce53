/* Finite-difference gradient check of the vision models (layers/vision_model.c): LeNet and the MLP
 * with every muxing scheme, on tiny batches. After one training step, the analytic gradient of
 * each trainable parameter tensor is compared with the central difference of the loss that an
 * evaluation step reads back, at three entries per tensor: the largest |grad|, and two random ones.
 *
 * Precision. The loss is a float32 sum of per-row float32 losses (each ~5 for mse), so it carries
 * rounding noise of a few 1e-7; divided by the step 2h that is ~2e-4 at h = 1e-3 but ~2e-5 at
 * h = 1e-2. The large step has its own error: truncation (~h^2 |L'''|/6, visible where muxing
 * saturates tanh). Max pooling's kinks (a perturbation that moves a window's maximum, which with
 * ~1600 windows per batch happened at both steps) are removed by freezing the maxima found by the
 * training step (dmx_vision_model_freeze_pooling): the analytic gradient is exactly that of the
 * frozen function. Measured here: before the freeze h = 1e-3 alone failed 2 of 21 variants and
 * h = 1e-2 alone 8; with it, h = 1e-3 alone passes all 21 and h = 1e-2 alone fails one (the MLP
 * with graded muxing, whose large summed inputs saturate tanh: truncation error). Rounding differs
 * between devices, so each entry is compared at both steps and passes when either agrees:
 * |a - n| <= RTOL max(|a|, |n|) + ATOL_h, RTOL 0.05, ATOL 3e-4 (h = 1e-3) and 1e-4 (h = 1e-2).
 * A wrong gradient (the sabotage below, a 30% error) fails both. Every variant must also have at
 * least half of its comparisons "sharp" at h = 1e-2 (a 20% error would be rejected), so a check
 * that would pass anything is noticed.
 *
 * DATAMUX_GRADCHECK_SABOTAGE=<parameter name> scales that parameter's analytic gradient by 1.3
 * before comparing, to see the test fail (a self-test of the harness). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/config/config.h"
#include "layers/vision_model.h"
#include "host/base/rng.h"
#include "tests/harness.h"

#define RTOL 0.05
static const double steps[2] = {1e-3, 1e-2}, atols[2] = {3e-4, 1e-4};
#define GROUPS 2

static dmx_runtime *rt;
static uint64_t rng = 2024;
static uint64_t next(void) { return dmx_splitmix64(&rng); }
static double unif(void) { return (next() >> 11) * (1.0 / 9007199254740992.0); }

static float loss_now(dmx_vision_model *m, const float *img, const int32_t *lab) {
  dmx_vision_model_step(m, img, lab, false);
  return dmx_vision_model_loss(m);
}

static void check_variant(dmx_vision_model_kind kind, dmx_vision_muxing mux, int N, dmx_vision_loss loss,
                          dmx_vision_activation act) {
  dmx_vision_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.model = kind;
  cfg.muxing = mux;
  cfg.expand_channels = 3;
  cfg.activation = act;
  cfg.loss = loss;
  cfg.optimizer = DMX_VOPT_SGD;
  cfg.crop = kind == DMX_VMODEL_LENET ? 20 : 6;
  snprintf(cfg.hidden_sizes, sizeof cfg.hidden_sizes, "7,5");
  int classes = kind == DMX_VMODEL_LENET ? 10 : 4;
  char name[160];
  snprintf(name, sizeof name, "%s %s N=%d %s %s", kind == DMX_VMODEL_LENET ? "lenet" : "mlp",
           dmx_vision_muxing_name(mux), N, loss == DMX_VLOSS_MSE ? "mse" : "xent",
           act == DMX_VACT_TANH ? "tanh" : "relu");
  th_begin(name);
  dmx_error err = {{0}};
  dmx_vision_model *m = dmx_vision_model_create(rt, &cfg, N, GROUPS, classes, &err);
  CHECKF(m != NULL, "%s", err.msg);
  if (!m) {
    th_end();
    return;
  }
  dmx_vision_model_init(m, 7);
  size_t R = (size_t)N * GROUPS, P = (size_t)cfg.crop * cfg.crop;
  float *img = malloc(R * P * sizeof(float));
  int32_t *lab = malloc(R * sizeof(int32_t));
  for (size_t i = 0; i < R * P; i++) img[i] = (float)unif();
  for (size_t r = 0; r < R; r++) lab[r] = (int32_t)(next() % (uint64_t)classes);
  dmx_vision_model_step(m, img, lab, true);
  dmx_vision_model_freeze_pooling(m, true); /* the maxima stay where this step found them */
  const char *sabotage = getenv("DATAMUX_GRADCHECK_SABOTAGE");
  int compared = 0, sharp = 0, bad = 0;
  for (int pi = 0; pi < dmx_vision_model_num_params(m); pi++) {
    const dmx_vparam *p = dmx_vision_model_param(m, pi);
    if (!p->trainable) continue;
    float *g = malloc(p->n * sizeof(float)), *w = malloc(p->n * sizeof(float));
    dmx_download(rt, g, *p->g, p->n * sizeof(float));
    dmx_download(rt, w, *p->t, p->n * sizeof(float));
    if (sabotage && !strcmp(sabotage, p->name))
      for (size_t k = 0; k < p->n; k++) g[k] *= 1.3f;
    size_t pick[3] = {0, next() % p->n, next() % p->n};
    for (size_t k = 1; k < p->n; k++)
      if (fabsf(g[k]) > fabsf(g[pick[0]])) pick[0] = k;
    for (int j = 0; j < 3; j++) {
      size_t k = pick[j];
      float orig = w[k];
      dmx_tensor e = *p->t;
      e.off += k;
      e.n = 1;
      double a = g[k], num[2];
      bool ok = false;
      for (int st = 0; st < 2; st++) {
        float hi = orig + (float)steps[st], lo = orig - (float)steps[st];
        dmx_upload(rt, e, &hi, sizeof hi);
        double lp = loss_now(m, img, lab);
        dmx_upload(rt, e, &lo, sizeof lo);
        double lm = loss_now(m, img, lab);
        num[st] = (lp - lm) / ((double)hi - (double)lo); /* the step as the floats really are */
        double tol = RTOL * fmax(fabs(a), fabs(num[st])) + atols[st];
        if (fabs(a - num[st]) <= tol) ok = true;
        if (st == 1 && 0.2 * fabs(num[st]) > tol) sharp++;
      }
      dmx_upload(rt, e, &orig, sizeof orig);
      compared++;
      if (!ok) {
        bad++;
        th_fail_at(__FILE__, __LINE__, "%s[%zu]: analytic %.6g, finite differences %.6g (h 1e-3), %.6g (h 1e-2)",
                   p->name, k, a, num[0], num[1]);
      }
    }
    free(g);
    free(w);
  }
  CHECKF(compared > 0, "no trainable parameters");
  CHECKF(2 * sharp >= compared, "only %d of %d comparisons are sharp enough to see a 20%% error", sharp, compared);
  printf("  %d comparisons, %d sharp, %d bad, %zu trainable floats\n", compared, sharp, bad,
         dmx_vision_model_trainable_floats(m));
  free(img);
  free(lab);
  dmx_vision_model_free(m);
  th_end();
}

int main(void) {
  rt = dmx_runtime_create(NULL, false, stdout);
  const dmx_vision_muxing all[] = {
      DMX_VMUX_GAUSSIAN,    DMX_VMUX_GRADED,    DMX_VMUX_IDENTITY,         DMX_VMUX_LEARNABLE, DMX_VMUX_SO_N,
      DMX_VMUX_LEARNABLE_W, DMX_VMUX_NONLINEAR, DMX_VMUX_NONLINEAR_EXPAND, DMX_VMUX_ROTATION};
  check_variant(DMX_VMODEL_LENET, DMX_VMUX_NONE, 1, DMX_VLOSS_MSE, DMX_VACT_TANH);
  check_variant(DMX_VMODEL_MLP, DMX_VMUX_NONE, 1, DMX_VLOSS_XENT, DMX_VACT_TANH);
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
    check_variant(DMX_VMODEL_LENET, all[i], 2, DMX_VLOSS_MSE, DMX_VACT_TANH);
    check_variant(DMX_VMODEL_MLP, all[i], 3, i % 2 ? DMX_VLOSS_XENT : DMX_VLOSS_MSE, DMX_VACT_TANH);
  }
  check_variant(DMX_VMODEL_LENET, DMX_VMUX_NONLINEAR_EXPAND, 2, DMX_VLOSS_XENT, DMX_VACT_TANH);
  dmx_runtime_destroy(rt);
  return th_finish();
}
