#include "host/runtime/native.h"

#include <stdint.h>

void dmx_native_enqueue(dmx_runtime *rt, void(CL_CALLBACK *fn)(void *), void *block, size_t size, dmx_native_mem *mem,
                        const cl_mem *bufs, int n, dmx_kernel_id as, const char *label) {
  if (n < 1 || n > DMX_NATIVE_MAX)
    dmx_die("dmx_native_enqueue: %d operands (1 to %d; a program bug)", n, DMX_NATIVE_MAX);
  if ((void *)mem != block) dmx_die("dmx_native_enqueue: the block must start with its dmx_native_mem (a program bug)");
  cl_mem list[DMX_NATIVE_MAX];
  size_t rank[DMX_NATIVE_MAX];
  cl_uint count = 0;
  for (int i = 0; i < n; i++) {
    bool seen = false;
    for (cl_uint j = 0; j < count; j++) seen |= list[j] == bufs[i];
    if (seen) continue;
    size_t r = dmx_mem_rank(rt, bufs[i]);
    if (r == SIZE_MAX)
      dmx_die(
          "native kernel: an operand's buffer was not made by dmx_mem_create, so its creation order is unknown (a "
          "program bug; DATAMUX_GEMM_BACKEND=clblast avoids the host GEMM)");
    cl_uint at = count++;
    while (at > 0 && rank[at - 1] > r) {
      rank[at] = rank[at - 1];
      list[at] = list[at - 1];
      at--;
    }
    rank[at] = r;
    list[at] = bufs[i];
  }
  for (int i = 0; i < n; i++)
    for (cl_uint j = 0; j < count; j++)
      if (list[j] == bufs[i]) mem->which[i] = (unsigned char)j;
  const void *locs[DMX_NATIVE_MAX];
  for (cl_uint j = 0; j < count; j++) locs[j] = &mem->base[j];
  bool report = label && dmx_observed(rt);
  cl_event ev = NULL;
  DMX_CL_CHECK(clEnqueueNativeKernel(rt->queue, fn, block, size, count, list, locs, 0, NULL, report ? &ev : NULL));
  if (report) dmx_observe(rt, ev, as, label);
}
