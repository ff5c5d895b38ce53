/* Op-level profiling by OpenCL events: the recorder behind host/profile.h. */
#include "host/runtime/profile.h"

#include <stdio.h>
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
    [DMX_PROF_FILL] = {"fill", "buffer fills: gradient and scratch zeroing (fill_value, cl/util.cl)"},
    [DMX_PROF_UPLOAD] = {"upload", "the step's inputs, host to device (clEnqueueWriteBuffer)"},
    [DMX_PROF_OTHER] = {"other", "kernels of no category above"},
    [DMX_PROF_GEMM_QKV] = {"gemm_qkv", "GEMM: fused Q/K/V projection, forward and backward"},
    [DMX_PROF_GEMM_ATTN_OUT] = {"gemm_attn_out", "GEMM: attention output projection"},
    [DMX_PROF_GEMM_FFN_UP] = {"gemm_ffn_up", "GEMM: FFN up projection (d -> intermediate)"},
    [DMX_PROF_GEMM_FFN_DOWN] = {"gemm_ffn_down", "GEMM: FFN down projection (intermediate -> d)"},
    [DMX_PROF_GEMM_ATTENTION] = {"gemm_attention", "GEMM, strided-batched: Q K^T and P V, and their gradients"},
    [DMX_PROF_GEMM_MUX] = {"gemm_mux", "GEMM: random-orthogonal multiplexing"},
    [DMX_PROF_GEMM_HEADS] = {"gemm_heads", "GEMM: task and retrieval heads' dense layers"},
    [DMX_PROF_GEMM_VOCAB] = {"gemm_vocab", "GEMM: retrieval vocabulary projection"},
    [DMX_PROF_GEMM_OTHER] = {"gemm_other", "GEMM: GEMMs under no scope"},
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
  if (!strcmp(file, "util.cl") && starts(k, "fill_")) return DMX_PROF_FILL;
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
  } map[] = {
      {"qkv", DMX_PROF_GEMM_QKV},           {"attn_out", DMX_PROF_GEMM_ATTN_OUT},   {"ffn_up", DMX_PROF_GEMM_FFN_UP},
      {"ffn_down", DMX_PROF_GEMM_FFN_DOWN}, {"attention", DMX_PROF_GEMM_ATTENTION}, {"mux", DMX_PROF_GEMM_MUX},
      {"heads", DMX_PROF_GEMM_HEADS},       {"vocab", DMX_PROF_GEMM_VOCAB}};
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
  char label[DMX_PROF_LABEL];
} record;

typedef struct {
  dmx_runtime *rt;
  record *recs;
  size_t n, cap;
  int kernel_cat[DMX_KERNEL_COUNT]; /* each kernel's category, worked out once */
} recorder;

static void on_command(void *ctx, cl_event ev, dmx_kernel_id kernel, const char *label);
static cl_event on_span_begin(void *ctx);
static void on_span_end(void *ctx, cl_event before, double flops, const char *label);
static const dmx_observer_iface recorder_iface = {on_command, on_span_begin, on_span_end};

/* The recorder attached to rt, or NULL (another observer, or none). */
static recorder *attached(const dmx_runtime *rt) {
  return rt->observer == &recorder_iface ? (recorder *)rt->observer_ctx : NULL;
}

bool dmx_prof_active(const dmx_runtime *rt) { return attached(rt) != NULL; }

void dmx_prof_start(dmx_runtime *rt) {
  if (!rt->profiling)
    dmx_die(
        "op-level profiling needs a queue created with profiling (dmx_runtime_create(..., true, ...)): a "
        "program bug");
  if (attached(rt)) return;
  if (rt->observer) dmx_die("op-level profiling: the runtime has another observer attached (a program bug)");
  recorder *p = dmx_calloc(1, sizeof *p);
  p->rt = rt;
  for (int k = 0; k < DMX_KERNEL_COUNT; k++)
    p->kernel_cat[k] = dmx_prof_kernel_category(dmx_kernel_file((dmx_kernel_id)k), dmx_kernel_name((dmx_kernel_id)k));
  dmx_observer_set(rt, &recorder_iface, p);
}

