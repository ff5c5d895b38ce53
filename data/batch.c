#include "data/batch.h"

#include <stdlib.h>
#include <string.h>

int dmx_input_kind_parse(const char *s) {
  if (!strcmp(s, "none") || !strcmp(s, "plain")) return DMX_INPUT_PLAIN;
  if (!strcmp(s, "index")) return DMX_INPUT_INDEX;
  if (!strcmp(s, "mlp")) return DMX_INPUT_MLP;
  return -1;
}

const char *dmx_input_kind_name(dmx_input_kind k) {
  return k == DMX_INPUT_INDEX ? "index" : k == DMX_INPUT_MLP ? "mlp" : "plain";
}

int dmx_batch_alloc(dmx_batch *b, int B, int N, int L, dmx_input_kind input, dmx_target_kind kind, dmx_error *err) {
  memset(b, 0, sizeof *b);
  if (B < 1) return dmx_fail(err, "batch: B (groups per step) must be >= 1, got %d", B);
  if (N < 1 || N > DMX_MAX_INSTANCES)
    return dmx_fail(err, "batch: N (instances) must be in 1..%d, got %d", DMX_MAX_INSTANCES, N);
  if (input == DMX_INPUT_PLAIN && N != 1)
    return dmx_fail(err, "batch: plain (non-multiplexed) input needs N = 1, got N = %d", N);
  if (L < 2) return dmx_fail(err, "batch: sequence length must be >= 2, got %d", L);
  int Lp = input == DMX_INPUT_INDEX ? L + N + 1 : L;
  if (Lp > 512)
    return dmx_fail(err, "batch: sequence length %d with its prefix exceeds RoBERTa's 512 usable positions", Lp);
  b->B = B, b->N = N, b->L = L, b->rows = B * N, b->input = input, b->kind = kind;
  b->Lp = Lp;
  size_t cells = (size_t)b->rows * (size_t)b->Lp, rows = (size_t)b->rows;
  b->ids = dmx_malloc(cells * sizeof *b->ids);
  b->positions = dmx_malloc(cells * sizeof *b->positions);
  b->scored = dmx_malloc(rows);
  b->source_row = dmx_malloc(rows * sizeof *b->source_row);
  if (kind == DMX_TARGET_CLASS) b->labels = dmx_malloc(rows * sizeof *b->labels);
  if (kind == DMX_TARGET_SCORE) b->scores = dmx_malloc(rows * sizeof *b->scores);
  if (kind == DMX_TARGET_TOKENS) {
    b->token_labels = dmx_malloc(rows * (size_t)L * sizeof *b->token_labels);
    b->token_labels_prefixed = dmx_malloc(cells * sizeof *b->token_labels_prefixed);
  }
  return 0;
}

void dmx_batch_free(dmx_batch *b) {
  free(b->ids);
  free(b->positions);
  free(b->labels);
  free(b->scores);
  free(b->token_labels);
  free(b->token_labels_prefixed);
  free(b->scored);
  free(b->source_row);
  memset(b, 0, sizeof *b);
}

void dmx_roberta_positions(const int32_t *ids, int len, int32_t *pos) {
  int32_t count = 0;
  for (int j = 0; j < len; j++) {
    int32_t keep = ids[j] != DMX_PAD_ID;
    count += keep;
    pos[j] = count * keep + 1;
  }
}

/* Writes one instance's id row for its slot i inside the group. */
static void write_ids(const dmx_batch *b, int instance, const int32_t *src, int32_t *dst) {
  if (b->input == DMX_INPUT_INDEX) {
    for (int s = 0; s < b->N; s++) dst[s] = s == instance ? DMX_VOCAB_SIZE - 2 - s : DMX_PREFIX_FILLER;
    dst[b->N] = DMX_PREFIX_CLS;
    memcpy(dst + b->N + 1, src, (size_t)b->L * sizeof *dst);
  } else {
    memcpy(dst, src, (size_t)b->L * sizeof *dst);
    if (b->input == DMX_INPUT_MLP) dst[0] = DMX_PREFIX_CLS;
  }
}

static void write_targets(dmx_batch *b, int r, const dmx_dataset *ds, int32_t src_row, bool scored) {
  if (b->kind == DMX_TARGET_CLASS) b->labels[r] = scored ? ds->labels[src_row] : DMX_IGNORE_LABEL;
  if (b->kind == DMX_TARGET_SCORE) b->scores[r] = scored ? ds->scores[src_row] : 0.0f;
  if (b->kind != DMX_TARGET_TOKENS) return;
  int32_t *tl = b->token_labels + (size_t)r * (size_t)b->L;
  const int32_t *src = ds->token_labels + (size_t)src_row * (size_t)ds->L;
  for (int j = 0; j < b->L; j++) tl[j] = scored ? src[j] : DMX_IGNORE_LABEL;
  int32_t *tp = b->token_labels_prefixed + (size_t)r * (size_t)b->Lp;
  int shift = b->Lp - b->L; /* N+1 for index input, 0 otherwise */
  for (int j = 0; j < shift; j++) tp[j] = DMX_IGNORE_LABEL;
  memcpy(tp + shift, tl, (size_t)b->L * sizeof *tp);
}

