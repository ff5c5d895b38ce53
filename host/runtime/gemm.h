/* The one module that talks to CLBlast. Row-major SGEMM over (buffer, offset) operands:
 *   C = alpha * op(A) * op(B) + beta * C,  op(A) is (m, k), op(B) is (k, n), C is (m, n).
 * lda/ldb/ldc are the row strides of A, B, C as stored (A stored (m,k) when !ta, (k,m) when ta).
 * Temporary buffers are reused across calls; per-device tuned parameters (CLBlast tuner JSON
 * files in the cache dir) are applied before the first GEMM. The state lives in the runtime's
 * DMX_EXT_GEMM slot. */
#ifndef DMX_GEMM_H
#define DMX_GEMM_H

#include "host/runtime/runtime.h"

void dmx_gemm(dmx_runtime *rt, bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, dmx_tensor A, size_t lda,
              dmx_tensor B, size_t ldb, float beta, dmx_tensor C, size_t ldc);

/* batch independent GEMMs; operand i starts at A.off + i*stride_a (likewise B, C). */
void dmx_gemm_batched(dmx_runtime *rt, bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, dmx_tensor A,
                      size_t lda, size_t stride_a, dmx_tensor B, size_t ldb, size_t stride_b, float beta, dmx_tensor C,
                      size_t ldc, size_t stride_c, size_t batch);

typedef struct {
  bool batched, ta, tb;
  size_t m, n, k, batch;
} dmx_gemm_shape;
/* Runs each shape once (and finishes) so kernel compilation happens outside timed regions. */
void dmx_gemm_warmup(dmx_runtime *rt, const dmx_gemm_shape *shapes, int n);

/* Loads every CLBlast tuner JSON (clblast_tuner_xgemm / _xgemm_direct output) found in
 * <cache>/clblast/<device-name>/ and applies it with CLBlastOverrideParameters. Returns the number
 * of parameter sets applied; -1 with err for a malformed file. Called before the first GEMM. */
int dmx_gemm_load_tuning(dmx_runtime *rt, const char *dir, dmx_error *err);
/* Applies one tuner JSON file. 0 or -1 with err. */
int dmx_gemm_apply_tuning_file(dmx_runtime *rt, const char *path, dmx_error *err);

const char *dmx_clblast_status_name(int status);

/* Time spent inside CLBlast calls (host enqueue side) and call count, for the profile. */
typedef struct {
  long calls;
  double host_seconds;
} dmx_gemm_stats;
dmx_gemm_stats dmx_gemm_get_stats(dmx_runtime *rt);

/* DATAMUX_PROFILE: each GEMM finishes the queue before and after, and its wall time accumulates;
 * dmx_gemm_take_seconds returns the sum since the last call and resets it. */
void dmx_gemm_set_timing(dmx_runtime *rt, bool on);
double dmx_gemm_take_seconds(dmx_runtime *rt);

#endif
