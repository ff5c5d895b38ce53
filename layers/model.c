/* The DataMUX model: composes embeddings, muxing, the post-LN encoder, the demultiplexing task
 * heads and the retrieval head (docs/datamux-spec.md §1), forward and backward, and AdamW over the
 * flat parameter arena. One step flows one way:
 *   ids -> embedding pass 1 (B*N, T, d) -> mux (B, T, d) -> embedding pass 2 -> encoder layers
 *   -> task head and retrieval head -> losses -> the same path backward -> AdamW. */
#include "layers/model.h"
#include "host/base/rng.h"
#include "layers/heads.h"
#include "layers/model_layout.h"
#include "layers/model_state.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/runtime/gemm.h"
#include "layers/attention.h"
#include "layers/common_ops.h"
#include "layers/layernorm.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/mux.h"
#include "layers/optim.h"

static const char *phase_names[] = {"upload",         "embed+mux fwd", "encoder fwd",   "task head fwd+bwd",
                                    "retrieval head", "encoder bwd",   "embed+mux bwd", "optimizer"};
enum { PH_UPLOAD, PH_EMBED_FWD, PH_ENC_FWD, PH_TASK, PH_RETR, PH_ENC_BWD, PH_EMBED_BWD, PH_OPT, PH_COUNT };

static void phase_end(dmx_model *m, int ph) {
  if (!m->profile) return;
  dmx_finish(m->rt);
  double now = dmx_now_seconds();
  double gemm = dmx_gemm_take_seconds(m->rt);
  if (m->seen_steps > 1) {
    m->phase_seconds[ph] += now - m->phase_mark;
    m->gemm_in_phases += gemm;
  }
  m->phase_mark = now;
}

void dmx_model_print_profile(const dmx_model *m, FILE *f) {
  if (!m->profile) return;
  double total = 0;
  for (int i = 0; i < PH_COUNT; i++) total += m->phase_seconds[i];
  fprintf(f, "profile of %ld steps after the first (DATAMUX_PROFILE=1, queue finished after each phase):\n",
          m->seen_steps > 1 ? m->seen_steps - 1 : 0);
  for (int i = 0; i < PH_COUNT; i++)
    fprintf(f, "  %-20s %8.3f s  %5.1f%%\n", phase_names[i], m->phase_seconds[i],
            total > 0 ? 100.0 * m->phase_seconds[i] / total : 0.0);
  fprintf(f, "  GEMMs: %.3f s (%.1f%% of the step), our kernels and copies: %.3f s (%.1f%%)\n",
          m->gemm_in_phases, total > 0 ? 100.0 * m->gemm_in_phases / total : 0.0, total - m->gemm_in_phases,
          total > 0 ? 100.0 * (total - m->gemm_in_phases) / total : 0.0);
}

/* ------------------------------------------------------------------ create / free */

