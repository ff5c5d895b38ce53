/* IDX reader over zlib's gz* interface, which reads plain files transparently, so one code path
 * serves both .gz and uncompressed files. */
#include "data/idx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Largest accepted payload: 1 GiB, far above MNIST's 47 MB, so a corrupt header cannot make us
 * allocate absurd amounts. */
#define IDX_MAX_BYTES ((size_t)1 << 30)

static int gz_fail(gzFile f, const char *path, const char *what, dmx_error *err) {
  int code = 0;
  const char *msg = gzerror(f, &code);
  if (code != Z_OK && code != Z_BUF_ERROR && msg && *msg) return dmx_fail(err, "%s: %s: %s", path, what, msg);
  return dmx_fail(err, "%s: %s", path, what);
}

/* Reads exactly n bytes; a short read is a truncated (or corrupt) file. */
static int read_exact(gzFile f, const char *path, void *buf, size_t n, const char *what, dmx_error *err) {
  size_t got = 0;
  while (got < n) {
    unsigned chunk = n - got > (1u << 30) ? (1u << 30) : (unsigned)(n - got);
    int r = gzread(f, (char *)buf + got, chunk);
    if (r < 0) return gz_fail(f, path, what, err);
    if (r == 0) {
      int code = 0;
      const char *msg = gzerror(f, &code);
      if (code != Z_OK && code != Z_BUF_ERROR) return dmx_fail(err, "%s: %s: %s", path, what, msg);
      return dmx_fail(err, "%s: truncated: %s needs %zu bytes, the file ends after %zu", path, what, n, got);
    }
    got += (size_t)r;
  }
  return 0;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Opens path, checks the magic (unsigned bytes, `ndim` dimensions), reads the sizes and the whole
 * payload, and checks that nothing follows it. */
static int read_idx(const char *path, int ndim, const char *kind, uint32_t *dims, uint8_t **data, dmx_error *err) {
  *data = NULL;
  gzFile f = gzopen(path, "rb");
  if (!f) return dmx_fail(err, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
  int rc = -1;
  unsigned char hdr[4 + 4 * 3];
  uint8_t *buf = NULL;
  if (read_exact(f, path, hdr, 4, "the magic number", err)) goto done;
  uint32_t magic = be32(hdr);
  if (hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08) {
    dmx_fail(err, "%s: bad magic number 0x%08x: not an IDX file of unsigned bytes (expected 0x%08x for %s)", path,
             magic, 0x800u | (unsigned)ndim, kind);
    goto done;
  }
  if (hdr[3] != ndim) {
    dmx_fail(err, "%s: IDX file with %d dimensions (magic 0x%08x), but %s need %d", path, hdr[3], magic, kind, ndim);
    goto done;
  }
  if (read_exact(f, path, hdr + 4, 4 * (size_t)ndim, "the dimension sizes", err)) goto done;
  size_t total = 1;
  for (int d = 0; d < ndim; d++) {
    dims[d] = be32(hdr + 4 + 4 * d);
    if (dims[d] == 0 || dims[d] > (uint32_t)0x7fffffff) {
      dmx_fail(err, "%s: dimension %d has size %u", path, d, dims[d]);
      goto done;
    }
    total *= dims[d];
    if (total > IDX_MAX_BYTES) {
      dmx_fail(err, "%s: the header's sizes describe more than %zu bytes; the header is corrupt", path, IDX_MAX_BYTES);
      goto done;
    }
  }
  buf = malloc(total);
  if (!buf) {
    dmx_fail(err, "%s: out of memory for %zu bytes", path, total);
    goto done;
  }
  char what[96];
  snprintf(what, sizeof what, "the %s data (header sizes", kind);
  size_t w = strlen(what);
  for (int d = 0; d < ndim; d++) w += (size_t)snprintf(what + w, sizeof what - w, "%s%u", d ? "x" : " ", dims[d]);
  snprintf(what + w, sizeof what - w, ")");
  if (read_exact(f, path, buf, total, what, err)) goto done;
  char extra;
  int r = gzread(f, &extra, 1);
  if (r < 0) {
    gz_fail(f, path, "reading past the data", err);
    goto done;
  }
  if (r > 0) {
    dmx_fail(err, "%s: the file is longer than its header says (%zu data bytes): the sizes disagree with the data",
             path, total);
    goto done;
  }
  *data = buf;
  buf = NULL;
  rc = 0;
done:
  free(buf);
  gzclose(f);
  return rc;
}

int dmx_idx_read_images(const char *path, uint8_t **pixels, int *n, int *rows, int *cols, dmx_error *err) {
  uint32_t dims[3] = {0, 0, 0}; /* read_idx fills them on success; initialised for -O3's flow analysis */
  if (read_idx(path, 3, "images", dims, pixels, err)) return -1;
  *n = (int)dims[0];
  *rows = (int)dims[1];
  *cols = (int)dims[2];
  return 0;
}

int dmx_idx_read_labels(const char *path, uint8_t **labels, int *n, dmx_error *err) {
  uint32_t dims[1] = {0};
  if (read_idx(path, 1, "labels", dims, labels, err)) return -1;
  *n = (int)dims[0];
  return 0;
}

int dmx_idx_load(const char *images_path, const char *labels_path, dmx_idx_set *out, dmx_error *err) {
  memset(out, 0, sizeof *out);
  int nl = 0;
  if (dmx_idx_read_images(images_path, &out->pixels, &out->n, &out->rows, &out->cols, err)) return -1;
  if (dmx_idx_read_labels(labels_path, &out->labels, &nl, err)) {
    dmx_idx_free(out);
    return -1;
  }
  if (nl != out->n) {
    dmx_fail(err, "%s has %d images but %s has %d labels", images_path, out->n, labels_path, nl);
    dmx_idx_free(out);
    return -1;
  }
  int mx = 0;
  for (int i = 0; i < nl; i++)
    if (out->labels[i] > mx) mx = out->labels[i];
  out->num_classes = mx + 1;
  return 0;
}

void dmx_idx_free(dmx_idx_set *s) {
  free(s->pixels);
  free(s->labels);
  memset(s, 0, sizeof *s);
}

int dmx_idx_labels_path(const char *images_path, char *out, size_t cap) {
  const char *p = strstr(images_path, "images-idx3");
  if (!p) return -1;
  int w = snprintf(out, cap, "%.*slabels-idx1%s", (int)(p - images_path), images_path, p + strlen("images-idx3"));
  return w > 0 && (size_t)w < cap ? 0 : -1;
}
