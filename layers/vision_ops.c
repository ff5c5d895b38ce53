/* Launchers for the small vision kernels of cl/vision.cl. */
#include "layers/vision_ops.h"

#include <math.h>
#include <stdlib.h>

#include "host/runtime/gemm.h"

static void launch_1d(dmx_runtime *rt, dmx_kernel_id kernel, size_t n, int nargs, const dmx_karg *args) {
  if (n == 0) return;
  size_t l = dmx_local_pow2(rt, kernel, 0, 256, 1);
  dmx_launch_at(rt, dmx_kernel(rt, kernel), kernel, 1, &n, &l, nargs, args, __FILE__, __LINE__);
}
#define EW(rt, kernel, n, ...) \
  launch_1d((rt), (kernel), (n), (int)(sizeof((dmx_karg[]){__VA_ARGS__}) / sizeof(dmx_karg)), (dmx_karg[]){__VA_ARGS__})

void dmx_instance_sum_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int N, int S) {
  EW(rt, DMX_K_INSTANCE_SUM_FWD, (size_t)S, KA_T(out), KA_T(x), KA_I(N), KA_I(S));
}

void dmx_instance_sum_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dout, int N, int S) {
  if (S <= 0 || N <= 0) return;
  size_t g[2] = {(size_t)S, (size_t)N}, l[2] = {dmx_local_pow2(rt, DMX_K_INSTANCE_SUM_BWD, 0, 256, 1), 1};
  dmx_launch(rt, DMX_K_INSTANCE_SUM_BWD, 2, g, l, KA_T(dx), KA_T(dout), KA_I(N), KA_I(S));
}

void dmx_gather_map_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, dmx_tensor map, dmx_tensor sign, int N,
                            int B, int P, int C) {
  if (N <= 0 || B <= 0 || P <= 0) return;
  size_t g[2] = {(size_t)P * C, (size_t)N * B}, l[2] = {dmx_local_pow2(rt, DMX_K_GATHER_MAP_FWD, 0, 64, 1), 1};
  dmx_launch(rt, DMX_K_GATHER_MAP_FWD, 2, g, l, KA_T(out), KA_T(x), KA_T(map), KA_T(sign), KA_I(N), KA_I(B), KA_I(P),
             KA_I(C));
}

void dmx_relu_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int n) {
  EW(rt, DMX_K_RELU_FWD, (size_t)(n > 0 ? n : 0), KA_T(out), KA_T(x), KA_I(n));
}

void dmx_relu_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor y, dmx_tensor dout, int n) {
  EW(rt, DMX_K_RELU_BWD, (size_t)(n > 0 ? n : 0), KA_T(dx), KA_T(y), KA_T(dout), KA_I(n));
}

void dmx_mse_pm1_forward_backward(dmx_runtime *rt, dmx_tensor losses, dmx_tensor preds, dmx_tensor dout, dmx_tensor out,
                                  dmx_tensor labels, int R, int C, float scale) {
  int has_grad = dout.buf != NULL;
  dmx_tensor d = has_grad ? dout : out; /* an unused argument must still be a valid buffer */
  size_t g = (size_t)(R > 0 ? R : 0), l = g ? dmx_local_pow2(rt, DMX_K_MSE_PM1, 0, 64, 1) : 1;
  if (!g) return;
  dmx_launch(rt, DMX_K_MSE_PM1, 1, &g, &l, KA_T(losses), KA_T(preds), KA_T(d), KA_T(out), KA_T(labels), KA_I(R),
             KA_I(C), KA_F(scale), KA_I(has_grad));
}

void dmx_sgd_update(dmx_runtime *rt, dmx_tensor p, dmx_tensor g, size_t n, float lr) {
  if (n == 0) return;
  size_t l = dmx_local_pow2(rt, DMX_K_SGD_STEP, 0, 256, 1);
  dmx_launch(rt, DMX_K_SGD_STEP, 1, &n, &l, KA_T(p), KA_T(g), KA_UL(n), KA_F(lr));
}

void dmx_instance_matmul_forward(dmx_runtime *rt, dmx_tensor y, dmx_tensor x, dmx_tensor Q, int N, int B, int P) {
  size_t b = (size_t)B, p = (size_t)P;
  dmx_gemm_batched(rt, false, true, b, p, p, 1.0f, x, p, b * p, Q, p, p * p, 0.0f, y, p, b * p, (size_t)N);
}

void dmx_instance_matmul_backward(dmx_runtime *rt, dmx_tensor dQ, dmx_tensor dy, dmx_tensor x, int N, int B, int P) {
  size_t b = (size_t)B, p = (size_t)P;
  dmx_gemm_batched(rt, true, false, p, p, b, 1.0f, dy, p, b * p, x, p, b * p, 1.0f, dQ, p, p * p, (size_t)N);
}

static uint64_t mix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void dmx_random_rotation(float *q, int P, uint64_t *rng) {
  double *a = dmx_malloc((size_t)P * P * sizeof(double));
  for (size_t i = 0; i < (size_t)P * P; i++) {
    double u1 = ((mix64(rng) >> 11) + 0.5) / 9007199254740992.0, u2 = ((mix64(rng) >> 11) + 0.5) / 9007199254740992.0;
    a[i] = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
  }
  /* modified Gram-Schmidt over the rows, twice for accuracy ("twice is enough") */
  for (int r = 0; r < P; r++) {
    double *v = a + (size_t)r * P;
    for (int pass = 0; pass < 2; pass++)
      for (int k = 0; k < r; k++) {
        const double *u = a + (size_t)k * P;
        double d = 0;
        for (int j = 0; j < P; j++) d += u[j] * v[j];
        for (int j = 0; j < P; j++) v[j] -= d * u[j];
      }
    double nrm = 0;
    for (int j = 0; j < P; j++) nrm += v[j] * v[j];
    nrm = sqrt(nrm);
    for (int j = 0; j < P; j++) v[j] /= nrm;
  }
  /* the sign of the determinant, by LU with partial pivoting on a copy */
  double *lu = dmx_malloc((size_t)P * P * sizeof(double));
  for (size_t i = 0; i < (size_t)P * P; i++) lu[i] = a[i];
  int sign = 1;
  for (int c = 0; c < P; c++) {
    int piv = c;
    for (int r = c + 1; r < P; r++)
      if (fabs(lu[(size_t)r * P + c]) > fabs(lu[(size_t)piv * P + c])) piv = r;
    if (piv != c) {
      sign = -sign;
      for (int j = 0; j < P; j++) {
        double t = lu[(size_t)c * P + j];
        lu[(size_t)c * P + j] = lu[(size_t)piv * P + j];
        lu[(size_t)piv * P + j] = t;
      }
    }
    double d = lu[(size_t)c * P + c];
    if (d < 0) sign = -sign;
    for (int r = c + 1; r < P; r++) {
      double f = lu[(size_t)r * P + c] / d;
      for (int j = c; j < P; j++) lu[(size_t)r * P + j] -= f * lu[(size_t)c * P + j];
    }
  }
  free(lu);
  for (int i = 0; i < P; i++)
    for (int j = 0; j < P; j++)
      q[(size_t)i * P + j] = (float)(sign < 0 && i == 0 ? -a[(size_t)i * P + j] : a[(size_t)i * P + j]);
  free(a);
}
