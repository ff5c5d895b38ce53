/* LayerNorm launchers over cl/layernorm.cl: one work-group per row for the row kernels, a
 * (columns x row lanes) grid for the parameter gradients, or with rt->serial_reductions one
 * work-item per row and per column; every reduction in a fixed order. */
#include "layers/layernorm.h"

/* Row work-group: the power of two covering C, from 32 up to 256 (and the kernel's limit), so
 * short rows (d = 64) do not idle most of a group. */
static size_t row_local(dmx_runtime *rt, dmx_kernel_id id, int C) {
  size_t w = 32;
  while (w < 256 && w < (size_t)C) w *= 2;
  return dmx_local_pow2(rt, id, 0, w, 1);
}

void dmx_layernorm_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor mean, dmx_tensor rstd, dmx_tensor x,
                           dmx_tensor g, dmx_tensor b, int R, int C, float eps) {
  if (R <= 0 || C <= 0) return;
  DMX_NEED(out, (size_t)R * C);
  DMX_NEED(x, (size_t)R * C);
  DMX_NEED(mean, R);
  DMX_NEED(rstd, R);
  DMX_NEED(g, C);
  if (rt->serial_reductions) {
    size_t gr = (size_t)R, lr = 16;
    dmx_launch_exact(rt, DMX_K_LAYERNORM_FWD_ROWS, 1, &gr, &lr, KA_T(out), KA_T(mean), KA_T(rstd), KA_T(x), KA_T(g),
                     KA_T(b), KA_I(C), KA_F(eps));
    return;
  }
  size_t l = row_local(rt, DMX_K_LAYERNORM_FWD, C), gl = (size_t)R * l;
  dmx_launch(rt, DMX_K_LAYERNORM_FWD, 1, &gl, &l, KA_T(out), KA_T(mean), KA_T(rstd), KA_T(x), KA_T(g), KA_T(b), KA_I(R),
             KA_I(C), KA_F(eps), KA_LOCAL(l * sizeof(float)));
}

void dmx_layernorm_backward(dmx_runtime *rt, dmx_tensor dx, dmx_tensor dg, dmx_tensor db, dmx_tensor dout, dmx_tensor x,
                            dmx_tensor mean, dmx_tensor rstd, dmx_tensor g, int R, int C) {
  if (R <= 0 || C <= 0) return;
  DMX_NEED(dout, (size_t)R * C);
  DMX_NEED(x, (size_t)R * C);
  DMX_NEED(dg, C);
  if (rt->serial_reductions) {
    size_t gr = (size_t)R, lr = 16, gc = (size_t)C, lc = 16;
    dmx_launch_exact(rt, DMX_K_LAYERNORM_BWD_DX_ROWS, 1, &gr, &lr, KA_T(dx), KA_T(dout), KA_T(x), KA_T(mean),
                     KA_T(rstd), KA_T(g), KA_I(C));
    dmx_launch_exact(rt, DMX_K_LAYERNORM_BWD_DGDB_COLS, 1, &gc, &lc, KA_T(dg), KA_T(db), KA_T(dout), KA_T(x),
                     KA_T(mean), KA_T(rstd), KA_I(R), KA_I(C));
    return;
  }
  size_t l = row_local(rt, DMX_K_LAYERNORM_BWD_DX, C), gl = (size_t)R * l;
  dmx_launch(rt, DMX_K_LAYERNORM_BWD_DX, 1, &gl, &l, KA_T(dx), KA_T(dout), KA_T(x), KA_T(mean), KA_T(rstd), KA_T(g),
             KA_I(R), KA_I(C), KA_LOCAL(l * sizeof(float)));
  /* 16 adjacent columns x 16 row lanes: contiguous reads along a row, and each column's sum order
   * depends only on R. */
  size_t l2[2] = {dmx_local_pow2(rt, DMX_K_LAYERNORM_BWD_DGDB, 0, 16, 1), 0};
  l2[1] = dmx_local_pow2(rt, DMX_K_LAYERNORM_BWD_DGDB, 1, 16, l2[0]);
  size_t g2[2] = {(size_t)C, l2[1]};
  dmx_launch(rt, DMX_K_LAYERNORM_BWD_DGDB, 2, g2, l2, KA_T(dg), KA_T(db), KA_T(dout), KA_T(x), KA_T(mean), KA_T(rstd),
             KA_I(R), KA_I(C), KA_LOCAL(2 * l2[0] * l2[1] * sizeof(float)));
}
