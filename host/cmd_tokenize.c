#include <stdio.h>

#include "host/commands.h"

int cmd_tokenize(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "datamux tokenize: not implemented yet\n");
  return 2;
}
