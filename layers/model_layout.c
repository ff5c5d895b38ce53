/* What a model holds: the parameter registry (every tensor under its original name, views for
 * stacked ones, in one arena with trainable tensors first) and the activation tensors of a step. */
#include "layers/model_layout.h"

#include <stdlib.h>
#include <string.h>

#include "layers/attention.h"
#include "layers/mux.h"
#include "layers/optim.h"

/* ------------------------------------------------------------------ parameter registry */

dmx_tensor dmx_param_tensor(const dmx_param *p) { return sub(*p->base, p->sub_off, p->n); }
dmx_tensor dmx_param_grad(const dmx_param *p) { return p->grad_base ? sub(*p->grad_base, p->sub_off, p->n) : none(); }

static dmx_param *add_view(dmx_model *m, const char *name, dmx_tensor *base, dmx_tensor *grad, size_t sub_off, int ndim,
                           int s0, int s1, int s2, dmx_param_init init) {
  if (m->np == DMX_MAX_PARAMS) dmx_die("too many parameters (raise DMX_MAX_PARAMS)");
  dmx_param *p = &m->plist[m->np++];
  memset(p, 0, sizeof *p);
  size_t len = strlen(name);
  if (len >= sizeof p->name)
    dmx_die("parameter name '%s' is over %zu characters (a program bug)", name, sizeof p->name - 1);
  memcpy(p->name, name, len + 1);
  p->ndim = ndim;
  p->shape[0] = s0;
  p->shape[1] = s1;
  p->shape[2] = s2;
  p->n = (size_t)s0 * (ndim > 1 ? (size_t)s1 : 1) * (ndim > 2 ? (size_t)s2 : 1);
  p->base = base;
  p->grad_base = grad;
  p->trainable = grad != NULL;
  p->sub_off = sub_off;
  p->init = init;
  p->padding_row = -1;
  return p;
}

/* Registers a whole tensor (n floats) in the parameter arena and, when trainable, its mirrors in
 * the gradient, Adam and decay-mask arenas. The mirrors get identical offsets, so AdamW addresses
 * all four as flat buffers and only the gradient mirror needs a name. */
static void reserve(dmx_model *m, dmx_tensor *t, dmx_tensor *g, size_t n) {
  dmx_arena_add(&m->params, t, n);
  if (!g) return;
  if (m->n_mirrors == DMX_MAX_PARAMS) dmx_die("too many parameter tensors (raise DMX_MAX_PARAMS)");
  dmx_arena_add(&m->grads, g, n);
  dmx_arena_add(&m->adam_m, &m->mirrors[m->n_mirrors][0], n);
  dmx_arena_add(&m->adam_v, &m->mirrors[m->n_mirrors][1], n);
  if (m->e.train.weight_decay > 0) dmx_arena_add(&m->decay, &m->mirrors[m->n_mirrors][2], n);
  m->n_mirrors++;
}

static dmx_param *param(dmx_model *m, const char *name, dmx_tensor *t, dmx_tensor *g, int ndim, int s0, int s1, int s2,
                        dmx_param_init init) {
  size_t n = (size_t)s0 * (ndim > 1 ? (size_t)s1 : 1) * (ndim > 2 ? (size_t)s2 : 1);
  reserve(m, t, g, n);
  return add_view(m, name, t, g, 0, ndim, s0, s1, s2, init);
}

static void linear_params(dmx_model *m, const char *prefix, dmx_tensor *w, dmx_tensor *gw, dmx_tensor *b,
                          dmx_tensor *gb, int out, int in) {
  char name[160];
  snprintf(name, sizeof name, "%s.weight", prefix);
  param(m, name, w, gw, 2, out, in, 0, DMX_INIT_NORMAL);
  snprintf(name, sizeof name, "%s.bias", prefix);
  param(m, name, b, gb, 1, out, 0, 0, DMX_INIT_ZEROS);
}

