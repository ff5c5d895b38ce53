/* RoBERTa embeddings, both passes of the original (docs/datamux-spec.md §1.5 and §1.7). */
#ifndef DMX_LAYERS_EMBEDDING_H
#define DMX_LAYERS_EMBEDDING_H
#include "host/runtime/runtime.h"

/* Pass 1: out (R, d) = word[ids[r]] + pos[pos_ids[r]] + type[0]; ids, pos_ids int32 tensors (R);
 * word (V, d), pos (P, d), type (1, d). */
void dmx_embedding_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor ids, dmx_tensor pos_ids, dmx_tensor word,
                           dmx_tensor pos, dmx_tensor type, int R, int d);

/* Scatter-add of embedding gradients without atomics, through buckets that the host builds from
 * the ids it uploads anyway: the distinct ids of a batch, and for each the rows that use it. */
typedef struct {
  int n_unique;
  int *unique_ids; /* (n_unique) */
  int *starts;     /* (n_unique + 1) into rows */
  int *rows;       /* (R) row indices grouped by id */
  int capacity_rows, capacity_unique;
  int *count_scratch; /* (table_size) */
  int table_size;
} embedding_buckets;
void dmx_embedding_buckets_init(embedding_buckets *bk, int max_rows, int table_size);
/* Groups rows 0..R-1 by ids[r], skipping rows whose id is `skip_id` (the padding_idx, which gets no
 * gradient in PyTorch); skip_id < 0 skips nothing. */
void dmx_embedding_buckets_build(embedding_buckets *bk, const int *ids, int R, int skip_id);
void dmx_embedding_buckets_free(embedding_buckets *bk);
/* Device copies of a bucket set: int32 tensors unique (n_unique), starts (n_unique+1), rows (R). */
typedef struct {
  dmx_tensor unique_ids, starts, rows;
} embedding_buckets_dev;
/* Enqueues the copies through the step's staging slot, so bk may be rebuilt at once. */
void dmx_embedding_buckets_upload(dmx_runtime *rt, dmx_stager *st, embedding_buckets_dev *dev,
                                  const embedding_buckets *bk);

/* dtable[id] (d) += sum over the bucket's rows of dout (R, d) rows. */
void dmx_embedding_table_backward(dmx_runtime *rt, dmx_tensor dtable, dmx_tensor dout, const embedding_buckets_dev *dev,
                                  int n_unique, int d);
/* dtype (d) += sum over all R rows of dout (R, d). */
void dmx_embedding_type_backward(dmx_runtime *rt, dmx_tensor dtype, dmx_tensor dout, int R, int d);

/* Pass 2 (after muxing, the inputs_embeds path): out (B, T, d) = x + type[0] + pos[j + first_pos]
 * for position j; RoBERTa's sequential positions start at first_pos = 2. out may alias x. */
void dmx_embedding_pass2_forward(dmx_runtime *rt, dmx_tensor out, dmx_tensor x, dmx_tensor pos, dmx_tensor type, int B,
                                 int T, int d, int first_pos);
/* dpos[j + first_pos] += sum over b of dout[b, j]; dtype += sum of all rows. (dx is dout itself.) */
void dmx_embedding_pass2_backward(dmx_runtime *rt, dmx_tensor dpos, dmx_tensor dtype, dmx_tensor dout, int B, int T,
                                  int d, int first_pos);
#endif
