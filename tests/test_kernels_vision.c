/* cl/vision.cl through layers/conv.h, layers/pool.h and layers/vision_ops.h against naive
 * double-precision C references on odd shapes (non-square images, channel counts that divide
 * nothing, several groups), forward and backward. Backward results are accumulated onto
 * gradient buffers pre-filled with random values, so "+=" is checked along with the values. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/runtime/runtime.h"
#include "layers/conv.h"
#include "layers/pool.h"
#include "layers/vision_ops.h"
#include "tests/harness.h"

static dmx_runtime *rt;
/* A device copy at a non-zero offset (7 floats in), so offsets are exercised. */
static dmx_tensor up(const void *h, size_t n) {
  dmx_tensor whole = dmx_buffer_create(rt, n + 7);
  dmx_fill(rt, whole, 0.0f);
  dmx_tensor t = {whole.buf, 7, n};
  dmx_upload(rt, t, h, n * 4);
  return t;
}
static float *down(dmx_tensor t) {
  float *h = malloc((t.n ? t.n : 1) * 4);
  dmx_download(rt, h, t, t.n * 4);
  return h;
}
static double *dz(size_t n) { return calloc(n ? n : 1, sizeof(double)); }
/* want += pre, so a gradient accumulated onto pre compares directly */
static void add_pre(double *want, const float *pre, size_t n) {
  for (size_t i = 0; i < n; i++) want[i] += pre[i];
}

/* ---------------------------------------------------------------- convolution */

static void test_conv(int G, int B, int H, int W, int C, int OC, int K, int pad, bool bias, bool want_dx) {
  char name[128];
  snprintf(name, sizeof name, "conv G=%d B=%d %dx%dx%d -> %d, %dx%d pad %d%s", G, B, H, W, C, OC, K, K, pad,
           bias ? "" : " no bias");
  th_begin(name);
  conv_shape s = dmx_conv_make_shape(G, B, H, W, C, OC, K, pad);
  int OH = s.OH, OW = s.OW, Kc = C * K * K;
  size_t nx = (size_t)G * B * H * W * C, nw = (size_t)G * OC * Kc, nb = (size_t)G * OC,
         no = (size_t)G * B * OH * OW * OC, ncol = dmx_conv_col_floats(&s);
  float *x = th_rand_vec(nx, 1.0f), *w = th_rand_vec(nw, 1.0f), *b = th_rand_vec(nb, 1.0f),
        *dout = th_rand_vec(no, 1.0f), *pdx = th_rand_vec(nx, 1.0f), *pdw = th_rand_vec(nw, 1.0f),
        *pdb = th_rand_vec(nb, 1.0f);
  dmx_tensor tx = up(x, nx), tw = up(w, nw), tb = up(b, nb), tout = up(dout, no), tdout = up(dout, no);
  dmx_tensor tdx = up(pdx, nx), tdw = up(pdw, nw), tdb = up(pdb, nb);
  dmx_tensor col = dmx_buffer_create(rt, ncol), dcol = dmx_buffer_create(rt, ncol);
  dmx_tensor none = {NULL, 0, 0};
  dmx_conv_forward(rt, tout, col, tx, tw, bias ? tb : none, &s);
  dmx_conv_backward(rt, want_dx ? tdx : none, tdw, bias ? tdb : none, dcol, tdout, col, tw, &s);
  double *ro = dz(no), *rdx = dz(nx), *rdw = dz(nw), *rdb = dz(nb);
  for (int g = 0; g < G; g++)
    for (int bi = 0; bi < B; bi++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++)
          for (int oc = 0; oc < OC; oc++) {
            size_t img = (size_t)g * B + bi, o = ((img * OH + oh) * OW + ow) * OC + oc;
            double acc = bias ? b[g * OC + oc] : 0.0;
            for (int c = 0; c < C; c++)
              for (int kh = 0; kh < K; kh++)
                for (int kw = 0; kw < K; kw++) {
                  int h = oh + kh - pad, ww = ow + kw - pad;
                  if (h < 0 || h >= H || ww < 0 || ww >= W) continue;
                  size_t xi = ((img * H + h) * W + ww) * C + c, wi = ((size_t)g * OC + oc) * Kc + (c * K + kh) * K + kw;
                  acc += (double)x[xi] * w[wi];
                  rdw[wi] += (double)dout[o] * x[xi];
                  rdx[xi] += (double)dout[o] * w[wi];
                }
            ro[o] = acc;
            rdb[g * OC + oc] += dout[o];
          }
  add_pre(rdw, pdw, nw);
  add_pre(rdb, pdb, nb);
  add_pre(rdx, pdx, nx);
  float *go = down(tout), *gdw = down(tdw), *gdb = down(tdb), *gdx = down(tdx);
  CHECK(th_close("conv forward", go, ro, no, 1e-5, 1e-5));
  CHECK(th_close("conv dW (accumulated)", gdw, rdw, nw, 1e-5, 1e-4));
  if (bias)
    CHECK(th_close("conv db (accumulated)", gdb, rdb, nb, 1e-5, 1e-4));
  else
    CHECK(th_close("conv db untouched", gdb, (add_pre(memset(rdb, 0, nb * 8), pdb, nb), rdb), nb, 0, 0));
  if (want_dx)
    CHECK(th_close("conv dx (accumulated)", gdx, rdx, nx, 1e-5, 1e-4));
  else
    CHECK(th_close("conv dx untouched", gdx, (add_pre(memset(rdx, 0, nx * 8), pdx, nx), rdx), nx, 0, 0));
  free(x), free(w), free(b), free(dout), free(pdx), free(pdw), free(pdb), free(ro), free(rdx), free(rdw), free(rdb);
  free(go), free(gdw), free(gdb), free(gdx);
  dmx_tensor all[] = {tx, tw, tb, tout, tdout, tdx, tdw, tdb, col, dcol};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) dmx_buffer_release(all[i]);
  th_end();
}

