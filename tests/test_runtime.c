/* Runtime: device listing, program build and the binary cache (proved with counters, not timing),
 * recovery from corrupt cache files, kernel launches with offsets, arena alignment and splitting. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/runtime/cl_sources.h"
#include "host/runtime/runtime.h"
#include "tests/harness.h"

static const char *probe_src =
    "__kernel void twice(__global float *y_, ulong y_off, __global const float *x_, ulong x_off, int n) {\n"
    "  int i = get_global_id(0); if (i >= n) return;\n"
    "  y_[y_off + i] = 2.0f * x_[x_off + i];\n"
    "}\n";

static char cache_root[256];

static dmx_device_info fake(const char *plat, int plat_idx, int idx, const char *name, cl_device_type type) {
  dmx_device_info d;
  memset(&d, 0, sizeof d);
  snprintf(d.platform_name, sizeof d.platform_name, "%s", plat);
  snprintf(d.name, sizeof d.name, "%s", name);
  d.platform_index = plat_idx;
  d.index_in_platform = idx;
  d.type = type;
  return d;
}

/* dmx_choose_device on a made-up machine: Oclgrind listed first (as the ICD loader does here), two
 * PoCL devices, then an NVIDIA GPU. */
static void check_device_choice(void) {
  const cl_device_type all = CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_CPU | CL_DEVICE_TYPE_ACCELERATOR;
  dmx_device_info d[4] = {fake("Oclgrind", 0, 0, "Oclgrind Simulator", all),
                          fake("Portable Computing Language", 1, 0, "pthread-cpu", CL_DEVICE_TYPE_CPU),
                          fake("Portable Computing Language", 1, 1, "basic-cpu", CL_DEVICE_TYPE_CPU),
                          fake("NVIDIA CUDA", 2, 0, "NVIDIA H200", CL_DEVICE_TYPE_GPU)};
  char why[256];
  CHECKF(dmx_choose_device(d, 4, NULL, why, sizeof why) == 3, "default is the real GPU, not the simulator (%s)", why);
  CHECKF(dmx_choose_device(d, 3, NULL, why, sizeof why) == 1, "no GPU: the first non-simulator (%s)", why);
  CHECK(dmx_choose_device(d, 1, NULL, why, sizeof why) == 0); /* only a simulator: it is all there is */
  CHECK(dmx_choose_device(d, 4, "oclgrind", why, sizeof why) == 0);
  CHECK(dmx_choose_device(d, 4, "oclgrind:0", why, sizeof why) == 0);
  CHECK(dmx_choose_device(d, 4, "pocl:0", why, sizeof why) == -1); /* "pocl" is in none of these names */
  CHECK(dmx_choose_device(d, 4, "portable:0", why, sizeof why) == 1);
  CHECKF(dmx_choose_device(d, 4, "Portable:1", why, sizeof why) == 2, "PLATFORM:INDEX counts in the platform (%s)", why);
  CHECK(dmx_choose_device(d, 4, "portable:2", why, sizeof why) == -1);
  CHECK(dmx_choose_device(d, 4, "nvidia:0", why, sizeof why) == 3);
  CHECK(dmx_choose_device(d, 4, "2", why, sizeof why) == 2);
  CHECK(dmx_choose_device(d, 4, "4", why, sizeof why) == -1);
  CHECK(dmx_choose_device(d, 4, "basic", why, sizeof why) == 2);
  CHECKF(dmx_choose_device(d, 4, "cpu", why, sizeof why) == 1 && strstr(why, "2 matches"), "%s", why);
  CHECK(dmx_choose_device(d, 4, "amd", why, sizeof why) == -1);
  snprintf(d[1].platform_version, sizeof d[1].platform_version, "OpenCL 3.0 PoCL 3.1");
  CHECK(dmx_choose_device(d, 4, "pocl:0", why, sizeof why) == 1); /* PoCL names itself in its version */
}

