#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/commands.h"
#include "host/runtime.h"

int cmd_devices(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      printf("usage: datamux devices\nLists every OpenCL platform and device. Choose one for other commands with\n"
             "--device INDEX|NAME-SUBSTRING or DATAMUX_DEVICE; the default is the first GPU, else the first device.\n");
      return 0;
    }
    fprintf(stderr, "datamux devices: unknown argument '%s'\n", argv[i]);
    return 2;
  }
  dmx_device_info *devs;
  int n = dmx_list_devices(&devs);
  if (n == 0) {
    fprintf(stderr, "datamux devices: no OpenCL device found; install a driver (apt-get install pocl-opencl-icd for "
                    "the CPU, or your GPU vendor's ICD) and check with `clinfo -l`\n");
    return 1;
  }
  dmx_print_devices(stdout, devs, n);
  free(devs);
  return 0;
}
