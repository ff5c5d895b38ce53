/* LeNet / MuxLeNet / MLP for the vision notebook (layers/vision_model.h). Forward and backward
 * enqueue kernels only; nothing is read back inside a step. */
#include "layers/vision_model.h"
#include "host/base/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers/common_ops.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/optim.h"
#include "layers/pool.h"
#include "layers/vision_ops.h"

#define NL_HIDDEN 16 /* channels inside the nonlinear muxing */
#define LENET_C2 16
#define LENET_C3 120
#define LENET_FC 84

typedef struct {
  dmx_tensor w, b;
} lin_p;

struct dmx_vision_model {
  dmx_runtime *rt;
  dmx_vision_config cfg;
  int N, B, S, P, Cm, classes, D; /* D: width entering the demux / head */
  int loss_B;                     /* groups the loss averages over: B, or the global batch's */
  bool muxed, mse, pool_frozen;
  dmx_arena params, grads, adam_m, adam_v, acts, dacts, ints;
  dmx_vparam plist[DMX_VISION_MAX_PARAMS];
  int np;
  size_t trainable_floats;

  /* parameters (p) and gradient mirrors (g) */
  struct {
    dmx_tensor mux_w, mux_b; /* per-instance 3x3 conv (N, 1, 9), (N, 1) or matrix (N, P, P) */
    lin_p nl1, nl2;          /* nonlinear muxing convs (N, 16, 9), (N, Cm, 144) */
    lin_p c1, c2, c3;        /* LeNet convs */
    lin_p hid[DMX_VISION_MAX_HIDDEN];
    lin_p fc;    /* LeNet fc F -> 84 */
    lin_p demux; /* (N, D, D), (N, D) */
    lin_p head;  /* (classes, D) */
  } p, g;
  int n_hidden, hidden[DMX_VISION_MAX_HIDDEN];
  conv_shape mux_cs, nl1_cs, nl2_cs, c1_cs, c2_cs, c3_cs;
  int s1, s2, F; /* pooled sizes, flattened LeNet features */

  /* activations (a) and their gradients (d); convolution outputs hold the post-activation values */
  struct {
    dmx_tensor x, y, nl_h, xm, c1, p1, c2, p2, c3, fc, hid[DMX_VISION_MAX_HIDDEN], dm, logits, out;
  } a, d;
  dmx_tensor col_mux, col_nl1, col_nl2, col1, col2, col3; /* im2col buffers, kept for the backward */
  dmx_tensor dcol, dpre; /* shared scratch: col gradient, gradient before an activation */
  size_t dpre_floats;
  dmx_tensor mirrors[2][DMX_VISION_MAX_PARAMS]; /* Adam moments: only the arena layout matters */
  dmx_tensor losses, loss_sum, labels, preds, idx1, idx2, rot_map, rot_sign, norm, norm_partial;
  dmx_stager stager;
};

/* ------------------------------------------------------------------ small helpers */

static dmx_tensor none(void) { return (dmx_tensor){NULL, 0, 0}; }
static dmx_tensor sub(dmx_tensor t, size_t off, size_t n) {
  t.off += off;
  t.n = n;
  return t;
}

static void act_fwd(dmx_vision_model *m, dmx_tensor t, size_t n) {
  if (m->cfg.activation == DMX_VACT_RELU)
    dmx_relu_forward(m->rt, t, t, (int)n);
  else
    dmx_tanh_forward(m->rt, t, t, (int)n);
}
/* dx += act'(y) * dy, y the post-activation value */
static void act_bwd(dmx_vision_model *m, dmx_tensor dx, dmx_tensor y, dmx_tensor dy, size_t n) {
  if (m->cfg.activation == DMX_VACT_RELU)
    dmx_relu_backward(m->rt, dx, y, dy, (int)n);
  else
    dmx_tanh_backward(m->rt, dx, y, dy, (int)n);
}

static bool conv_mux(dmx_vision_muxing x) {
  return x == DMX_VMUX_GAUSSIAN || x == DMX_VMUX_GRADED || x == DMX_VMUX_IDENTITY || x == DMX_VMUX_LEARNABLE;
}
static bool nonlinear_mux(dmx_vision_muxing x) { return x == DMX_VMUX_NONLINEAR || x == DMX_VMUX_NONLINEAR_EXPAND; }
static bool matrix_mux(dmx_vision_muxing x) { return x == DMX_VMUX_SO_N || x == DMX_VMUX_LEARNABLE_W; }

/* ------------------------------------------------------------------ registry */

