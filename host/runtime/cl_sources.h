#ifndef DMX_CL_SOURCES_H
#define DMX_CL_SOURCES_H
#include <stddef.h>
/* Every file of cl/, embedded at build time by cmake/embed_cl.cmake; ends with a NULL name. */
typedef struct {
  const char *name; /* "layernorm.cl" */
  const char *text;
  size_t len;
} dmx_cl_source;
extern const dmx_cl_source dmx_cl_sources[];
/* cl/prelude.h: helpers every program starts with (host/runtime/program.c prepends it). */
extern const dmx_cl_source dmx_cl_prelude;
#endif
