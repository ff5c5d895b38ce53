/* libFuzzer target: a CoNLL-2003 file (IOB1 or IOB2 by the first byte). */
#include "data/conll.h"
#include "tests/fuzz/fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *path = fuzz_write("train.txt", data + 1, size - 1);
  dmx_conll c;
  dmx_error err;
  if (dmx_conll_load(path, data[0] & 1 ? DMX_CONLL_IOB1 : DMX_CONLL_IOB2, &c, &err) == 0) {
    char buf[512];
    dmx_conll_summary(&c, buf, sizeof buf);
    dmx_conll_free(&c);
  }
  return 0;
}
