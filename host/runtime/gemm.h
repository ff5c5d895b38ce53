/* The one GEMM entry of the program. Row-major SGEMM over (buffer, offset) operands:
 *   C = alpha * op(A) * op(B) + beta * C,  op(A) is (m, k), op(B) is (k, n), C is (m, n).
 * lda/ldb/ldc are the row strides of A, B, C as stored (A stored (m,k) when !ta, (k,m) when ta).
 *
 * Two backends, one per runtime, chosen once before the first GEMM and printed:
 *  - clblast:   CLBlast kernels (GPUs and accelerators); tuned parameters (CLBlast tuner JSON
 *               files in the cache dir) are applied before its first GEMM.
 *  - host_blas: on CPU devices that run OpenCL native kernels, the host BLAS (OpenBLAS) called
 *               from a native kernel on the same in-order queue, on the buffers' own memory.
 * auto takes host_blas where it can (a CPU device with native kernels, a build with a BLAS, a
 * passed self-test) and clblast elsewhere. The state lives in the runtime's DMX_EXT_GEMM slot. */
#ifndef DMX_GEMM_H
#define DMX_GEMM_H

#include "host/runtime/runtime.h"

typedef enum { DMX_GEMM_AUTO, DMX_GEMM_CLBLAST, DMX_GEMM_HOST_BLAS } dmx_gemm_backend;
/* "auto", "clblast", "host_blas", NULL: in enum order (the experiment's gemm_backend uses them). */
extern const char *const dmx_gemm_backend_names[];

/* True when this build has a host BLAS (libopenblas-dev at configure time). */
bool dmx_host_blas_built(void);
/* What auto gives on device d before any self-test, and in *why the reason. */
dmx_gemm_backend dmx_gemm_auto_backend(const dmx_device_info *d, const char **why);
/* Chooses rt's backend: DATAMUX_GEMM_BACKEND when set, else `request`; `origin` names where the
 * request came from for messages ("experiments/x.yaml:12:3", or NULL). Prints the choice to
 * rt->log. 0, or -1 with err naming the device and the option when the request cannot be met (an
 * auto choice that fails its self-test falls back to clblast instead, and says so). */
int dmx_gemm_select(dmx_runtime *rt, dmx_gemm_backend request, const char *origin, dmx_error *err);
/* Sets rt's backend exactly (tests, `datamux tune`, benchmarks): no environment override. */
int dmx_gemm_use(dmx_runtime *rt, dmx_gemm_backend backend, dmx_error *err);
/* The backend in use (chosen by auto at the first GEMM when nothing chose it before). */
dmx_gemm_backend dmx_gemm_backend_of(dmx_runtime *rt);
/* One line on the backend in use, e.g. "host BLAS (OpenBLAS 0.3.21 ..., 1 thread) in native kernels". */
void dmx_gemm_describe(dmx_runtime *rt, char *out, size_t cap);

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
 * of parameter sets applied; -1 with err for a malformed file. Called before the first CLBlast GEMM. */
int dmx_gemm_load_tuning(dmx_runtime *rt, const char *dir, dmx_error *err);
/* Applies one tuner JSON file. 0 or -1 with err. */
int dmx_gemm_apply_tuning_file(dmx_runtime *rt, const char *path, dmx_error *err);

const char *dmx_clblast_status_name(int status);

/* Time spent enqueuing GEMMs (host side) and call count, for the profile. */
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
