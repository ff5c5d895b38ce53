/* Op-level profiling from OpenCL profiling events, for `datamux bench --train`.
 *
 * While a recorder is attached (dmx_prof_start), every kernel launch, buffer fill and asynchronous
 * upload gets an event tagged with a category, and every CLBlast call is bracketed by two markers
 * (clEnqueueMarkerWithWaitList) because the event CLBlast returns covers only its last kernel: the
 * GEMM's time is END(after) - END(before), which covers every kernel it enqueued (pad, transpose,
 * the GEMM itself) and the gaps between them. Kernels are classified by their cl/ file and name; a
 * GEMM's category comes from the scope the layer code set last (dmx_scope in host/runtime/context.h:
 * "qkv", "attn_out", "ffn_up", "ffn_down", "attention", "mux", "heads", "vocab").
 *
 * The recorder is the runtime's observer (host/runtime/context.h): the runtime and the GEMM wrapper
 * call it through that interface and include nothing of this module. Off (the default) nothing
 * here runs and no event is created. The queue must
 * have been created with profiling (dmx_runtime_create(..., true, ...)). */
#ifndef DMX_PROFILE_H
#define DMX_PROFILE_H

#include <stdbool.h>
#include <stdio.h>

#include "host/runtime/runtime.h"

typedef enum {
  DMX_PROF_EMBEDDING,
  DMX_PROF_MUX,
  DMX_PROF_ATTENTION,
  DMX_PROF_LAYERNORM,
  DMX_PROF_GELU,
  DMX_PROF_DROPOUT,
  DMX_PROF_BIAS,
  DMX_PROF_ELEMENTWISE,
  DMX_PROF_DEMUX,
  DMX_PROF_LOSS,
  DMX_PROF_OPTIMIZER,
  DMX_PROF_FILL,
  DMX_PROF_UPLOAD,
  DMX_PROF_OTHER,
  DMX_PROF_GEMM_QKV, /* first GEMM category: the GEMM ones are contiguous to the end */
  DMX_PROF_GEMM_ATTN_OUT,
  DMX_PROF_GEMM_FFN_UP,
  DMX_PROF_GEMM_FFN_DOWN,
  DMX_PROF_GEMM_ATTENTION,
  DMX_PROF_GEMM_MUX,
  DMX_PROF_GEMM_HEADS,
  DMX_PROF_GEMM_VOCAB,
  DMX_PROF_GEMM_OTHER,
  DMX_PROF_N
} dmx_prof_cat;

const char *dmx_prof_cat_name(int cat);
/* One line on what the category holds, for the report. */
const char *dmx_prof_cat_what(int cat);
static inline bool dmx_prof_cat_is_gemm(int cat) { return cat >= DMX_PROF_GEMM_QKV && cat < DMX_PROF_N; }

/* The category of a kernel of cl/<file>; of a GEMM under a scope (NULL or unknown: gemm_other). */
int dmx_prof_kernel_category(const char *file, const char *kernel);
int dmx_prof_gemm_category(const char *scope);

/* One kind of command: a kernel by name, a GEMM by scope, shape and transposes, a fill, an upload. */
#define DMX_PROF_LABEL 64
#define DMX_PROF_MAX_ITEMS 128
typedef struct {
  char label[DMX_PROF_LABEL];
  int cat;
  double seconds, flops;
  long count;
} dmx_prof_item;

/* Sums over the collected steps. */
typedef struct {
  double seconds[DMX_PROF_N];              /* device time attributed to each category */
  long count[DMX_PROF_N];                  /* commands (a GEMM counts once) */
  double flops[DMX_PROF_N];                /* GEMM floating-point operations (2mnk per product) */
  long records, unavailable;               /* events read; events whose timestamps the driver did not give */
  dmx_prof_item items[DMX_PROF_MAX_ITEMS]; /* per kind of command; beyond the cap the rest go to "(more)" */
  int n_items;
} dmx_prof_totals;

/* The top kinds of command by time, per step (t summed over steps; step_s: the profiled step's wall
 * time, for the share). */
void dmx_prof_print_top(FILE *f, const dmx_prof_totals *t, int steps, double step_s, int top);
/* A JSON array of every kind of command, by decreasing time, per step: [{"command", "category",
 * "seconds_per_step", "count_per_step"[, "gflops"]}, ...] (no trailing newline). */
void dmx_prof_json_commands(FILE *f, const dmx_prof_totals *t, int steps, const char *indent);

/* Attaches a recorder: from now on commands are recorded until dmx_prof_stop. Ends the process
 * when the queue has no profiling (a program bug). */
void dmx_prof_start(dmx_runtime *rt);
/* Detaches and frees the recorder (pending events are released unread). */
void dmx_prof_stop(dmx_runtime *rt);
/* After dmx_finish: reads every recorded event into t (added), releases them and starts a new
 * batch. 0, or -1 with err when an event did not complete. */
int dmx_prof_collect(dmx_runtime *rt, dmx_prof_totals *t, dmx_error *err);

/* Whether a recorder is attached. */
bool dmx_prof_active(const dmx_runtime *rt);

#endif
