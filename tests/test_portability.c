/* Portability rules over every cl/ program, on every device of every platform found (README.md,
 * Portability): the sources use OpenCL C 1.2 alone (no printf, no 2.0 built-ins, fp64 and fp16
 * only behind a guard, no size fixed by an attribute); each program builds with -cl-std=CL1.2
 * -Werror and an empty build log; every kernel reports its work-group limit; and a launch beyond a
 * limit stops with a message naming the kernel, rather than running on PoCL and failing on a GPU. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "host/runtime/cl_sources.h"
#include "host/runtime/runtime.h"
#include "tests/harness.h"

/* Identifiers a program must not use unguarded, and why. */
static const struct {
  const char *word, *why;
} banned[] = {
    {"printf", "printf is OpenCL 1.2 but its output order and buffering differ per driver; debug on the host"},
    {"double", "fp64 is optional (cl_khr_fp64): many GPUs lack it"},
    {"half", "fp16 needs cl_khr_fp16"},
    {"reqd_work_group_size", "a fixed work-group size fails where a kernel's limit is lower; launchers derive it"},
    {"get_enqueued_local_size", "OpenCL 2.0 (non-uniform work-groups)"},
    {"work_group_reduce_add", "OpenCL 2.0 work-group built-ins"},
    {"work_group_broadcast", "OpenCL 2.0 work-group built-ins"},
    {"work_group_barrier", "OpenCL 2.0 (barrier() is 1.2)"},
    {"sub_group_reduce_add", "subgroups are an extension / 2.1"},
    {"get_sub_group_size", "subgroups are an extension / 2.1"},
    {"atomic_load", "OpenCL 2.0 C11 atomics"},
    {"atomic_store", "OpenCL 2.0 C11 atomics"},
    {"atomic_fetch_add", "OpenCL 2.0 C11 atomics"},
    {"atomic_add", "atomics make float sums order-dependent; every reduction here is a fixed tree"},
    {"atom_add", "atomics make float sums order-dependent; every reduction here is a fixed tree"},
    {"memory_scope_device", "OpenCL 2.0"},
    {"enqueue_kernel", "OpenCL 2.0 device-side enqueue"},
    {"to_global", "OpenCL 2.0 generic address space"},
    {"__generic", "OpenCL 2.0 generic address space"},
    {"generic", "OpenCL 2.0 generic address space"},
    {"pipe", "OpenCL 2.0 pipes"},
    {"ndrange_t", "OpenCL 2.0 device-side enqueue"},
};

/* src with comments and string literals blanked (newlines kept, so line numbers stay). */
static char *strip_comments(const char *src, size_t len) {
  char *out = malloc(len + 1);
  size_t i = 0;
  while (i < len) {
    if (src[i] == '/' && i + 1 < len && src[i + 1] == '/') {
      while (i < len && src[i] != '\n') out[i++] = ' ';
    } else if (src[i] == '/' && i + 1 < len && src[i + 1] == '*') {
      out[i] = out[i + 1] = ' ';
      i += 2;
      while (i < len && !(src[i] == '*' && i + 1 < len && src[i + 1] == '/')) out[i] = src[i] == '\n' ? '\n' : ' ', i++;
      if (i < len) out[i] = out[i + 1] = ' ', i += 2;
    } else if (src[i] == '"') {
      out[i++] = ' ';
      while (i < len && src[i] != '"') out[i++] = ' ';
      if (i < len) out[i++] = ' ';
    } else {
      out[i] = src[i];
      i++;
    }
  }
  out[len] = 0;
  return out;
}

/* Uses of banned identifiers in one file (whole words, outside comments); an `#if` line naming
 * cl_khr_fp64/fp16 opens a guarded region up to its #endif where double/half are fine. Returns the
 * count and prints each as file:line. */
static int scan_source(const char *name, const char *text, size_t len) {
  char *s = strip_comments(text, len);
  int bad = 0, line = 1, guard_depth = 0, depth = 0;
  bool line_start = true;
  for (char *p = s; *p; p++) {
    if (*p == '\n') {
      line++;
      line_start = true;
      continue;
    }
    if (line_start && *p == '#') {
      char *e = strchr(p, '\n');
      size_t n = e ? (size_t)(e - p) : strlen(p);
      char directive[256];
      snprintf(directive, sizeof directive, "%.*s", (int)(n < 255 ? n : 255), p);
      if (!strncmp(directive, "#if", 3)) {
        depth++;
        if (strstr(directive, "cl_khr_fp64") || strstr(directive, "cl_khr_fp16")) guard_depth = depth;
      } else if (!strncmp(directive, "#endif", 6)) {
        if (depth == guard_depth) guard_depth = 0;
        depth--;
      } else if (!strncmp(directive, "#pragma OPENCL EXTENSION", 24) && !guard_depth) {
        fprintf(stderr, "  cl/%s:%d: '%s' outside an #if on the extension's macro\n", name, line, directive);
        bad++;
      }
      p += n - 1;
      continue;
    }
    if (!isspace((unsigned char)*p)) line_start = false;
    if (isalpha((unsigned char)*p) || *p == '_') {
      char *q = p;
      while (isalnum((unsigned char)*q) || *q == '_') q++;
      bool word_start = p == s || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
      if (word_start)
        for (size_t b = 0; b < sizeof banned / sizeof *banned; b++)
          if (strlen(banned[b].word) == (size_t)(q - p) && !strncmp(p, banned[b].word, (size_t)(q - p)) &&
              !(guard_depth && (!strcmp(banned[b].word, "double") || !strcmp(banned[b].word, "half")))) {
            fprintf(stderr, "  cl/%s:%d: '%s': %s\n", name, line, banned[b].word, banned[b].why);
            bad++;
          }
      p = q - 1;
    }
  }
  free(s);
  return bad;
}

