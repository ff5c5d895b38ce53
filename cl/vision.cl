/* Vision kernels (layers/conv.c, layers/pool.c, layers/vision_ops.c). Images are NHWC: (B, H, W, C)
 * row-major, so a convolution is im2col + one GEMM whose rows are output pixels. Tensors arrive as
 * (pointer, element offset) pairs; every *_bwd kernel accumulates (+=) into its gradient. No
 * atomics: every backward is a gather (or a scatter whose targets are distinct), so results are
 * bitwise reproducible. */

/* ---------------------------------------------------------------- convolution */

/* col (R = B*OH*OW, K = C*KH*KW) from x (B, H, W, C), stride 1, zero padding `pad`. Column order
 * (c, kh, kw) matches PyTorch's Conv2d weight (OC, C, KH, KW). Grid (C, R): one work-item writes
 * the KH*KW consecutive columns of one channel of one output pixel (one item per column was 10x
 * slower on PoCL, where per-item overhead dominates). */
__kernel void im2col_fwd(__global float *col, ulong col_off, __global const float *x, ulong x_off, int B, int H, int W,
                         int C, int KH, int KW, int pad, int OH, int OW) {
  int c = get_global_id(0), r = get_global_id(1);
  if (c >= C || r >= B * OH * OW) return;
  int ow = r % OW, oh = (r / OW) % OH, b = r / (OW * OH);
  __global float *dst = col + col_off + (ulong)r * (C * KH * KW) + c * KH * KW;
  __global const float *src = x + x_off + (ulong)b * H * W * C + c;
  for (int kh = 0; kh < KH; kh++) {
    int h = oh + kh - pad;
    for (int kw = 0; kw < KW; kw++) {
      int w = ow + kw - pad;
      dst[kh * KW + kw] = h >= 0 && h < H && w >= 0 && w < W ? src[((ulong)h * W + w) * C] : 0.0f;
    }
  }
}

/* dx (B, H, W, C) += the col gradient folded back: every input element gathers the (at most
 * KH*KW) col entries that read it. Grid (C, B*H*W). */
__kernel void col2im_bwd(__global float *dx, ulong dx_off, __global const float *dcol, ulong dcol_off, int B, int H,
                         int W, int C, int KH, int KW, int pad, int OH, int OW) {
  int c = get_global_id(0), p = get_global_id(1);
  if (c >= C || p >= B * H * W) return;
  int w = p % W, h = (p / W) % H, b = p / (W * H);
  int K = C * KH * KW;
  float acc = 0.0f;
  for (int kh = 0; kh < KH; kh++) {
    int oh = h + pad - kh;
    if (oh < 0 || oh >= OH) continue;
    for (int kw = 0; kw < KW; kw++) {
      int ow = w + pad - kw;
      if (ow < 0 || ow >= OW) continue;
      ulong r = ((ulong)b * OH + oh) * OW + ow;
      acc += dcol[dcol_off + r * K + (c * KH + kh) * KW + kw];
    }
  }
  dx[dx_off + (ulong)p * C + c] += acc;
}

/* ---------------------------------------------------------------- max pooling 2x2, stride 2 */

/* out (B, OH, OW, C) = max over each 2x2 window of x (B, H, W, C), OH = H/2 (floor, as PyTorch);
 * idx records the flat index into x of the maximum (first one on ties, scanning rows then
 * columns, as PyTorch does). Grid (C, B*OH*OW). */
__kernel void maxpool2_fwd(__global float *out, ulong out_off, __global int *idx, ulong idx_off,
                           __global const float *x, ulong x_off, int B, int H, int W, int C, int OH, int OW) {
  int c = get_global_id(0), q = get_global_id(1);
  if (c >= C || q >= B * OH * OW) return;
  int ow = q % OW, oh = (q / OW) % OH, b = q / (OW * OH);
  float best = -INFINITY;
  int bi = 0;
  for (int dh = 0; dh < 2; dh++)
    for (int dw = 0; dw < 2; dw++) {
      int i = ((b * H + 2 * oh + dh) * W + 2 * ow + dw) * C + c;
      float v = x[x_off + i];
      if (v > best || (dh == 0 && dw == 0)) {
        best = v;
        bi = i;
      }
    }
  out[out_off + (ulong)q * C + c] = best;
  idx[idx_off + (ulong)q * C + c] = bi;
}

/* dx[idx[o]] += dout[o]. Windows do not overlap (stride = size), so the targets are distinct. */
__kernel void maxpool2_bwd(__global float *dx, ulong dx_off, __global const float *dout, ulong dout_off,
                           __global const int *idx, ulong idx_off, int n) {
  int o = get_global_id(0);
  if (o >= n) return;
  dx[dx_off + idx[idx_off + o]] += dout[dout_off + o];
}

