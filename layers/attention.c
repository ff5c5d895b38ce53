/* Multi-head self-attention core, two implementations of the same function:
 *  - fused (cl/attention.cl, flash-attention style): one kernel pass forward from the QKV rows to
 *    the output rows, saving each row's log-sum-exp; two backward kernels (per query row: D and dq;
 *    per key row: dk and dv) that recompute the probabilities. No score matrix, no permutes.
 *  - GEMM (llm.c's fp32 recipe): permute -> strided-batched GEMM (scores, scaled by alpha) -> fused
 *    mask + softmax -> dropout -> strided-batched GEMM -> unpermute, and the mirrored backward
 *    (four GEMMs), with the scores materialised.
 * rt->fused_attention chooses; both layouts of each (work-item per row for CPUs, work-groups with
 * local tiles for GPUs) follow rt->serial_reductions. */
#include "layers/attention.h"

#include <math.h>

#include "host/runtime/gemm.h"
#include "layers/common_ops.h"

size_t dmx_attention_qkv_floats(int B, int T, int d) { return (size_t)B * T * d; }
size_t dmx_attention_att_floats(int B, int T, int H) { return (size_t)B * H * T * T; }
size_t dmx_attention_row_floats(int B, int T, int H) { return (size_t)B * H * T; }
size_t dmx_attention_lse_floats(int B, int T, int H) { return 2 * (size_t)B * H * T; }

/* Work-group size of the row kernels: a power of two, at most 64 (rows are ~200 wide). */
static size_t row_wg(dmx_runtime *rt, dmx_kernel_id id) { return dmx_local_pow2(rt, id, 0, 64, 1); }

static void check_shape(int B, int T, int d, int H) {
  if (B <= 0 || T <= 0 || d <= 0 || H <= 0 || d % H)
    dmx_die("attention: bad shape B=%d T=%d d=%d H=%d (H must divide d)", B, T, d, H);
}

/* A kernel parameter for the mask: when there is none, any valid buffer (never read) stands in. */
static dmx_tensor mask_arg(dmx_tensor mask, dmx_tensor fallback) { return mask.buf ? mask : fallback; }

/* the kernels' private head-size arrays (DMX_ATT_HD in cl/attention.cl) */
#define FUSED_HD_MAX 64

bool dmx_attention_fused(const dmx_runtime *rt, int hd) { return rt->fused_attention && hd <= FUSED_HD_MAX; }

/* Work-group of the tiled fused kernels: rows of one head per group, and two tiles of as many rows
 * (K and V, or Q and dO) plus three floats per row (m, log l, D) in local memory. */
static size_t tile_wg(dmx_runtime *rt, dmx_kernel_id id, size_t hd) {
  size_t n = dmx_local_pow2(rt, id, 0, 64, 1), room = dmx_kernel_local_mem_max(rt, id);
  while (n > 1 && (2 * hd + 3) * n * sizeof(float) > room) n /= 2;
  return n;
}

static float dropout_scale(float p) { return p > 0.0f ? 1.0f / (1.0f - p) : 1.0f; }

static void fused_forward(dmx_runtime *rt, dmx_tensor out, attention_acts *acts, dmx_tensor qkv, dmx_tensor mask, int B,
                          int T, int d, int H, float p, uint32_t seed, uint32_t stream) {
  size_t hd = (size_t)(d / H), rows = (size_t)B * H * T;
  DMX_NEED(acts->lse, 2 * rows);
  float scale = 1.0f / sqrtf((float)hd);
  acts->qkv = qkv;
  acts->out = out;
  dmx_tensor mk = mask_arg(mask, qkv);
  /* the CPU layout's forward reads float4s: whole float4 heads at 16-byte boundaries */
  bool by_rows = rt->serial_reductions && hd % 4 == 0 && qkv.off % 4 == 0 && out.off % 4 == 0;
  if (by_rows) {
    dmx_launch_exact(rt, DMX_K_ATTENTION_FUSED_FORWARD_ROWS, 1, &rows, NULL, KA_T(out), KA_T(acts->lse), KA_T(qkv),
                     KA_T(mk), KA_I(mask.buf != NULL), KA_I(T), KA_I(d), KA_I(H), KA_F(scale), KA_F(p),
                     KA_F(dropout_scale(p)), KA_U(seed), KA_U(stream));
  } else {
    size_t wg = tile_wg(rt, DMX_K_ATTENTION_FUSED_FORWARD_TILES, hd), groups = ((size_t)T + wg - 1) / wg,
           global = (size_t)B * H * groups * wg;
    dmx_launch(rt, DMX_K_ATTENTION_FUSED_FORWARD_TILES, 1, &global, &wg, KA_T(out), KA_T(acts->lse), KA_T(qkv),
               KA_T(mk), KA_I(mask.buf != NULL), KA_I(T), KA_I(d), KA_I(H), KA_F(scale), KA_F(p),
               KA_F(dropout_scale(p)), KA_U(seed), KA_U(stream), KA_LOCAL(wg * hd * sizeof(float)),
               KA_LOCAL(wg * hd * sizeof(float)));
  }
}

