#include <stdio.h>

#include "host/commands.h"

int cmd_data(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "datamux data: not implemented yet\n");
  return 2;
}
