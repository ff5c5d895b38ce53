/* PyTorch Linear on the device: the matrix products go to dmx_gemm (host/runtime/gemm.h), the bias to
 * layers/common_ops.c. W is stored (OC, C) row-major as in PyTorch checkpoints. */
#include "layers/linear.h"

#include "host/runtime/gemm.h"
#include "layers/common_ops.h"

void dmx_linear_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, dmx_tensor W, dmx_tensor b, int R, int C, int OC,
                        float beta) {
  if (R <= 0 || OC <= 0) return;
  DMX_NEED(out, (size_t)R * OC);
  DMX_NEED(x, (size_t)R * C);
  DMX_NEED(W, (size_t)OC * C);
  /* out (R, OC) = x (R, C) W^T + beta out */
  dmx_gemm(rt, false, true, (size_t)R, (size_t)OC, (size_t)C, 1.0f, x, (size_t)C, W, (size_t)C, beta, out, (size_t)OC);
  if (b.buf) dmx_bias_add_forward(rt, out, b, R, OC);
}

void dmx_linear_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dW, dmx_tensor db, dmx_tensor dout, dmx_tensor x,
                         dmx_tensor W, int R, int C, int OC) {
  if (R <= 0 || OC <= 0 || C <= 0) return;
  DMX_NEED(dout, (size_t)R * OC);
  DMX_NEED(x, (size_t)R * C);
  DMX_NEED(dW, (size_t)OC * C);
  /* dx (R, C) += dout (R, OC) W (OC, C) */
  if (dx.buf)
    dmx_gemm(rt, false, false, (size_t)R, (size_t)C, (size_t)OC, 1.0f, dout, (size_t)OC, W, (size_t)C, 1.0f, dx,
             (size_t)C);
  /* dW (OC, C) += dout^T (OC, R) x (R, C) */
  dmx_gemm(rt, true, false, (size_t)OC, (size_t)C, (size_t)R, 1.0f, dout, (size_t)OC, x, (size_t)C, 1.0f, dW,
           (size_t)C);
  if (db.buf) dmx_bias_add_backward(rt, db, dout, R, OC);
}
