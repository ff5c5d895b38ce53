/* Multi-head attention core (layers/attention.c): the layout changes around the batched GEMMs and
 * the fused mask + softmax and its backward. Tensors are (pointer, element offset) pairs; the mask
 * is an int32 tensor (B, T) with 1 = attend, 0 = padding key. */

/* The four layout changes run over a (e, t, b*H + h) grid: e, the column within the head, is the
 * fastest dimension and contiguous on both sides, and the integer divisions (scalar on CPUs, where
 * per-element ones made these copies run at 3.6 GB/s) happen only in the uniform dimension. */
#define ATT_PERMUTE_INDEX                                                   \
  int e = get_global_id(0), t = get_global_id(1), bh = get_global_id(2); \
  int hd = d / H, b = bh / H, h = bh % H;                                 \
  size_t head = ((size_t)bh * T + t) * hd + e;                            \
  size_t row = (size_t)b * T + t

/* qkv (B, T, 3d) rows [q | k | v], head h in columns h*hd .. h*hd+hd-1 of each third ->
 * q, k, v (B, H, T, hd). */
__kernel void attention_permute(__global float *q, ulong q_off, __global float *k, ulong k_off, __global float *v,
                                ulong v_off, __global const float *qkv, ulong qkv_off, int B, int T, int d, int H) {
  ATT_PERMUTE_INDEX;
  size_t src = qkv_off + row * 3 * d + (size_t)h * hd + e;
  q[q_off + head] = qkv[src];
  k[k_off + head] = qkv[src + d];
  v[v_off + head] = qkv[src + 2 * (size_t)d];
}

/* out (B, T, d) = y (B, H, T, hd) with heads concatenated per row. */
__kernel void attention_unpermute(__global float *out, ulong out_off, __global const float *y, ulong y_off, int B,
                                  int T, int d, int H) {
  ATT_PERMUTE_INDEX;
  out[out_off + row * d + (size_t)h * hd + e] = y[y_off + head];
}

/* The inverse of attention_unpermute: dy (B, H, T, hd) = dout (B, T, d) split by head. */
__kernel void attention_unpermute_backward(__global float *dy, ulong dy_off, __global const float *dout,
                                           ulong dout_off, int B, int T, int d, int H) {
  ATT_PERMUTE_INDEX;
  dy[dy_off + head] = dout[dout_off + row * d + (size_t)h * hd + e];
}

