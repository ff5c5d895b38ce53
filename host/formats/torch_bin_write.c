/* Writing torch.save-compatible state dicts; see torch_bin.h. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "host/formats/torch_bin.h"
#include "host/formats/zip_writer.h"

typedef struct {
  unsigned char *b;
  size_t n, cap;
} obuf;

static void put(obuf *o, const void *d, size_t n) {
  if (o->n + n > o->cap) {
    size_t c = o->cap ? o->cap : 4096;
    while (c < o->n + n) c *= 2;
    o->b = dmx_realloc(o->b, c);
    o->cap = c;
  }
  if (n) memcpy(o->b + o->n, d, n);
  o->n += n;
}
static void put1(obuf *o, unsigned v) {
  unsigned char c = (unsigned char)v;
  put(o, &c, 1);
}
static void put_le(obuf *o, uint64_t v, int n) {
  for (int k = 0; k < n; k++) put1(o, (unsigned)(v >> (8 * k)) & 0xFF);
}

/* ---- pickle (protocol 2, the opcodes torch.save itself uses) ---- */

static void p_str(obuf *o, const char *s) {
  size_t n = strlen(s);
  put1(o, 'X');
  put_le(o, n, 4);
  put(o, s, n);
}
static void p_global(obuf *o, const char *module, const char *name) {
  put1(o, 'c');
  put(o, module, strlen(module));
  put1(o, '\n');
  put(o, name, strlen(name));
  put1(o, '\n');
}
static void p_int(obuf *o, int64_t v) {
  if (v >= INT32_MIN && v <= INT32_MAX) {
    put1(o, 'J');
    put_le(o, (uint64_t)v, 4);
  } else {
    put1(o, 0x8a); /* LONG1, 8 bytes two's complement */
    put1(o, 8);
    put_le(o, (uint64_t)v, 8);
  }
}
static void p_empty_ordered_dict(obuf *o) {
  p_global(o, "collections", "OrderedDict");
  put1(o, ')');
  put1(o, 'R');
}

static const char *storage_type(dmx_st_dtype t) {
  switch (t) {
    case DMX_ST_F32: return "FloatStorage";
    case DMX_ST_F16: return "HalfStorage";
    case DMX_ST_BF16: return "BFloat16Storage";
    case DMX_ST_I32: return "IntStorage";
    case DMX_ST_I64: return "LongStorage";
  }
  return NULL;
}

/* key: _rebuild_tensor_v2((storage pid), 0, shape, contiguous strides, False, OrderedDict()) */
static void p_tensor(obuf *o, const dmx_st_tensor *t, size_t storage_key) {
  char key[32];
  snprintf(key, sizeof key, "%zu", storage_key);
  p_str(o, t->name);
  p_global(o, "torch._utils", "_rebuild_tensor_v2");
  put1(o, '(');
  put1(o, '(');
  p_str(o, "storage");
  p_global(o, "torch", storage_type(t->dtype));
  p_str(o, key);
  p_str(o, "cpu");
  p_int(o, (int64_t)t->numel);
  put1(o, 't');
  put1(o, 'Q');
  p_int(o, 0);
  int64_t stride[DMX_ST_MAX_DIMS], s = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    stride[d] = s;
    s *= t->shape[d] ? t->shape[d] : 1;
  }
  for (int pass = 0; pass < 2; pass++) {
    put1(o, '(');
    for (int d = 0; d < t->ndim; d++) p_int(o, pass ? stride[d] : t->shape[d]);
    put1(o, 't');
  }
  put1(o, 0x89); /* requires_grad False */
  p_empty_ordered_dict(o);
  put1(o, 't');
  put1(o, 'R');
}

static void build_pickle(const dmx_st_file *f, obuf *o) {
  put1(o, 0x80);
  put1(o, 2);
  p_empty_ordered_dict(o);
  put1(o, '(');
  for (size_t i = 0; i < dmx_st_count(f); i++) p_tensor(o, dmx_st_at(f, i), i);
  put1(o, 'u');
  put1(o, '.');
}

int dmx_torch_bin_serialize(const dmx_st_file *f, unsigned char **out, size_t *len, dmx_error *err) {
  size_t nt = dmx_st_count(f);
  for (size_t i = 0; i < nt; i++)
    if (!storage_type(dmx_st_at(f, i)->dtype))
      return dmx_fail(err, "torch writer: tensor '%.300s' has an unsupported dtype", dmx_st_at(f, i)->name);
  obuf pkl = {0};
  build_pickle(f, &pkl);
  dmx_zip_writer *z = dmx_zip_writer_new();
  static const struct {
    const char *name, *text;
  } small[] = {{"archive/.format_version", "1"}, {"archive/.storage_alignment", "64"}, {"archive/byteorder", "little"}};
  int rc = dmx_zip_writer_add(z, "archive/data.pkl", pkl.b, pkl.n, err);
  for (size_t k = 0; k < 3 && rc == 0; k++)
    rc = dmx_zip_writer_add(z, small[k].name, small[k].text, strlen(small[k].text), err);
  /* safetensors data is little-endian, as torch's storages; the bytes go across unchanged */
  for (size_t i = 0; i < nt && rc == 0; i++) {
    char name[64];
    snprintf(name, sizeof name, "archive/data/%zu", i);
    const dmx_st_tensor *t = dmx_st_at(f, i);
    rc = dmx_zip_writer_add(z, name, t->data, t->nbytes, err);
  }
  if (rc == 0) rc = dmx_zip_writer_add(z, "archive/version", "3\n", 2, err);
  if (rc == 0) rc = dmx_zip_writer_finish(z, out, len, err);
  dmx_zip_writer_free(z);
  free(pkl.b);
  return rc;
}

int dmx_torch_bin_write(const dmx_st_file *f, const char *path, dmx_error *err) {
  unsigned char *buf;
  size_t len;
  if (dmx_torch_bin_serialize(f, &buf, &len, err)) return -1;
  int rc = dmx_write_file_atomic(path, buf, len, err);
  free(buf);
  return rc;
}
