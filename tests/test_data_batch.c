/* Multiplexed batching (spec §1.3-§1.4): grouping order, prefix ids, positions, padding of the
 * last batch, every example scored once, drop_last counts, and the epoch shuffle. */
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "tests/harness.h"

/* n rows of length L: row r = <s> 100+r 200+r </s> pad..., label r % 3, token labels r per
 * real token. */
static void make_dataset(dmx_dataset *d, int n, int L, dmx_target_kind kind) {
  dmx_dataset_alloc(d, n, L, kind);
  for (int r = 0; r < n; r++) {
    int32_t *ids = d->ids + (size_t)r * L;
    ids[0] = 0, ids[1] = 100 + r, ids[2] = 200 + r, ids[3] = 2;
    if (kind == DMX_TARGET_CLASS) d->labels[r] = r % 3;
    if (kind == DMX_TARGET_SCORE) d->scores[r] = (float)r / 2;
    if (kind == DMX_TARGET_TOKENS) d->token_labels[(size_t)r * L + 1] = r % 9, d->token_labels[(size_t)r * L + 2] = 0;
  }
  d->has_labels = true;
}

static void test_alloc_checks(void) {
  th_begin("batch alloc rejects bad shapes");
  dmx_batch b;
  dmx_error err;
  CHECK(dmx_batch_alloc(&b, 2, 0, 8, DMX_INPUT_INDEX, DMX_TARGET_CLASS, &err) == -1 &&
        strstr(err.msg, "N (instances)"));
  CHECK(dmx_batch_alloc(&b, 2, 65, 8, DMX_INPUT_INDEX, DMX_TARGET_CLASS, &err) == -1);
  CHECK(dmx_batch_alloc(&b, 2, 2, 8, DMX_INPUT_PLAIN, DMX_TARGET_CLASS, &err) == -1 && strstr(err.msg, "N = 1"));
  CHECK(dmx_batch_alloc(&b, 0, 2, 8, DMX_INPUT_INDEX, DMX_TARGET_CLASS, &err) == -1);
  CHECK(dmx_batch_alloc(&b, 1, 40, 500, DMX_INPUT_INDEX, DMX_TARGET_CLASS, &err) == -1 && strstr(err.msg, "512"));
  CHECK(dmx_batch_alloc(&b, 1, 40, 128, DMX_INPUT_INDEX, DMX_TARGET_CLASS, &err) == 0 && b.Lp == 169 && b.rows == 40);
  dmx_batch_free(&b);
  CHECK(dmx_input_kind_parse("index") == DMX_INPUT_INDEX && dmx_input_kind_parse("mlp") == DMX_INPUT_MLP &&
        dmx_input_kind_parse("none") == DMX_INPUT_PLAIN && dmx_input_kind_parse("idx") == -1);
  th_end();
}

static void test_positions(void) {
  th_begin("RoBERTa positions: non-pads count from 2, pads get 1");
  int32_t ids[6] = {0, 5, 1, 7, 2, 1}, pos[6];
  dmx_roberta_positions(ids, 6, pos);
  static const int32_t want[6] = {2, 3, 1, 4, 5, 1};
  CHECK(!memcmp(pos, want, sizeof want));
  th_end();
}

