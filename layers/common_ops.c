/* Elementwise ops, bias, dropout and row gathers: thin launchers over cl/activation.cl.
 * Elementwise kernels run over exact grids (dmx_launch_exact: no bounds guard in the kernel);
 * reductions pass an explicit local size so they run in a fixed, device-independent order. */
#include "layers/common_ops.h"

#include <string.h>

#define EW_LOCAL 256 /* 1-D elementwise kernels */

static void launch_1d(dmx_runtime *rt, dmx_kernel_id kernel, int n, int nargs, const dmx_karg *args) {
  if (n <= 0) return;
  size_t g = (size_t)n, l = EW_LOCAL;
  dmx_launch_exact_at(rt, dmx_kernel(rt, kernel), kernel, 1, &g, &l, nargs, args, __FILE__, __LINE__);
}
#define EW(rt, kernel, n, ...) \
  launch_1d((rt), (kernel), (n), (int)(sizeof((dmx_karg[]){__VA_ARGS__}) / sizeof(dmx_karg)), (dmx_karg[]){__VA_ARGS__})

/* Exact 2-D grid (C, R): work-groups of up to 64 columns of one row. */
static void grid_cr(int R, int C, size_t g[2], size_t l[2]) {
  g[0] = (size_t)C;
  g[1] = (size_t)R;
  l[0] = 64;
  l[1] = 1;
}

void dmx_bias_add_forward(dmx_runtime *rt, dmx_tensor y, dmx_tensor b, int R, int C) {
  if (R <= 0 || C <= 0) return;
  size_t g[2], l[2];
  grid_cr(R, C, g, l);
  dmx_launch_exact(rt, DMX_K_BIAS_ADD_FWD, 2, g, l, KA_T(y), KA_T(b), KA_I(R), KA_I(C));
}

typedef struct {
  dmx_native_mem mem; /* db, dy */
  size_t db_off, dy_off;
  int R, C;
} colsum_block;

/* Row after row into a local sum: reads dy once in storage order (PoCL's column-per-work-item form
 * walked the rows once per 16 columns, at ~6 GB/s). */
static void CL_CALLBACK run_colsum(void *p) {
  const colsum_block *b = p;
  float *db = dmx_native_ptr(&b->mem, 0) + b->db_off;
  const float *dy = dmx_native_ptr(&b->mem, 1) + b->dy_off;
  float sum[1024];
  for (int c0 = 0; c0 < b->C; c0 += 1024) {
    int w = b->C - c0 < 1024 ? b->C - c0 : 1024;
    for (int c = 0; c < w; c++) sum[c] = 0.0f;
    for (int r = 0; r < b->R; r++) {
      const float *row = dy + (size_t)r * b->C + c0;
      for (int c = 0; c < w; c++) sum[c] += row[c];
    }
    for (int c = 0; c < w; c++) db[c0 + c] += sum[c];
  }
}

void dmx_bias_add_backward(dmx_runtime *rt, dmx_tensor db, dmx_tensor dy, int R, int C) {
  if (R <= 0 || C <= 0) return;
  if (rt->native_loops) {
    colsum_block b = {.db_off = db.off, .dy_off = dy.off, .R = R, .C = C};
    cl_mem bufs[2] = {db.buf, dy.buf};
    dmx_native_enqueue(rt, run_colsum, &b, sizeof b, &b.mem, bufs, 2, DMX_K_BIAS_COLSUM_BWD_COLS,
                       "bias_colsum (host loop)");
    return;
  }
  if (rt->serial_reductions) {
    size_t gc = (size_t)C, lc = 16;
    dmx_launch_exact(rt, DMX_K_BIAS_COLSUM_BWD_COLS, 1, &gc, &lc, KA_T(db), KA_T(dy), KA_I(R), KA_I(C));
    return;
  }
  /* 16 adjacent columns x 16 row lanes per group: contiguous 64-byte reads per row, and the
   * per-column sum's order depends only on R (deterministic). */
  size_t l[2] = {dmx_local_pow2(rt, DMX_K_BIAS_COLSUM_BWD, 0, 16, 1), 0};
  l[1] = dmx_local_pow2(rt, DMX_K_BIAS_COLSUM_BWD, 1, 16, l[0]);
  size_t g[2] = {(size_t)C, l[1]};
  dmx_launch(rt, DMX_K_BIAS_COLSUM_BWD, 2, g, l, KA_T(db), KA_T(dy), KA_I(R), KA_I(C),
             KA_LOCAL(l[0] * l[1] * sizeof(float)));
}

void dmx_gelu_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int n) {
  EW(rt, DMX_K_GELU_FWD, n, KA_T(out), KA_T(x));
}

