#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/cli/commands.h"
#include "host/perf/peak.h"
#include "host/runtime/gemm.h"
#include "host/runtime/runtime.h"

/* `devices --peak`: the cached peak of one device, measured first when missing (or --remeasure). */
static int peak(const char *device, bool remeasure, const dmx_peak_opts *o) {
  dmx_runtime *rt = dmx_runtime_create(device, false, stdout);
  char path[4096];
  dmx_peak_path(rt, path, sizeof path);
  dmx_peak p;
  dmx_error err;
  int rc = 0;
  if (!remeasure && dmx_peak_load(path, &p, &err) == 0) {
    printf("cached in %s (--remeasure measures again)\n", path);
  } else {
    printf("measuring the peak of %s (SGEMM through the GEMM backend, then buffer copies)...\n", rt->info.name);
    fflush(stdout);
    if (dmx_peak_measure(rt, o, &p, stdout, &err) || dmx_peak_save(&p, path, &err)) {
      fprintf(stderr, "datamux devices --peak: %s\n", err.msg);
      rc = 1;
    } else {
      printf("wrote %s\n", path);
    }
  }
  if (rc == 0) dmx_peak_print(stdout, &p);
  dmx_runtime_destroy(rt);
  return rc;
}

static void print_with_backend(int i, const dmx_device_info *d) {
  const char *forced = getenv("DATAMUX_GEMM_BACKEND");
  dmx_print_device(stdout, i, d);
  const char *why;
  dmx_gemm_backend b = dmx_gemm_auto_backend(d, &why);
  printf("    GEMM backend:    %s (auto: %s%s%s)\n", dmx_gemm_backend_names[b], why,
         forced && *forced ? "; DATAMUX_GEMM_BACKEND=" : "", forced && *forced ? forced : "");
}

int dmx_cmd_devices(int argc, char **argv) {
  bool want_peak = false, remeasure = false;
  const char *device = NULL;
  dmx_peak_opts po = {0};
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      printf(
          "usage: datamux devices [--peak [--device D] [--remeasure] [--max-size N] [--max-seconds S]]\n"
          "       datamux devices --device D\n"
          "Lists every OpenCL platform and device and the one other commands choose by default. Choose one for\n"
          "other commands with --device D or DATAMUX_DEVICE=D, where D is INDEX (its place in this list),\n"
          "PLATFORM:INDEX (the INDEX-th device of the first platform whose name contains PLATFORM: pocl:0,\n"
          "oclgrind:0, nvidia:1; stable when drivers are added) or part of a device or platform name. The\n"
          "default is the first GPU, else the first device; a simulator (Oclgrind) only when named.\n"
          "With --device alone it prints the device D chooses and why, and exits 2 when none matches.\n"
          "Each device's block ends with the GEMM backend auto gives it (host_blas or clblast, and why).\n"
          "--peak measures the chosen device's SGEMM peak through its GEMM backend (square sizes from 512 up to --max-size,\n"
          "default 4096, tuned parameters applied) and its copy bandwidth (device-to-device, host<->device), caches\n"
          "it in ~/.cache/datamux/peak/<device>-<backend>.json and prints it; `bench --train` reads it for the GEMM\n"
          "utilisation. A cached result is printed without measuring unless --remeasure.\n");
      return 0;
    }
    if (!strcmp(argv[i], "--peak")) {
      want_peak = true;
    } else if (!strcmp(argv[i], "--remeasure")) {
      remeasure = true;
    } else if ((!strcmp(argv[i], "--device") || !strcmp(argv[i], "--max-size") || !strcmp(argv[i], "--max-seconds")) &&
               i + 1 < argc) {
      const char *flag = argv[i], *v = argv[++i];
      char *end;
      if (!strcmp(flag, "--device")) {
        device = v;
      } else if (!strcmp(flag, "--max-size")) {
        long n = strtol(v, &end, 10);
        if (*end || n < 512 || n > 65536) {
          fprintf(stderr, "datamux devices: --max-size: '%s' is not a size in 512..65536\n", v);
          return 2;
        }
        po.max_size = (int)n;
      } else {
        double s = strtod(v, &end);
        if (*end || !(s > 0)) {
          fprintf(stderr, "datamux devices: --max-seconds: '%s' is not a positive number of seconds\n", v);
          return 2;
        }
        po.max_seconds = s;
      }
    } else {
      fprintf(stderr, "datamux devices: unknown or incomplete argument '%s' (see `datamux devices --help`)\n", argv[i]);
      return 2;
    }
  }
  if (!want_peak && (remeasure || po.max_size || po.max_seconds > 0)) {
    fprintf(stderr, "datamux devices: --remeasure, --max-size and --max-seconds go with --peak\n");
    return 2;
  }
  if (want_peak) return peak(device, remeasure, &po);
  dmx_device_info *devs;
  int n = dmx_list_devices(&devs);
  if (n == 0) {
    fprintf(stderr,
            "datamux devices: no OpenCL device found; install a driver (apt-get install pocl-opencl-icd for "
            "the CPU, or your GPU vendor's ICD) and check with `clinfo -l`\n");
    return 1;
  }
  const char *sel = device ? device : getenv("DATAMUX_DEVICE");
  char why[256] = "";
  int chosen = dmx_choose_device(devs, n, sel, why, sizeof why);
  if (device && chosen < 0) {
    fprintf(stderr, "datamux devices: no OpenCL device matches --device '%s' (give INDEX, PLATFORM:INDEX or part of a name)\n",
            device);
    free(devs);
    return 2;
  }
  for (int i = 0; i < n; i++)
    if (!device || i == chosen) print_with_backend(i, &devs[i]);
  if (chosen >= 0)
    printf("%s: [%d] %s on %s (%s%s%s)\n", device ? "chosen" : "default", chosen, devs[chosen].name,
           devs[chosen].platform_name, why, sel && !device ? ", DATAMUX_DEVICE=" : "", sel && !device ? sel : "");
  else
    printf("default: none, DATAMUX_DEVICE='%s' matches no device\n", sel);
  free(devs);
  return 0;
}
