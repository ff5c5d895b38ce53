#include "data/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/common.h"

double dmx_accuracy(const int32_t *pred, const int32_t *gold, int n) {
  if (n <= 0) return 0;
  int hit = 0;
  for (int i = 0; i < n; i++) hit += pred[i] == gold[i];
  return (double)hit / n;
}

double dmx_f1_binary(const int32_t *pred, const int32_t *gold, int n) {
  long tp = 0, fp = 0, fn = 0;
  for (int i = 0; i < n; i++) {
    tp += pred[i] == 1 && gold[i] == 1;
    fp += pred[i] == 1 && gold[i] != 1;
    fn += pred[i] != 1 && gold[i] == 1;
  }
  if (tp == 0) return 0; /* covers the undefined cases: no predicted or no true positives */
  return 2.0 * tp / (2.0 * tp + fp + fn);
}

double dmx_matthews(const int32_t *pred, const int32_t *gold, int n) {
  /* sklearn: (c*s - sum_k p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)) over the classes
   * that occur. Class ids are small; count them in a table sized by the largest id. */
  int32_t maxid = 0;
  for (int i = 0; i < n; i++) {
    if (pred[i] > maxid) maxid = pred[i];
    if (gold[i] > maxid) maxid = gold[i];
  }
  double *p = dmx_calloc((size_t)maxid + 1, sizeof *p), *t = dmx_calloc((size_t)maxid + 1, sizeof *t);
  double c = 0, s = n;
  for (int i = 0; i < n; i++) {
    if (pred[i] < 0 || gold[i] < 0) continue; /* ids are non-negative by contract */
    p[pred[i]]++;
    t[gold[i]]++;
    c += pred[i] == gold[i];
  }
  double pt = 0, pp = 0, tt = 0;
  for (int32_t k = 0; k <= maxid; k++) {
    pt += p[k] * t[k];
    pp += p[k] * p[k];
    tt += t[k] * t[k];
  }
  free(p);
  free(t);
  double den = sqrt((s * s - pp) * (s * s - tt));
  if (den == 0) return 0;
  return (c * s - pt) / den;
}

double dmx_pearson(const float *x, const float *y, int n) {
  if (n < 2) return NAN;
  double mx = 0, my = 0;
  for (int i = 0; i < n; i++) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  double sxy = 0, sxx = 0, syy = 0;
  for (int i = 0; i < n; i++) {
    double dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx == 0 || syy == 0) return NAN;
  return sxy / sqrt(sxx * syy);
}

static const float *rank_keys;
static int by_key(const void *a, const void *b) {
  float x = rank_keys[*(const int *)a], y = rank_keys[*(const int *)b];
  return (x > y) - (x < y);
}

/* 1-based ranks; a run of equal values shares the mean of the ranks it spans. */
static void average_ranks(const float *v, int n, float *rank) {
  int *idx = dmx_malloc((size_t)n * sizeof *idx);
  for (int i = 0; i < n; i++) idx[i] = i;
  rank_keys = v;
  qsort(idx, (size_t)n, sizeof *idx, by_key);
  for (int i = 0; i < n;) {
    int j = i;
    while (j + 1 < n && v[idx[j + 1]] == v[idx[i]]) j++;
    float r = (float)((i + 1 + j + 1) / 2.0);
    for (int k = i; k <= j; k++) rank[idx[k]] = r;
    i = j + 1;
  }
  free(idx);
}

double dmx_spearman(const float *x, const float *y, int n) {
  if (n < 2) return NAN;
  float *rx = dmx_malloc((size_t)n * sizeof *rx), *ry = dmx_malloc((size_t)n * sizeof *ry);
  average_ranks(x, n, rx);
  average_ranks(y, n, ry);
  double r = dmx_pearson(rx, ry, n);
  free(rx);
  free(ry);
  return r;
}

dmx_glue_scores dmx_glue_metrics(const char *task, const int32_t *pred, const int32_t *gold, const float *pred_scores,
                                 const float *gold_scores, int n) {
  dmx_glue_scores s = {NAN, NAN, NAN, NAN, NAN};
  if (!strcmp(task, "stsb")) {
    s.pearson = dmx_pearson(pred_scores, gold_scores, n);
    s.spearman = dmx_spearman(pred_scores, gold_scores, n);
  } else if (!strcmp(task, "cola")) {
    s.matthews = dmx_matthews(pred, gold, n);
  } else {
    s.accuracy = dmx_accuracy(pred, gold, n);
    if (!strcmp(task, "mrpc") || !strcmp(task, "qqp")) s.f1 = dmx_f1_binary(pred, gold, n);
  }
  return s;
}

