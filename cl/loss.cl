/* Softmax cross-entropy and a single-work-group sum. Reductions run over a fixed work-group size
 * in a fixed tree order, so every result is bitwise reproducible run to run (no atomics). */

#define IGNORE_INDEX (-100)

/* Merges (max m, scaled sum s, argmax k) of another lane into this lane's. s is sum exp(x - m);
 * a lane that saw no finite value has m = -INFINITY, s = 0. Ties in the max keep the lower index,
 * matching torch.argmax's first occurrence. */
void lse_merge(float *m, float *s, int *k, float m2, float s2, int k2) {
  if (m2 == -INFINITY) return;
  if (*m == -INFINITY) {
    *m = m2;
    *s = s2;
    *k = k2;
    return;
  }
  if (m2 > *m) {
    *s = *s * exp(*m - m2) + s2;
    *m = m2;
    *k = k2;
  } else {
    *s += s2 * exp(m2 - *m);
    if (m2 == *m && k2 < *k) *k = k2;
  }
}

/* Adds logit v of column c to a running (max m, sum of exp(x - m) s, argmax k): online softmax. */
void lse_add(float *m, float *s, int *k, float v, int c) {
  if (v > *m) {
    *s = (*m == -INFINITY ? 0.0f : *s * exp(*m - v)) + 1.0f;
    *m = v;
    *k = c;
  } else if (v > -INFINITY) {
    *s += exp(v - *m);
  }
}

/* One work-group per row r of logits (R, C). Pass 1 (online softmax): every lane keeps a running
 * max, the sum of exp(x - max) and the argmax over its strided columns; a tree merges the lanes.
 * Pass 2 writes the gradient scale * (softmax - onehot) when has_grad (0 rows for ignored targets).
 * losses[r] = logsumexp - logit[target] (0 when ignored; NaN when the target is out of range, so a
 * bad label cannot pass silently), predictions[r] = argmax. */
__kernel void softmax_xent(__global float *losses, ulong losses_off, __global int *preds, ulong preds_off,
                           __global float *dlogits, ulong dlogits_off, __global const float *logits, ulong logits_off,
                           __global const int *targets, ulong targets_off, int R, int C, float scale, int has_grad,
                           __local float *lm, __local float *ls, __local int *lk) {
  int r = get_group_id(0), lid = get_local_id(0), L = get_local_size(0);
  if (r >= R) return; /* whole group leaves together: no barrier is skipped by part of it */
  __global const float *x = logits + logits_off + (size_t)r * C;
  float m = -INFINITY, s = 0.0f;
  int k = 0x7fffffff;
  for (int c = lid; c < C; c += L) lse_add(&m, &s, &k, x[c], c);
  lm[lid] = m;
  ls[lid] = s;
  lk[lid] = k;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int h = L / 2; h > 0; h >>= 1) {
    if (lid < h) {
      float mm = lm[lid], ss = ls[lid];
      int kk = lk[lid];
      lse_merge(&mm, &ss, &kk, lm[lid + h], ls[lid + h], lk[lid + h]);
      lm[lid] = mm;
      ls[lid] = ss;
      lk[lid] = kk;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float M = lm[0], S = ls[0];
  int tgt = targets[targets_off + r];
  bool keep = tgt != IGNORE_INDEX;
  bool valid = tgt >= 0 && tgt < C;
  if (lid == 0) {
    preds[preds_off + r] = lk[0] == 0x7fffffff ? 0 : lk[0];
    /* (M - x[tgt]) first: both are logits of similar size, so the difference is exact even when
     * the logits are large, and log(S) (S >= 1) adds only its own rounding */
    losses[losses_off + r] = !keep ? 0.0f : valid ? (M - x[tgt]) + log(S) : NAN;
  }
  if (!has_grad) return;
  __global float *dx = dlogits + dlogits_off + (size_t)r * C;
  if (!keep || !valid) {
    for (int c = lid; c < C; c += L) dx[c] = 0.0f;
    return;
  }
  float inv_s = 1.0f / S;
  for (int c = lid; c < C; c += L) dx[c] = scale * (exp(x[c] - M) * inv_s - (c == tgt ? 1.0f : 0.0f));
}

/* softmax_xent for CPU devices (rt->serial_reductions): one work-item per row, the columns in a
 * loop, no local memory and no barrier; the same results up to the order of the sums. */
__kernel void softmax_xent_rows(__global float *losses, ulong losses_off, __global int *preds, ulong preds_off,
                                __global float *dlogits, ulong dlogits_off, __global const float *logits,
                                ulong logits_off, __global const int *targets, ulong targets_off, int C, float scale,
                                int has_grad) {
  int r = get_global_id(0);
  __global const float *x = logits + logits_off + (size_t)r * C;
  float m = -INFINITY, s = 0.0f;
  int k = 0x7fffffff;
  for (int c = 0; c < C; c++) lse_add(&m, &s, &k, x[c], c);
  int tgt = targets[targets_off + r];
  bool keep = tgt != IGNORE_INDEX;
  bool valid = tgt >= 0 && tgt < C;
  preds[preds_off + r] = k == 0x7fffffff ? 0 : k;
  losses[losses_off + r] = !keep ? 0.0f : valid ? (m - x[tgt]) + log(s) : NAN;
  if (!has_grad) return;
  __global float *dx = dlogits + dlogits_off + (size_t)r * C;
  if (!keep || !valid) {
    for (int c = 0; c < C; c++) dx[c] = 0.0f;
    return;
  }
  float inv_s = 1.0f / s;
  for (int c = 0; c < C; c++) dx[c] = scale * (exp(x[c] - m) * inv_s - (c == tgt ? 1.0f : 0.0f));
}

/* out[0] = sum of x (n), by one work-group: strided lane sums, then a tree. */
__kernel void reduce_sum_1wg(__global float *out, ulong out_off, __global const float *x, ulong x_off, int n,
                             __local float *buf) {
  int lid = get_local_id(0), L = get_local_size(0);
  x += x_off;
  float acc = 0.0f;
  for (int i = lid; i < n; i += L) acc += x[i];
  acc = dmx_group_sum(acc, buf);
  if (lid == 0) out[out_off] = acc;
}
