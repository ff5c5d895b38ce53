/* The runtime's life: device choice, context and queue; teardown of everything attached. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "host/runtime/runtime.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The attention implementation each device type gets unless DATAMUX_ATTENTION says otherwise. On
 * PoCL CPUs the GEMM path (host BLAS) measured 3.2x faster than the fused kernels at the quickstart's
 * shapes (README.md, Performance); GPUs keep it too until a GPU measurement says otherwise. */
#define DMX_FUSED_ATTENTION_DEFAULT(info) false

static int placement_rank = 0, placement_size = 1;

void dmx_runtime_set_placement(int local_rank, int local_size) {
  placement_rank = local_rank;
  placement_size = local_size > 0 ? local_size : 1;
  if (placement_size == 1 || getenv("POCL_MAX_PTHREAD_COUNT")) return;
  /* PoCL starts one worker per core it may use: ranks sharing the CPU would each start all of
   * them and fight over the cores. mpirun binds each of two ranks to a core (then the affinity
   * set has one), more to a socket (then it holds the socket's cores) */
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  int allowed = (int)(online > 0 ? online : 1);
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) allowed = CPU_COUNT(&set);
  int share = (int)(online > 0 ? online : 1) / placement_size;
  int threads = share < allowed ? share : allowed;
  if (threads < 1) threads = 1;
  char v[16];
  snprintf(v, sizeof v, "%d", threads);
  if (setenv("POCL_MAX_PTHREAD_COUNT", v, 0) != 0) dmx_die("setenv(POCL_MAX_PTHREAD_COUNT) failed");
}

dmx_runtime *dmx_runtime_create(const char *selector, bool profiling, FILE *log) {
  dmx_device_info *devs;
  int n = dmx_list_devices(&devs);
  if (n == 0)
    dmx_die(
        "no OpenCL device found: install an OpenCL driver (on Debian: apt-get install pocl-opencl-icd "
        "for the CPU, or your GPU vendor's ICD) and check with `clinfo -l`");
  const char *sel = selector && *selector ? selector : getenv("DATAMUX_DEVICE");
  char why[256] = "";
  int idx = dmx_choose_device_for_rank(devs, n, sel, placement_rank, placement_size, why, sizeof why);
  if (idx < 0) {
    fprintf(stderr,
            "%s: no OpenCL device matches '%s' (give INDEX, PLATFORM:INDEX or part of a name%s); the devices "
            "are:\n",
            dmx_program_name(), sel, placement_size > 1 ? ", or a comma-separated list of them, one per local rank" : "");
    dmx_print_devices(stderr, devs, n);
    free(devs);
    dmx_exit(2);
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