/* dmx_choose_device_for_rank: the device of each rank of a data-parallel job on one host. */
static void rank_devices(void) {
  cl_device_type all = CL_DEVICE_TYPE_CPU | CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_ACCELERATOR;
  dmx_device_info d[5] = {fake("Oclgrind", 0, 0, "Oclgrind Simulator", all),
                          fake("PoCL", 1, 0, "pthread-cpu", CL_DEVICE_TYPE_CPU),
                          fake("NVIDIA CUDA", 2, 0, "NVIDIA H200", CL_DEVICE_TYPE_GPU),
                          fake("NVIDIA CUDA", 2, 1, "NVIDIA H200", CL_DEVICE_TYPE_GPU),
                          fake("NVIDIA CUDA", 2, 2, "NVIDIA H200", CL_DEVICE_TYPE_GPU)};
  char why[256];
  /* no selector: GPU local_rank modulo the GPUs, the simulator never counted */
  for (int r = 0; r < 4; r++) {
    int got = dmx_choose_device_for_rank(d, 5, NULL, r, 4, why, sizeof why);
    CHECKF(got == 2 + r % 3, "local rank %d of 4 got device %d, not %d (%s)", r, got, 2 + r % 3, why);
  }
  CHECKF(strstr(why, "some share one"), "4 ranks on 3 GPUs is said: %s", why);
  /* no GPU: every rank shares the CPU */
  CHECKF(dmx_choose_device_for_rank(d, 2, NULL, 1, 2, why, sizeof why) == 1 && strstr(why, "shared by the 2 ranks"),
         "%s", why);
  /* a list: entry local_rank modulo its length, each entry any selector */
  CHECK(dmx_choose_device_for_rank(d, 5, "nvidia:2,pocl:0", 0, 2, why, sizeof why) == 4);
  CHECKF(dmx_choose_device_for_rank(d, 5, "nvidia:2,pocl:0", 1, 2, why, sizeof why) == 1 && strstr(why, "entry 1"),
         "%s", why);
  CHECK(dmx_choose_device_for_rank(d, 5, "nvidia:2,pocl:0", 2, 3, why, sizeof why) == 4);
  CHECK(dmx_choose_device_for_rank(d, 5, "3,nosuch", 1, 2, why, sizeof why) == -1);
  CHECK(dmx_choose_device_for_rank(d, 5, "3,", 1, 2, why, sizeof why) == -1); /* an empty entry matches nothing */
  /* one selector: the same device for all; one rank: dmx_choose_device itself */
  CHECK(dmx_choose_device_for_rank(d, 5, "nvidia:1", 1, 2, why, sizeof why) == 3);
  CHECK(dmx_choose_device_for_rank(d, 5, NULL, 3, 1, why, sizeof why) == 2);
}

static void run_twice(dmx_runtime *rt, cl_program prog, const char *what) {
  cl_int st;
  cl_kernel k = clCreateKernel(prog, "twice", &st);
  CHECK(st == CL_SUCCESS);
  dmx_tensor buf = dmx_buffer_create(rt, 64);
  float host[64];
  for (int i = 0; i < 64; i++) host[i] = (float)i;
  dmx_upload(rt, buf, host, sizeof host);
  dmx_tensor x = buf, y = buf;
  x.off = 0;
  y.off = 32;
  size_t g = 20;
  dmx_launch_cl(rt, k, 1, &g, NULL, KA_T(y), KA_T(x), KA_I(20));
  dmx_download(rt, host, buf, sizeof host);
  int bad = 0;
  for (int i = 0; i < 20; i++) bad += host[32 + i] != 2.0f * (float)i;
  for (int i = 20; i < 32; i++) bad += host[32 + i] != (float)(32 + i); /* untouched past n */
  CHECKF(bad == 0, "%s: kernel from this program computed %d wrong values", what, bad);
  clReleaseKernel(k);
  dmx_buffer_release(buf);
}

static void corrupt_cache_files(int mode) {
  char cmd[512];
  if (mode == 0) /* flip bytes in the middle of the binary */
    snprintf(cmd, sizeof cmd,
             "for f in %s/datamux/programs/*.bin; do printf 'garbage!' | dd of=$f bs=1 seek=100 conv=notrunc "
             "status=none; done",
             cache_root);
  else /* truncate */
    snprintf(cmd, sizeof cmd, "for f in %s/datamux/programs/*.bin; do truncate -s 20 $f; done", cache_root);
  char out[256];
  CHECK(th_run(cmd, out, sizeof out) == 0);
}