/* Builds every cl/ program for one device in a context of its own; returns the failures. Each
 * kernel's CL_KERNEL_WORK_GROUP_SIZE is read, and its smallest printed. */
static int build_all_on(const dmx_device_info *d, int index) {
  cl_int st;
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)d->platform, 0};
  cl_context ctx = clCreateContext(props, 1, &d->device, NULL, NULL, &st);
  if (st != CL_SUCCESS) {
    fprintf(stderr, "  [%d] %s: clCreateContext failed: %s\n", index, d->name, dmx_cl_status_name(st));
    return 1;
  }
  int bad = 0, kernels = 0;
  size_t min_wg = (size_t)-1;
  char min_name[128] = "";
  for (const dmx_cl_source *c = dmx_cl_sources; c->name; c++) {
    size_t len;
    char *src = dmx_program_source(c->name, &len);
    const char *text = src;
    cl_program prog = clCreateProgramWithSource(ctx, 1, &text, &len, &st);
    DMX_CL_CHECK(st);
    st = clBuildProgram(prog, 1, &d->device, "-cl-std=CL1.2 -Werror", NULL, NULL);
    size_t log_len = 0;
    clGetProgramBuildInfo(prog, d->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_len);
    char *log = calloc(log_len + 1, 1);
    clGetProgramBuildInfo(prog, d->device, CL_PROGRAM_BUILD_LOG, log_len, log, NULL);
    bool log_empty = true;
    for (char *p = log; *p; p++) log_empty &= isspace((unsigned char)*p) != 0;
    if (st != CL_SUCCESS || !log_empty) {
      fprintf(stderr, "  [%d] %s: cl/%s: %s with -cl-std=CL1.2 -Werror; build log:\n%s\n", index, d->name, c->name,
              st == CL_SUCCESS ? "built, with a non-empty log," : dmx_cl_status_name(st), log);
      bad++;
    }
    if (st == CL_SUCCESS) {
      cl_kernel ks[64];
      cl_uint nk = 0;
      DMX_CL_CHECK(clCreateKernelsInProgram(prog, 64, ks, &nk));
      for (cl_uint k = 0; k < nk; k++) {
        size_t wg = 0;
        DMX_CL_CHECK(clGetKernelWorkGroupInfo(ks[k], d->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg, &wg, NULL));
        if (wg == 0) {
          fprintf(stderr, "  [%d] %s: a kernel of cl/%s reports a work-group limit of 0\n", index, d->name, c->name);
          bad++;
        }
        if (wg < min_wg) {
          min_wg = wg;
          DMX_CL_CHECK(clGetKernelInfo(ks[k], CL_KERNEL_FUNCTION_NAME, sizeof min_name, min_name, NULL));
        }
        kernels++;
        clReleaseKernel(ks[k]);
      }
    }
    free(log);
    free(src);
    clReleaseProgram(prog);
  }
  printf("  [%d] %s (%s): every cl/ program built, %d kernels; smallest work-group limit %zu (%s), device %zu\n",
         index, d->name, d->platform_name, kernels, min_wg, min_name, d->max_work_group);
  clReleaseContext(ctx);
  return bad;
}

static dmx_runtime *rt;

/* The child cases run in a process of their own (this program with --child NAME): each must stop
 * the process, and a fork of a process that already holds OpenCL threads cannot be trusted to. */
static void launch_too_wide(void) {
  /* each dimension within the device's limits, their product twice the kernel's; a kernel with a
   * bounds guard, so a launch the check missed would still be harmless */
  size_t lim = dmx_kernel_wg_max(rt, DMX_K_SGD_STEP), g[2] = {lim, 2}, l[2] = {lim, 2};
  dmx_tensor p = dmx_buffer_create(rt, lim), grad = dmx_buffer_create(rt, lim);
  dmx_launch(rt, DMX_K_SGD_STEP, 2, g, l, KA_T(p), KA_T(grad), KA_UL(lim), KA_F(0.1f));
}

static void launch_too_much_local(void) {
  dmx_tensor out = dmx_buffer_create(rt, 4), x = dmx_buffer_create(rt, 4);
  size_t l = 1;
  dmx_launch(rt, DMX_K_REDUCE_SUM_1WG, 1, &l, &l, KA_T(out), KA_T(x), KA_I(4),
             KA_LOCAL((size_t)rt->info.local_mem + 4));
}

