/* libFuzzer target: the restricted unpickler (dmx_tp_parse) on raw data.pkl bytes. */
#include <stdint.h>

#include "host/formats/torch_pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dmx_error err;
  dmx_tp_state_dict sd;
  if (dmx_tp_parse(data, size, "fuzz", &sd, &err) == 0) dmx_tp_free(&sd);
  return 0;
}
