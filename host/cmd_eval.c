#include <stdio.h>

#include "host/commands.h"

int cmd_eval(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "datamux eval: not implemented yet\n");
  return 2;
}
