/* Zip writer for stored entries; see zip_writer.h. */
#include "host/formats/zip_writer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/formats/zip_reader.h"

typedef struct {
  char *name;
  uint64_t off, size;
  uint32_t crc;
} zentry;

struct dmx_zip_writer {
  unsigned char *b;
  size_t n, cap;
  zentry *e;
  size_t ne, cape;
};

static void put(dmx_zip_writer *w, const void *d, size_t n) {
  if (w->n + n > w->cap) {
    size_t c = w->cap ? w->cap : 4096;
    while (c < w->n + n) c *= 2;
    w->b = dmx_realloc(w->b, c);
    w->cap = c;
  }
  if (n) memcpy(w->b + w->n, d, n);
  w->n += n;
}

static void put_le(dmx_zip_writer *w, uint64_t v, int n) {
  unsigned char b[8];
  for (int k = 0; k < n; k++) b[k] = (unsigned char)(v >> (8 * k));
  put(w, b, (size_t)n);
}

dmx_zip_writer *dmx_zip_writer_new(void) { return dmx_calloc(1, sizeof(dmx_zip_writer)); }

void dmx_zip_writer_free(dmx_zip_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->ne; i++) free(w->e[i].name);
  free(w->e);
  free(w->b);
  free(w);
}

int dmx_zip_writer_add(dmx_zip_writer *w, const char *name, const void *data, size_t n, dmx_error *err) {
  size_t nlen = strlen(name);
  if (nlen == 0 || nlen > 0xFFFF) return dmx_fail(err, "zip writer: entry name of %zu bytes", nlen);
  if (w->n > 0xFFFFFFFFu || n > 0xFFFFFFFFu - 64 || w->ne >= 0xFFFF)
    return dmx_fail(err,
                    "zip writer: the archive passes 4 GiB or 65535 entries at entry '%.200s'; zip64 output is "
                    "not supported",
                    name);
  if (w->ne == w->cape) {
    w->cape = w->cape ? 2 * w->cape : 16;
    w->e = dmx_realloc(w->e, w->cape * sizeof *w->e);
  }
  zentry *e = &w->e[w->ne++];
  e->name = dmx_strdup(name);
  e->off = w->n;
  e->size = n;
  e->crc = dmx_crc32(0, data, n);
  /* torch reads storages in place (mmap) only when they are 64-byte aligned */
  size_t at = w->n + 30 + nlen, xlen = at % 64 ? 4 + (64 - (at + 4) % 64) % 64 : 0;
  put_le(w, 0x04034b50u, 4);
  put_le(w, 20, 2);   /* version needed */
  put_le(w, 0, 2);    /* flags */
  put_le(w, 0, 2);    /* stored */
  put_le(w, 0, 2);    /* time */
  put_le(w, 0x21, 2); /* date: 1980-01-01 */
  put_le(w, e->crc, 4);
  put_le(w, n, 4);
  put_le(w, n, 4);
  put_le(w, nlen, 2);
  put_le(w, xlen, 2);
  put(w, name, nlen);
  if (xlen) {
    put_le(w, 0x4246, 2); /* "FB", the id torch uses for its padding field */
    put_le(w, xlen - 4, 2);
    for (size_t k = 4; k < xlen; k++) put(w, "Z", 1);
  }
  put(w, data, n);
  return 0;
}

int dmx_zip_writer_finish(dmx_zip_writer *w, unsigned char **out, size_t *len, dmx_error *err) {
  uint64_t cd = w->n;
  for (size_t i = 0; i < w->ne; i++) {
    const zentry *e = &w->e[i];
    size_t nlen = strlen(e->name);
    put_le(w, 0x02014b50u, 4);
    put_le(w, 20, 2); /* made by */
    put_le(w, 20, 2); /* needed */
    put_le(w, 0, 2);  /* flags */
    put_le(w, 0, 2);  /* stored */
    put_le(w, 0, 2);
    put_le(w, 0x21, 2);
    put_le(w, e->crc, 4);
    put_le(w, e->size, 4);
    put_le(w, e->size, 4);
    put_le(w, nlen, 2);
    put_le(w, 0, 2); /* extra */
    put_le(w, 0, 2); /* comment */
    put_le(w, 0, 2); /* disk */
    put_le(w, 0, 2); /* internal attributes */
    put_le(w, 0, 4); /* external attributes */
    put_le(w, e->off, 4);
    put(w, e->name, nlen);
  }
  uint64_t cd_size = w->n - cd;
  if (w->n > 0xFFFFFFFFu) return dmx_fail(err, "zip writer: the archive passes 4 GiB; zip64 output is not supported");
  put_le(w, 0x06054b50u, 4);
  put_le(w, 0, 2);
  put_le(w, 0, 2);
  put_le(w, w->ne, 2);
  put_le(w, w->ne, 2);
  put_le(w, cd_size, 4);
  put_le(w, cd, 4);
  put_le(w, 0, 2);
  *out = w->b;
  *len = w->n;
  w->b = NULL;
  w->n = w->cap = 0;
  return 0;
}