void dmx_gelu_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor x, dmx_tensor dout, int n) {
  EW(rt, DMX_K_GELU_BWD, n, KA_T(dx), KA_T(x), KA_T(dout));
}

void dmx_tanh_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int n) {
  EW(rt, DMX_K_TANH_FWD, n, KA_T(out), KA_T(x));
}

void dmx_tanh_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor y, dmx_tensor dout, int n) {
  EW(rt, DMX_K_TANH_BWD, n, KA_T(dx), KA_T(y), KA_T(dout));
}

/* ---------------------------------------------------------------- dropout */

static void check_p(float p) {
  if (!(p >= 0.0f && p < 1.0f)) dmx_die("dropout probability %g is outside [0, 1)", (double)p);
}

/* uint32 arguments travel as int bit patterns (KA_I) and are read as uint by the kernel. */
void dmx_dropout_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int n, float p, uint32_t seed,
                         uint32_t stream) {
  check_p(p);
  if (p == 0.0f) { /* identity: no RNG work */
    if (out.buf != x.buf || out.off != x.off) dmx_copy_forward(rt, out, x, n);
    return;
  }
  float scale = 1.0f / (1.0f - p);
  EW(rt, DMX_K_DROPOUT_FWD, n / 4, KA_T(out), KA_T(x), KA_F(p), KA_F(scale), KA_U(seed), KA_U(stream));
  if (n % 4)
    EW(rt, DMX_K_DROPOUT_FWD_TAIL, 1, KA_T(out), KA_T(x), KA_I(n), KA_F(p), KA_F(scale), KA_U(seed), KA_U(stream));
}

void dmx_dropout_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dout, int n, float p, uint32_t seed,
                          uint32_t stream) {
  check_p(p);
  if (p == 0.0f) {
    dmx_axpy(rt, dx, dout, 1.0f, n);
    return;
  }
  float scale = 1.0f / (1.0f - p);
  EW(rt, DMX_K_DROPOUT_BWD, n / 4, KA_T(dx), KA_T(dout), KA_F(p), KA_F(scale), KA_U(seed), KA_U(stream));
  if (n % 4)
    EW(rt, DMX_K_DROPOUT_BWD_TAIL, 1, KA_T(dx), KA_T(dout), KA_I(n), KA_F(p), KA_F(scale), KA_U(seed), KA_U(stream));
}

/* Mirror of philox4 / dropout_keep4 in cl/activation.cl: word i % 4 of counter i / 4. */
float dmx_dropout_uniform_host(uint32_t seed, uint32_t stream, uint32_t i) {
  uint32_t c0 = i >> 2, c1 = 0, c2 = 0, c3 = 0, k0 = seed, k1 = stream;
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t lo0 = (uint32_t)p0, hi0 = (uint32_t)(p0 >> 32);
    uint32_t lo1 = (uint32_t)p1, hi1 = (uint32_t)(p1 >> 32);
    uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  uint32_t word[4] = {c0, c1, c2, c3};
  return (float)(word[i & 3] >> 8) * (1.0f / 16777216.0f);
}

/* ---------------------------------------------------------------- add, dmx_axpy, copy */

void dmx_add_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor a, dmx_tensor b, int n) {
  EW(rt, DMX_K_ADD_FWD, n, KA_T(out), KA_T(a), KA_T(b));
}

void dmx_axpy(dmx_runtime *rt, dmx_tensor y, dmx_tensor x, float alpha, int n) {
  EW(rt, DMX_K_AXPY_FWD, n, KA_T(y), KA_T(x), KA_F(alpha));
}

void dmx_copy_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, int n) {
  EW(rt, DMX_K_COPY_FWD, n, KA_T(out), KA_T(x));
}

/* ---------------------------------------------------------------- row gather */

void dmx_gather_rows_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, dmx_tensor idx, int R, int C) {
  if (R <= 0 || C <= 0) return;
  size_t g[2], l[2];
  grid_cr(R, C, g, l);
  dmx_launch_exact(rt, DMX_K_GATHER_ROWS_FWD, 2, g, l, KA_T(out), KA_T(x), KA_T(idx), KA_I(R), KA_I(C));
}

void dmx_gather_rows_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dout, dmx_tensor idx, int R, int C) {
  if (R <= 0 || C <= 0) return;
  size_t g[2], l[2];
  grid_cr(R, C, g, l);
  dmx_launch_exact(rt, DMX_K_GATHER_ROWS_BWD, 2, g, l, KA_T(dx), KA_T(dout), KA_T(idx), KA_I(R), KA_I(C));
}
