/* Op-level profiling by OpenCL events: the recorder behind host/profile.h. */
#include "host/profile.h"

#include <stdlib.h>
#include <string.h>

static const struct {
  const char *name, *what;
} cats[DMX_PROF_N] = {
    [DMX_PROF_EMBEDDING] = {"embedding", "embedding gathers and their table gradients (cl/embedding.cl)"},
    [DMX_PROF_MUX] = {"mux", "multiplexing kernels (cl/mux.cl)"},
    [DMX_PROF_ATTENTION] = {"attention", "attention permutes and fused mask+softmax (cl/attention.cl)"},
    [DMX_PROF_LAYERNORM] = {"layernorm", "layer norm forward and backward (cl/layernorm.cl)"},
    [DMX_PROF_GELU] = {"gelu", "GELU forward and backward"},
    [DMX_PROF_DROPOUT] = {"dropout", "dropout forward and backward"},
    [DMX_PROF_BIAS] = {"bias", "bias add and bias gradient of the linear layers"},
    [DMX_PROF_ELEMENTWISE] = {"elementwise", "residual adds, axpy, copies"},
    [DMX_PROF_DEMUX] = {"demux", "demultiplexing heads' gathers and broadcasts (cl/heads.cl, row gathers, tanh)"},
    [DMX_PROF_LOSS] = {"loss", "softmax cross-entropy and loss sums (cl/loss.cl)"},
    [DMX_PROF_OPTIMIZER] = {"optimizer", "gradient norm and AdamW (cl/optim.cl)"},
    [DMX_PROF_FILL] = {"fill", "buffer fills: gradient and scratch zeroing (clEnqueueFillBuffer)"},
    [DMX_PROF_UPLOAD] = {"upload", "the step's inputs, host to device (clEnqueueWriteBuffer)"},
    [DMX_PROF_OTHER] = {"other", "kernels of no category above"},
    [DMX_PROF_GEMM_QKV] = {"gemm_qkv", "CLBlast: fused Q/K/V projection, forward and backward"},
    [DMX_PROF_GEMM_ATTN_OUT] = {"gemm_attn_out", "CLBlast: attention output projection"},
    [DMX_PROF_GEMM_FFN_UP] = {"gemm_ffn_up", "CLBlast: FFN up projection (d -> intermediate)"},
    [DMX_PROF_GEMM_FFN_DOWN] = {"gemm_ffn_down", "CLBlast: FFN down projection (intermediate -> d)"},
    [DMX_PROF_GEMM_ATTENTION] = {"gemm_attention", "CLBlast strided-batched: Q K^T and P V, and their gradients"},
    [DMX_PROF_GEMM_MUX] = {"gemm_mux", "CLBlast: random-orthogonal multiplexing"},
    [DMX_PROF_GEMM_HEADS] = {"gemm_heads", "CLBlast: task and retrieval heads' dense layers"},
    [DMX_PROF_GEMM_VOCAB] = {"gemm_vocab", "CLBlast: retrieval vocabulary projection"},
    [DMX_PROF_GEMM_OTHER] = {"gemm_other", "CLBlast: GEMMs under no scope"},
};

const char *dmx_prof_cat_name(int c) { return c >= 0 && c < DMX_PROF_N ? cats[c].name : "?"; }
const char *dmx_prof_cat_what(int c) { return c >= 0 && c < DMX_PROF_N ? cats[c].what : "?"; }

