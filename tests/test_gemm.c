/* GEMM backends (CLBlast, host BLAS in native kernels) against a naive double-accumulation
 * reference: every transposition combination, odd shapes and the model's shapes, plain and
 * strided-batched, operands at non-zero offsets and in buffers made in every order; the backend
 * choice and its refusals;
 * tuned parameters from a tuner JSON file reach the kernel that runs and keep results right. */
#include <clblast_c.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/runtime/gemm.h"
#include "host/base/json.h"
#include "tests/harness.h"

/* Where the operands live: all in one buffer, or A, B and C each in its own buffer, the three
 * created in the order `order` names (e.g. "CAB": C's buffer first). The host-BLAS backend must get
 * every pointer right whatever the creation order (PoCL sorts a native kernel's buffers by it). */
typedef struct {
  bool separate;
  const char *order;
} placement;
static const placement ONE_BUFFER = {false, "ABC"};

/* Checks C against the reference with the standard forward-error bound of a dot product:
 * |err| <= c * k * eps * sum|a||b|, with a generous constant for blocked summation. */
static bool check_gemm_at(dmx_runtime *rt, placement pl, bool ta, bool tb, size_t m, size_t n, size_t k, size_t batch,
                          float alpha, float beta) {
  size_t lda = ta ? m + 1 : k + 2, ldb = tb ? k + 3 : n + 1, ldc = n + 2; /* padded strides */
  size_t arows = ta ? k : m, brows = tb ? n : k;
  size_t sa = arows * lda + 5, sb = brows * ldb + 3, sc = m * ldc + 1; /* batch strides with gaps */
  size_t offa = 7, offb = 3, offc = 11;
  /* the three regions of one index space: [0, end_a) holds A, [end_a, end_b) B, [end_b, total) C */
  size_t end_a = offa + batch * sa, end_b = end_a + offb + batch * sb;
  size_t total = end_b + offc + batch * sc;
  size_t region_start[3] = {0, end_a, end_b}, region_end[3] = {end_a, end_b, total};
  float *h = malloc(total * sizeof(float));
  for (size_t i = 0; i < total; i++) h[i] = th_frand();
  /* global positions, for the reference */
  size_t A_off = offa, B_off = end_a + offb, C_off = end_b + offc;
  dmx_tensor bufs[3] = {{0}}, ops[3];
  if (!pl.separate) {
    bufs[0] = dmx_buffer_create(rt, total);
    dmx_upload(rt, bufs[0], h, total * sizeof(float));
    ops[0] = (dmx_tensor){bufs[0].buf, A_off, 0};
    ops[1] = (dmx_tensor){bufs[0].buf, B_off, 0};
    ops[2] = (dmx_tensor){bufs[0].buf, C_off, 0};
  } else {
    for (int i = 0; i < 3; i++) {
      int r = pl.order[i] - 'A';
      bufs[r] = dmx_buffer_create(rt, region_end[r] - region_start[r]);
      dmx_upload(rt, bufs[r], h + region_start[r], (region_end[r] - region_start[r]) * sizeof(float));
    }
    ops[0] = (dmx_tensor){bufs[0].buf, offa, 0};
    ops[1] = (dmx_tensor){bufs[1].buf, offb, 0};
    ops[2] = (dmx_tensor){bufs[2].buf, offc, 0};
  }
  if (batch == 1)
    dmx_gemm(rt, ta, tb, m, n, k, alpha, ops[0], lda, ops[1], ldb, beta, ops[2], ldc);
  else
    dmx_gemm_batched(rt, ta, tb, m, n, k, alpha, ops[0], lda, sa, ops[1], ldb, sb, beta, ops[2], ldc, sc, batch);
  float *got = malloc(total * sizeof(float));
  if (!pl.separate) {
    dmx_download(rt, got, bufs[0], total * sizeof(float));
  } else {
    for (int r = 0; r < 3; r++)
      dmx_download(rt, got + region_start[r], bufs[r], (region_end[r] - region_start[r]) * sizeof(float));
  }
  int bad = 0;
  double worst = 0;
  for (size_t b = 0; b < batch; b++)
    for (size_t i = 0; i < m; i++)
      for (size_t j = 0; j < n; j++) {
        double acc = 0, mag = 0;
        for (size_t p = 0; p < k; p++) {
          double av = h[A_off + b * sa + (ta ? p * lda + i : i * lda + p)];
          double bv = h[B_off + b * sb + (tb ? j * ldb + p : p * ldb + j)];
          acc += av * bv;
          mag += fabs(av * bv);
        }
        size_t ci = C_off + b * sc + i * ldc + j;
        double want = alpha * acc + beta * h[ci];
        double tol = 8.0 * (double)(k + 2) * 1.2e-7 * (fabs(alpha) * mag + fabs(beta * h[ci])) + 1e-30;
        double e = fabs(got[ci] - want);
        if (e / tol > worst) worst = e / tol;
        if (!(e <= tol)) bad++;
      }
  /* everything outside C must be untouched (padding columns included) */
  int clobbered = 0;
  for (size_t i = 0; i < C_off; i++) clobbered += got[i] != h[i];
  for (size_t b = 0; b < batch; b++)
    for (size_t i = 0; i < m; i++)
      for (size_t j = n; j < ldc && C_off + b * sc + i * ldc + j < total; j++) {
        size_t ci = C_off + b * sc + i * ldc + j;
        clobbered += got[ci] != h[ci];
      }
  CHECKF(bad == 0 && clobbered == 0,
         "%s%s m=%zu n=%zu k=%zu batch=%zu (%s%s): %d wrong (worst %.2f of the bound), %d values outside C changed",
         ta ? "T" : "N", tb ? "T" : "N", m, n, k, batch, pl.separate ? "buffers made in order " : "one buffer",
         pl.separate ? pl.order : "", bad, worst, clobbered);
  free(h);
  free(got);
  for (int r = 0; r < 3; r++)
    if (bufs[r].buf) dmx_buffer_release(bufs[r]);
  return bad == 0 && clobbered == 0;
}

