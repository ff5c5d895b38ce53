/* The observer, the extension slots and the registry of created buffers. */
#include "host/runtime/context.h"

#include <stdint.h>

void dmx_observer_set(dmx_runtime *rt, const dmx_observer_iface *iface, void *ctx) {
  rt->observer = iface;
  rt->observer_ctx = iface ? ctx : NULL;
}

void *dmx_ext_get(dmx_runtime *rt, dmx_ext_slot s, void *(*make)(dmx_runtime *rt), void (*release)(void *state)) {
  dmx_extension *e = &rt->ext[s];
  if (!e->state) {
    e->state = make(rt);
    e->release = release;
  }
  return e->state;
}

void dmx_ext_release_all(dmx_runtime *rt) {
  for (int s = 0; s < DMX_EXT_COUNT; s++)
    if (rt->ext[s].state) {
      rt->ext[s].release(rt->ext[s].state);
      rt->ext[s].state = NULL;
    }
}

cl_mem dmx_mem_create(dmx_runtime *rt, size_t bytes, cl_int *status) {
  cl_mem m = clCreateBuffer(rt->ctx, CL_MEM_READ_WRITE, bytes, NULL, status);
  if (*status != CL_SUCCESS) return NULL;
  /* A released buffer's handle may come back for a new one: the old entry goes, so each live
   * handle appears once. Dead entries of other handles stay (a few per run) and never match. */
  size_t keep = 0;
  for (size_t i = 0; i < rt->n_created; i++)
    if (rt->created[i] != m) rt->created[keep++] = rt->created[i];
  rt->n_created = keep;
  if (rt->n_created == rt->cap_created) {
    rt->cap_created = rt->cap_created ? 2 * rt->cap_created : 64;
    rt->created = dmx_realloc(rt->created, rt->cap_created * sizeof *rt->created);
  }
  rt->created[rt->n_created++] = m;
  return m;
}

size_t dmx_mem_rank(const dmx_runtime *rt, cl_mem m) {
  for (size_t i = rt->n_created; i-- > 0;)
    if (rt->created[i] == m) return i;
  return SIZE_MAX;
}