static void release_all(recorder *p) {
  for (size_t i = 0; i < p->n; i++) {
    if (p->recs[i].before) clReleaseEvent(p->recs[i].before);
    if (p->recs[i].after) clReleaseEvent(p->recs[i].after);
  }
  p->n = 0;
}

void dmx_prof_stop(dmx_runtime *rt) {
  recorder *p = attached(rt);
  if (!p) return;
  dmx_observer_set(rt, NULL, NULL);
  release_all(p);
  free(p->recs);
  free(p);
}

static void push(recorder *p, cl_event before, cl_event after, int cat, double flops, const char *label) {
  if (p->n == p->cap) {
    p->cap = p->cap ? 2 * p->cap : 1024;
    p->recs = dmx_realloc(p->recs, p->cap * sizeof *p->recs);
  }
  record *r = &p->recs[p->n++];
  *r = (record){before, after, cat, flops, ""};
  snprintf(r->label, sizeof r->label, "%s", label ? label : dmx_prof_cat_name(cat));
}

/* A kernel launch (by handle; DMX_KERNEL_COUNT: one from outside kernels.def) or an upload
 * (label NULL, no kernel). */
static void on_command(void *ctx, cl_event ev, dmx_kernel_id kernel, const char *label) {
  recorder *p = ctx;
  int cat = kernel < DMX_KERNEL_COUNT ? p->kernel_cat[kernel] : label ? DMX_PROF_OTHER : DMX_PROF_UPLOAD;
  push(p, NULL, ev, cat, 0, label);
}

static cl_event on_span_begin(void *ctx) {
  recorder *p = ctx;
  cl_event ev;
  DMX_CL_CHECK(clEnqueueMarkerWithWaitList(p->rt->queue, 0, NULL, &ev));
  return ev;
}

static void on_span_end(void *ctx, cl_event before, double flops, const char *label) {
  recorder *p = ctx;
  cl_event after;
  DMX_CL_CHECK(clEnqueueMarkerWithWaitList(p->rt->queue, 0, NULL, &after));
  push(p, before, after, dmx_prof_gemm_category(p->rt->scope), flops, label);
}

/* The item of this label (a new one while there is room, else the shared overflow item). */
static dmx_prof_item *item_for(dmx_prof_totals *t, const record *r) {
  for (int i = 0; i < t->n_items; i++)
    if (t->items[i].cat == r->cat && !strcmp(t->items[i].label, r->label)) return &t->items[i];
  const char *label = r->label;
  int cat = r->cat;
  if (t->n_items == DMX_PROF_MAX_ITEMS - 1) { /* the last slot collects every further kind */
    label = "(more kinds of command)";
    cat = DMX_PROF_OTHER;
    for (int i = 0; i < t->n_items; i++)
      if (!strcmp(t->items[i].label, label)) return &t->items[i];
  }
  dmx_prof_item *it = &t->items[t->n_items++];
  memset(it, 0, sizeof *it);
  snprintf(it->label, sizeof it->label, "%s", label);
  it->cat = cat;
  return it;
}

