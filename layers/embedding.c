/* RoBERTa embeddings, both passes (docs/datamux-spec.md §1.5, §1.7). Gradients of the gathered
 * tables go through host-built buckets (ids grouped by value) so the device sums each table row's
 * contributions in a fixed order, with no atomics. */
#include "layers/embedding.h"

#include <stdlib.h>
#include <string.h>

/* out (R, d); ids, pos_ids int32 (R); word (V, d), pos (P, d), type (1, d). */
/* (column, row) grids: 32 adjacent columns x 4 rows per group, or what the kernel allows */
static void grid_local(dmx_runtime *rt, dmx_kernel_id id, size_t local[2]) {
  local[0] = dmx_local_pow2(rt, id, 0, 32, 1);
  local[1] = dmx_local_pow2(rt, id, 1, 4, local[0]);
}

void dmx_embedding_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor ids, dmx_tensor pos_ids, dmx_tensor word,
                           dmx_tensor pos, dmx_tensor type, int R, int d) {
  if (R <= 0 || d <= 0) return;
  DMX_NEED(out, (size_t)R * d);
  DMX_NEED(ids, R);
  DMX_NEED(pos_ids, R);
  size_t global[2] = {(size_t)d, (size_t)R}, local[2];
  grid_local(rt, DMX_K_EMBEDDING_FORWARD, local);
  dmx_launch(rt, DMX_K_EMBEDDING_FORWARD, 2, global, local, KA_T(out), KA_T(ids), KA_T(pos_ids), KA_T(word), KA_T(pos),
             KA_T(type), KA_I(R), KA_I(d));
}

void dmx_embedding_buckets_init(embedding_buckets *bk, int max_rows, int table_size) {
  memset(bk, 0, sizeof *bk);
  if (max_rows < 0 || table_size <= 0)
    dmx_die("embedding_buckets_init: max_rows %d, table_size %d", max_rows, table_size);
  bk->capacity_rows = max_rows;
  /* at most one distinct id per row, and never more than the table holds */
  bk->capacity_unique = max_rows < table_size ? max_rows : table_size;
  bk->table_size = table_size;
  bk->unique_ids = dmx_malloc(((size_t)bk->capacity_unique + 1) * sizeof(int));
  bk->starts = dmx_malloc(((size_t)bk->capacity_unique + 1) * sizeof(int));
  bk->rows = dmx_malloc(((size_t)max_rows + 1) * sizeof(int));
  /* stays all-zero between builds: build() clears exactly the entries it used */
  bk->count_scratch = dmx_calloc((size_t)table_size, sizeof(int));
}

/* Counting sort in O(R): distinct ids in order of first appearance, rows ascending within each. */
void dmx_embedding_buckets_build(embedding_buckets *bk, const int *ids, int R, int skip_id) {
  if (R < 0 || R > bk->capacity_rows)
    dmx_die("embedding_buckets_build: %d rows but the buckets were sized for %d", R, bk->capacity_rows);
  int *count = bk->count_scratch;
  int nu = 0;
  for (int r = 0; r < R; r++) {
    int id = ids[r];
    if (id < 0 || id >= bk->table_size)
      dmx_die("embedding_buckets_build: id %d at row %d is outside the table (size %d)", id, r, bk->table_size);
    if (id == skip_id) continue;
    if (count[id]++ == 0) bk->unique_ids[nu++] = id;
  }
  bk->starts[0] = 0;
  for (int u = 0; u < nu; u++) {
    int id = bk->unique_ids[u];
    bk->starts[u + 1] = bk->starts[u] + count[id];
    count[id] = bk->starts[u]; /* now the write cursor of this bucket */
  }
  for (int r = 0; r < R; r++)
    if (ids[r] != skip_id) bk->rows[count[ids[r]]++] = r;
  for (int u = 0; u < nu; u++) count[bk->unique_ids[u]] = 0;
  bk->n_unique = nu;
}

void dmx_embedding_buckets_free(embedding_buckets *bk) {
  free(bk->unique_ids);
  free(bk->starts);
  free(bk->rows);
  free(bk->count_scratch);
  memset(bk, 0, sizeof *bk);
}