void dmx_batch_fill(dmx_batch *b, const dmx_dataset *ds, const int32_t *rows, int count) {
  if (count < 0 || count > b->rows) dmx_die("batch fill: %d rows for a batch of %d", count, b->rows);
  if (ds->L != b->L) dmx_die("batch fill: dataset length %d, batch length %d", ds->L, b->L);
  b->n_scored = 0;
  for (int r = 0; r < b->rows; r++) {
    bool scored = r < count;
    int32_t src_row = scored ? rows[r] : 0;
    b->scored[r] = scored;
    b->source_row[r] = scored ? src_row : -1;
    b->n_scored += scored;
    int32_t *ids = b->ids + (size_t)r * (size_t)b->Lp;
    write_ids(b, r % b->N, ds->ids + (size_t)src_row * (size_t)ds->L, ids);
    dmx_roberta_positions(ids, b->Lp, b->positions + (size_t)r * (size_t)b->Lp);
    write_targets(b, r, ds, src_row, scored);
  }
}

void dmx_epoch_order(int32_t *order, int n, uint64_t seed, int epoch) {
  for (int i = 0; i < n; i++) order[i] = i;
  uint64_t state = seed ^ ((uint64_t)epoch * 0x9E3779B97F4A7C15ull);
  for (int i = n - 1; i > 0; i--) {
    int j = (int)dmx_rand_below(&state, (uint64_t)i + 1);
    int32_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
}

void dmx_batcher_init(dmx_batcher *bt, const dmx_dataset *ds, int instances_per_step, bool shuffle, bool drop_last,
                      uint64_t seed) {
  memset(bt, 0, sizeof *bt);
  bt->ds = ds;
  bt->instances = instances_per_step;
  bt->shuffle = shuffle;
  bt->drop_last = drop_last;
  bt->seed = seed;
  bt->order = dmx_malloc((size_t)ds->n * sizeof *bt->order);
  dmx_batcher_begin_epoch(bt, 0);
}

void dmx_batcher_free(dmx_batcher *bt) {
  free(bt->order);
  memset(bt, 0, sizeof *bt);
}

void dmx_batcher_begin_epoch(dmx_batcher *bt, int epoch) {
  bt->epoch = epoch;
  bt->next = 0;
  if (bt->shuffle) {
    dmx_epoch_order(bt->order, bt->ds->n, bt->seed, epoch);
  } else {
    for (int i = 0; i < bt->ds->n; i++) bt->order[i] = i;
  }
}

int dmx_batcher_steps(const dmx_batcher *bt) {
  int n = bt->ds->n, k = bt->instances;
  return bt->drop_last ? n / k : (n + k - 1) / k;
}

int dmx_batcher_scored_per_epoch(const dmx_batcher *bt) {
  return bt->drop_last ? bt->ds->n / bt->instances * bt->instances : bt->ds->n;
}

bool dmx_batcher_next(dmx_batcher *bt, dmx_batch *b) {
  if (b->rows != bt->instances)
    dmx_die("batcher hands out %d instances per step but the batch holds %d rows", bt->instances, b->rows);
  int left = bt->ds->n - bt->next;
  int take = left < bt->instances ? left : bt->instances;
  if (take <= 0 || (bt->drop_last && take < bt->instances)) return false;
  dmx_batch_fill(b, bt->ds, bt->order + bt->next, take);
  bt->next += take;
  return true;
}

void dmx_draw_retrieval(const dmx_batch *b, int first, float keep, uint64_t *rng, int32_t *inst, int32_t *targets) {
  int B = b->B, N = b->N, T = b->Lp;
  for (int g = 0; g < B; g++)
    for (int j = 0; j < T; j++) {
      int k = (int)dmx_rand_below(rng, (uint64_t)N);
      inst[g * T + j] = k;
      int32_t y = b->ids[((size_t)g * N + k) * T + j];
      bool scored = j >= first && y != DMX_PAD_ID && b->scored[g * N + k];
      if (scored && keep < 1.0f) scored = (double)(dmx_splitmix64(rng) >> 11) / 9007199254740992.0 < keep;
      targets[g * T + j] = scored ? y : -100;
    }
}