/* Tag id -> (prefix, type) for the HF order O B-PER I-PER B-ORG I-ORG B-LOC I-LOC B-MISC I-MISC.
 * Type 0 is O; anything outside the table is treated as O (callers pass valid ids). */
static char tag_prefix(int32_t id) { return id >= 1 && id <= 8 ? ((id % 2) ? 'B' : 'I') : 'O'; }
static int tag_type(int32_t id) { return id >= 1 && id <= 8 ? (id + 1) / 2 : 0; }

/* seqeval 1.2.2 end_of_chunk / start_of_chunk restricted to IOB2 tags (B, I, O). */
static int chunk_ends(char prev_tag, int prev_type, char tag, int type) {
  if (prev_tag == 'B' && (tag == 'B' || tag == 'O')) return 1;
  if (prev_tag == 'I' && (tag == 'B' || tag == 'O')) return 1;
  return prev_tag != 'O' && prev_type != type;
}
static int chunk_starts(char prev_tag, int prev_type, char tag, int type) {
  if (tag == 'B') return 1;
  if (prev_tag == 'O' && tag == 'I') return 1;
  return tag != 'O' && prev_type != type;
}

int dmx_ner_entities(const int32_t *tags, int n, dmx_entity *out, int cap) {
  char prev_tag = 'O';
  int prev_type = 0, begin = 0, count = 0;
  /* One extra O at the end closes an entity that reaches the sentence end. */
  for (int i = 0; i <= n; i++) {
    char tag = i < n ? tag_prefix(tags[i]) : 'O';
    int type = i < n ? tag_type(tags[i]) : 0;
    if (chunk_ends(prev_tag, prev_type, tag, type)) {
      if (count < cap) out[count] = (dmx_entity){prev_type, begin, i - 1};
      count++;
    }
    if (chunk_starts(prev_tag, prev_type, tag, type)) begin = i;
    prev_tag = tag;
    prev_type = type;
  }
  return count;
}

dmx_ner_scores dmx_ner_metrics(const int32_t *pred, const int32_t *gold, const int *sentence_start, int n_sentences) {
  dmx_ner_scores s = {0};
  long tokens = 0, token_hits = 0;
  int cap = 0;
  dmx_entity *pe = NULL, *ge = NULL;
  for (int k = 0; k < n_sentences; k++) {
    int a = sentence_start[k], len = sentence_start[k + 1] - a;
    if (len + 1 > cap) {
      cap = len + 1;
      pe = dmx_realloc(pe, (size_t)cap * sizeof *pe);
      ge = dmx_realloc(ge, (size_t)cap * sizeof *ge);
    }
    int np = dmx_ner_entities(pred + a, len, pe, cap);
    int ng = dmx_ner_entities(gold + a, len, ge, cap);
    /* Entities are ordered by start and do not overlap, so a merge finds the exact matches. */
    for (int i = 0, j = 0; i < np && j < ng;) {
      if (pe[i].first < ge[j].first) {
        i++;
      } else if (pe[i].first > ge[j].first) {
        j++;
      } else {
        s.n_correct += pe[i].last == ge[j].last && pe[i].type == ge[j].type;
        i++;
        j++;
      }
    }
    s.n_pred += np;
    s.n_gold += ng;
    for (int i = a; i < a + len; i++) token_hits += pred[i] == gold[i];
    tokens += len;
  }
  free(pe);
  free(ge);
  s.precision = s.n_pred ? (double)s.n_correct / s.n_pred : 0;
  s.recall = s.n_gold ? (double)s.n_correct / s.n_gold : 0;
  s.f1 = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0;
  s.accuracy = tokens ? (double)token_hits / tokens : 0;
  return s;
}

dmx_ner_scores dmx_ner_metrics_tokens(const int32_t *pred, const int32_t *labels, int rows, int L,
                                      const uint8_t *scored) {
  size_t cells = (size_t)rows * (size_t)L;
  int32_t *p = dmx_malloc(cells * sizeof *p), *g = dmx_malloc(cells * sizeof *g);
  int *starts = dmx_malloc(((size_t)rows + 1) * sizeof *starts);
  int n = 0, sentences = 0;
  starts[0] = 0;
  for (int r = 0; r < rows; r++) {
    if (scored && !scored[r]) continue;
    for (int j = 0; j < L; j++) {
      size_t k = (size_t)r * (size_t)L + (size_t)j;
      if (labels[k] == -100) continue;
      p[n] = pred[k];
      g[n] = labels[k];
      n++;
    }
    starts[++sentences] = n;
  }
  dmx_ner_scores s = dmx_ner_metrics(p, g, starts, sentences);
  free(p);
  free(g);
  free(starts);
  return s;
}
