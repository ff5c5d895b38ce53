#include <stdio.h>

#include "host/train.h"

int dmx_run_predict(const dmx_experiment *e, FILE *in, FILE *out) {
  (void)e;
  (void)in;
  (void)out;
  fprintf(stderr, "datamux predict: not implemented yet\n");
  return 2;
}
