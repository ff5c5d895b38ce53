#include <stdio.h>

#include "host/commands.h"

int cmd_config(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "datamux config: not implemented yet\n");
  return 2;
}
