/* Prepended to every cl/ program by the runtime (host/runtime/program.c), then `#line 1` so build
 * logs keep each file's own line numbers. Helpers used by several kernel files live here once. */

/* Sums v over a 1-D work-group in a fixed tree order (deterministic); every work-item gets the
 * total. red holds one float per work-item; get_local_size(0) must be a power of two. red may be
 * reused as soon as this returns. */
static float dmx_group_sum(float v, __local float *red) {
  int l = get_local_id(0), w = get_local_size(0);
  red[l] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = w / 2; s > 0; s /= 2) {
    if (l < s) red[l] += red[l + s];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  float total = red[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return total;
}

/* Sums v down dimension 1 of a 2-D work-group, one column per local id 0, in a fixed tree order;
 * the column's total comes back (valid in every work-item once the tree is done). part holds
 * get_local_size(0) * get_local_size(1) floats; get_local_size(1) must be a power of two. */
static float dmx_column_sum(float v, __local float *part) {
  int lc = get_local_id(0), lr = get_local_id(1), cw = get_local_size(0), rw = get_local_size(1);
  part[lr * cw + lc] = v;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = rw / 2; s > 0; s /= 2) {
    if (lr < s) part[lr * cw + lc] += part[(lr + s) * cw + lc];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  return part[lc];
}

/* ---------------------------------------------------------------- dropout */

/* Philox4x32-10 (Salmon et al. 2011) with key (seed, stream) and counter (q, 0, 0, 0). One call
 * gives four words w0..w3: element i uses word i % 4 of counter i / 4, and its top 24 bits give u in
 * [0,1). Integer-only, so layers/common_ops.c reproduces it bit for bit on the host.
 * Written on scalars with the rounds unrolled, as a macro: PoCL vectorises a kernel across its
 * work-items only then. A uint4 result, float4 loads and a rolled rounds loop kept the dropout
 * kernels scalar ("instruction return type cannot be vectorized"; 3.5 against 2.0 ns per element).
 * 64-bit products, not mul_hi, which PoCL called per element. */
#define DMX_PHILOX4(seed, stream, q, w0, w1, w2, w3)                                                \
  do {                                                                                              \
    uint c0_ = (q), c1_ = 0, c2_ = 0, c3_ = 0, k0_ = (seed), k1_ = (stream);                        \
    _Pragma("unroll") for (int r_ = 0; r_ < 10; r_++) {                                             \
      ulong p0_ = (ulong)0xD2511F53u * c0_, p1_ = (ulong)0xCD9E8D57u * c2_;                         \
      uint n0_ = (uint)(p1_ >> 32) ^ c1_ ^ k0_, n2_ = (uint)(p0_ >> 32) ^ c3_ ^ k1_;                \
      c1_ = (uint)p1_;                                                                              \
      c3_ = (uint)p0_;                                                                              \
      c0_ = n0_;                                                                                    \
      c2_ = n2_;                                                                                    \
      k0_ += 0x9E3779B9u;                                                                           \
      k1_ += 0xBB67AE85u;                                                                           \
    }                                                                                               \
    (w0) = c0_;                                                                                     \
    (w1) = c1_;                                                                                     \
    (w2) = c2_;                                                                                     \
    (w3) = c3_;                                                                                     \
  } while (0)

/* the keep factor (scale or 0) of a word */
static float dmx_keep_of(uint w, float p, float scale) {
  return (float)(w >> 8) * (1.0f / 16777216.0f) >= p ? scale : 0.0f;
}

/* the keep factor (scale or 0) of element e alone: word e % 4 of counter e / 4, as above */
static float dmx_dropout_keep1(uint seed, uint stream, uint e, float p, float scale) {
  uint w0, w1, w2, w3;
  DMX_PHILOX4(seed, stream, e >> 2, w0, w1, w2, w3);
  /* two bit tests, not a chain of k == 0, 1, 2: clang turns that chain into a switch on an i2,
   * which Oclgrind (21.10 to 26.03) runs wrongly (its trunc keeps the high bits, so no case
   * matches) */
  uint lo = (e & 1u) ? w1 : w0, hi = (e & 1u) ? w3 : w2;
  return dmx_keep_of((e & 2u) ? hi : lo, p, scale);
}