static dmx_vparam *param(dmx_vision_model *m, const char *name, dmx_tensor *t, dmx_tensor *g, bool trainable, int ndim,
                         int s0, int s1, int s2, int s3, dmx_vinit init, int fan_in) {
  if (m->np == DMX_VISION_MAX_PARAMS) dmx_die("too many vision parameters (raise DMX_VISION_MAX_PARAMS)");
  dmx_vparam *p = &m->plist[m->np++];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  int s[4] = {s0, s1, s2, s3};
  p->ndim = ndim;
  p->n = 1;
  for (int k = 0; k < ndim; k++) p->shape[k] = s[k], p->n *= (size_t)s[k];
  p->trainable = trainable;
  p->t = t;
  p->g = trainable ? g : NULL;
  p->init = init;
  p->fan_in = fan_in;
  return p;
}

static void lin(dmx_vision_model *m, const char *name, lin_p *p, lin_p *g, int G, int out, int in) {
  char n[64];
  snprintf(n, sizeof n, "%s.weight", name);
  if (G > 1)
    param(m, n, &p->w, &g->w, true, 3, G, out, in, 0, DMX_VINIT_FANIN, in);
  else
    param(m, n, &p->w, &g->w, true, 2, out, in, 0, 0, DMX_VINIT_FANIN, in);
  snprintf(n, sizeof n, "%s.bias", name);
  if (G > 1)
    param(m, n, &p->b, &g->b, true, 2, G, out, 0, 0, DMX_VINIT_FANIN, in);
  else
    param(m, n, &p->b, &g->b, true, 1, out, 0, 0, 0, DMX_VINIT_FANIN, in);
}

/* A shared K x K convolution: weight stored (OC, C*K*K) with columns (c, kh, kw), i.e. exactly
 * PyTorch's Conv2d weight (OC, C, K, K), which is the shape checkpoints record. */
static void conv_params(dmx_vision_model *m, const char *name, lin_p *p, lin_p *g, int OC, int C, int K) {
  char n[64];
  snprintf(n, sizeof n, "%s.weight", name);
  param(m, n, &p->w, &g->w, true, 4, OC, C, K, K, DMX_VINIT_FANIN, C * K * K);
  snprintf(n, sizeof n, "%s.bias", name);
  param(m, n, &p->b, &g->b, true, 1, OC, 0, 0, 0, DMX_VINIT_FANIN, C * K * K);
}

static void register_params(dmx_vision_model *m) {
  int N = m->N, P = m->P, Cm = m->Cm;
  dmx_vision_muxing mx = m->cfg.muxing;
  if (conv_mux(mx)) {
    bool learn = mx == DMX_VMUX_LEARNABLE;
    dmx_vinit init = mx == DMX_VMUX_GAUSSIAN ? DMX_VINIT_GAUSS : learn ? DMX_VINIT_FANIN : DMX_VINIT_CONST;
    dmx_vparam *w = param(m, "mux.conv.weight", &m->p.mux_w, &m->g.mux_w, learn, 3, N, 1, 9, 0, init, 9);
    w->value = mx == DMX_VMUX_IDENTITY ? 1.0f : -1.0f; /* graded: i+1, filled at init */
    if (learn) param(m, "mux.conv.bias", &m->p.mux_b, &m->g.mux_b, true, 2, N, 1, 0, 0, DMX_VINIT_FANIN, 9);
  } else if (matrix_mux(mx)) {
    param(m, "mux.matrix", &m->p.mux_w, &m->g.mux_w, mx == DMX_VMUX_LEARNABLE_W, 3, N, P, P, 0, DMX_VINIT_ORTHO, P);
  } else if (nonlinear_mux(mx)) {
    lin(m, "mux.conv1", &m->p.nl1, &m->g.nl1, N, NL_HIDDEN, 9);
    lin(m, "mux.conv2", &m->p.nl2, &m->g.nl2, N, Cm, NL_HIDDEN * 9);
  }
  if (m->cfg.model == DMX_VMODEL_LENET) {
    conv_params(m, "conv1", &m->p.c1, &m->g.c1, m->c1_cs.OC, Cm, 3);
    conv_params(m, "conv2", &m->p.c2, &m->g.c2, LENET_C2, m->c1_cs.OC, 4);
    conv_params(m, "conv3", &m->p.c3, &m->g.c3, LENET_C3, LENET_C2, 3);
    lin(m, "fc1", &m->p.fc, &m->g.fc, 1, LENET_FC, m->F);
  } else {
    int in = P * Cm;
    for (int k = 0; k < m->n_hidden; k++) {
      char n[32];
      snprintf(n, sizeof n, "hidden%d", k);
      lin(m, n, &m->p.hid[k], &m->g.hid[k], 1, m->hidden[k], in);
      in = m->hidden[k];
    }
  }
  if (m->muxed) lin(m, "demux", &m->p.demux, &m->g.demux, N, m->D, m->D);
  lin(m, "head", &m->p.head, &m->g.head, 1, m->classes, m->D);
}

