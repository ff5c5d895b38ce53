/* The runtime's life: device choice, context and queue; teardown of everything attached. */
#include "host/runtime/runtime.h"

#include <stdlib.h>
#include <string.h>

/* The attention implementation each device type gets unless DATAMUX_ATTENTION says otherwise. On
 * PoCL CPUs the GEMM path (host BLAS) measured 3.2x faster than the fused kernels at the quickstart's
 * shapes (README.md, Performance); GPUs keep it too until a GPU measurement says otherwise. */
#define DMX_FUSED_ATTENTION_DEFAULT(info) false

dmx_runtime *dmx_runtime_create(const char *selector, bool profiling, FILE *log) {
  dmx_device_info *devs;
  int n = dmx_list_devices(&devs);
  if (n == 0)
    dmx_die(
        "no OpenCL device found: install an OpenCL driver (on Debian: apt-get install pocl-opencl-icd "
        "for the CPU, or your GPU vendor's ICD) and check with `clinfo -l`");
  const char *sel = selector && *selector ? selector : getenv("DATAMUX_DEVICE");
  char why[256] = "";
  int idx = dmx_choose_device(devs, n, sel, why, sizeof why);
  if (idx < 0) {
    fprintf(stderr,
            "datamux: no OpenCL device matches '%s' (give INDEX, PLATFORM:INDEX or part of a name); the devices "
            "are:\n",
            sel);
    dmx_print_devices(stderr, devs, n);
    free(devs);
    exit(2);
  }
  dmx_runtime *rt = dmx_calloc(1, sizeof *rt);
  rt->info = devs[idx];
  free(devs);
  rt->profiling = profiling;
  rt->log = log;
  rt->serial_reductions = dmx_device_is_cpu(&rt->info);
  const char *sr = getenv("DATAMUX_SERIAL_REDUCTIONS");
  if (sr && *sr) {
    if (strcmp(sr, "0") != 0 && strcmp(sr, "1") != 0)
      dmx_die("DATAMUX_SERIAL_REDUCTIONS is '%s': use 1 (a loop per work-item) or 0 (work-group trees)", sr);
    rt->serial_reductions = sr[0] == '1';
  }
  rt->native_loops = dmx_native_available(rt);
  const char *nl = getenv("DATAMUX_NATIVE_LOOPS");
  if (nl && *nl) {
    if (strcmp(nl, "0") != 0 && strcmp(nl, "1") != 0)
      dmx_die("DATAMUX_NATIVE_LOOPS is '%s': use 1 (host loops in native kernels) or 0 (OpenCL kernels)", nl);
    rt->native_loops = nl[0] == '1';
    if (rt->native_loops && !dmx_native_available(rt))
      dmx_die("DATAMUX_NATIVE_LOOPS=1: device '%s' is not a CPU device that runs OpenCL native kernels; unset it",
              rt->info.name);
  }
  rt->fused_attention = DMX_FUSED_ATTENTION_DEFAULT(&rt->info);
  const char *fa = getenv("DATAMUX_ATTENTION");
  if (fa && *fa) {
    if (strcmp(fa, "fused") != 0 && strcmp(fa, "gemm") != 0)
      dmx_die(
          "DATAMUX_ATTENTION is '%s': use fused (one kernel pass, no score matrix) or gemm (two batched GEMMs "
          "around a softmax)",
          fa);
    rt->fused_attention = fa[0] == 'f';
  }
  const char *wc = getenv("DATAMUX_MAX_WORK_GROUP");
  if (wc && *wc) {
    char *end;
    long v = strtol(wc, &end, 10);
    if (*end || v < 1 || v > 1 << 20 || (v & (v - 1)))
      dmx_die("DATAMUX_MAX_WORK_GROUP is '%s': use a power of two from 1 (every kernel's work-group limit is capped "
              "at it, as on a device with small limits)",
              wc);
    rt->wg_cap = (size_t)v;
  }
  cl_int st;
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)rt->info.platform, 0};
  rt->ctx = clCreateContext(props, 1, &rt->info.device, NULL, NULL, &st);
  DMX_CL_CHECK(st);
  rt->queue = clCreateCommandQueue(rt->ctx, rt->info.device, profiling ? CL_QUEUE_PROFILING_ENABLE : 0, &st);
  DMX_CL_CHECK(st);
  if (log) {
    fprintf(log, "device: [%d] %s (%s, %s; %s)\n", idx, rt->info.name, dmx_device_type_name(rt->info.type),
            rt->info.platform_name, why);
    if (rt->wg_cap) fprintf(log, "work-groups capped at %zu work-items (DATAMUX_MAX_WORK_GROUP)\n", rt->wg_cap);
  }
  return rt;
}

void dmx_runtime_destroy(dmx_runtime *rt) {
  if (!rt) return;
  clFinish(rt->queue);
  dmx_observer_set(rt, NULL, NULL);
  dmx_ext_release_all(rt);
  dmx_programs_release(rt);
  clReleaseCommandQueue(rt->queue);
  clReleaseContext(rt->ctx);
  free(rt->created);
  free(rt);
}
