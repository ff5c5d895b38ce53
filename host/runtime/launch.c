/* Kernel launches: arguments by kind, and the two grid shapes (rounded up, or exact). */
#include "host/runtime/launch.h"

#include <math.h>
#include <string.h>

#include "host/runtime/native.h"

size_t dmx_local_pow2(dmx_runtime *rt, dmx_kernel_id id, int dim, size_t want, size_t rest) {
  size_t lim = dmx_kernel_wg_max(rt, id) / (rest ? rest : 1), dim_lim = rt->info.max_item_size[dim];
  if (dim_lim && dim_lim < lim) lim = dim_lim;
  size_t w = 1;
  while (w * 2 <= want && w * 2 <= lim) w *= 2;
  return w;
}

size_t dmx_kernel_local_mem_max(dmx_runtime *rt, dmx_kernel_id id) {
  dmx_kernel(rt, id);
  cl_ulong own = rt->kernel_static_local[id];
  return rt->info.local_mem > own ? (size_t)(rt->info.local_mem - own) : 0;
}

static void kernel_name(cl_kernel k, char *out, size_t cap) {
  snprintf(out, cap, "?");
  clGetKernelInfo(k, CL_KERNEL_FUNCTION_NAME, cap, out, NULL);
  out[cap - 1] = 0;
}

/* The limits a launch must meet (dmx_launch_at's contract), checked before the enqueue so a size a
 * launcher assumed fails here on every device, not only on one whose limits are lower. */
static void check_group(dmx_runtime *rt, cl_kernel k, dmx_kernel_id id, int dims, const size_t *local, int nargs,
                        const dmx_karg *args, const char *file, int line) {
  size_t wg_max;
  cl_ulong own;
  if (id < DMX_KERNEL_COUNT) {
    wg_max = rt->kernel_wg_max[id];
    own = rt->kernel_static_local[id];
  } else {
    dmx_kernel_query_limits(rt, k, &wg_max, &own);
  }
  char kname[128];
  if (local) {
    size_t wg = 1;
    for (int d = 0; d < dims; d++) {
      if (local[d] == 0 || local[d] > rt->info.max_item_size[d]) {
        kernel_name(k, kname, sizeof kname);
        dmx_die_at(file, line,
                   "kernel %s: local size %zu in dimension %d is outside 1..%zu, the limit of %s "
                   "(CL_DEVICE_MAX_WORK_ITEM_SIZES); derive it with dmx_local_pow2 (a program bug)",
                   kname, local[d], d, rt->info.max_item_size[d], rt->info.name);
      }
      wg *= local[d];
    }
    if (wg > wg_max) {
      kernel_name(k, kname, sizeof kname);
      dmx_die_at(file, line,
                 "kernel %s: a work-group of %zu work-items is above its limit of %zu on %s "
                 "(CL_KERNEL_WORK_GROUP_SIZE%s); derive it with dmx_local_pow2 (a program bug)",
                 kname, wg, wg_max, rt->info.name, rt->wg_cap ? ", DATAMUX_MAX_WORK_GROUP" : "");
    }
  }
  cl_ulong lm = own;
  for (int i = 0; i < nargs; i++)
    if (args[i].kind == DMX_KA_LOCAL) lm += args[i].bytes;
  if (lm > rt->info.local_mem) {
    kernel_name(k, kname, sizeof kname);
    dmx_die_at(file, line,
               "kernel %s: %llu bytes of local memory, above the %llu of %s (CL_DEVICE_LOCAL_MEM_SIZE); size its "
               "work-group with dmx_kernel_local_mem_max (a program bug)",
               kname, (unsigned long long)lm, (unsigned long long)rt->info.local_mem, rt->info.name);
  }
}

static void set_args(cl_kernel k, int nargs, const dmx_karg *args, const char *file, int line) {
  cl_uint idx = 0;
  for (int i = 0; i < nargs; i++) {
    const dmx_karg *a = &args[i];
    cl_int st = CL_SUCCESS;
    switch (a->kind) {
      case DMX_KA_TENSOR: {
        cl_ulong off = a->t.off;
        st = clSetKernelArg(k, idx++, sizeof(cl_mem), &a->t.buf);
        if (st == CL_SUCCESS) st = clSetKernelArg(k, idx++, sizeof off, &off);
        break;
      }
      case DMX_KA_INT: st = clSetKernelArg(k, idx++, sizeof(cl_int), &a->i); break;
      case DMX_KA_FLOAT: st = clSetKernelArg(k, idx++, sizeof(cl_float), &a->f); break;
      case DMX_KA_MEM: st = clSetKernelArg(k, idx++, sizeof(cl_mem), &a->m); break;
      case DMX_KA_LOCAL: st = clSetKernelArg(k, idx++, a->bytes, NULL); break;
      case DMX_KA_ULONG: {
        cl_ulong v = a->bytes;
        st = clSetKernelArg(k, idx++, sizeof v, &v);
        break;
      }
    }
    if (st != CL_SUCCESS) {
      char kname[128];
      kernel_name(k, kname, sizeof kname);
      dmx_die_at(file, line, "clSetKernelArg(%s, argument %u) failed: %s", kname, idx - 1, dmx_cl_status_name(st));
    }
  }
}

