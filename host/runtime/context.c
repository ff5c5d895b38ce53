/* The observer and the extension slots. */
#include "host/runtime/context.h"

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