static void fused_backward(dmx_runtime *rt, dmx_tensor dqkv, attention_grad_scratch *scratch, dmx_tensor dout,
                           const attention_acts *acts, dmx_tensor mask, int B, int T, int d, int H, float p,
                           uint32_t seed, uint32_t stream) {
  size_t hd = (size_t)(d / H), rows = (size_t)B * H * T;
  DMX_NEED(scratch->dsum, rows);
  if (!acts->out.buf || !acts->qkv.buf)
    dmx_die("attention backward (fused): no forward ran on these activations (a program bug)");
  float scale = 1.0f / sqrtf((float)hd), ks = dropout_scale(p);
  dmx_tensor mk = mask_arg(mask, dqkv);
  int has = mask.buf != NULL;
  if (rt->serial_reductions) {
    dmx_launch_exact(rt, DMX_K_ATTENTION_FUSED_DQ_ROWS, 1, &rows, NULL, KA_T(dqkv), KA_T(scratch->dsum),
                     KA_T(acts->qkv), KA_T(acts->out), KA_T(dout), KA_T(acts->lse), KA_T(mk), KA_I(has), KA_I(T),
                     KA_I(d), KA_I(H), KA_F(scale), KA_F(p), KA_F(ks), KA_U(seed), KA_U(stream));
    dmx_launch_exact(rt, DMX_K_ATTENTION_FUSED_DKV_ROWS, 1, &rows, NULL, KA_T(dqkv), KA_T(acts->qkv), KA_T(dout),
                     KA_T(acts->lse), KA_T(scratch->dsum), KA_T(mk), KA_I(has), KA_I(T), KA_I(d), KA_I(H), KA_F(scale),
                     KA_F(p), KA_F(ks), KA_U(seed), KA_U(stream));
  } else {
    /* one group shape for both kernels: the smaller of their limits */
    size_t wg = tile_wg(rt, DMX_K_ATTENTION_FUSED_DQ_TILES, hd), wg2 = tile_wg(rt, DMX_K_ATTENTION_FUSED_DKV_TILES, hd);
    if (wg2 < wg) wg = wg2;
    size_t groups = ((size_t)T + wg - 1) / wg, global = (size_t)B * H * groups * wg;
    dmx_launch(rt, DMX_K_ATTENTION_FUSED_DQ_TILES, 1, &global, &wg, KA_T(dqkv), KA_T(scratch->dsum), KA_T(acts->qkv),
               KA_T(acts->out), KA_T(dout), KA_T(acts->lse), KA_T(mk), KA_I(has), KA_I(T), KA_I(d), KA_I(H),
               KA_F(scale), KA_F(p), KA_F(ks), KA_U(seed), KA_U(stream), KA_LOCAL(wg * hd * sizeof(float)),
               KA_LOCAL(wg * hd * sizeof(float)));
    dmx_launch(rt, DMX_K_ATTENTION_FUSED_DKV_TILES, 1, &global, &wg, KA_T(dqkv), KA_T(acts->qkv), KA_T(dout),
               KA_T(acts->lse), KA_T(scratch->dsum), KA_T(mk), KA_I(has), KA_I(T), KA_I(d), KA_I(H), KA_F(scale),
               KA_F(p), KA_F(ks), KA_U(seed), KA_U(stream), KA_LOCAL(wg * hd * sizeof(float)),
               KA_LOCAL(wg * hd * sizeof(float)), KA_LOCAL(3 * wg * sizeof(float)));
  }
}

