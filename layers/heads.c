/* The demultiplexing task heads and the retrieval head (docs/datamux-spec.md §1.9-§1.10). The
 * original's concatenation [p_i ; h] is never built: W1 [p; h] = W1p p + W1h h. */
#include <string.h>

#include "host/runtime/gemm.h"
#include "layers/common_ops.h"
#include "layers/layernorm.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/heads.h"
#include "layers/model_state.h"

/* out (B, A, X) = in (A, B, X) with the first two axes swapped */
/* Enqueues a 2-D kernel of cl/heads.cl over (X columns, Y rows). */
static void launch2(dmx_model *m, dmx_kernel_id kernel, int X, int Y, int nargs, dmx_karg *args) {
  size_t g[2] = {(size_t)X, (size_t)Y}, l[2] = {X >= 64 ? 64 : 16, 1};
  dmx_launch_at(m->rt, dmx_kernel(m->rt, kernel), kernel, 2, g, l, nargs, args, __FILE__, __LINE__);
}
#define LAUNCH2(m, kernel, X, Y, ...) launch2((m), (kernel), (X), (Y), DMX_KARGS(__VA_ARGS__))

static void swap01(dmx_model *m, dmx_tensor out, dmx_tensor in, int A, int B, int X, bool acc) {
  LAUNCH2(m, DMX_K_SWAP_AXES01, X, A * B, KA_T(out), KA_T(in), KA_I(A), KA_I(B), KA_I(X), KA_I(acc ? 1 : 0));
}

/* ------------------------------------------------------------------ heads: shared pieces */

/* Per-instance MLP of the mlp variant over `rows` input rows x (rows, d):
 * out (N, rows, d) instance-major = LN_i(GELU(x W_i^T + b_i)). Saves pre-activations in a (N*rows, d),
 * GELU outputs in g, stats in mean/rstd. */
static void instance_mlp_forward(dmx_model *m, dmx_tensor out, dmx_tensor a, dmx_tensor g, dmx_tensor mean,
                                 dmx_tensor rstd, dmx_tensor x, const instance_mlp *p, int rows) {
  dmx_runtime *rt = m->rt;
  int N = m->N, d = m->d;
  size_t blk = (size_t)rows * d;
  for (int i = 0; i < N; i++)
    dmx_linear_forward(rt, sub(a, i * blk, blk), x, sub(p->w, (size_t)i * d * d, (size_t)d * d),
                       sub(p->b, (size_t)i * d, d), rows, d, d, 0.0f);
  dmx_gelu_forward(rt, g, a, N * rows * d);
  for (int i = 0; i < N; i++)
    dmx_layernorm_forward(rt, sub(out, i * blk, blk), sub(mean, (size_t)i * rows, rows),
                          sub(rstd, (size_t)i * rows, rows), sub(g, i * blk, blk), sub(p->ln_g, (size_t)i * d, d),
                          sub(p->ln_b, (size_t)i * d, d), rows, d, m->eps);
}

static void instance_mlp_backward(dmx_model *m, dmx_tensor dx, instance_mlp *gp, dmx_tensor da, dmx_tensor dg,
                                  dmx_tensor dout, dmx_tensor a, dmx_tensor g, dmx_tensor mean, dmx_tensor rstd,
                                  dmx_tensor x, const instance_mlp *p, int rows) {
  dmx_runtime *rt = m->rt;
  int N = m->N, d = m->d;
  size_t blk = (size_t)rows * d;
  for (int i = 0; i < N; i++)
    dmx_layernorm_backward(rt, sub(dg, i * blk, blk), sub(gp->ln_g, (size_t)i * d, d), sub(gp->ln_b, (size_t)i * d, d),
                           sub(dout, i * blk, blk), sub(g, i * blk, blk), sub(mean, (size_t)i * rows, rows),
                           sub(rstd, (size_t)i * rows, rows), sub(p->ln_g, (size_t)i * d, d), rows, d);
  dmx_gelu_backward(rt, da, a, dg, N * rows * d);
  for (int i = 0; i < N; i++)
    dmx_linear_backward(rt, dx, sub(gp->w, (size_t)i * d * d, (size_t)d * d), sub(gp->b, (size_t)i * d, d),
                        sub(da, i * blk, blk), x, sub(p->w, (size_t)i * d * d, (size_t)d * d), rows, d, d);
}

