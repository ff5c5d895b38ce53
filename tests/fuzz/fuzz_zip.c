/* libFuzzer target: torch.save files end to end (zip reader, restricted unpickler, storage checks
 * and conversion, dmx_torch_bin_parse), plus every entry of any archive the zip reader accepts. */
#include <stdint.h>
#include <stdlib.h>

#include "host/formats/torch_bin.h"
#include "host/formats/zip_reader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dmx_error err;
  dmx_zip *z = dmx_zip_open(data, size, "fuzz", &err);
  if (z) {
    for (size_t i = 0; i < dmx_zip_count(z); i++) {
      size_t n;
      dmx_zip_data(z, i, &n, &err);
    }
    dmx_zip_free(z);
  }
  dmx_st_file *f = dmx_torch_bin_parse(data, size, "fuzz", &err);
  if (f) {
    unsigned char *out;
    size_t len;
    if (dmx_torch_bin_serialize(f, &out, &len, &err) == 0) free(out);
    dmx_st_free(f);
  }
  return 0;
}
