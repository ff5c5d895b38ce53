/* Dataset loading: real GLUE and CoNLL-2003 files with their exact counts, malformed files with
 * their exact messages, encoding through a stand-in tokenizer, the front door and raw text. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/conll.h"
#include "data/dataset.h"
#include "data/glue.h"
#include "data/text.h"
#include "tests/data_fake_encoder.h"
#include "tests/harness.h"

#define FIX "tests/fixtures/data/"

/* Shared data is required: a missing DATAMUX_DATA fails the case instead of skipping it. */
static const char *need_data(const char *rel) {
  const char *p = th_data_path(rel);
  CHECKF(p != NULL, "DATAMUX_DATA is not set: point it at the shared data folder (e.g. ../shared/data)");
  return p;
}

static void label_counts(const dmx_glue_data *g, int *counts, int k) {
  memset(counts, 0, (size_t)k * sizeof *counts);
  for (int i = 0; i < g->n; i++)
    if (g->labels[i] >= 0 && g->labels[i] < k) counts[g->labels[i]]++;
}

static void check_sst2_file(const char *rel, bool need_labels, int rows, int neg, int pos) {
  const char *path = need_data(rel);
  if (!path) return;
  dmx_glue_data g;
  dmx_error err = {{0}};
  int rc = dmx_glue_load(dmx_glue_find("sst2"), path, need_labels, &g, &err);
  CHECKF(rc == 0, "%s: %s", rel, err.msg);
  if (rc != 0) return;
  CHECKF(g.n == rows, "%s: %d rows, want %d", rel, g.n, rows);
  int c[2];
  label_counts(&g, c, 2);
  CHECKF(c[0] == neg && c[1] == pos, "%s: labels %d/%d, want %d/%d", rel, c[0], c[1], neg, pos);
  if (neg + pos == 0) CHECK(!g.has_labels && g.labels[0] == -1 && g.labels[g.n - 1] == -1);
  dmx_glue_free(&g);
}

static void test_sst2_real(void) {
  th_begin("sst2 real files: rows and label histograms");
  check_sst2_file("glue/SST-2/train.tsv", true, 67349, 29780, 37569);
  check_sst2_file("glue/SST-2/dev.tsv", true, 872, 428, 444);
  check_sst2_file("glue/SST-2/test.tsv", false, 1821, 0, 0);
  check_sst2_file("glue/SST-2/test-labeled.tsv", false, 1821, 917, 904); /* CRLF file */
  const char *path = need_data("glue/SST-2/dev.tsv");
  dmx_glue_data g;
  dmx_error err;
  if (path && dmx_glue_load(dmx_glue_find("sst2"), path, true, &g, &err) == 0) {
    CHECK(!strcmp(g.text_a[0], "it 's a charming and often affecting journey . "));
    CHECK(g.labels[0] == 1 && g.labels[1] == 0);
    CHECK(g.text_b == NULL);
    char line[1024];
    dmx_glue_summary(&g, line, sizeof line);
    CHECKF(strstr(line, "872 rows, labels: negative 428, positive 444") != NULL, "summary: %s", line);
    dmx_glue_free(&g);
  }
  th_end();
}

static void test_qnli_real(void) {
  th_begin("qnli dev: 5463 rows, label names mapped to HF ids");
  const char *path = need_data("glue/QNLI/dev.tsv");
  dmx_glue_data g;
  dmx_error err = {{0}};
  if (path) {
    int rc = dmx_glue_load(dmx_glue_find("qnli"), path, true, &g, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
      CHECK(g.n == 5463);
      int c[2];
      label_counts(&g, c, 2);
      CHECKF(c[0] == 2702 && c[1] == 2761, "entailment %d not_entailment %d", c[0], c[1]);
      CHECK(!strcmp(g.text_a[0], "What came into force after the new constitution was herald?"));
      CHECK(!strncmp(g.text_b[0], "As of that day, the new constitution heralding", 46));
      CHECK(g.labels[0] == 0 && g.labels[1] == 1);
      dmx_glue_free(&g);
    }
  }
  th_end();
}

static bool load_conll(const char *rel, dmx_conll_scheme scheme, dmx_conll *c) {
  const char *path = need_data(rel);
  if (!path) return false;
  dmx_error err = {{0}};
  int rc = dmx_conll_load(path, scheme, c, &err);
  CHECKF(rc == 0, "%s: %s", rel, err.msg);
  return rc == 0;
}

