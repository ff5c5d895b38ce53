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
 * gives four words: element i uses word i % 4 of counter i / 4, and its top 24 bits give u in
 * [0,1). Integer-only, so layers/common_ops.c reproduces it bit for bit on the host. */
static uint4 dmx_philox4(uint seed, uint stream, uint q) {
  uint c0 = q, c1 = 0, c2 = 0, c3 = 0, k0 = seed, k1 = stream;
  for (int r = 0; r < 10; r++) {
    /* 64-bit products, not mul_hi: PoCL calls mul_hi per element, which stopped this vectorising
     * (dropout ran 3.4x slower) */
    ulong p0 = (ulong)0xD2511F53u * c0, p1 = (ulong)0xCD9E8D57u * c2;
    uint lo0 = (uint)p0, hi0 = (uint)(p0 >> 32);
    uint lo1 = (uint)p1, hi1 = (uint)(p1 >> 32);
    uint n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return (uint4)(c0, c1, c2, c3);
}

/* keep factors (scale or 0) of elements 4q .. 4q+3 */
static float4 dmx_dropout_keep4(uint seed, uint stream, uint q, float p, float scale) {
  float4 u = convert_float4(dmx_philox4(seed, stream, q) >> 8) * (1.0f / 16777216.0f);
  return select((float4)(0.0f), (float4)(scale), u >= (float4)(p));
}

/* the keep factor (scale or 0) of element e alone: word e % 4 of counter e / 4, as above */
static float dmx_dropout_keep1(uint seed, uint stream, uint e, float p, float scale) {
  uint4 r = dmx_philox4(seed, stream, e >> 2);
  uint k = e & 3u, w = k == 0u ? r.s0 : k == 1u ? r.s1 : k == 2u ? r.s2 : r.s3;
  return (float)(w >> 8) * (1.0f / 16777216.0f) >= p ? scale : 0.0f;
}
