/* Multi-head attention core (layers/attention.c): the layout changes around the batched GEMMs and
 * the fused mask + softmax and its backward. Tensors are (pointer, element offset) pairs; the mask
 * is an int32 tensor (B, T) with 1 = attend, 0 = padding key. */

/* qkv (B, T, 3d) rows [q | k | v], head h in columns h*hd .. h*hd+hd-1 of each third ->
 * q, k, v (B, H, T, hd). One work-item per (column c of d, row b*T+t): an exact grid (no guard). */
__kernel void attention_permute(__global float *q, ulong q_off, __global float *k, ulong k_off, __global float *v,
                                ulong v_off, __global const float *qkv, ulong qkv_off, int B, int T, int d, int H) {
  int c = get_global_id(0), bt = get_global_id(1);
  int hd = d / H, h = c / hd, e = c % hd, b = bt / T, t = bt % T;
  size_t src = qkv_off + (size_t)bt * 3 * d + c;
  size_t dst = (((size_t)b * H + h) * T + t) * hd + e;
  q[q_off + dst] = qkv[src];
  k[k_off + dst] = qkv[src + d];
  v[v_off + dst] = qkv[src + 2 * (size_t)d];
}

/* out (B, T, d) = y (B, H, T, hd) with heads concatenated per row. */
__kernel void attention_unpermute(__global float *out, ulong out_off, __global const float *y, ulong y_off, int B,
                                  int T, int d, int H) {
  int c = get_global_id(0), bt = get_global_id(1);
  int hd = d / H, h = c / hd, e = c % hd, b = bt / T, t = bt % T;
  out[out_off + (size_t)bt * d + c] = y[y_off + (((size_t)b * H + h) * T + t) * hd + e];
}

/* The inverse of attention_unpermute: dy (B, H, T, hd) = dout (B, T, d) split by head. */
__kernel void attention_unpermute_backward(__global float *dy, ulong dy_off, __global const float *dout,
                                           ulong dout_off, int B, int T, int d, int H) {
  int c = get_global_id(0), bt = get_global_id(1);
  int hd = d / H, h = c / hd, e = c % hd, b = bt / T, t = bt % T;
  dy[dy_off + (((size_t)b * H + h) * T + t) * hd + e] = dout[dout_off + (size_t)bt * d + c];
}

/* dqkv (B, T, 3d) += dq, dk, dv (B, H, T, hd) placed back into [q | k | v] rows. */
__kernel void attention_permute_backward(__global float *dqkv, ulong dqkv_off, __global const float *dq, ulong dq_off,
                                         __global const float *dk, ulong dk_off, __global const float *dv,
                                         ulong dv_off, int B, int T, int d, int H) {
  int c = get_global_id(0), bt = get_global_id(1);
  int hd = d / H, h = c / hd, e = c % hd, b = bt / T, t = bt % T;
  size_t dst = dqkv_off + (size_t)bt * 3 * d + c;
  size_t src = (((size_t)b * H + h) * T + t) * hd + e;
  dqkv[dst] += dq[dq_off + src];
  dqkv[dst + d] += dk[dk_off + src];
  dqkv[dst + 2 * (size_t)d] += dv[dv_off + src];
}

/* Fixed-order tree reduction over the work-group (size a power of two); every item gets the result. */
#define WG_REDUCE(red, lid, n, x, OP)                                   \
  do {                                                                  \
    red[lid] = (x);                                                     \
    barrier(CLK_LOCAL_MEM_FENCE);                                       \
    for (int s_ = (n) / 2; s_ > 0; s_ >>= 1) {                          \
      if ((lid) < s_) red[lid] = OP(red[lid], red[(lid) + s_]);         \
      barrier(CLK_LOCAL_MEM_FENCE);                                     \
    }                                                                   \
    (x) = red[0];                                                       \
    barrier(CLK_LOCAL_MEM_FENCE);                                       \
  } while (0)
#define OP_ADD(a, b) ((a) + (b))

/* In place on att (B*H*T rows of T scores, already scaled by the GEMM): masked keys get -1e9 (so
 * they get exactly zero probability, and a row whose keys are all masked is uniform rather than
 * NaN), then a numerically stable softmax. One work-group per row; red holds local-size floats. */
__kernel void attention_softmax_forward(__global float *att, ulong att_off, __global const int *mask, ulong mask_off,
                                        int has_mask, int T, int H, int rows, __local float *red) {
  int row = get_group_id(0), lid = get_local_id(0), n = get_local_size(0);
  /* No early return for the rounding groups: PoCL 3.1 miscompiles a return ahead of barriers
   * (wrong results in other groups); such a group runs its barriers over an empty row instead. */
  int n_cols = row < rows ? T : 0;
  int b = row / (H * T);
  __global float *a = att + att_off + (size_t)row * T;
  __global const int *m = mask + mask_off + (size_t)b * T;
  float mx = -INFINITY;
  for (int j = lid; j < n_cols; j += n) {
    float s = (has_mask && m[j] == 0) ? -1e9f : a[j];
    a[j] = s;
    mx = fmax(mx, s);
  }
  WG_REDUCE(red, lid, n, mx, fmax);
  float sum = 0.0f;
  for (int j = lid; j < n_cols; j += n) {
    float e = exp(a[j] - mx);
    a[j] = e;
    sum += e;
  }
  WG_REDUCE(red, lid, n, sum, OP_ADD);
  float inv = 1.0f / sum;
  for (int j = lid; j < n_cols; j += n) a[j] *= inv;
}

