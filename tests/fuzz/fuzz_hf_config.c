/* libFuzzer target: a released model's config.json (Hugging Face keys, DataMUX extras). */
#include "host/run/hf_config.h"
#include "tests/fuzz/fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fuzz_write("config.json", data, size);
  dmx_hf_config c;
  dmx_error err;
  if (dmx_hf_config_load(path, &c, &err) == 0) {
    dmx_experiment e;
    dmx_experiment_defaults(&e);
    dmx_hf_config_apply(&c, &e);
  }
  return 0;
}