void dmx_attention_forward(dmx_runtime *rt, dmx_tensor out, attention_acts *acts, dmx_tensor qkv, dmx_tensor mask,
                           int B, int T, int d, int H, float p, uint32_t seed, uint32_t stream) {
  check_shape(B, T, d, H);
  DMX_NEED(qkv, (size_t)B * T * 3 * d);
  DMX_NEED(out, (size_t)B * T * d);
  if (dmx_attention_fused(rt, d / H)) {
    fused_forward(rt, out, acts, qkv, mask, B, T, d, H, p, seed, stream);
    return;
  }
  DMX_NEED(acts->att, (size_t)B * H * T * T);
  size_t hd = (size_t)(d / H), BH = (size_t)B * H, tt = (size_t)T * T, thd = (size_t)T * hd;
  size_t global[3] = {hd, (size_t)T, BH}, local[3] = {hd, 1, 1}; /* (e, t, b*H + h) */
  dmx_launch_exact(rt, DMX_K_ATTENTION_PERMUTE, 3, global, local, KA_T(acts->q), KA_T(acts->k), KA_T(acts->v),
                   KA_T(qkv), KA_I(B), KA_I(T), KA_I(d), KA_I(H));
  /* att (BH, T, T) = q k^T / sqrt(hd) */
  dmx_gemm_batched(rt, false, true, (size_t)T, (size_t)T, hd, 1.0f / sqrtf((float)hd), acts->q, hd, thd, acts->k, hd,
                   thd, 0.0f, acts->att, (size_t)T, tt, BH);
  size_t rows = BH * (size_t)T;
  if (rt->serial_reductions) {
    dmx_launch_exact(rt, DMX_K_ATTENTION_SOFTMAX_FORWARD_ROWS, 1, &rows, NULL, KA_T(acts->att),
                     KA_T(mask_arg(mask, acts->att)), KA_I(mask.buf != NULL), KA_I(T), KA_I(H));
  } else {
    size_t wg = row_wg(rt, DMX_K_ATTENTION_SOFTMAX_FORWARD), sg = rows * wg;
    dmx_launch(rt, DMX_K_ATTENTION_SOFTMAX_FORWARD, 1, &sg, &wg, KA_T(acts->att), KA_T(mask_arg(mask, acts->att)),
               KA_I(mask.buf != NULL), KA_I(T), KA_I(H), KA_I((int)rows), KA_LOCAL(wg * sizeof(float)));
  }
  /* without dropout the probabilities feed the second GEMM directly (no copy) */
  dmx_tensor P = acts->att;
  if (p > 0.0f) {
    dmx_dropout_forward(rt, acts->att_drop, acts->att, (int)(BH * tt), p, seed, stream);
    P = acts->att_drop;
  }
  /* y (BH, T, hd) = P v */
  dmx_gemm_batched(rt, false, false, (size_t)T, hd, (size_t)T, 1.0f, P, (size_t)T, tt, acts->v, hd, thd, 0.0f, acts->y,
                   hd, thd, BH);
  dmx_launch_exact(rt, DMX_K_ATTENTION_UNPERMUTE, 3, global, local, KA_T(out), KA_T(acts->y), KA_I(B), KA_I(T), KA_I(d),
                   KA_I(H));
}