/* ------------------------------------------------------------------ activations */

/* An activation and (d non-NULL) its gradient; dpre must hold the largest gradient. */
static void act2(dmx_vision_model *m, dmx_tensor *a, dmx_tensor *d, size_t n) {
  dmx_arena_add(&m->acts, a, n);
  if (d) dmx_arena_add(&m->dacts, d, n);
  if (n > m->dpre_floats) m->dpre_floats = n;
}

static void register_acts(dmx_vision_model *m) {
  size_t N = m->N, B = m->B, P = m->P, Cm = m->Cm, R = N * B;
  dmx_vision_muxing mx = m->cfg.muxing;
  size_t dcol = 1;
  m->dpre_floats = R * m->D;
#define COL(t, cs)                          \
  do {                                      \
    size_t n_ = dmx_conv_col_floats(&(cs)); \
    dmx_arena_add(&m->acts, &(t), n_);      \
    if (n_ > dcol) dcol = n_;               \
  } while (0)
  act2(m, &m->a.x, NULL, R * P);
  if (mx != DMX_VMUX_NONE) {
    act2(m, &m->a.y, &m->d.y, R * P * Cm);
    act2(m, &m->a.xm, &m->d.xm, B * P * Cm);
  }
  if (conv_mux(mx)) COL(m->col_mux, m->mux_cs);
  if (nonlinear_mux(mx)) {
    act2(m, &m->a.nl_h, &m->d.nl_h, R * P * NL_HIDDEN);
    COL(m->col_nl1, m->nl1_cs);
    COL(m->col_nl2, m->nl2_cs);
  }
  if (mx == DMX_VMUX_ROTATION) {
    dmx_arena_add(&m->ints, &m->rot_map, N * P);
    dmx_arena_add(&m->acts, &m->rot_sign, N);
  }
  if (m->cfg.model == DMX_VMODEL_LENET) {
    conv_shape *c1 = &m->c1_cs, *c2 = &m->c2_cs, *c3 = &m->c3_cs;
    act2(m, &m->a.c1, &m->d.c1, B * c1->OH * c1->OW * c1->OC);
    act2(m, &m->a.p1, &m->d.p1, B * m->s1 * m->s1 * c1->OC);
    dmx_arena_add(&m->ints, &m->idx1, B * m->s1 * m->s1 * c1->OC);
    act2(m, &m->a.c2, &m->d.c2, B * c2->OH * c2->OW * c2->OC);
    act2(m, &m->a.p2, &m->d.p2, B * m->s2 * m->s2 * c2->OC);
    dmx_arena_add(&m->ints, &m->idx2, B * m->s2 * m->s2 * c2->OC);
    act2(m, &m->a.c3, &m->d.c3, B * m->F);
    act2(m, &m->a.fc, &m->d.fc, B * LENET_FC);
    COL(m->col1, *c1);
    COL(m->col2, *c2);
    COL(m->col3, *c3);
  } else {
    for (int k = 0; k < m->n_hidden; k++) act2(m, &m->a.hid[k], &m->d.hid[k], B * m->hidden[k]);
  }
  if (m->muxed) act2(m, &m->a.dm, &m->d.dm, R * m->D);
  act2(m, &m->a.logits, &m->d.logits, R * m->classes);
  act2(m, &m->a.out, &m->d.out, R * m->classes);
  /* scratch lives with the activations: it is written before it is read, so never zeroed */
  dmx_arena_add(&m->acts, &m->dcol, dcol);
  dmx_arena_add(&m->acts, &m->dpre, m->dpre_floats);
  dmx_arena_add(&m->acts, &m->losses, R);
  dmx_arena_add(&m->acts, &m->loss_sum, 1);
  dmx_arena_add(&m->acts, &m->norm, 1);
  dmx_arena_add(&m->acts, &m->norm_partial, dmx_global_norm_partial_floats());
  dmx_arena_add(&m->ints, &m->labels, R);
  dmx_arena_add(&m->ints, &m->preds, R);
#undef COL
}

/* ------------------------------------------------------------------ create / free */

int dmx_vision_model_mux_channels(const dmx_vision_model *m) { return m->Cm; }

