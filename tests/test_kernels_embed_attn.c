/* Embedding passes and the attention core against naive double-precision references on odd
 * shapes, with every tensor at an odd offset inside one shared buffer. Backward passes are checked
 * against analytic double references, those references against central finite differences of the
 * scalar loss sum(out * w), and every gradient must ACCUMULATE into pre-filled buffers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers/attention.h"
#include "layers/common_ops.h"
#include "layers/embedding.h"
#include "tests/harness.h"

/* ---------------------------------------------------------------- a pool of odd-offset tensors */

static dmx_runtime *rt;
static dmx_tensor pool;
static size_t pool_cur;
static bool pool_aligned; /* tensors at multiples of 4 floats, as the arenas place them */
static dmx_tensor take(size_t n) {
  pool_cur += 3; /* a gap, so tensors start at odd offsets and overruns land in checked padding */
  if (pool_aligned) pool_cur = (pool_cur + 3) / 4 * 4;
  if (pool_cur + n > pool.n) dmx_die("test pool too small");
  dmx_tensor t = {pool.buf, pool_cur, n};
  pool_cur += n;
  return t;
}
static void pool_reset(void) { pool_cur = 2; }

static dmx_tensor upf(const float *h, size_t n) {
  dmx_tensor t = take(n);
  dmx_upload(rt, t, h, n * sizeof(float));
  return t;
}
static dmx_tensor upi(const int *h, size_t n) {
  dmx_tensor t = take(n);
  dmx_upload(rt, t, h, n * sizeof(int));
  return t;
}
static float *down(dmx_tensor t, size_t n) {
  float *h = malloc(n * sizeof(float));
  dmx_download(rt, h, t, n * sizeof(float));
  return h;
}
static double *dvec(size_t n) { return calloc(n, sizeof(double)); }

/* ---------------------------------------------------------------- embedding references */

/* out (R, d) = word[ids] + pos[pos_ids] + type */
static void ref_embed(double *out, const int *ids, const int *pids, const double *word, const double *pos,
                      const double *type, int R, int d) {
  for (int r = 0; r < R; r++)
    for (int c = 0; c < d; c++)
      out[(size_t)r * d + c] = word[(size_t)ids[r] * d + c] + pos[(size_t)pids[r] * d + c] + type[c];
}
static double dot(const double *a, const float *w, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += a[i] * w[i];
  return s;
}
static double *to_d(const float *f, size_t n) {
  double *d = malloc(n * sizeof(double));
  for (size_t i = 0; i < n; i++) d[i] = f[i];
  return d;
}

