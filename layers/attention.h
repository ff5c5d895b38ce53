/* Multi-head self-attention core (llm.c's fp32 recipe): permute -> strided-batched GEMM ->
 * fused scale + mask + softmax -> dropout -> strided-batched GEMM -> unpermute. The Q/K/V and
 * output projections are linear layers outside this block. */
#ifndef DMX_LAYERS_ATTENTION_H
#define DMX_LAYERS_ATTENTION_H
#include "host/runtime/runtime.h"

/* Saved activations and scratch of one attention call; the caller places them in its arenas. */
typedef struct {
  dmx_tensor q, k, v;  /* (B, H, T, hd) each: saved (GEMM path) */
  dmx_tensor att;      /* (B, H, T, T) softmax probabilities, before dropout: saved (GEMM path) */
  dmx_tensor att_drop; /* (B, H, T, T) scratch: probabilities after dropout (may be shared across layers) */
  dmx_tensor y;        /* (B, H, T, hd) scratch: att_drop @ v before unpermute (may be shared) */
  dmx_tensor lse;      /* (B, H, T, 2) each query row's score max and log of its exp-sum: saved (fused path) */
  dmx_tensor qkv,
      out; /* (B, T, 3d), (B, T, d): the forward's input and output, recorded by it for the fused backward */
} attention_acts;
/* Float counts the caller must reserve for each field above. */
size_t dmx_attention_qkv_floats(int B, int T, int d);
size_t dmx_attention_att_floats(int B, int T, int H);
size_t dmx_attention_row_floats(int B, int T, int H); /* dsum */
size_t dmx_attention_lse_floats(int B, int T, int H); /* lse */

/* Which implementation runs on rt for head size hd: the fused kernels (DMX_ATTENTION_FUSED), or
 * the strided-batched GEMMs with a softmax kernel between them. rt->fused_attention chooses (by
 * device, DATAMUX_ATTENTION overrides); heads wider than the fused kernels' limit take the GEMMs. */
bool dmx_attention_fused(const dmx_runtime *rt, int hd);

/* out (B, T, d) = attention over qkv (B, T, 3d) laid out [q | k | v] per row (a fused QKV
 * projection). mask: int32 tensor (B, T) with 1 = attend, 0 = padding (adds -inf... a large
 * negative to those keys), or mask.buf == NULL for no mask (the original DataMUX). Dropout on the
 * probabilities with (p, seed, stream). */
void dmx_attention_forward(dmx_runtime *rt, dmx_tensor out, attention_acts *acts, dmx_tensor qkv, dmx_tensor mask,
                           int B, int T, int d, int H, float p, uint32_t seed, uint32_t stream);
/* dqkv (B, T, 3d) += gradient through attention given dout (B, T, d). Scratch (may be shared across
 * layers): dq, dk, dv (B, H, T, hd) each, datt (B, H, T, T). Recomputes the dropout mask. */
typedef struct {
  dmx_tensor dq, dk, dv, datt, dy; /* GEMM path: (B, H, T, hd) x3, (B, H, T, T), (B, H, T, hd) */
  dmx_tensor dsum;                 /* fused path: (B, H, T) dO . O of each query row */
} attention_grad_scratch;
void dmx_attention_backward(dmx_runtime *rt, dmx_tensor dqkv, attention_grad_scratch *scratch, dmx_tensor dout,
                            const attention_acts *acts, dmx_tensor mask, int B, int T, int d, int H, float p,
                            uint32_t seed, uint32_t stream);
#endif