dmx_vision_model *dmx_vision_model_create(dmx_runtime *rt, const dmx_vision_config *cfg, int N, int B, int classes,
                                          dmx_error *err) {
  if (N < 1 || B < 1 || classes < 2) {
    dmx_fail(err, "vision model: N = %d, B = %d, %d classes (need N, B >= 1 and >= 2 classes)", N, B, classes);
    return NULL;
  }
  if (cfg->muxing == DMX_VMUX_NONE && N != 1) {
    dmx_fail(err, "vision model: muxing none cannot combine %d instances", N);
    return NULL;
  }
  dmx_vision_model *m = dmx_calloc(1, sizeof *m);
  m->rt = rt;
  m->cfg = *cfg;
  m->N = N;
  m->B = B;
  m->loss_B = B;
  m->S = cfg->crop;
  m->P = m->S * m->S;
  m->classes = classes;
  m->muxed = cfg->muxing != DMX_VMUX_NONE;
  m->mse = cfg->loss == DMX_VLOSS_MSE;
  m->Cm = cfg->muxing == DMX_VMUX_NONLINEAR_EXPAND ? cfg->expand_channels : 1;
  int S = m->S;
  if (conv_mux(cfg->muxing)) m->mux_cs = dmx_conv_make_shape(N, B, S, S, 1, 1, 3, 1);
  if (nonlinear_mux(cfg->muxing)) {
    m->nl1_cs = dmx_conv_make_shape(N, B, S, S, 1, NL_HIDDEN, 3, 1);
    m->nl2_cs = dmx_conv_make_shape(N, B, S, S, NL_HIDDEN, m->Cm, 3, 1);
  }
  if (cfg->model == DMX_VMODEL_LENET) {
    int c1 = cfg->conv1_channels > 0 ? cfg->conv1_channels : m->muxed ? 10 : 6;
    if (S - 2 < 2 || (S - 2) / 2 < 4 || ((S - 2) / 2 - 3) / 2 < 3) {
      dmx_fail(err, "vision model: a %dx%d crop is too small for LeNet (needs at least 20)", S, S);
      free(m);
      return NULL;
    }
    m->c1_cs = dmx_conv_make_shape(1, B, S, S, m->Cm, c1, 3, 0);
    m->s1 = m->c1_cs.OH / 2;
    m->c2_cs = dmx_conv_make_shape(1, B, m->s1, m->s1, c1, LENET_C2, 4, 0);
    m->s2 = m->c2_cs.OH / 2;
    m->c3_cs = dmx_conv_make_shape(1, B, m->s2, m->s2, LENET_C2, LENET_C3, 3, 0);
    m->F = m->c3_cs.OH * m->c3_cs.OW * LENET_C3;
    m->D = LENET_FC;
  } else {
    m->n_hidden = dmx_vision_hidden_sizes(cfg->hidden_sizes, m->hidden, DMX_VISION_MAX_HIDDEN);
    if (m->n_hidden < 1) {
      dmx_fail(err, "vision model: bad hidden_sizes '%s'", cfg->hidden_sizes);
      free(m);
      return NULL;
    }
    m->D = m->hidden[m->n_hidden - 1];
  }
  dmx_arena *ar[] = {&m->params, &m->grads, &m->adam_m, &m->adam_v, &m->acts, &m->dacts, &m->ints};
  const char *names[] = {"vision parameters",   "vision gradients",   "adam first moments",
                         "adam second moments", "vision activations", "vision activation gradients",
                         "vision int tensors"};
  for (int i = 0; i < 7; i++) dmx_arena_init(ar[i], rt, names[i]);
  register_params(m);
  /* trainable tensors first, so the optimizer sees one flat prefix; the moments mirror it */
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < m->np; i++) {
      dmx_vparam *p = &m->plist[i];
      if (p->trainable != (pass == 0)) continue;
      dmx_arena_add(&m->params, p->t, p->n);
      if (!p->trainable) continue;
      dmx_arena_add(&m->grads, p->g, p->n);
      if (cfg->optimizer == DMX_VOPT_ADAMW) {
        dmx_arena_add(&m->adam_m, &m->mirrors[0][i], p->n);
        dmx_arena_add(&m->adam_v, &m->mirrors[1][i], p->n);
      }
    }
  register_acts(m);
  for (int i = 0; i < 7; i++)
    if (dmx_arena_commit(ar[i], err)) {
      dmx_vision_model_free(m);
      return NULL;
    }
  if (m->grads.n_buffers > 1 || m->params.n_buffers > 1) {
    dmx_fail(err, "vision model: parameters exceed one device allocation");
    dmx_vision_model_free(m);
    return NULL;
  }
  m->trainable_floats = m->grads.n_buffers ? m->grads.used[0] : 0;
  dmx_stager_init(&m->stager, (size_t)N * B * (m->P + 1) * 4 + 1024);
  return m;
}

void dmx_vision_model_free(dmx_vision_model *m) {
  if (!m) return;
  dmx_finish(m->rt);
  dmx_arena *ar[] = {&m->params, &m->grads, &m->adam_m, &m->adam_v, &m->acts, &m->dacts, &m->ints};
  for (int i = 0; i < 7; i++) dmx_arena_release(ar[i]);
  if (m->stager.slot[0]) dmx_stager_free(&m->stager);
  free(m);
}

