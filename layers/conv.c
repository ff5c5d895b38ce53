/* Convolution as im2col + GEMM (host/runtime/gemm.h), NHWC. The output of a GEMM whose rows are output
 * pixels and columns output channels is already NHWC, so no transposes are needed. */
#include "layers/conv.h"

#include "host/runtime/gemm.h"
#include "layers/common_ops.h"

conv_shape dmx_conv_make_shape(int G, int B, int H, int W, int C, int OC, int K, int pad) {
  conv_shape s = {G, B, H, W, C, OC, K, pad, H + 2 * pad - K + 1, W + 2 * pad - K + 1};
  if (s.OH < 1 || s.OW < 1)
    dmx_die("convolution of a %dx%d image with a %dx%d kernel (pad %d) has no output", H, W, K, K, pad);
  return s;
}

size_t dmx_conv_col_floats(const conv_shape *s) {
  return (size_t)s->G * s->B * s->OH * s->OW * (size_t)s->C * s->K * s->K;
}

/* Work-groups of up to 16 channels x enough pixels for 256 work-items (or the kernel's limit). */
static void channel_major_local(dmx_runtime *rt, dmx_kernel_id id, int C, size_t l[2]) {
  l[0] = dmx_local_pow2(rt, id, 0, C >= 16 ? 16 : (size_t)C, 1);
  l[1] = dmx_local_pow2(rt, id, 1, 256 / l[0], l[0]);
}

void dmx_im2col_forward(dmx_runtime *rt, dmx_tensor col, dmx_tensor x, int B, int H, int W, int C, int K, int pad) {
  int OH = H + 2 * pad - K + 1, OW = W + 2 * pad - K + 1;
  size_t l[2];
  channel_major_local(rt, DMX_K_IM2COL_FWD, C, l);
  size_t g[2] = {(size_t)C, (size_t)B * OH * OW};
  dmx_launch(rt, DMX_K_IM2COL_FWD, 2, g, l, KA_T(col), KA_T(x), KA_I(B), KA_I(H), KA_I(W), KA_I(C), KA_I(K), KA_I(K),
             KA_I(pad), KA_I(OH), KA_I(OW));
}

void dmx_col2im_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dcol, int B, int H, int W, int C, int K, int pad) {
  int OH = H + 2 * pad - K + 1, OW = W + 2 * pad - K + 1;
  size_t l[2];
  channel_major_local(rt, DMX_K_COL2IM_BWD, C, l);
  size_t g[2] = {(size_t)C, (size_t)B * H * W};
  dmx_launch(rt, DMX_K_COL2IM_BWD, 2, g, l, KA_T(dx), KA_T(dcol), KA_I(B), KA_I(H), KA_I(W), KA_I(C), KA_I(K), KA_I(K),
             KA_I(pad), KA_I(OH), KA_I(OW));
}

static dmx_tensor slice(dmx_tensor t, size_t off, size_t n) {
  t.off += off;
  t.n = n;
  return t;
}

void dmx_conv_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor col, dmx_tensor x, dmx_tensor Wt, dmx_tensor b,
                      const conv_shape *s) {
  size_t rows = (size_t)s->B * s->OH * s->OW, Kc = (size_t)s->C * s->K * s->K, OC = (size_t)s->OC;
  dmx_im2col_forward(rt, col, x, s->G * s->B, s->H, s->W, s->C, s->K, s->pad);
  /* out_g (rows, OC) = col_g (rows, Kc) Wt_g^T */
  dmx_gemm_batched(rt, false, true, rows, OC, Kc, 1.0f, col, Kc, rows * Kc, Wt, Kc, OC * Kc, 0.0f, out, OC, rows * OC,
                   (size_t)s->G);
  if (b.buf)
    for (int g = 0; g < s->G; g++)
      dmx_bias_add_forward(rt, slice(out, g * rows * OC, rows * OC), slice(b, g * OC, OC), (int)rows, (int)OC);
}

void dmx_conv_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dWt, dmx_tensor db, dmx_tensor dcol, dmx_tensor dout,
                       dmx_tensor col, dmx_tensor Wt, const conv_shape *s) {
  size_t rows = (size_t)s->B * s->OH * s->OW, Kc = (size_t)s->C * s->K * s->K, OC = (size_t)s->OC;
  /* dWt_g (OC, Kc) += dout_g^T (OC, rows) col_g (rows, Kc) */
  dmx_gemm_batched(rt, true, false, OC, Kc, rows, 1.0f, dout, OC, rows * OC, col, Kc, rows * Kc, 1.0f, dWt, Kc, OC * Kc,
                   (size_t)s->G);
  if (db.buf)
    for (int g = 0; g < s->G; g++)
      dmx_bias_add_backward(rt, slice(db, g * OC, OC), slice(dout, g * rows * OC, rows * OC), (int)rows, (int)OC);
  if (!dx.buf) return;
  /* dcol_g (rows, Kc) = dout_g (rows, OC) Wt_g (OC, Kc), then folded back onto the image */
  dmx_gemm_batched(rt, false, false, rows, Kc, OC, 1.0f, dout, OC, rows * OC, Wt, Kc, OC * Kc, 0.0f, dcol, Kc,
                   rows * Kc, (size_t)s->G);
  dmx_col2im_backward(rt, dx, dcol, s->G * s->B, s->H, s->W, s->C, s->K, s->pad);
}
