/* LayerNorm over the last dimension, PyTorch semantics: (x - mean) / sqrt(var + eps) * g + b with
 * the biased variance. Row kernels run one work-group per row; get_local_size(0) must be a power
 * of two and `red` holds one float per work-item (two for the backward). */

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
  float m = dmx_group_sum(s, red) / (float)C;
  float q = 0.0f;
  for (int c = l; c < C; c += w) {
    float d = xr[c] - m;
    q += d * d;
  }
  float rs = rsqrt(dmx_group_sum(q, red) / (float)C + eps);
  for (int c = l; c < C; c += w) yr[c] = (xr[c] - m) * rs * g[g_off + c] + b[b_off + c];
  if (l == 0) {
    mean[mean_off + r] = m;
    rstd[rstd_off + r] = rs;
  }
}

/* The same with one work-item per row (exact grid of R; rt->serial_reductions, for CPUs): float4 loads
 * and no barriers. */
static float row_sum4(float4 v) { return (v.s0 + v.s1) + (v.s2 + v.s3); }

__kernel void layernorm_fwd_rows(__global float *out, ulong out_off, __global float *mean, ulong mean_off,
                                 __global float *rstd, ulong rstd_off, __global const float *x, ulong x_off,
                                 __global const float *g, ulong g_off, __global const float *b, ulong b_off, int C,
                                 float eps) {
  int r = get_global_id(0), C4 = C / 4;
  __global const float *xr = x + x_off + (ulong)r * C;
  __global float *yr = out + out_off + (ulong)r * C;
  g += g_off;
  b += b_off;
  float4 s4 = 0.0f;
  for (int c = 0; c < C4; c++) s4 += vload4(c, xr);
  float s = row_sum4(s4);
  for (int c = 4 * C4; c < C; c++) s += xr[c];
  float m = s / (float)C;
  float4 q4 = 0.0f;
  for (int c = 0; c < C4; c++) {
    float4 d = vload4(c, xr) - m;
    q4 += d * d;
  }
  float q = row_sum4(q4);
  for (int c = 4 * C4; c < C; c++) q += (xr[c] - m) * (xr[c] - m);
  float rs = rsqrt(q / (float)C + eps);
  for (int c = 0; c < C4; c++) vstore4((vload4(c, xr) - m) * rs * vload4(c, g) + vload4(c, b), c, yr);
  for (int c = 4 * C4; c < C; c++) yr[c] = (xr[c] - m) * rs * g[c] + b[c];
  mean[mean_off + r] = m;
  rstd[rstd_off + r] = rs;
}

__kernel void layernorm_bwd_dx_rows(__global float *dx, ulong dx_off, __global const float *dout, ulong dout_off,
                                    __global const float *x, ulong x_off, __global const float *mean, ulong mean_off,
                                    __global const float *rstd, ulong rstd_off, __global const float *g, ulong g_off,
                                    int C) {
  int r = get_global_id(0), C4 = C / 4;
  __global const float *xr = x + x_off + (ulong)r * C;
  __global const float *dr = dout + dout_off + (ulong)r * C;
  __global float *dxr = dx + dx_off + (ulong)r * C;
  g += g_off;
  float m = mean[mean_off + r], rs = rstd[rstd_off + r];
  float4 a1 = 0.0f, a2 = 0.0f;
  for (int c = 0; c < C4; c++) {
    float4 dn = vload4(c, dr) * vload4(c, g);
    a1 += dn;
    a2 += dn * (vload4(c, xr) - m) * rs;
  }
  float s1 = row_sum4(a1), s2 = row_sum4(a2);
  for (int c = 4 * C4; c < C; c++) {
    float dn = dr[c] * g[c];
    s1 += dn;
    s2 += dn * (xr[c] - m) * rs;
  }
  float mdn = s1 / (float)C, mdnx = s2 / (float)C;
  for (int c = 0; c < C4; c++) {
    float4 xhat = (vload4(c, xr) - m) * rs;
    float4 dn = vload4(c, dr) * vload4(c, g);
    vstore4(vload4(c, dxr) + rs * (dn - mdn - xhat * mdnx), c, dxr);
  }
  for (int c = 4 * C4; c < C; c++) {
    float xhat = (xr[c] - m) * rs;
    dxr[c] += rs * (dr[c] * g[c] - mdn - xhat * mdnx);
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
  float mdn = dmx_group_sum(s1, red) / (float)C;
  float mdnx = dmx_group_sum(s2, red) / (float)C;
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

/* The same with one work-item per column over every row (exact grid of C; rt->serial_reductions):
 * adjacent work-items read adjacent floats, and each column's order depends only on R. */
__kernel void layernorm_bwd_dgdb_cols(__global float *dg, ulong dg_off, __global float *db, ulong db_off,
                                      __global const float *dout, ulong dout_off, __global const float *x, ulong x_off,
                                      __global const float *mean, ulong mean_off, __global const float *rstd,
                                      ulong rstd_off, int R, int C) {
  int c = get_global_id(0);
  float ag = 0.0f, ab = 0.0f;
  for (int r = 0; r < R; r++) {
    ulong i = (ulong)r * C + c;
    float d = dout[dout_off + i];
    ag += d * (x[x_off + i] - mean[mean_off + r]) * rstd[rstd_off + r];
    ab += d;
  }
  dg[dg_off + c] += ag;
  db[db_off + c] += ab;
}