static void test_embedding(void) {
  const int V = 53, P = 23, d = 45, R = 37, SKIP = 1;
  pool_reset();
  int ids[37], pids[37];
  for (int r = 0; r < R; r++) {
    ids[r] = r % 5 == 0 ? SKIP : (r % 7 == 0 ? 50 : th_irand(V)); /* repeats, pads, and a hot id */
    pids[r] = th_irand(P);
  }
  float *word = th_rand_vec((size_t)V * d, 1), *pos = th_rand_vec((size_t)P * d, 1), *type = th_rand_vec(d, 1);
  dmx_tensor tw = upf(word, (size_t)V * d), tp = upf(pos, (size_t)P * d), tt = upf(type, d);
  dmx_tensor tids = upi(ids, R), tpids = upi(pids, R), tout = take((size_t)R * d);
  double *dw = to_d(word, (size_t)V * d), *dp = to_d(pos, (size_t)P * d), *dt = to_d(type, d);

  th_begin("embedding pass 1 forward matches word + pos + type (R=37, d=45, offsets)");
  dmx_embedding_forward(rt, tout, tids, tpids, tw, tp, tt, R, d);
  float *out = down(tout, (size_t)R * d);
  double *want = dvec((size_t)R * d);
  ref_embed(want, ids, pids, dw, dp, dt, R, d);
  th_close("embedding out", out, want, (size_t)R * d, 1e-6, 1e-6);
  th_end();

  th_begin("embedding buckets: grouping, order, padding skipped, rebuilt after a different batch");
  embedding_buckets bk;
  dmx_embedding_buckets_init(&bk, 64, V);
  for (int round = 0; round < 3; round++) {
    int n = round == 0 ? R : round == 1 ? 11 : 0, skip = round == 1 ? -1 : SKIP;
    int *use = round == 1 ? pids : ids; /* a different id set on the second round */
    dmx_embedding_buckets_build(&bk, use, n, skip);
    int seen[64] = {0}, distinct[64] = {0}, want_unique = 0, want_rows = 0;
    for (int r = 0; r < n; r++)
      if (use[r] != skip) {
        want_rows++;
        if (!distinct[use[r]]++) want_unique++;
      }
    CHECKF(bk.n_unique == want_unique, "round %d: %d unique ids, want %d", round, bk.n_unique, want_unique);
    CHECKF(bk.starts[bk.n_unique] == want_rows, "round %d: %d rows, want %d", round, bk.starts[bk.n_unique], want_rows);
    for (int u = 0; u < bk.n_unique; u++) {
      int id = bk.unique_ids[u];
      CHECKF(distinct[id] == bk.starts[u + 1] - bk.starts[u], "round %d: bucket of id %d has %d rows, want %d", round,
             id, bk.starts[u + 1] - bk.starts[u], distinct[id]);
      distinct[id] = -1000; /* an id listed twice would now fail the check above */
      for (int i = bk.starts[u]; i < bk.starts[u + 1]; i++) {
        int r = bk.rows[i];
        CHECKF(r >= 0 && r < n && use[r] == id, "round %d: row %d in bucket of id %d", round, r, id);
        CHECKF(i == bk.starts[u] || bk.rows[i - 1] < r, "round %d: rows not ascending in bucket %d", round, id);
        if (r >= 0 && r < n) seen[r]++;
      }
    }
    for (int r = 0; r < n; r++)
      CHECKF(seen[r] == (use[r] != skip), "round %d: row %d appears %d times", round, r, seen[r]);
  }
  th_end();

  th_begin("embedding table and type backward accumulate the bucketed sums (padding row untouched)");
  dmx_embedding_buckets_build(&bk, ids, R, SKIP);
  embedding_buckets_dev dev = {take(64), take(65), take(64)};
  dmx_stager st;
  dmx_stager_init(&st, 1 << 20);
  dmx_stager_begin(rt, &st);
  dmx_embedding_buckets_upload(rt, &st, &dev, &bk);
  dmx_stager_end(rt, &st);
  dmx_finish(rt);
  dmx_stager_free(&st);
  float *w = th_rand_vec((size_t)R * d, 1); /* dout = weights of the loss sum(out * w) */
  dmx_tensor tdout = upf(w, (size_t)R * d);
  float *pre = th_rand_vec((size_t)V * d, 1), *pre_t = th_rand_vec(d, 1);
  dmx_tensor tdw = upf(pre, (size_t)V * d), tdt = upf(pre_t, d);
  dmx_embedding_table_backward(rt, tdw, tdout, &dev, bk.n_unique, d);
  dmx_embedding_type_backward(rt, tdt, tdout, R, d);
  float *gw = down(tdw, (size_t)V * d), *gt = down(tdt, d);
  double *wantw = dvec((size_t)V * d), *wantt = dvec(d);
  for (size_t i = 0; i < (size_t)V * d; i++) wantw[i] = pre[i];
  for (int c = 0; c < d; c++) wantt[c] = pre_t[c];
  for (int r = 0; r < R; r++)
    for (int c = 0; c < d; c++) {
      if (ids[r] != SKIP) wantw[(size_t)ids[r] * d + c] += w[(size_t)r * d + c];
      wantt[c] += w[(size_t)r * d + c];
    }
  th_close("dword", gw, wantw, (size_t)V * d, 1e-5, 1e-5);
  th_close("dtype", gt, wantt, d, 1e-5, 1e-5);
  for (int c = 0; c < d; c++) CHECK(gw[SKIP * d + c] == pre[SKIP * d + c]);
  /* finite differences of the double reference: every non-padding table entry, and type */
  {
    double eps = 1e-3, *o = dvec((size_t)R * d);
    int bad = 0;
    for (int v = 0; v < V; v++) {
      if (v == SKIP) continue;
      for (int c = 0; c < d; c++) {
        size_t i = (size_t)v * d + c;
        double keep = dw[i], lp, lm;
        dw[i] = keep + eps;
        ref_embed(o, ids, pids, dw, dp, dt, R, d);
        lp = dot(o, w, (size_t)R * d);
        dw[i] = keep - eps;
        ref_embed(o, ids, pids, dw, dp, dt, R, d);
        lm = dot(o, w, (size_t)R * d);
        dw[i] = keep;
        double fd = (lp - lm) / (2 * eps), got = (double)gw[i] - pre[i];
        if (!(fabs(got - fd) <= 1e-4 + 1e-4 * fabs(fd))) bad++;
      }
    }
    for (int c = 0; c < d; c++) {
      double keep = dt[c], lp, lm;
      dt[c] = keep + eps;
      ref_embed(o, ids, pids, dw, dp, dt, R, d);
      lp = dot(o, w, (size_t)R * d);
      dt[c] = keep - eps;
      ref_embed(o, ids, pids, dw, dp, dt, R, d);
      lm = dot(o, w, (size_t)R * d);
      dt[c] = keep;
      double fd = (lp - lm) / (2 * eps), got = (double)gt[c] - pre_t[c];
      if (!(fabs(got - fd) <= 1e-4 + 1e-4 * fabs(fd))) bad++;
    }
    CHECKF(bad == 0, "%d gradient entries disagree with finite differences", bad);
    free(o);
  }
  th_end();

  th_begin("embedding type backward over many rows (fixed-order lane reduction)");
  {
    const int RR = 1001, dd = 70;
    float *big = th_rand_vec((size_t)RR * dd, 1), *pre2 = th_rand_vec(dd, 1);
    dmx_tensor tb = upf(big, (size_t)RR * dd), tr = upf(pre2, dd);
    dmx_embedding_type_backward(rt, tr, tb, RR, dd);
    float *got = down(tr, dd);
    double want2[70];
    for (int c = 0; c < dd; c++) {
      want2[c] = pre2[c];
      for (int r = 0; r < RR; r++) want2[c] += big[(size_t)r * dd + c];
    }
    th_close("column sums", got, want2, dd, 1e-5, 2e-5);
    free(big), free(pre2), free(got);
  }
  th_end();
  dmx_embedding_buckets_free(&bk);

  th_begin("embedding pass 2 forward (separate and aliased output) and backward (accumulating, FD)");
  {
    const int B = 3, T = 11, first = 2;
    size_t n = (size_t)B * T * d;
    float *x = th_rand_vec(n, 1);
    dmx_tensor tx = upf(x, n), to = take(n);
    dmx_embedding_pass2_forward(rt, to, tx, tp, tt, B, T, d, first);
    dmx_embedding_pass2_forward(rt, tx, tx, tp, tt, B, T, d, first); /* in place */
    float *o1 = down(to, n), *o2 = down(tx, n);
    double *want2 = dvec(n);
    for (int b = 0; b < B; b++)
      for (int j = 0; j < T; j++)
        for (int c = 0; c < d; c++) {
          size_t i = ((size_t)b * T + j) * d + c;
          want2[i] = (double)x[i] + type[c] + pos[(size_t)(j + first) * d + c];
        }
    th_close("pass2 out", o1, want2, n, 1e-6, 1e-6);
    th_close("pass2 out in place", o2, want2, n, 1e-6, 1e-6);
    float *w2 = th_rand_vec(n, 1), *pre_p = th_rand_vec((size_t)P * d, 1), *pre_t2 = th_rand_vec(d, 1);
    dmx_tensor tdo = upf(w2, n), tdp = upf(pre_p, (size_t)P * d), tdt2 = upf(pre_t2, d);
    dmx_embedding_pass2_backward(rt, tdp, tdt2, tdo, B, T, d, first);
    float *gp = down(tdp, (size_t)P * d), *gt2 = down(tdt2, d);
    /* analytic */
    double *wp = dvec((size_t)P * d), *wt = dvec(d);
    for (size_t i = 0; i < (size_t)P * d; i++) wp[i] = pre_p[i];
    for (int c = 0; c < d; c++) wt[c] = pre_t2[c];
    for (int b = 0; b < B; b++)
      for (int j = 0; j < T; j++)
        for (int c = 0; c < d; c++) {
          wp[(size_t)(j + first) * d + c] += w2[((size_t)b * T + j) * d + c];
          wt[c] += w2[((size_t)b * T + j) * d + c];
        }
    th_close("pass2 dpos", gp, wp, (size_t)P * d, 1e-5, 1e-5);
    th_close("pass2 dtype", gt2, wt, d, 1e-5, 1e-5);
    /* finite differences of loss = sum(w2 * (x + type + pos[j+first])) over pos rows and type */
    int bad = 0;
    for (int prow = 0; prow < P; prow++)
      for (int c = 0; c < d; c++) {
        double fd = 0; /* d loss / d pos[prow][c] by central difference, exact for this linear map */
        double eps = 1e-3;
        for (int sgn = -1; sgn <= 1; sgn += 2) {
          double l = 0;
          for (int b = 0; b < B; b++)
            for (int j = 0; j < T; j++) {
              size_t i = ((size_t)b * T + j) * d + c;
              double pv = dp[(size_t)(j + first) * d + c] + ((j + first == prow) ? sgn * eps : 0);
              l += w2[i] * ((double)x[i] + dt[c] + pv);
            }
          fd += sgn * l / (2 * eps);
        }
        double got = (double)gp[(size_t)prow * d + c] - pre_p[(size_t)prow * d + c];
        if (!(fabs(got - fd) <= 1e-4 + 1e-4 * fabs(fd))) bad++;
      }
    CHECKF(bad == 0, "%d dpos entries disagree with finite differences", bad);
    free(x), free(o1), free(o2), free(want2), free(w2), free(pre_p), free(pre_t2), free(gp), free(gt2), free(wp),
        free(wt);
  }
  th_end();
  free(word), free(pos), free(type), free(out), free(want), free(dw), free(dp), free(dt), free(w), free(pre),
      free(pre_t), free(gw), free(gt), free(wantw), free(wantt);
}

