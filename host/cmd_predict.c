#include <stdio.h>

#include "host/commands.h"

int cmd_predict(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "datamux predict: not implemented yet\n");
  return 2;
}