static void bad_cap(void) {
  setenv("DATAMUX_MAX_WORK_GROUP", "12", 1);
  dmx_runtime_create(NULL, false, NULL);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--child")) {
    if (!strcmp(argv[2], "bad_cap")) bad_cap();
    rt = dmx_runtime_create(NULL, false, NULL);
    if (!strcmp(argv[2], "too_wide")) launch_too_wide();
    if (!strcmp(argv[2], "too_much_local")) launch_too_much_local();
    dmx_finish(rt);
    return 0; /* the launch went through: the parent reports it */
  }
  th_begin("cl/ uses OpenCL C 1.2 alone: no printf, 2.0 built-ins, atomics or fixed work-group sizes");
  {
    int bad = scan_source("prelude.h", dmx_cl_prelude.text, dmx_cl_prelude.len), files = 0;
    for (const dmx_cl_source *c = dmx_cl_sources; c->name; c++, files++) bad += scan_source(c->name, c->text, c->len);
    CHECKF(bad == 0, "%d uses of features outside portable OpenCL C 1.2 (listed above)", bad);
    CHECK(files >= 10);
    /* the scanner itself: a planted use in code is found, the same words in comments are not */
    const char *planted = "/* printf double */\nkernel void k(global float *x) { printf(\"%f\", x[0]); }\n"
                          "#ifdef cl_khr_fp64\n#pragma OPENCL EXTENSION cl_khr_fp64 : enable\ndouble y;\n#endif\n"
                          "#pragma OPENCL EXTENSION cl_khr_fp16 : enable\n";
    fprintf(stderr, "  (the scanner on a planted file; two findings expected:)\n");
    CHECKF(scan_source("planted.cl", planted, strlen(planted)) == 2, "the scanner misses or invents findings");
  }
  th_end();

  th_begin("every cl/ program builds with -cl-std=CL1.2 -Werror and an empty log on every device found");
  {
    dmx_device_info *devs;
    int n = dmx_list_devices(&devs), bad = 0;
    CHECK(n >= 1);
    for (int i = 0; i < n; i++) bad += build_all_on(&devs[i], i);
    CHECKF(bad == 0, "%d program builds failed or warned (above)", bad);
    free(devs);
  }
  th_end();

  rt = dmx_runtime_create(NULL, false, stdout);

  th_begin("kernel limits: read once per kernel, capped by the device, used by dmx_local_pow2");
  {
    size_t lim = dmx_kernel_wg_max(rt, DMX_K_LAYERNORM_FWD), q = 0;
    cl_kernel k = dmx_kernel(rt, DMX_K_LAYERNORM_FWD);
    DMX_CL_CHECK(clGetKernelWorkGroupInfo(k, rt->info.device, CL_KERNEL_WORK_GROUP_SIZE, sizeof q, &q, NULL));
    CHECKF(lim == (q < rt->info.max_work_group ? q : rt->info.max_work_group), "limit %zu, query %zu", lim, q);
    CHECK(dmx_local_pow2(rt, DMX_K_LAYERNORM_FWD, 0, 100, 1) == (lim >= 64 ? 64 : lim));
    CHECK(dmx_local_pow2(rt, DMX_K_LAYERNORM_FWD, 0, 1, 1) == 1);
    CHECK(dmx_local_pow2(rt, DMX_K_LAYERNORM_FWD, 1, lim, lim) == 1); /* the other dimensions take it all */
    size_t two = dmx_local_pow2(rt, DMX_K_LAYERNORM_FWD, 1, 1 << 20, 16), want = 1;
    while (want * 2 <= lim / 16 && want * 2 <= rt->info.max_item_size[1]) want *= 2;
    CHECKF(two == want, "dimension 1 beside 16: %zu, not %zu (limit %zu)", two, want, lim);
    CHECK(dmx_kernel_local_mem_max(rt, DMX_K_LAYERNORM_FWD) <= rt->info.local_mem);
  }
  th_end();

  th_begin("a launch above a kernel's work-group or local memory limit stops, naming kernel and call site");
  {
    char err[4096], cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' --child too_wide", argv[0]);
    int rc = th_run(cmd, err, sizeof err);
    CHECKF(rc != 0 && strstr(err, "sgd_step") && strstr(err, "above its limit") && strstr(err, "test_portability.c"),
           "exit %d, stderr: %s", rc, err);
    snprintf(cmd, sizeof cmd, "'%s' --child too_much_local", argv[0]);
    rc = th_run(cmd, err, sizeof err);
    CHECKF(rc != 0 && strstr(err, "reduce_sum_1wg") && strstr(err, "local memory"), "exit %d, stderr: %s", rc, err);
    snprintf(cmd, sizeof cmd, "'%s' --child bad_cap", argv[0]);
    rc = th_run(cmd, err, sizeof err);
    CHECKF(rc != 0 && strstr(err, "DATAMUX_MAX_WORK_GROUP is '12'"), "exit %d, stderr: %s", rc, err);
  }
  th_end();

  dmx_runtime_destroy(rt);
  return th_finish();
}