/* In place on datt: dscores = scale * att * (datt - sum_j datt*att), zero for masked keys (their
 * scores are constants, which matters for rows whose keys are all masked). One work-group per row. */
__kernel void attention_softmax_backward(__global float *datt, ulong datt_off, __global const float *att,
                                         ulong att_off, __global const int *mask, ulong mask_off, int has_mask,
                                         int T, int H, int rows, float scale, __local float *red) {
  int row = get_group_id(0), lid = get_local_id(0), n = get_local_size(0);
  int n_cols = row < rows ? T : 0; /* see attention_softmax_forward */
  int b = row / (H * T);
  __global float *g = datt + datt_off + (size_t)row * T;
  __global const float *a = att + att_off + (size_t)row * T;
  __global const int *m = mask + mask_off + (size_t)b * T;
  float dot = 0.0f;
  for (int j = lid; j < n_cols; j += n) dot += g[j] * a[j];
  WG_REDUCE(red, lid, n, dot, OP_ADD);
  for (int j = lid; j < n_cols; j += n) {
    float v = scale * a[j] * (g[j] - dot);
    g[j] = (has_mask && m[j] == 0) ? 0.0f : v;
  }
}

/* Four consecutive floats by element: a row of T scores starts anywhere, so no float4 pointer
 * (16-byte alignment) and no vload4 (element loads on PoCL anyway). */
static float4 load4(__global const float *p, int j) { return (float4)(p[j], p[j + 1], p[j + 2], p[j + 3]); }
static void store4(float4 v, __global float *p, int j) {
  p[j] = v.s0;
  p[j + 1] = v.s1;
  p[j + 2] = v.s2;
  p[j + 3] = v.s3;
}

/* The two kernels above with one work-item per row (exact grid of rows; rt->serial_reductions, for
 * CPUs): no barriers. Same masking and results up to summation order. */
__kernel void attention_softmax_forward_rows(__global float *att, ulong att_off, __global const int *mask,
                                             ulong mask_off, int has_mask, int T, int H) {
  size_t row = get_global_id(0);
  int b = row / ((size_t)H * T);
  __global float *a = att + att_off + row * T;
  __global const int *m = mask + mask_off + (size_t)b * T;
  /* four lanes: one max/sum chain would wait on each add, and exp of a float4 is PoCL's vector exp
   * (3.4 -> 1.1 ms for 16x4 heads of 89x89 scores) */
  float4 mx4 = -INFINITY;
  int j = 0;
  for (; j + 3 < T; j += 4) {
    float4 s = load4(a, j);
    if (has_mask) s = select(s, (float4)(-1e9f), (int4)(m[j], m[j + 1], m[j + 2], m[j + 3]) == 0);
    store4(s, a, j);
    mx4 = fmax(mx4, s);
  }
  float mx = fmax(fmax(mx4.s0, mx4.s1), fmax(mx4.s2, mx4.s3));
  for (; j < T; j++) {
    float s = (has_mask && m[j] == 0) ? -1e9f : a[j];
    a[j] = s;
    mx = fmax(mx, s);
  }
  float4 sum4 = 0.0f;
  for (j = 0; j + 3 < T; j += 4) {
    float4 e = exp(load4(a, j) - mx);
    store4(e, a, j);
    sum4 += e;
  }
  float sum = (sum4.s0 + sum4.s1) + (sum4.s2 + sum4.s3);
  for (; j < T; j++) {
    float e = exp(a[j] - mx);
    a[j] = e;
    sum += e;
  }
  float inv = 1.0f / sum;
  for (j = 0; j < T; j++) a[j] *= inv;
}

__kernel void attention_softmax_backward_rows(__global float *datt, ulong datt_off, __global const float *att,
                                              ulong att_off, __global const int *mask, ulong mask_off, int has_mask,
                                              int T, int H, float scale) {
  size_t row = get_global_id(0);
  int b = row / ((size_t)H * T);
  __global float *g = datt + datt_off + row * T;
  __global const float *a = att + att_off + row * T;
  __global const int *m = mask + mask_off + (size_t)b * T;
  float4 dot4 = 0.0f;
  int j = 0;
  for (; j + 3 < T; j += 4) dot4 += load4(g, j) * load4(a, j);
  float dot = (dot4.s0 + dot4.s1) + (dot4.s2 + dot4.s3);
  for (; j < T; j++) dot += g[j] * a[j];
  for (j = 0; j < T; j++) {
    float v = scale * a[j] * (g[j] - dot);
    g[j] = (has_mask && m[j] == 0) ? 0.0f : v;
  }
}