/* ---------------------------------------------------------------- attention reference */

typedef struct {
  int B, T, d, H;
  const int *mask;      /* (B, T) or NULL */
  const double *dscale; /* (B, H, T, T) dropout multipliers (0 or 1/(1-p)) or NULL */
} attn_shape;

/* out (B, T, d) and, when att is non-NULL, the probabilities (B, H, T, T); when dout is given,
 * dqkv (B, T, 3d) = gradient of sum(out * dout) (overwritten). */
static void ref_attention(const attn_shape *s, const double *qkv, double *out, double *att_out, const float *dout,
                          double *dqkv) {
  int B = s->B, T = s->T, d = s->d, H = s->H, hd = d / H;
  double scale = 1.0 / sqrt((double)hd);
  double *A = malloc((size_t)T * T * sizeof(double)), *dA = malloc((size_t)T * T * sizeof(double));
  if (dqkv) memset(dqkv, 0, (size_t)B * T * 3 * d * sizeof(double));
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
#define Q(t, e) qkv[((size_t)b * T + (t)) * 3 * d + h * hd + (e)]
#define K(t, e) qkv[((size_t)b * T + (t)) * 3 * d + d + h * hd + (e)]
#define V(t, e) qkv[((size_t)b * T + (t)) * 3 * d + 2 * d + h * hd + (e)]
      const double *ds = s->dscale ? s->dscale + ((size_t)b * H + h) * T * T : NULL;
      for (int t = 0; t < T; t++) {
        double mx = -INFINITY, sum = 0;
        for (int u = 0; u < T; u++) {
          double sc = 0;
          for (int e = 0; e < hd; e++) sc += Q(t, e) * K(u, e);
          sc *= scale;
          if (s->mask && !s->mask[b * T + u]) sc = -1e9;
          A[t * T + u] = sc;
          if (sc > mx) mx = sc;
        }
        for (int u = 0; u < T; u++) sum += (A[t * T + u] = exp(A[t * T + u] - mx));
        for (int u = 0; u < T; u++) A[t * T + u] /= sum;
      }
      if (att_out) memcpy(att_out + ((size_t)b * H + h) * T * T, A, (size_t)T * T * sizeof(double));
      for (int t = 0; t < T; t++)
        for (int e = 0; e < hd; e++) {
          double y = 0;
          for (int u = 0; u < T; u++) y += A[t * T + u] * (ds ? ds[t * T + u] : 1.0) * V(u, e);
          if (out) out[((size_t)b * T + t) * d + h * hd + e] = y;
        }
      if (!dqkv) continue;
#define DY(t, e) ((double)dout[((size_t)b * T + (t)) * d + h * hd + (e)])
#define DQKV(t, part, e) dqkv[((size_t)b * T + (t)) * 3 * d + (part)*d + h * hd + (e)]
      for (int t = 0; t < T; t++)
        for (int u = 0; u < T; u++) {
          double m = ds ? ds[t * T + u] : 1.0, g = 0;
          for (int e = 0; e < hd; e++) g += DY(t, e) * V(u, e);
          dA[t * T + u] = g * m;
          for (int e = 0; e < hd; e++) DQKV(u, 2, e) += A[t * T + u] * m * DY(t, e);
        }
      for (int t = 0; t < T; t++) {
        double sdot = 0;
        for (int u = 0; u < T; u++) sdot += dA[t * T + u] * A[t * T + u];
        for (int u = 0; u < T; u++) {
          double gs = (s->mask && !s->mask[b * T + u]) ? 0 : A[t * T + u] * (dA[t * T + u] - sdot) * scale;
          for (int e = 0; e < hd; e++) {
            DQKV(t, 0, e) += gs * K(u, e);
            DQKV(u, 1, e) += gs * Q(t, e);
          }
        }
      }
#undef Q
#undef K
#undef V
#undef DY
#undef DQKV
    }
  free(A);
  free(dA);
}

