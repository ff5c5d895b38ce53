/* layers/common_ops.h, layers/layernorm.h and layers/linear.h against naive double-precision C
 * references on odd shapes, at non-zero offsets with guard values around every tensor (nothing
 * outside a tensor may change). Every backward is checked three ways: against the analytic double
 * reference, against central finite differences of the scalar loss sum(out * w) computed with the
 * double forward, and for accumulation (+=) into a gradient buffer pre-filled with random values. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/runtime/runtime.h"
#include "layers/common_ops.h"
#include "layers/layernorm.h"
#include "layers/linear.h"
#include "tests/harness.h"

static dmx_runtime *rt;

/* ---------------------------------------------------------------- helpers */

static double *to_d(const float *v, size_t n) {
  double *d = malloc((n ? n : 1) * sizeof(double));
  for (size_t i = 0; i < n; i++) d[i] = v[i];
  return d;
}

/* Every device tensor sits at element offset PRE of its own buffer with POST guard values after. */
#define PRE 3
#define POST 37
#define GUARD 1234.5f

static dmx_tensor up(const void *h, size_t n) {
  size_t tot = PRE + n + POST;
  float *b = malloc(tot * sizeof(float));
  for (size_t i = 0; i < tot; i++) b[i] = GUARD;
  memcpy(b + PRE, h, n * sizeof(float));
  dmx_tensor whole = dmx_buffer_create(rt, tot);
  dmx_upload(rt, whole, b, tot * sizeof(float));
  free(b);
  return (dmx_tensor){whole.buf, PRE, n};
}
/* Downloads t into h and checks that no guard value changed. */
static void down(float *h, dmx_tensor t, const char *what) {
  size_t tot = PRE + t.n + POST;
  float *b = malloc(tot * sizeof(float));
  dmx_download(rt, b, (dmx_tensor){t.buf, 0, tot}, tot * sizeof(float));
  int clobbered = 0;
  for (size_t i = 0; i < tot; i++)
    if (i < PRE || i >= PRE + t.n) clobbered += b[i] != GUARD;
  CHECKF(clobbered == 0, "%s: %d guard values around the tensor changed", what, clobbered);
  memcpy(h, b + PRE, t.n * sizeof(float));
  free(b);
}
static float *down_new(dmx_tensor t, const char *what) {
  float *h = malloc((t.n ? t.n : 1) * sizeof(float));
  down(h, t, what);
  return h;
}
static void rel(dmx_tensor t) { dmx_buffer_release(t); }

/* got (a device gradient accumulated onto pre) minus pre, against want. */
static bool close_acc(const char *what, const float *got, const float *pre, const double *want, size_t n, double rtol,
                      double atol) {
  double *w = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) w[i] = want[i] + pre[i];
  bool ok = th_close(what, got, w, n, rtol, atol);
  free(w);
  return ok;
}

/* Finite differences: loss(ctx) is the double reference of sum(out * w); v is one of its inputs,
 * perturbed in place. Checks the device gradient (got - pre) at up to ~200 spread indices. */
typedef double (*loss_fn)(const void *ctx);
static void check_fd(const char *what, loss_fn loss, const void *ctx, double *v, size_t n, const float *got,
                     const float *pre, double rtol, double atol) {
  size_t step = n > 200 ? n / 200 : 1;
  int bad = 0;
  double worst = 0;
  size_t worst_i = 0;
  for (size_t i = 0; i < n; i += step) {
    double s = v[i], h = 1e-5 * fmax(1.0, fabs(s));
    v[i] = s + h;
    double lp = loss(ctx);
    v[i] = s - h;
    double lm = loss(ctx);
    v[i] = s;
    double fd = (lp - lm) / (2 * h), g = (double)got[i] - (double)(pre ? pre[i] : 0.0f);
    double e = fabs(g - fd) / (atol + rtol * fabs(fd));
    if (e > worst) worst = e, worst_i = i;
    if (!(e <= 1.0)) bad++;
  }
  CHECKF(bad == 0, "%s: %d gradients disagree with finite differences (worst at %zu: %.3g of the tolerance)", what, bad,
         worst_i, worst);
}