void dmx_vision_model_freeze_pooling(dmx_vision_model *m, bool frozen) { m->pool_frozen = frozen; }
int dmx_vision_model_num_params(const dmx_vision_model *m) { return m->np; }
const dmx_vparam *dmx_vision_model_param(const dmx_vision_model *m, int i) { return &m->plist[i]; }
size_t dmx_vision_model_trainable_floats(const dmx_vision_model *m) { return m->trainable_floats; }
size_t dmx_vision_model_device_bytes(const dmx_vision_model *m) {
  return dmx_arena_bytes(&m->params) + dmx_arena_bytes(&m->grads) + dmx_arena_bytes(&m->adam_m) +
         dmx_arena_bytes(&m->adam_v) + dmx_arena_bytes(&m->acts) + dmx_arena_bytes(&m->dacts) +
         dmx_arena_bytes(&m->ints);
}

/* ------------------------------------------------------------------ initialisation */

static double gauss(uint64_t *s) {
  return sqrt(-2.0 * log(dmx_rand_open01(s))) * cos(6.283185307179586 * dmx_rand_open01(s));
}

/* Nearest-neighbour rotation of an S x S image about its centre by 360 i / N degrees, as a gather
 * map (output pixel -> source pixel, -1 outside), and the notebook's factor (1 - 2i). */
static void rotation_tables(int N, int S, int32_t *map, float *sign) {
  double c0 = (S - 1) / 2.0;
  for (int i = 0; i < N; i++) {
    double th = 6.283185307179586 * i / N, cs = cos(th), sn = sin(th);
    sign[i] = (float)(1 - 2 * i);
    for (int r = 0; r < S; r++)
      for (int c = 0; c < S; c++) {
        /* source = R(-theta) (output - centre) + centre */
        double x = cs * (c - c0) + sn * (r - c0) + c0, y = -sn * (c - c0) + cs * (r - c0) + c0;
        int xs = (int)lround(x), ys = (int)lround(y);
        map[i * S * S + r * S + c] = xs >= 0 && xs < S && ys >= 0 && ys < S ? ys * S + xs : -1;
      }
  }
}

void dmx_vision_model_init(dmx_vision_model *m, uint64_t seed) {
  uint64_t s = seed * 0x2545F4914F6CDD1DULL + 7;
  for (int i = 0; i < m->np; i++) {
    dmx_vparam *p = &m->plist[i];
    float *h = dmx_malloc(p->n * sizeof(float));
    double bound = 1.0 / sqrt((double)(p->fan_in > 0 ? p->fan_in : 1));
    switch (p->init) {
      case DMX_VINIT_FANIN:
        for (size_t k = 0; k < p->n; k++) h[k] = (float)((2 * dmx_rand_open01(&s) - 1) * bound);
        break;
      case DMX_VINIT_GAUSS:
        for (size_t k = 0; k < p->n; k++) h[k] = (float)gauss(&s);
        break;
      case DMX_VINIT_CONST: /* value < 0: graded, instance i's kernel is i + 1 */
        for (size_t k = 0; k < p->n; k++) h[k] = p->value >= 0 ? p->value : (float)(k / (p->n / p->shape[0]) + 1);
        break;
      case DMX_VINIT_ORTHO:
        for (int g = 0; g < p->shape[0]; g++)
          dmx_random_rotation(h + (size_t)g * p->shape[1] * p->shape[1], p->shape[1], &s);
        break;
      case DMX_VINIT_ZERO: memset(h, 0, p->n * sizeof(float)); break;
    }
    dmx_upload(m->rt, *p->t, h, p->n * sizeof(float));
    free(h);
  }
  if (m->cfg.muxing == DMX_VMUX_ROTATION) {
    int32_t *map = dmx_malloc((size_t)m->N * m->P * sizeof(int32_t));
    float *sign = dmx_malloc((size_t)m->N * sizeof(float));
    rotation_tables(m->N, m->S, map, sign);
    dmx_upload(m->rt, m->rot_map, map, (size_t)m->N * m->P * sizeof(int32_t));
    dmx_upload(m->rt, m->rot_sign, sign, (size_t)m->N * sizeof(float));
    free(sign);
    free(map);
  }
  if (m->adam_m.n_buffers) dmx_arena_zero(&m->adam_m);
  if (m->adam_v.n_buffers) dmx_arena_zero(&m->adam_v);
}

/* ------------------------------------------------------------------ forward */

