/* libFuzzer target: the safetensors reader (dmx_st_parse) and its conversions. Any input must give
 * a file or an error, never a crash, leak or out-of-bounds read. */
#include <stdint.h>
#include <stdlib.h>

#include "host/formats/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dmx_error err;
  dmx_st_file *f = dmx_st_parse(data, size, "fuzz", &err);
  if (!f) return 0;
  for (size_t i = 0; i < dmx_st_count(f); i++) {
    const dmx_st_tensor *t = dmx_st_at(f, i);
    /* numel is bounded by the data section the parser checked, so this cannot be a size bomb */
    void *out = malloc(t->numel * 4 + 4);
    if (!out) abort();
    if (dmx_st_get_f32(f, t->name, out, t->numel, &err)) dmx_st_get_i32(f, t->name, out, t->numel, &err);
    free(out);
  }
  for (size_t i = 0; i < dmx_st_meta_count(f); i++) dmx_st_meta_at(f, i, NULL, NULL);
  dmx_st_free(f);
  return 0;
}