/* ---------------------------------------------------------------- muxing helpers */

/* out (S) = sum over i < N of x (N, S): the notebook sums (does not average) the instances. */
__kernel void instance_sum_fwd(__global float *out, ulong out_off, __global const float *x, ulong x_off, int N, int S) {
  int j = get_global_id(0);
  if (j >= S) return;
  float acc = 0.0f;
  for (int i = 0; i < N; i++) acc += x[x_off + (ulong)i * S + j];
  out[out_off + j] = acc;
}

/* dx (N, S) += broadcast dout (S) */
__kernel void instance_sum_bwd(__global float *dx, ulong dx_off, __global const float *dout, ulong dout_off, int N,
                               int S) {
  int j = get_global_id(0), i = get_global_id(1);
  if (j >= S || i >= N) return;
  dx[dx_off + (ulong)i * S + j] += dout[dout_off + j];
}

/* Per-instance gather with a sign: out (N, B, P, C) element (i, b, p, c) =
 * sign[i] * x[i, b, map[i, p], c], or 0 where map[i, p] < 0 (the rotated pixel came from outside
 * the image). Rotation muxing precomputes map on the host. Grid (P*C, N*B). */
__kernel void gather_map_fwd(__global float *out, ulong out_off, __global const float *x, ulong x_off,
                             __global const int *map, ulong map_off, __global const float *sign, ulong sign_off, int N,
                             int B, int P, int C) {
  int pc = get_global_id(0), ib = get_global_id(1);
  if (pc >= P * C || ib >= N * B) return;
  int p = pc / C, c = pc % C, i = ib / B;
  int src = map[map_off + (ulong)i * P + p];
  float v = src >= 0 ? sign[sign_off + i] * x[x_off + ((ulong)ib * P + src) * C + c] : 0.0f;
  out[out_off + (ulong)ib * P * C + pc] = v;
}

/* ---------------------------------------------------------------- activations, loss, SGD */

__kernel void relu_fwd(__global float *out, ulong out_off, __global const float *x, ulong x_off, int n) {
  int i = get_global_id(0);
  if (i >= n) return;
  out[out_off + i] = fmax(x[x_off + i], 0.0f);
}

/* dx += dout where the output y was positive (y = relu(x), so y > 0 <=> x > 0) */
__kernel void relu_bwd(__global float *dx, ulong dx_off, __global const float *y, ulong y_off,
                       __global const float *dout, ulong dout_off, int n) {
  int i = get_global_id(0);
  if (i >= n) return;
  if (y[y_off + i] > 0.0f) dx[dx_off + i] += dout[dout_off + i];
}

/* The notebook's loss on +-1 one-vs-rest targets, one work-item per row r of out (R, C):
 * t_c = +1 for the label, -1 elsewhere; losses[r] = sum_c 0.5 (t_c - out_c)^2; preds[r] = argmax
 * (first on ties); dout (R, C) = scale * (out - t) (written: the start of the backward) when
 * has_grad. */
__kernel void mse_pm1(__global float *losses, ulong losses_off, __global int *preds, ulong preds_off,
                      __global float *dout, ulong dout_off, __global const float *out, ulong out_off,
                      __global const int *labels, ulong labels_off, int R, int C, float scale, int has_grad) {
  int r = get_global_id(0);
  if (r >= R) return;
  __global const float *o = out + out_off + (ulong)r * C;
  int y = labels[labels_off + r];
  float loss = 0.0f, best = -INFINITY;
  int bi = 0;
  for (int c = 0; c < C; c++) {
    float t = c == y ? 1.0f : -1.0f, v = o[c];
    loss += 0.5f * (t - v) * (t - v);
    if (v > best) best = v, bi = c;
    if (has_grad) dout[dout_off + (ulong)r * C + c] = scale * (v - t);
  }
  losses[losses_off + r] = y >= 0 && y < C ? loss : NAN; /* a bad label cannot pass silently */
  preds[preds_off + r] = bi;
}

/* Plain SGD, as the notebook's torch.optim.SGD(lr) without momentum: p -= lr * g. */
__kernel void sgd_step(__global float *p, ulong p_off, __global const float *g, ulong g_off, ulong n, float lr) {
  size_t i = get_global_id(0);
  if (i >= n) return;
  p[p_off + i] -= lr * g[g_off + i];
}

/* out[o] = x[idx[o]]: max pooling with the window maxima frozen at earlier positions. Finite-
 * difference tests use it so that a perturbation cannot move a maximum (a kink of max pooling). */
__kernel void pool_gather_fwd(__global float *out, ulong out_off, __global const float *x, ulong x_off,
                              __global const int *idx, ulong idx_off, int n) {
  int o = get_global_id(0);
  if (o >= n) return;
  out[out_off + o] = x[x_off + idx[idx_off + o]];
}