static void test_index_n3(void) {
  th_begin("index demux N=3: grouping, prefix ids, positions, padded last batch");
  dmx_dataset d;
  make_dataset(&d, 7, 6, DMX_TARGET_CLASS);
  dmx_batch b;
  dmx_error err;
  CHECK(dmx_batch_alloc(&b, 2, 3, 6, DMX_INPUT_INDEX, DMX_TARGET_CLASS, &err) == 0);
  CHECK(b.Lp == 10 && b.rows == 6);
  dmx_batcher bt;
  dmx_batcher_init(&bt, &d, b.rows, false, false, 1);
  CHECK(dmx_batcher_steps(&bt) == 2 && dmx_batcher_scored_per_epoch(&bt) == 7);
  int32_t *ids_before = b.ids;
  CHECK(dmx_batcher_next(&bt, &b));
  /* Instance i of group g is batch row g*N+i. */
  for (int g = 0; g < 2; g++)
    for (int i = 0; i < 3; i++) CHECK(b.source_row[g * 3 + i] == g * 3 + i && b.scored[g * 3 + i] == 1);
  static const int32_t row4[10] = {50000, 50262, 50000, 49923, 0, 104, 204, 2, 1, 1};
  static const int32_t pos4[10] = {2, 3, 4, 5, 6, 7, 8, 9, 1, 1};
  CHECK(!memcmp(b.ids + 4 * 10, row4, sizeof row4));
  CHECK(!memcmp(b.positions + 4 * 10, pos4, sizeof pos4));
  static const int32_t prefix0[4] = {50263, 50000, 50000, 49923}, prefix2[4] = {50000, 50000, 50261, 49923};
  CHECK(!memcmp(b.ids, prefix0, sizeof prefix0) && !memcmp(b.ids + 5 * 10, prefix2, sizeof prefix2));
  CHECK(b.labels[4] == 1 && b.labels[5] == 2 && b.n_scored == 6);
  /* Last batch: row 6 then five padding instances (copies of row 0, unscored, label -100). */
  CHECK(dmx_batcher_next(&bt, &b));
  CHECK(b.ids == ids_before);
  CHECK(b.n_scored == 1 && b.scored[0] == 1 && b.source_row[0] == 6 && b.labels[0] == 0);
  for (int r = 1; r < 6; r++) {
    CHECK(b.scored[r] == 0 && b.source_row[r] == -1 && b.labels[r] == DMX_IGNORE_LABEL);
    CHECK(b.ids[r * 10 + 5] == 100 && b.ids[r * 10 + (r % 3)] == 50263 - r % 3);
  }
  CHECK(!dmx_batcher_next(&bt, &b));
  dmx_batcher_free(&bt);
  dmx_batch_free(&b);
  dmx_dataset_free(&d);
  th_end();
}

static void test_index_n40(void) {
  th_begin("index demux N=40: prefix slot i holds 50263-i, slot 40 holds 49923");
  dmx_dataset d;
  make_dataset(&d, 80, 8, DMX_TARGET_CLASS);
  dmx_batch b;
  dmx_error err;
  CHECK(dmx_batch_alloc(&b, 2, 40, 8, DMX_INPUT_INDEX, DMX_TARGET_CLASS, &err) == 0 && b.Lp == 49);
  int32_t rows[80];
  for (int i = 0; i < 80; i++) rows[i] = 79 - i;
  dmx_batch_fill(&b, &d, rows, 80);
  int bad = 0;
  for (int r = 0; r < 80; r++) {
    const int32_t *ids = b.ids + r * 49;
    for (int s = 0; s < 40; s++) bad += ids[s] != (s == r % 40 ? 50263 - s : 50000);
    bad += ids[40] != 49923 || ids[41] != 0 || ids[42] != 100 + rows[r];
    bad += b.positions[r * 49 + 44] != 46 || b.positions[r * 49 + 45] != 1;
  }
  CHECKF(bad == 0, "%d wrong cells", bad);
  CHECK(b.ids[39 * 49 + 39] == 50224 && b.ids[79 * 49 + 39] == 50224 && b.ids[40 * 49] == 50263);
  dmx_batch_free(&b);
  dmx_dataset_free(&d);
  th_end();
}

static void test_mlp_and_plain(void) {
  th_begin("mlp demux overwrites token 0 with 49923; N=1 baseline is plain RoBERTa input");
  dmx_dataset d;
  make_dataset(&d, 4, 6, DMX_TARGET_SCORE);
  dmx_batch b;
  dmx_error err;
  int32_t rows[4] = {0, 1, 2, 3};
  CHECK(dmx_batch_alloc(&b, 2, 2, 6, DMX_INPUT_MLP, DMX_TARGET_SCORE, &err) == 0 && b.Lp == 6);
  dmx_batch_fill(&b, &d, rows, 4);
  static const int32_t row3[6] = {49923, 103, 203, 2, 1, 1}, pos3[6] = {2, 3, 4, 5, 1, 1};
  CHECK(!memcmp(b.ids + 18, row3, sizeof row3) && !memcmp(b.positions + 18, pos3, sizeof pos3));
  CHECK(b.scores[3] == 1.5f);
  dmx_batch_free(&b);
  CHECK(dmx_batch_alloc(&b, 3, 1, 6, DMX_INPUT_PLAIN, DMX_TARGET_SCORE, &err) == 0 && b.Lp == 6);
  dmx_batch_fill(&b, &d, rows + 1, 2);
  static const int32_t row1[6] = {0, 101, 201, 2, 1, 1};
  CHECK(!memcmp(b.ids, row1, sizeof row1) && !memcmp(b.positions, pos3, sizeof pos3));
  CHECK(b.scored[2] == 0 && b.scores[2] == 0.0f && b.n_scored == 2);
  dmx_batch_free(&b);
  dmx_dataset_free(&d);
  th_end();
}

