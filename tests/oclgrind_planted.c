/* Two bugs planted on purpose, for the oclgrind label to prove it can fail (CMakeLists.txt runs this
 * under scripts/oclgrind-test.sh --expect ...): a work-group reduction missing its barrier (a local
 * memory data race, the mistake a tree reduction invites) and a write one element past a buffer.
 * On a real device both go unnoticed or give wrong numbers now and then; the program itself checks
 * nothing and exits 0. Not under tests/test_*.c: it is not a test on its own. */
#include <string.h>

#include "host/runtime/runtime.h"

static const char *planted_src =
    "__kernel void racy_sum(__global float *y_, ulong y_off, __global const float *x_, ulong x_off,\n"
    "                       __local float *part) {\n"
    "  int l = get_local_id(0), n = get_local_size(0);\n"
    "  part[l] = x_[x_off + get_global_id(0)];\n"
    "  /* the barrier(CLK_LOCAL_MEM_FENCE) that belongs here is missing */\n"
    "  if (l == 0) {\n"
    "    float s = 0.0f;\n"
    "    for (int i = 0; i < n; i++) s += part[i];\n"
    "    y_[y_off + get_group_id(0)] = s;\n"
    "  }\n"
    "}\n"
    "__kernel void shifted_copy(__global float *y_, ulong y_off, __global const float *x_, ulong x_off) {\n"
    "  size_t i = get_global_id(0);\n"
    "  y_[y_off + i + 1] = x_[x_off + i]; /* the last work-item writes past y */\n"
    "}\n";

int main(void) {
  dmx_runtime *rt = dmx_runtime_create(NULL, false, stdout);
  cl_program prog = dmx_build_program(rt, "planted.cl", planted_src, strlen(planted_src), NULL);
  cl_int st;
  cl_kernel racy = clCreateKernel(prog, "racy_sum", &st);
  DMX_CL_CHECK(st);
  cl_kernel shifted = clCreateKernel(prog, "shifted_copy", &st);
  DMX_CL_CHECK(st);
  enum { N = 64, G = 16 };
  dmx_tensor x = dmx_buffer_create(rt, N), y = dmx_buffer_create(rt, N), sums = dmx_buffer_create(rt, N / G);
  float host[N];
  for (int i = 0; i < N; i++) host[i] = (float)i;
  dmx_upload(rt, x, host, sizeof host);
  size_t g = N, l = G;
  dmx_launch_cl(rt, racy, 1, &g, &l, KA_T(sums), KA_T(x), KA_LOCAL(G * sizeof(float)));
  dmx_launch_cl(rt, shifted, 1, &g, &l, KA_T(y), KA_T(x));
  dmx_finish(rt);
  clReleaseKernel(racy);
  clReleaseKernel(shifted);
  clReleaseProgram(prog);
  dmx_buffer_release(x);
  dmx_buffer_release(y);
  dmx_buffer_release(sums);
  dmx_runtime_destroy(rt);
  return 0;
}
