/* 2-D convolution (stride 1, zero padding) on NHWC images as im2col + CLBlast GEMM, for G groups
 * of images with their own weights (G = 1: one shared convolution; G = N: a per-instance
 * convolution for image muxing, one strided-batched GEMM for all instances). Backward accumulates
 * (+=) like every layers/ backward. */
#ifndef DMX_LAYERS_CONV_H
#define DMX_LAYERS_CONV_H
#include "host/runtime/runtime.h"

typedef struct {
  int G, B;       /* G groups of B images each */
  int H, W, C;    /* input (G*B, H, W, C) */
  int OC, K, pad; /* K x K kernels */
  int OH, OW;     /* H + 2 pad - K + 1, likewise W */
} conv_shape;

conv_shape dmx_conv_make_shape(int G, int B, int H, int W, int C, int OC, int K, int pad);
/* floats of the im2col buffer: G*B*OH*OW * C*K*K */
size_t dmx_conv_col_floats(const conv_shape *s);

/* out (G*B, OH, OW, OC) = x (G*B, H, W, C) conv Wt (G, OC, C*K*K) + b (G, OC) (b.buf NULL: none).
 * col (G*B*OH*OW, C*K*K) receives the im2col of x and is kept for the backward. */
void dmx_conv_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor col, dmx_tensor x, dmx_tensor Wt, dmx_tensor b,
                      const conv_shape *s);
/* dWt (G, OC, C*K*K) += dout^T col; db (G, OC) += column sums of dout (skipped when db.buf is NULL);
 * dx (G*B, H, W, C) += col2im(dout Wt) (skipped when dx.buf is NULL; dcol, like col, is scratch and
 * is overwritten). */
void dmx_conv_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dWt, dmx_tensor db, dmx_tensor dcol, dmx_tensor dout,
                       dmx_tensor col, dmx_tensor Wt, const conv_shape *s);

/* The two halves, for tests and for callers with their own GEMM. */
void dmx_im2col_forward(dmx_runtime *rt, dmx_tensor col, dmx_tensor x, int B, int H, int W, int C, int K, int pad);
void dmx_col2im_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dcol, int B, int H, int W, int C, int K, int pad);
#endif