static void test_token_labels(void) {
  th_begin("token labels: aligned to L, and to L' with -100 on the N+1 prefix slots");
  dmx_dataset d;
  make_dataset(&d, 5, 6, DMX_TARGET_TOKENS);
  dmx_batch b;
  dmx_error err;
  CHECK(dmx_batch_alloc(&b, 1, 3, 6, DMX_INPUT_INDEX, DMX_TARGET_TOKENS, &err) == 0);
  int32_t rows[3] = {4, 2, 0};
  dmx_batch_fill(&b, &d, rows, 2);
  static const int32_t tl0[6] = {-100, 4, 0, -100, -100, -100};
  static const int32_t tp0[10] = {-100, -100, -100, -100, -100, 4, 0, -100, -100, -100};
  CHECK(!memcmp(b.token_labels, tl0, sizeof tl0) && !memcmp(b.token_labels_prefixed, tp0, sizeof tp0));
  for (int j = 0; j < 6; j++) CHECK(b.token_labels[2 * 6 + j] == -100); /* padding instance */
  CHECK(b.labels == NULL && b.scored[2] == 0);
  dmx_batch_free(&b);
  dmx_dataset_free(&d);
  th_end();
}

static void test_epoch_coverage(void) {
  th_begin("every example scored exactly once per epoch; drop_last counts as the original");
  dmx_dataset d;
  make_dataset(&d, 872, 4, DMX_TARGET_CLASS); /* SST-2 dev size */
  static const struct {
    int B, N;
    bool drop_last;
    int steps, scored;
  } cases[] = {{24, 2, true, 18, 864},
               {16, 40, true, 1, 640},
               {16, 40, false, 2, 872},
               {24, 5, false, 8, 872},
               {32, 1, false, 28, 872}};
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    dmx_batch b;
    dmx_error err;
    dmx_input_kind kind = cases[c].N == 1 ? DMX_INPUT_PLAIN : DMX_INPUT_INDEX;
    CHECK(dmx_batch_alloc(&b, cases[c].B, cases[c].N, 4, kind, DMX_TARGET_CLASS, &err) == 0);
    dmx_batcher bt;
    dmx_batcher_init(&bt, &d, b.rows, true, cases[c].drop_last, 42);
    dmx_batcher_begin_epoch(&bt, 3);
    int seen[872] = {0}, steps = 0, scored = 0;
    while (dmx_batcher_next(&bt, &b)) {
      steps++;
      for (int r = 0; r < b.rows; r++)
        if (b.scored[r]) seen[b.source_row[r]]++, scored++;
    }
    CHECKF(steps == cases[c].steps && steps == dmx_batcher_steps(&bt), "B=%d N=%d: %d steps", cases[c].B, cases[c].N,
           steps);
    CHECKF(scored == cases[c].scored && scored == dmx_batcher_scored_per_epoch(&bt), "B=%d N=%d: %d scored", cases[c].B,
           cases[c].N, scored);
    int twice = 0, never = 0;
    for (int i = 0; i < 872; i++) twice += seen[i] > 1, never += seen[i] == 0;
    CHECK(twice == 0);
    CHECK(never == 872 - cases[c].scored);
    dmx_batcher_free(&bt);
    dmx_batch_free(&b);
  }
  dmx_dataset_free(&d);
  th_end();
}

static void test_shuffle(void) {
  th_begin("epoch order: a permutation, deterministic in (seed, epoch), different across epochs");
  int32_t a[1000], b[1000], c[1000];
  dmx_epoch_order(a, 1000, 42, 0);
  dmx_epoch_order(b, 1000, 42, 0);
  dmx_epoch_order(c, 1000, 42, 1);
  CHECK(!memcmp(a, b, sizeof a));
  CHECK(memcmp(a, c, sizeof a) != 0);
  int seen[1000] = {0}, fixed = 0;
  for (int i = 0; i < 1000; i++) seen[a[i]]++, fixed += a[i] == i;
  int bad = 0;
  for (int i = 0; i < 1000; i++) bad += seen[i] != 1;
  CHECK(bad == 0 && fixed < 20);
  /* splitmix64 reference values for state 0 (Vigna's splitmix64.c). */
  uint64_t s = 0;
  CHECK(dmx_splitmix64(&s) == 0xE220A8397B1DCDAFull);
  CHECK(dmx_splitmix64(&s) == 0x6E789E6AA1B965F4ull);
  th_end();
}

int main(void) {
  test_alloc_checks();
  test_positions();
  test_index_n3();
  test_index_n40();
  test_mlp_and_plain();
  test_token_labels();
  test_epoch_coverage();
  test_shuffle();
  return th_finish();
}