int main(void) {
  snprintf(cache_root, sizeof cache_root, "/tmp/datamux-test-cache-%ld", (long)getpid());
  setenv("XDG_CACHE_HOME", cache_root, 1);
  unsetenv("DATAMUX_NO_CACHE");

  th_begin("device listing finds an OpenCL device with its properties");
  dmx_device_info *devs;
  int n = dmx_list_devices(&devs);
  CHECK(n >= 1);
  if (n >= 1) {
    CHECK(strlen(devs[0].name) > 0);
    CHECK(devs[0].global_mem > 0 && devs[0].max_alloc > 0 && devs[0].compute_units > 0);
    CHECK(strstr(devs[0].opencl_c_version, "OpenCL C") != NULL);
  }
  free(devs);
  th_end();

  th_begin("device choice: INDEX, PLATFORM:INDEX, NAME; a simulator never by default");
  check_device_choice();
  th_end();

  th_begin("device choice per rank: GPU local rank modulo the GPUs, a shared CPU, a --device list");
  rank_devices();
  th_end();

  dmx_runtime *rt = dmx_runtime_create(NULL, false, stdout);

  th_begin("first build compiles from source and writes the cache");
  cl_program p1 = dmx_build_program(rt, "probe.cl", probe_src, strlen(probe_src), NULL);
  CHECK(rt->stat_source_builds == 1 && rt->stat_cache_writes == 1 && rt->stat_cache_hits == 0);
  run_twice(rt, p1, "source build");
  clReleaseProgram(p1);
  th_end();

  th_begin("second build of the same source is a cache hit");
  cl_program p2 = dmx_build_program(rt, "probe.cl", probe_src, strlen(probe_src), NULL);
  CHECK(rt->stat_source_builds == 1 && rt->stat_cache_hits == 1);
  run_twice(rt, p2, "cached binary");
  clReleaseProgram(p2);
  th_end();

  th_begin("other build options are a different cache entry");
  cl_program p3 = dmx_build_program(rt, "probe.cl", probe_src, strlen(probe_src), "-cl-std=CL1.2 -DVARIANT=1");
  CHECK(rt->stat_source_builds == 2 && rt->stat_cache_hits == 1);
  clReleaseProgram(p3);
  th_end();

  for (int mode = 0; mode < 2; mode++) {
    th_begin(mode == 0 ? "a corrupted cache file falls back to a source build and is rewritten"
                       : "a truncated cache file falls back to a source build and is rewritten");
    corrupt_cache_files(mode);
    int builds = rt->stat_source_builds, rejects = rt->stat_cache_rejects, hits = rt->stat_cache_hits;
    cl_program p = dmx_build_program(rt, "probe.cl", probe_src, strlen(probe_src), NULL);
    CHECK(rt->stat_cache_rejects == rejects + 1);
    CHECK(rt->stat_source_builds == builds + 1);
    run_twice(rt, p, "rebuilt program");
    clReleaseProgram(p);
    p = dmx_build_program(rt, "probe.cl", probe_src, strlen(probe_src), NULL);
    CHECK(rt->stat_cache_hits == hits + 1); /* the rewritten entry is good again */
    clReleaseProgram(p);
    th_end();
  }

  th_begin("DATAMUX_NO_CACHE=1 builds from source and writes nothing");
  setenv("DATAMUX_NO_CACHE", "1", 1);
  int writes = rt->stat_cache_writes, builds = rt->stat_source_builds;
  cl_program p4 = dmx_build_program(rt, "probe.cl", probe_src, strlen(probe_src), NULL);
  CHECK(rt->stat_source_builds == builds + 1 && rt->stat_cache_writes == writes);
  clReleaseProgram(p4);
  unsetenv("DATAMUX_NO_CACHE");
  th_end();

  th_begin("host/runtime/kernels.def lists exactly the kernels of every cl/ program");
  {
    int listed = 0, missing = 0, unlisted = 0;
    for (const dmx_cl_source *src = dmx_cl_sources; src->name; src++) {
      char names[8192] = "";
      DMX_CL_CHECK(clGetProgramInfo(dmx_program_of(rt, src->name), CL_PROGRAM_KERNEL_NAMES, sizeof names, names, NULL));
      /* every kernel the program has must have a handle naming this file */
      for (char *tok = strtok(names, ";"); tok; tok = strtok(NULL, ";")) {
        bool found = false;
        for (int k = 0; k < DMX_KERNEL_COUNT; k++)
          found |=
              !strcmp(dmx_kernel_name((dmx_kernel_id)k), tok) && !strcmp(dmx_kernel_file((dmx_kernel_id)k), src->name);
        if (!found) fprintf(stderr, "  cl/%s: kernel %s has no handle in kernels.def\n", src->name, tok), unlisted++;
      }
    }
    for (int k = 0; k < DMX_KERNEL_COUNT; k++) {
      cl_int st;
      cl_kernel kk =
          clCreateKernel(dmx_program_of(rt, dmx_kernel_file((dmx_kernel_id)k)), dmx_kernel_name((dmx_kernel_id)k), &st);
      if (st != CL_SUCCESS)
        fprintf(stderr, "  kernels.def: %s not in cl/%s\n", dmx_kernel_name((dmx_kernel_id)k),
                dmx_kernel_file((dmx_kernel_id)k)),
            missing++;
      else
        clReleaseKernel(kk), listed++;
    }
    CHECK(listed == DMX_KERNEL_COUNT && missing == 0 && unlisted == 0);
  }
  th_end();

  th_begin("embedded kernels are created once and launch with tensor offsets");
  cl_kernel k1 = dmx_kernel(rt, DMX_K_SCALE_ADD);
  cl_kernel k2 = dmx_kernel(rt, DMX_K_SCALE_ADD);
  CHECK(k1 != NULL && k1 == k2 && rt->kernels[DMX_K_SCALE_ADD] == k1);
  dmx_tensor buf = dmx_buffer_create(rt, 100);
  float h[100];
  for (int i = 0; i < 100; i++) h[i] = (float)i;
  dmx_upload(rt, buf, h, sizeof h);
  dmx_tensor y = {buf.buf, 50, 10}, x = {buf.buf, 3, 10};
  size_t g = 10, l = 4; /* global rounds up to 12: the kernel must guard */
  dmx_launch(rt, DMX_K_SCALE_ADD, 1, &g, &l, KA_T(y), KA_T(x), KA_F(0.5f), KA_I(10));
  dmx_download(rt, h, buf, sizeof h);
  int bad = 0;
  for (int i = 0; i < 10; i++) bad += h[50 + i] != (float)(50 + i) + 0.5f * (float)(3 + i);
  bad += h[60] != 60.0f || h[61] != 61.0f;
  CHECK(bad == 0);
  dmx_buffer_release(buf);
  th_end();

  th_begin("arena: aligned offsets, one buffer when it fits, round trip through tensors");
  dmx_arena a;
  dmx_arena_init(&a, rt, "test");
  dmx_tensor t[5];
  size_t sizes[5] = {1, 33, 64, 7, 1000};
  for (int i = 0; i < 5; i++) dmx_arena_add(&a, &t[i], sizes[i]);
  dmx_error err;
  CHECK(dmx_arena_commit(&a, &err) == 0);
  CHECK(a.n_buffers == 1);
  for (int i = 0; i < 5; i++) {
    CHECK(t[i].off % DMX_ALIGN == 0);
    CHECK(t[i].buf == a.bufs[0]);
    CHECK(t[i].n == sizes[i]);
    if (i) CHECK(t[i].off >= t[i - 1].off + sizes[i - 1]);
  }
  float src[1000], dst[1000];
  for (int i = 0; i < 1000; i++) src[i] = (float)i * 0.25f;
  dmx_arena_zero(&a);
  dmx_upload(rt, t[4], src, sizeof src);
  dmx_upload(rt, t[1], src, 33 * sizeof(float));
  dmx_download(rt, dst, t[4], sizeof dst);
  CHECK(memcmp(src, dst, sizeof src) == 0);
  dmx_download(rt, dst, t[3], 7 * sizeof(float));
  bad = 0;
  for (int i = 0; i < 7; i++) bad += dst[i] != 0.0f;
  CHECK(bad == 0);
  dmx_arena_release(&a);
  th_end();

  th_begin("arena: splits into several buffers at the max allocation, no tensor straddles");
  dmx_arena_init(&a, rt, "split");
  a.max_floats_per_buffer = 256; /* pretend the device allows 1 KiB per buffer */
  dmx_tensor s[6];
  for (int i = 0; i < 6; i++) dmx_arena_add(&a, &s[i], 100);
  CHECK(dmx_arena_commit(&a, &err) == 0);
  CHECK(a.n_buffers == 3);
  for (int i = 0; i < 6; i++) CHECK(s[i].off + 100 <= 256);
  CHECK(s[0].buf == s[1].buf && s[1].buf != s[2].buf && s[2].buf == s[3].buf && s[4].buf != s[3].buf);
  for (int i = 0; i < 6; i++) {
    float v[100];
    for (int j = 0; j < 100; j++) v[j] = (float)(i * 1000 + j);
    dmx_upload(rt, s[i], v, sizeof v);
  }
  bad = 0;
  for (int i = 0; i < 6; i++) {
    float v[100];
    dmx_download(rt, v, s[i], sizeof v);
    for (int j = 0; j < 100; j++) bad += v[j] != (float)(i * 1000 + j);
  }
  CHECK(bad == 0);
  dmx_arena_release(&a);
  th_end();

  th_begin("arena: a model that does not fit names the bytes needed and available");
  dmx_arena_init(&a, rt, "huge");
  dmx_tensor big[64];
  size_t chunk = a.max_floats_per_buffer / 2;
  size_t want = (size_t)(rt->info.global_mem / sizeof(float)) * 2;
  int added = 0;
  for (size_t total = 0; total < want && added < 64; total += chunk) dmx_arena_add(&a, &big[added++], chunk);
  CHECK(dmx_arena_commit(&a, &err) != 0);
  CHECKF(strstr(err.msg, "MiB") && strstr(err.msg, "needs") && strstr(err.msg, "huge"), "message: %s", err.msg);
  dmx_arena_release(&a);
  th_end();

  dmx_runtime_destroy(rt);
  char cmd[512], out[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", cache_root);
  th_run(cmd, out, sizeof out);
  return th_finish();
}
