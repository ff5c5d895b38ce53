/* Evaluation metrics, matching what the original code reports: Hugging Face `glue` metrics
 * (scikit-learn / scipy semantics) and `seqeval` 1.2.2 default (conlleval) entity scores. */
#ifndef DMX_DATA_METRICS_H
#define DMX_DATA_METRICS_H

#include <stdint.h>

/* Fraction of equal entries; 0 when n == 0. */
double dmx_accuracy(const int32_t *pred, const int32_t *gold, int n);
/* Binary F1 with positive class 1 (sklearn f1_score); 0 when there is no true or predicted
 * positive, as sklearn returns with its warning. */
double dmx_f1_binary(const int32_t *pred, const int32_t *gold, int n);
/* Matthews correlation (sklearn's multiclass formula); 0 when its denominator is 0. */
double dmx_matthews(const int32_t *pred, const int32_t *gold, int n);
/* Pearson r; NAN when either side has zero variance or n < 2 (as scipy). */
double dmx_pearson(const float *x, const float *y, int n);
/* Spearman rho: Pearson of ranks, ties get the average of their ranks; NAN as for Pearson. */
double dmx_spearman(const float *x, const float *y, int n);

/* The metric set Hugging Face `glue` reports for a task (unused fields are NAN):
 * sst2/mnli/qnli/rte/wnli accuracy; mrpc/qqp accuracy+f1; cola matthews; stsb pearson+spearman.
 * For stsb pass scores (pred_scores, gold_scores); for the others class ids. */
typedef struct {
  double accuracy, f1, matthews, pearson, spearman;
} dmx_glue_scores;
dmx_glue_scores dmx_glue_metrics(const char *task, const int32_t *pred, const int32_t *gold, const float *pred_scores,
                                 const float *gold_scores, int n);

/* Entity-level scores over sentences of IOB2 tag ids (dmx_ner_label_names order), computed like
 * seqeval's default mode: an entity starts at B-X, or at I-X after O or after another type; it
 * ends at O, at a B-, at a type change, or at the sentence end. Precision/recall/F1 are micro
 * averages over all types (0 when undefined); accuracy is token-level. sentence_start has
 * n_sentences + 1 offsets into pred/gold. */
typedef struct {
  double precision, recall, f1, accuracy;
  long n_pred, n_gold, n_correct;
} dmx_ner_scores;
dmx_ner_scores dmx_ner_metrics(const int32_t *pred, const int32_t *gold, const int *sentence_start, int n_sentences);

/* The same from model outputs laid out like the batches: rows of L token predictions and token
 * labels; as run_ner.py does, only positions whose label is not -100 form each row's sentence.
 * Rows with scored[r] == 0 (padding instances) are skipped; scored may be NULL. */
dmx_ner_scores dmx_ner_metrics_tokens(const int32_t *pred, const int32_t *labels, int rows, int L,
                                      const uint8_t *scored);

/* Entities of one sentence under those rules: up to cap triples (type, first, last), type being
 * 1 PER, 2 ORG, 3 LOC, 4 MISC. Returns the number of entities. */
typedef struct {
  int type, first, last;
} dmx_entity;
int dmx_ner_entities(const int32_t *tags, int n, dmx_entity *out, int cap);

#endif