/* dqkv (B, T, 3d) += dq, dk, dv (B, H, T, hd) placed back into [q | k | v] rows. */
__kernel void attention_permute_backward(__global float *dqkv, ulong dqkv_off, __global const float *dq, ulong dq_off,
                                         __global const float *dk, ulong dk_off, __global const float *dv,
                                         ulong dv_off, int B, int T, int d, int H) {
  ATT_PERMUTE_INDEX;
  size_t dst = dqkv_off + row * 3 * d + (size_t)h * hd + e;
  dqkv[dst] += dq[dq_off + head];
  dqkv[dst + d] += dk[dk_off + head];
  dqkv[dst + 2 * (size_t)d] += dv[dv_off + head];
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

/* ---------------------------------------------------------------- fused attention */

/* Flash-attention style (ggml's flash_attn_f32.cl forward; the backward recomputes the
 * probabilities from the saved log-sum-exp): scores, mask, online softmax, dropout and P.V in one
 * pass over the keys, straight from the fused QKV rows (B, T, 3d) into the output rows (B, T, d),
 * so neither the (B, H, T, T) scores nor the permuted copies exist. Same scores (q * scale) . k,
 * the same -1e9 for masked keys and the same Philox element numbering (b, h, i, j) as the GEMM
 * path, so the two agree up to summation order. Head size at most DMX_ATT_HD (host checks).
 * Two layouts of the same arithmetic: *_rows, one work-item per query row with no local memory
 * (CPU devices: PoCL vectorises across the work-items and a barrier costs a pass); *_tiles, a
 * work-group of rows that stages each key tile (K and V, or Q and dO) in local memory (GPUs).
 * Rows are numbered r = (b * H + h) * T + i; dsum is (B, H, T) and lse (B, H, T, 2): each row's
 * running max m and log of its sum, apart, since m + log(l) rounds the log away when m is the
 * -1e9 of a fully masked row. P_ij = exp((s_ij - m_i) - log l_i). */
#define DMX_ATT_HD 64

typedef struct {
  int b, h, i, hd;
  size_t rs;                 /* floats per qkv row: 3d */
  __global const float *qkv; /* this (b, h)'s column block: row t's q at qkv + t * rs */
} att_row;

static att_row att_locate(size_t r, __global const float *qkv, int T, int d, int H) {
  att_row a;
  a.i = (int)(r % (size_t)T);
  size_t bh = r / (size_t)T;
  a.h = (int)(bh % (size_t)H);
  a.b = (int)(bh / (size_t)H);
  a.hd = d / H;
  a.rs = 3 * (size_t)d;
  a.qkv = qkv + (size_t)a.b * T * a.rs + (size_t)a.h * a.hd;
  return a;
}

/* One key of one query row's online softmax: s is the (masked) score, v the key's value row. */
static void att_online_step(float s, float keep, __global const float *v, __local const float *vl, int hd, float *m,
                            float *l, float *acc) {
  float mn = fmax(*m, s), corr = exp(*m - mn), e = exp(s - mn);
  *l = *l * corr + e;
  float w = e * keep;
  if (vl)
    for (int c = 0; c < hd; c++) acc[c] = acc[c] * corr + w * vl[c];
  else
    for (int c = 0; c < hd; c++) acc[c] = acc[c] * corr + w * v[c];
  *m = mn;
}

/* The CPU layout works on float4s (head size a multiple of 4, rows 16-byte aligned: the host
 * checks) with one exp per key: the running max moves rarely, and one work-item's branch costs
 * nothing on a CPU. */
/* The query row of work-item lid in a tiled kernel's group: groups of get_local_size(0) rows per
 * (b, h); *live is false for the rows past T of a head's last group (they run the barriers only
 * and stand on row 0). */
static size_t att_tile_row(int T, bool *live) {
  int lid = get_local_id(0), wg = get_local_size(0), groups = (T + wg - 1) / wg;
  size_t g = get_group_id(0), bh = g / (size_t)groups;
  int i = (int)(g % (size_t)groups) * wg + lid;
  *live = i < T;
  return bh * (size_t)T + (size_t)(*live ? i : 0);
}

/* Query row a's scaled q, its dO (go) and zeroed dq; returns D = dO . O. */
static float att_dq_begin(const att_row *a, int T, int d, float scale, __global const float *out,
                          __global const float *dout, float *q, float *go, float *dq) {
  size_t orow = ((size_t)a->b * T + a->i) * d + (size_t)a->h * a->hd;
  float D = 0.0f;
  for (int c = 0; c < a->hd; c++) {
    q[c] = a->qkv[(size_t)a->i * a->rs + c] * scale;
    go[c] = dout[orow + c];
    D += go[c] * out[orow + c];
    dq[c] = 0.0f;
  }
  return D;
}

static void att_dq_end(const att_row *a, int T, float scale, const float *dq, float D, __global float *dqkv,
                       __global float *dsum, size_t r) {
  __global float *g = dqkv + ((size_t)a->b * T + a->i) * a->rs + (size_t)a->h * a->hd;
  for (int c = 0; c < a->hd; c++) g[c] += scale * dq[c];
  dsum[r] = D;
}

/* Key row a's k and v, and zeroed dk, dv. */
static void att_dkv_begin(const att_row *a, int d, float *k, float *v, float *dk, float *dv) {
  for (int c = 0; c < a->hd; c++) {
    k[c] = a->qkv[(size_t)a->i * a->rs + d + c];
    v[c] = a->qkv[(size_t)a->i * a->rs + 2 * d + c];
    dk[c] = 0.0f;
    dv[c] = 0.0f;
  }
}

static void att_dkv_end(const att_row *a, int T, int d, const float *dk, const float *dv, __global float *dqkv) {
  __global float *g = dqkv + ((size_t)a->b * T + a->i) * a->rs + (size_t)a->h * a->hd;
  for (int c = 0; c < a->hd; c++) {
    g[d + c] += dk[c];
    g[2 * d + c] += dv[c];
  }
}

__kernel void attention_fused_forward_rows(__global float *out, ulong out_off, __global float *lse, ulong lse_off,
                                           __global const float *qkv, ulong qkv_off, __global const int *mask,
                                           ulong mask_off, int has_mask, int T, int d, int H, float scale, float p,
                                           float keep_scale, uint seed, uint stream) {
  size_t r = get_global_id(0);
  att_row a = att_locate(r, qkv + qkv_off, T, d, H);
  __global const int *mk = mask + mask_off + (size_t)a.b * T;
  int h4 = a.hd / 4;
  size_t rs4 = a.rs / 4, d4 = (size_t)d / 4;
  __global const float4 *base = (__global const float4 *)a.qkv;
  float4 q[DMX_ATT_HD / 4], acc[DMX_ATT_HD / 4];
  for (int c = 0; c < h4; c++) {
    q[c] = base[(size_t)a.i * rs4 + c] * scale;
    acc[c] = (float4)(0.0f);
  }
  float m = -INFINITY, l = 0.0f;
  uint e0 = (uint)(r * (size_t)T);
  for (int j = 0; j < T; j++) {
    __global const float4 *k = base + (size_t)j * rs4 + d4, *v = k + d4;
    float4 s4 = (float4)(0.0f);
    for (int c = 0; c < h4; c++) s4 += q[c] * k[c];
    float s = (s4.s0 + s4.s1) + (s4.s2 + s4.s3);
    if (has_mask && mk[j] == 0) s = -1e9f;
    if (s > m) { /* a new maximum: rescale what was summed so far */
      float corr = exp(m - s);
      l *= corr;
      for (int c = 0; c < h4; c++) acc[c] *= corr;
      m = s;
    }
    float e = exp(s - m);
    l += e;
    float w = p > 0.0f ? e * dmx_dropout_keep1(seed, stream, e0 + (uint)j, p, keep_scale) : e;
    for (int c = 0; c < h4; c++) acc[c] += w * v[c];
  }
  __global float4 *o = (__global float4 *)(out + out_off + ((size_t)a.b * T + a.i) * d + (size_t)a.h * a.hd);
  float inv = 1.0f / l;
  for (int c = 0; c < h4; c++) o[c] = acc[c] * inv;
  lse[lse_off + 2 * r] = m;
  lse[lse_off + 2 * r + 1] = log(l);
}

/* Work-group: get_local_size(0) consecutive query rows of one (b, h) (the last group of a head
 * runs its barriers with idle rows); kt, vt: local-size x hd floats each. */
__kernel void attention_fused_forward_tiles(__global float *out, ulong out_off, __global float *lse, ulong lse_off,
                                            __global const float *qkv, ulong qkv_off, __global const int *mask,
                                            ulong mask_off, int has_mask, int T, int d, int H, float scale, float p,
                                            float keep_scale, uint seed, uint stream, __local float *kt,
                                            __local float *vt) {
  int lid = get_local_id(0), wg = get_local_size(0);
  bool live;
  size_t r = att_tile_row(T, &live);
  att_row a = att_locate(r, qkv + qkv_off, T, d, H);
  __global const int *mk = mask + mask_off + (size_t)a.b * T;
  float q[DMX_ATT_HD], acc[DMX_ATT_HD];
  for (int c = 0; c < a.hd; c++) {
    q[c] = a.qkv[(size_t)a.i * a.rs + c] * scale;
    acc[c] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  uint e0 = (uint)(r * (size_t)T);
  for (int j0 = 0; j0 < T; j0 += wg) {
    int jl = j0 + lid;
    if (jl < T)
      for (int c = 0; c < a.hd; c++) {
        kt[lid * a.hd + c] = a.qkv[(size_t)jl * a.rs + d + c];
        vt[lid * a.hd + c] = a.qkv[(size_t)jl * a.rs + 2 * d + c];
      }
    barrier(CLK_LOCAL_MEM_FENCE);
    int nj = min(wg, T - j0);
    for (int jj = 0; live && jj < nj; jj++) {
      int j = j0 + jj;
      float s = 0.0f;
      for (int c = 0; c < a.hd; c++) s += q[c] * kt[jj * a.hd + c];
      if (has_mask && mk[j] == 0) s = -1e9f;
      float keep = p > 0.0f ? dmx_dropout_keep1(seed, stream, e0 + (uint)j, p, keep_scale) : 1.0f;
      att_online_step(s, keep, NULL, vt + jj * a.hd, a.hd, &m, &l, acc);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (live) {
    __global float *o = out + out_off + ((size_t)a.b * T + a.i) * d + (size_t)a.h * a.hd;
    float inv = 1.0f / l;
    for (int c = 0; c < a.hd; c++) o[c] = acc[c] * inv;
    lse[lse_off + 2 * r] = m;
    lse[lse_off + 2 * r + 1] = log(l);
  }
}

/* Backward, first half, per query row i: D_i = dO_i . O_i (into dsum), and
 * dq_i += scale * sum_j dS_ij k_j with P_ij = exp(s_ij - lse_i), dP_ij = keep_ij dO_i . v_j,
 * dS_ij = P_ij (dP_ij - D_i), zero for masked keys. Accumulates into dqkv's q columns. */
__kernel void attention_fused_dq_rows(__global float *dqkv, ulong dqkv_off, __global float *dsum, ulong dsum_off,
                                      __global const float *qkv, ulong qkv_off, __global const float *out,
                                      ulong out_off, __global const float *dout, ulong dout_off,
                                      __global const float *lse, ulong lse_off, __global const int *mask,
                                      ulong mask_off, int has_mask, int T, int d, int H, float scale, float p,
                                      float keep_scale, uint seed, uint stream) {
  size_t r = get_global_id(0);
  att_row a = att_locate(r, qkv + qkv_off, T, d, H);
  __global const int *mk = mask + mask_off + (size_t)a.b * T;
  float q[DMX_ATT_HD], go[DMX_ATT_HD], dq[DMX_ATT_HD];
  float D = att_dq_begin(&a, T, d, scale, out + out_off, dout + dout_off, q, go, dq);
  float M = lse[lse_off + 2 * r], LL = lse[lse_off + 2 * r + 1];
  uint e0 = (uint)(r * (size_t)T);
  for (int j = 0; j < T; j++) {
    __global const float *k = a.qkv + (size_t)j * a.rs + d, *v = k + d;
    float s = 0.0f, dp = 0.0f;
    for (int c = 0; c < a.hd; c++) {
      s += q[c] * k[c];
      dp += go[c] * v[c];
    }
    bool masked = has_mask && mk[j] == 0;
    if (masked) s = -1e9f;
    if (p > 0.0f) dp *= dmx_dropout_keep1(seed, stream, e0 + (uint)j, p, keep_scale);
    float ds = masked ? 0.0f : exp((s - M) - LL) * (dp - D);
    for (int c = 0; c < a.hd; c++) dq[c] += ds * k[c];
  }
  att_dq_end(&a, T, scale, dq, D, dqkv + dqkv_off, dsum + dsum_off, r);
}

__kernel void attention_fused_dq_tiles(__global float *dqkv, ulong dqkv_off, __global float *dsum, ulong dsum_off,
                                       __global const float *qkv, ulong qkv_off, __global const float *out,
                                       ulong out_off, __global const float *dout, ulong dout_off,
                                       __global const float *lse, ulong lse_off, __global const int *mask,
                                       ulong mask_off, int has_mask, int T, int d, int H, float scale, float p,
                                       float keep_scale, uint seed, uint stream, __local float *kt,
                                       __local float *vt) {
  int lid = get_local_id(0), wg = get_local_size(0);
  bool live;
  size_t r = att_tile_row(T, &live);
  att_row a = att_locate(r, qkv + qkv_off, T, d, H);
  __global const int *mk = mask + mask_off + (size_t)a.b * T;
  float q[DMX_ATT_HD], go[DMX_ATT_HD], dq[DMX_ATT_HD];
  float D = att_dq_begin(&a, T, d, scale, out + out_off, dout + dout_off, q, go, dq);
  float M = lse[lse_off + 2 * r], LL = lse[lse_off + 2 * r + 1];
  uint e0 = (uint)(r * (size_t)T);
  for (int j0 = 0; j0 < T; j0 += wg) {
    int jl = j0 + lid;
    if (jl < T)
      for (int c = 0; c < a.hd; c++) {
        kt[lid * a.hd + c] = a.qkv[(size_t)jl * a.rs + d + c];
        vt[lid * a.hd + c] = a.qkv[(size_t)jl * a.rs + 2 * d + c];
      }
    barrier(CLK_LOCAL_MEM_FENCE);
    int nj = min(wg, T - j0);
    for (int jj = 0; live && jj < nj; jj++) {
      int j = j0 + jj;
      float s = 0.0f, dp = 0.0f;
      for (int c = 0; c < a.hd; c++) {
        s += q[c] * kt[jj * a.hd + c];
        dp += go[c] * vt[jj * a.hd + c];
      }
      bool masked = has_mask && mk[j] == 0;
      if (masked) s = -1e9f;
      if (p > 0.0f) dp *= dmx_dropout_keep1(seed, stream, e0 + (uint)j, p, keep_scale);
      float ds = masked ? 0.0f : exp((s - M) - LL) * (dp - D);
      for (int c = 0; c < a.hd; c++) dq[c] += ds * kt[jj * a.hd + c];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (live) att_dq_end(&a, T, scale, dq, D, dqkv + dqkv_off, dsum + dsum_off, r);
}

/* Backward, second half, per key row j (after the dq kernel wrote dsum):
 * dv_j += sum_i keep_ij P_ij dO_i and dk_j += sum_i dS_ij (q_i * scale), into dqkv's k and v columns. */
__kernel void attention_fused_dkv_rows(__global float *dqkv, ulong dqkv_off, __global const float *qkv,
                                       ulong qkv_off, __global const float *dout, ulong dout_off,
                                       __global const float *lse, ulong lse_off, __global const float *dsum,
                                       ulong dsum_off, __global const int *mask, ulong mask_off, int has_mask, int T,
                                       int d, int H, float scale, float p, float keep_scale, uint seed, uint stream) {
  size_t r = get_global_id(0); /* (b, h, j) */
  att_row a = att_locate(r, qkv + qkv_off, T, d, H);
  int j = a.i;
  size_t bh = r / (size_t)T;
  bool masked = has_mask && mask[mask_off + (size_t)a.b * T + j] == 0;
  float k[DMX_ATT_HD], v[DMX_ATT_HD], dk[DMX_ATT_HD], dv[DMX_ATT_HD];
  att_dkv_begin(&a, d, k, v, dk, dv);
  __global const float *go_b = dout + dout_off + (size_t)a.b * T * d + (size_t)a.h * a.hd;
  for (int i = 0; i < T; i++) {
    __global const float *qi = a.qkv + (size_t)i * a.rs, *go = go_b + (size_t)i * d;
    float s = 0.0f, dp = 0.0f;
    for (int c = 0; c < a.hd; c++) {
      s += (qi[c] * scale) * k[c];
      dp += go[c] * v[c];
    }
    if (masked) s = -1e9f;
    float P = exp((s - lse[lse_off + 2 * (bh * T + i)]) - lse[lse_off + 2 * (bh * T + i) + 1]);
    float keep = p > 0.0f ? dmx_dropout_keep1(seed, stream, (uint)((bh * T + i) * T + j), p, keep_scale) : 1.0f;
    float ds = masked ? 0.0f : P * (dp * keep - dsum[dsum_off + bh * T + i]);
    float pk = P * keep;
    for (int c = 0; c < a.hd; c++) {
      dv[c] += pk * go[c];
      dk[c] += ds * (qi[c] * scale);
    }
  }
  att_dkv_end(&a, T, d, dk, dv, dqkv + dqkv_off);
}

/* qt holds a tile of scaled query rows, ot the matching dO rows, st their (m, log l, dsum). */
__kernel void attention_fused_dkv_tiles(__global float *dqkv, ulong dqkv_off, __global const float *qkv,
                                        ulong qkv_off, __global const float *dout, ulong dout_off,
                                        __global const float *lse, ulong lse_off, __global const float *dsum,
                                        ulong dsum_off, __global const int *mask, ulong mask_off, int has_mask, int T,
                                        int d, int H, float scale, float p, float keep_scale, uint seed, uint stream,
                                        __local float *qt, __local float *ot, __local float *st) {
  int lid = get_local_id(0), wg = get_local_size(0);
  bool live;
  size_t r = att_tile_row(T, &live), bh = r / (size_t)T;
  att_row a = att_locate(r, qkv + qkv_off, T, d, H);
  int jr = a.i;
  bool masked = has_mask && mask[mask_off + (size_t)a.b * T + jr] == 0;
  float k[DMX_ATT_HD], v[DMX_ATT_HD], dk[DMX_ATT_HD], dv[DMX_ATT_HD];
  att_dkv_begin(&a, d, k, v, dk, dv);
  __global const float *go_b = dout + dout_off + (size_t)a.b * T * d + (size_t)a.h * a.hd;
  for (int i0 = 0; i0 < T; i0 += wg) {
    int il = i0 + lid;
    if (il < T) {
      for (int c = 0; c < a.hd; c++) {
        qt[lid * a.hd + c] = a.qkv[(size_t)il * a.rs + c] * scale;
        ot[lid * a.hd + c] = go_b[(size_t)il * d + c];
      }
      st[3 * lid] = lse[lse_off + 2 * (bh * T + il)];
      st[3 * lid + 1] = lse[lse_off + 2 * (bh * T + il) + 1];
      st[3 * lid + 2] = dsum[dsum_off + bh * T + il];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    int ni = min(wg, T - i0);
    for (int ii = 0; live && ii < ni; ii++) {
      int i = i0 + ii;
      float s = 0.0f, dp = 0.0f;
      for (int c = 0; c < a.hd; c++) {
        s += qt[ii * a.hd + c] * k[c];
        dp += ot[ii * a.hd + c] * v[c];
      }
      if (masked) s = -1e9f;
      float P = exp((s - st[3 * ii]) - st[3 * ii + 1]);
      float keep = p > 0.0f ? dmx_dropout_keep1(seed, stream, (uint)((bh * T + i) * T + jr), p, keep_scale) : 1.0f;
      float ds = masked ? 0.0f : P * (dp * keep - st[3 * ii + 2]);
      float pk = P * keep;
      for (int c = 0; c < a.hd; c++) {
        dv[c] += pk * ot[ii * a.hd + c];
        dk[c] += ds * qt[ii * a.hd + c];
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (live) att_dkv_end(&a, T, d, dk, dv, dqkv + dqkv_off);
}
