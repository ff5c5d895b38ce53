/* Metrics against hand-computed values, including the seqeval (conlleval) entity edge cases. */
#include <math.h>
#include <string.h>

#include "data/metrics.h"
#include "tests/harness.h"

#define NEAR(x, want) (fabs((x) - (want)) < 1e-9)

enum { O, BPER, IPER, BORG, IORG, BLOC, ILOC, BMISC, IMISC };
enum { PER = 1, ORG = 2, LOC = 3, MISC = 4 };

static void test_classification(void) {
  th_begin("accuracy, binary F1, Matthews");
  int32_t pred[5] = {1, 1, 0, 0, 1}, gold[5] = {1, 0, 1, 0, 1};
  CHECK(NEAR(dmx_accuracy(pred, gold, 5), 0.6));
  CHECK(dmx_accuracy(pred, gold, 0) == 0);
  /* tp 2, fp 1, fn 1: F1 = 4/6; MCC = (3*5 - (2*2+3*3)) / (25-13) = 2/12. */
  CHECK(NEAR(dmx_f1_binary(pred, gold, 5), 4.0 / 6));
  CHECK(NEAR(dmx_matthews(pred, gold, 5), 2.0 / 12));
  int32_t zeros[5] = {0, 0, 0, 0, 0};
  CHECK(dmx_f1_binary(zeros, gold, 5) == 0); /* no predicted positive */
  CHECK(dmx_matthews(zeros, gold, 5) == 0);  /* constant prediction */
  CHECK(NEAR(dmx_matthews(gold, gold, 5), 1));
  int32_t inv[5] = {0, 1, 0, 1, 0};
  CHECK(NEAR(dmx_matthews(inv, gold, 5), -1));
  /* 3 classes: gold 0 1 2 2, pred 0 2 2 1 -> c=2, s=4, p=(1,1,2), t=(1,1,2):
   * (8 - 6) / (16 - 6) = 0.2 */
  int32_t g3[4] = {0, 1, 2, 2}, p3[4] = {0, 2, 2, 1};
  CHECK(NEAR(dmx_matthews(p3, g3, 4), 0.2));
  dmx_glue_scores s = dmx_glue_metrics("qqp", pred, gold, NULL, NULL, 5);
  CHECK(NEAR(s.accuracy, 0.6) && NEAR(s.f1, 4.0 / 6) && isnan(s.matthews));
  s = dmx_glue_metrics("cola", pred, gold, NULL, NULL, 5);
  CHECK(isnan(s.accuracy) && NEAR(s.matthews, 2.0 / 12));
  th_end();
}

static void test_correlation(void) {
  th_begin("Pearson and Spearman (ties averaged)");
  float x[4] = {1, 2, 3, 4}, y2[4] = {2, 4, 6, 8}, yr[4] = {4, 3, 2, 1};
  CHECK(NEAR(dmx_pearson(x, y2, 4), 1) && NEAR(dmx_pearson(x, yr, 4), -1));
  float a[3] = {1, 2, 3}, b[3] = {1, 3, 2};
  CHECK(NEAR(dmx_pearson(a, b, 3), 0.5));
  /* Ranks of {1,2,2,3} are {1,2.5,2.5,4}: rho = 4.5/sqrt(4.5*5) (scipy: 0.9486832980505138). */
  float t[4] = {1, 2, 2, 3};
  CHECK(fabs(dmx_spearman(t, x, 4) - 0.9486832980505138) < 1e-7);
  /* Spearman only sees order: a monotone but non-linear relation is 1. */
  float sq[4] = {1, 4, 9, 100};
  CHECK(NEAR(dmx_spearman(x, sq, 4), 1) && dmx_pearson(x, sq, 4) < 0.99);
  float c[4] = {3, 3, 3, 3};
  CHECK(isnan(dmx_pearson(x, c, 4)) && isnan(dmx_spearman(c, x, 4)) && isnan(dmx_pearson(x, x, 1)));
  dmx_glue_scores s = dmx_glue_metrics("stsb", NULL, NULL, a, b, 3);
  CHECK(NEAR(s.pearson, 0.5) && NEAR(s.spearman, 0.5) && isnan(s.accuracy));
  th_end();
}

static int entities(const int32_t *tags, int n, dmx_entity *e) { return dmx_ner_entities(tags, n, e, 16); }

static bool is_entity(dmx_entity e, int type, int first, int last) {
  return e.type == type && e.first == first && e.last == last;
}

