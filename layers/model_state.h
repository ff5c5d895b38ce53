/* The model's state, shared by layers/model.c (registry, embeddings, mux, encoder, step,
 * optimizer) and layers/heads.c (task and retrieval heads). Not for other modules. */
#ifndef DMX_LAYERS_MODEL_STATE_H
#define DMX_LAYERS_MODEL_STATE_H

#include "host/runtime/runtime.h"
#include "layers/attention.h"
#include "layers/embedding.h"
#include "host/config/config.h"
#include "layers/model_types.h"

#define MAX_INSTANCES 64         /* a sanity bound on N (the paper goes to 40); nothing is sized by it */
#define RETRIEVAL_BLOCK_ROWS 512 /* rows of vocabulary logits held at once */

/* Dropout streams: one per dropout site, so masks never repeat within a step. */
enum {
  DMX_STREAM_EMB1 = 1,
  DMX_STREAM_EMB2,
  DMX_STREAM_HEAD_IN,
  DMX_STREAM_HEAD_MID,
  DMX_STREAM_RETR_IN,
  DMX_STREAM_LAYER0 = 16
};

/* Shapes below: B groups of N instances, T positions (prefix included), d hidden, H heads, I the
 * FFN width, V the vocabulary, P the position table, C classes; R1 = B*N*T rows of embedding pass
 * 1, BT = B*T encoder rows. Weights are (out, in) as in PyTorch. Every parameter tensor has a
 * gradient mirror of the same shape in the `g` copy of its block. */

/* One encoder layer (RobertaLayer). */
typedef struct {
  dmx_tensor qkv_w;          /* (3d, d): query, key, value stacked, one GEMM */
  dmx_tensor qkv_b;          /* (3d) */
  dmx_tensor ao_w, ao_b;     /* (d, d), (d): attention output dense */
  dmx_tensor ln1_g, ln1_b;   /* (d): attention output LayerNorm */
  dmx_tensor fc_w, fc_b;     /* (I, d), (I): intermediate dense */
  dmx_tensor proj_w, proj_b; /* (d, I), (d): output dense */
  dmx_tensor ln2_g, ln2_b;   /* (d): output LayerNorm */
} layer_params;

/* One encoder layer's activations (B*T rows). */
typedef struct {
  dmx_tensor qkv;                          /* (BT, 3d) */
  dmx_tensor attn_out;                     /* (BT, d) attention output before its dense */
  dmx_tensor ao;                           /* (BT, d) after the dense (and dropout) */
  dmx_tensor h1_pre, h1_mean, h1_rstd, h1; /* (BT, d), (BT), (BT), (BT, d): residual + LayerNorm 1 */
  dmx_tensor f_pre, f;                     /* (BT, I): intermediate before and after GELU */
  dmx_tensor f2;                           /* (BT, d) output dense (and dropout) */
  dmx_tensor z_pre, z_mean, z_rstd, z; /* (BT, d), (BT), (BT), (BT, d): residual + LayerNorm 2 = the layer's output */
  attention_acts att;                  /* q, k, v, att of this layer; att_drop and y alias the model's shared scratch */
} layer_acts;

/* A demux MLP (mlp variant): N dense layers d->d and N layer norms, instance-major. */
typedef struct {
  dmx_tensor w, b, ln_g, ln_b; /* (N, d, d), (N, d), (N, d), (N, d) */
} instance_mlp;

/* The embedding block (RobertaEmbeddings), used by both embedding passes. */
typedef struct {
  dmx_tensor word;       /* (V, d); row pad_token_id stays zero */
  dmx_tensor pos;        /* (P, d); row pad_token_id stays zero */
  dmx_tensor type;       /* (1, d): token type 0 */
  dmx_tensor ln_g, ln_b; /* (d) */
} embedding_params;

/* The multiplexer: the instance vectors (frozen unless learn_muxing: then their gradient is in `g`). */
typedef struct {
  dmx_tensor inst; /* (N, d) Hadamard variants, (N, d, d) random_ortho */
} mux_params;

/* The task head: classifier (baseline), index demux (dense on [p_i; h], LayerNorm, dense, out_proj
 * or decoder) or mlp demux (per-instance MLP, dense, LayerNorm, out_proj). Unused tensors stay empty. */