/* The index heads' first layer on the prefix side: P (B*N, d) = Hp W1p^T where W1 = [W1p | W1h] is
 * (d, 2d) and Hp gathers the prefix slots. */
static void w1_left(dmx_model *m, dmx_tensor out, dmx_tensor x, dmx_tensor W1, int rows) {
  dmx_gemm(m->rt, false, true, rows, m->d, m->d, 1.0f, x, m->d, W1, 2 * m->d, 0.0f, out, m->d);
}
static void w1_right(dmx_model *m, dmx_tensor out, dmx_tensor x, dmx_tensor W1, int rows) {
  dmx_gemm(m->rt, false, true, rows, m->d, m->d, 1.0f, x, m->d, sub(W1, m->d, 0), 2 * m->d, 0.0f, out, m->d);
}
/* dW1 (left or right half) += dA^T x;  dx += dA W1half */
static void w1_backward(dmx_model *m, dmx_tensor dx, dmx_tensor dW1, dmx_tensor dA, dmx_tensor x, dmx_tensor W1,
                        int rows, bool right) {
  size_t off = right ? (size_t)m->d : 0;
  dmx_gemm(m->rt, true, false, m->d, m->d, rows, 1.0f, dA, m->d, x, m->d, 1.0f, sub(dW1, off, 0), 2 * m->d);
  dmx_gemm(m->rt, false, false, rows, m->d, m->d, 1.0f, dA, m->d, sub(W1, off, 0), 2 * m->d, 1.0f, dx, m->d);
}

/* ------------------------------------------------------------------ task head */

