/* libFuzzer target: a sweep file (host/run/sweep.c: base, output_dir, set, grid, list, any
 * experiment key as an override) must load into a plan or give an error with file:line, never
 * crash, leak or hang. `base: base.yaml` names a small experiment written next to the input, so
 * inputs get past the base file to the points; nothing is run. */
#include <stdlib.h>
#include <unistd.h>

#include "host/run/sweep.h"
#include "tests/fuzz/fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool ready;
  static char home[4096];
  if (!ready) {
    static const char base[] = "name: fuzz\nsetting: finetuning\ntask:\n  name: sst2\n";
    fuzz_write("base.yaml", (const uint8_t *)base, sizeof base - 1);
    if (!getcwd(home, sizeof home)) abort();
    ready = true;
  }
  const char *path = fuzz_write("sweep.yaml", data, size);
  /* base.yaml and output_dir resolve in the private folder; back home after each input, since
   * libFuzzer reads its corpus folders by relative paths between inputs */
  if (chdir(fuzz_dir()) != 0) abort();
  dmx_sweep s;
  dmx_error err;
  if (dmx_sweep_load(&s, path, NULL, &err) == 0) dmx_sweep_free(&s);
  if (chdir(home) != 0) abort();
  return 0;
}