static bool check_gemm_case(dmx_runtime *rt, bool ta, bool tb, size_t m, size_t n, size_t k, size_t batch, float alpha,
                            float beta) {
  return check_gemm_at(rt, ONE_BUFFER, ta, tb, m, n, k, batch, alpha, beta);
}

/* The shape sets every backend runs. */
static void check_backend(dmx_runtime *rt, const char *name) {
  char title[160];
  /* (m, n, k): odd sizes, skinny shapes, and the model's shapes for a tiny config
   * (B*L' rows = 4*67, d = 64, 3d QKV, FFN 128) and attention (L' x L' x head dim). */
  static const size_t shapes[][3] = {{1, 1, 1},      {7, 5, 3},      {33, 17, 65}, {268, 192, 64},
                                     {268, 64, 128}, {64, 128, 268}, {67, 67, 32}, {2, 50265 / 97, 64}};
  snprintf(title, sizeof title, "%s: plain SGEMM, every transposition, odd and model shapes, alpha/beta, offsets",
           name);
  th_begin(title);
  for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
    for (int t = 0; t < 4; t++)
      check_gemm_case(rt, t & 1, t & 2, shapes[s][0], shapes[s][1], shapes[s][2], 1, 1.0f, 0.0f);
  check_gemm_case(rt, false, true, 33, 17, 65, 1, 0.5f, 1.0f);
  check_gemm_case(rt, true, false, 64, 96, 130, 1, -1.0f, 0.25f);
  th_end();

  snprintf(title, sizeof title, "%s: strided-batched SGEMM, every transposition, attention shapes", name);
  th_begin(title);
  static const size_t bshapes[][4] = {{67, 67, 32, 8}, {67, 32, 67, 8}, {5, 3, 7, 3}, {131, 131, 64, 2}};
  for (size_t s = 0; s < sizeof bshapes / sizeof *bshapes; s++)
    for (int t = 0; t < 4; t++)
      check_gemm_case(rt, t & 1, t & 2, bshapes[s][0], bshapes[s][1], bshapes[s][2], bshapes[s][3], 0.125f, 0.0f);
  th_end();

  snprintf(title, sizeof title, "%s: operands in three buffers made in every order, plain and batched", name);
  th_begin(title);
  static const char *orders[] = {"ABC", "ACB", "BAC", "BCA", "CAB", "CBA"};
  for (int o = 0; o < 6; o++) {
    placement pl = {true, orders[o]};
    check_gemm_at(rt, pl, o & 1, o & 2, 33, 17, 65, 1, 1.0f, 0.5f);
    check_gemm_at(rt, pl, o & 2, o & 1, 67, 32, 67, 3, 0.125f, 0.0f);
  }
  th_end();
}

