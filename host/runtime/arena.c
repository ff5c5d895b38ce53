/* Arenas (llm.c's malloc_and_point on the device), copies and the two-slot stager. */
#include "host/runtime/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/runtime/launch.h"

void dmx_arena_init(dmx_arena *a, dmx_runtime *rt, const char *name) {
  memset(a, 0, sizeof *a);
  a->name = name;
  a->rt = rt;
  a->max_floats_per_buffer = (size_t)(rt->info.max_alloc / sizeof(float));
}

void dmx_arena_add(dmx_arena *a, dmx_tensor *t, size_t n) {
  if (a->committed) dmx_die("arena '%s': tensor added after commit (a program bug)", a->name);
  size_t aligned = (n + DMX_ALIGN - 1) / DMX_ALIGN * DMX_ALIGN;
  if (aligned > a->max_floats_per_buffer)
    dmx_die(
        "arena '%s': one tensor of %zu bytes exceeds the device's max allocation of %zu bytes; use a smaller "
        "model or batch",
        a->name, n * sizeof(float), a->max_floats_per_buffer * sizeof(float));
  if (a->n_buffers == 0 || a->used[a->n_buffers - 1] + aligned > a->max_floats_per_buffer) {
    a->bufs = dmx_realloc(a->bufs, (size_t)(a->n_buffers + 1) * sizeof *a->bufs);
    a->used = dmx_realloc(a->used, (size_t)(a->n_buffers + 1) * sizeof *a->used);
    a->bufs[a->n_buffers] = NULL;
    a->used[a->n_buffers] = 0;
    a->n_buffers++;
  }
  if (a->n_tensors == a->cap_tensors) {
    a->cap_tensors = a->cap_tensors ? 2 * a->cap_tensors : 64;
    a->tensors = dmx_realloc(a->tensors, (size_t)a->cap_tensors * sizeof *a->tensors);
    a->tensor_buffer = dmx_realloc(a->tensor_buffer, (size_t)a->cap_tensors * sizeof *a->tensor_buffer);
  }
  t->buf = NULL;
  t->off = a->used[a->n_buffers - 1];
  t->n = n;
  a->tensors[a->n_tensors] = t;
  a->tensor_buffer[a->n_tensors] = a->n_buffers - 1;
  a->n_tensors++;
  a->used[a->n_buffers - 1] += aligned;
}

size_t dmx_arena_bytes(const dmx_arena *a) {
  size_t total = 0;
  for (int i = 0; i < a->n_buffers; i++) total += a->used[i] * sizeof(float);
  return total;
}

int dmx_arena_commit(dmx_arena *a, dmx_error *err) {
  size_t need = dmx_arena_bytes(a);
  if (need > a->rt->info.global_mem)
    return dmx_fail(err,
                    "arena '%s' needs %.1f MiB but %s has %.1f MiB of global memory; use a smaller model, batch "
                    "or sequence length",
                    a->name, need / 1048576.0, a->rt->info.name, a->rt->info.global_mem / 1048576.0);
  for (int i = 0; i < a->n_buffers; i++) {
    cl_int st;
    a->bufs[i] = dmx_mem_create(a->rt, a->used[i] * sizeof(float), &st);
    if (st != CL_SUCCESS)
      return dmx_fail(err,
                      "arena '%s': clCreateBuffer of %.1f MiB failed: %s (device memory is %.1f MiB); use a "
                      "smaller model or batch",
                      a->name, a->used[i] * sizeof(float) / 1048576.0, dmx_cl_status_name(st),
                      a->rt->info.global_mem / 1048576.0);
  }
  for (int i = 0; i < a->n_tensors; i++) a->tensors[i]->buf = a->bufs[a->tensor_buffer[i]];
  a->committed = true;
  return 0;
}

void dmx_arena_zero(dmx_arena *a) {
  for (int i = 0; i < a->n_buffers; i++)
    if (a->used[i]) dmx_fill(a->rt, (dmx_tensor){a->bufs[i], 0, a->used[i]}, 0.0f);
}

void dmx_arena_release(dmx_arena *a) {
  for (int i = 0; i < a->n_buffers; i++)
    if (a->bufs[i]) clReleaseMemObject(a->bufs[i]);
  free(a->bufs);
  free(a->used);
  free(a->tensors);
  free(a->tensor_buffer);
  memset(a, 0, sizeof *a);
}

/* ---------------------------------------------------------------- copies */

void dmx_upload(dmx_runtime *rt, dmx_tensor t, const void *src, size_t bytes) {
  if (bytes == 0) return;
  rt->stat_uploads++;
  rt->stat_upload_bytes += bytes;
  DMX_CL_CHECK(clEnqueueWriteBuffer(rt->queue, t.buf, CL_TRUE, t.off * 4, bytes, src, 0, NULL, NULL));
}