/* ---------------------------------------------------------------- pooling */

static void test_pool(int B, int H, int W, int C) {
  char name[96];
  snprintf(name, sizeof name, "maxpool2 %dx%dx%dx%d", B, H, W, C);
  th_begin(name);
  int OH = H / 2, OW = W / 2;
  size_t nx = (size_t)B * H * W * C, no = (size_t)B * OH * OW * C;
  float *x = th_rand_vec(nx, 1.0f), *dout = th_rand_vec(no, 1.0f), *pdx = th_rand_vec(nx, 1.0f);
  x[0] = x[C]; /* a tie: the first element of the window wins, as in PyTorch */
  dmx_tensor tx = up(x, nx), tdout = up(dout, no), tdx = up(pdx, nx), tout = dmx_buffer_create(rt, no),
             tidx = dmx_buffer_create(rt, no);
  dmx_maxpool2_forward(rt, tout, tidx, tx, B, H, W, C);
  dmx_maxpool2_backward(rt, tdx, tdout, tidx, (int)no);
  double *ro = dz(no), *rdx = dz(nx);
  int32_t *ri = calloc(no, 4), *gi = malloc(no * 4);
  for (int b = 0; b < B; b++)
    for (int oh = 0; oh < OH; oh++)
      for (int ow = 0; ow < OW; ow++)
        for (int c = 0; c < C; c++) {
          size_t o = (((size_t)b * OH + oh) * OW + ow) * C + c;
          int best = -1;
          for (int dh = 0; dh < 2; dh++)
            for (int dw = 0; dw < 2; dw++) {
              int i = ((b * H + 2 * oh + dh) * W + 2 * ow + dw) * C + c;
              if (best < 0 || x[i] > x[best]) best = i;
            }
          ro[o] = x[best];
          ri[o] = best;
          rdx[best] += dout[o];
        }
  add_pre(rdx, pdx, nx);
  float *go = down(tout), *gdx = down(tdx);
  dmx_download(rt, gi, tidx, no * 4);
  CHECK(th_close("maxpool forward", go, ro, no, 0, 0));
  CHECK(memcmp(gi, ri, no * 4) == 0);
  CHECK(th_close("maxpool backward (accumulated)", gdx, rdx, nx, 1e-6, 1e-6));
  free(x), free(dout), free(pdx), free(ro), free(rdx), free(ri), free(gi), free(go), free(gdx);
  dmx_tensor all[] = {tx, tdout, tdx, tout, tidx};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) dmx_buffer_release(all[i]);
  th_end();
}

/* ---------------------------------------------------------------- muxing helpers */

