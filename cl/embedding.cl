/* RoBERTa embedding passes (layers/embedding.c). Tensors are (pointer, element offset) pairs;
 * int32 tensors (ids, positions, bucket arrays) likewise. Every gradient is accumulated (+=) and
 * every reduction runs in a fixed order, so results are bitwise reproducible without atomics. */

/* out (R, d) = word[ids[r]] + pos[pos_ids[r]] + type[0]; one work-item per (column, row). */
__kernel void embedding_forward(__global float *out, ulong out_off, __global const int *ids, ulong ids_off,
                                __global const int *pos_ids, ulong pos_ids_off, __global const float *word,
                                ulong word_off, __global const float *pos, ulong pos_off,
                                __global const float *type, ulong type_off, int R, int d) {
  int c = get_global_id(0), r = get_global_id(1);
  if (c >= d || r >= R) return;
  int id = ids[ids_off + r], p = pos_ids[pos_ids_off + r];
  out[out_off + (size_t)r * d + c] =
      word[word_off + (size_t)id * d + c] + pos[pos_off + (size_t)p * d + c] + type[type_off + c];
}

/* dtable[unique[u]] (d) += sum of dout rows rows[starts[u]..starts[u+1]) in bucket order; one
 * work-item per (column, unique id). Distinct u write distinct table rows, so no races. */
__kernel void embedding_table_backward(__global float *dtable, ulong dtable_off, __global const float *dout,
                                       ulong dout_off, __global const int *unique, ulong unique_off,
                                       __global const int *starts, ulong starts_off, __global const int *rows,
                                       ulong rows_off, int n_unique, int d) {
  int c = get_global_id(0), u = get_global_id(1);
  if (c >= d || u >= n_unique) return;
  int s = starts[starts_off + u], e = starts[starts_off + u + 1];
  float acc = 0.0f;
  for (int i = s; i < e; i++) acc += dout[dout_off + (size_t)rows[rows_off + i] * d + c];
  dtable[dtable_off + (size_t)unique[unique_off + u] * d + c] += acc;
}

/* dst (d) += column sums of src (R, d). Work-group (COLS columns, LANES row lanes): lanes stride
 * over rows so neighbouring work-items read neighbouring columns, then a fixed tree over the
 * lanes. Global size (d rounded up to COLS, LANES), LANES a power of two; scratch holds COLS * LANES
 * floats. */
__kernel void embedding_colsum_acc(__global float *dst, ulong dst_off, __global const float *src, ulong src_off,
                                   int R, int d, __local float *scratch) {
  int lr = get_local_id(1), lanes = get_local_size(1);
  int c = get_global_id(0);
  float acc = 0.0f;
  if (c < d)
    for (int r = lr; r < R; r += lanes) acc += src[src_off + (size_t)r * d + c];
  acc = dmx_column_sum(acc, scratch);
  if (lr == 0 && c < d) dst[dst_off + c] += acc;
}

/* out (B, T, d) = x + type[0] + pos[j + first_pos]; elementwise, so out may alias x. */
__kernel void embedding_pass2_forward(__global float *out, ulong out_off, __global const float *x, ulong x_off,
                                      __global const float *pos, ulong pos_off, __global const float *type,
                                      ulong type_off, int BT, int T, int d, int first_pos) {
  int c = get_global_id(0), r = get_global_id(1);
  if (c >= d || r >= BT) return;
  int j = r % T;
  size_t i = (size_t)r * d + c;
  out[out_off + i] = x[x_off + i] + type[type_off + c] + pos[pos_off + (size_t)(j + first_pos) * d + c];
}

/* dpos[j + first_pos] (d) += sum over b of dout[b, j]; one work-item per (column, position). */
__kernel void embedding_pass2_pos_backward(__global float *dpos, ulong dpos_off, __global const float *dout,
                                           ulong dout_off, int B, int T, int d, int first_pos) {
  int c = get_global_id(0), j = get_global_id(1);
  if (c >= d || j >= T) return;
  float acc = 0.0f;
  for (int b = 0; b < B; b++) acc += dout[dout_off + ((size_t)b * T + j) * d + c];
  dpos[dpos_off + (size_t)(j + first_pos) * d + c] += acc;
}
