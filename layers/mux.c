/* Multiplexing (docs/datamux-spec.md §1.6): instance parameters drawn on the host, the Hadamard
 * (mean of v_i ⊙ e_i) and random-orthogonal (sum of W_i e_i / sqrt N) combinations on the device. */
#include "layers/mux.h"
#include "host/base/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/runtime/gemm.h"

/* ---- host-side instance parameters ------------------------------------------------------------ */

/* Standard normals by Box-Muller; both values of each pair are used, in order (cos then sin). */
typedef struct {
  uint64_t s;
  double spare;
  int has_spare;
} normal_rng;

static double normal(normal_rng *g) {
  if (g->has_spare) {
    g->has_spare = 0;
    return g->spare;
  }
  double u1 = dmx_rand_half_open01(&g->s), u2 = dmx_rand_half_open01(&g->s);
  double r = sqrt(-2.0 * log(u1)), th = 6.283185307179586476925 * u2; /* 2 pi */
  g->spare = r * sin(th);
  g->has_spare = 1;
  return r * cos(th);
}

size_t dmx_mux_instance_floats(dmx_muxing m, int N, int d) {
  return m == DMX_MUX_RANDOM_ORTHO ? (size_t)N * d * d : (size_t)N * d;
}

/* Dot product with four independent partial sums: the compiler may not reassociate floating-point
 * adds, and one serial chain would leave Gram-Schmidt latency-bound (d = 768, N = 40 is 40 d^3 work). */
static double dot4(const double *a, const double *b, int n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int c = 0;
  for (; c + 4 <= n; c += 4) {
    s0 += a[c] * b[c];
    s1 += a[c + 1] * b[c + 1];
    s2 += a[c + 2] * b[c + 2];
    s3 += a[c + 3] * b[c + 3];
  }
  for (; c < n; c++) s0 += a[c] * b[c];
  return (s0 + s1) + (s2 + s3);
}

/* Haar-random orthogonal d x d matrix into w (row-major), from a Gaussian matrix G whose rows are
 * orthonormalised by modified Gram-Schmidt in double. Gram-Schmidt is the QR factorisation
 * G^T = Q R with R_ii > 0, the sign convention that makes Q Haar-distributed (Mezzadri 2007); our
 * rows are Q's columns, i.e. W = Q^T, and Haar measure is transpose-invariant. MGS loses
 * orthogonality only as eps * cond(G) (~1e-12 for Gaussian G at d = 768), far below the float cast. */
static void haar_orthogonal(float *w, int d, normal_rng *g, double *a) {
  for (size_t k = 0; k < (size_t)d * d; k++) a[k] = normal(g);
  for (int r = 0; r < d; r++) {
    double *ar = a + (size_t)r * d;
    for (int q = 0; q < r; q++) {
      const double *aq = a + (size_t)q * d;
      double dot = dot4(aq, ar, d);
      for (int c = 0; c < d; c++) ar[c] -= dot * aq[c];
    }
    double nrm = sqrt(dot4(ar, ar, d));
    for (int c = 0; c < d; c++) ar[c] /= nrm;
  }
  for (size_t k = 0; k < (size_t)d * d; k++) w[k] = (float)a[k];
}

void dmx_mux_init_instances(float *out, dmx_muxing m, int N, int d, float gaussian_norm, float binary_eps,
                            uint64_t seed) {
  normal_rng g = {.s = seed};
  switch (m) {
    case DMX_MUX_GAUSSIAN_HADAMARD: {
      /* v_i = s * g_i / |g_i|, g_i ~ N(0, I_d), instance by instance */
      double *row = dmx_malloc((size_t)d * sizeof(double));
      for (int i = 0; i < N; i++) {
        double nrm = 0;
        for (int j = 0; j < d; j++) {
          row[j] = normal(&g);
          nrm += row[j] * row[j];
        }
        nrm = sqrt(nrm);
        for (int j = 0; j < d; j++) out[(size_t)i * d + j] = (float)(gaussian_norm * row[j] / nrm);
      }
      free(row);
      break;
    }
    case DMX_MUX_BINARY_HADAMARD: {
      /* c = floor(d/N); instance i owns [i*c, (i+1)*c), the last one up to d. epsilon widens every
       * block by floor(eps*c/2) on each side (clamped to [0, d)) so neighbouring blocks overlap. */
      int c = d / N;
      int widen = (int)floor((double)binary_eps * c / 2.0);
      if (widen < 0) widen = 0;
      memset(out, 0, (size_t)N * d * sizeof(float));
      for (int i = 0; i < N; i++) {
        int lo = i * c - widen, hi = (i == N - 1 ? d : (i + 1) * c) + widen;
        if (lo < 0) lo = 0;
        if (hi > d) hi = d;
        for (int j = lo; j < hi; j++) out[(size_t)i * d + j] = 1.0f;
      }
      break;
    }
    case DMX_MUX_RANDOM_ORTHO: {
      double *a = dmx_malloc((size_t)d * d * sizeof(double));
      for (int i = 0; i < N; i++) haar_orthogonal(out + (size_t)i * d * d, d, &g, a);
      free(a);
      break;
    }
  }
}

