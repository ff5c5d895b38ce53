/* Loading torch.save state dicts; see torch_bin.h. Writing is in torch_bin_write.c. */
#include "host/formats/torch_bin.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "host/formats/torch_pickle.h"
#include "host/formats/zip_reader.h"

static uint64_t le(const unsigned char *p, size_t n) {
  uint64_t x = 0;
  for (size_t k = n; k-- > 0;) x = x << 8 | p[k];
  return x;
}

/* Element at index i of a little-endian storage, as float (floating dtypes). */
static float load_float(const unsigned char *s, dmx_tp_dtype dt, uint64_t i) {
  switch (dt) {
    case DMX_TP_F16: return dmx_half_to_float((uint16_t)le(s + 2 * i, 2));
    case DMX_TP_BF16: {
      uint32_t b = (uint32_t)le(s + 2 * i, 2) << 16;
      float f;
      memcpy(&f, &b, 4);
      return f;
    }
    case DMX_TP_F64: {
      uint64_t b = le(s + 8 * i, 8);
      double d;
      memcpy(&d, &b, 8);
      return (float)d;
    }
    default: {
      uint32_t b = (uint32_t)le(s + 4 * i, 4);
      float f;
      memcpy(&f, &b, 4);
      return f;
    }
  }
}

static bool is_float(dmx_tp_dtype dt) {
  return dt == DMX_TP_F32 || dt == DMX_TP_F64 || dt == DMX_TP_F16 || dt == DMX_TP_BF16;
}

/* Copies the view t of storage s (bytes `data`) into out, contiguous, converting floats to F32;
 * integer dtypes keep their width. An odometer over the dimensions gives the source index of each
 * element, so any non-negative strides (checked against the storage by torch_pickle) work. */
static bool contiguous(const dmx_tp_tensor *t) {
  int64_t expect = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    if (t->shape[d] != 1 && t->stride[d] != expect) return false;
    expect *= t->shape[d];
  }
  return true;
}

static bool little_endian_host(void) {
  const uint16_t one = 1;
  unsigned char c;
  memcpy(&c, &one, 1);
  return c == 1;
}

static void gather(const dmx_tp_tensor *t, dmx_tp_dtype dt, const unsigned char *data, void *out, size_t numel) {
  /* the common case (a whole float32 or int64 parameter) is a plain copy */
  if ((dt == DMX_TP_F32 || dt == DMX_TP_I64 || dt == DMX_TP_I32) && contiguous(t) && little_endian_host()) {
    size_t es = dmx_tp_dtype_size(dt);
    if (numel) memcpy(out, data + es * t->offset, es * numel);
    return;
  }
  int64_t idx[DMX_TP_MAX_DIMS] = {0};
  uint64_t src = t->offset;
  size_t es = dmx_tp_dtype_size(dt);
  for (size_t k = 0; k < numel; k++) {
    if (is_float(dt))
      ((float *)out)[k] = load_float(data, dt, src);
    else if (dt == DMX_TP_I64)
      ((int64_t *)out)[k] = (int64_t)le(data + 8 * src, 8);
    else
      ((int32_t *)out)[k] = (int32_t)(uint32_t)le(data + es * src, es);
    for (int d = t->ndim - 1; d >= 0; d--) {
      if (++idx[d] < t->shape[d]) {
        src += (uint64_t)t->stride[d];
        break;
      }
      src -= (uint64_t)(t->shape[d] - 1) * (uint64_t)t->stride[d];
      idx[d] = 0;
    }
  }
}

/* The archive's top folder: torch names it after the file ("pytorch_model/") or "archive/". */
static int find_prefix(const dmx_zip *z, const char *what, char *prefix, size_t cap, dmx_error *err) {
  int found = 0;
  for (size_t i = 0; i < dmx_zip_count(z); i++) {
    const char *n = dmx_zip_name(z, i), *slash = strchr(n, '/');
    if (!slash || strcmp(slash, "/data.pkl")) continue;
    if ((size_t)(slash - n) + 2 > cap) return dmx_fail(err, "%s: archive folder name too long", what);
    if (found++) return dmx_fail(err, "%s: the archive holds more than one data.pkl (%s/ and %s)", what, prefix, n);
    memcpy(prefix, n, (size_t)(slash - n) + 1);
    prefix[slash - n + 1] = 0;
  }
  if (!found)
    return dmx_fail(err,
                    "%s: zip archive without <folder>/data.pkl: not a torch.save file (files from torch < 1.6 "
                    "use an older format: load and re-save them with a recent torch)",
                    what);
  return 0;
}

static const unsigned char *entry(const dmx_zip *z, const char *prefix, const char *rest, size_t *len, bool required,
                                  const char *what, dmx_error *err) {
  char name[DMX_ZIP_MAX_NAME + 128];
  snprintf(name, sizeof name, "%s%s", prefix, rest);
  long i = dmx_zip_find(z, name);
  if (i < 0) {
    if (required) dmx_fail(err, "%s: the archive has no entry '%.300s' (incomplete file?)", what, name);
    return NULL;
  }
  return dmx_zip_data(z, (size_t)i, len, err);
}