/* One attention case: forward vs reference, probabilities finite / masked / normalised, backward
 * accumulating vs the analytic reference, and (fd) the reference against finite differences. */
static void attention_case(int B, int T, int d, int H, const int *mask, float p, bool fd, float in_scale) {
  pool_reset();
  uint32_t seed = 1234567u, stream = 42u;
  size_t nq = (size_t)B * T * 3 * d, no = (size_t)B * T * d;
  size_t nh = dmx_attention_qkv_floats(B, T, d), na = dmx_attention_att_floats(B, T, H);
  float *qkv = th_rand_vec(nq, in_scale), *w = th_rand_vec(no, 1), *pre = th_rand_vec(nq, 1);
  double *dq = to_d(qkv, nq);
  double *dscale = NULL;
  if (p > 0) {
    dscale = dvec(na);
    for (size_t i = 0; i < na; i++)
      dscale[i] = dmx_dropout_uniform_host(seed, stream, (uint32_t)i) >= p ? 1.0 / (1.0 - (double)p) : 0.0;
  }
  attn_shape s = {B, T, d, H, mask, dscale};
  dmx_tensor tq = upf(qkv, nq), tout = take(no), tmask = {0};
  if (mask) tmask = upi(mask, (size_t)B * T);
  size_t nr = dmx_attention_row_floats(B, T, H);
  attention_acts acts = {.q = take(nh),
                         .k = take(nh),
                         .v = take(nh),
                         .att = take(na),
                         .att_drop = take(na),
                         .y = take(nh),
                         .lse = take(dmx_attention_lse_floats(B, T, H))};
  bool fused = dmx_attention_fused(rt, d / H);
  dmx_attention_forward(rt, tout, &acts, tq, tmask, B, T, d, H, p, seed, stream);
  float *out = down(tout, no), *att = down(acts.att, na);
  double *want = dvec(no), *watt = dvec(na);
  ref_attention(&s, dq, want, watt, NULL, NULL);
  th_close("attention out", out, want, no, 1e-4, 1e-5);
  /* the fused kernels never write the probabilities */
  if (!fused) th_close("attention probabilities", att, watt, na, 1e-4, 1e-6);
  int bad_rows = 0, bad_masked = 0;
  for (size_t r = 0; !fused && r < na / T; r++) {
    double sum = 0;
    for (int u = 0; u < T; u++) {
      float a = att[r * T + u];
      if (!isfinite(a)) bad_rows++;
      sum += a;
      int b = (int)(r / ((size_t)H * T));
      bool all_masked = true;
      for (int v = 0; mask && v < T; v++) all_masked = all_masked && !mask[b * T + v];
      if (mask && !mask[b * T + u] && !all_masked && a != 0.0f) bad_masked++;
    }
    if (!(fabs(sum - 1) < 1e-5)) bad_rows++;
  }
  CHECKF(bad_rows == 0, "%d probability rows not finite or not normalised", bad_rows);
  CHECKF(bad_masked == 0, "%d masked keys got non-zero probability", bad_masked);

  /* deterministic: the same forward again gives the same bits */
  dmx_attention_forward(rt, tout, &acts, tq, tmask, B, T, d, H, p, seed, stream);
  float *out2 = down(tout, no);
  CHECK(memcmp(out, out2, no * sizeof(float)) == 0);

  /* backward, into a pre-filled gradient; att_drop is clobbered first, as a later layer sharing
   * the scratch would, so the backward must regenerate what it needs */
  dmx_fill(rt, acts.att_drop, 777.0f);
  dmx_fill(rt, acts.y, -5.0f);
  attention_grad_scratch sc = {take(nh), take(nh), take(nh), take(na), take(nh), take(nr)};
  dmx_fill(rt, sc.dsum, 9.0f);
  dmx_fill(rt, sc.datt, 3.0f); /* stale contents must not leak in */
  dmx_fill(rt, sc.dq, 3.0f);
  dmx_tensor tdout = upf(w, no), tdq = upf(pre, nq);
  dmx_attention_backward(rt, tdq, &sc, tdout, &acts, tmask, B, T, d, H, p, seed, stream);
  float *g = down(tdq, nq);
  double *wg = dvec(nq);
  ref_attention(&s, dq, NULL, NULL, w, wg);
  double *wacc = dvec(nq);
  for (size_t i = 0; i < nq; i++) wacc[i] = wg[i] + pre[i];
  th_close("attention dqkv (accumulated)", g, wacc, nq, 2e-4, 2e-5);
  /* the gradient must not be trivially zero, or the checks above prove little */
  double gmax = 0;
  for (size_t i = 0; i < nq; i++) gmax = fmax(gmax, fabs(wg[i]));
  CHECKF(gmax > 1e-2, "reference gradient is nearly zero (max %g)", gmax);

  if (fd) {
    double eps = 1e-5, *o = dvec(no);
    int bad = 0;
    size_t worst = 0;
    double worst_err = 0;
    for (size_t i = 0; i < nq; i++) {
      double keep = dq[i], lp, lm;
      dq[i] = keep + eps;
      ref_attention(&s, dq, o, NULL, NULL, NULL);
      lp = dot(o, w, no);
      dq[i] = keep - eps;
      ref_attention(&s, dq, o, NULL, NULL, NULL);
      lm = dot(o, w, no);
      dq[i] = keep;
      double fdv = (lp - lm) / (2 * eps), err = fabs(fdv - wg[i]);
      if (!(err <= 1e-6 + 1e-5 * fabs(fdv))) bad++;
      if (err > worst_err) worst_err = err, worst = i;
      /* and the device gradient directly against the finite difference */
      if (!(fabs((double)g[i] - pre[i] - fdv) <= 5e-5 + 2e-4 * fabs(fdv))) bad++;
    }
    CHECKF(bad == 0, "%d gradient entries disagree with finite differences (worst [%zu] err %g)", bad, worst,
           worst_err);
    free(o);
  }
  free(qkv), free(w), free(pre), free(dq), free(dscale), free(out), free(att), free(want), free(watt), free(out2),
      free(g), free(wg), free(wacc);
}

