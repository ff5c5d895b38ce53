/* Elementwise ops, bias and dropout kernels (layers/common_ops.c). Tensors arrive as
 * (pointer, element offset) pairs. Every *_bwd kernel accumulates (+=) into its gradient. */

/* ---------------------------------------------------------------- bias */

/* y (R, C) += b (C); exact 2-D grid (C, R) (no flat index can overflow int). */
__kernel void bias_add_fwd(__global float *y, ulong y_off, __global const float *b, ulong b_off, int R, int C) {
  int c = get_global_id(0), r = get_global_id(1);
  y[y_off + (ulong)r * C + c] += b[b_off + c];
}

/* db (C) += column sums of dy (R, C). Work-group (CW, RW): CW adjacent columns so row reads are
 * contiguous, RW row lanes each striding over the rows, then a fixed-order tree over the lanes in
 * local memory (deterministic, no atomics). get_local_size(1) must be a power of two. */
__kernel void bias_colsum_bwd(__global float *db, ulong db_off, __global const float *dy, ulong dy_off, int R, int C,
                              __local float *part) {
  int c = get_global_id(0);
  int lc = get_local_id(0), lr = get_local_id(1);
  int rw = get_local_size(1);
  float acc = 0.0f;
  if (c < C)
    for (int r = lr; r < R; r += rw) acc += dy[dy_off + (ulong)r * C + c];
  acc = dmx_column_sum(acc, part);
  if (lr == 0 && c < C) db[db_off + c] += acc;
}

/* The same with one work-item per column looping over every row (exact grid of C;
 * rt->serial_reductions, for CPUs): adjacent work-items read adjacent floats, so PoCL vectorises
 * across columns; each column's sum order depends only on R. */
__kernel void bias_colsum_bwd_cols(__global float *db, ulong db_off, __global const float *dy, ulong dy_off, int R,
                                   int C) {
  int c = get_global_id(0);
  __global const float *col = dy + dy_off + c;
  float acc = 0.0f;
  for (int r = 0; r < R; r++) acc += col[(ulong)r * C];
  db[db_off + c] += acc;
}

/* ---------------------------------------------------------------- GELU, tanh */

/* 1-D elementwise kernels from here on run over exactly n work-items (dmx_launch_exact): no
 * bounds guard, which would stop PoCL vectorising them. */

#define INV_SQRT2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

/* erf(x) by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, about the float rounding of erf near
 * 1): plain arithmetic and exp, which vectorise, where PoCL's erf is a scalar call per element
 * (GELU ran 6x slower with it). */
static float erf_poly(float x) {
  float z = fabs(x);
  float t = 1.0f / (1.0f + 0.3275911f * z);
  float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  return copysign(1.0f - poly * exp(-z * z), x);
}

__kernel void gelu_fwd(__global float *out, ulong out_off, __global const float *x, ulong x_off) {
  size_t i = get_global_id(0);
  float v = x[x_off + i];
  out[out_off + i] = 0.5f * v * (1.0f + erf_poly(v * INV_SQRT2));
}

/* d/dx [x Phi(x)] = Phi(x) + x phi(x) */
__kernel void gelu_bwd(__global float *dx, ulong dx_off, __global const float *x, ulong x_off,
                       __global const float *dout, ulong dout_off) {
  size_t i = get_global_id(0);
  float v = x[x_off + i];
  float d = 0.5f * (1.0f + erf_poly(v * INV_SQRT2)) + v * INV_SQRT_2PI * exp(-0.5f * v * v);
  dx[dx_off + i] += d * dout[dout_off + i];
}

__kernel void tanh_fwd(__global float *out, ulong out_off, __global const float *x, ulong x_off) {
  size_t i = get_global_id(0);
  out[out_off + i] = tanh(x[x_off + i]);
}

__kernel void tanh_bwd(__global float *dx, ulong dx_off, __global const float *y, ulong y_off,
                       __global const float *dout, ulong dout_off) {
  size_t i = get_global_id(0);
  float t = y[y_off + i];
  dx[dx_off + i] += (1.0f - t * t) * dout[dout_off + i];
}

/* ---------------------------------------------------------------- dropout */

/* Philox and the keep factors: cl/prelude.h (the fused attention kernels draw the same mask). */

/* One work-item per 4 elements (one Philox call each), over the n / 4 whole quads; the last n % 4
 * elements go to the *_tail kernels. scale = 1/(1-p), computed once on the host so forward and
 * backward agree exactly. */