typedef struct {
  dmx_tensor dense_w, dense_b;   /* index: (d, 2d), (d) */
  dmx_tensor hln_g, hln_b;       /* index: (d) */
  dmx_tensor pre_w, pre_b;       /* (d, d), (d): dense before out_proj */
  dmx_tensor pre_ln_g, pre_ln_b; /* mlp: (d) LayerNorm before out_proj */
  dmx_tensor out_w, out_b;       /* (C, d), (C) */
  instance_mlp mlp;              /* mlp */
} task_head_params;

/* The retrieval head (muxed models): demux as the task head's, then a decoder over the vocabulary. */
typedef struct {
  dmx_tensor dense_w, dense_b;   /* index: (d, 2d), (d) */
  dmx_tensor ln_g, ln_b;         /* index: (d) */
  dmx_tensor pre_w, pre_b;       /* mlp: (d, d), (d) */
  dmx_tensor pre_ln_g, pre_ln_b; /* mlp: (d) */
  dmx_tensor dec_w, dec_b;       /* (V, d), (V) */
  instance_mlp mlp;              /* mlp */
} retrieval_head_params;

/* Every parameter, by block (llm.c's ParameterTensors); the same struct holds the gradients. */
typedef struct {
  embedding_params emb;
  mux_params mux;
  layer_params *layers; /* nl of them */
  task_head_params task;
  retrieval_head_params retr;
} model_params;

struct dmx_model {
  dmx_runtime *rt;
  dmx_experiment e;
  int B, T, N, d, H, I, V, P, C, nl;
  bool token, index_demux, baseline, second_pass, use_mask;
  int prefix; /* N+1 prefix positions for index demux, else 0 */
  int R1;     /* rows of embedding pass 1: B*N*T */
  int BT;     /* rows of the encoder: B*T */
  float task_coeff, retr_coeff, p_hidden, p_attn, eps;
  bool has_task, has_retrieval;

  dmx_arena params, grads, adam_m, adam_v, decay, acts, dacts, ints;
  dmx_tensor mirrors[DMX_MAX_PARAMS][3];
  int n_mirrors;
  dmx_tensor decay_mask; /* (trainable) 1 where weight decay applies; buf NULL when wd == 0 */
  dmx_param plist[DMX_MAX_PARAMS];
  int np;
  size_t trainable_floats;
  /* [idle_begin, idle_end) of the trainable arena: the retrieval head when the run never uses it
   * (retrieval_loss_coeff 0). Its gradient stays zero, so AdamW would leave it unchanged anyway
   * (fresh moments) or only decay stale moments into it; skipping it saves a pass over V x d floats. */
  size_t idle_begin, idle_end;
  bool grads_zeroed_once; /* the idle range was zeroed by a whole-arena fill */

  model_params p, g; /* parameters and their gradient mirrors (same layout) */

  /* inputs (int32 tensors) */
  dmx_tensor ids, pos_ids;     /* (R1): embedding pass 1 ids (prefix applied) and pad-aware positions */
  dmx_tensor labels, preds;    /* (B*N) sentence or (R1) token: targets (-100 ignored), argmax predictions */
  dmx_tensor mask;             /* (BT) attention mask, 1 = attend (only with attention_mask) */
  dmx_tensor head_p_idx;       /* (B*N) index demux: encoder row of instance i's prefix slot */
  dmx_tensor head_c_idx;       /* (B) encoder row of each group's <s> */
  dmx_tensor r_pidx, r_hidx;   /* (BT) retrieval: prefix row and encoder row of each scored position */
  dmx_tensor r_targets, r_sel; /* (BT) retrieval targets, and the instance row each one selects (mlp) */
  dmx_tensor r_preds;          /* (BT) retrieval argmax predictions */
  embedding_buckets bk_word, bk_pos, bk_rp;        /* host side of the sorted-gradient buckets */
  embedding_buckets_dev bkd_word, bkd_pos, bkd_rp; /* their device tensors (in `ints`) */
  dmx_stager stager; /* per-step inputs go through here: no host array is read after it returns */

