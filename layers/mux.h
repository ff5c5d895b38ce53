/* Multiplexing (docs/datamux-spec.md §1.6): N instances' embeddings e (B*N, T, d), row b*N+i being
 * instance i of group b, combine into x (B, T, d). */
#ifndef DMX_LAYERS_MUX_H
#define DMX_LAYERS_MUX_H
#include "host/config/config.h"
#include "host/runtime/runtime.h"

/* Instance parameters on the host, drawn from `seed`: gaussian_hadamard (N, d) rows v_i = s g/|g|;
 * binary_hadamard (N, d) blocks of 1s widened by epsilon; random_ortho (N, d, d) Haar-random
 * orthogonal matrices. out holds N*d or N*d*d floats. */
size_t dmx_mux_instance_floats(dmx_muxing m, int N, int d);
void dmx_mux_init_instances(float *out, dmx_muxing m, int N, int d, float gaussian_norm, float binary_eps,
                            uint64_t seed);

/* Hadamard variants: x[b, j] = (1/N) sum_i v_i ⊙ e[b*N+i, j]; v (N, d). */
void dmx_mux_hadamard_forward(dmx_runtime *rt, dmx_tensor x, dmx_tensor e, dmx_tensor v, int B, int N, int T, int d);
/* Inference only: embedding pass 1 + its LayerNorm + the Hadamard mux fused, x (B, T, d) from ids
 * and pos_ids (B*N, T), the embedding tables, the LayerNorm (ln_g, ln_b, eps) and v (N, d). For CPU
 * devices (one work-item per row), when dmx_embed_ln_mux_hadamard_fits. */
bool dmx_embed_ln_mux_hadamard_fits(const dmx_runtime *rt, int d);
void dmx_embed_ln_mux_hadamard_forward(dmx_runtime *rt, dmx_tensor x, dmx_tensor ids, dmx_tensor pos_ids,
                                       dmx_tensor word, dmx_tensor pos, dmx_tensor type, dmx_tensor ln_g,
                                       dmx_tensor ln_b, dmx_tensor v, int B, int N, int T, int d, float eps);
/* de += ..., dv += ... (dv skipped when dv.buf is NULL: frozen instance vectors) */
void dmx_mux_hadamard_backward(dmx_runtime *rt, dmx_tensor de, dmx_tensor dv, dmx_tensor dx, dmx_tensor e, dmx_tensor v,
                               int B, int N, int T, int d);

/* random_ortho: x[b, j] = (1/sqrt N) sum_i W_i e[b*N+i, j] (W_i (d, d), column vector convention,
 * so a row is multiplied by W_i^T). One strided-batched GEMM over the instances via permuted
 * scratch: perm and y are (N, B*T, d) each. */
void dmx_mux_ortho_forward(dmx_runtime *rt, dmx_tensor x, dmx_tensor perm, dmx_tensor y, dmx_tensor e, dmx_tensor W,
                           int B, int N, int T, int d);
/* de += ..., dW += ... (skipped when dW.buf is NULL). Scratch dperm, dy (N, B*T, d); perm as saved
 * by the forward (it must still hold the forward's permuted e). */
void dmx_mux_ortho_backward(dmx_runtime *rt, dmx_tensor de, dmx_tensor dW, dmx_tensor dperm, dmx_tensor dy,
                            dmx_tensor dx, dmx_tensor perm, dmx_tensor W, int B, int N, int T, int d);
#endif