static void ln_params(dmx_model *m, const char *prefix, dmx_tensor *w, dmx_tensor *gw, dmx_tensor *b, dmx_tensor *gb,
                      int d) {
  char name[160];
  snprintf(name, sizeof name, "%s.weight", prefix);
  param(m, name, w, gw, 1, d, 0, 0, DMX_INIT_ONES);
  snprintf(name, sizeof name, "%s.bias", prefix);
  param(m, name, b, gb, 1, d, 0, 0, DMX_INIT_ZEROS);
}

/* N per-instance dense + layer norm blocks stored contiguously (one GEMM serves all of them). */
static void instance_mlp_params(dmx_model *m, const char *prefix, instance_mlp *p, instance_mlp *g) {
  int N = m->N, d = m->d;
  reserve(m, &p->w, &g->w, (size_t)N * d * d);
  reserve(m, &p->b, &g->b, (size_t)N * d);
  reserve(m, &p->ln_g, &g->ln_g, (size_t)N * d);
  reserve(m, &p->ln_b, &g->ln_b, (size_t)N * d);
  char name[160];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "%s.demux_module.dense_%d.weight", prefix, i);
    add_view(m, name, &p->w, &g->w, (size_t)i * d * d, 2, d, d, 0, DMX_INIT_NORMAL);
    snprintf(name, sizeof name, "%s.demux_module.dense_%d.bias", prefix, i);
    add_view(m, name, &p->b, &g->b, (size_t)i * d, 1, d, 0, 0, DMX_INIT_ZEROS);
    snprintf(name, sizeof name, "%s.demux_module.layer_norm_%d.weight", prefix, i);
    add_view(m, name, &p->ln_g, &g->ln_g, (size_t)i * d, 1, d, 0, 0, DMX_INIT_ONES);
    snprintf(name, sizeof name, "%s.demux_module.layer_norm_%d.bias", prefix, i);
    add_view(m, name, &p->ln_b, &g->ln_b, (size_t)i * d, 1, d, 0, 0, DMX_INIT_ZEROS);
  }
}