static dmx_tensor trunk_input(dmx_vision_model *m) { return m->muxed ? m->a.xm : m->a.x; }
static dmx_tensor features(dmx_vision_model *m, bool grad) {
  if (m->cfg.model == DMX_VMODEL_LENET) return grad ? m->d.fc : m->a.fc;
  return grad ? m->d.hid[m->n_hidden - 1] : m->a.hid[m->n_hidden - 1];
}
/* Whether anything before the trunk learns, i.e. whether the trunk must pass a gradient back. */
static bool mux_learns(const dmx_vision_model *m) {
  dmx_vision_muxing x = m->cfg.muxing;
  return x == DMX_VMUX_LEARNABLE || x == DMX_VMUX_LEARNABLE_W || nonlinear_mux(x);
}

static void mux_forward(dmx_vision_model *m) {
  dmx_runtime *rt = m->rt;
  int N = m->N, B = m->B, P = m->P;
  dmx_vision_muxing mx = m->cfg.muxing;
  if (mx == DMX_VMUX_NONE) return;
  if (conv_mux(mx))
    dmx_conv_forward(rt, m->a.y, m->col_mux, m->a.x, m->p.mux_w, mx == DMX_VMUX_LEARNABLE ? m->p.mux_b : none(),
                     &m->mux_cs);
  else if (matrix_mux(mx))
    dmx_instance_matmul_forward(rt, m->a.y, m->a.x, m->p.mux_w, N, B, P);
  else if (mx == DMX_VMUX_ROTATION)
    dmx_gather_map_forward(rt, m->a.y, m->a.x, m->rot_map, m->rot_sign, N, B, P, 1);
  else {
    dmx_conv_forward(rt, m->a.nl_h, m->col_nl1, m->a.x, m->p.nl1.w, m->p.nl1.b, &m->nl1_cs);
    dmx_tanh_forward(rt, m->a.nl_h, m->a.nl_h, N * B * P * NL_HIDDEN);
    dmx_conv_forward(rt, m->a.y, m->col_nl2, m->a.nl_h, m->p.nl2.w, m->p.nl2.b, &m->nl2_cs);
    dmx_tanh_forward(rt, m->a.y, m->a.y, N * B * P * m->Cm);
  }
  dmx_instance_sum_forward(rt, m->a.xm, m->a.y, N, B * P * m->Cm);
}

static void trunk_forward(dmx_vision_model *m) {
  dmx_runtime *rt = m->rt;
  int B = m->B;
  dmx_tensor in = trunk_input(m);
  if (m->cfg.model == DMX_VMODEL_LENET) {
    conv_shape *c1 = &m->c1_cs, *c2 = &m->c2_cs, *c3 = &m->c3_cs;
    dmx_conv_forward(rt, m->a.c1, m->col1, in, m->p.c1.w, m->p.c1.b, c1);
    act_fwd(m, m->a.c1, m->a.c1.n);
    if (m->pool_frozen)
      dmx_maxpool2_forward_frozen(rt, m->a.p1, m->a.c1, m->idx1, (int)m->a.p1.n);
    else
      dmx_maxpool2_forward(rt, m->a.p1, m->idx1, m->a.c1, B, c1->OH, c1->OW, c1->OC);
    dmx_conv_forward(rt, m->a.c2, m->col2, m->a.p1, m->p.c2.w, m->p.c2.b, c2);
    act_fwd(m, m->a.c2, m->a.c2.n);
    if (m->pool_frozen)
      dmx_maxpool2_forward_frozen(rt, m->a.p2, m->a.c2, m->idx2, (int)m->a.p2.n);
    else
      dmx_maxpool2_forward(rt, m->a.p2, m->idx2, m->a.c2, B, c2->OH, c2->OW, c2->OC);
    dmx_conv_forward(rt, m->a.c3, m->col3, m->a.p2, m->p.c3.w, m->p.c3.b, c3);
    act_fwd(m, m->a.c3, m->a.c3.n);
    /* (B, OH, OW, 120) is already the flattened (B, F) */
    dmx_linear_forward(rt, m->a.fc, m->a.c3, m->p.fc.w, m->p.fc.b, B, m->F, LENET_FC, 0.0f);
    act_fwd(m, m->a.fc, m->a.fc.n);
  } else {
    int width = m->P * m->Cm;
    for (int k = 0; k < m->n_hidden; k++) {
      dmx_linear_forward(rt, m->a.hid[k], in, m->p.hid[k].w, m->p.hid[k].b, B, width, m->hidden[k], 0.0f);
      act_fwd(m, m->a.hid[k], m->a.hid[k].n);
      in = m->a.hid[k];
      width = m->hidden[k];
    }
  }
}