static void test_mux_ops(void) {
  th_begin("instance sum, rotation gather, per-instance matrices");
  int N = 3, B = 2, P = 13, C = 2;
  size_t S = (size_t)B * P * C, n = N * S;
  float *x = th_rand_vec(n, 1.0f), *dout = th_rand_vec(S, 1.0f), *pdx = th_rand_vec(n, 1.0f);
  dmx_tensor tx = up(x, n), tdout = up(dout, S), tdx = up(pdx, n), tsum = dmx_buffer_create(rt, S);
  dmx_instance_sum_forward(rt, tsum, tx, N, (int)S);
  dmx_instance_sum_backward(rt, tdx, tdout, N, (int)S);
  double *rs = dz(S), *rdx = dz(n);
  for (int i = 0; i < N; i++)
    for (size_t j = 0; j < S; j++) rs[j] += x[i * S + j], rdx[i * S + j] = (double)dout[j] + pdx[i * S + j];
  float *gs = down(tsum), *gdx = down(tdx);
  CHECK(th_close("instance sum", gs, rs, S, 1e-6, 1e-6));
  CHECK(th_close("instance sum backward", gdx, rdx, n, 1e-6, 1e-6));

  int32_t *map = malloc((size_t)N * P * 4);
  float sign[3] = {1, -1, 1};
  for (int i = 0; i < N * P; i++) map[i] = (int)((th_frand() + 1) * 0.5 * (P + 3)) - 3; /* some < 0 */
  dmx_tensor tmap = up(map, (size_t)N * P), tsign = up(sign, 3), tg = dmx_buffer_create(rt, n);
  dmx_gather_map_forward(rt, tg, tx, tmap, tsign, N, B, P, C);
  double *rg = dz(n);
  for (int i = 0; i < N; i++)
    for (int b = 0; b < B; b++)
      for (int p = 0; p < P; p++)
        for (int c = 0; c < C; c++) {
          int src = map[i * P + p];
          rg[(((size_t)i * B + b) * P + p) * C + c] =
              src < 0 ? 0 : sign[i] * x[(((size_t)i * B + b) * P + src) * C + c];
        }
  float *gg = down(tg);
  CHECK(th_close("gather map", gg, rg, n, 0, 0));

  /* y_i = x_i Q_i^T with x (N, B, P) */
  int Pm = 11;
  size_t nq = (size_t)N * Pm * Pm, ny = (size_t)N * B * Pm;
  float *q = th_rand_vec(nq, 1.0f), *xm = th_rand_vec(ny, 1.0f), *dy = th_rand_vec(ny, 1.0f),
        *pdq = th_rand_vec(nq, 1.0f);
  dmx_tensor tq = up(q, nq), txm = up(xm, ny), tdy = up(dy, ny), tdq = up(pdq, nq), ty = dmx_buffer_create(rt, ny);
  dmx_instance_matmul_forward(rt, ty, txm, tq, N, B, Pm);
  dmx_instance_matmul_backward(rt, tdq, tdy, txm, N, B, Pm);
  double *ry = dz(ny), *rdq = dz(nq);
  for (int i = 0; i < N; i++)
    for (int b = 0; b < B; b++)
      for (int r = 0; r < Pm; r++)
        for (int k = 0; k < Pm; k++) {
          size_t yi = ((size_t)i * B + b) * Pm + r, xi = ((size_t)i * B + b) * Pm + k,
                 qi = ((size_t)i * Pm + r) * Pm + k;
          ry[yi] += (double)xm[xi] * q[qi];
          rdq[qi] += (double)dy[yi] * xm[xi];
        }
  add_pre(rdq, pdq, nq);
  float *gy = down(ty), *gdq = down(tdq);
  CHECK(th_close("instance matmul", gy, ry, ny, 1e-5, 1e-5));
  CHECK(th_close("instance matmul dQ (accumulated)", gdq, rdq, nq, 1e-5, 1e-5));
  free(x), free(dout), free(pdx), free(rs), free(rdx), free(gs), free(gdx), free(map), free(rg), free(gg);
  free(q), free(xm), free(dy), free(pdq), free(ry), free(rdq), free(gy), free(gdq);
  dmx_tensor all[] = {tx, tdout, tdx, tsum, tmap, tsign, tg, tq, txm, tdy, tdq, ty};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) dmx_buffer_release(all[i]);
  th_end();
}

/* ---------------------------------------------------------------- relu, mse, sgd */