dmx_model *dmx_model_create(dmx_runtime *rt, const dmx_experiment *e, int B, int T, int num_labels, bool token_task,
                            dmx_error *err) {
  dmx_model *m = dmx_calloc(1, sizeof *m);
  m->rt = rt;
  m->e = *e;
  m->B = B;
  m->T = T;
  m->baseline = e->setting == DMX_SETTING_BASELINE;
  m->N = m->baseline ? 1 : e->mux.num_instances;
  m->d = e->model.hidden_size;
  m->H = e->model.num_heads;
  m->I = e->model.intermediate_size;
  m->V = e->model.vocab_size;
  m->P = e->model.max_position_embeddings;
  m->C = num_labels;
  m->nl = e->model.num_layers;
  m->token = token_task;
  m->index_demux = !m->baseline && e->mux.demuxing == DMX_DEMUX_INDEX;
  m->second_pass = !m->baseline && e->mux.second_embedding_pass;
  m->use_mask = m->baseline || e->mux.attention_mask;
  m->prefix = m->index_demux ? m->N + 1 : 0;
  m->R1 = B * m->N * T;
  m->BT = B * T;
  m->task_coeff = m->baseline ? 1.0f : e->train.task_loss_coeff;
  m->retr_coeff = m->baseline ? 0.0f : e->train.retrieval_loss_coeff;
  m->p_hidden = e->model.hidden_dropout;
  m->p_attn = e->model.attention_dropout;
  m->eps = e->model.layer_norm_eps;
  m->seed = (uint32_t)e->train.seed;
  const char *prof = getenv("DATAMUX_PROFILE");
  m->profile = prof && *prof && strcmp(prof, "0") != 0;
  dmx_gemm_set_timing(rt, m->profile);
  if (m->N > MAX_INSTANCES) {
    dmx_fail(err, "N = %d: at most %d instances are supported", m->N, MAX_INSTANCES);
    free(m);
    return NULL;
  }
  /* the encoder's blocks, one per layer: allocated once, before any tensor is registered */
  m->p.layers = dmx_calloc((size_t)(m->nl ? m->nl : 1), sizeof *m->p.layers);
  m->g.layers = dmx_calloc((size_t)(m->nl ? m->nl : 1), sizeof *m->g.layers);
  m->la = dmx_calloc((size_t)(m->nl ? m->nl : 1), sizeof *m->la);
  dmx_arena_init(&m->params, rt, "parameters");
  dmx_arena_init(&m->grads, rt, "gradients");
  dmx_arena_init(&m->adam_m, rt, "adam first moments");
  dmx_arena_init(&m->adam_v, rt, "adam second moments");
  dmx_arena_init(&m->decay, rt, "weight decay mask");
  dmx_arena_init(&m->acts, rt, "activations");
  dmx_arena_init(&m->dacts, rt, "activation gradients");
  dmx_arena_init(&m->ints, rt, "batch inputs");
  dmx_model_register_params(m);
  dmx_model_register_activations(m);
  dmx_arena *arenas[] = {&m->params, &m->grads, &m->adam_m, &m->adam_v, &m->decay, &m->acts, &m->dacts, &m->ints};
  for (size_t i = 0; i < sizeof arenas / sizeof *arenas; i++)
    if (dmx_arena_commit(arenas[i], err) != 0) {
      dmx_model_free(m);
      return NULL;
    }
  if (m->grads.n_buffers > 1) {
    dmx_fail(err,
             "the gradients (%.1f MiB) exceed one device allocation (%.1f MiB); the optimizer needs them in "
             "one buffer",
             dmx_arena_bytes(&m->grads) / 1048576.0, rt->info.max_alloc / 1048576.0);
    dmx_model_free(m);
    return NULL;
  }
  m->trainable_floats = m->grads.n_buffers ? m->grads.used[0] : 0;
  if (!m->baseline && m->retr_coeff == 0.0f) {
    m->idle_begin = m->trainable_floats;
    for (int i = 0; i < m->np; i++) {
      const dmx_param *p = &m->plist[i];
      if (!p->trainable || !p->grad_base || strncmp(p->name, "retrieval_head.", 15)) continue;
      dmx_tensor g = dmx_param_grad(p);
      if (g.off < m->idle_begin) m->idle_begin = g.off;
      if (g.off + p->n > m->idle_end) m->idle_end = g.off + p->n;
    }
    if (m->idle_end <= m->idle_begin) m->idle_begin = m->idle_end = 0;
  }
  m->decay_mask = m->decay.n_buffers ? (dmx_tensor){m->decay.bufs[0], 0, m->trainable_floats} : none();
  for (int l = 0; l < m->nl; l++) {
    m->la[l].att.att_drop = m->att_drop;
    m->la[l].att.y = m->att_y;
  }
  size_t hrows = m->token ? (size_t)m->R1 : (size_t)B * m->N;
  m->h_task_targets = dmx_calloc(hrows, sizeof(int32_t));
  /* a step stages: ids, positions, labels, mask, 4 retrieval index arrays, and three bucket sets */
  size_t stage_ints = 2 * (size_t)m->R1 + hrows + 5 * (size_t)m->BT + ((size_t)m->V + 1 + m->R1) +
                      ((size_t)m->P + 1 + m->R1) + ((size_t)B * m->N + 1 + m->BT);
  dmx_stager_init(&m->stager, stage_ints * sizeof(int32_t) + 64 * 16);
  m->h_pidx = dmx_calloc((size_t)m->BT, sizeof(int32_t));
  m->h_hidx = dmx_calloc((size_t)m->BT, sizeof(int32_t));
  m->h_targets = dmx_calloc((size_t)m->BT, sizeof(int32_t));
  m->h_sel = dmx_calloc((size_t)m->BT, sizeof(int32_t));
  m->h_mask = dmx_calloc((size_t)m->BT, sizeof(int32_t));
  m->h_head_p = dmx_calloc((size_t)B * m->N, sizeof(int32_t));
  m->h_head_c = dmx_calloc((size_t)B, sizeof(int32_t));
  /* static gather indices of the index heads: prefix slot i of group b, and the CLS slot */
  for (int b = 0; b < B; b++) {
    for (int i = 0; i < m->N; i++) m->h_head_p[b * m->N + i] = b * T + i;
    m->h_head_c[b] = m->index_demux ? b * T + m->N : b * T;
  }
  dmx_upload(rt, m->head_p_idx, m->h_head_p, (size_t)B * m->N * sizeof(int32_t));
  dmx_upload(rt, m->head_c_idx, m->h_head_c, (size_t)B * sizeof(int32_t));
  return m;
}

void dmx_model_free(dmx_model *m) {
  if (!m) return;
  dmx_finish(m->rt);
  dmx_arena *arenas[] = {&m->params, &m->grads, &m->adam_m, &m->adam_v, &m->decay, &m->acts, &m->dacts, &m->ints};
  for (size_t i = 0; i < sizeof arenas / sizeof *arenas; i++) dmx_arena_release(arenas[i]);
  dmx_stager_free(&m->stager);
  free(m->p.layers);
  free(m->g.layers);
  free(m->la);
  dmx_embedding_buckets_free(&m->bk_word);
  dmx_embedding_buckets_free(&m->bk_pos);
  dmx_embedding_buckets_free(&m->bk_rp);
  free(m->h_task_targets);
  free(m->h_pidx);
  free(m->h_hidx);
  free(m->h_targets);
  free(m->h_sel);
  free(m->h_mask);
  free(m->h_head_p);
  free(m->h_head_c);
  free(m);
}

