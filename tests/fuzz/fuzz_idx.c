/* libFuzzer target: IDX image and label files, plain or gzip (zlib reads both). The input is an
 * image file, then "\n--\n", then a label file. */
#include <stdlib.h>

#include "data/idx.h"
#include "tests/fuzz/fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t a;
  const uint8_t *b;
  size_t bn;
  fuzz_split(data, size, &a, &b, &bn);
  const char *images = fuzz_write("images-idx3-ubyte", data, a);
  const char *labels = fuzz_write("labels-idx1-ubyte", b, bn);
  dmx_error err;
  uint8_t *px = NULL, *lb = NULL;
  int n, rows, cols;
  if (dmx_idx_read_images(images, &px, &n, &rows, &cols, &err) == 0) free(px);
  if (dmx_idx_read_labels(labels, &lb, &n, &err) == 0) free(lb);
  dmx_idx_set s;
  if (dmx_idx_load(images, labels, &s, &err) == 0) dmx_idx_free(&s);
  return 0;
}
