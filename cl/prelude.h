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
