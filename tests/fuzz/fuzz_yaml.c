/* libFuzzer target: an experiment YAML (libyaml events into our config: fields, sections, anchors
 * and aliases, includes by config_name) must load or give an error with file:line, never crash,
 * leak or hang; an alias bomb must not blow up memory or time. */
#include "host/config/config.h"
#include "tests/fuzz/fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write("experiment.yaml", data, size);
  dmx_experiment e;
  dmx_error err;
  dmx_experiment_defaults(&e);
  if (dmx_experiment_load(&e, path, &err) == 0) dmx_experiment_validate(&e, &err);
  return 0;
}
