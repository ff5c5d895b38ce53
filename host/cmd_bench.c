#include <stdio.h>

#include "host/commands.h"

int cmd_bench(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "datamux bench: not implemented yet\n");
  return 2;
}