/* ---- device passes ------------------------------------------------------------------------------ */

/* the work-group a 1-D pass asks for; dmx_launch_exact rounds it to what the kernel allows */
static const size_t LOCAL_1D = 256;

/* x (B, T, d) = (1/N) sum_i v_i ⊙ e[b*N+i]; e (B*N, T, d), v (N, d) */
void dmx_mux_hadamard_forward(dmx_runtime *rt, dmx_tensor x, dmx_tensor e, dmx_tensor v, int B, int N, int T, int d) {
  DMX_NEED(x, (size_t)B * T * d);
  DMX_NEED(e, (size_t)B * N * T * d);
  DMX_NEED(v, (size_t)N * d);
  size_t loc = LOCAL_1D, glob = (size_t)B * T * d;
  dmx_launch_exact(rt, DMX_K_MUX_HADAMARD_FWD, 1, &glob, &loc, KA_T(x), KA_T(e), KA_T(v), KA_I(B), KA_I(N), KA_I(T),
                   KA_I(d), KA_F(1.0f / N));
}

bool dmx_embed_ln_mux_hadamard_fits(const dmx_runtime *rt, int d) { return rt->serial_reductions && d % 4 == 0; }

/* x (B, T, d) = (1/N) sum_i v_i ⊙ LN(word[ids] + pos[pos_ids] + type) without the per-instance
 * embeddings; ids, pos_ids (B*N, T) int32; ln_g, ln_b (d); v (N, d). */
void dmx_embed_ln_mux_hadamard_forward(dmx_runtime *rt, dmx_tensor x, dmx_tensor ids, dmx_tensor pos_ids,
                                       dmx_tensor word, dmx_tensor pos, dmx_tensor type, dmx_tensor ln_g,
                                       dmx_tensor ln_b, dmx_tensor v, int B, int N, int T, int d, float eps) {
  if (!dmx_embed_ln_mux_hadamard_fits(rt, d))
    dmx_die("embed_ln_mux_hadamard_forward: needs serial reductions and d %% 4 == 0 (d = %d; a program bug)", d);
  /* the kernel reads float4 pointers: every tensor must start on 16 bytes (the arena aligns them) */
  if ((x.off | word.off | pos.off | type.off | ln_g.off | ln_b.off | v.off) % 4)
    dmx_die("embed_ln_mux_hadamard_forward: a tensor offset is not a multiple of 4 floats (a program bug)");
  size_t rows = (size_t)B * T, loc = 1; /* one row per group: PoCL keeps the float4 code as written */
  dmx_launch_exact(rt, DMX_K_EMBED_LN_MUX_HADAMARD_ROWS, 1, &rows, &loc, KA_T(x), KA_T(ids), KA_T(pos_ids), KA_T(word),
                   KA_T(pos), KA_T(type), KA_T(ln_g), KA_T(ln_b), KA_T(v), KA_I(N), KA_I(T), KA_I(d), KA_F(eps),
                   KA_F(1.0f / N));
}