  /* activations, by block (llm.c's ActivationTensors) */
  /* embedding pass 1 + LayerNorm, then the mux, then pass 2 (positions added again) + LayerNorm */
  dmx_tensor e1_pre, e1_mean, e1_rstd, e1; /* (R1, d), (R1), (R1), (R1, d) */
  dmx_tensor x;                            /* (BT, d) muxed */
  dmx_tensor mux_perm, mux_y;              /* (R1, d) random_ortho: instance-major input and its product */
  dmx_tensor e2_pre, e2_mean, e2_rstd, e2; /* (BT, d), (BT), (BT), (BT, d): the encoder input */
  /* encoder */
  layer_acts *la;             /* nl of them */
  dmx_tensor att_drop, att_y; /* (B, H, T, T), (B, H, T, d/H): attention scratch every layer aliases (la[l].att) */
  /* task head; hrows = B*N (sentence) or R1 (token); hin = B or BT (the shared input side) */
  dmx_tensor hp;                    /* (B*N, d) index: each instance's prefix row p_i */
  dmx_tensor hc;                    /* (hin, d) the shared side: <s> rows (sentence) or every row (token) */
  dmx_tensor hP;                    /* (max(hin, B*N), d) index: P = W1p p_i, the prefix side of the first dense */
  dmx_tensor ha, hg;                /* (hrows, d) first dense output, after GELU */
  dmx_tensor hmean, hrstd, hu;      /* (hrows), (hrows), (hrows, d) its LayerNorm */
  dmx_tensor ht_pre, ht;            /* (hrows, d) dense before out_proj, after tanh (or GELU) */
  dmx_tensor hmean2, hrstd2, hu2;   /* (hrows), (hrows), (hrows, d) mlp: LayerNorm before out_proj */
  dmx_tensor hperm;                 /* (hrows, d) mlp: (N, rows, d) instance-major scratch */
  dmx_tensor logits;                /* (hrows, C) */
  dmx_tensor task_losses, task_sum; /* (hrows), (1) */
  /* retrieval head; S = BT scored rows at most, rrows = S (index) or N*S (mlp) */
  dmx_tensor rs_h, rq;             /* (S, d) the scored positions' encoder rows; Q = W1h h */
  dmx_tensor rp;                   /* (B*N, d) P = W1p p_i */
  dmx_tensor ra, rg, rmean, rrstd; /* (rrows, d), (rrows, d), (rrows), (rrows) */
  dmx_tensor rsel_all;             /* (rrows, d) mlp: every instance's output, before selection */
  dmx_tensor ru, rpre, rpre_g;     /* (S, d) */
  dmx_tensor rmean2, rrstd2, ru2;  /* (S), (S), (S, d) */
  dmx_tensor rlogits, rdlogits;    /* (RETRIEVAL_BLOCK_ROWS or S, V): a block of vocabulary logits and their gradient */
  dmx_tensor r_losses, r_sum;      /* (S), (1) */
  dmx_tensor norm, norm_partial;   /* (1) global gradient norm, and its per-work-group partials */

  /* activation gradients: same shapes as the activations of the same name */
  struct {
    dmx_tensor e1_pre, e1, x, mux_perm, mux_y, e2_pre, e2;
    dmx_tensor z_a, z_b; /* (BT, d) the encoder's gradient chain, ping-ponged between layers */
    dmx_tensor qkv, attn_out, ao, h1_pre, h1, f_pre, f, f2, z_pre; /* one layer's, reused layer after layer */
    attention_grad_scratch att;
    dmx_tensor hp, hc, hP, ha, hg, hu, ht_pre, ht, hu2, logits, hperm;
    dmx_tensor rs_h, rq, rp, rhp, ra, rg, ru, rpre, rpre_g, ru2, rsel_all; /* rhp (B*N, d): d p_i */
  } da;

  /* host mirrors of the step's index inputs */
  int32_t *h_pidx, *h_hidx, *h_targets, *h_sel, *h_mask, *h_head_p, *h_head_c;
  int S;          /* retrieval rows scored this step */
  int task_rows;  /* rows the task loss sees */
  int task_count; /* rows (or tokens) scored by the task loss this step */
  int task_norm, retrieval_norm; /* the losses' denominators when not this step's counts (dmx_batch_view) */
  int32_t *h_task_targets;
  uint64_t step;
  uint32_t seed;
  /* DATAMUX_PROFILE=1: wall time per phase, measured by finishing the queue at phase ends */
  bool profile;
  double phase_seconds[16], phase_mark;
  long seen_steps;       /* the first step compiles kernels: it is left out */
  double gemm_in_phases; /* of which inside CLBlast GEMMs */
};

/* ------------------------------------------------------------------ small helpers */

static inline dmx_tensor sub(dmx_tensor t, size_t off, size_t n) {
  t.off += off;
  t.n = n;
  return t;
}

static inline dmx_tensor none(void) { return (dmx_tensor){NULL, 0, 0}; }

/* Dropout streams: distinct per site and step, so masks never repeat. */
static inline uint32_t stream(dmx_model *m, int site) { return (uint32_t)(m->step * 4096u + (uint64_t)site); }

#endif
