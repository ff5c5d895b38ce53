/* libFuzzer target: tokenizer files: vocab.json, then "\n--\n", then merges.txt; a tokenizer that
 * loads then encodes a fixed text and the input itself. */
#include "data/tokenizer.h"
#include "tests/fuzz/fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t a;
  const uint8_t *b;
  size_t bn;
  fuzz_split(data, size, &a, &b, &bn);
  fuzz_write("vocab.json", data, a);
  fuzz_write("merges.txt", b, bn);
  dmx_error err;
  dmx_tokenizer *tok = dmx_tokenizer_load(fuzz_dir(), &err);
  if (!tok) return 0;
  int32_t ids[256];
  const char *text = "Hello, world! It's a gripping film.";
  dmx_tokenize(tok, text, strlen(text), 1, ids, 256, &err);
  dmx_tokenize(tok, (const char *)data, size, 0, ids, 256, &err);
  dmx_tokenizer_free(tok);
  return 0;
}
