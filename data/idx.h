/* IDX files (the MNIST / Fashion-MNIST format, http://yann.lecun.com/exdb/mnist/), gzipped or not.
 * Layout: big-endian magic 0x0000TTDD (TT = 0x08 unsigned bytes, DD = number of dimensions), DD
 * big-endian uint32 sizes, then prod(sizes) bytes. Images are (n, rows, cols), labels (n).
 * Every problem (missing file, bad gzip stream, bad magic, a dimension count or size that
 * disagrees with the data, trailing bytes, truncation, images and labels of different counts) is
 * reported through dmx_error with the file name. No OpenCL here. */
#ifndef DMX_DATA_IDX_H
#define DMX_DATA_IDX_H

#include <stdint.h>

#include "host/base/common.h"

typedef struct {
  int n, rows, cols;
  uint8_t *pixels; /* (n, rows, cols), row-major */
  uint8_t *labels; /* (n) */
  int num_classes; /* max label + 1 */
} dmx_idx_set;

/* Reads an idx3 image file. *pixels is malloc'd. 0, or -1 with err. */
int dmx_idx_read_images(const char *path, uint8_t **pixels, int *n, int *rows, int *cols, dmx_error *err);
/* Reads an idx1 label file. *labels is malloc'd. 0, or -1 with err. */
int dmx_idx_read_labels(const char *path, uint8_t **labels, int *n, dmx_error *err);
/* Both files of one split; their counts must agree. 0, or -1 with err (out is left empty). */
int dmx_idx_load(const char *images_path, const char *labels_path, dmx_idx_set *out, dmx_error *err);
void dmx_idx_free(dmx_idx_set *s);

/* The labels file that goes with an images file: "...images-idx3..." -> "...labels-idx1...".
 * Returns 0, or -1 when the name has no "images-idx3" in it. */
int dmx_idx_labels_path(const char *images_path, char *out, size_t cap);

#endif
