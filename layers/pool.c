/* Max pooling launchers over cl/vision.cl. */
#include "layers/pool.h"

void dmx_maxpool2_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor idx, dmx_tensor x, int B, int H, int W, int C) {
  int OH = H / 2, OW = W / 2;
  if (OH < 1 || OW < 1) dmx_die("max pooling 2x2 of a %dx%d image has no output", H, W);
  size_t l[2] = {dmx_local_pow2(rt, DMX_K_MAXPOOL2_FWD, 0, C >= 16 ? 16 : (size_t)C, 1), 0};
  l[1] = dmx_local_pow2(rt, DMX_K_MAXPOOL2_FWD, 1, 256 / l[0], l[0]);
  size_t g[2] = {(size_t)C, (size_t)B * OH * OW};
  dmx_launch(rt, DMX_K_MAXPOOL2_FWD, 2, g, l, KA_T(out), KA_T(idx), KA_T(x), KA_I(B), KA_I(H), KA_I(W), KA_I(C),
             KA_I(OH), KA_I(OW));
}

void dmx_maxpool2_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dout, dmx_tensor idx, int n) {
  if (n <= 0) return;
  size_t g = (size_t)n, l = dmx_local_pow2(rt, DMX_K_MAXPOOL2_BWD, 0, 256, 1);
  dmx_launch(rt, DMX_K_MAXPOOL2_BWD, 1, &g, &l, KA_T(dx), KA_T(dout), KA_T(idx), KA_I(n));
}

void dmx_maxpool2_forward_frozen(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, dmx_tensor idx, int n) {
  if (n <= 0) return;
  size_t g = (size_t)n, l = dmx_local_pow2(rt, DMX_K_POOL_GATHER_FWD, 0, 256, 1);
  dmx_launch(rt, DMX_K_POOL_GATHER_FWD, 1, &g, &l, KA_T(out), KA_T(x), KA_T(idx), KA_I(n));
}