static void test_conll_counts(void) {
  th_begin("conll2003: exact sentence and token counts, IOB2 and original IOB1 copies");
  static const struct {
    const char *iob2, *iob1;
    int sentences, tokens;
  } files[] = {{"conll2003/train.txt", "conll2003/original_iob1/eng.train", 14041, 203621},
               {"conll2003/valid.txt", "conll2003/original_iob1/eng.testa", 3250, 51362},
               {"conll2003/test.txt", "conll2003/original_iob1/eng.testb", 3453, 46435}};
  for (int f = 0; f < 3; f++) {
    dmx_conll a, b;
    bool ok_a = load_conll(files[f].iob2, DMX_CONLL_IOB2, &a);
    bool ok_b = load_conll(files[f].iob1, DMX_CONLL_IOB1, &b);
    if (ok_a) {
      CHECKF(a.n_sentences == files[f].sentences && a.n_tokens == files[f].tokens, "%s: %d sentences %d tokens",
             files[f].iob2, a.n_sentences, a.n_tokens);
    }
    if (ok_b) {
      CHECKF(b.n_sentences == files[f].sentences && b.n_tokens == files[f].tokens, "%s: %d sentences %d tokens",
             files[f].iob1, b.n_sentences, b.n_tokens);
    }
    if (ok_a && ok_b && a.n_tokens == b.n_tokens && a.n_sentences == b.n_sentences) {
      int bad = 0, first_bad = -1;
      for (int s = 0; s <= a.n_sentences; s++) bad += a.sentence_start[s] != b.sentence_start[s];
      for (int i = 0; i < a.n_tokens; i++) {
        bool same = !strcmp(a.words[i], b.words[i]) && !strcmp(a.pos[i], b.pos[i]) && !strcmp(a.chunk[i], b.chunk[i]) &&
                    a.ner[i] == b.ner[i];
        if (!same && first_bad < 0) first_bad = i;
        bad += !same;
      }
      CHECKF(bad == 0, "%s vs %s: %d differences after IOB1->IOB2, first at token %d", files[f].iob2, files[f].iob1,
             bad, first_bad);
    }
    if (f == 0 && ok_a) {
      static const int want[9] = {169578, 6600, 4528, 6321, 3704, 7140, 1157, 3438, 1155};
      int got[9] = {0};
      for (int i = 0; i < a.n_tokens; i++) got[a.ner[i]]++;
      for (int k = 0; k < 9; k++)
        CHECKF(got[k] == want[k], "train %s: %d, want %d", dmx_ner_label_names[k], got[k], want[k]);
      CHECK(!strcmp(a.words[0], "EU") && a.ner[0] == 3 && !strcmp(a.chunk[0], "B-NP"));
    }
    if (ok_a) dmx_conll_free(&a);
    if (ok_b) dmx_conll_free(&b);
  }
  th_end();
}

typedef struct {
  const char *task, *file;
  bool labels_required;
  const char *want; /* substring of the message, including file:line where there is one */
} bad_glue_case;