/* demux (muxed models) and the shared head, then the loss; writes d.logits when train */
static void head_forward(dmx_vision_model *m, bool train) {
  dmx_runtime *rt = m->rt;
  int N = m->N, B = m->B, D = m->D, C = m->classes, R = N * B;
  dmx_tensor h = features(m, false);
  if (m->muxed) {
    for (int i = 0; i < N; i++)
      dmx_linear_forward(rt, sub(m->a.dm, (size_t)i * B * D, (size_t)B * D), h,
                         sub(m->p.demux.w, (size_t)i * D * D, (size_t)D * D),
                         sub(m->p.demux.b, (size_t)i * D, (size_t)D), B, D, D, 0.0f);
    act_fwd(m, m->a.dm, m->a.dm.n);
    h = m->a.dm;
  }
  dmx_linear_forward(rt, m->a.logits, h, m->p.head.w, m->p.head.b, R, D, C, 0.0f);
  if (m->mse) {
    dmx_tanh_forward(rt, m->a.out, m->a.logits, R * C);
    /* sum over instances of the mean over (B, C): each element's weight is 1 / (B C) */
    dmx_mse_pm1_forward_backward(rt, m->losses, m->preds, train ? m->d.out : none(), m->a.out, m->labels, R, C,
                                 1.0f / ((float)m->loss_B * C));
    if (train) dmx_tanh_backward(rt, m->d.logits, m->a.out, m->d.out, R * C);
  } else {
    dmx_softmax_xent_forward_backward(rt, m->losses, m->preds, train ? m->d.logits : none(), m->a.logits, m->labels, R,
                                      C, 1.0f / (float)m->loss_B);
  }
  dmx_reduce_sum(rt, m->loss_sum, m->losses, R);
}

/* ------------------------------------------------------------------ backward */

/* dpre = act'(y) * dy (fresh), the gradient before an in-place activation */
static dmx_tensor pre_grad(dmx_vision_model *m, dmx_tensor y, dmx_tensor dy, bool tanh_always) {
  dmx_tensor d = sub(m->dpre, 0, y.n);
  dmx_fill(m->rt, d, 0.0f);
  if (tanh_always)
    dmx_tanh_backward(m->rt, d, y, dy, (int)y.n);
  else
    act_bwd(m, d, y, dy, y.n);
  return d;
}

static void head_backward(dmx_vision_model *m) {
  dmx_runtime *rt = m->rt;
  int N = m->N, B = m->B, D = m->D, C = m->classes, R = N * B;
  dmx_tensor h = features(m, false), dh = features(m, true);
  dmx_linear_backward(rt, m->muxed ? m->d.dm : dh, m->g.head.w, m->g.head.b, m->d.logits, m->muxed ? m->a.dm : h,
                      m->p.head.w, R, D, C);
  if (!m->muxed) return;
  dmx_tensor dp = pre_grad(m, m->a.dm, m->d.dm, false);
  for (int i = 0; i < N; i++)
    dmx_linear_backward(rt, dh, sub(m->g.demux.w, (size_t)i * D * D, (size_t)D * D),
                        sub(m->g.demux.b, (size_t)i * D, (size_t)D), sub(dp, (size_t)i * B * D, (size_t)B * D), h,
                        sub(m->p.demux.w, (size_t)i * D * D, (size_t)D * D), B, D, D);
}

static void trunk_backward(dmx_vision_model *m) {
  dmx_runtime *rt = m->rt;
  int B = m->B;
  dmx_tensor din = m->muxed && mux_learns(m) ? m->d.xm : none();
  if (m->cfg.model == DMX_VMODEL_LENET) {
    conv_shape *c1 = &m->c1_cs, *c2 = &m->c2_cs, *c3 = &m->c3_cs;
    dmx_tensor dp = pre_grad(m, m->a.fc, m->d.fc, false);
    dmx_linear_backward(rt, m->d.c3, m->g.fc.w, m->g.fc.b, dp, m->a.c3, m->p.fc.w, B, m->F, LENET_FC);
    dp = pre_grad(m, m->a.c3, m->d.c3, false);
    dmx_conv_backward(rt, m->d.p2, m->g.c3.w, m->g.c3.b, m->dcol, dp, m->col3, m->p.c3.w, c3);
    dmx_maxpool2_backward(rt, m->d.c2, m->d.p2, m->idx2, (int)m->a.p2.n);
    dp = pre_grad(m, m->a.c2, m->d.c2, false);
    dmx_conv_backward(rt, m->d.p1, m->g.c2.w, m->g.c2.b, m->dcol, dp, m->col2, m->p.c2.w, c2);
    dmx_maxpool2_backward(rt, m->d.c1, m->d.p1, m->idx1, (int)m->a.p1.n);
    dp = pre_grad(m, m->a.c1, m->d.c1, false);
    dmx_conv_backward(rt, din, m->g.c1.w, m->g.c1.b, m->dcol, dp, m->col1, m->p.c1.w, c1);
  } else {
    for (int k = m->n_hidden - 1; k >= 0; k--) {
      dmx_tensor dp = pre_grad(m, m->a.hid[k], m->d.hid[k], false);
      int width = k ? m->hidden[k - 1] : m->P * m->Cm;
      dmx_linear_backward(rt, k ? m->d.hid[k - 1] : din, m->g.hid[k].w, m->g.hid[k].b, dp,
                          k ? m->a.hid[k - 1] : trunk_input(m), m->p.hid[k].w, B, width, m->hidden[k]);
    }
  }
}