/* Checks each storage entry's byte size against numel * element size; data[i] points at it. */
static int load_storages(const dmx_zip *z, const char *prefix, const dmx_tp_state_dict *sd, const unsigned char **data,
                         const char *what, dmx_error *err) {
  for (size_t i = 0; i < sd->nstorages; i++) {
    const dmx_tp_storage *s = &sd->storages[i];
    char rest[128];
    snprintf(rest, sizeof rest, "data/%s", s->key);
    size_t len = 0;
    data[i] = entry(z, prefix, rest, &len, true, what, err);
    if (!data[i]) return -1;
    uint64_t want = s->numel * dmx_tp_dtype_size(s->dtype);
    if (len != want)
      return dmx_fail(err,
                      "%s: storage '%s' (%s of %" PRIu64 " elements) needs %" PRIu64 " bytes but its entry has %zu",
                      what, s->key, dmx_tp_dtype_name(s->dtype), s->numel, want, len);
  }
  return 0;
}

static dmx_st_dtype out_dtype(dmx_tp_dtype dt) {
  return dt == DMX_TP_I64 ? DMX_ST_I64 : dt == DMX_TP_I32 ? DMX_ST_I32 : DMX_ST_F32;
}

static size_t tensor_numel(const dmx_tp_tensor *t) {
  size_t numel = 1;
  for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d]; /* bounded: at most its storage's numel */
  return numel;
}

/* Views of one storage under many keys would each be materialised: a file of a few KB could ask
 * for gigabytes. Legitimate files stay far below this bound (tied weights double a tensor,
 * half -> float doubles it again). */
static int check_output_size(const dmx_tp_state_dict *sd, size_t file_len, const char *what, dmx_error *err) {
  uint64_t total = 0, limit = 8 * (uint64_t)file_len + 65536;
  for (size_t i = 0; i < sd->ntensors; i++) {
    dmx_tp_dtype dt = sd->storages[sd->tensors[i].storage].dtype;
    total += (uint64_t)tensor_numel(&sd->tensors[i]) * (dt == DMX_TP_I64 ? 8 : 4);
    if (total > limit)
      return dmx_fail(err,
                      "%s: the tensors up to '%.200s' would take over %" PRIu64
                      " bytes from a %zu-byte file "
                      "(many keys viewing the same storage); refusing to materialise them",
                      what, sd->tensors[i].name, limit, file_len);
  }
  return 0;
}

/* Materialises every tensor and serialises them as a safetensors buffer, then parses it back. */
static dmx_st_file *build(const dmx_tp_state_dict *sd, const unsigned char **data, const char *what, dmx_error *err) {
  dmx_st_writer *w = dmx_st_writer_new();
  void **bufs = dmx_calloc(sd->ntensors + 1, sizeof *bufs);
  int rc = dmx_st_writer_meta(w, "format", "pt", err);
  for (size_t i = 0; i < sd->ntensors && rc == 0; i++) {
    const dmx_tp_tensor *t = &sd->tensors[i];
    const dmx_tp_storage *s = &sd->storages[t->storage];
    size_t numel = tensor_numel(t);
    dmx_st_dtype od = out_dtype(s->dtype);
    bufs[i] = dmx_malloc(numel ? numel * dmx_st_dtype_size(od) : 1);
    gather(t, s->dtype, data[t->storage], bufs[i], numel);
    rc = dmx_st_writer_add(w, t->name, od, t->ndim, t->shape, bufs[i], err);
    if (rc) {
      char msg[DMX_ERRMSG];
      snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
      dmx_fail(err, "%s: %s", what, msg);
    }
  }
  unsigned char *buf = NULL;
  size_t len = 0;
  if (rc == 0) rc = dmx_st_writer_serialize(w, &buf, &len, err);
  for (size_t i = 0; i < sd->ntensors; i++) free(bufs[i]);
  free(bufs);
  dmx_st_writer_free(w);
  return rc == 0 ? dmx_st_adopt(buf, len, what, err) : NULL;
}

dmx_st_file *dmx_torch_bin_parse(const unsigned char *buf, size_t len, const char *what, dmx_error *err) {
  what = what ? what : "(torch file)";
  dmx_zip *z = dmx_zip_open(buf, len, what, err);
  if (!z) return NULL;
  dmx_st_file *out = NULL;
  dmx_tp_state_dict sd = {0};
  const unsigned char **data = NULL;
  char prefix[512];
  size_t n;
  if (find_prefix(z, what, prefix, sizeof prefix, err)) goto done;
  const unsigned char *order = entry(z, prefix, "byteorder", &n, false, what, err);
  if (order && !(n == 6 && !memcmp(order, "little", 6))) {
    dmx_fail(err,
             "%s: the storages are not little-endian (byteorder '%.*s'): re-save the file on a little-endian "
             "machine",
             what, (int)(n < 16 ? n : 16), (const char *)order);
    goto done;
  }
  const unsigned char *pkl = entry(z, prefix, "data.pkl", &n, true, what, err);
  if (!pkl || dmx_tp_parse(pkl, n, what, &sd, err)) goto done;
  data = dmx_calloc(sd.nstorages + 1, sizeof *data);
  if (load_storages(z, prefix, &sd, data, what, err) || check_output_size(&sd, len, what, err)) goto done;
  out = build(&sd, data, what, err);
done:
  free(data);
  dmx_tp_free(&sd);
  dmx_zip_free(z);
  return out;
}

dmx_st_file *dmx_torch_bin_load(const char *path, dmx_error *err) {
  size_t len;
  char *buf = dmx_read_file(path, &len, err);
  if (!buf) return NULL;
  dmx_st_file *f = dmx_torch_bin_parse((const unsigned char *)buf, len, path, err);
  free(buf);
  return f;
}
