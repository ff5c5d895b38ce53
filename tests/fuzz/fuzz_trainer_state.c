/* libFuzzer target: a checkpoint's trainer_state.json (strict: every key present and in range). */
#include "host/run/train_state.h"
#include "tests/fuzz/fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_write("trainer_state.json", data, size);
  dmx_train_state s;
  dmx_error err;
  dmx_train_state_read(fuzz_dir(), &s, &err);
  return 0;
}