static bool starts(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

int dmx_prof_kernel_category(const char *file, const char *k) {
  if (!strcmp(file, "embedding.cl")) return DMX_PROF_EMBEDDING;
  if (!strcmp(file, "mux.cl")) return DMX_PROF_MUX;
  if (!strcmp(file, "attention.cl")) return DMX_PROF_ATTENTION;
  if (!strcmp(file, "layernorm.cl")) return DMX_PROF_LAYERNORM;
  if (!strcmp(file, "loss.cl")) return DMX_PROF_LOSS;
  if (!strcmp(file, "optim.cl")) return DMX_PROF_OPTIMIZER;
  if (!strcmp(file, "heads.cl")) return DMX_PROF_DEMUX;
  if (!strcmp(file, "activation.cl")) {
    if (starts(k, "gelu_")) return DMX_PROF_GELU;
    if (starts(k, "dropout_")) return DMX_PROF_DROPOUT;
    if (starts(k, "bias_")) return DMX_PROF_BIAS;
    if (starts(k, "gather_rows_") || starts(k, "tanh_")) return DMX_PROF_DEMUX;
    if (starts(k, "add_") || starts(k, "axpy_") || starts(k, "copy_")) return DMX_PROF_ELEMENTWISE;
  }
  return DMX_PROF_OTHER;
}

int dmx_prof_gemm_category(const char *scope) {
  static const struct {
    const char *scope;
    int cat;
  } map[] = {{"qkv", DMX_PROF_GEMM_QKV},         {"attn_out", DMX_PROF_GEMM_ATTN_OUT},
             {"ffn_up", DMX_PROF_GEMM_FFN_UP},   {"ffn_down", DMX_PROF_GEMM_FFN_DOWN},
             {"attention", DMX_PROF_GEMM_ATTENTION}, {"mux", DMX_PROF_GEMM_MUX},
             {"heads", DMX_PROF_GEMM_HEADS},     {"vocab", DMX_PROF_GEMM_VOCAB}};
  if (!scope) return DMX_PROF_GEMM_OTHER;
  for (size_t i = 0; i < sizeof map / sizeof *map; i++)
    if (!strcmp(scope, map[i].scope)) return map[i].cat;
  return DMX_PROF_GEMM_OTHER;
}

/* One recorded command: a kernel/fill/upload event (before == NULL: START..END), or a CLBlast
 * call between two markers (END(before)..END(after)). */
typedef struct {
  cl_event before, after;
  int cat;
  double flops;
} record;

struct dmx_prof {
  record *recs;
  size_t n, cap;
};

void dmx_prof_start(dmx_runtime *rt) {
  if (!rt->profiling)
    dmx_die("op-level profiling needs a queue created with profiling (dmx_runtime_create(..., true, ...)): a "
            "program bug");
  if (rt->prof) return;
  rt->prof = dmx_calloc(1, sizeof *rt->prof);
}

static void release_all(struct dmx_prof *p) {
  for (size_t i = 0; i < p->n; i++) {
    if (p->recs[i].before) clReleaseEvent(p->recs[i].before);
    if (p->recs[i].after) clReleaseEvent(p->recs[i].after);
  }
  p->n = 0;
}

void dmx_prof_stop(dmx_runtime *rt) {
  struct dmx_prof *p = rt->prof;
  if (!p) return;
  rt->prof = NULL;
  release_all(p);
  free(p->recs);
  free(p);
}

static void push(dmx_runtime *rt, cl_event before, cl_event after, int cat, double flops) {
  struct dmx_prof *p = rt->prof;
  if (p->n == p->cap) {
    p->cap = p->cap ? 2 * p->cap : 1024;
    p->recs = dmx_realloc(p->recs, p->cap * sizeof *p->recs);
  }
  p->recs[p->n++] = (record){before, after, cat, flops};
}

void dmx_prof_record(dmx_runtime *rt, cl_event ev, int cat) { push(rt, NULL, ev, cat, 0); }

cl_event dmx_prof_gemm_begin(dmx_runtime *rt) {
  cl_event ev;
  CL_CHECK(clEnqueueMarkerWithWaitList(rt->queue, 0, NULL, &ev));
  return ev;
}

void dmx_prof_gemm_end(dmx_runtime *rt, cl_event before, double flops) {
  cl_event after;
  CL_CHECK(clEnqueueMarkerWithWaitList(rt->queue, 0, NULL, &after));
  push(rt, before, after, dmx_prof_gemm_category(rt->prof_scope), flops);
}

/* A timestamp in ns; false when the driver has none for this event. */
static bool stamp(cl_event ev, cl_profiling_info what, cl_ulong *out) {
  return clGetEventProfilingInfo(ev, what, sizeof *out, out, NULL) == CL_SUCCESS;
}

int dmx_prof_collect(dmx_runtime *rt, dmx_prof_totals *t, dmx_error *err) {
  struct dmx_prof *p = rt->prof;
  if (!p) return 0;
  int rc = 0;
  for (size_t i = 0; i < p->n && rc == 0; i++) {
    const record *r = &p->recs[i];
    cl_int status = CL_COMPLETE;
    CL_CHECK(clGetEventInfo(r->after, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL));
    if (status != CL_COMPLETE) {
      rc = dmx_fail(err, "profile: a %s command had not completed when its events were read (status %d): finish "
                         "the queue before dmx_prof_collect",
                    dmx_prof_cat_name(r->cat), (int)status);
      break;
    }
    cl_ulong a = 0, b = 0;
    bool ok = r->before ? stamp(r->before, CL_PROFILING_COMMAND_END, &a) && stamp(r->after, CL_PROFILING_COMMAND_END, &b)
                        : stamp(r->after, CL_PROFILING_COMMAND_START, &a) && stamp(r->after, CL_PROFILING_COMMAND_END, &b);
    t->records++;
    if (!ok || b < a) {
      t->unavailable++;
      continue;
    }
    t->seconds[r->cat] += (double)(b - a) * 1e-9;
    t->count[r->cat]++;
    t->flops[r->cat] += r->flops;
  }
  release_all(p);
  return rc;
}