static double dot(const double *a, const double *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* ---------------------------------------------------------------- bias */

typedef struct {
  int R, C;
  double *y0, *b, *w;
} bias_ctx;
static double bias_loss(const void *p) {
  const bias_ctx *c = p;
  double s = 0;
  for (int r = 0; r < c->R; r++)
    for (int j = 0; j < c->C; j++) s += c->w[r * c->C + j] * (c->y0[r * c->C + j] + c->b[j]);
  return s;
}

static void test_bias(int R, int C, double atol_sum) {
  size_t n = (size_t)R * C;
  float *y = th_rand_vec(n, 1), *b = th_rand_vec(C, 1), *w = th_rand_vec(n, 1), *pre = th_rand_vec(C, 1);
  dmx_tensor ty = up(y, n), tb = up(b, C), tw = up(w, n), tdb = up(pre, C);
  dmx_bias_add_forward(rt, ty, tb, R, C);
  dmx_bias_add_backward(rt, tdb, tw, R, C);
  float *gy = down_new(ty, "bias forward y"), *gdb = down_new(tdb, "bias backward db");
  double *wy = malloc(n * sizeof(double)), *wdb = calloc(C, sizeof(double));
  for (int r = 0; r < R; r++)
    for (int j = 0; j < C; j++) {
      wy[(size_t)r * C + j] = (double)y[(size_t)r * C + j] + b[j];
      wdb[j] += w[(size_t)r * C + j];
    }
  CHECK(th_close("bias forward", gy, wy, n, 1e-6, 1e-6));
  CHECK(close_acc("bias backward (accumulated)", gdb, pre, wdb, C, 1e-5, atol_sum));
  if (n < 100000) {
    bias_ctx c = {R, C, to_d(y, n), to_d(b, C), to_d(w, n)};
    check_fd("bias backward vs FD", bias_loss, &c, c.b, C, gdb, pre, 1e-4, 1e-4);
    free(c.y0), free(c.b), free(c.w);
  }
  /* deterministic: the same reduction from zero twice gives the same bits */
  dmx_fill(rt, tdb, 0.0f);
  dmx_bias_add_backward(rt, tdb, tw, R, C);
  float *a1 = down_new(tdb, "db run 1");
  dmx_fill(rt, tdb, 0.0f);
  dmx_bias_add_backward(rt, tdb, tw, R, C);
  float *a2 = down_new(tdb, "db run 2");
  CHECK(memcmp(a1, a2, C * sizeof(float)) == 0);
  free(y), free(b), free(w), free(pre), free(gy), free(gdb), free(wy), free(wdb), free(a1), free(a2);
  rel(ty), rel(tb), rel(tw), rel(tdb);
}

/* ---------------------------------------------------------------- fill */

static void test_fill(void) {
  static const size_t lens[] = {1, 3, 1000, 100003};
  static const float values[] = {0.0f, -2.5f, 7.0f};
  for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
    for (size_t vi = 0; vi < sizeof values / sizeof *values; vi++) {
      size_t n = lens[li], off = 5 + li, total = off + n + 7;
      float *h = th_rand_vec(total, 1);
      dmx_tensor all = up(h, total), t = {all.buf, all.off + off, n};
      dmx_fill(rt, t, values[vi]);
      float *got = down_new(all, "fill");
      int bad = 0;
      for (size_t i = 0; i < total; i++) bad += got[i] != (i >= off && i < off + n ? values[vi] : h[i]);
      CHECKF(bad == 0, "fill n=%zu value %g: %d wrong", n, values[vi], bad);
      free(h), free(got);
      rel(all);
    }
}

/* ---------------------------------------------------------------- gelu, tanh */

static double gelu_d(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

typedef struct {
  size_t n;
  double *x, *w;
  int which; /* 0 gelu, 1 tanh */
} act_ctx;
static double act_loss(const void *p) {
  const act_ctx *c = p;
  double s = 0;
  for (size_t i = 0; i < c->n; i++) s += c->w[i] * (c->which ? tanh(c->x[i]) : gelu_d(c->x[i]));
  return s;
}

static void test_activation(int which, int n) {
  const char *name = which ? "tanh" : "gelu";
  char what[64];
  float *x = th_rand_vec(n, 6), *w = th_rand_vec(n, 1), *pre = th_rand_vec(n, 1);
  x[0] = 0.0f, x[1] = -12.0f, x[2] = 12.0f; /* the saturating tails and zero */
  dmx_tensor tx = up(x, n), tout = up(w, n), tw = up(w, n), tdx = up(pre, n);
  if (which)
    dmx_tanh_forward(rt, tout, tx, n);
  else
    dmx_gelu_forward(rt, tout, tx, n);
  float *got = down_new(tout, name);
  double *want = malloc(n * sizeof(double)), *wdx = malloc(n * sizeof(double));
  for (int i = 0; i < n; i++) {
    double v = x[i];
    want[i] = which ? tanh(v) : gelu_d(v);
    double d = which ? 1.0 - tanh(v) * tanh(v)
                     : 0.5 * (1.0 + erf(v / sqrt(2.0))) + v * exp(-0.5 * v * v) / sqrt(2.0 * 3.14159265358979323846);
    wdx[i] = d * w[i];
  }
  snprintf(what, sizeof what, "%s forward", name);
  CHECK(th_close(what, got, want, n, 1e-5, 1e-6));
  /* tanh's backward takes the forward output; gelu's takes the input */
  if (which)
    dmx_tanh_backward(rt, tdx, tout, tw, n);
  else
    dmx_gelu_backward(rt, tdx, tx, tw, n);
  float *gdx = down_new(tdx, "dx");
  snprintf(what, sizeof what, "%s backward (accumulated)", name);
  CHECK(close_acc(what, gdx, pre, wdx, n, 1e-5, 1e-5));
  act_ctx c = {(size_t)n, to_d(x, n), to_d(w, n), which};
  snprintf(what, sizeof what, "%s backward vs FD", name);
  check_fd(what, act_loss, &c, c.x, n, gdx, pre, 1e-4, 1e-5);
  /* in place: out aliases x */
  if (which)
    dmx_tanh_forward(rt, tx, tx, n);
  else
    dmx_gelu_forward(rt, tx, tx, n);
  float *inplace = down_new(tx, "in place");
  CHECK(memcmp(inplace, got, n * sizeof(float)) == 0);
  free(c.x), free(c.w), free(x), free(w), free(pre), free(got), free(want), free(wdx), free(gdx), free(inplace);
  rel(tx), rel(tout), rel(tw), rel(tdx);
}

/* ---------------------------------------------------------------- dropout */

static void test_dropout(int n) {
  th_begin("dropout: Philox known answer, host and device masks agree bit for bit, rates, streams");
  /* Random123's known-answer vector for philox4x32-10 with zero key and counter; elements 0..3
   * read its four words, element 4 the next counter */
  static const uint32_t kat[4] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
  for (uint32_t i = 0; i < 4; i++) CHECK(dmx_dropout_uniform_host(0, 0, i) == (float)(kat[i] >> 8) / 16777216.0f);
  CHECK(dmx_dropout_uniform_host(0, 0, 4) != dmx_dropout_uniform_host(0, 0, 0));
  const float p = 0.1f, scale = 1.0f / (1.0f - p);
  float *ones = malloc(n * sizeof(float));
  for (int i = 0; i < n; i++) ones[i] = 1.0f;
  dmx_tensor tx = up(ones, n), tout = up(ones, n);
  float *m[3];
  uint32_t seeds[3] = {1234u, 1234u, 0xDEADBEEFu}, streams[3] = {7u, 8u, 7u};
  for (int k = 0; k < 3; k++) {
    dmx_dropout_forward(rt, tout, tx, n, p, seeds[k], streams[k]);
    m[k] = down_new(tout, "dropout mask");
    int mismatch = 0, kept = 0, badval = 0;
    double usum = 0;
    for (int i = 0; i < n; i++) {
      float u = dmx_dropout_uniform_host(seeds[k], streams[k], (uint32_t)i);
      usum += u;
      bool keep = u >= p;
      mismatch += keep != (m[k][i] != 0.0f);
      kept += keep;
      badval += m[k][i] != 0.0f && m[k][i] != scale;
      if (!(u >= 0.0f && u < 1.0f)) badval++;
    }
    CHECKF(mismatch == 0, "seed %u stream %u: %d device mask elements differ from the host", seeds[k], streams[k],
           mismatch);
    CHECKF(badval == 0, "%d kept values are not 1/(1-p) (or u outside [0,1))", badval);
    double sigma = sqrt(n * p * (1 - p));
    CHECKF(fabs(kept - n * (1 - p)) <= 3 * sigma, "kept %d of %d, expected %.0f +- %.0f", kept, n, n * (1 - p),
           3 * sigma);
    CHECKF(fabs(usum / n - 0.5) <= 3 * sqrt(1.0 / 12 / n), "mean of u %.5f", usum / n);
  }
  /* independent masks differ at rate 2p(1-p); the same (seed, stream) reproduces exactly */
  for (int k = 1; k < 3; k++) {
    int diff = 0;
    for (int i = 0; i < n; i++) diff += (m[0][i] != 0) != (m[k][i] != 0);
    double q = 2 * p * (1 - p), sigma = sqrt(n * q * (1 - q));
    CHECKF(fabs(diff - n * q) <= 3 * sigma, "%s: %d elements differ, expected %.0f +- %.0f",
           k == 1 ? "next stream" : "other seed", diff, n * q, 3 * sigma);
  }
  dmx_dropout_forward(rt, tout, tx, n, p, seeds[0], streams[0]);
  float *again = down_new(tout, "again");
  CHECK(memcmp(again, m[0], n * sizeof(float)) == 0);
  free(again);
  th_end();

  th_begin("dropout forward/backward values, in place, accumulation, p = 0 identity");
  {
    const int n2 = 1001;
    const float p2 = 0.3f, s2 = 1.0f / (1.0f - p2);
    float *x = th_rand_vec(n2, 2), *w = th_rand_vec(n2, 1), *pre = th_rand_vec(n2, 1);
    dmx_tensor ax = up(x, n2), aout = up(w, n2), aw = up(w, n2), adx = up(pre, n2);
    dmx_dropout_forward(rt, aout, ax, n2, p2, 42u, 3u);
    dmx_dropout_backward(rt, adx, aw, n2, p2, 42u, 3u);
    float *got = down_new(aout, "out"), *gdx = down_new(adx, "dx");
    double *want = malloc(n2 * sizeof(double)), *wdx = malloc(n2 * sizeof(double));
    for (int i = 0; i < n2; i++) {
      double keep = dmx_dropout_uniform_host(42u, 3u, (uint32_t)i) >= p2 ? (double)s2 : 0.0;
      want[i] = x[i] * keep;
      wdx[i] = w[i] * keep;
    }
    CHECK(th_close("dropout forward", got, want, n2, 1e-6, 0));
    CHECK(close_acc("dropout backward (accumulated)", gdx, pre, wdx, n2, 1e-6, 1e-6));
    dmx_dropout_forward(rt, ax, ax, n2, p2, 42u, 3u); /* in place */
    float *inplace = down_new(ax, "in place");
    CHECK(memcmp(inplace, got, n2 * sizeof(float)) == 0);
    /* p = 0: forward copies, backward adds dout */
    dmx_upload(rt, ax, x, n2 * sizeof(float));
    dmx_dropout_forward(rt, aout, ax, n2, 0.0f, 42u, 3u);
    float *id = down_new(aout, "p=0");
    CHECK(memcmp(id, x, n2 * sizeof(float)) == 0);
    dmx_upload(rt, adx, pre, n2 * sizeof(float));
    dmx_dropout_backward(rt, adx, aw, n2, 0.0f, 42u, 3u);
    float *gid = down_new(adx, "p=0 dx");
    int bad = 0;
    for (int i = 0; i < n2; i++) bad += gid[i] != pre[i] + w[i];
    CHECKF(bad == 0, "p = 0 backward: %d elements are not dx + dout", bad);
    free(x), free(w), free(pre), free(got), free(gdx), free(want), free(wdx), free(inplace), free(id), free(gid);
    rel(ax), rel(aout), rel(aw), rel(adx);
  }
  th_end();
  for (int k = 0; k < 3; k++) free(m[k]);
  free(ones);
  rel(tx), rel(tout);
}

/* ---------------------------------------------------------------- add, dmx_axpy, copy */

static void test_add_axpy_copy(void) {
  th_begin("add, axpy and copy: values, aliasing, odd length");
  const int n = 1037;
  float *a = th_rand_vec(n, 3), *b = th_rand_vec(n, 3), *junk = th_rand_vec(n, 1);
  dmx_tensor ta = up(a, n), tb = up(b, n), tout = up(junk, n);
  double *want = malloc(n * sizeof(double));
  dmx_add_forward(rt, tout, ta, tb, n);
  float *got = down_new(tout, "add");
  for (int i = 0; i < n; i++) want[i] = (double)a[i] + b[i];
  CHECK(th_close("add", got, want, n, 1e-6, 0));
  dmx_add_forward(rt, ta, ta, tb, n); /* out aliases a */
  down(got, ta, "add in place");
  CHECK(th_close("add in place", got, want, n, 1e-6, 0));
  dmx_upload(rt, ta, a, n * sizeof(float));
  dmx_axpy(rt, ta, tb, -0.75f, n);
  down(got, ta, "axpy");
  for (int i = 0; i < n; i++) want[i] = (double)a[i] - 0.75 * b[i];
  CHECK(th_close("axpy", got, want, n, 1e-6, 1e-7));
  dmx_copy_forward(rt, tout, tb, n);
  down(got, tout, "copy");
  CHECK(memcmp(got, b, n * sizeof(float)) == 0);
  free(a), free(b), free(junk), free(want), free(got);
  rel(ta), rel(tb), rel(tout);
  th_end();
}

/* ---------------------------------------------------------------- gather */

typedef struct {
  int R, C;
  const int *idx;
  double *x, *w;
} gather_ctx;
static double gather_loss(const void *p) {
  const gather_ctx *c = p;
  double s = 0;
  for (int r = 0; r < c->R; r++)
    for (int j = 0; j < c->C; j++) s += c->w[r * c->C + j] * c->x[c->idx[r] * c->C + j];
  return s;
}

static void test_gather(void) {
  th_begin("gather_rows forward/backward: int32 indices, distinct rows, accumulation, FD");
  const int R = 7, C = 37, SR = 11;
  const int idx[7] = {9, 0, 4, 10, 2, 7, 5};
  float *x = th_rand_vec((size_t)SR * C, 1), *w = th_rand_vec((size_t)R * C, 1), *pre = th_rand_vec((size_t)SR * C, 1);
  float *junk = th_rand_vec((size_t)R * C, 1);
  dmx_tensor tx = up(x, SR * C), tidx = up(idx, R), tout = up(junk, R * C), tw = up(w, R * C), tdx = up(pre, SR * C);
  dmx_gather_rows_forward(rt, tout, tx, tidx, R, C);
  dmx_gather_rows_backward(rt, tdx, tw, tidx, R, C);
  float *got = down_new(tout, "gather out"), *gdx = down_new(tdx, "gather dx");
  double *want = malloc(R * C * sizeof(double)), *wdx = calloc(SR * C, sizeof(double));
  for (int r = 0; r < R; r++)
    for (int j = 0; j < C; j++) {
      want[r * C + j] = x[idx[r] * C + j];
      wdx[idx[r] * C + j] += w[r * C + j];
    }
  CHECK(th_close("gather forward", got, want, R * C, 0, 0));
  CHECK(close_acc("gather backward (accumulated, untouched rows kept)", gdx, pre, wdx, SR * C, 1e-6, 1e-7));
  gather_ctx c = {R, C, idx, to_d(x, SR * C), to_d(w, R * C)};
  check_fd("gather backward vs FD", gather_loss, &c, c.x, SR * C, gdx, pre, 1e-4, 1e-5);
  free(c.x), free(c.w), free(x), free(w), free(pre), free(junk), free(got), free(gdx), free(want), free(wdx);
  rel(tx), rel(tidx), rel(tout), rel(tw), rel(tdx);
  th_end();
}

/* ---------------------------------------------------------------- layernorm */

typedef struct {
  int R, C;
  double eps;
  double *x, *g, *b, *w;
} ln_ctx;
/* out, mean, rstd may be NULL */
static void ln_ref(const ln_ctx *c, double *out, double *mean, double *rstd) {
  for (int r = 0; r < c->R; r++) {
    const double *xr = c->x + (size_t)r * c->C;
    double m = 0, v = 0;
    for (int j = 0; j < c->C; j++) m += xr[j];
    m /= c->C;
    for (int j = 0; j < c->C; j++) v += (xr[j] - m) * (xr[j] - m);
    double rs = 1.0 / sqrt(v / c->C + c->eps);
    if (mean) mean[r] = m;
    if (rstd) rstd[r] = rs;
    if (out)
      for (int j = 0; j < c->C; j++) out[(size_t)r * c->C + j] = (xr[j] - m) * rs * c->g[j] + c->b[j];
  }
}
static double ln_loss(const void *p) {
  const ln_ctx *c = p;
  size_t n = (size_t)c->R * c->C;
  double *o = malloc(n * sizeof(double));
  ln_ref(c, o, NULL, NULL);
  double s = dot(o, c->w, n);
  free(o);
  return s;
}

static void test_layernorm(int R, int C, float xscale, float xshift, bool fd) {
  size_t n = (size_t)R * C;
  float *x = th_rand_vec(n, xscale), *g = th_rand_vec(C, 1), *b = th_rand_vec(C, 1), *w = th_rand_vec(n, 1);
  for (size_t i = 0; i < n; i++) x[i] += xshift;
  float *pdx = th_rand_vec(n, 1), *pdg = th_rand_vec(C, 1), *pdb = th_rand_vec(C, 1), *junk = th_rand_vec(n, 1);
  const float eps = 1e-5f;
  dmx_tensor tx = up(x, n), tg = up(g, C), tb = up(b, C), tw = up(w, n), tout = up(junk, n);
  dmx_tensor tm = up(junk, R), trs = up(junk, R), tdx = up(pdx, n), tdg = up(pdg, C), tdb = up(pdb, C);
  dmx_layernorm_forward(rt, tout, tm, trs, tx, tg, tb, R, C, eps);
  dmx_layernorm_backward(rt, tdx, tdg, tdb, tw, tx, tm, trs, tg, R, C);
  float *gout = down_new(tout, "ln out"), *gm = down_new(tm, "ln mean"), *grs = down_new(trs, "ln rstd");
  float *gdx = down_new(tdx, "ln dx"), *gdg = down_new(tdg, "ln dg"), *gdb = down_new(tdb, "ln db");

  ln_ctx c = {R, C, eps, to_d(x, n), to_d(g, C), to_d(b, C), to_d(w, n)};
  double *o = malloc(n * sizeof(double)), *m = malloc(R * sizeof(double)), *rs = malloc(R * sizeof(double));
  ln_ref(&c, o, m, rs);
  /* analytic backward in double */
  double *wdx = calloc(n, sizeof(double)), *wdg = calloc(C, sizeof(double)), *wdb = calloc(C, sizeof(double));
  for (int r = 0; r < R; r++) {
    double s1 = 0, s2 = 0;
    for (int j = 0; j < C; j++) {
      size_t i = (size_t)r * C + j;
      double xh = (c.x[i] - m[r]) * rs[r], dn = c.w[i] * c.g[j];
      s1 += dn, s2 += dn * xh;
      wdg[j] += c.w[i] * xh, wdb[j] += c.w[i];
    }
    for (int j = 0; j < C; j++) {
      size_t i = (size_t)r * C + j;
      double xh = (c.x[i] - m[r]) * rs[r], dn = c.w[i] * c.g[j];
      wdx[i] = rs[r] * (dn - s1 / C - xh * s2 / C);
    }
  }
  /* A float mean is off by up to ~ulp(|mean|), which moves every xhat by ulp(|mean|) * rstd: the
   * conditioning of the problem itself (PyTorch's fp32 LayerNorm has it too), so it widens the
   * absolute tolerances when the mean is large against the spread (the x ~ 1 +- 1e-3 case). */
  double cond = 0;
  for (int r = 0; r < R; r++) cond = fmax(cond, 8 * 6e-8 * fabs(m[r]) * rs[r]);
  char what[96];
  snprintf(what, sizeof what, "layernorm R=%d C=%d forward", R, C);
  CHECK(th_close(what, gout, o, n, 1e-4, 2e-5 + cond));
  CHECK(th_close("layernorm mean", gm, m, R, 1e-5, 1e-5 * xscale));
  CHECK(th_close("layernorm rstd", grs, rs, R, 1e-4, 0));
  /* dx scales with rstd; the column sums with R */
  double dx_atol = 2e-5 * rs[0] * sqrt(C) + cond * rs[0], sum_atol = 2e-6 * R + 1e-5 + cond * R;
  snprintf(what, sizeof what, "layernorm R=%d C=%d dx (accumulated)", R, C);
  CHECK(close_acc(what, gdx, pdx, wdx, n, 1e-3, dx_atol));
  CHECK(close_acc("layernorm dg (accumulated)", gdg, pdg, wdg, C, 1e-4, sum_atol));
  CHECK(close_acc("layernorm db (accumulated)", gdb, pdb, wdb, C, 1e-4, sum_atol));
  if (fd) {
    check_fd("layernorm dx vs FD", ln_loss, &c, c.x, n, gdx, pdx, 2e-3, dx_atol);
    check_fd("layernorm dg vs FD", ln_loss, &c, c.g, C, gdg, pdg, 1e-3, 1e-4);
    check_fd("layernorm db vs FD", ln_loss, &c, c.b, C, gdb, pdb, 1e-3, 1e-4);
  }
  /* deterministic: a second backward onto the same pre-filled buffers gives the same bits */
  dmx_upload(rt, tdx, pdx, n * sizeof(float));
  dmx_upload(rt, tdg, pdg, C * sizeof(float));
  dmx_upload(rt, tdb, pdb, C * sizeof(float));
  dmx_layernorm_backward(rt, tdx, tdg, tdb, tw, tx, tm, trs, tg, R, C);
  float *a1 = down_new(tdx, "dx2"), *a2 = down_new(tdg, "dg2"), *a3 = down_new(tdb, "db2");
  CHECK(!memcmp(a1, gdx, n * sizeof(float)) && !memcmp(a2, gdg, C * sizeof(float)) &&
        !memcmp(a3, gdb, C * sizeof(float)));
  free(a1), free(a2), free(a3);
  free(c.x), free(c.g), free(c.b), free(c.w), free(o), free(m), free(rs), free(wdx), free(wdg), free(wdb);
  free(x), free(g), free(b), free(w), free(pdx), free(pdg), free(pdb), free(junk);
  free(gout), free(gm), free(grs), free(gdx), free(gdg), free(gdb);
  rel(tx), rel(tg), rel(tb), rel(tw), rel(tout), rel(tm), rel(trs), rel(tdx), rel(tdg), rel(tdb);
}

/* ---------------------------------------------------------------- linear */

typedef struct {
  int R, C, OC;
  bool has_b;
  double *x, *W, *b, *w;
} lin_ctx;
static void lin_ref(const lin_ctx *c, double *out) {
  for (int r = 0; r < c->R; r++)
    for (int o = 0; o < c->OC; o++) {
      double s = c->has_b ? c->b[o] : 0.0;
      for (int j = 0; j < c->C; j++) s += c->x[(size_t)r * c->C + j] * c->W[(size_t)o * c->C + j];
      out[(size_t)r * c->OC + o] = s;
    }
}
static double lin_loss(const void *p) {
  const lin_ctx *c = p;
  size_t n = (size_t)c->R * c->OC;
  double *o = malloc(n * sizeof(double));
  lin_ref(c, o);
  double s = dot(o, c->w, n);
  free(o);
  return s;
}

static void test_linear(int R, int C, int OC, bool has_b, bool with_dx) {
  size_t nx = (size_t)R * C, nW = (size_t)OC * C, no = (size_t)R * OC;
  float *x = th_rand_vec(nx, 1), *W = th_rand_vec(nW, 1), *b = th_rand_vec(OC, 1), *w = th_rand_vec(no, 1);
  float *prev = th_rand_vec(no, 1), *pdx = th_rand_vec(nx, 1), *pdW = th_rand_vec(nW, 1), *pdb = th_rand_vec(OC, 1);
  dmx_tensor tx = up(x, nx), tW = up(W, nW), tb = up(b, OC), tw = up(w, no), tout = up(prev, no);
  dmx_tensor tdx = up(pdx, nx), tdW = up(pdW, nW), tdb = up(pdb, OC);
  dmx_tensor nob = {0}, bias = has_b ? tb : nob;
  lin_ctx c = {R, C, OC, has_b, to_d(x, nx), to_d(W, nW), to_d(b, OC), to_d(w, no)};
  double *o = malloc(no * sizeof(double)), *want = malloc(no * sizeof(double));
  lin_ref(&c, o);
  char what[128];
  double atol = 1e-5 * C;
  /* beta = 1 accumulates onto the previous contents, beta = 0 ignores them */
  dmx_linear_forward(rt, tout, tx, tW, bias, R, C, OC, 1.0f);
  float *got = down_new(tout, "linear out");
  for (size_t i = 0; i < no; i++) want[i] = o[i] + prev[i];
  snprintf(what, sizeof what, "linear R=%d C=%d OC=%d bias=%d forward beta=1", R, C, OC, has_b);
  CHECK(th_close(what, got, want, no, 1e-5, atol));
  dmx_linear_forward(rt, tout, tx, tW, bias, R, C, OC, 0.0f);
  down(got, tout, "linear out");
  snprintf(what, sizeof what, "linear R=%d C=%d OC=%d bias=%d forward beta=0", R, C, OC, has_b);
  CHECK(th_close(what, got, o, no, 1e-5, atol));

  dmx_linear_backward(rt, with_dx ? tdx : nob, tdW, has_b ? tdb : nob, tw, tx, tW, R, C, OC);
  float *gdx = down_new(tdx, "linear dx"), *gdW = down_new(tdW, "linear dW"), *gdb = down_new(tdb, "linear db");
  double *wdx = calloc(nx, sizeof(double)), *wdW = calloc(nW, sizeof(double)), *wdb = calloc(OC, sizeof(double));
  for (int r = 0; r < R; r++)
    for (int q = 0; q < OC; q++) {
      double d = c.w[(size_t)r * OC + q];
      wdb[q] += d;
      for (int j = 0; j < C; j++) {
        wdx[(size_t)r * C + j] += d * c.W[(size_t)q * C + j];
        wdW[(size_t)q * C + j] += d * c.x[(size_t)r * C + j];
      }
    }
  if (with_dx) {
    CHECK(close_acc("linear dx (accumulated)", gdx, pdx, wdx, nx, 1e-5, 1e-5 * OC));
    check_fd("linear dx vs FD", lin_loss, &c, c.x, nx, gdx, pdx, 1e-4, 1e-5 * OC);
  } else {
    CHECKF(!memcmp(gdx, pdx, nx * sizeof(float)), "dx changed although dx.buf was NULL");
  }
  CHECK(close_acc("linear dW (accumulated)", gdW, pdW, wdW, nW, 1e-5, 1e-5 * R));
  check_fd("linear dW vs FD", lin_loss, &c, c.W, nW, gdW, pdW, 1e-4, 1e-5 * R);
  if (has_b) {
    CHECK(close_acc("linear db (accumulated)", gdb, pdb, wdb, OC, 1e-5, 1e-5 * R));
    check_fd("linear db vs FD", lin_loss, &c, c.b, OC, gdb, pdb, 1e-4, 1e-5 * R);
  } else {
    CHECKF(!memcmp(gdb, pdb, OC * sizeof(float)), "db changed although db.buf was NULL");
  }
  free(c.x), free(c.W), free(c.b), free(c.w), free(o), free(want), free(got), free(gdx), free(gdW), free(gdb);
  free(wdx), free(wdW), free(wdb), free(x), free(W), free(b), free(w), free(prev), free(pdx), free(pdW), free(pdb);
  rel(tx), rel(tW), rel(tb), rel(tw), rel(tout), rel(tdx), rel(tdW), rel(tdb);
}

int main(void) {
  th_seed(88172645463325252ULL);
  rt = dmx_runtime_create(NULL, false, stdout);
  /* Oclgrind (the oclgrind label) runs every work-item through its checks: the long cases shrink by
   * ten there, still far more rows than a work-group has lanes, which is what they test */
  const int big = dmx_device_is_simulator(&rt->info) ? 10 : 1;

  /* every reduction layout: work-group trees (GPUs), a loop per work-item (CPUs), and host loops in
   * native kernels (CPU devices that run them, the default there) */
  bool native_default = rt->native_loops;
  static const char *const layouts[3] = {"work-group trees", "column loops", "host loops in native kernels"};
  for (int layout = 0; layout < 3; layout++) {
    if (layout == 2 && !dmx_native_available(rt)) continue;
    rt->serial_reductions = layout >= 1;
    rt->native_loops = layout == 2;
    char name[200];
    snprintf(name, sizeof name, "bias add forward/backward, %s: odd shapes, many rows, accumulation, FD, determinism",
             layouts[layout]);
    th_begin(name);
    test_bias(7, 37, 1e-5);
    test_bias(1, 1, 1e-6);
    test_bias(300, 1001, 1e-4);
    test_bias(100003 / big, 5, 2e-3); /* the column sums over ~100k rows */
    test_bias(3, 2500, 1e-5);   /* wider than the host loop's 1024-column block */
    th_end();
    snprintf(name, sizeof name, "fill, %s: values, odd offsets and lengths, neighbours untouched", layouts[layout]);
    th_begin(name);
    test_fill();
    th_end();
  }
  rt->native_loops = native_default;

  th_begin("gelu (erf to 1.5e-7) forward/backward: accumulation, FD, in place");
  test_activation(0, 1001);
  th_end();
  th_begin("tanh forward/backward: accumulation, FD, in place");
  test_activation(1, 1001);
  th_end();

  test_dropout(100003 / big);
  test_add_axpy_copy();
  test_gather();

  for (int layout = 0; layout < 2; layout++) {
    rt->serial_reductions = layout == 1;
    th_begin(layout ? "layernorm forward/backward, loops per row/column: odd shapes, FD, accumulation, determinism"
                    : "layernorm forward/backward, work-group trees: odd shapes, FD, accumulation, determinism");
    test_layernorm(7, 37, 1, 0, true);
    test_layernorm(1, 1, 1, 0, false);      /* a single column: out = b, dx = 0 */
    test_layernorm(5, 1024, 2, 3, true);    /* rows wider than the work-group, non-zero mean */
    test_layernorm(3, 300, 1e-3f, 1, true); /* variance comparable to eps */
    test_layernorm(9, 128, 1, 0, false);    /* whole float4s only */
    th_end();
    th_begin(layout ? "layernorm over 20000 rows (2000 on a simulator), column loops for dg/db"
                    : "layernorm over 20000 rows (2000 on a simulator), work-group column reductions for dg/db");
    test_layernorm(20000 / big, 67, 1, 0, false);
    th_end();
  }

  th_begin("linear forward (beta 0/1, with and without bias) and backward (dx, dW, db, NULL skips)");
  test_linear(7, 37, 13, true, true);
  test_linear(5, 64, 3, false, false);
  test_linear(33, 17, 65, true, false);
  th_end();

  dmx_runtime_destroy(rt);
  return th_finish();
}