void dmx_model_register_params(dmx_model *m) {
  int d = m->d, V = m->V;
  dmx_param *p = param(m, "roberta.embeddings.word_embeddings.weight", &m->p.emb.word, &m->g.emb.word, 2, V, d, 0,
                       DMX_INIT_NORMAL);
  p->padding_row = m->e.model.pad_token_id;
  p = param(m, "roberta.embeddings.position_embeddings.weight", &m->p.emb.pos, &m->g.emb.pos, 2, m->P, d, 0,
            DMX_INIT_NORMAL);
  p->padding_row = m->e.model.pad_token_id;
  param(m, "roberta.embeddings.token_type_embeddings.weight", &m->p.emb.type, &m->g.emb.type, 2, 1, d, 0,
        DMX_INIT_NORMAL);
  ln_params(m, "roberta.embeddings.LayerNorm", &m->p.emb.ln_g, &m->g.emb.ln_g, &m->p.emb.ln_b, &m->g.emb.ln_b, d);
  char name[160];
  for (int l = 0; l < m->nl; l++) {
    layer_params *P = &m->p.layers[l], *G = &m->g.layers[l];
    /* Q, K and V are one (3d, d) tensor so the projection is one GEMM; the registry exposes the
     * original three names as views. */
    reserve(m, &P->qkv_w, &G->qkv_w, (size_t)3 * d * d);
    reserve(m, &P->qkv_b, &G->qkv_b, (size_t)3 * d);
    const char *qkv[3] = {"query", "key", "value"};
    for (int k = 0; k < 3; k++) {
      snprintf(name, sizeof name, "roberta.encoder.layer.%d.attention.self.%s.weight", l, qkv[k]);
      add_view(m, name, &P->qkv_w, &G->qkv_w, (size_t)k * d * d, 2, d, d, 0, DMX_INIT_NORMAL);
      snprintf(name, sizeof name, "roberta.encoder.layer.%d.attention.self.%s.bias", l, qkv[k]);
      add_view(m, name, &P->qkv_b, &G->qkv_b, (size_t)k * d, 1, d, 0, 0, DMX_INIT_ZEROS);
    }
    snprintf(name, sizeof name, "roberta.encoder.layer.%d.attention.output.dense", l);
    linear_params(m, name, &P->ao_w, &G->ao_w, &P->ao_b, &G->ao_b, d, d);
    snprintf(name, sizeof name, "roberta.encoder.layer.%d.attention.output.LayerNorm", l);
    ln_params(m, name, &P->ln1_g, &G->ln1_g, &P->ln1_b, &G->ln1_b, d);
    snprintf(name, sizeof name, "roberta.encoder.layer.%d.intermediate.dense", l);
    linear_params(m, name, &P->fc_w, &G->fc_w, &P->fc_b, &G->fc_b, m->I, d);
    snprintf(name, sizeof name, "roberta.encoder.layer.%d.output.dense", l);
    linear_params(m, name, &P->proj_w, &G->proj_w, &P->proj_b, &G->proj_b, d, m->I);
    snprintf(name, sizeof name, "roberta.encoder.layer.%d.output.LayerNorm", l);
    ln_params(m, name, &P->ln2_g, &G->ln2_g, &P->ln2_b, &G->ln2_b, d);
  }

  /* task head */
  if (m->baseline) {
    if (m->token) {
      linear_params(m, "classifier", &m->p.task.out_w, &m->g.task.out_w, &m->p.task.out_b, &m->g.task.out_b, m->C, d);
    } else {
      linear_params(m, "classifier.dense", &m->p.task.pre_w, &m->g.task.pre_w, &m->p.task.pre_b, &m->g.task.pre_b, d,
                    d);
      linear_params(m, "classifier.out_proj", &m->p.task.out_w, &m->g.task.out_w, &m->p.task.out_b, &m->g.task.out_b,
                    m->C, d);
    }
  } else if (m->index_demux) {
    linear_params(m, "demultiplexer.dense", &m->p.task.dense_w, &m->g.task.dense_w, &m->p.task.dense_b,
                  &m->g.task.dense_b, d, 2 * d);
    ln_params(m, "demultiplexer.layer_norm", &m->p.task.hln_g, &m->g.task.hln_g, &m->p.task.hln_b, &m->g.task.hln_b, d);
    if (m->token) {
      param(m, "demultiplexer.decoder.weight", &m->p.task.out_w, &m->g.task.out_w, 2, m->C, d, 0, DMX_INIT_NORMAL);
      p = param(m, "demultiplexer.decoder.bias", &m->p.task.out_b, &m->g.task.out_b, 1, m->C, 0, 0, DMX_INIT_ZEROS);
      snprintf(p->alias, sizeof p->alias, "demultiplexer.bias");
    } else {
      linear_params(m, "demultiplexer.dense_before_out_proj", &m->p.task.pre_w, &m->g.task.pre_w, &m->p.task.pre_b,
                    &m->g.task.pre_b, d, d);
      linear_params(m, "demultiplexer.out_proj", &m->p.task.out_w, &m->g.task.out_w, &m->p.task.out_b, &m->g.task.out_b,
                    m->C, d);
    }
  } else {
    instance_mlp_params(m, "demultiplexer", &m->p.task.mlp, &m->g.task.mlp);
    linear_params(m, "demultiplexer.dense_before_out_proj", &m->p.task.pre_w, &m->g.task.pre_w, &m->p.task.pre_b,
                  &m->g.task.pre_b, d, d);
    ln_params(m, "demultiplexer.layernorm_presoftmax", &m->p.task.pre_ln_g, &m->g.task.pre_ln_g, &m->p.task.pre_ln_b,
              &m->g.task.pre_ln_b, d);
    linear_params(m, "demultiplexer.out_proj", &m->p.task.out_w, &m->g.task.out_w, &m->p.task.out_b, &m->g.task.out_b,
                  m->C, d);
  }

  /* retrieval head: present in every muxed model (and its checkpoints), computed only when used */
  if (!m->baseline) {
    if (m->index_demux) {
      linear_params(m, "retrieval_head.dense", &m->p.retr.dense_w, &m->g.retr.dense_w, &m->p.retr.dense_b,
                    &m->g.retr.dense_b, d, 2 * d);
      ln_params(m, "retrieval_head.layer_norm", &m->p.retr.ln_g, &m->g.retr.ln_g, &m->p.retr.ln_b, &m->g.retr.ln_b, d);
    } else {
      instance_mlp_params(m, "retrieval_head", &m->p.retr.mlp, &m->g.retr.mlp);
      linear_params(m, "retrieval_head.dense_pre_vocab", &m->p.retr.pre_w, &m->g.retr.pre_w, &m->p.retr.pre_b,
                    &m->g.retr.pre_b, d, d);
      ln_params(m, "retrieval_head.layer_norm_pre_vocab", &m->p.retr.pre_ln_g, &m->g.retr.pre_ln_g, &m->p.retr.pre_ln_b,
                &m->g.retr.pre_ln_b, d);
    }
    param(m, "retrieval_head.decoder.weight", &m->p.retr.dec_w, &m->g.retr.dec_w, 2, V, d, 0, DMX_INIT_NORMAL);
    p = param(m, "retrieval_head.decoder.bias", &m->p.retr.dec_b, &m->g.retr.dec_b, 1, V, 0, 0, DMX_INIT_ZEROS);
    snprintf(p->alias, sizeof p->alias, "retrieval_head.bias");

    /* instance vectors last: frozen ones sit after every trainable tensor, outside AdamW's range */
    size_t n_inst = dmx_mux_instance_floats(m->e.mux.muxing, m->N, d);
    bool learn = m->e.mux.learn_muxing;
    if (m->e.mux.muxing == DMX_MUX_RANDOM_ORTHO)
      param(m, "instance_embedding", &m->p.mux.inst, learn ? &m->g.mux.inst : NULL, 3, m->N, d, d, DMX_INIT_INSTANCES);
    else
      param(m, "instance_embedding", &m->p.mux.inst, learn ? &m->g.mux.inst : NULL, 2, m->N, d, 0, DMX_INIT_INSTANCES);
    (void)n_inst;
  }
}