static void test_glue_malformed(void) {
  th_begin("glue: malformed files fail with file:line and the reason");
  static const bad_glue_case cases[] = {
      {"sst2", "sst2_bad_columns.tsv", true, "sst2_bad_columns.tsv:3: wrong column count: expected 2"},
      {"sst2", "sst2_unknown_label.tsv", true, "sst2_unknown_label.tsv:3: unknown label '2' for sst2"},
      {"sst2", "sst2_bad_utf8.tsv", true, "sst2_bad_utf8.tsv:3: invalid UTF-8 at byte 5"},
      {"sst2", "sst2_cut_utf8.tsv", true, "sst2_cut_utf8.tsv:2: invalid UTF-8"},
      {"sst2", "sst2_nul.tsv", true, "sst2_nul.tsv:2: NUL byte"},
      {"sst2", "sst2_empty.tsv", true, "sst2_empty.tsv: file is empty"},
      {"sst2", "no_such_file.tsv", true, "no_such_file.tsv: cannot open"},
      {"sst2", "sst2_header_mismatch.tsv", true, "sst2_header_mismatch.tsv:1: header mismatch: no column 'sentence'"},
      {"sst2", "sst2_no_label_column.tsv", true,
       "sst2_no_label_column.tsv:1: header mismatch: no label column 'label'"},
      {"sst2", "sst2_header_only.tsv", true, "sst2_header_only.tsv: no data rows"},
      {"sst2", "sst2_blank_line.tsv", true, "sst2_blank_line.tsv:3: empty line"},
      {"mnli", "mnli_unknown_label.tsv", true, "mnli_unknown_label.tsv:3: unknown label 'maybe' for mnli"},
      {"stsb", "stsb_bad_score.tsv", true, "stsb_bad_score.tsv:3: bad score 'abc'"},
      {"qnli", "sst2_crlf.tsv", true, "sst2_crlf.tsv:1: header mismatch: no column 'question'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char path[512];
    snprintf(path, sizeof path, FIX "%s", cases[i].file);
    dmx_glue_data g;
    dmx_error err = {{0}};
    int rc = dmx_glue_load(dmx_glue_find(cases[i].task), path, cases[i].labels_required, &g, &err);
    CHECKF(rc == -1, "%s: loaded although malformed", cases[i].file);
    CHECKF(strstr(err.msg, cases[i].want) != NULL, "%s: message '%s' lacks '%s'", cases[i].file, err.msg,
           cases[i].want);
    if (rc == 0) dmx_glue_free(&g);
  }
  th_end();
}

static void test_glue_variants(void) {
  th_begin("glue: CRLF, headerless CoLA, MRPC byte-order mark, MNLI names, unlabeled test");
  dmx_glue_data g;
  dmx_error err = {{0}};
  CHECKF(dmx_glue_load(dmx_glue_find("sst2"), FIX "sst2_crlf.tsv", true, &g, &err) == 0, "%s", err.msg);
  if (g.n) {
    CHECK(g.n == 3 && !strcmp(g.text_a[1], "second ") && g.labels[1] == 1 && g.labels[2] == 1);
    dmx_glue_free(&g);
  }
  CHECKF(dmx_glue_load(dmx_glue_find("cola"), FIX "cola_headerless.tsv", true, &g, &err) == 0, "%s", err.msg);
  if (g.n) {
    CHECK(g.n == 2 && g.labels[0] == 1 && g.labels[1] == 0 && !strcmp(g.text_a[1], "They drank the pub."));
    dmx_glue_free(&g);
  }
  CHECKF(dmx_glue_load(dmx_glue_find("mrpc"), FIX "mrpc_bom.tsv", true, &g, &err) == 0, "%s", err.msg);
  if (g.n) {
    CHECK(g.n == 2 && g.labels[0] == 1 && !strcmp(g.text_b[0], "A b!"));
    dmx_glue_free(&g);
  }
  CHECKF(dmx_glue_load(dmx_glue_find("mnli"), FIX "mnli_good.tsv", true, &g, &err) == 0, "%s", err.msg);
  if (g.n) {
    CHECK(g.n == 3 && g.labels[0] == 0 && g.labels[1] == 1 && g.labels[2] == 2);
    CHECK(!strcmp(g.text_a[0], "A man.") && !strcmp(g.text_b[0], "A person."));
    dmx_glue_free(&g);
  }
  CHECKF(dmx_glue_load(dmx_glue_find("sst2"), FIX "sst2_no_label_column.tsv", false, &g, &err) == 0, "%s", err.msg);
  if (g.n) {
    CHECK(g.n == 1 && !g.has_labels && g.labels[0] == -1 && !strcmp(g.text_a[0], "no labels here"));
    dmx_glue_free(&g);
  }
  CHECK(dmx_glue_find("stsb")->num_labels == 1 && dmx_glue_find("nope") == NULL);
  CHECK(dmx_glue_parse_label(dmx_glue_find("qqp"), "1") == 1 && dmx_glue_parse_label(dmx_glue_find("qqp"), "2") == -1);
  CHECK(dmx_glue_parse_label(dmx_glue_find("rte"), "not_entailment") == 1);
  CHECK(dmx_glue_parse_label(dmx_glue_find("mnli"), "contradiction") == 2);
  th_end();
}

static void test_conll_fixtures(void) {
  th_begin("conll: -DOCSTART- anywhere, no final newline, IOB1 conversion, malformed lines");
  dmx_conll c;
  dmx_error err = {{0}};
  int rc = dmx_conll_load(FIX "conll_docstart.txt", DMX_CONLL_IOB2, &c, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc == 0) {
    CHECKF(c.n_sentences == 3 && c.n_tokens == 5, "%d sentences %d tokens", c.n_sentences, c.n_tokens);
    CHECK(c.sentence_start[1] == 2 && c.sentence_start[2] == 4 && c.sentence_start[3] == 5);
    CHECK(!strcmp(c.words[4], "BRUSSELS") && c.ner[4] == 5 && c.ner[2] == 1 && c.ner[3] == 2);
    dmx_conll_free(&c);
  }
  dmx_conll want;
  rc = dmx_conll_load(FIX "conll_iob1.txt", DMX_CONLL_IOB1, &c, &err);
  CHECKF(rc == 0, "%s", err.msg);
  int rc2 = dmx_conll_load(FIX "conll_iob2_expected.txt", DMX_CONLL_IOB2, &want, &err);
  CHECKF(rc2 == 0, "%s", err.msg);
  if (rc == 0 && rc2 == 0) {
    CHECK(c.n_tokens == want.n_tokens && c.n_sentences == 2);
    for (int i = 0; i < c.n_tokens && i < want.n_tokens; i++) {
      CHECKF(c.ner[i] == want.ner[i], "token %d (%s): ner %s, want %s", i, c.words[i], dmx_ner_label_names[c.ner[i]],
             dmx_ner_label_names[want.ner[i]]);
      CHECKF(!strcmp(c.chunk[i], want.chunk[i]), "token %d (%s): chunk %s, want %s", i, c.words[i], c.chunk[i],
             want.chunk[i]);
    }
  }
  if (rc == 0) dmx_conll_free(&c);
  if (rc2 == 0) dmx_conll_free(&want);
  static const struct {
    const char *file, *want;
  } bad[] = {
      {"conll_bad_columns.txt", "conll_bad_columns.txt:5: wrong column count: expected 4"},
      {"conll_bad_tag.txt", "conll_bad_tag.txt:2: unknown NER tag 'B-FOO'"},
      {"conll_empty_column.txt", "conll_empty_column.txt:1: wrong column count"},
      {"conll_bad_chunk.txt", "conll_bad_chunk.txt:1: bad chunk tag 'XX'"},
      {"conll_only_docstart.txt", "conll_only_docstart.txt: no sentences"},
      {"sst2_empty.tsv", "sst2_empty.tsv: file is empty"},
      {"conll_bad_utf8.txt", "conll_bad_utf8.txt:2: invalid UTF-8"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char path[512];
    snprintf(path, sizeof path, FIX "%s", bad[i].file);
    memset(&err, 0, sizeof err);
    rc = dmx_conll_load(path, DMX_CONLL_IOB2, &c, &err);
    CHECKF(rc == -1, "%s: loaded although malformed", bad[i].file);
    CHECKF(strstr(err.msg, bad[i].want) != NULL, "%s: message '%s' lacks '%s'", bad[i].file, err.msg, bad[i].want);
    if (rc == 0) dmx_conll_free(&c);
  }
  th_end();
}

static void test_encode_glue(void) {
  th_begin("encoded GLUE dataset: ids padded with 1, labels copied, truncation counted");
  dmx_glue_data g;
  dmx_error err = {{0}};
  if (dmx_glue_load(dmx_glue_find("mnli"), FIX "mnli_good.tsv", true, &g, &err) != 0) {
    CHECKF(0, "%s", err.msg);
    th_end();
    return;
  }
  dmx_dataset d;
  CHECK(dmx_dataset_from_glue(&g, &fake_encoder, 8, &d, &err) == 0);
  /* "A man." / "A person." -> <s> 1001 1004 </s></s> 1001 1007 </s> */
  static const int32_t row0[8] = {0, 1001, 1004, 2, 2, 1001, 1007, 2};
  static const int32_t row1[8] = {0, 1002, 2, 2, 1002, 2, 1, 1};
  CHECK(!memcmp(d.ids, row0, sizeof row0) && !memcmp(d.ids + 8, row1, sizeof row1));
  CHECK(d.n == 3 && d.L == 8 && d.kind == DMX_TARGET_CLASS && d.labels[2] == 2 && d.n_truncated == 0);
  dmx_dataset_free(&d);
  CHECK(dmx_dataset_from_glue(&g, &fake_encoder, 6, &d, &err) == 0);
  CHECKF(d.n_truncated == 1, "truncated %d", d.n_truncated);
  dmx_dataset_free(&d);
  dmx_glue_free(&g);
  th_end();
}

static void test_encode_conll(void) {
  th_begin("encoded NER dataset: first sub-token gets the word's label, the rest -100");
  dmx_conll c;
  dmx_error err = {{0}};
  if (dmx_conll_load(FIX "conll_docstart.txt", DMX_CONLL_IOB2, &c, &err) != 0) {
    CHECKF(0, "%s", err.msg);
    th_end();
    return;
  }
  dmx_dataset d;
  CHECK(dmx_dataset_from_conll(&c, &fake_encoder, 6, &d, &err) == 0);
  /* Sentence 0: EU (1 piece) rejects (3 pieces): <s> EU re jec ts </s> */
  static const int32_t ids0[6] = {0, 2000, 2000, 2001, 2002, 2};
  static const int32_t lab0[6] = {-100, 3, 0, -100, -100, -100};
  /* Sentence 1: Peter (2) Blackburn (3): <s> Pe ter Bla ck </s> -- truncated */
  static const int32_t lab1[6] = {-100, 1, -100, 2, -100, -100};
  static const int32_t lab2[6] = {-100, 5, -100, -100, -100, -100};
  CHECK(!memcmp(d.ids, ids0, sizeof ids0));
  CHECK(!memcmp(d.token_labels, lab0, sizeof lab0));
  CHECK(!memcmp(d.token_labels + 6, lab1, sizeof lab1));
  CHECK(!memcmp(d.token_labels + 12, lab2, sizeof lab2));
  CHECK(d.ids[12 + 4] == 2 && d.ids[12 + 5] == 1);
  CHECKF(d.n_truncated == 1, "truncated %d", d.n_truncated);
  CHECK(d.kind == DMX_TARGET_TOKENS && d.num_labels == 9 && d.labels == NULL);
  dmx_dataset_free(&d);
  dmx_conll_free(&c);
  th_end();
}

static void test_front_door(void) {
  th_begin("front door: file layout, data root order, summary line, bad names");
  char path[4096], root[4096];
  bool need;
  dmx_conll_scheme scheme;
  dmx_error err = {{0}};
  CHECK(dmx_dataset_file("mnli", "dev", "/R", path, sizeof path, &need, &scheme, &err) == 0 &&
        !strcmp(path, "/R/glue/MNLI/dev_matched.tsv") && need);
  CHECK(dmx_dataset_file("mnli", "dev_mismatched", "/R", path, sizeof path, &need, &scheme, &err) == 0 &&
        !strcmp(path, "/R/glue/MNLI/dev_mismatched.tsv"));
  CHECK(dmx_dataset_file("sst2", "test", "/R", path, sizeof path, &need, &scheme, &err) == 0 &&
        !strcmp(path, "/R/glue/SST-2/test.tsv") && !need);
  CHECK(dmx_dataset_file("stsb", "train", "/R", path, sizeof path, &need, &scheme, &err) == 0 &&
        !strcmp(path, "/R/glue/STS-B/train.tsv"));
  CHECK(dmx_dataset_file("ner", "dev", "/R", path, sizeof path, &need, &scheme, &err) == 0 &&
        !strcmp(path, "/R/conll2003/valid.txt") && scheme == DMX_CONLL_IOB2);
  CHECK(dmx_dataset_file("ner", "iob1-test", "/R", path, sizeof path, &need, &scheme, &err) == 0 &&
        !strcmp(path, "/R/conll2003/original_iob1/eng.testb") && scheme == DMX_CONLL_IOB1);
  CHECK(dmx_dataset_file("text", "dev", "/R", path, sizeof path, &need, &scheme, &err) == 0 &&
        !strcmp(path, "/R/wikitext-103-raw/wiki.valid.raw"));
  CHECK(dmx_dataset_file("ner", "bogus", "/R", path, sizeof path, &need, &scheme, &err) == -1 &&
        strstr(err.msg, "unknown split 'bogus'"));
  CHECK(dmx_dataset_file("sst3", "dev", "/R", path, sizeof path, &need, &scheme, &err) == -1 &&
        strstr(err.msg, "unknown task 'sst3'"));
  CHECK(dmx_dataset_file("sst2", "../x", "/R", path, sizeof path, &need, &scheme, &err) == -1 &&
        strstr(err.msg, "bad split name"));

  const char *saved = getenv("DATAMUX_DATA");
  char *saved_copy = saved ? strdup(saved) : NULL;
  CHECK(!strcmp(dmx_data_root("/explicit", root, sizeof root), "/explicit"));
  setenv("DATAMUX_DATA", "/from-env", 1);
  CHECK(!strcmp(dmx_data_root(NULL, root, sizeof root), "/from-env"));
  unsetenv("DATAMUX_DATA");
  setenv("XDG_CACHE_HOME", "/xdg", 1);
  CHECKF(!strcmp(dmx_data_root("", root, sizeof root), "/xdg/datamux/data"), "%s", root);
  if (saved_copy) setenv("DATAMUX_DATA", saved_copy, 1);
  free(saved_copy);

  dmx_dataset_opts o = dmx_dataset_opts_default();
  o.task = "sst2", o.split = "dev", o.log = NULL;
  o.data_dir = th_data_path("");
  CHECKF(o.data_dir != NULL, "DATAMUX_DATA is not set");
  dmx_dataset d;
  if (o.data_dir) {
    int rc = dmx_dataset_load_with(&o, &fake_encoder, &d, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
      CHECK(d.n == 872 && d.L == 128 && d.labels[0] == 1 && d.ids[0] == 0);
      CHECKF(strstr(d.summary, "872 rows, labels: negative 428, positive 444") &&
                 strstr(d.summary, "sst2/dev: 872 rows of L=128, 0 truncated"),
             "summary: %s", d.summary);
      dmx_dataset_free(&d);
    }
    o.task = "ner";
    o.split = "iob1-dev";
    rc = dmx_dataset_load_with(&o, &fake_encoder, &d, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
      CHECK(d.n == 3250 && d.kind == DMX_TARGET_TOKENS);
      dmx_dataset_free(&d);
    }
  }
  o.data_dir = "/nonexistent-datamux";
  o.task = "qnli", o.split = "dev";
  CHECK(dmx_dataset_load_with(&o, &fake_encoder, &d, &err) == -1 &&
        strstr(err.msg, "/nonexistent-datamux/glue/QNLI/dev.tsv: not found") && strstr(err.msg, "fetch.sh"));
  o.max_length = 1000;
  CHECK(dmx_dataset_load_with(&o, &fake_encoder, &d, &err) == -1 && strstr(err.msg, "max length 1000"));
  th_end();
}

static void add_line(dmx_token_lines *t, const char *text) {
  dmx_error err;
  CHECKF(dmx_token_lines_add(t, &fake_encoder, text, &err) == 0, "%s", err.msg);
}

static void test_text_blocks(void) {
  th_begin("raw text: <s> ids </s> per line, concatenated, cut into blocks, remainders dropped per chunk");
  dmx_token_lines t = {0};
  add_line(&t, "a bb ccc"); /* 0 1001 1002 1003 2 */
  add_line(&t, "dddd");     /* 0 1004 2 */
  add_line(&t, "e f");      /* 0 1001 1001 2 */
  CHECK(t.n_lines == 3 && t.n_ids == 12 && t.line_start[1] == 5 && t.line_start[3] == 12);
  dmx_dataset d;
  dmx_error err;
  /* One chunk: 12 tokens -> 3 blocks of 4, nothing left over. */
  CHECK(dmx_text_pack_blocks(&t, 4, 0, 7, &d, &err) == 0);
  static const int32_t want[12] = {0, 1001, 1002, 1003, 2, 0, 1004, 2, 0, 1001, 1001, 2};
  CHECK(d.n == 3 && !memcmp(d.ids, want, sizeof want));
  for (int i = 0; i < d.n; i++) CHECK(d.labels[i] == 0 || d.labels[i] == 1);
  dmx_dataset_free(&d);
  /* Chunks of 2 lines: lines 0-1 give 8 tokens -> 1 block of 5 (3 dropped); line 2 gives 4 -> 0. */
  CHECK(dmx_text_pack_blocks(&t, 5, 2, 7, &d, &err) == 0);
  CHECK(d.n == 1 && !memcmp(d.ids, want, 5 * sizeof *want));
  dmx_dataset_free(&d);
  CHECK(dmx_text_pack_blocks(&t, 13, 0, 7, &d, &err) == -1 && strstr(err.msg, "not enough for one block"));
  dmx_token_lines_free(&t);

  int rc = dmx_text_lines_from_file(FIX "raw_text.txt", &fake_encoder, &t, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc == 0) {
    /* Blank and whitespace-only lines skipped; newline kept as a token except on the last line. */
    static const int32_t ids[] = {0, 1005, 1004, 50118, 2, 0, 1006, 1004, 50118, 2, 0, 1004, 1004, 1002, 1007, 2};
    CHECKF(t.n_lines == 3 && t.n_ids == 16, "%d lines %lld ids", t.n_lines, (long long)t.n_ids);
    CHECK(t.n_ids == 16 && !memcmp(t.ids, ids, sizeof ids));
    dmx_token_lines_free(&t);
  }
  dmx_glue_data g;
  if (dmx_glue_load(dmx_glue_find("mnli"), FIX "mnli_good.tsv", true, &g, &err) == 0) {
    CHECK(dmx_text_lines_from_glue(&g, &fake_encoder, &t, &err) == 0);
    CHECK(t.n_lines == 6 && t.ids[0] == 0 && t.ids[1] == 1001 && t.ids[2] == 1004 && t.ids[3] == 2);
    dmx_token_lines_free(&t);
    dmx_glue_free(&g);
  }
  th_end();
}

/* Expected ids below come from Hugging Face's RobertaTokenizerFast (transformers 5.x) built from
 * the same roberta-base files, called as run_glue.py / run_ner.py call it (padding to 128 with
 * truncation; NER with add_prefix_space and is_split_into_words). The whole of SST-2 train/dev,
 * QNLI dev and the CoNLL splits were compared that way when this was written. */
static void test_real_tokenizer(void) {
  th_begin("front door with the roberta-base tokenizer: ids and labels as Hugging Face gives them");
  dmx_dataset_opts o = dmx_dataset_opts_default();
  o.log = NULL;
  o.data_dir = need_data("");
  if (!o.data_dir) {
    th_end();
    return;
  }
  dmx_dataset d;
  dmx_error err = {{0}};
  o.task = "sst2", o.split = "dev";
  int rc = dmx_dataset_load(&o, &d, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc == 0) {
    static const int32_t row0[14] = {0, 405, 128, 29, 10, 18452, 8, 747, 7920, 3251, 479, 1437, 2, 1};
    CHECK(d.n == 872 && d.L == 128 && !memcmp(d.ids, row0, sizeof row0) && d.ids[127] == 1 && d.n_truncated == 0);
    dmx_dataset_free(&d);
  }
  o.task = "qnli";
  rc = dmx_dataset_load(&o, &d, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc == 0) {
    static const int32_t row0[33] = {0,     2264, 376, 88,   1370, 71,  5,   92,   7255, 21, 23960,
                                     116,   2,    2,   1620, 9,    14,  183, 6,    5,    92, 7255,
                                     23960, 154,  5,   4665, 3497, 376, 88,  1370, 4,    2,  1};
    CHECK(!memcmp(d.ids, row0, sizeof row0));
    CHECKF(d.n_truncated == 26, "%d pairs truncated, Hugging Face truncates 26", d.n_truncated);
    dmx_dataset_free(&d);
  }
  o.task = "ner";
  rc = dmx_dataset_load(&o, &d, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc == 0) {
    /* Sentence 1 of valid.txt: "LONDON 1996-08-30" (B-LOC O). */
    static const int32_t ids1[10] = {0, 226, 4524, 8008, 12, 3669, 12, 541, 2, 1};
    static const int32_t lab1[10] = {-100, 5, -100, 0, -100, -100, -100, -100, -100, -100};
    CHECK(d.n == 3250 && !memcmp(d.ids + 128, ids1, sizeof ids1) && !memcmp(d.token_labels + 128, lab1, sizeof lab1));
    dmx_dataset_free(&d);
  }
  o.tokenizer_dir = "/nonexistent-tokenizer";
  CHECK(dmx_dataset_load(&o, &d, &err) == -1 && strstr(err.msg, "/nonexistent-tokenizer"));
  th_end();
}

int main(void) {
  test_sst2_real();
  test_qnli_real();
  test_conll_counts();
  test_glue_malformed();
  test_glue_variants();
  test_conll_fixtures();
  test_encode_glue();
  test_encode_conll();
  test_front_door();
  test_text_blocks();
  test_real_tokenizer();
  return th_finish();
}