void dmx_attention_backward(dmx_runtime *rt, dmx_tensor dqkv, attention_grad_scratch *scratch, dmx_tensor dout,
                            const attention_acts *acts, dmx_tensor mask, int B, int T, int d, int H, float p,
                            uint32_t seed, uint32_t stream) {
  check_shape(B, T, d, H);
  if (dmx_attention_fused(rt, d / H)) {
    fused_backward(rt, dqkv, scratch, dout, acts, mask, B, T, d, H, p, seed, stream);
    return;
  }
  size_t hd = (size_t)(d / H), BH = (size_t)B * H, tt = (size_t)T * T, thd = (size_t)T * hd;
  size_t global[3] = {hd, (size_t)T, BH}, local[3] = {hd, 1, 1}; /* (e, t, b*H + h) */
  dmx_launch_exact(rt, DMX_K_ATTENTION_UNPERMUTE_BACKWARD, 3, global, local, KA_T(scratch->dy), KA_T(dout), KA_I(B),
                   KA_I(T), KA_I(d), KA_I(H));
  /* att_drop is scratch that other layers may have overwritten since this layer's forward:
   * regenerate it from att and the (seed, stream) mask. */
  dmx_tensor P = acts->att;
  if (p > 0.0f) {
    dmx_dropout_forward(rt, acts->att_drop, acts->att, (int)(BH * tt), p, seed, stream);
    P = acts->att_drop;
  }
  /* dv = P^T dy */
  dmx_gemm_batched(rt, true, false, (size_t)T, hd, (size_t)T, 1.0f, P, (size_t)T, tt, scratch->dy, hd, thd, 0.0f,
                   scratch->dv, hd, thd, BH);
  dmx_tensor datt = scratch->datt;
  datt.n = BH * tt;
  if (p > 0.0f) {
    /* dP = dy v^T lands in att_drop (free again once dv is done); dmx_dropout_backward accumulates,
     * so datt starts from zero */
    dmx_gemm_batched(rt, false, true, (size_t)T, (size_t)T, hd, 1.0f, scratch->dy, hd, thd, acts->v, hd, thd, 0.0f,
                     acts->att_drop, (size_t)T, tt, BH);
    dmx_fill(rt, datt, 0.0f);
    dmx_dropout_backward(rt, datt, acts->att_drop, (int)(BH * tt), p, seed, stream);
  } else {
    dmx_gemm_batched(rt, false, true, (size_t)T, (size_t)T, hd, 1.0f, scratch->dy, hd, thd, acts->v, hd, thd, 0.0f,
                     datt, (size_t)T, tt, BH);
  }
  /* datt becomes the gradient of the scaled scores times the scale, i.e. of q k^T */
  size_t rows = BH * (size_t)T;
  if (rt->serial_reductions) {
    dmx_launch_exact(rt, DMX_K_ATTENTION_SOFTMAX_BACKWARD_ROWS, 1, &rows, NULL, KA_T(datt), KA_T(acts->att),
                     KA_T(mask_arg(mask, acts->att)), KA_I(mask.buf != NULL), KA_I(T), KA_I(H),
                     KA_F(1.0f / sqrtf((float)hd)));
  } else {
    size_t wg = row_wg(rt, DMX_K_ATTENTION_SOFTMAX_BACKWARD), sg = rows * wg;
    dmx_launch(rt, DMX_K_ATTENTION_SOFTMAX_BACKWARD, 1, &sg, &wg, KA_T(datt), KA_T(acts->att),
               KA_T(mask_arg(mask, acts->att)), KA_I(mask.buf != NULL), KA_I(T), KA_I(H), KA_I((int)rows),
               KA_F(1.0f / sqrtf((float)hd)), KA_LOCAL(wg * sizeof(float)));
  }
  /* dq = dS k, dk = dS^T q */
  dmx_gemm_batched(rt, false, false, (size_t)T, hd, (size_t)T, 1.0f, datt, (size_t)T, tt, acts->k, hd, thd, 0.0f,
                   scratch->dq, hd, thd, BH);
  dmx_gemm_batched(rt, true, false, (size_t)T, hd, (size_t)T, 1.0f, datt, (size_t)T, tt, acts->q, hd, thd, 0.0f,
                   scratch->dk, hd, thd, BH);
  dmx_launch_exact(rt, DMX_K_ATTENTION_PERMUTE_BACKWARD, 3, global, local, KA_T(dqkv), KA_T(scratch->dq),
                   KA_T(scratch->dk), KA_T(scratch->dv), KA_I(B), KA_I(T), KA_I(d), KA_I(H));
}