__kernel void dropout_fwd(__global float *out, ulong out_off, __global const float *x, ulong x_off, float p,
                          float scale, uint seed, uint stream) {
  uint q = get_global_id(0), w0, w1, w2, w3;
  DMX_PHILOX4(seed, stream, q, w0, w1, w2, w3);
  __global const float *xi = x + x_off + 4 * (size_t)q;
  __global float *o = out + out_off + 4 * (size_t)q;
  o[0] = xi[0] * dmx_keep_of(w0, p, scale);
  o[1] = xi[1] * dmx_keep_of(w1, p, scale);
  o[2] = xi[2] * dmx_keep_of(w2, p, scale);
  o[3] = xi[3] * dmx_keep_of(w3, p, scale);
}

__kernel void dropout_bwd(__global float *dx, ulong dx_off, __global const float *dout, ulong dout_off, float p,
                          float scale, uint seed, uint stream) {
  uint q = get_global_id(0), w0, w1, w2, w3;
  DMX_PHILOX4(seed, stream, q, w0, w1, w2, w3);
  __global const float *g = dout + dout_off + 4 * (size_t)q;
  __global float *d = dx + dx_off + 4 * (size_t)q;
  d[0] += g[0] * dmx_keep_of(w0, p, scale);
  d[1] += g[1] * dmx_keep_of(w1, p, scale);
  d[2] += g[2] * dmx_keep_of(w2, p, scale);
  d[3] += g[3] * dmx_keep_of(w3, p, scale);
}

/* One work-item: elements 4q .. n-1 of the last, partial quad q = n / 4. */
__kernel void dropout_fwd_tail(__global float *out, ulong out_off, __global const float *x, ulong x_off, int n, float p,
                               float scale, uint seed, uint stream) {
  int q = n / 4;
  uint w[4];
  DMX_PHILOX4(seed, stream, (uint)q, w[0], w[1], w[2], w[3]);
  for (int j = 0; 4 * q + j < n; j++) out[out_off + 4 * q + j] = x[x_off + 4 * q + j] * dmx_keep_of(w[j], p, scale);
}

__kernel void dropout_bwd_tail(__global float *dx, ulong dx_off, __global const float *dout, ulong dout_off, int n,
                               float p, float scale, uint seed, uint stream) {
  int q = n / 4;
  uint w[4];
  DMX_PHILOX4(seed, stream, (uint)q, w[0], w[1], w[2], w[3]);
  for (int j = 0; 4 * q + j < n; j++)
    dx[dx_off + 4 * q + j] += dout[dout_off + 4 * q + j] * dmx_keep_of(w[j], p, scale);
}

/* ---------------------------------------------------------------- add, axpy, copy */

__kernel void add_fwd(__global float *out, ulong out_off, __global const float *a, ulong a_off, __global const float *b,
                      ulong b_off) {
  size_t i = get_global_id(0);
  out[out_off + i] = a[a_off + i] + b[b_off + i];
}

__kernel void axpy_fwd(__global float *y, ulong y_off, __global const float *x, ulong x_off, float alpha) {
  size_t i = get_global_id(0);
  y[y_off + i] += alpha * x[x_off + i];
}

__kernel void copy_fwd(__global float *out, ulong out_off, __global const float *x, ulong x_off) {
  size_t i = get_global_id(0);
  out[out_off + i] = x[x_off + i];
}

/* ---------------------------------------------------------------- row gather */

/* out (R, C) row r = x row idx[r]; exact grid (C, R). */
__kernel void gather_rows_fwd(__global float *out, ulong out_off, __global const float *x, ulong x_off,
                              __global const int *idx, ulong idx_off, int R, int C) {
  int c = get_global_id(0), r = get_global_id(1);
  int src = idx[idx_off + r];
  out[out_off + (ulong)r * C + c] = x[x_off + (ulong)src * C + c];
}

/* dx row idx[r] += dout row r; the indices are distinct, so no two work-items share a target. */
__kernel void gather_rows_bwd(__global float *dx, ulong dx_off, __global const float *dout, ulong dout_off,
                              __global const int *idx, ulong idx_off, int R, int C) {
  int c = get_global_id(0), r = get_global_id(1);
  int dst = idx[idx_off + r];
  dx[dx_off + (ulong)dst * C + c] += dout[dout_off + (ulong)r * C + c];
}