/* The caller guarantees src outlives the write (see dmx_stager for per-step inputs). */
void dmx_upload_async(dmx_runtime *rt, dmx_tensor t, const void *src, size_t bytes) {
  if (bytes == 0) return;
  rt->stat_uploads++;
  rt->stat_upload_bytes += bytes;
  cl_event ev = NULL;
  DMX_CL_CHECK(
      clEnqueueWriteBuffer(rt->queue, t.buf, CL_FALSE, t.off * 4, bytes, src, 0, NULL, rt->observer ? &ev : NULL));
  if (rt->observer) dmx_observe(rt, ev, DMX_KERNEL_COUNT, NULL);
}

float *dmx_map(dmx_runtime *rt, dmx_tensor t) {
  cl_int rc = CL_SUCCESS;
  void *p = clEnqueueMapBuffer(rt->queue, t.buf, CL_TRUE, CL_MAP_READ | CL_MAP_WRITE, t.off * 4, t.n * 4, 0, NULL,
                               NULL, &rc);
  if (rc != CL_SUCCESS || !p)
    dmx_die("clEnqueueMapBuffer of %zu floats at offset %zu failed: %s (%d); the device may be out of host-visible "
            "memory",
            t.n, t.off, dmx_cl_status_name(rc), rc);
  return p;
}

void dmx_unmap(dmx_runtime *rt, dmx_tensor t, float *p) {
  DMX_CL_CHECK(clEnqueueUnmapMemObject(rt->queue, t.buf, p, 0, NULL, NULL));
}

void dmx_download(dmx_runtime *rt, void *dst, dmx_tensor t, size_t bytes) {
  if (bytes == 0) return;
  rt->stat_downloads++;
  rt->stat_download_bytes += bytes;
  DMX_CL_CHECK(clEnqueueReadBuffer(rt->queue, t.buf, CL_TRUE, t.off * 4, bytes, dst, 0, NULL, NULL));
}

void dmx_finish(dmx_runtime *rt) { DMX_CL_CHECK(clFinish(rt->queue)); }

void dmx_stager_init(dmx_stager *s, size_t capacity_bytes) {
  memset(s, 0, sizeof *s);
  s->cap = capacity_bytes;
  s->slot[0] = dmx_malloc(capacity_bytes);
  s->slot[1] = dmx_malloc(capacity_bytes);
}

void dmx_stager_begin(dmx_runtime *rt, dmx_stager *s) {
  (void)rt;
  s->current ^= 1;
  s->used = 0;
  if (s->done[s->current]) {
    DMX_CL_CHECK(clWaitForEvents(1, &s->done[s->current]));
    DMX_CL_CHECK(clReleaseEvent(s->done[s->current]));
    s->done[s->current] = NULL;
  }
}

void dmx_stager_upload(dmx_runtime *rt, dmx_stager *s, dmx_tensor t, const void *src, size_t bytes) {
  if (bytes == 0) return;
  size_t aligned = (bytes + 63) / 64 * 64;
  if (s->used + aligned > s->cap)
    dmx_die("staging slot overflow: %zu + %zu bytes > %zu (a program bug: size the stager for a step's inputs)",
            s->used, bytes, s->cap);
  unsigned char *dst = s->slot[s->current] + s->used;
  memcpy(dst, src, bytes);
  rt->stat_uploads++;
  rt->stat_upload_bytes += bytes;
  s->used += aligned;
  cl_event ev = NULL;
  DMX_CL_CHECK(
      clEnqueueWriteBuffer(rt->queue, t.buf, CL_FALSE, t.off * 4, bytes, dst, 0, NULL, rt->observer ? &ev : NULL));
  if (rt->observer) dmx_observe(rt, ev, DMX_KERNEL_COUNT, NULL);
}

void dmx_stager_end(dmx_runtime *rt, dmx_stager *s) {
  if (s->done[s->current]) DMX_CL_CHECK(clReleaseEvent(s->done[s->current]));
  DMX_CL_CHECK(clEnqueueMarkerWithWaitList(rt->queue, 0, NULL, &s->done[s->current]));
}

void dmx_stager_free(dmx_stager *s) {
  for (int i = 0; i < 2; i++) {
    if (s->done[i]) {
      clWaitForEvents(1, &s->done[i]);
      clReleaseEvent(s->done[i]);
    }
    free(s->slot[i]);
  }
  memset(s, 0, sizeof *s);
}

dmx_tensor dmx_buffer_create(dmx_runtime *rt, size_t n_floats) {
  cl_int st;
  cl_mem m = dmx_mem_create(rt, (n_floats ? n_floats : 1) * sizeof(float), &st);
  DMX_CL_CHECK(st);
  return (dmx_tensor){m, 0, n_floats};
}

void dmx_buffer_release(dmx_tensor t) {
  if (t.buf) clReleaseMemObject(t.buf);
}
