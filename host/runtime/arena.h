/* Device memory: arenas of tensors, blocking and staged copies, standalone buffers. */
#ifndef DMX_RUNTIME_ARENA_H
#define DMX_RUNTIME_ARENA_H

#include "host/runtime/context.h"

/* Device memory arenas: one per tensor group (llm.c's malloc_and_point, on the device).
 * Register every tensor of the group with dmx_arena_add (it records where the tensor lives and
 * its offset, aligned to DMX_ALIGN floats so kernels may use vector loads), then dmx_arena_commit
 * allocates the buffers once and fills in every registered tensor's buffer. When one buffer would
 * pass the device's max allocation, a new buffer starts, so a tensor never straddles two. */
#define DMX_ALIGN 32
typedef struct {
  const char *name;
  dmx_runtime *rt;
  size_t max_floats_per_buffer;
  int n_buffers;
  cl_mem *bufs;
  size_t *used; /* floats used in each buffer */
  dmx_tensor **tensors;
  int *tensor_buffer; /* which buffer each registered tensor lives in */
  int n_tensors, cap_tensors;
  bool committed;
} dmx_arena;

void dmx_arena_init(dmx_arena *a, dmx_runtime *rt, const char *name);
/* Registers *t (n floats). *t must stay at the same address until commit. */
void dmx_arena_add(dmx_arena *a, dmx_tensor *t, size_t n);
/* Allocates the buffers; 0, or -1 with err naming the bytes needed and available. */
int dmx_arena_commit(dmx_arena *a, dmx_error *err);
size_t dmx_arena_bytes(const dmx_arena *a);
void dmx_arena_release(dmx_arena *a);
/* Enqueues zeroing of every buffer of the arena. */
void dmx_arena_zero(dmx_arena *a);

/* Blocking host<->device copies; only for setup, checkpoints, tests and log intervals. */
void dmx_upload(dmx_runtime *rt, dmx_tensor t, const void *src, size_t bytes);
void dmx_download(dmx_runtime *rt, void *dst, dmx_tensor t, size_t bytes);
/* Non-blocking upload (the batch ids of a step); src must stay valid until the queue finishes. */
void dmx_upload_async(dmx_runtime *rt, dmx_tensor t, const void *src, size_t bytes);
void dmx_finish(dmx_runtime *rt);
/* Maps t's floats for host reading and writing (an MPI all-reduce in place): blocking, so the
 * queue's work on them is done first; valid until dmx_unmap. Zero-copy on CPU devices, a copy each
 * way on a discrete GPU. */
float *dmx_map(dmx_runtime *rt, dmx_tensor t);
void dmx_unmap(dmx_runtime *rt, dmx_tensor t, float *p);

/* Per-step uploads without a per-step sync: the host copies each step's inputs into one of two
 * staging slots and enqueues non-blocking writes from there. Before a slot is refilled (two steps
 * later), dmx_stager_begin waits for the event that marked the end of its previous writes, which
 * the in-order queue reached long before. So the caller may refill its own arrays at once. */
typedef struct {
  unsigned char *slot[2];
  size_t cap, used;
  int current;
  cl_event done[2];
} dmx_stager;
void dmx_stager_init(dmx_stager *s, size_t capacity_bytes);
void dmx_stager_begin(dmx_runtime *rt, dmx_stager *s);
/* Copies src into the current slot and enqueues the write into t. */
void dmx_stager_upload(dmx_runtime *rt, dmx_stager *s, dmx_tensor t, const void *src, size_t bytes);
void dmx_stager_end(dmx_runtime *rt, dmx_stager *s);
void dmx_stager_free(dmx_stager *s);

/* A standalone device buffer for tests and tools, as a tensor at offset 0. */
dmx_tensor dmx_buffer_create(dmx_runtime *rt, size_t n_floats);
void dmx_buffer_release(dmx_tensor t);

#endif