int main(void) {
  th_seed(88172645463325252ULL);
  dmx_runtime *rt = dmx_runtime_create(NULL, false, stdout);

  dmx_error err;
  /* a run with one backend forced (make test's second pass) tests only that one */
  char forced[32] = "";
  if (getenv("DATAMUX_GEMM_BACKEND")) snprintf(forced, sizeof forced, "%s", getenv("DATAMUX_GEMM_BACKEND"));
  th_begin("host_blas is chosen where it can run, and refused clearly where it cannot");
  {
    const char *why;
    dmx_gemm_backend want = dmx_gemm_auto_backend(&rt->info, &why);
    bool cpu_native = dmx_device_is_cpu(&rt->info) && rt->info.native_kernels && dmx_host_blas_built();
    CHECKF(want == (cpu_native ? DMX_GEMM_HOST_BLAS : DMX_GEMM_CLBLAST), "auto gives %s (%s)",
           dmx_gemm_backend_names[want], why);
    /* a device without native kernels, as an NVIDIA GPU reports itself */
    dmx_device_info saved = rt->info;
    rt->info.native_kernels = false;
    unsetenv("DATAMUX_GEMM_BACKEND");
    CHECK(dmx_gemm_select(rt, DMX_GEMM_HOST_BLAS, "exp.yaml:3:1:", &err) == -1);
    CHECKF(strstr(err.msg, "exp.yaml:3:1: gemm_backend: host_blas") && strstr(err.msg, rt->info.name) &&
               strstr(err.msg, "native kernels"),
           "message: %s", err.msg);
    rt->info = saved;
    setenv("DATAMUX_GEMM_BACKEND", "openblas", 1);
    CHECK(dmx_gemm_select(rt, DMX_GEMM_AUTO, NULL, &err) == -1);
    CHECKF(strstr(err.msg, "DATAMUX_GEMM_BACKEND is 'openblas'"), "message: %s", err.msg);
    if (*forced)
      setenv("DATAMUX_GEMM_BACKEND", forced, 1);
    else
      unsetenv("DATAMUX_GEMM_BACKEND");
  }
  th_end();

  for (int b = DMX_GEMM_CLBLAST; b <= DMX_GEMM_HOST_BLAS; b++) {
    if (b == DMX_GEMM_HOST_BLAS && dmx_gemm_auto_backend(&rt->info, &(const char *){0}) != DMX_GEMM_HOST_BLAS) {
      printf("skip host_blas: this device or build cannot run it\n");
      continue;
    }
    if (*forced && strcmp(forced, "auto") && strcmp(forced, dmx_gemm_backend_names[b])) continue;
    CHECK(dmx_gemm_use(rt, (dmx_gemm_backend)b, &err) == 0);
    check_backend(rt, dmx_gemm_backend_names[b]);
  }

  CHECK(dmx_gemm_use(rt, DMX_GEMM_CLBLAST, &err) == 0);
  th_begin("tuned parameters from a tuner JSON file change the kernel that runs and stay correct");
  {
    char dir[128], path[600];
    snprintf(dir, sizeof dir, "/tmp/datamux-tune-%ld", (long)getpid());
    CHECK(dmx_mkdirs(dir, &err) == 0);
    snprintf(path, sizeof path, "%s/bad.json", dir);
    /* 128x128 threads per work-group exceeds every device's limit: if the override reaches the
     * kernel, the next small (direct-path) GEMM must fail; if it were ignored it would succeed. */
    const char *bad_json =
        "{\n  \"kernel_family\": \"xgemm_direct_1\",\n  \"precision\": \"32\",\n  \"best_kernel\": \"XgemmDirectTN\",\n"
        "  \"best_parameters\": \"KWID=2 MDIMAD=128 MDIMCD=128 NDIMBD=128 NDIMCD=128 PADA=1 PADB=1 PRECISION=32 "
        "VWMD=1 VWND=1 WGD=128\"\n}\n";
    CHECK(dmx_write_file_atomic(path, bad_json, strlen(bad_json), &err) == 0);
    CHECK(dmx_gemm_apply_tuning_file(rt, path, &err) == 1);
    dmx_tensor buf = dmx_buffer_create(rt, 3 * 64);
    dmx_fill(rt, buf, 1.0f);
    dmx_tensor A = buf, B = buf, C = buf;
    B.off = 64;
    C.off = 128;
    CLBlastStatusCode st = CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, 8, 8, 8, 1.0f,
                                        A.buf, A.off, 8, B.buf, B.off, 8, 0.0f, C.buf, C.off, 8, &rt->queue, NULL);
    CHECKF(st != CLBlastSuccess, "the impossible override was not applied (status %d)", (int)st);
    dmx_finish(rt);
    dmx_buffer_release(buf);
    /* A valid, non-default parameter set, loaded through the directory scan as at start-up. */
    const char *good_json =
        "{\n  \"kernel_family\": \"xgemm_direct_1\",\n  \"precision\": \"32\",\n  \"best_kernel\": \"XgemmDirectTN\",\n"
        "  \"best_parameters\": \"KWID=2 MDIMAD=8 MDIMCD=8 NDIMBD=8 NDIMCD=8 PADA=1 PADB=1 PRECISION=32 VWMD=2 "
        "VWND=2 WGD=16\"\n}\n";
    char devdir[400], sub[64];
    dmx_device_folder_name(rt->info.name, sub, sizeof sub);
    snprintf(devdir, sizeof devdir, "%s/%s", dir, sub);
    CHECK(dmx_mkdirs(devdir, &err) == 0);
    snprintf(path, sizeof path, "%s/xgemm_direct.json", devdir);
    CHECK(dmx_write_file_atomic(path, good_json, strlen(good_json), &err) == 0);
    CHECK(dmx_gemm_load_tuning(rt, dir, &err) == 1);
    check_gemm_case(rt, false, false, 7, 5, 3, 1, 1.0f, 0.0f);
    check_gemm_case(rt, true, true, 33, 17, 65, 1, 1.0f, 0.5f);
    snprintf(path, sizeof path, "%s/zz-broken.json", devdir);
    CHECK(dmx_write_file_atomic(path, "{\"precision\": \"32\"}", 19, &err) == 0);
    CHECK(dmx_gemm_load_tuning(rt, dir, &err) == -1);
    CHECKF(strstr(err.msg, "zz-broken.json") && strstr(err.msg, "not a CLBlast tuner result"), "message: %s", err.msg);
    /* a real clblast_tuner_xgemm_direct output (PoCL, CLBlast 1.5.3) reads as strict JSON */
    char params[1024];
    CHECKF(dmx_json_file_string("tests/fixtures/clblast/xgemm_direct_1_32.json", "best_parameters", params,
                                sizeof params, &err) == 0 &&
               strstr(params, "WGD="),
           "the real tuner file: %s", err.msg);
    char cmd[600], out[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    th_run(cmd, out, sizeof out);
  }
  th_end();

  dmx_runtime_destroy(rt);
  return th_finish();
}
