/* The model's state, shared by layers/model.c (registry, embeddings, mux, encoder, step,
 * optimizer) and layers/heads.c (task and retrieval heads). Not for other modules. */
#ifndef DMX_LAYERS_MODEL_STATE_H
#define DMX_LAYERS_MODEL_STATE_H

#include "host/runtime/runtime.h"
#include "layers/attention.h"
#include "layers/embedding.h"
#include "host/config/config.h"
#include "layers/model_types.h"

#define MAX_LAYERS 48
#define MAX_INSTANCES 64
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

typedef struct {
  dmx_tensor qkv_w, qkv_b, ao_w, ao_b, ln1_g, ln1_b, fc_w, fc_b, proj_w, proj_b, ln2_g, ln2_b;
} layer_params;

typedef struct {
  dmx_tensor qkv, attn_out, ao, h1_pre, h1_mean, h1_rstd, h1, f_pre, f, f2, z_pre, z_mean, z_rstd, z;
  attention_acts att;
} layer_acts;

/* A demux MLP (mlp variant): N dense layers d->d and N layer norms, instance-major. */
typedef struct {
  dmx_tensor w, b, ln_g, ln_b; /* (N, d, d), (N, d), (N, d), (N, d) */
} instance_mlp;

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

  /* parameters and their gradient mirrors (same layout) */
  struct {
    dmx_tensor word, pos, type, eln_g, eln_b, inst;
    layer_params L[MAX_LAYERS];
    /* task head */
    dmx_tensor dense_w, dense_b, hln_g, hln_b, pre_w, pre_b, pre_ln_g, pre_ln_b, out_w, out_b;
    instance_mlp mlp;
    /* retrieval head */
    dmx_tensor r_dense_w, r_dense_b, r_ln_g, r_ln_b, r_pre_w, r_pre_b, r_pre_ln_g, r_pre_ln_b, r_dec_w, r_dec_b;
    instance_mlp r_mlp;
  } p, g;

  /* inputs (int32 tensors) */
  dmx_tensor ids, pos_ids, labels, mask, head_p_idx, head_c_idx, r_pidx, r_hidx, r_targets, r_sel, preds, r_preds;
  embedding_buckets bk_word, bk_pos, bk_rp;
  embedding_buckets_dev bkd_word, bkd_pos, bkd_rp;
  dmx_stager stager; /* per-step inputs go through here: no host array is read after it returns */

  /* activations */
  dmx_tensor e1_pre, e1_mean, e1_rstd, e1, x, mux_perm, mux_y, e2_pre, e2_mean, e2_rstd, e2;
  layer_acts la[MAX_LAYERS];
  dmx_tensor att_drop, att_y; /* shared scratch */
  /* task head activations */
  dmx_tensor hp, hc, hq, ha, hg, hmean, hrstd, hu, ht_pre, ht, hmean2, hrstd2, hu2, logits, task_losses, task_sum;
  dmx_tensor hperm; /* mlp: (N, rows, d) instance-major scratch */
  /* retrieval activations */
  dmx_tensor rs_h, rq, rp, ra, rg, rmean, rrstd, ru, rpre, rpre_g, rmean2, rrstd2, ru2, rlogits, rdlogits, r_losses,
      r_sum, rsel_all;
  dmx_tensor norm, norm_partial;

  /* activation gradients */
  struct {
    dmx_tensor e1_pre, e1, x, mux_perm, mux_y, e2_pre, e2, z_a, z_b;
    dmx_tensor qkv, attn_out, ao, h1_pre, h1, f_pre, f, f2, z_pre;
    attention_grad_scratch att;
    dmx_tensor hp, hc, hq, ha, hg, hu, ht_pre, ht, hu2, logits, hperm;
    dmx_tensor rs_h, rq, rp, rhp, ra, rg, ru, rpre, rpre_g, ru2, rsel_all;
  } da;

  /* host mirrors of the step's index inputs */
  int32_t *h_pidx, *h_hidx, *h_targets, *h_sel, *h_mask, *h_head_p, *h_head_c;
  int S;          /* retrieval rows scored this step */
  int task_rows;  /* rows the task loss sees */
  int task_count; /* rows (or tokens) scored by the task loss this step */
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
