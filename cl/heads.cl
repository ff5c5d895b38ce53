/* Kernels of the demultiplexing and retrieval heads (docs/datamux-spec.md §1.9-§1.10). The
 * concatenation [p_i ; h] of the original is never built: W1 [p; h] = W1p p + W1h h, so the
 * heads compute the two products separately and combine them here. Tensors are (pointer, offset). */

/* out (G*N, C) = P (G*N, C) + Q[row / N] (G, C) + bias (C) */
__kernel void group_broadcast_add(__global float *out_, ulong out_off, __global const float *P_, ulong P_off,
                                  __global const float *Q_, ulong Q_off, __global const float *b_, ulong b_off,
                                  int rows, int N, int C) {
  int c = get_global_id(0), r = get_global_id(1);
  if (c >= C || r >= rows) return;
  out_[out_off + (size_t)r * C + c] = P_[P_off + (size_t)r * C + c] + Q_[Q_off + (size_t)(r / N) * C + c] + b_[b_off + c];
}

/* dQ (G, C) += sum over i < N of dA (G*N, C) rows g*N+i */
__kernel void group_sum_backward(__global float *dQ_, ulong dQ_off, __global const float *dA_, ulong dA_off, int G,
                                 int N, int C) {
  int c = get_global_id(0), g = get_global_id(1);
  if (c >= C || g >= G) return;
  float s = 0.0f;
  for (int i = 0; i < N; i++) s += dA_[dA_off + ((size_t)g * N + i) * C + c];
  dQ_[dQ_off + (size_t)g * C + c] += s;
}

/* Token heads: out ((G*N)*T, C) row (g*N+i)*T+j = P[g*N+i] + Q[g*T+j] + bias */
__kernel void pair_broadcast_add(__global float *out_, ulong out_off, __global const float *P_, ulong P_off,
                                 __global const float *Q_, ulong Q_off, __global const float *b_, ulong b_off, int G,
                                 int N, int T, int C) {
  int c = get_global_id(0);
  int row = get_global_id(1);
  if (c >= C || row >= G * N * T) return;
  int j = row % T, gi = row / T, g = gi / N;
  out_[out_off + (size_t)row * C + c] =
      P_[P_off + (size_t)gi * C + c] + Q_[Q_off + ((size_t)g * T + j) * C + c] + b_[b_off + c];
}

/* dP (G*N, C) += sum over j of dA rows (g*N+i)*T+j */
__kernel void pair_sum_p_backward(__global float *dP_, ulong dP_off, __global const float *dA_, ulong dA_off, int G,
                                  int N, int T, int C) {
  int c = get_global_id(0), gi = get_global_id(1);
  if (c >= C || gi >= G * N) return;
  float s = 0.0f;
  for (int j = 0; j < T; j++) s += dA_[dA_off + ((size_t)gi * T + j) * C + c];
  dP_[dP_off + (size_t)gi * C + c] += s;
}

/* dQ (G*T, C) += sum over i of dA rows (g*N+i)*T+j */
__kernel void pair_sum_q_backward(__global float *dQ_, ulong dQ_off, __global const float *dA_, ulong dA_off, int G,
                                  int N, int T, int C) {
  int c = get_global_id(0), gj = get_global_id(1);
  if (c >= C || gj >= G * T) return;
  int g = gj / T, j = gj % T;
  float s = 0.0f;
  for (int i = 0; i < N; i++) s += dA_[dA_off + (((size_t)g * N + i) * T + j) * C + c];
  dQ_[dQ_off + (size_t)gj * C + c] += s;
}

/* Retrieval: out (S, C) row s = P[pidx[s]] + Q[s] + bias */
__kernel void indexed_add(__global float *out_, ulong out_off, __global const float *P_, ulong P_off,
                          __global const int *pidx_, ulong pidx_off, __global const float *Q_, ulong Q_off,
                          __global const float *b_, ulong b_off, int S, int C) {
  int c = get_global_id(0), s = get_global_id(1);
  if (c >= C || s >= S) return;
  int p = pidx_[pidx_off + s];
  out_[out_off + (size_t)s * C + c] = P_[P_off + (size_t)p * C + c] + Q_[Q_off + (size_t)s * C + c] + b_[b_off + c];
}

/* out (B, A, X) = swap of the first two axes of in (A, B, X); accumulate when acc != 0 */
__kernel void swap_axes01(__global float *out_, ulong out_off, __global const float *in_, ulong in_off, int A, int B,
                          int X, int acc) {
  int x = get_global_id(0), ab = get_global_id(1);
  if (x >= X || ab >= A * B) return;
  int a = ab / B, b = ab % B;
  size_t src = ((size_t)a * B + b) * X + x, dst = ((size_t)b * A + a) * X + x;
  float v = in_[in_off + src];
  if (acc)
    out_[out_off + dst] += v;
  else
    out_[out_off + dst] = v;
}