void dmx_task_head_forward(dmx_model *m, dmx_tensor H, bool train) {
  dmx_runtime *rt = m->rt;
  int d = m->d, B = m->B, N = m->N, T = m->T, C = m->C;
  float ph = train ? m->p_hidden : 0.0f;
  int rows = m->task_rows;
  if (m->baseline) {
    if (m->token) { /* RobertaForTokenClassification: dropout, classifier on every position */
      dmx_dropout_forward(rt, m->hu, H, rows * d, ph, m->seed, stream(m, DMX_STREAM_HEAD_IN));
      dmx_linear_forward(rt, m->logits, m->hu, m->p.task.out_w, m->p.task.out_b, rows, d, C, 0.0f);
    } else { /* RobertaClassificationHead on <s>: dropout, dense, tanh, dropout, out_proj */
      dmx_gather_rows_forward(rt, m->hc, H, m->head_c_idx, B, d);
      dmx_dropout_forward(rt, m->hc, m->hc, B * d, ph, m->seed, stream(m, DMX_STREAM_HEAD_IN));
      dmx_linear_forward(rt, m->ht_pre, m->hc, m->p.task.pre_w, m->p.task.pre_b, B, d, d, 0.0f);
      dmx_tanh_forward(rt, m->ht, m->ht_pre, B * d);
      dmx_dropout_forward(rt, m->hu, m->ht, B * d, ph, m->seed, stream(m, DMX_STREAM_HEAD_MID));
      dmx_linear_forward(rt, m->logits, m->hu, m->p.task.out_w, m->p.task.out_b, B, d, C, 0.0f);
    }
    return;
  }
  if (m->index_demux) {
    /* a = W1p p_i + W1h c + b1, c the CLS slot (sentence) or every position (token) */
    dmx_gather_rows_forward(rt, m->hp, H, m->head_p_idx, B * N, d);
    w1_left(m, m->hP, m->hp, m->p.task.dense_w, B * N); /* P (B*N, d) */
    if (m->token) {
      w1_right(m, m->hc, H, m->p.task.dense_w, m->BT); /* Q (B*T, d) */
      LAUNCH2(m, DMX_K_PAIR_BROADCAST_ADD, d, rows, KA_T(m->ha), KA_T(m->hP), KA_T(m->hc), KA_T(m->p.task.dense_b),
              KA_I(B), KA_I(N), KA_I(T), KA_I(d));
    } else {
      dmx_gather_rows_forward(rt, m->hperm, H, m->head_c_idx, B, d);
      w1_right(m, m->hc, m->hperm, m->p.task.dense_w, B);
      LAUNCH2(m, DMX_K_GROUP_BROADCAST_ADD, d, rows, KA_T(m->ha), KA_T(m->hP), KA_T(m->hc), KA_T(m->p.task.dense_b),
              KA_I(rows), KA_I(N), KA_I(d));
    }
    dmx_gelu_forward(rt, m->hg, m->ha, rows * d);
    dmx_layernorm_forward(rt, m->hu, m->hmean, m->hrstd, m->hg, m->p.task.hln_g, m->p.task.hln_b, rows, d, m->eps);
    if (m->token) {
      dmx_linear_forward(rt, m->logits, m->hu, m->p.task.out_w, m->p.task.out_b, rows, d, C, 0.0f);
    } else { /* no LayerNorm before out_proj in the index sentence head (spec §1.9a) */
      dmx_linear_forward(rt, m->ht_pre, m->hu, m->p.task.pre_w, m->p.task.pre_b, rows, d, d, 0.0f);
      dmx_gelu_forward(rt, m->ht, m->ht_pre, rows * d);
      dmx_linear_forward(rt, m->logits, m->ht, m->p.task.out_w, m->p.task.out_b, rows, d, C, 0.0f);
    }
    return;
  }
  /* mlp demux: per-instance MLP on dropout(H[b,0]) (sentence) or dropout(H) (token), computed
   * instance-major (N, rows/N, d), then the shared dense -> GELU -> LN -> out_proj, and the
   * logits swapped back to row order b*N+i. */
  int in_rows = m->token ? m->BT : B;
  if (m->token)
    dmx_copy_forward(rt, m->hc, H, in_rows * d);
  else
    dmx_gather_rows_forward(rt, m->hc, H, m->head_c_idx, B, d);
  dmx_dropout_forward(rt, m->hc, m->hc, in_rows * d, ph, m->seed, stream(m, DMX_STREAM_HEAD_IN));
  instance_mlp_forward(m, m->hu, m->ha, m->hg, m->hmean, m->hrstd, m->hc, &m->p.task.mlp, in_rows);
  dmx_linear_forward(rt, m->ht_pre, m->hu, m->p.task.pre_w, m->p.task.pre_b, rows, d, d, 0.0f);
  dmx_gelu_forward(rt, m->ht, m->ht_pre, rows * d);
  dmx_layernorm_forward(rt, m->hu2, m->hmean2, m->hrstd2, m->ht, m->p.task.pre_ln_g, m->p.task.pre_ln_b, rows, d,
                        m->eps);
  dmx_linear_forward(rt, m->hperm, m->hu2, m->p.task.out_w, m->p.task.out_b, rows, d, C, 0.0f); /* (N, B, [T,] C) */
  swap01(m, m->logits, m->hperm, N, B, (m->token ? T : 1) * C, false);
}