static void test_entities(void) {
  th_begin("entity spans under seqeval's default (conlleval) rules");
  dmx_entity e[16];
  /* I- after O (or at the start) begins an entity. */
  int32_t s1[3] = {IPER, IPER, O};
  CHECK(entities(s1, 3, e) == 1 && is_entity(e[0], PER, 0, 1));
  /* B- always begins a new entity, even after the same type. */
  int32_t s2[3] = {BPER, IPER, BPER};
  CHECK(entities(s2, 3, e) == 2 && is_entity(e[0], PER, 0, 1) && is_entity(e[1], PER, 2, 2));
  /* A type change ends one entity and begins another, even with I-. */
  int32_t s3[3] = {IPER, IORG, IORG};
  CHECK(entities(s3, 3, e) == 2 && is_entity(e[0], PER, 0, 0) && is_entity(e[1], ORG, 1, 2));
  int32_t s4[2] = {BPER, IORG};
  CHECK(entities(s4, 2, e) == 2 && is_entity(e[0], PER, 0, 0) && is_entity(e[1], ORG, 1, 1));
  /* O in the middle; entity running to the sentence end. */
  int32_t s5[5] = {O, ILOC, ILOC, O, BMISC};
  CHECK(entities(s5, 5, e) == 2 && is_entity(e[0], LOC, 1, 2) && is_entity(e[1], MISC, 4, 4));
  int32_t s6[4] = {O, O, O, O};
  CHECK(entities(s6, 4, e) == 0 && entities(s6, 0, e) == 0);
  int32_t s7[4] = {BLOC, ILOC, BLOC, IMISC};
  CHECK(entities(s7, 4, e) == 3 && is_entity(e[1], LOC, 2, 2) && is_entity(e[2], MISC, 3, 3));
  th_end();
}

static void test_ner_scores(void) {
  th_begin("NER precision/recall/F1/accuracy over sentences, hand-computed");
  /* S1 gold PER(0,1) LOC(3)        pred PER(0,1) ORG(3)        -> 1 correct
   * S2 gold ORG(0,1) via I- start  pred ORG(0,1) via B- start  -> 1 correct (same span and type)
   * S3 gold MISC(0)                pred MISC(0) PER(1)         -> 1 correct
   * S4 gold MISC(0)                pred MISC(0)                -> 1 correct
   * gold 5, pred 6, correct 4: P 4/6, R 4/5, F1 8/11; tokens 6 of 10 equal. */
  int32_t gold[10] = {BPER, IPER, O, BLOC, IORG, IORG, O, BMISC, O, IMISC};
  int32_t pred[10] = {BPER, IPER, O, BORG, BORG, IORG, O, IMISC, IPER, IMISC};
  int starts[5] = {0, 4, 7, 9, 10};
  dmx_ner_scores s = dmx_ner_metrics(pred, gold, starts, 4);
  CHECKF(s.n_gold == 5 && s.n_pred == 6 && s.n_correct == 4, "gold %ld pred %ld correct %ld", s.n_gold, s.n_pred,
         s.n_correct);
  CHECK(NEAR(s.precision, 4.0 / 6) && NEAR(s.recall, 0.8) && NEAR(s.f1, 8.0 / 11) && NEAR(s.accuracy, 0.6));
  /* An entity never spans a sentence boundary: B-PER | I-PER is two entities, so a prediction
   * treating them as one sentence-crossing span cannot exist. */
  int32_t two[2] = {BPER, IPER};
  int split[3] = {0, 1, 2}, joined[2] = {0, 2};
  CHECK(dmx_ner_metrics(two, two, split, 2).n_gold == 2 && dmx_ner_metrics(two, two, joined, 1).n_gold == 1);
  /* The same two sentences laid out as batch rows of L=4 with -100 on specials, sub-tokens and
   * pads, plus an unscored padding row that must not count. */
  int32_t rl[12] = {-100, BPER, IPER, -100, -100, BPER, -100, -100, -100, BPER, -100, -100};
  int32_t rp[12] = {0, BPER, IPER, 7, 7, BPER, 7, 7, 0, BPER, 0, 0};
  uint8_t scored[3] = {1, 1, 0};
  dmx_ner_scores t = dmx_ner_metrics_tokens(rp, rl, 3, 4, scored);
  CHECK(t.n_gold == 2 && t.n_pred == 2 && t.n_correct == 2 && NEAR(t.accuracy, 1));
  t = dmx_ner_metrics_tokens(rp, rl, 3, 4, NULL);
  CHECK(t.n_gold == 3);
  /* Nothing predicted: everything 0, not NaN. */
  int32_t none[10] = {0};
  s = dmx_ner_metrics(none, gold, starts, 4);
  CHECK(s.precision == 0 && s.recall == 0 && s.f1 == 0 && s.n_pred == 0);
  th_end();
}

int main(void) {
  test_classification();
  test_correlation();
  test_entities();
  test_ner_scores();
  return th_finish();
}