void dmx_embedding_buckets_upload(dmx_runtime *rt, dmx_stager *st, embedding_buckets_dev *dev,
                                  const embedding_buckets *bk) {
  int nu = bk->n_unique, nrows = bk->starts[nu];
  dmx_stager_upload(rt, st, dev->unique_ids, bk->unique_ids, (size_t)nu * sizeof(int));
  dmx_stager_upload(rt, st, dev->starts, bk->starts, ((size_t)nu + 1) * sizeof(int));
  dmx_stager_upload(rt, st, dev->rows, bk->rows, (size_t)nrows * sizeof(int));
}

/* dtable (table, d) += per-bucket row sums of dout (R, d). */
void dmx_embedding_table_backward(dmx_runtime *rt, dmx_tensor dtable, dmx_tensor dout, const embedding_buckets_dev *dev,
                                  int n_unique, int d) {
  if (n_unique <= 0 || d <= 0) return;
  size_t global[2] = {(size_t)d, (size_t)n_unique}, local[2];
  grid_local(rt, DMX_K_EMBEDDING_TABLE_BACKWARD, local);
  dmx_launch(rt, DMX_K_EMBEDDING_TABLE_BACKWARD, 2, global, local, KA_T(dtable), KA_T(dout), KA_T(dev->unique_ids),
             KA_T(dev->starts), KA_T(dev->rows), KA_I(n_unique), KA_I(d));
}

/* dst (d) += column sums of src (R, d), in a fixed reduction order. */
static void colsum_acc(dmx_runtime *rt, dmx_tensor dst, dmx_tensor src, int R, int d) {
  if (R <= 0 || d <= 0) return;
  size_t cols = dmx_local_pow2(rt, DMX_K_EMBEDDING_COLSUM_ACC, 0, 32, 1),
         lanes = dmx_local_pow2(rt, DMX_K_EMBEDDING_COLSUM_ACC, 1, 16, cols);
  size_t global[2] = {(size_t)d, lanes}, local[2] = {cols, lanes};
  dmx_launch(rt, DMX_K_EMBEDDING_COLSUM_ACC, 2, global, local, KA_T(dst), KA_T(src), KA_I(R), KA_I(d),
             KA_LOCAL(cols * lanes * sizeof(float)));
}

void dmx_embedding_type_backward(dmx_runtime *rt, dmx_tensor dtype, dmx_tensor dout, int R, int d) {
  colsum_acc(rt, dtype, dout, R, d);
}

/* out (B, T, d) = x + type[0] + pos[j + first_pos]; out may alias x. */
void dmx_embedding_pass2_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, dmx_tensor pos, dmx_tensor type, int B,
                                 int T, int d, int first_pos) {
  if (B <= 0 || T <= 0 || d <= 0) return;
  size_t global[2] = {(size_t)d, (size_t)B * T}, local[2];
  grid_local(rt, DMX_K_EMBEDDING_PASS2_FORWARD, local);
  dmx_launch(rt, DMX_K_EMBEDDING_PASS2_FORWARD, 2, global, local, KA_T(out), KA_T(x), KA_T(pos), KA_T(type),
             KA_I(B * T), KA_I(T), KA_I(d), KA_I(first_pos));
}

/* dpos (P, d) rows first_pos.. += batch sums of dout (B, T, d); dtype (d) += sums of all rows. */
void dmx_embedding_pass2_backward(dmx_runtime *rt, dmx_tensor dpos, dmx_tensor dtype, dmx_tensor dout, int B, int T,
                                  int d, int first_pos) {
  if (B <= 0 || T <= 0 || d <= 0) return;
  size_t global[2] = {(size_t)d, (size_t)T}, local[2];
  grid_local(rt, DMX_K_EMBEDDING_PASS2_POS_BACKWARD, local);
  dmx_launch(rt, DMX_K_EMBEDDING_PASS2_POS_BACKWARD, 2, global, local, KA_T(dpos), KA_T(dout), KA_I(B), KA_I(T),
             KA_I(d), KA_I(first_pos));
  colsum_acc(rt, dtype, dout, B * T, d);
}
