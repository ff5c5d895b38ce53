#include <stdio.h>

#include "host/commands.h"

int cmd_train(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "datamux train: not implemented yet\n");
  return 2;
}
