#include "data/dataset_types.h"

#include <stdlib.h>
#include <string.h>

void dmx_dataset_free(dmx_dataset *d) {
  free(d->ids);
  free(d->labels);
  free(d->scores);
  free(d->token_labels);
  memset(d, 0, sizeof *d);
}

void dmx_dataset_alloc(dmx_dataset *d, int n, int L, dmx_target_kind kind) {
  memset(d, 0, sizeof *d);
  d->n = n, d->L = L, d->kind = kind;
  size_t cells = (size_t)n * (size_t)L;
  d->ids = dmx_malloc(cells * sizeof *d->ids);
  for (size_t i = 0; i < cells; i++) d->ids[i] = DMX_PAD_ID;
  if (kind == DMX_TARGET_CLASS) d->labels = dmx_malloc((size_t)n * sizeof *d->labels);
  if (kind == DMX_TARGET_SCORE) d->scores = dmx_malloc((size_t)n * sizeof *d->scores);
  if (kind == DMX_TARGET_TOKENS) {
    d->token_labels = dmx_malloc(cells * sizeof *d->token_labels);
    for (size_t i = 0; i < cells; i++) d->token_labels[i] = DMX_IGNORE_LABEL;
  }
}