/* the case name with the implementation and layout under test (a static buffer: cases run one at a time) */
static const char *with_layout(const char *what) {
  static char name[256];
  snprintf(name, sizeof name, "%s [%s: %s]", what, rt->fused_attention ? "fused" : "GEMMs + softmax",
           rt->serial_reductions ? "work-item per row" : "work-group tiles");
  return name;
}
#define th_begin_layout(what) th_begin(with_layout(what))

int main(void) {
  th_seed(0x9E3779B97F4A7C15ULL);
  rt = dmx_runtime_create(NULL, false, stdout);
  const bool sim = dmx_device_is_simulator(&rt->info);
  pool = dmx_buffer_create(rt, (size_t)4 << 20);
  test_embedding();

  /* both implementations (GEMMs around a softmax, fused kernels), each in both layouts: work-groups
   * (GPUs) and one work-item per row (CPUs) */
  for (int layout = 0; layout < 4; layout++) {
    rt->serial_reductions = layout & 1;
    rt->fused_attention = layout >= 2;
    th_begin_layout("attention, no mask, p=0: B=2 T=13 d=12 H=3, with finite differences");
    attention_case(2, 13, 12, 3, NULL, 0.0f, true, 2.0f);
    th_end();

    th_begin_layout("attention, padding mask with a fully masked sequence, p=0: B=3 T=9 d=15 H=5 (hd=3), FD");
    {
      int mask[27];
      for (int i = 0; i < 27; i++) mask[i] = i < 9 ? (i < 6) : i < 18 ? (i % 2) : 0;
      attention_case(3, 9, 15, 5, mask, 0.0f, true, 2.0f);
    }
    th_end();

    th_begin_layout("attention, short rows (T=3: no four-wide chunk), one key masked, p=0: B=2 T=3 d=8 H=2, FD");
    {
      int mask[6] = {1, 1, 0, 1, 1, 1};
      attention_case(2, 3, 8, 2, mask, 0.0f, true, 2.0f);
    }
    th_end();

    th_begin_layout("attention dropout p=0.3: forward and backward follow the host mask (no mask, FD)");
    attention_case(2, 13, 12, 3, NULL, 0.3f, true, 2.0f);
    th_end();

    th_begin_layout("attention dropout p=0.25 with a padding mask: B=2 T=17 d=20 H=4");
    {
      int mask[34];
      for (int i = 0; i < 34; i++) mask[i] = (i % 17) < (i < 17 ? 17 : 12);
      attention_case(2, 17, 20, 4, mask, 0.25f, true, 1.5f);
    }
    th_end();

    /* on a simulator (Oclgrind checks every work-item) T = 67: still a full 64-row tile and a
     * partial one, and a masked tail */
    th_begin_layout(sim ? "attention at a model-like shape: B=2 T=67 (131 off a simulator) d=64 H=2, padded tail "
                          "masked, p=0.1"
                        : "attention at a model-like shape: B=2 T=131 d=64 H=2, padded tail masked, p=0.1");
    {
      int T = sim ? 67 : 131, mask[262];
      for (int i = 0; i < 2 * T; i++) mask[i] = (i % T) < (i < T ? T : T - 31);
      attention_case(2, T, 64, 2, mask, 0.1f, false, 1.0f);
    }
    th_end();

    /* arena-aligned tensors: the fused CPU layout then reads float4s (odd offsets take its scalar path) */
    th_begin_layout("attention on 4-float-aligned tensors: B=2 T=13 d=16 H=2 (hd=8), one key masked, p=0.2, FD");
    {
      int mask[26];
      for (int i = 0; i < 26; i++) mask[i] = i != 17;
      pool_aligned = true;
      attention_case(2, 13, 16, 2, mask, 0.2f, true, 2.0f);
      pool_aligned = false;
    }
    th_end();
  }

  dmx_buffer_release(pool);
  dmx_runtime_destroy(rt);
  return th_finish();
}