/* de (B*N, T, d) += v_i ⊙ dx / N; dv (N, d) += sum_{b,t} dx ⊙ e_i / N unless dv.buf is NULL */
void dmx_mux_hadamard_backward(dmx_runtime *rt, dmx_tensor de, dmx_tensor dv, dmx_tensor dx, dmx_tensor e, dmx_tensor v,
                               int B, int N, int T, int d) {
  size_t loc = LOCAL_1D, glob = (size_t)B * N * T * d;
  dmx_launch_exact(rt, DMX_K_MUX_HADAMARD_BWD_E, 1, &glob, &loc, KA_T(de), KA_T(dx), KA_T(v), KA_I(B), KA_I(N), KA_I(T),
                   KA_I(d), KA_F(1.0f / N));
  if (dv.buf) {
    size_t gv = (size_t)N * d, lv = dmx_local_pow2(rt, DMX_K_MUX_HADAMARD_BWD_V, 0, LOCAL_1D, 1);
    dmx_launch(rt, DMX_K_MUX_HADAMARD_BWD_V, 1, &gv, &lv, KA_T(dv), KA_T(dx), KA_T(e), KA_I(B), KA_I(N), KA_I(T),
               KA_I(d), KA_F(1.0f / N));
  }
}

/* x (B, T, d) = (1/sqrt N) sum_i e[b*N+i] W_i^T; perm, y scratch (N, B*T, d); W (N, d, d) */
void dmx_mux_ortho_forward(dmx_runtime *rt, dmx_tensor x, dmx_tensor perm, dmx_tensor y, dmx_tensor e, dmx_tensor W,
                           int B, int N, int T, int d) {
  size_t loc = LOCAL_1D, rows = (size_t)B * T, slice = rows * d, all = (size_t)N * slice;
  dmx_launch_exact(rt, DMX_K_MUX_PERMUTE, 1, &all, &loc, KA_T(perm), KA_T(e), KA_I(B), KA_I(N), KA_I(T), KA_I(d));
  /* y_i (B*T, d) = perm_i (B*T, d) @ W_i^T: the column-vector W_i e of the original, row by row */
  dmx_gemm_batched(rt, false, true, rows, (size_t)d, (size_t)d, 1.0f, perm, (size_t)d, slice, W, (size_t)d,
                   (size_t)d * d, 0.0f, y, (size_t)d, slice, (size_t)N);
  dmx_launch_exact(rt, DMX_K_MUX_SUM_INSTANCES, 1, &slice, &loc, KA_T(x), KA_T(y), KA_I(N), KA_UL(slice),
                   KA_F(1.0 / sqrt((double)N)));
}

/* de (B*N, T, d) += unpermute(dy_i W_i); dW_i (d, d) += dy_i^T perm_i unless dW.buf is NULL;
 * dy_i = dx / sqrt N. dperm, dy scratch (N, B*T, d); perm as left by the forward. */
void dmx_mux_ortho_backward(dmx_runtime *rt, dmx_tensor de, dmx_tensor dW, dmx_tensor dperm, dmx_tensor dy,
                            dmx_tensor dx, dmx_tensor perm, dmx_tensor W, int B, int N, int T, int d) {
  size_t loc = LOCAL_1D, rows = (size_t)B * T, slice = rows * d, all = (size_t)N * slice;
  dmx_launch_exact(rt, DMX_K_MUX_BROADCAST_INSTANCES, 1, &all, &loc, KA_T(dy), KA_T(dx), KA_I(N), KA_UL(slice),
                   KA_F(1.0 / sqrt((double)N)));
  /* dperm_i (B*T, d) = dy_i (B*T, d) @ W_i (d, d) */
  dmx_gemm_batched(rt, false, false, rows, (size_t)d, (size_t)d, 1.0f, dy, (size_t)d, slice, W, (size_t)d,
                   (size_t)d * d, 0.0f, dperm, (size_t)d, slice, (size_t)N);
  if (dW.buf) /* dW_i (d, d) += dy_i^T (d, B*T) @ perm_i (B*T, d) */
    dmx_gemm_batched(rt, true, false, (size_t)d, (size_t)d, rows, 1.0f, dy, (size_t)d, slice, perm, (size_t)d, slice,
                     1.0f, dW, (size_t)d, (size_t)d * d, (size_t)N);
  dmx_launch_exact(rt, DMX_K_MUX_UNPERMUTE_ACC, 1, &all, &loc, KA_T(de), KA_T(dperm), KA_I(B), KA_I(N), KA_I(T),
                   KA_I(d));
}
