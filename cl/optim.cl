/* Optimiser kernels: the global gradient norm (two-stage, fixed-order reduction) and AdamW. */

/* Stage 1: work-group g writes partial[g] = sum of squares over its grid-strided share of x (n),
 * read as float4 (PoCL vectorises explicit vectors; a scalar loop ran 5x slower), the n % 4 tail
 * by the first work-items. Lanes accumulate with Kahan compensation: at ~200M parameters each lane
 * adds a few hundred squares, and compensation keeps the float sum at rounding level whatever n is. */
__kernel void sumsq_partial(__global float *partial, ulong partial_off, __global const float *x, ulong x_off, ulong n,
                            __local float *buf) {
  int lid = get_local_id(0), L = get_local_size(0);
  x += x_off;
  size_t stride = get_global_size(0), gid = get_global_id(0), n4 = n / 4;
  float4 acc = 0.0f, comp = 0.0f;
  for (size_t i = gid; i < n4; i += stride) {
    float4 v = vload4(i, x);
    float4 y = v * v - comp;
    float4 t = acc + y;
    comp = (t - acc) - y;
    acc = t;
  }
  float total = (acc.s0 + acc.s1) + (acc.s2 + acc.s3);
  if (gid < n - 4 * n4) total += x[4 * n4 + gid] * x[4 * n4 + gid];
  total = dmx_group_sum(total, buf);
  if (lid == 0) partial[partial_off + get_group_id(0)] = total;
}

/* The same partial sums with one work-item per partial (rt->serial_reductions, CPUs): work-item g
 * sums its own contiguous chunk of the float4s in four compensated chains. One chain per work-item
 * is latency-bound (four dependent adds per float4) and the strided layout above ran at 5 GB/s on
 * PoCL; the chunk's tail and the n % 4 floats go to the last work-item. */
__kernel void sumsq_partial_chunks(__global float *partial, ulong partial_off, __global const float *x, ulong x_off,
                                   ulong n) {
  size_t g = get_global_id(0), parts = get_global_size(0), n4 = n / 4;
  size_t per = n4 / parts, begin = g * per, end = g + 1 == parts ? n4 : begin + per;
  __global const float4 *x4 = (__global const float4 *)(x + x_off);
  float4 acc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, comp[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  size_t i = begin;
  for (; i + 4 <= end; i += 4)
    for (int c = 0; c < 4; c++) {
      float4 v = x4[i + c];
      float4 y = v * v - comp[c];
      float4 t = acc[c] + y;
      comp[c] = (t - acc[c]) - y;
      acc[c] = t;
    }
  for (; i < end; i++) {
    float4 v = x4[i];
    float4 y = v * v - comp[0];
    float4 t = acc[0] + y;
    comp[0] = (t - acc[0]) - y;
    acc[0] = t;
  }
  float4 a4 = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  float total = (a4.s0 + a4.s1) + (a4.s2 + a4.s3);
  if (g + 1 == parts)
    for (size_t j = 4 * n4; j < n; j++) total += x[x_off + j] * x[x_off + j];
  partial[partial_off + g] = total;
}

/* Stage 2, one work-group: out[0] = sqrt(sum of the n partials). */
__kernel void sqrt_sum_final(__global float *out, ulong out_off, __global const float *partial, ulong partial_off,
                             int n, __local float *buf) {
  int lid = get_local_id(0), L = get_local_size(0);
  partial += partial_off;
  float acc = 0.0f;
  for (int i = lid; i < n; i += L) acc += partial[i];
  acc = dmx_group_sum(acc, buf);
  if (lid == 0) out[out_off] = sqrt(acc);
}

/* One AdamW step, exactly transformers 4.4.2 AdamW (correct_bias=True), which the original used:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= step_size * m / (sqrt(v) + eps),  step_size = lr sqrt(1-b2^t) / (1-b1^t)  (host-computed)
 *   p -= lr * wd * p   (decoupled decay, applied AFTER the Adam update, to the updated p)
 * eps is added to the un-corrected sqrt(v) — this differs slightly from torch.optim.AdamW.
 * When max_norm > 0 the gradient is scaled first by min(1, max_norm / (norm[0] + 1e-6)), as
 * torch.nn.utils.clip_grad_norm_ does, reading the norm from the device. mask (when has_mask)
 * selects which entries decay (1) or not (0). */
#define ADAMW_KERNEL(NAME, T)                                                                                 \
  __kernel void NAME(__global float *p, ulong p_off, __global const float *g, ulong g_off, __global float *m,     \
                     ulong m_off, __global float *v, ulong v_off, __global const float *mask, ulong mask_off,     \
                     __global const float *norm, ulong norm_off, float beta1, float beta2, float eps,             \
                     float step_size, float decay, int has_mask, float max_norm) {                                \
    size_t i = get_global_id(0);                                                                                  \
    float clip = max_norm > 0.0f ? fmin(1.0f, max_norm / (norm[norm_off] + 1e-6f)) : 1.0f;                        \
    __global T *pt = (__global T *)(p + p_off), *mt = (__global T *)(m + m_off), *vt = (__global T *)(v + v_off); \
    __global const T *gt = (__global const T *)(g + g_off), *kt = (__global const T *)(mask + mask_off);          \
    T gi = gt[i] * clip;                                                                                          \
    T mi = beta1 * mt[i] + (1.0f - beta1) * gi;                                                                   \
    T vi = beta2 * vt[i] + (1.0f - beta2) * gi * gi;                                                              \
    mt[i] = mi;                                                                                                   \
    vt[i] = vi;                                                                                                   \
    T pi = pt[i] - step_size * (mi / (sqrt(vi) + eps));                                                           \
    T decays = has_mask ? select((T)(0.0f), (T)(1.0f), kt[i] != (T)(0.0f)) : (T)(1.0f);                          \
    pt[i] = pi - (decay * decays) * pi;                                                                           \
  }

/* Exact grid (no bounds guard: PoCL vectorises this only without one). Without a mask or a norm the
 * host passes g as a stand-in, so both loads are always in bounds; selects, not branches, decide
 * whether they count. select() picks by the condition's sign bit for vectors and by != 0 for
 * scalars, which is what a comparison gives each. */
ADAMW_KERNEL(adamw_step, float)
/* The same on float4s, for tensors whose offsets are multiples of 4 floats (the arena aligns them):
 * PoCL lowers the scalar kernel's loads to one element each, and this one runs 3x faster (7M
 * floats: 25.7 -> 8.7 ms). The host runs the scalar kernel on the last n % 4. */
ADAMW_KERNEL(adamw_step4, float4)