int dmx_model_num_params(const dmx_model *m) { return m->np; }
const dmx_param *dmx_model_param(const dmx_model *m, int i) { return &m->plist[i]; }
const dmx_param *dmx_model_find_param(const dmx_model *m, const char *name) {
  for (int i = 0; i < m->np; i++)
    if (!strcmp(m->plist[i].name, name) || (m->plist[i].alias[0] && !strcmp(m->plist[i].alias, name)))
      return &m->plist[i];
  return NULL;
}
size_t dmx_model_trainable_floats(const dmx_model *m) { return m->trainable_floats; }
size_t dmx_model_device_bytes(const dmx_model *m) {
  return dmx_arena_bytes(&m->params) + dmx_arena_bytes(&m->grads) + dmx_arena_bytes(&m->adam_m) +
         dmx_arena_bytes(&m->adam_v) + dmx_arena_bytes(&m->acts) + dmx_arena_bytes(&m->dacts) +
         dmx_arena_bytes(&m->ints);
}
dmx_runtime *dmx_model_runtime(const dmx_model *m) { return m->rt; }
const dmx_arena *dmx_model_adam_state(const dmx_model *m, int moment) { return moment ? &m->adam_v : &m->adam_m; }
int dmx_model_B(const dmx_model *m) { return m->B; }
int dmx_model_T(const dmx_model *m) { return m->T; }
int dmx_model_N(const dmx_model *m) { return m->N; }
int dmx_model_num_labels(const dmx_model *m) { return m->C; }

/* ------------------------------------------------------------------ initialisation */

