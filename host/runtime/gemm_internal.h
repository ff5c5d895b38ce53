/* What the GEMM front end (gemm.c) shares with its two backends (gemm_clblast.c, gemm_host.c).
 * Only these three files include it. */
#ifndef DMX_RUNTIME_GEMM_INTERNAL_H
#define DMX_RUNTIME_GEMM_INTERNAL_H

#include "host/runtime/runtime.h"

/* One (strided-batched) row-major SGEMM as the front end received it; batch 1 is a plain GEMM. */
typedef struct {
  bool ta, tb;
  size_t m, n, k;
  float alpha, beta;
  dmx_tensor A, B, C;
  size_t lda, ldb, ldc;
  size_t stride_a, stride_b, stride_c; /* floats between operands of consecutive batch entries */
  size_t batch;
} dmx_gemm_call;

/* CLBlast. The state holds the reused temporary buffer; creating it applies the device's tuning. */
typedef struct dmx_clblast_state dmx_clblast_state;
dmx_clblast_state *dmx_clblast_create(dmx_runtime *rt);
void dmx_clblast_release(dmx_clblast_state *s);
void dmx_clblast_gemm(dmx_runtime *rt, dmx_clblast_state *s, const dmx_gemm_call *c);

/* The host BLAS inside native kernels. The self-test runs a GEMM over two buffers passed against
 * their creation order and checks the result: 0 with a note on what the runtime does with the
 * buffer order, or -1 with err. */
int dmx_host_gemm_selftest(dmx_runtime *rt, char *note, size_t cap, dmx_error *err);
void dmx_host_gemm(dmx_runtime *rt, const dmx_gemm_call *c);
/* The BLAS's own description (OpenBLAS: version, architecture, MAX_THREADS). */
const char *dmx_host_blas_name(void);
/* Sets the BLAS's thread count when n > 0; returns the count in force. */
int dmx_host_blas_threads(int n);

#endif
