/* AdamW and global-norm gradient clipping over the flat parameter arena, on the device. */
#include "layers/optim.h"

#include <math.h>

/* Stage-1 work-groups of the norm. Fixed (not device-dependent) so the scratch size is a constant;
 * 512 x 256 lanes keep every lane's share of a 200M-float gradient near 1500 elements. */
#define NORM_GROUPS 512

static size_t reduce_local(dmx_runtime *rt, dmx_kernel_id id) { return dmx_local_pow2(rt, id, 0, 256, 1); }

size_t dmx_global_norm_partial_floats(void) { return GLOBAL_NORM_MAX_PARTS * NORM_GROUPS; }

void dmx_global_norm_parts(dmx_runtime *rt, dmx_tensor norm_out, dmx_tensor partial, const dmx_tensor *g,
                           const size_t *n, int parts) {
  if (parts < 1 || parts > GLOBAL_NORM_MAX_PARTS)
    dmx_die("global_norm_parts: %d parts (1 to %d supported; a program bug)", parts, GLOBAL_NORM_MAX_PARTS);
  size_t L = reduce_local(rt, DMX_K_SUMSQ_PARTIAL), glob = NORM_GROUPS * L, Lf = reduce_local(rt, DMX_K_SQRT_SUM_FINAL);
  for (int i = 0; i < parts; i++) {
    dmx_tensor slot = {partial.buf, partial.off + (size_t)i * NORM_GROUPS, NORM_GROUPS};
    /* float4 chunks need a 16-byte aligned start (arena tensors are; a hand-made view may not be) */
    if (rt->serial_reductions && g[i].off % 4 == 0) {
      /* work-groups of one: PoCL would otherwise vectorise across work-items, i.e. gather from
       * 16 chunks at once */
      size_t groups = NORM_GROUPS, one = 1;
      dmx_launch_exact(rt, DMX_K_SUMSQ_PARTIAL_CHUNKS, 1, &groups, &one, KA_T(slot), KA_T(g[i]), KA_UL(n[i]));
    } else {
      dmx_launch(rt, DMX_K_SUMSQ_PARTIAL, 1, &glob, &L, KA_T(slot), KA_T(g[i]), KA_UL(n[i]),
                 KA_LOCAL(L * sizeof(float)));
    }
  }
  dmx_launch(rt, DMX_K_SQRT_SUM_FINAL, 1, &Lf, &Lf, KA_T(norm_out), KA_T(partial), KA_I(parts * NORM_GROUPS),
             KA_LOCAL(Lf * sizeof(float)));
}

/* norm_out (1) = |g (n)|_2; partial (dmx_global_norm_partial_floats()) scratch */
void dmx_global_norm(dmx_runtime *rt, dmx_tensor norm_out, dmx_tensor partial, dmx_tensor g, size_t n) {
  dmx_global_norm_parts(rt, norm_out, partial, &g, &n, 1);
}

/* p, g, m, v, decay_mask (n); norm (1) read only when max_norm > 0 */
void dmx_adamw_update(dmx_runtime *rt, dmx_tensor p, dmx_tensor g, dmx_tensor m, dmx_tensor v, size_t n, float lr,
                      float beta1, float beta2, float eps, float weight_decay, dmx_tensor decay_mask, int t,
                      dmx_tensor norm, float max_norm) {
  if (t < 1) dmx_die("adamw_update: step %d, but steps count from 1 (bias correction divides by 1 - beta1^t)", t);
  /* scalars of the step in double on the host, as Python computes them */
  double step_size = lr * sqrt(1.0 - pow(beta2, t)) / (1.0 - pow(beta1, t));
  float decay = lr * weight_decay;
  int has_mask = decay_mask.buf != NULL;
  dmx_tensor mask = has_mask ? decay_mask : g; /* unused placeholders must still be valid buffers */
  dmx_tensor nt = max_norm > 0 ? norm : g;
  size_t L = 256, n4 = (p.off | g.off | m.off | v.off | mask.off) % 4 ? 0 : n / 4, tail = n - 4 * n4;
  if (n4)
    dmx_launch_exact(rt, DMX_K_ADAMW_STEP4, 1, &n4, &L, KA_T(p), KA_T(g), KA_T(m), KA_T(v), KA_T(mask), KA_T(nt),
                     KA_F(beta1), KA_F(beta2), KA_F(eps), KA_F((float)step_size), KA_F(decay), KA_I(has_mask),
                     KA_F(max_norm));
  if (tail) { /* the rest, or everything when an offset is not a multiple of 4 floats */
    size_t a = 4 * n4;
    dmx_tensor tp = {p.buf, p.off + a, tail}, tg = {g.buf, g.off + a, tail}, tm = {m.buf, m.off + a, tail};
    dmx_tensor tv = {v.buf, v.off + a, tail}, tk = {mask.buf, mask.off + a, tail};
    dmx_launch_exact(rt, DMX_K_ADAMW_STEP, 1, &tail, &L, KA_T(tp), KA_T(tg), KA_T(tm), KA_T(tv), KA_T(tk), KA_T(nt),
                     KA_F(beta1), KA_F(beta2), KA_F(eps), KA_F((float)step_size), KA_F(decay), KA_I(has_mask),
                     KA_F(max_norm));
  }
}