static int by_time(const void *a, const void *b) {
  double x = (*(const dmx_prof_item *const *)a)->seconds, y = (*(const dmx_prof_item *const *)b)->seconds;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* t's items by decreasing time into order (room for DMX_PROF_MAX_ITEMS); returns the count. */
static int items_by_time(const dmx_prof_totals *t, const dmx_prof_item **order) {
  for (int i = 0; i < t->n_items; i++) order[i] = &t->items[i];
  qsort(order, (size_t)t->n_items, sizeof *order, by_time);
  return t->n_items;
}

/* A timestamp in ns; false when the driver has none for this event. */
static bool stamp(cl_event ev, cl_profiling_info what, cl_ulong *out) {
  return clGetEventProfilingInfo(ev, what, sizeof *out, out, NULL) == CL_SUCCESS;
}

int dmx_prof_collect(dmx_runtime *rt, dmx_prof_totals *t, dmx_error *err) {
  recorder *p = attached(rt);
  if (!p) return 0;
  int rc = 0;
  for (size_t i = 0; i < p->n && rc == 0; i++) {
    const record *r = &p->recs[i];
    cl_int status = CL_COMPLETE;
    DMX_CL_CHECK(clGetEventInfo(r->after, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, NULL));
    if (status != CL_COMPLETE) {
      rc = dmx_fail(err,
                    "profile: a %s command had not completed when its events were read (status %d): finish "
                    "the queue before dmx_prof_collect",
                    dmx_prof_cat_name(r->cat), (int)status);
      break;
    }
    cl_ulong a = 0, b = 0;
    bool ok = r->before
                  ? stamp(r->before, CL_PROFILING_COMMAND_END, &a) && stamp(r->after, CL_PROFILING_COMMAND_END, &b)
                  : stamp(r->after, CL_PROFILING_COMMAND_START, &a) && stamp(r->after, CL_PROFILING_COMMAND_END, &b);
    t->records++;
    if (!ok || b < a) {
      t->unavailable++;
      continue;
    }
    t->seconds[r->cat] += (double)(b - a) * 1e-9;
    t->count[r->cat]++;
    t->flops[r->cat] += r->flops;
    dmx_prof_item *it = item_for(t, r);
    it->seconds += (double)(b - a) * 1e-9;
    it->count++;
    it->flops += r->flops;
  }
  release_all(p);
  return rc;
}

void dmx_prof_print_top(FILE *f, const dmx_prof_totals *t, int steps, double step_s, int top) {
  if (steps <= 0 || t->n_items == 0) return;
  const dmx_prof_item *order[DMX_PROF_MAX_ITEMS];
  int n = items_by_time(t, order);
  if (top > n) top = n;
  fprintf(f, "\ntop %d of %d kinds of command by time:\n%-44s %-14s %9s %6s %8s %8s\n", top, n, "command", "category",
          "ms/step", "share", "count/st", "GFLOP/s");
  for (int i = 0; i < top; i++) {
    const dmx_prof_item *it = order[i];
    char gf[32] = "";
    if (it->flops > 0 && it->seconds > 0) snprintf(gf, sizeof gf, "%.2f", it->flops / it->seconds / 1e9);
    fprintf(f, "%-44s %-14s %9.3f %5.1f%% %8.1f %8s\n", it->label, dmx_prof_cat_name(it->cat),
            it->seconds / steps * 1e3, 100.0 * it->seconds / steps / step_s, (double)it->count / steps, gf);
  }
}

void dmx_prof_json_commands(FILE *f, const dmx_prof_totals *t, int steps, const char *indent) {
  const dmx_prof_item *order[DMX_PROF_MAX_ITEMS];
  int n = steps > 0 ? items_by_time(t, order) : 0;
  fprintf(f, "[");
  for (int i = 0; i < n; i++) {
    const dmx_prof_item *it = order[i];
    fprintf(f, "%s\n%s  {\"command\": \"", i ? "," : "", indent);
    for (const char *c = it->label; *c; c++) /* labels are kernel names and shapes; escape anyway */
      if (*c == '"' || *c == '\\')
        fprintf(f, "\\%c", *c);
      else if ((unsigned char)*c >= 0x20)
        fputc(*c, f);
    fprintf(f, "\", \"category\": \"%s\", \"seconds_per_step\": %.6f, \"count_per_step\": %.2f",
            dmx_prof_cat_name(it->cat), it->seconds / steps, (double)it->count / steps);
    if (it->flops > 0 && it->seconds > 0) fprintf(f, ", \"gflops\": %.3f", it->flops / it->seconds / 1e9);
    fprintf(f, "}");
  }
  fprintf(f, "%s%s]", n ? "\n" : "", n ? indent : "");
}