void dmx_task_head_backward(dmx_model *m, dmx_tensor H, dmx_tensor dH, bool train) {
  dmx_runtime *rt = m->rt;
  int d = m->d, B = m->B, N = m->N, T = m->T, C = m->C;
  float ph = train ? m->p_hidden : 0.0f;
  int rows = m->task_rows;
  dmx_tensor dlog = m->da.logits;
  if (m->baseline) {
    if (m->token) {
      dmx_linear_backward(rt, m->da.hu, m->g.task.out_w, m->g.task.out_b, dlog, m->hu, m->p.task.out_w, rows, d, C);
      dmx_dropout_backward(rt, dH, m->da.hu, rows * d, ph, m->seed, stream(m, DMX_STREAM_HEAD_IN));
    } else {
      dmx_linear_backward(rt, m->da.hu, m->g.task.out_w, m->g.task.out_b, dlog, m->hu, m->p.task.out_w, B, d, C);
      dmx_dropout_backward(rt, m->da.ht, m->da.hu, B * d, ph, m->seed, stream(m, DMX_STREAM_HEAD_MID));
      dmx_tanh_backward(rt, m->da.ht_pre, m->ht, m->da.ht, B * d);
      dmx_linear_backward(rt, m->da.hc, m->g.task.pre_w, m->g.task.pre_b, m->da.ht_pre, m->hc, m->p.task.pre_w, B, d,
                          d);
      dmx_tensor d_cls = m->da.hP; /* alias: the gradient of the <s> rows before dropout (no P here) */
      dmx_dropout_backward(rt, d_cls, m->da.hc, B * d, ph, m->seed, stream(m, DMX_STREAM_HEAD_IN));
      dmx_gather_rows_backward(rt, dH, d_cls, m->head_c_idx, B, d);
    }
    return;
  }
  if (m->index_demux) {
    if (m->token) {
      dmx_linear_backward(rt, m->da.hu, m->g.task.out_w, m->g.task.out_b, dlog, m->hu, m->p.task.out_w, rows, d, C);
    } else {
      dmx_linear_backward(rt, m->da.ht, m->g.task.out_w, m->g.task.out_b, dlog, m->ht, m->p.task.out_w, rows, d, C);
      dmx_gelu_backward(rt, m->da.ht_pre, m->ht_pre, m->da.ht, rows * d);
      dmx_linear_backward(rt, m->da.hu, m->g.task.pre_w, m->g.task.pre_b, m->da.ht_pre, m->hu, m->p.task.pre_w, rows, d,
                          d);
    }
    dmx_layernorm_backward(rt, m->da.hg, m->g.task.hln_g, m->g.task.hln_b, m->da.hu, m->hg, m->hmean, m->hrstd,
                           m->p.task.hln_g, rows, d);
    dmx_gelu_backward(rt, m->da.ha, m->ha, m->da.hg, rows * d);
    dmx_bias_add_backward(rt, m->g.task.dense_b, m->da.ha, rows, d);
    /* da.hP = dP (B*N, d); da.hc = dQ (B or B*T, d) */
    if (m->token) {
      LAUNCH2(m, DMX_K_PAIR_SUM_P_BACKWARD, d, B * N, KA_T(m->da.hP), KA_T(m->da.ha), KA_I(B), KA_I(N), KA_I(T),
              KA_I(d));
      LAUNCH2(m, DMX_K_PAIR_SUM_Q_BACKWARD, d, m->BT, KA_T(m->da.hc), KA_T(m->da.ha), KA_I(B), KA_I(N), KA_I(T),
              KA_I(d));
      w1_backward(m, dH, m->g.task.dense_w, m->da.hc, H, m->p.task.dense_w, m->BT, true);
    } else {
      dmx_axpy(rt, m->da.hP, m->da.ha, 1.0f, rows * d);
      LAUNCH2(m, DMX_K_GROUP_SUM_BACKWARD, d, B, KA_T(m->da.hc), KA_T(m->da.ha), KA_I(B), KA_I(N), KA_I(d));
      w1_backward(m, m->da.hperm, m->g.task.dense_w, m->da.hc, m->hperm, m->p.task.dense_w, B, true);
      dmx_gather_rows_backward(rt, dH, m->da.hperm, m->head_c_idx, B, d);
    }
    w1_backward(m, m->da.hp, m->g.task.dense_w, m->da.hP, m->hp, m->p.task.dense_w, B * N, false);
    dmx_gather_rows_backward(rt, dH, m->da.hp, m->head_p_idx, B * N, d);
    return;
  }
  int in_rows = m->token ? m->BT : B;
  swap01(m, m->da.hperm, dlog, B, N, (m->token ? T : 1) * C, false);
  dmx_linear_backward(rt, m->da.hu2, m->g.task.out_w, m->g.task.out_b, m->da.hperm, m->hu2, m->p.task.out_w, rows, d,
                      C);
  dmx_layernorm_backward(rt, m->da.ht, m->g.task.pre_ln_g, m->g.task.pre_ln_b, m->da.hu2, m->ht, m->hmean2, m->hrstd2,
                         m->p.task.pre_ln_g, rows, d);
  dmx_gelu_backward(rt, m->da.ht_pre, m->ht_pre, m->da.ht, rows * d);
  dmx_linear_backward(rt, m->da.hu, m->g.task.pre_w, m->g.task.pre_b, m->da.ht_pre, m->hu, m->p.task.pre_w, rows, d, d);
  instance_mlp_backward(m, m->da.hc, &m->g.task.mlp, m->da.ha, m->da.hg, m->da.hu, m->ha, m->hg, m->hmean, m->hrstd,
                        m->hc, &m->p.task.mlp, in_rows);
  if (m->token) {
    dmx_dropout_backward(rt, dH, m->da.hc, in_rows * d, ph, m->seed, stream(m, DMX_STREAM_HEAD_IN));
  } else {
    dmx_tensor d_cls = m->da.hP; /* alias: the gradient of the <s> rows before dropout (no P in the mlp demux) */
    dmx_dropout_backward(rt, d_cls, m->da.hc, in_rows * d, ph, m->seed, stream(m, DMX_STREAM_HEAD_IN));
    dmx_gather_rows_backward(rt, dH, d_cls, m->head_c_idx, B, d);
  }
}

