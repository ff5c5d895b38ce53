/* Host functions in the device's queue: OpenCL native kernels (clEnqueueNativeKernel) on CPU
 * devices that run them (those reporting CL_EXEC_NATIVE_KERNEL; tried on PoCL). The function runs
 * in queue order on the buffers' own memory, so events, ordering and profiling stay those of the
 * queue and nothing is copied. The host-BLAS GEMM (host/runtime/gemm_host.c) and the memory-bound
 * loops whose OpenCL form runs badly on PoCL (fills, bias gradients) use it.
 *
 * How the pointers arrive (read in PoCL 3.1's clEnqueueNativeKernel.c, pocl_util.c and
 * devices/basic/basic.c): the runtime copies the argument block, sorts the command's buffers by
 * creation (object id) and drops duplicates, then writes the i-th remaining buffer's pointer into
 * the i-th location the caller gave. A list that is not already in creation order, or that names a
 * buffer twice, puts pointers in the wrong slots; a sub-buffer is replaced by its parent with its
 * origin lost. So dmx_native_enqueue passes each distinct parent buffer once, oldest first
 * (dmx_mem_rank), and the function finds operand i at dmx_native_ptr(mem, i) plus its offset.
 * The GEMM backend's start-up self-test checks this on every device it runs on. */
#ifndef DMX_RUNTIME_NATIVE_H
#define DMX_RUNTIME_NATIVE_H

#include "host/runtime/context.h"

#define DMX_NATIVE_MAX 4 /* operands (buffers) per call */

/* The first member of every argument block: the slots the runtime fills, and which slot holds
 * each operand's buffer. */
typedef struct {
  float *base[DMX_NATIVE_MAX];
  unsigned char which[DMX_NATIVE_MAX];
} dmx_native_mem;

/* The start of operand i's buffer inside the running function (add the operand's own offset). */
static inline float *dmx_native_ptr(const dmx_native_mem *m, int i) { return m->base[m->which[i]]; }

/* True on a CPU device that runs native kernels: where host functions are an option at all. */
static inline bool dmx_native_available(const dmx_runtime *rt) {
  return dmx_device_is_cpu(&rt->info) && rt->info.native_kernels;
}

/* Enqueues fn(copy of block) with operand i in buffer bufs[i] (i < n <= DMX_NATIVE_MAX). block
 * starts with a dmx_native_mem (*mem points at it); size is the block's size. While observed, a
 * call with a label is reported as a command of the OpenCL kernel it stands in for (`as`, which
 * gives the profile its category) under that label; label NULL: not reported (the caller brackets
 * it, as the GEMM front end does). */
void dmx_native_enqueue(dmx_runtime *rt, void(CL_CALLBACK *fn)(void *), void *block, size_t size, dmx_native_mem *mem,
                        const cl_mem *bufs, int n, dmx_kernel_id as, const char *label);

#endif
