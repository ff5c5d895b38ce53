/* LayerNorm over the last dimension, PyTorch semantics: (x - mean) / sqrt(var + eps) * g + b with
 * the biased variance. Row kernels run one work-group per row; get_local_size(0) must be a power
 * of two and `red` holds one float per work-item (two for the backward). */

/* Sums v over the work-group in a fixed order (deterministic); every work-item gets the total. */
static float group_sum(float v, __local float *red) {
  int l = get_local_id(0), w = get_local_size(0);
  red[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = w / 2; s > 0; s /= 2) {
    if (l < s) red[l] += red[l + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float total = red[0];
  barrier(CLK_LOCAL_MEM_FENCE); /* red is reused by the next call */
  return total;
}

/* grid (R * wg): group r normalises row r of x (R, C). Two passes over the row (mean, then the
 * centred sum of squares) avoid the cancellation of E[x^2] - E[x]^2. */
__kernel void layernorm_fwd(__global float *out, ulong out_off, __global float *mean, ulong mean_off,
                            __global float *rstd, ulong rstd_off, __global const float *x, ulong x_off,
                            __global const float *g, ulong g_off, __global const float *b, ulong b_off, int R, int C,
                            float eps, __local float *red) {
  int r = get_group_id(0), l = get_local_id(0), w = get_local_size(0);
  if (r >= R) return; /* whole group leaves together: barriers stay uniform */
  __global const float *xr = x + x_off + (ulong)r * C;
  __global float *yr = out + out_off + (ulong)r * C;
  float s = 0.0f;
  for (int c = l; c < C; c += w) s += xr[c];
  float m = group_sum(s, red) / (float)C;
  float q = 0.0f;
  for (int c = l; c < C; c += w) {
    float d = xr[c] - m;
    q += d * d;
  }
  float rs = rsqrt(group_sum(q, red) / (float)C + eps);
  for (int c = l; c < C; c += w) yr[c] = (xr[c] - m) * rs * g[g_off + c] + b[b_off + c];
  if (l == 0) {
    mean[mean_off + r] = m;
    rstd[rstd_off + r] = rs;
  }
}

/* dx row r += rstd * (dn - mean(dn) - xhat * mean(dn * xhat)), dn = dout * g, xhat = (x - mean) * rstd. */
__kernel void layernorm_bwd_dx(__global float *dx, ulong dx_off, __global const float *dout, ulong dout_off,
                               __global const float *x, ulong x_off, __global const float *mean, ulong mean_off,
                               __global const float *rstd, ulong rstd_off, __global const float *g, ulong g_off, int R,
                               int C, __local float *red) {
  int r = get_group_id(0), l = get_local_id(0), w = get_local_size(0);
  if (r >= R) return;
  __global const float *xr = x + x_off + (ulong)r * C;
  __global const float *dr = dout + dout_off + (ulong)r * C;
  __global float *dxr = dx + dx_off + (ulong)r * C;
  float m = mean[mean_off + r], rs = rstd[rstd_off + r];
  float s1 = 0.0f, s2 = 0.0f;
  for (int c = l; c < C; c += w) {
    float dn = dr[c] * g[g_off + c];
    s1 += dn;
    s2 += dn * (xr[c] - m) * rs;
  }
  float mdn = group_sum(s1, red) / (float)C;
  float mdnx = group_sum(s2, red) / (float)C;
  for (int c = l; c < C; c += w) {
    float xhat = (xr[c] - m) * rs;
    float dn = dr[c] * g[g_off + c];
    dxr[c] += rs * (dn - mdn - xhat * mdnx);
  }
}

/* dg (C) += sum_r dout * xhat, db (C) += sum_r dout. Work-group (CW, RW) as bias_colsum_bwd:
 * CW adjacent columns, RW row lanes, a fixed-order tree over the lanes. `part` holds 2*CW*RW floats. */
__kernel void layernorm_bwd_dgdb(__global float *dg, ulong dg_off, __global float *db, ulong db_off,
                                 __global const float *dout, ulong dout_off, __global const float *x, ulong x_off,
                                 __global const float *mean, ulong mean_off, __global const float *rstd,
                                 ulong rstd_off, int R, int C, __local float *part) {
  int c = get_global_id(0);
  int lc = get_local_id(0), lr = get_local_id(1);
  int cw = get_local_size(0), rw = get_local_size(1);
  __local float *pg = part, *pb = part + cw * rw;
  float ag = 0.0f, ab = 0.0f;
  if (c < C)
    for (int r = lr; r < R; r += rw) {
      ulong i = (ulong)r * C + c;
      float d = dout[dout_off + i];
      ag += d * (x[x_off + i] - mean[mean_off + r]) * rstd[rstd_off + r];
      ab += d;
    }
  pg[lr * cw + lc] = ag;
  pb[lr * cw + lc] = ab;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = rw / 2; s > 0; s /= 2) {
    if (lr < s) {
      pg[lr * cw + lc] += pg[(lr + s) * cw + lc];
      pb[lr * cw + lc] += pb[(lr + s) * cw + lc];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (lr == 0 && c < C) {
    dg[dg_off + c] += pg[lc];
    db[db_off + c] += pb[lc];
  }
}
