/* The host-BLAS backend: on CPU devices that run OpenCL native kernels, each GEMM is one native
 * kernel (host/runtime/native.h: how the buffers' pointers arrive, and the pitfalls) on the
 * runtime's in-order queue that calls cblas_sgemm on the buffers' own memory. */
#include "host/runtime/gemm.h"
#include "host/runtime/gemm_internal.h"
#include "host/runtime/native.h"

#ifdef DATAMUX_HAVE_HOST_BLAS
#include <cblas.h>

/* The argument block the runtime copies; mem[] are the slots it writes. */
typedef struct {
  dmx_native_mem mem; /* operands A, B, C */
  bool ta, tb;
  size_t m, n, k, lda, ldb, ldc;
  size_t off[3], stride[3]; /* floats, of A, B, C */
  size_t batch;
  float alpha, beta;
} host_gemm_block;

static void CL_CALLBACK run_host_gemm(void *p) {
  const host_gemm_block *g = p;
  const float *A = dmx_native_ptr(&g->mem, 0) + g->off[0];
  const float *B = dmx_native_ptr(&g->mem, 1) + g->off[1];
  float *C = dmx_native_ptr(&g->mem, 2) + g->off[2];
  for (size_t b = 0; b < g->batch; b++)
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, (blasint)g->m,
                (blasint)g->n, (blasint)g->k, g->alpha, A + b * g->stride[0], (blasint)g->lda, B + b * g->stride[1],
                (blasint)g->ldb, g->beta, C + b * g->stride[2], (blasint)g->ldc);
}

void dmx_host_gemm(dmx_runtime *rt, const dmx_gemm_call *c) {
  host_gemm_block g = {.ta = c->ta,
                       .tb = c->tb,
                       .m = c->m,
                       .n = c->n,
                       .k = c->k,
                       .lda = c->lda,
                       .ldb = c->ldb,
                       .ldc = c->ldc,
                       .off = {c->A.off, c->B.off, c->C.off},
                       .stride = {c->stride_a, c->stride_b, c->stride_c},
                       .batch = c->batch,
                       .alpha = c->alpha,
                       .beta = c->beta};
  cl_mem bufs[3] = {c->A.buf, c->B.buf, c->C.buf};
  dmx_native_enqueue(rt, run_host_gemm, &g, sizeof g, &g.mem, bufs, 3, DMX_KERNEL_COUNT, NULL);
}

/* What the probe saw: the first float of the buffer in each slot. */
typedef struct {
  float *mem[2];
  float *seen; /* host memory: seen[0], seen[1] */
} probe_block;

static void CL_CALLBACK run_probe(void *p) {
  probe_block *b = p;
  b->seen[0] = b->mem[0][0];
  b->seen[1] = b->mem[1][0];
}

int dmx_host_gemm_selftest(dmx_runtime *rt, char *note, size_t cap, dmx_error *err) {
  if (!rt->info.native_kernels)
    return dmx_fail(err, "device '%s' does not run OpenCL native kernels (no CL_EXEC_NATIVE_KERNEL)", rt->info.name);
  /* old holds B (4x2) at offset 3 and C (3x2) at offset 16; young, made later, holds A (3x4) at 5 */
  cl_int st;
  cl_mem old = dmx_mem_create(rt, 32 * sizeof(float), &st);
  DMX_CL_CHECK(st);
  cl_mem young = dmx_mem_create(rt, 32 * sizeof(float), &st);
  DMX_CL_CHECK(st);
  float ho[32], hy[32];
  for (int i = 0; i < 32; i++) {
    ho[i] = 1.0f + (float)(i % 5);
    hy[i] = -2.0f + (float)(i % 7);
  }
  ho[0] = 1.0f;
  hy[0] = 2.0f;
  DMX_CL_CHECK(clEnqueueWriteBuffer(rt->queue, old, CL_TRUE, 0, sizeof ho, ho, 0, NULL, NULL));
  DMX_CL_CHECK(clEnqueueWriteBuffer(rt->queue, young, CL_TRUE, 0, sizeof hy, hy, 0, NULL, NULL));
  /* The pitfall itself: the newer buffer first, as a naive caller would pass it. */
  float seen[2] = {0, 0};
  probe_block pb = {{NULL, NULL}, seen};
  cl_mem naive[2] = {young, old};
  const void *locs[2] = {&pb.mem[0], &pb.mem[1]};
  DMX_CL_CHECK(clEnqueueNativeKernel(rt->queue, run_probe, &pb, sizeof pb, 2, naive, locs, 0, NULL, NULL));
  dmx_gemm_call c = {.ta = false,
                     .tb = false,
                     .m = 3,
                     .n = 2,
                     .k = 4,
                     .alpha = 1.0f,
                     .beta = 0.5f,
                     .A = {young, 5, 0},
                     .B = {old, 3, 0},
                     .C = {old, 16, 0},
                     .lda = 4,
                     .ldb = 2,
                     .ldc = 2,
                     .batch = 1};
  dmx_host_gemm(rt, &c);
  float got[32];
  DMX_CL_CHECK(clEnqueueReadBuffer(rt->queue, old, CL_TRUE, 0, sizeof got, got, 0, NULL, NULL));
  clReleaseMemObject(old);
  clReleaseMemObject(young);
  int wrong = 0;
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 2; j++) {
      double want = 0.5 * ho[16 + i * 2 + j];
      for (int p = 0; p < 4; p++) want += (double)hy[5 + i * 4 + p] * ho[3 + p * 2 + j];
      wrong += got[16 + i * 2 + j] != (float)want;
    }
  if (wrong)
    return dmx_fail(err,
                    "the host-BLAS self-test on '%s' got %d of 6 values wrong: the runtime hands native kernels "
                    "their buffers in an order this program does not expect",
                    rt->info.name, wrong);
  const char *order = seen[0] == 2.0f && seen[1] == 1.0f   ? "keeps the caller's buffer order"
                      : seen[0] == 1.0f && seen[1] == 2.0f ? "sorts buffers by creation (handled)"
                                                           : "reorders buffers in another way";
  snprintf(note, cap, "self-test passed; the runtime %s", order);
  return 0;
}

bool dmx_host_blas_built(void) { return true; }

const char *dmx_host_blas_name(void) { return openblas_get_config(); }

int dmx_host_blas_threads(int n) {
  if (n > 0) openblas_set_num_threads(n);
  return openblas_get_num_threads();
}

#else /* built without a host BLAS: the front end never chooses this backend */

bool dmx_host_blas_built(void) { return false; }

const char *dmx_host_blas_name(void) { return "none (built without libopenblas-dev)"; }

int dmx_host_blas_threads(int n) { return 0; }

void dmx_host_gemm(dmx_runtime *rt, const dmx_gemm_call *c) {
  dmx_die("host-BLAS GEMM called in a build without a host BLAS (a program bug)");
}

int dmx_host_gemm_selftest(dmx_runtime *rt, char *note, size_t cap, dmx_error *err) {
  return dmx_fail(err, "this datamux was built without a host BLAS (install libopenblas-dev and rebuild)");
}

#endif