void dmx_model_init_params(dmx_model *m, uint64_t seed) {
  uint64_t s = seed * 0x2545F4914F6CDD1DULL + 1;
  float range = m->e.model.initializer_range;
  for (int i = 0; i < m->np; i++) {
    dmx_param *p = &m->plist[i];
    float *h = dmx_malloc(p->n * sizeof(float));
    switch (p->init) {
      case DMX_INIT_NORMAL:
        for (size_t k = 0; k < p->n; k++) {
          double u1 = dmx_rand_open01(&s), u2 = dmx_rand_open01(&s);
          h[k] = (float)(range * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
        }
        if (p->padding_row >= 0 && p->padding_row < p->shape[0])
          memset(h + (size_t)p->padding_row * p->shape[1], 0, (size_t)p->shape[1] * sizeof(float));
        break;
      case DMX_INIT_ZEROS: memset(h, 0, p->n * sizeof(float)); break;
      case DMX_INIT_ONES:
        for (size_t k = 0; k < p->n; k++) h[k] = 1.0f;
        break;
      case DMX_INIT_INSTANCES:
        dmx_mux_init_instances(h, m->e.mux.muxing, m->N, m->d, m->e.mux.gaussian_hadamard_norm,
                               m->e.mux.binary_hadamard_epsilon, seed);
        break;
    }
    dmx_upload(m->rt, dmx_param_tensor(p), h, p->n * sizeof(float));
    free(h);
  }
  dmx_arena_zero(&m->adam_m);
  dmx_arena_zero(&m->adam_v);
  if (m->decay_mask.buf) {
    /* transformers' no_decay list: any name containing "bias" or "LayerNorm.weight" */
    dmx_fill(m->rt, m->decay_mask, 0.0f);
    for (int i = 0; i < m->np; i++) {
      dmx_param *p = &m->plist[i];
      if (!p->trainable || strstr(p->name, "bias") || strstr(p->name, "LayerNorm.weight")) continue;
      dmx_tensor g = dmx_param_grad(p);
      dmx_fill(m->rt, (dmx_tensor){m->decay_mask.buf, g.off, p->n}, 1.0f);
    }
  }
}

/* ------------------------------------------------------------------ step inputs */

/* The task target of head row r (-100: not scored): token tasks never score the prefix. */
static int32_t task_target(const dmx_model *m, const dmx_batch_view *bt, size_t r) {
  int32_t y = bt->labels ? bt->labels[r] : -100;
  return m->token && (int)(r % (size_t)m->T) < m->prefix ? -100 : y;
}

static bool uses_retrieval(const dmx_model *m, const dmx_batch_view *bt) {
  return !m->baseline && m->retr_coeff > 0 && bt->retrieval_targets != NULL;
}

void dmx_model_count_scored(const dmx_model *m, const dmx_batch_view *bt, bool train, int *task, int *retrieval) {
  size_t hrows = m->token ? (size_t)m->R1 : (size_t)m->B * m->N;
  int t = 0, r = 0;
  for (size_t i = 0; i < hrows; i++) t += task_target(m, bt, i) != -100;
  if (uses_retrieval(m, bt))
    for (int i = 0; i < m->BT; i++) r += bt->retrieval_targets[i] != -100;
  *task = t;
  *retrieval = r;
}

static void upload_inputs(dmx_model *m, const dmx_batch_view *bt, bool train) {
  dmx_runtime *rt = m->rt;
  dmx_stager *st = &m->stager;
  int B = m->B, N = m->N, T = m->T;
  dmx_stager_begin(rt, st);
  dmx_stager_upload(rt, st, m->ids, bt->ids, (size_t)m->R1 * 4);
  dmx_stager_upload(rt, st, m->pos_ids, bt->positions, (size_t)m->R1 * 4);
  /* buckets for the embedding gradients: padding_idx rows get none, as in PyTorch */
  if (train) {
    dmx_embedding_buckets_build(&m->bk_word, bt->ids, m->R1, m->e.model.pad_token_id);
    dmx_embedding_buckets_build(&m->bk_pos, bt->positions, m->R1, m->e.model.pad_token_id);
    dmx_embedding_buckets_upload(rt, st, &m->bkd_word, &m->bk_word);
    dmx_embedding_buckets_upload(rt, st, &m->bkd_pos, &m->bk_pos);
  }

  /* task targets: token tasks score positions aligned to T; rows < prefix are never scored */
  size_t hrows = m->token ? (size_t)m->R1 : (size_t)B * N;
  m->task_rows = (int)hrows;
  m->task_count = 0;
  for (size_t r = 0; r < hrows; r++) {
    int32_t y = task_target(m, bt, r);
    m->h_task_targets[r] = y;
    if (y != -100) m->task_count++;
  }
  dmx_stager_upload(rt, st, m->labels, m->h_task_targets, hrows * 4);

  if (m->use_mask) {
    /* a muxed position is padding when every instance has a pad there */
    for (int b = 0; b < B; b++)
      for (int j = 0; j < T; j++) {
        int keep = 0;
        for (int i = 0; i < N; i++) keep |= bt->ids[((size_t)b * N + i) * T + j] != m->e.model.pad_token_id;
        m->h_mask[b * T + j] = keep;
      }
    dmx_stager_upload(rt, st, m->mask, m->h_mask, (size_t)m->BT * 4);
  }

  m->S = 0;
  if (!m->baseline && m->has_retrieval && bt->retrieval_targets) {
    for (int b = 0; b < B; b++)
      for (int j = 0; j < T; j++) {
        int32_t y = bt->retrieval_targets[b * T + j];
        if (y == -100) continue;
        int k = bt->retrieval_instance[b * T + j];
        if (k < 0 || k >= N) dmx_die("retrieval instance %d out of range [0, %d) at group %d position %d", k, N, b, j);
        m->h_pidx[m->S] = b * N + k;
        m->h_hidx[m->S] = b * T + j;
        m->h_targets[m->S] = y;
        m->S++;
      }
    for (int s = 0; s < m->S; s++) m->h_sel[s] = (m->h_pidx[s] % N) * m->S + s; /* mlp: instance k's row s */
    dmx_stager_upload(rt, st, m->r_pidx, m->h_pidx, (size_t)m->S * 4);
    dmx_stager_upload(rt, st, m->r_hidx, m->h_hidx, (size_t)m->S * 4);
    dmx_stager_upload(rt, st, m->r_targets, m->h_targets, (size_t)m->S * 4);
    dmx_stager_upload(rt, st, m->r_sel, m->h_sel, (size_t)m->S * 4);
    if (train) {
      dmx_embedding_buckets_build(&m->bk_rp, m->h_pidx, m->S, -1);
      dmx_embedding_buckets_upload(rt, st, &m->bkd_rp, &m->bk_rp);
    }
  }
  dmx_stager_end(rt, st);
}

/* ------------------------------------------------------------------ embeddings and mux */

static void embed_forward(dmx_model *m, bool train) {
  dmx_runtime *rt = m->rt;
  int d = m->d;
  float ph = train ? m->p_hidden : 0.0f;
  /* inference on a CPU: no backward needs e1, so pass 1 and the mux run fused without writing the
   * (B*N, T, d) per-instance embeddings (at N=40 those passes were most of a tiny model's batch) */
  bool fused =
      !train && !m->baseline && m->e.mux.muxing != DMX_MUX_RANDOM_ORTHO && dmx_embed_ln_mux_hadamard_fits(rt, d);
  if (fused) {
    dmx_scope(rt, "mux");
    dmx_embed_ln_mux_hadamard_forward(rt, m->x, m->ids, m->pos_ids, m->p.emb.word, m->p.emb.pos, m->p.emb.type,
                                      m->p.emb.ln_g, m->p.emb.ln_b, m->p.mux.inst, m->B, m->N, m->T, d, m->eps);
  } else {
    dmx_embedding_forward(rt, m->e1_pre, m->ids, m->pos_ids, m->p.emb.word, m->p.emb.pos, m->p.emb.type, m->R1, d);
    dmx_layernorm_forward(rt, m->e1, m->e1_mean, m->e1_rstd, m->e1_pre, m->p.emb.ln_g, m->p.emb.ln_b, m->R1, d, m->eps);
    dmx_dropout_forward(rt, m->e1, m->e1, m->R1 * d, ph, m->seed, stream(m, DMX_STREAM_EMB1));
  }
  if (m->baseline) return; /* e1 is the encoder input */
  dmx_scope(rt, "mux");
  if (!fused && m->e.mux.muxing == DMX_MUX_RANDOM_ORTHO)
    dmx_mux_ortho_forward(rt, m->x, m->mux_perm, m->mux_y, m->e1, m->p.mux.inst, m->B, m->N, m->T, d);
  else if (!fused)
    dmx_mux_hadamard_forward(rt, m->x, m->e1, m->p.mux.inst, m->B, m->N, m->T, d);
  /* The original runs the embedding module again on the muxed vectors (spec §1.7): type and
   * sequential positions are added a second time before its LayerNorm. The clean variant
   * (second_embedding_pass: false) only normalises: positions were added once, per instance. */
  if (m->second_pass)
    dmx_embedding_pass2_forward(rt, m->e2_pre, m->x, m->p.emb.pos, m->p.emb.type, m->B, m->T, d,
                                m->e.model.pad_token_id + 1);
  else
    dmx_copy_forward(rt, m->e2_pre, m->x, m->BT * d);
  dmx_layernorm_forward(rt, m->e2, m->e2_mean, m->e2_rstd, m->e2_pre, m->p.emb.ln_g, m->p.emb.ln_b, m->BT, d, m->eps);
  dmx_dropout_forward(rt, m->e2, m->e2, m->BT * d, ph, m->seed, stream(m, DMX_STREAM_EMB2));
}

static dmx_tensor encoder_input(dmx_model *m) { return m->baseline ? m->e1 : m->e2; }

static void embed_backward(dmx_model *m, dmx_tensor dz0, bool train) {
  dmx_runtime *rt = m->rt;
  int d = m->d;
  float ph = train ? m->p_hidden : 0.0f;
  dmx_tensor de1 = m->da.e1;
  if (!m->baseline) {
    dmx_dropout_backward(rt, m->da.e2, dz0, m->BT * d, ph, m->seed, stream(m, DMX_STREAM_EMB2));
    dmx_layernorm_backward(rt, m->da.e2_pre, m->g.emb.ln_g, m->g.emb.ln_b, m->da.e2, m->e2_pre, m->e2_mean, m->e2_rstd,
                           m->p.emb.ln_g, m->BT, d);
    if (m->second_pass)
      dmx_embedding_pass2_backward(rt, m->g.emb.pos, m->g.emb.type, m->da.e2_pre, m->B, m->T, d,
                                   m->e.model.pad_token_id + 1);
    dmx_axpy(rt, m->da.x, m->da.e2_pre, 1.0f, m->BT * d);
    dmx_tensor dinst = m->e.mux.learn_muxing ? m->g.mux.inst : none();
    dmx_scope(rt, "mux");
    if (m->e.mux.muxing == DMX_MUX_RANDOM_ORTHO)
      dmx_mux_ortho_backward(rt, de1, dinst, m->da.mux_perm, m->da.mux_y, m->da.x, m->mux_perm, m->p.mux.inst, m->B,
                             m->N, m->T, d);
    else
      dmx_mux_hadamard_backward(rt, de1, dinst, m->da.x, m->e1, m->p.mux.inst, m->B, m->N, m->T, d);
  } else {
    dmx_axpy(rt, de1, dz0, 1.0f, m->R1 * d);
  }
  /* dropout was applied in place on e1: its backward maps d(dropped) to d(LN output) */
  dmx_dropout_backward(rt, m->da.e1_pre, de1, m->R1 * d, ph, m->seed, stream(m, DMX_STREAM_EMB1));
  /* da.e1_pre now holds d(LN output); run the LN backward into de1 (reused, zeroed first) */
  dmx_fill(rt, de1, 0.0f);
  dmx_layernorm_backward(rt, de1, m->g.emb.ln_g, m->g.emb.ln_b, m->da.e1_pre, m->e1_pre, m->e1_mean, m->e1_rstd,
                         m->p.emb.ln_g, m->R1, d);
  dmx_embedding_table_backward(rt, m->g.emb.word, de1, &m->bkd_word, m->bk_word.n_unique, d);
  dmx_embedding_table_backward(rt, m->g.emb.pos, de1, &m->bkd_pos, m->bk_pos.n_unique, d);
  dmx_embedding_type_backward(rt, m->g.emb.type, de1, m->R1, d);
}

/* ------------------------------------------------------------------ encoder */

static void encoder_forward(dmx_model *m, bool train) {
  dmx_runtime *rt = m->rt;
  int d = m->d, BT = m->BT, I = m->I;
  float ph = train ? m->p_hidden : 0.0f, pa = train ? m->p_attn : 0.0f;
  dmx_tensor z = encoder_input(m);
  dmx_tensor mask = m->use_mask ? m->mask : none();
  for (int l = 0; l < m->nl; l++) {
    layer_params *P = &m->p.layers[l];
    layer_acts *a = &m->la[l];
    uint32_t s0 = stream(m, DMX_STREAM_LAYER0 + 4 * l);
    dmx_scope(rt, "qkv");
    dmx_linear_forward(rt, a->qkv, z, P->qkv_w, P->qkv_b, BT, d, 3 * d, 0.0f);
    dmx_scope(rt, "attention");
    dmx_attention_forward(rt, a->attn_out, &a->att, a->qkv, mask, m->B, m->T, d, m->H, pa, m->seed, s0);
    dmx_scope(rt, "attn_out");
    dmx_linear_forward(rt, a->ao, a->attn_out, P->ao_w, P->ao_b, BT, d, d, 0.0f);
    dmx_dropout_forward(rt, a->ao, a->ao, BT * d, ph, m->seed, s0 + 1);
    dmx_add_forward(rt, a->h1_pre, a->ao, z, BT * d);
    dmx_layernorm_forward(rt, a->h1, a->h1_mean, a->h1_rstd, a->h1_pre, P->ln1_g, P->ln1_b, BT, d, m->eps);
    dmx_scope(rt, "ffn_up");
    dmx_linear_forward(rt, a->f_pre, a->h1, P->fc_w, P->fc_b, BT, d, I, 0.0f);
    dmx_gelu_forward(rt, a->f, a->f_pre, BT * I);
    dmx_scope(rt, "ffn_down");
    dmx_linear_forward(rt, a->f2, a->f, P->proj_w, P->proj_b, BT, I, d, 0.0f);
    dmx_dropout_forward(rt, a->f2, a->f2, BT * d, ph, m->seed, s0 + 2);
    dmx_add_forward(rt, a->z_pre, a->f2, a->h1, BT * d);
    dmx_layernorm_forward(rt, a->z, a->z_mean, a->z_rstd, a->z_pre, P->ln2_g, P->ln2_b, BT, d, m->eps);
    z = a->z;
  }
}

static dmx_tensor encoder_output(dmx_model *m) { return m->nl ? m->la[m->nl - 1].z : encoder_input(m); }

/* dz holds d(encoder output) on entry; returns the tensor holding d(encoder input). */
static dmx_tensor encoder_backward(dmx_model *m, dmx_tensor dz, bool train) {
  dmx_runtime *rt = m->rt;
  int d = m->d, BT = m->BT, I = m->I;
  float ph = train ? m->p_hidden : 0.0f, pa = train ? m->p_attn : 0.0f;
  dmx_tensor mask = m->use_mask ? m->mask : none();
  dmx_tensor dz_in = dz.off == m->da.z_a.off && dz.buf == m->da.z_a.buf ? m->da.z_b : m->da.z_a;
  for (int l = m->nl - 1; l >= 0; l--) {
    layer_params *P = &m->p.layers[l], *G = &m->g.layers[l];
    layer_acts *a = &m->la[l];
    dmx_tensor z_in = l ? m->la[l - 1].z : encoder_input(m);
    uint32_t s0 = stream(m, DMX_STREAM_LAYER0 + 4 * l);
    /* the per-layer gradient scratch is shared by all layers: clear it */
    dmx_tensor scratch[] = {m->da.z_pre,  m->da.f2, m->da.f,        m->da.f_pre, m->da.h1,
                            m->da.h1_pre, m->da.ao, m->da.attn_out, m->da.qkv,   dz_in};
    for (size_t i = 0; i < sizeof scratch / sizeof *scratch; i++) dmx_fill(rt, scratch[i], 0.0f);
    dmx_layernorm_backward(rt, m->da.z_pre, G->ln2_g, G->ln2_b, dz, a->z_pre, a->z_mean, a->z_rstd, P->ln2_g, BT, d);
    dmx_dropout_backward(rt, m->da.f2, m->da.z_pre, BT * d, ph, m->seed, s0 + 2);
    dmx_axpy(rt, m->da.h1, m->da.z_pre, 1.0f, BT * d);
    dmx_scope(rt, "ffn_down");
    dmx_linear_backward(rt, m->da.f, G->proj_w, G->proj_b, m->da.f2, a->f, P->proj_w, BT, I, d);
    dmx_gelu_backward(rt, m->da.f_pre, a->f_pre, m->da.f, BT * I);
    dmx_scope(rt, "ffn_up");
    dmx_linear_backward(rt, m->da.h1, G->fc_w, G->fc_b, m->da.f_pre, a->h1, P->fc_w, BT, d, I);
    dmx_layernorm_backward(rt, m->da.h1_pre, G->ln1_g, G->ln1_b, m->da.h1, a->h1_pre, a->h1_mean, a->h1_rstd, P->ln1_g,
                           BT, d);
    dmx_dropout_backward(rt, m->da.ao, m->da.h1_pre, BT * d, ph, m->seed, s0 + 1);
    dmx_axpy(rt, dz_in, m->da.h1_pre, 1.0f, BT * d);
    dmx_scope(rt, "attn_out");
    dmx_linear_backward(rt, m->da.attn_out, G->ao_w, G->ao_b, m->da.ao, a->attn_out, P->ao_w, BT, d, d);
    dmx_scope(rt, "attention");
    dmx_attention_backward(rt, m->da.qkv, &m->da.att, m->da.attn_out, &a->att, mask, m->B, m->T, d, m->H, pa, m->seed,
                           s0);
    dmx_scope(rt, "qkv");
    dmx_linear_backward(rt, dz_in, G->qkv_w, G->qkv_b, m->da.qkv, z_in, P->qkv_w, BT, d, 3 * d);
    dmx_tensor t = dz;
    dz = dz_in;
    dz_in = t;
  }
  return dz;
}

/* ------------------------------------------------------------------ step */

/* Zeroes the gradient arena ahead of a step, skipping the idle retrieval head after the first
 * whole-arena fill (nothing writes it, so it stays zero): at d = 128 that head is half the arena. */
static void zero_grads(dmx_model *m) {
  if (m->idle_end <= m->idle_begin || m->grads.n_buffers != 1 || !m->grads_zeroed_once) {
    dmx_arena_zero(&m->grads);
    m->grads_zeroed_once = true;
    return;
  }
  cl_mem b = m->grads.bufs[0];
  dmx_fill(m->rt, (dmx_tensor){b, 0, m->idle_begin}, 0.0f);
  dmx_fill(m->rt, (dmx_tensor){b, m->idle_end, m->grads.used[0] - m->idle_end}, 0.0f);
}

void dmx_model_step(dmx_model *m, const dmx_batch_view *bt, bool train, uint64_t step) {
  dmx_runtime *rt = m->rt;
  m->step = step;
  m->has_task = m->task_coeff > 0 || !train;
  m->has_retrieval = uses_retrieval(m, bt);
  m->task_norm = bt->task_norm;
  m->retrieval_norm = bt->retrieval_norm;
  if (m->profile) {
    dmx_finish(rt);
    m->phase_mark = dmx_now_seconds();
    dmx_gemm_take_seconds(rt);
    if (train) m->seen_steps++;
  }
  upload_inputs(m, bt, train);
  if (train) {
    zero_grads(m);
    dmx_arena_zero(&m->dacts);
  }
  phase_end(m, PH_UPLOAD);
  embed_forward(m, train);
  phase_end(m, PH_EMBED_FWD);
  encoder_forward(m, train);
  phase_end(m, PH_ENC_FWD);
  /* dH: gradient of the encoder output; z_a starts the encoder backward chain */
  dmx_tensor dH = m->da.z_a;
  if (m->has_task) {
    dmx_scope(rt, "heads");
    dmx_task_head_forward(m, encoder_output(m), train);
    int norm = m->task_norm > 0 ? m->task_norm : m->task_count;
    float scale = train ? m->task_coeff / (float)(norm > 0 ? norm : 1) : 0.0f;
    dmx_softmax_xent_forward_backward(rt, m->task_losses, m->preds, train ? m->da.logits : none(), m->logits, m->labels,
                                      m->task_rows, m->C, scale);
    dmx_reduce_sum(rt, m->task_sum, m->task_losses, m->task_rows);
    if (train) dmx_task_head_backward(m, encoder_output(m), dH, train);
  }
  phase_end(m, PH_TASK);
  dmx_scope(rt, "heads");
  if (m->has_retrieval && m->S > 0) dmx_retrieval_head(m, encoder_output(m), dH, train);
  phase_end(m, PH_RETR);
  if (!train) return;
  dmx_tensor dz0 = encoder_backward(m, dH, train);
  phase_end(m, PH_ENC_BWD);
  embed_backward(m, dz0, train);
  phase_end(m, PH_EMBED_BWD);
}

void dmx_model_update(dmx_model *m, float lr, int t) {
  dmx_train_config *tc = &m->e.train;
  dmx_tensor g = {m->grads.bufs[0], 0, m->trainable_floats};
  dmx_tensor p = {m->params.bufs[0], 0, m->trainable_floats};
  dmx_tensor mm = {m->adam_m.bufs[0], 0, m->trainable_floats};
  dmx_tensor vv = {m->adam_v.bufs[0], 0, m->trainable_floats};
  if (m->params.n_buffers > 1 && m->params.used[0] < m->trainable_floats)
    dmx_die("parameters span several device buffers; the optimizer needs the trainable ones in one");
  /* the trainable arena minus the idle retrieval head: [0, idle_begin) and [idle_end, end) */
  size_t cut[2][2] = {{0, m->idle_end > m->idle_begin ? m->idle_begin : m->trainable_floats},
                      {m->idle_end > m->idle_begin ? m->idle_end : m->trainable_floats, m->trainable_floats}};
  if (tc->max_grad_norm > 0) { /* the idle head's gradient is zero: its squares add nothing */
    dmx_tensor gp[2];
    size_t np[2];
    int parts = 0;
    for (int r = 0; r < 2; r++)
      if (cut[r][1] > cut[r][0]) {
        gp[parts] = (dmx_tensor){g.buf, cut[r][0], cut[r][1] - cut[r][0]};
        np[parts++] = cut[r][1] - cut[r][0];
      }
    dmx_global_norm_parts(m->rt, m->norm, m->norm_partial, gp, np, parts);
  }
  for (int r = 0; r < 2; r++) {
    size_t a = cut[r][0], n = cut[r][1] - cut[r][0];
    if (n == 0) continue;
    dmx_tensor dm = m->decay_mask.buf ? (dmx_tensor){m->decay_mask.buf, m->decay_mask.off + a, n} : m->decay_mask;
    dmx_adamw_update(m->rt, (dmx_tensor){p.buf, a, n}, (dmx_tensor){g.buf, a, n}, (dmx_tensor){mm.buf, a, n},
                     (dmx_tensor){vv.buf, a, n}, n, lr, tc->adam_beta1, tc->adam_beta2, tc->adam_eps, tc->weight_decay,
                     dm, t, m->norm, tc->max_grad_norm);
  }
  phase_end(m, PH_OPT);
}

dmx_step_stats dmx_model_stats(dmx_model *m) {
  dmx_step_stats st = {0};
  float sums[2] = {0, 0};
  if (m->has_task) dmx_download(m->rt, &sums[0], m->task_sum, sizeof(float));
  if (m->has_retrieval && m->S > 0) dmx_download(m->rt, &sums[1], m->r_sum, sizeof(float));
  st.task_count = m->has_task ? m->task_count : 0;
  st.retrieval_count = m->has_retrieval ? m->S : 0;
  st.task_loss_sum = sums[0];
  st.retrieval_loss_sum = sums[1];
  dmx_model_finish_stats(m, &st);
  if (m->e.train.max_grad_norm > 0) dmx_download(m->rt, &st.grad_norm, m->norm, sizeof(float));
  if (st.task_count) {
    int32_t *pred = dmx_malloc((size_t)m->task_rows * sizeof(int32_t));
    dmx_download(m->rt, pred, m->preds, (size_t)m->task_rows * sizeof(int32_t));
    for (int r = 0; r < m->task_rows; r++)
      if (m->h_task_targets[r] != -100 && pred[r] == m->h_task_targets[r]) st.task_correct++;
    free(pred);
  }
  if (st.retrieval_count) {
    int32_t *pred = dmx_malloc((size_t)m->S * sizeof(int32_t));
    dmx_download(m->rt, pred, m->r_preds, (size_t)m->S * sizeof(int32_t));
    for (int s = 0; s < m->S; s++) st.retrieval_correct += pred[s] == m->h_targets[s];
    free(pred);
  }
  return st;
}

void dmx_model_finish_stats(const dmx_model *m, dmx_step_stats *st) {
  st->task_loss = st->task_count ? (float)(st->task_loss_sum / st->task_count) : 0.0f;
  st->retrieval_loss = st->retrieval_count ? (float)(st->retrieval_loss_sum / st->retrieval_count) : 0.0f;
  st->loss = m->task_coeff * st->task_loss + m->retr_coeff * st->retrieval_loss;
}

int dmx_model_grad_spans(const dmx_model *m, dmx_tensor spans[2]) {
  cl_mem g = m->grads.bufs[0];
  if (m->idle_end <= m->idle_begin) {
    spans[0] = (dmx_tensor){g, 0, m->trainable_floats};
    return m->trainable_floats > 0;
  }
  int k = 0;
  if (m->idle_begin > 0) spans[k++] = (dmx_tensor){g, 0, m->idle_begin};
  if (m->trainable_floats > m->idle_end) spans[k++] = (dmx_tensor){g, m->idle_end, m->trainable_floats - m->idle_end};
  return k;
}

const dmx_arena *dmx_model_param_arena(const dmx_model *m) { return &m->params; }

dmx_tensor dmx_model_word_grad(const dmx_model *m, int *d) {
  *d = m->d;
  return m->g.emb.word;
}

void dmx_model_set_rank(dmx_model *m, int rank) {
  m->seed = (uint32_t)m->e.train.seed + (uint32_t)rank * 0x9E3779B9u;
}

void dmx_model_predictions(dmx_model *m, int32_t *out) {
  dmx_download(m->rt, out, m->preds, (size_t)m->task_rows * sizeof(int32_t));
}

void dmx_model_logits(dmx_model *m, float *out) {
  dmx_download(m->rt, out, m->logits, (size_t)m->task_rows * m->C * sizeof(float));
}