/* ------------------------------------------------------------------ retrieval head */

/* Forward and backward together: the vocabulary logits are the loss's own input, so each block of
 * rows is projected, scored and differentiated at once and never held whole. */
void dmx_retrieval_head(dmx_model *m, dmx_tensor H, dmx_tensor dH, bool train) {
  dmx_runtime *rt = m->rt;
  int d = m->d, N = m->N, B = m->B, V = m->V, S = m->S;
  float ph = train ? m->p_hidden : 0.0f;
  dmx_tensor hidx = sub(m->r_hidx, 0, S);
  dmx_gather_rows_forward(rt, m->rs_h, H, hidx, S, d);
  dmx_tensor u; /* (S, d): the representation the decoder reads */
  if (m->index_demux) {
    dmx_gather_rows_forward(rt, m->hp, H, m->head_p_idx, B * N, d);
    w1_left(m, m->rp, m->hp, m->p.retr.dense_w, B * N);
    w1_right(m, m->rq, m->rs_h, m->p.retr.dense_w, S);
    LAUNCH2(m, DMX_K_INDEXED_ADD, d, S, KA_T(m->ra), KA_T(m->rp), KA_T(m->r_pidx), KA_T(m->rq), KA_T(m->p.retr.dense_b),
            KA_I(S), KA_I(d));
    dmx_gelu_forward(rt, m->rg, m->ra, S * d);
    dmx_layernorm_forward(rt, m->ru, m->rmean, m->rrstd, m->rg, m->p.retr.ln_g, m->p.retr.ln_b, S, d, m->eps);
    u = m->ru;
  } else {
    dmx_dropout_forward(rt, m->rs_h, m->rs_h, S * d, ph, m->seed, stream(m, DMX_STREAM_RETR_IN));
    instance_mlp_forward(m, m->rsel_all, m->ra, m->rg, m->rmean, m->rrstd, m->rs_h, &m->p.retr.mlp, S);
    dmx_gather_rows_forward(rt, m->ru, m->rsel_all, m->r_sel, S, d); /* instance k_s of row s */
    dmx_linear_forward(rt, m->rpre, m->ru, m->p.retr.pre_w, m->p.retr.pre_b, S, d, d, 0.0f);
    dmx_gelu_forward(rt, m->rpre_g, m->rpre, S * d);
    dmx_layernorm_forward(rt, m->ru2, m->rmean2, m->rrstd2, m->rpre_g, m->p.retr.pre_ln_g, m->p.retr.pre_ln_b, S, d,
                          m->eps);
    u = m->ru2;
  }
  dmx_tensor du = m->index_demux ? m->da.ru : m->da.ru2;
  int norm = m->retrieval_norm > 0 ? m->retrieval_norm : S;
  float scale = train ? m->retr_coeff / (float)(norm > 0 ? norm : 1) : 0.0f;
  for (int s0 = 0; s0 < S; s0 += RETRIEVAL_BLOCK_ROWS) {
    int rows = S - s0 < RETRIEVAL_BLOCK_ROWS ? S - s0 : RETRIEVAL_BLOCK_ROWS;
    dmx_tensor ub = sub(u, (size_t)s0 * d, (size_t)rows * d);
    dmx_scope(rt, "vocab");
    dmx_linear_forward(rt, m->rlogits, ub, m->p.retr.dec_w, m->p.retr.dec_b, rows, d, V, 0.0f);
    dmx_softmax_xent_forward_backward(rt, sub(m->r_losses, s0, rows), sub(m->r_preds, s0, rows),
                                      train ? m->rdlogits : none(), m->rlogits, sub(m->r_targets, s0, rows), rows, V,
                                      scale);
    if (train)
      dmx_linear_backward(rt, sub(du, (size_t)s0 * d, (size_t)rows * d), m->g.retr.dec_w, m->g.retr.dec_b, m->rdlogits,
                          ub, m->p.retr.dec_w, rows, d, V);
  }
  dmx_scope(rt, "heads");
  dmx_reduce_sum(rt, m->r_sum, m->r_losses, S);
  if (!train) return;
  if (m->index_demux) {
    dmx_layernorm_backward(rt, m->da.rg, m->g.retr.ln_g, m->g.retr.ln_b, m->da.ru, m->rg, m->rmean, m->rrstd,
                           m->p.retr.ln_g, S, d);
    dmx_gelu_backward(rt, m->da.ra, m->ra, m->da.rg, S * d);
    dmx_bias_add_backward(rt, m->g.retr.dense_b, m->da.ra, S, d);
    /* dP rows collide (several positions pick the same instance): bucketed sum, no atomics */
    dmx_embedding_table_backward(rt, m->da.rp, m->da.ra, &m->bkd_rp, m->bk_rp.n_unique, d);
    w1_backward(m, m->da.rs_h, m->g.retr.dense_w, m->da.ra, m->rs_h, m->p.retr.dense_w, S, true);
    w1_backward(m, m->da.rhp, m->g.retr.dense_w, m->da.rp, m->hp, m->p.retr.dense_w, B * N, false);
    dmx_gather_rows_backward(rt, dH, m->da.rhp, m->head_p_idx, B * N, d);
    dmx_gather_rows_backward(rt, dH, m->da.rs_h, hidx, S, d);
  } else {
    dmx_layernorm_backward(rt, m->da.rpre_g, m->g.retr.pre_ln_g, m->g.retr.pre_ln_b, m->da.ru2, m->rpre_g, m->rmean2,
                           m->rrstd2, m->p.retr.pre_ln_g, S, d);
    dmx_gelu_backward(rt, m->da.rpre, m->rpre, m->da.rpre_g, S * d);
    dmx_linear_backward(rt, m->da.ru, m->g.retr.pre_w, m->g.retr.pre_b, m->da.rpre, m->ru, m->p.retr.pre_w, S, d, d);
    dmx_gather_rows_backward(rt, m->da.rsel_all, m->da.ru, m->r_sel, S, d);
    instance_mlp_backward(m, m->da.rq, &m->g.retr.mlp, m->da.ra, m->da.rg, m->da.rsel_all, m->ra, m->rg, m->rmean,
                          m->rrstd, m->rs_h, &m->p.retr.mlp, S);
    dmx_dropout_backward(rt, m->da.rs_h, m->da.rq, S * d, ph, m->seed, stream(m, DMX_STREAM_RETR_IN));
    dmx_gather_rows_backward(rt, dH, m->da.rs_h, hidx, S, d);
  }
}