/* ------------------------------------------------------------------ activations */

static void act(dmx_model *m, dmx_tensor *t, size_t n) { dmx_arena_add(&m->acts, t, n ? n : 1); }
static void dact(dmx_model *m, dmx_tensor *t, size_t n) { dmx_arena_add(&m->dacts, t, n ? n : 1); }
static void iact(dmx_model *m, dmx_tensor *t, size_t n) { dmx_arena_add(&m->ints, t, n ? n : 1); }

void dmx_model_register_activations(dmx_model *m) {
  size_t d = m->d, R1 = m->R1, BT = m->BT, I = m->I, N = m->N, B = m->B, C = m->C;
  /* inputs */
  iact(m, &m->ids, R1);
  iact(m, &m->pos_ids, R1);
  iact(m, &m->mask, BT);
  size_t task_rows = m->token ? R1 : B * N;
  iact(m, &m->labels, task_rows);
  iact(m, &m->preds, task_rows);
  iact(m, &m->head_p_idx, B * N);
  iact(m, &m->head_c_idx, B);
  iact(m, &m->r_pidx, BT);
  iact(m, &m->r_hidx, BT);
  iact(m, &m->r_targets, BT);
  iact(m, &m->r_sel, BT);
  iact(m, &m->r_preds, BT);
  dmx_embedding_buckets_init(&m->bk_word, (int)R1, m->V);
  dmx_embedding_buckets_init(&m->bk_pos, (int)R1, m->P);
  dmx_embedding_buckets_init(&m->bk_rp, (int)BT, (int)(B * N));
  dmx_tensor *bks[3][3] = {{&m->bkd_word.unique_ids, &m->bkd_word.starts, &m->bkd_word.rows},
                           {&m->bkd_pos.unique_ids, &m->bkd_pos.starts, &m->bkd_pos.rows},
                           {&m->bkd_rp.unique_ids, &m->bkd_rp.starts, &m->bkd_rp.rows}};
  size_t caps[3][3] = {
      {(size_t)m->V, (size_t)m->V + 1, R1}, {(size_t)m->P, (size_t)m->P + 1, R1}, {B * N, B * N + 1, BT}};
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) iact(m, bks[i][j], caps[i][j]);

  /* embeddings and mux */
  act(m, &m->e1_pre, R1 * d);
  act(m, &m->e1_mean, R1);
  act(m, &m->e1_rstd, R1);
  act(m, &m->e1, R1 * d);
  dact(m, &m->da.e1_pre, R1 * d);
  dact(m, &m->da.e1, R1 * d);
  if (!m->baseline) {
    act(m, &m->x, BT * d);
    dact(m, &m->da.x, BT * d);
    if (m->e.mux.muxing == DMX_MUX_RANDOM_ORTHO) {
      act(m, &m->mux_perm, R1 * d);
      act(m, &m->mux_y, R1 * d);
      dact(m, &m->da.mux_perm, R1 * d);
      dact(m, &m->da.mux_y, R1 * d);
    }
    act(m, &m->e2_pre, BT * d);
    act(m, &m->e2_mean, BT);
    act(m, &m->e2_rstd, BT);
    act(m, &m->e2, BT * d);
    dact(m, &m->da.e2_pre, BT * d);
    dact(m, &m->da.e2, BT * d);
  }
  /* encoder */
  for (int l = 0; l < m->nl; l++) {
    layer_acts *a = &m->la[l];
    act(m, &a->qkv, BT * 3 * d);
    act(m, &a->att.q, dmx_attention_qkv_floats(m->B, m->T, m->d));
    act(m, &a->att.k, dmx_attention_qkv_floats(m->B, m->T, m->d));
    act(m, &a->att.v, dmx_attention_qkv_floats(m->B, m->T, m->d));
    act(m, &a->att.att, dmx_attention_att_floats(m->B, m->T, m->H));
    act(m, &a->att.lse, dmx_attention_lse_floats(m->B, m->T, m->H));
    act(m, &a->attn_out, BT * d);
    act(m, &a->ao, BT * d);
    act(m, &a->h1_pre, BT * d);
    act(m, &a->h1_mean, BT);
    act(m, &a->h1_rstd, BT);
    act(m, &a->h1, BT * d);
    act(m, &a->f_pre, BT * I);
    act(m, &a->f, BT * I);
    act(m, &a->f2, BT * d);
    act(m, &a->z_pre, BT * d);
    act(m, &a->z_mean, BT);
    act(m, &a->z_rstd, BT);
    act(m, &a->z, BT * d);
  }
  act(m, &m->att_drop, dmx_attention_att_floats(m->B, m->T, m->H));
  act(m, &m->att_y, dmx_attention_qkv_floats(m->B, m->T, m->d));
  for (int l = 0; l < m->nl; l++) {
    m->la[l].att.att_drop = m->att_drop; /* filled after commit */
    m->la[l].att.y = m->att_y;
  }
  dact(m, &m->da.z_a, BT * d);
  dact(m, &m->da.z_b, BT * d);
  dact(m, &m->da.qkv, BT * 3 * d);
  dact(m, &m->da.attn_out, BT * d);
  dact(m, &m->da.ao, BT * d);
  dact(m, &m->da.h1_pre, BT * d);
  dact(m, &m->da.h1, BT * d);
  dact(m, &m->da.f_pre, BT * I);
  dact(m, &m->da.f, BT * I);
  dact(m, &m->da.f2, BT * d);
  dact(m, &m->da.z_pre, BT * d);
  dact(m, &m->da.att.dq, dmx_attention_qkv_floats(m->B, m->T, m->d));
  dact(m, &m->da.att.dk, dmx_attention_qkv_floats(m->B, m->T, m->d));
  dact(m, &m->da.att.dv, dmx_attention_qkv_floats(m->B, m->T, m->d));
  dact(m, &m->da.att.dy, dmx_attention_qkv_floats(m->B, m->T, m->d));
  dact(m, &m->da.att.datt, dmx_attention_att_floats(m->B, m->T, m->H));
  dact(m, &m->da.att.dsum, dmx_attention_row_floats(m->B, m->T, m->H));

  /* task head: rows is the number of head rows (B*N sentence, B*N*T token; baseline B or B*T) */
  size_t hrows = m->token ? R1 : B * N;
  size_t hin = m->token ? BT : B; /* rows of the shared input side */
  act(m, &m->hp, B * N * d);
  act(m, &m->hc, hin * d);
  size_t hq_rows = hin > B * N ? hin : B * N; /* hP: the prefix side P (B*N, d); its gradient also serves hin rows */
  act(m, &m->hP, hq_rows * d);
  act(m, &m->ha, hrows * d);
  act(m, &m->hg, hrows * d);
  act(m, &m->hmean, hrows);
  act(m, &m->hrstd, hrows);
  act(m, &m->hu, hrows * d);
  act(m, &m->ht_pre, hrows * d);
  act(m, &m->ht, hrows * d);
  act(m, &m->hmean2, hrows);
  act(m, &m->hrstd2, hrows);
  act(m, &m->hu2, hrows * d);
  act(m, &m->hperm, hrows * d);
  act(m, &m->logits, hrows * C);
  act(m, &m->task_losses, hrows);
  act(m, &m->task_sum, 1);
  dact(m, &m->da.hp, B * N * d);
  dact(m, &m->da.hc, hin * d);
  dact(m, &m->da.hP, hq_rows * d);
  dact(m, &m->da.ha, hrows * d);
  dact(m, &m->da.hg, hrows * d);
  dact(m, &m->da.hu, hrows * d);
  dact(m, &m->da.ht_pre, hrows * d);
  dact(m, &m->da.ht, hrows * d);
  dact(m, &m->da.hu2, hrows * d);
  dact(m, &m->da.hperm, hrows * d);
  dact(m, &m->da.logits, hrows * C);

  /* retrieval head: up to one row per muxed position */
  if (!m->baseline) {
    size_t S = BT, blk = S < RETRIEVAL_BLOCK_ROWS ? S : RETRIEVAL_BLOCK_ROWS;
    act(m, &m->rs_h, S * d);
    act(m, &m->rq, S * d);
    act(m, &m->rp, B * N * d);
    size_t rrows = m->index_demux ? S : N * S; /* mlp computes every instance, then selects */
    act(m, &m->ra, rrows * d);
    act(m, &m->rg, rrows * d);
    act(m, &m->rmean, rrows);
    act(m, &m->rrstd, rrows);
    act(m, &m->rsel_all, rrows * d);
    act(m, &m->ru, S * d);
    act(m, &m->rpre, S * d);
    act(m, &m->rpre_g, S * d);
    act(m, &m->rmean2, S);
    act(m, &m->rrstd2, S);
    act(m, &m->ru2, S * d);
    act(m, &m->rlogits, blk * m->V);
    act(m, &m->rdlogits, blk * m->V);
    act(m, &m->r_losses, S);
    act(m, &m->r_sum, 1);
    dact(m, &m->da.rs_h, S * d);
    dact(m, &m->da.rq, S * d);
    dact(m, &m->da.rp, B * N * d);
    dact(m, &m->da.rhp, B * N * d);
    dact(m, &m->da.ra, rrows * d);
    dact(m, &m->da.rg, rrows * d);
    dact(m, &m->da.rsel_all, rrows * d);
    dact(m, &m->da.ru, S * d);
    dact(m, &m->da.rpre, S * d);
    dact(m, &m->da.rpre_g, S * d);
    dact(m, &m->da.ru2, S * d);
  }
  act(m, &m->norm, 1);
  act(m, &m->norm_partial, dmx_global_norm_partial_floats());
}