static void mux_backward(dmx_vision_model *m) {
  dmx_runtime *rt = m->rt;
  int N = m->N, B = m->B, P = m->P;
  dmx_vision_muxing mx = m->cfg.muxing;
  if (!m->muxed || !mux_learns(m)) return; /* fixed muxing: nothing before it to train */
  dmx_instance_sum_backward(rt, m->d.y, m->d.xm, N, B * P * m->Cm);
  if (mx == DMX_VMUX_LEARNABLE) {
    dmx_conv_backward(rt, none(), m->g.mux_w, m->g.mux_b, m->dcol, m->d.y, m->col_mux, m->p.mux_w, &m->mux_cs);
  } else if (mx == DMX_VMUX_LEARNABLE_W) {
    dmx_instance_matmul_backward(rt, m->g.mux_w, m->d.y, m->a.x, N, B, P);
  } else {
    dmx_tensor dp = pre_grad(m, m->a.y, m->d.y, true);
    dmx_conv_backward(rt, m->d.nl_h, m->g.nl2.w, m->g.nl2.b, m->dcol, dp, m->col_nl2, m->p.nl2.w, &m->nl2_cs);
    dp = pre_grad(m, m->a.nl_h, m->d.nl_h, true);
    dmx_conv_backward(rt, none(), m->g.nl1.w, m->g.nl1.b, m->dcol, dp, m->col_nl1, m->p.nl1.w, &m->nl1_cs);
  }
}

/* ------------------------------------------------------------------ step, update, read-back */

void dmx_vision_model_step(dmx_vision_model *m, const float *images, const int32_t *labels, bool train) {
  dmx_runtime *rt = m->rt;
  size_t R = (size_t)m->N * m->B;
  dmx_stager_begin(rt, &m->stager);
  dmx_stager_upload(rt, &m->stager, m->a.x, images, R * m->P * sizeof(float));
  dmx_stager_upload(rt, &m->stager, m->labels, labels, R * sizeof(int32_t));
  dmx_stager_end(rt, &m->stager);
  if (train) {
    if (m->grads.n_buffers) dmx_arena_zero(&m->grads);
    dmx_arena_zero(&m->dacts);
  }
  mux_forward(m);
  trunk_forward(m);
  head_forward(m, train);
  if (!train) return;
  head_backward(m);
  trunk_backward(m);
  mux_backward(m);
}

void dmx_vision_model_update(dmx_vision_model *m, float lr, int t, const dmx_train_config *tc) {
  size_t n = m->trainable_floats;
  if (!n) return;
  dmx_tensor p = {m->params.bufs[0], 0, n}, g = {m->grads.bufs[0], 0, n};
  if (m->cfg.optimizer == DMX_VOPT_SGD) {
    dmx_sgd_update(m->rt, p, g, n, lr);
    return;
  }
  if (tc->max_grad_norm > 0) dmx_global_norm(m->rt, m->norm, m->norm_partial, g, n);
  dmx_tensor mm = {m->adam_m.bufs[0], 0, n}, vv = {m->adam_v.bufs[0], 0, n};
  dmx_adamw_update(m->rt, p, g, mm, vv, n, lr, tc->adam_beta1, tc->adam_beta2, tc->adam_eps, tc->weight_decay, none(),
                   t, m->norm, tc->max_grad_norm);
}

float dmx_vision_model_loss(dmx_vision_model *m) {
  float sum = 0;
  dmx_download(m->rt, &sum, m->loss_sum, sizeof sum);
  return m->mse ? sum / ((float)m->B * m->classes) : sum / (float)m->B;
}

void dmx_vision_model_predictions(dmx_vision_model *m, int32_t *out) {
  dmx_download(m->rt, out, m->preds, (size_t)m->N * m->B * sizeof(int32_t));
}

const dmx_arena *dmx_vision_model_adam_state(const dmx_vision_model *m, int k) { return k ? &m->adam_v : &m->adam_m; }

void dmx_vision_model_set_loss_batch(dmx_vision_model *m, int global_B) { m->loss_B = global_B > 0 ? global_B : m->B; }

dmx_tensor dmx_vision_model_grads(const dmx_vision_model *m) {
  return m->trainable_floats ? (dmx_tensor){m->grads.bufs[0], 0, m->trainable_floats} : none();
}

const dmx_arena *dmx_vision_model_param_arena(const dmx_vision_model *m) { return &m->params; }