static void test_pointwise(void) {
  th_begin("relu, mse on +-1 targets, sgd");
  int n = 1037;
  float *x = th_rand_vec(n, 1.0f), *dout = th_rand_vec(n, 1.0f), *pdx = th_rand_vec(n, 1.0f);
  x[5] = 0.0f;
  dmx_tensor tx = up(x, n), tdout = up(dout, n), tdx = up(pdx, n), ty = dmx_buffer_create(rt, n);
  dmx_relu_forward(rt, ty, tx, n);
  dmx_relu_backward(rt, tdx, ty, tdout, n);
  double *ry = dz(n), *rdx = dz(n);
  for (int i = 0; i < n; i++) ry[i] = x[i] > 0 ? x[i] : 0, rdx[i] = pdx[i] + (x[i] > 0 ? dout[i] : 0);
  float *gy = down(ty), *gdx = down(tdx);
  CHECK(th_close("relu", gy, ry, n, 0, 0));
  CHECK(th_close("relu backward", gdx, rdx, n, 1e-7, 1e-7));

  int R = 37, C = 10;
  float *o = th_rand_vec((size_t)R * C, 1.0f);
  int32_t *lab = malloc(R * 4);
  for (int r = 0; r < R; r++) lab[r] = r % C;
  dmx_tensor to = up(o, (size_t)R * C), tl = up(lab, R), tloss = dmx_buffer_create(rt, R),
             tp = dmx_buffer_create(rt, R), tdo = dmx_buffer_create(rt, (size_t)R * C);
  float scale = 1.0f / 7;
  dmx_mse_pm1_forward_backward(rt, tloss, tp, tdo, to, tl, R, C, scale);
  double *rl = dz(R), *rdo = dz((size_t)R * C);
  int32_t *rp = malloc(R * 4), *gp = malloc(R * 4);
  for (int r = 0; r < R; r++) {
    int best = 0;
    for (int c = 0; c < C; c++) {
      double t = c == lab[r] ? 1 : -1, v = o[r * C + c];
      rl[r] += 0.5 * (t - v) * (t - v);
      rdo[r * C + c] = scale * (v - t);
      if (v > o[r * C + best]) best = c;
    }
    rp[r] = best;
  }
  float *gl = down(tloss), *gdo = down(tdo);
  dmx_download(rt, gp, tp, R * 4);
  CHECK(th_close("mse loss", gl, rl, R, 1e-6, 1e-6));
  CHECK(th_close("mse gradient", gdo, rdo, (size_t)R * C, 1e-6, 1e-7));
  CHECK(memcmp(gp, rp, R * 4) == 0);

  float *p = th_rand_vec(n, 1.0f);
  dmx_tensor tp2 = up(p, n);
  dmx_sgd_update(rt, tp2, tdout, n, 0.1f);
  double *rpn = dz(n);
  for (int i = 0; i < n; i++) rpn[i] = p[i] - 0.1f * dout[i];
  float *gpn = down(tp2);
  CHECK(th_close("sgd", gpn, rpn, n, 1e-6, 1e-7));
  free(x), free(dout), free(pdx), free(ry), free(rdx), free(gy), free(gdx), free(o), free(lab), free(rl), free(rdo);
  free(rp), free(gp), free(gl), free(gdo), free(p), free(rpn), free(gpn);
  dmx_tensor all[] = {tx, tdout, tdx, ty, to, tl, tloss, tp, tdo, tp2};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) dmx_buffer_release(all[i]);
  th_end();
}

int main(void) {
  th_seed(0x9E3779B97F4A7C15ULL);
  rt = dmx_runtime_create(NULL, false, stdout);
  test_conv(1, 3, 7, 5, 3, 5, 3, 0, true, true);
  test_conv(1, 2, 9, 6, 2, 7, 4, 0, true, true);
  test_conv(3, 2, 5, 6, 1, 4, 3, 1, false, false); /* per-instance fixed kernels on input images */
  test_conv(3, 2, 6, 5, 4, 3, 3, 1, true, true);   /* per-instance learnable convolution */
  test_conv(1, 2, 3, 3, 120, 9, 3, 0, true, true); /* LeNet's last conv: 1x1 output */
  test_pool(3, 7, 9, 5);
  test_pool(2, 18, 18, 10);
  test_mux_ops();
  test_pointwise();
  dmx_runtime_destroy(rt);
  return th_finish();
}