static void enqueue_range(dmx_runtime *rt, cl_kernel k, dmx_kernel_id id, int dims, const size_t *offset,
                          const size_t *global, const size_t *local, const char *file, int line) {
  /* an event only while the op-level profile records: none otherwise */
  cl_event ev = NULL;
  cl_int st =
      clEnqueueNDRangeKernel(rt->queue, k, (cl_uint)dims, offset, global, local, 0, NULL, rt->observer ? &ev : NULL);
  if (st != CL_SUCCESS) {
    char kname[128];
    kernel_name(k, kname, sizeof kname);
    dmx_die_at(file, line, "clEnqueueNDRangeKernel(%s) failed: %s", kname, dmx_cl_status_name(st));
  }
  if (rt->observer)
    dmx_observe(rt, ev, id, id < DMX_KERNEL_COUNT ? dmx_kernel_name(id) : "(kernel outside kernels.def)");
}

void dmx_launch_at(dmx_runtime *rt, cl_kernel k, dmx_kernel_id id, int dims, const size_t *global, const size_t *local,
                   int nargs, const dmx_karg *args, const char *file, int line) {
  check_group(rt, k, id, dims, local, nargs, args, file, line);
  set_args(k, nargs, args, file, line);
  size_t g[3];
  for (int d = 0; d < dims; d++) {
    g[d] = global[d] ? global[d] : 1;
    if (local) g[d] = (g[d] + local[d] - 1) / local[d] * local[d];
  }
  enqueue_range(rt, k, id, dims, NULL, g, local, file, line);
}

void dmx_launch_exact_at(dmx_runtime *rt, cl_kernel k, dmx_kernel_id id, int dims, const size_t *global,
                         const size_t *local, int nargs, const dmx_karg *args, const char *file, int line) {
  if (dims < 1 || dims > 3) dmx_die_at(file, line, "dmx_launch_exact: %d dimensions (1 to 3 supported)", dims);
  for (int d = 0; d < dims; d++)
    if (global[d] == 0) return; /* nothing to run */
  size_t l[3] = {1, 1, 1}, wg = 1;
  for (int d = 1; d < dims; d++) {
    l[d] = local ? local[d] : 1;
    if (l[d] == 0 || global[d] % l[d] != 0)
      dmx_die_at(file, line,
                 "dmx_launch_exact: local size %zu does not divide global size %zu in dimension %d (a program bug)",
                 l[d], global[d], d);
    wg *= l[d];
  }
  size_t want = local && local[0] ? local[0] : 256, wg_max;
  if (id < DMX_KERNEL_COUNT) {
    l[0] = dmx_local_pow2(rt, id, 0, want, wg);
  } else {
    cl_ulong own;
    dmx_kernel_query_limits(rt, k, &wg_max, &own);
    while (l[0] * 2 <= want && l[0] * 2 * wg <= wg_max && l[0] * 2 <= rt->info.max_item_size[0]) l[0] *= 2;
  }
  check_group(rt, k, id, dims, l, nargs, args, file, line);
  set_args(k, nargs, args, file, line);
  size_t bulk = global[0] / l[0] * l[0], tail = global[0] - bulk;
  size_t g[3] = {bulk, dims > 1 ? global[1] : 1, dims > 2 ? global[2] : 1};
  if (bulk) enqueue_range(rt, k, id, dims, NULL, g, l, file, line);
  if (tail) {
    size_t off[3] = {bulk, 0, 0};
    g[0] = tail;
    /* the remainder's work-group shape is the runtime's: any divisor of the remainder will do */
    enqueue_range(rt, k, id, dims, off, g, NULL, file, line);
  }
}

typedef struct {
  dmx_native_mem mem;
  size_t off, n;
  float value;
} fill_block;

static void CL_CALLBACK run_fill(void *p) {
  const fill_block *b = p;
  float *x = dmx_native_ptr(&b->mem, 0) + b->off;
  if (b->value == 0.0f && !signbit(b->value))
    memset(x, 0, b->n * sizeof(float));
  else
    for (size_t i = 0; i < b->n; i++) x[i] = b->value;
}

void dmx_fill(dmx_runtime *rt, dmx_tensor t, float value) {
  if (t.n == 0) return;
  if (rt->native_loops) {
    fill_block b = {.off = t.off, .n = t.n, .value = value};
    dmx_native_enqueue(rt, run_fill, &b, sizeof b, &b.mem, &t.buf, 1, DMX_K_FILL_VALUE, "fill (host loop)");
    return;
  }
  size_t n = t.n;
  dmx_launch_exact(rt, DMX_K_FILL_VALUE, 1, &n, NULL, KA_T(t), KA_F(value));
}
