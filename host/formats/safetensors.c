/* safetensors reader and writer; see safetensors.h for the format and the rules enforced. */
#include "host/formats/safetensors.h"

#include "host/base/json.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------------
 * Reader */

struct dmx_st_file {
  unsigned char *buf;
  size_t len;
  char *what;
  dmx_st_tensor *t; /* in data-offset order */
  size_t nt;
  const dmx_st_tensor **by_name; /* into t, sorted by name */
  char **mkeys, **mvals;
  size_t nm;
};

const char *dmx_st_dtype_name(dmx_st_dtype t) {
  switch (t) {
    case DMX_ST_F32: return "F32";
    case DMX_ST_F16: return "F16";
    case DMX_ST_BF16: return "BF16";
    case DMX_ST_I32: return "I32";
    case DMX_ST_I64: return "I64";
  }
  return "?";
}

size_t dmx_st_dtype_size(dmx_st_dtype t) {
  switch (t) {
    case DMX_ST_F32: return 4;
    case DMX_ST_F16: return 2;
    case DMX_ST_BF16: return 2;
    case DMX_ST_I32: return 4;
    case DMX_ST_I64: return 8;
  }
  return 0;
}

char *dmx_st_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
  if (cap == 0) return buf;
  size_t n = 0;
  buf[0] = 0;
  n += (size_t)snprintf(buf, cap, "[");
  for (int d = 0; d < ndim && n < cap; d++)
    n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, d ? ", " : "", shape[d]);
  if (n < cap) snprintf(buf + n, cap - n, "]");
  return buf;
}

void dmx_st_free(dmx_st_file *f) {
  if (!f) return;
  for (size_t k = 0; k < f->nt; k++) free((char *)f->t[k].name);
  for (size_t k = 0; k < f->nm; k++) {
    free(f->mkeys[k]);
    free(f->mvals[k]);
  }
  free(f->t);
  free(f->by_name);
  free(f->mkeys);
  free(f->mvals);
  free(f->what);
  free(f->buf);
  free(f);
}

/* Non-negative JSON integer (digits only) up to 2^53. */
static bool json_uint(const dmx_json *v, uint64_t *out) {
  if (v->type != DMX_JSON_NUMBER || v->slen == 0 || v->slen > 16) return false;
  uint64_t x = 0;
  for (size_t k = 0; k < v->slen; k++) {
    if (v->s[k] < '0' || v->s[k] > '9') return false;
    x = x * 10 + (uint64_t)(v->s[k] - '0');
  }
  if (x > ((uint64_t)1 << 53)) return false;
  *out = x;
  return true;
}

static int tensor_err(dmx_st_file *f, dmx_error *err, const char *name, const char *fmt, const char *detail) {
  return dmx_fail(err, "%s: bad safetensors header: tensor '%.300s': %s%s", f->what, name, fmt, detail ? detail : "");
}

static int parse_tensor(dmx_st_file *f, const char *name, const dmx_json *v, dmx_st_tensor *t, size_t *begin,
                        size_t *end, size_t data_len, dmx_error *err) {
  if (v->type != DMX_JSON_OBJECT) return tensor_err(f, err, name, "entry is not a JSON object", NULL);
  const dmx_json *dt = NULL, *sh = NULL, *off = NULL;
  for (size_t k = 0; k < v->n; k++) {
    const char *key = v->keys[k];
    if (strcmp(key, "dtype") == 0)
      dt = &v->kids[k];
    else if (strcmp(key, "shape") == 0)
      sh = &v->kids[k];
    else if (strcmp(key, "data_offsets") == 0)
      off = &v->kids[k];
    else {
      char d[340];
      snprintf(d, sizeof d, "'%.300s'", key);
      return tensor_err(f, err, name, "unknown field ", d);
    }
  }
  if (!dt) return tensor_err(f, err, name, "missing \"dtype\"", NULL);
  if (!sh) return tensor_err(f, err, name, "missing \"shape\"", NULL);
  if (!off) return tensor_err(f, err, name, "missing \"data_offsets\"", NULL);
  if (dt->type != DMX_JSON_STRING) return tensor_err(f, err, name, "\"dtype\" is not a string", NULL);
  static const struct {
    const char *s;
    dmx_st_dtype t;
  } dts[] = {{"F32", DMX_ST_F32}, {"F16", DMX_ST_F16}, {"BF16", DMX_ST_BF16}, {"I32", DMX_ST_I32}, {"I64", DMX_ST_I64}};
  bool found = false;
  for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++)
    if (strcmp(dt->s, dts[k].s) == 0) t->dtype = dts[k].t, found = true;
  if (!found) {
    char d[400];
    snprintf(d, sizeof d, "'%.300s' (supported: F32, F16, BF16, I32, I64)", dt->s);
    return tensor_err(f, err, name, "unsupported dtype ", d);
  }
  if (sh->type != DMX_JSON_ARRAY) return tensor_err(f, err, name, "\"shape\" is not an array", NULL);
  if (sh->n > DMX_ST_MAX_DIMS) {
    char d[64];
    snprintf(d, sizeof d, "%zu (at most %d)", sh->n, DMX_ST_MAX_DIMS);
    return tensor_err(f, err, name, "too many dimensions: ", d);
  }
  t->ndim = (int)sh->n;
  size_t numel = 1;
  bool overflow = false;
  for (size_t k = 0; k < sh->n; k++) {
    uint64_t x;
    if (!json_uint(&sh->kids[k], &x))
      return tensor_err(f, err, name, "\"shape\" entries must be non-negative integers", NULL);
    t->shape[k] = (int64_t)x;
    if (x != 0 && numel > SIZE_MAX / x)
      overflow = true;
    else
      numel *= (size_t)x;
  }
  size_t esz = dmx_st_dtype_size(t->dtype);
  char shs[256];
  dmx_st_shape_str(t->ndim, t->shape, shs, sizeof shs);
  /* A zero dimension makes the size 0 whatever the rest overflowed to. */
  for (int k = 0; k < t->ndim; k++)
    if (t->shape[k] == 0) overflow = false, numel = 0;
  if (overflow || numel > SIZE_MAX / esz) return tensor_err(f, err, name, "shape overflows the address space: ", shs);
  t->numel = numel;
  t->nbytes = numel * esz;
  if (off->type != DMX_JSON_ARRAY || off->n != 2)
    return tensor_err(f, err, name, "\"data_offsets\" must be an array [begin, end]", NULL);
  uint64_t b, e;
  if (!json_uint(&off->kids[0], &b) || !json_uint(&off->kids[1], &e))
    return tensor_err(f, err, name, "\"data_offsets\" entries must be non-negative integers", NULL);
  char d[512];
  if (b > e) {
    snprintf(d, sizeof d, "[%" PRIu64 ", %" PRIu64 "] (begin after end)", b, e);
    return tensor_err(f, err, name, "out-of-order data_offsets ", d);
  }
  if (e > data_len) {
    snprintf(d, sizeof d, "[%" PRIu64 ", %" PRIu64 "] out of range: the data section has %zu bytes", b, e, data_len);
    return tensor_err(f, err, name, "data_offsets ", d);
  }
  if (e - b != t->nbytes) {
    snprintf(d, sizeof d, "data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64 " bytes but %s %s needs %zu", b, e,
             e - b, dmx_st_dtype_name(t->dtype), shs, t->nbytes);
    return tensor_err(f, err, name, "size mismatch: ", d);
  }
  *begin = (size_t)b;
  *end = (size_t)e;
  return 0;
}

typedef struct {
  size_t begin, end, idx;
} span;

static int span_cmp(const void *a, const void *b) {
  const span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return x->idx < y->idx ? -1 : (x->idx > y->idx ? 1 : 0);
}

static int name_cmp(const void *a, const void *b) {
  return strcmp((*(const dmx_st_tensor *const *)a)->name, (*(const dmx_st_tensor *const *)b)->name);
}

static dmx_st_file *parse_owned(unsigned char *buf, size_t len, const char *what, dmx_error *err) {
  dmx_st_file *f = dmx_calloc(1, sizeof *f);
  f->buf = buf;
  f->len = len;
  f->what = dmx_strdup(what);
  dmx_json root = {0};
  span *sp = NULL;
  dmx_st_tensor *tmp = NULL;
  if (len < 8) {
    dmx_fail(err, "%s: not a safetensors file: %zu bytes, too short for the 8-byte header length", what, len);
    goto fail;
  }
  uint64_t hlen = 0;
  for (int k = 7; k >= 0; k--) hlen = (hlen << 8) | buf[k];
  if (hlen > len - 8) {
    dmx_fail(err,
             "%s: bad safetensors file: header length %" PRIu64
             " exceeds the %zu bytes after the length field "
             "(truncated or not a safetensors file)",
             what, hlen, len - 8);
    goto fail;
  }
  if (hlen > DMX_ST_MAX_HEADER) {
    dmx_fail(err, "%s: bad safetensors file: header length %" PRIu64 " is over the %zu byte limit", what, hlen,
             DMX_ST_MAX_HEADER);
    goto fail;
  }
  dmx_json_opts jo = {.what = what,
                      .kind = "safetensors header",
                      .noun = "header",
                      .header_offset = 8,
                      .top_key = "tensor name",
                      .max_depth = DMX_ST_MAX_DEPTH,
                      .require_object = true};
  if (dmx_json_parse(buf + 8, (size_t)hlen, &jo, &root, err) != 0) goto fail;
  size_t data_off = 8 + (size_t)hlen, data_len = len - data_off;
  f->t = dmx_calloc(root.n ? root.n : 1, sizeof *f->t);
  sp = dmx_malloc((root.n ? root.n : 1) * sizeof *sp);
  for (size_t k = 0; k < root.n; k++) {
    const char *key = root.keys[k];
    const dmx_json *v = &root.kids[k];
    if (strlen(key) != root.keylen[k]) {
      dmx_fail(err, "%s: bad safetensors header: a tensor name contains a NUL character", what);
      goto fail;
    }
    if (strcmp(key, "__metadata__") == 0) {
      if (v->type != DMX_JSON_OBJECT) {
        dmx_fail(err, "%s: bad safetensors header: \"__metadata__\" is not an object of strings", what);
        goto fail;
      }
      f->mkeys = dmx_calloc(v->n ? v->n : 1, sizeof *f->mkeys);
      f->mvals = dmx_calloc(v->n ? v->n : 1, sizeof *f->mvals);
      for (size_t m = 0; m < v->n; m++) {
        if (v->kids[m].type != DMX_JSON_STRING) {
          dmx_fail(err, "%s: bad safetensors header: metadata value for '%.300s' is not a string", what, v->keys[m]);
          goto fail;
        }
        if (strlen(v->keys[m]) != v->keylen[m] || strlen(v->kids[m].s) != v->kids[m].slen) {
          dmx_fail(err, "%s: bad safetensors header: metadata contains a NUL character", what);
          goto fail;
        }
        f->mkeys[f->nm] = dmx_strdup(v->keys[m]);
        f->mvals[f->nm] = dmx_strdup(v->kids[m].s);
        f->nm++;
      }
      continue;
    }
    dmx_st_tensor *t = &f->t[f->nt];
    size_t b, e;
    if (parse_tensor(f, key, v, t, &b, &e, data_len, err) != 0) goto fail;
    t->name = dmx_strdup(key);
    t->data = buf + data_off + b;
    sp[f->nt] = (span){b, e, f->nt};
    f->nt++;
  }
  /* Offsets must tile the data section exactly: sorted by begin, no overlap, no gap, nothing left. */
  qsort(sp, f->nt, sizeof *sp, span_cmp);
  size_t at = 0;
  for (size_t k = 0; k < f->nt; k++) {
    if (sp[k].begin < at) {
      const span *prev = &sp[k - 1];
      dmx_fail(err, "%s: bad safetensors header: tensors '%.300s' [%zu, %zu] and '%.300s' [%zu, %zu] overlap", what,
               f->t[prev->idx].name, prev->begin, prev->end, f->t[sp[k].idx].name, sp[k].begin, sp[k].end);
      goto fail;
    }
    if (sp[k].begin > at) {
      dmx_fail(err, "%s: bad safetensors header: gap of %zu unused bytes before tensor '%.300s' at data offset %zu",
               what, sp[k].begin - at, f->t[sp[k].idx].name, sp[k].begin);
      goto fail;
    }
    at = sp[k].end;
  }
  if (at != data_len) {
    dmx_fail(err,
             "%s: bad safetensors file: %zu bytes after the last tensor are not described by the header "
             "(data section %zu bytes)",
             what, data_len - at, data_len);
    goto fail;
  }
  /* Reorder tensors into data order; build the name index. */
  tmp = dmx_malloc((f->nt ? f->nt : 1) * sizeof *tmp);
  for (size_t k = 0; k < f->nt; k++) tmp[k] = f->t[sp[k].idx];
  memcpy(f->t, tmp, f->nt * sizeof *tmp);
  free(tmp);
  tmp = NULL;
  f->by_name = dmx_malloc((f->nt ? f->nt : 1) * sizeof *f->by_name);
  for (size_t k = 0; k < f->nt; k++) f->by_name[k] = &f->t[k];
  qsort(f->by_name, f->nt, sizeof *f->by_name, name_cmp);
  free(sp);
  dmx_json_free(&root);
  return f;
fail:
  free(sp);
  free(tmp);
  dmx_json_free(&root);
  dmx_st_free(f);
  return NULL;
}

dmx_st_file *dmx_st_load(const char *path, dmx_error *err) {
  size_t len;
  char *buf = dmx_read_file(path, &len, err);
  if (!buf) return NULL;
  return parse_owned((unsigned char *)buf, len, path, err);
}

dmx_st_file *dmx_st_adopt(unsigned char *buf, size_t len, const char *what, dmx_error *err) {
  return parse_owned(buf, len, what ? what : "(memory)", err);
}

dmx_st_file *dmx_st_parse(const void *bytes, size_t len, const char *what, dmx_error *err) {
  unsigned char *buf = dmx_malloc(len ? len : 1);
  if (len) memcpy(buf, bytes, len);
  return parse_owned(buf, len, what ? what : "(memory)", err);
}

size_t dmx_st_count(const dmx_st_file *f) { return f->nt; }

const dmx_st_tensor *dmx_st_at(const dmx_st_file *f, size_t i) { return i < f->nt ? &f->t[i] : NULL; }

const dmx_st_tensor *dmx_st_find(const dmx_st_file *f, const char *name) {
  size_t lo = 0, hi = f->nt;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(f->by_name[mid]->name, name);
    if (c == 0) return f->by_name[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

const char *dmx_st_meta(const dmx_st_file *f, const char *key) {
  for (size_t k = 0; k < f->nm; k++)
    if (strcmp(f->mkeys[k], key) == 0) return f->mvals[k];
  return NULL;
}

size_t dmx_st_meta_count(const dmx_st_file *f) { return f->nm; }

int dmx_st_meta_at(const dmx_st_file *f, size_t i, const char **key, const char **value) {
  if (i >= f->nm) return -1;
  if (key) *key = f->mkeys[i];
  if (value) *value = f->mvals[i];
  return 0;
}

float dmx_half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: normalise */
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while (!(man & 0x400));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (man << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
  }
  float out;
  memcpy(&out, &bits, sizeof out);
  return out;
}

static uint64_t le_load(const unsigned char *p, size_t n) {
  uint64_t v = 0;
  for (size_t k = n; k-- > 0;) v = (v << 8) | p[k];
  return v;
}

static bool host_little_endian(void) {
  const uint16_t one = 1;
  unsigned char c;
  memcpy(&c, &one, 1);
  return c == 1;
}

static const dmx_st_tensor *get_checked(const dmx_st_file *f, const char *name, size_t n, dmx_error *err) {
  const dmx_st_tensor *t = dmx_st_find(f, name);
  if (!t) {
    dmx_fail(err, "%s: no tensor named '%.300s'", f->what, name);
    return NULL;
  }
  if (t->numel != n) {
    char shs[256];
    dmx_fail(err, "%s: tensor '%.300s' has %zu elements (shape %s), expected %zu", f->what, name, t->numel,
             dmx_st_shape_str(t->ndim, t->shape, shs, sizeof shs), n);
    return NULL;
  }
  return t;
}

int dmx_st_get_f32(const dmx_st_file *f, const char *name, float *out, size_t n, dmx_error *err) {
  const dmx_st_tensor *t = get_checked(f, name, n, err);
  if (!t) return -1;
  const unsigned char *p = t->data;
  switch (t->dtype) {
    case DMX_ST_F32:
      if (host_little_endian()) {
        if (n) memcpy(out, p, n * 4);
      } else {
        for (size_t k = 0; k < n; k++) {
          uint32_t b = (uint32_t)le_load(p + 4 * k, 4);
          memcpy(&out[k], &b, 4);
        }
      }
      return 0;
    case DMX_ST_F16:
      for (size_t k = 0; k < n; k++) out[k] = dmx_half_to_float((uint16_t)le_load(p + 2 * k, 2));
      return 0;
    case DMX_ST_BF16:
      return dmx_fail(err, "%s: tensor '%.300s' is BF16, which is not supported; convert it to F32 or F16", f->what,
                      name);
    default:
      return dmx_fail(err, "%s: tensor '%.300s' is %s, expected a float tensor (F32 or F16)", f->what, name,
                      dmx_st_dtype_name(t->dtype));
  }
}

int dmx_st_get_i32(const dmx_st_file *f, const char *name, int32_t *out, size_t n, dmx_error *err) {
  const dmx_st_tensor *t = get_checked(f, name, n, err);
  if (!t) return -1;
  const unsigned char *p = t->data;
  switch (t->dtype) {
    case DMX_ST_I32:
      for (size_t k = 0; k < n; k++) out[k] = (int32_t)(uint32_t)le_load(p + 4 * k, 4);
      return 0;
    case DMX_ST_I64:
      for (size_t k = 0; k < n; k++) {
        int64_t v = (int64_t)le_load(p + 8 * k, 8);
        if (v < INT32_MIN || v > INT32_MAX)
          return dmx_fail(err, "%s: tensor '%.300s' element %zu = %" PRId64 " does not fit in int32", f->what, name, k,
                          v);
        out[k] = (int32_t)v;
      }
      return 0;
    default:
      return dmx_fail(err, "%s: tensor '%.300s' is %s, expected an integer tensor (I32 or I64)", f->what, name,
                      dmx_st_dtype_name(t->dtype));
  }
}

int dmx_st_expect_shape(const dmx_st_file *f, const char *name, int ndim, const int64_t *shape, dmx_error *err) {
  const dmx_st_tensor *t = dmx_st_find(f, name);
  if (!t) return dmx_fail(err, "%s: no tensor named '%.300s'", f->what, name);
  bool same = t->ndim == ndim;
  for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
  if (!same) {
    char a[256], b[256];
    return dmx_fail(err, "%s: tensor '%.300s' has shape %s, expected %s", f->what, name,
                    dmx_st_shape_str(t->ndim, t->shape, a, sizeof a), dmx_st_shape_str(ndim, shape, b, sizeof b));
  }
  return 0;
}

/* ------------------------------------------------------------------------------------------------
 * Writer */

typedef struct {
  char *name;
  dmx_st_dtype dtype;
  int ndim;
  int64_t shape[DMX_ST_MAX_DIMS];
  size_t nbytes;
  const void *data;
} wtensor;

struct dmx_st_writer {
  wtensor *t;
  size_t nt, capt;
  char **mk, **mv;
  size_t nm, capm;
};

dmx_st_writer *dmx_st_writer_new(void) { return dmx_calloc(1, sizeof(dmx_st_writer)); }

void dmx_st_writer_free(dmx_st_writer *w) {
  if (!w) return;
  for (size_t k = 0; k < w->nt; k++) free(w->t[k].name);
  for (size_t k = 0; k < w->nm; k++) {
    free(w->mk[k]);
    free(w->mv[k]);
  }
  free(w->t);
  free(w->mk);
  free(w->mv);
  free(w);
}

static bool valid_utf8(const char *s) {
  const unsigned char *u = (const unsigned char *)s;
  size_t n = strlen(s);
  for (size_t i = 0; i < n;) {
    size_t l = dmx_utf8_len(u + i, n - i);
    if (!l) return false;
    i += l;
  }
  return true;
}

int dmx_st_writer_add(dmx_st_writer *w, const char *name, dmx_st_dtype dtype, int ndim, const int64_t *shape,
                      const void *data, dmx_error *err) {
  if (!name || !valid_utf8(name)) return dmx_fail(err, "safetensors writer: tensor name is not valid UTF-8");
  if (strcmp(name, "__metadata__") == 0)
    return dmx_fail(err, "safetensors writer: '__metadata__' is reserved and cannot name a tensor");
  if (dtype != DMX_ST_F32 && dtype != DMX_ST_I32 && dtype != DMX_ST_I64)
    return dmx_fail(err, "safetensors writer: tensor '%.300s': only F32, I32 and I64 can be written, not %s", name,
                    dmx_st_dtype_name(dtype));
  if (ndim < 0 || ndim > DMX_ST_MAX_DIMS)
    return dmx_fail(err, "safetensors writer: tensor '%.300s': %d dimensions (0..%d allowed)", name, ndim,
                    DMX_ST_MAX_DIMS);
  for (size_t k = 0; k < w->nt; k++)
    if (strcmp(w->t[k].name, name) == 0)
      return dmx_fail(err, "safetensors writer: duplicate tensor name '%.300s'", name);
  size_t numel = 1;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0 || (uint64_t)shape[d] > ((uint64_t)1 << 53))
      return dmx_fail(err, "safetensors writer: tensor '%.300s': bad dimension %" PRId64, name, shape[d]);
    if (shape[d] != 0 && numel > SIZE_MAX / 8 / (size_t)shape[d])
      return dmx_fail(err, "safetensors writer: tensor '%.300s': shape overflows", name);
    numel *= (size_t)shape[d];
  }
  if (numel && !data) return dmx_fail(err, "safetensors writer: tensor '%.300s': no data", name);
  if (w->nt == w->capt) {
    w->capt = w->capt ? 2 * w->capt : 16;
    w->t = dmx_realloc(w->t, w->capt * sizeof *w->t);
  }
  wtensor *t = &w->t[w->nt++];
  memset(t, 0, sizeof *t);
  t->name = dmx_strdup(name);
  t->dtype = dtype;
  t->ndim = ndim;
  for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
  t->nbytes = numel * dmx_st_dtype_size(dtype);
  t->data = data;
  return 0;
}

int dmx_st_writer_meta(dmx_st_writer *w, const char *key, const char *value, dmx_error *err) {
  if (!key || !value || !valid_utf8(key) || !valid_utf8(value))
    return dmx_fail(err, "safetensors writer: metadata key/value must be valid UTF-8 strings");
  for (size_t k = 0; k < w->nm; k++)
    if (strcmp(w->mk[k], key) == 0) return dmx_fail(err, "safetensors writer: duplicate metadata key '%.300s'", key);
  if (w->nm == w->capm) {
    w->capm = w->capm ? 2 * w->capm : 16;
    w->mk = dmx_realloc(w->mk, w->capm * sizeof *w->mk);
    w->mv = dmx_realloc(w->mv, w->capm * sizeof *w->mv);
  }
  w->mk[w->nm] = dmx_strdup(key);
  w->mv[w->nm] = dmx_strdup(value);
  w->nm++;
  return 0;
}

static void sb_json_str(dmx_buf *b, const char *s) {
  dmx_buf_putc(b, '"');
  for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
    if (*u == '"')
      dmx_buf_put(b, "\\\"", 2);
    else if (*u == '\\')
      dmx_buf_put(b, "\\\\", 2);
    else if (*u < 0x20) {
      char e[8];
      snprintf(e, sizeof e, "\\u%04x", *u);
      dmx_buf_put(b, e, 6);
    } else
      dmx_buf_putc(b, (char)*u);
  }
  dmx_buf_putc(b, '"');
}

int dmx_st_writer_serialize(const dmx_st_writer *w, unsigned char **out, size_t *len, dmx_error *err) {
  dmx_buf h = {0};
  dmx_buf_putc(&h, '{');
  bool first = true;
  if (w->nm) {
    dmx_buf_put(&h, "\"__metadata__\":{", 16);
    for (size_t k = 0; k < w->nm; k++) {
      if (k) dmx_buf_putc(&h, ',');
      sb_json_str(&h, w->mk[k]);
      dmx_buf_putc(&h, ':');
      sb_json_str(&h, w->mv[k]);
    }
    dmx_buf_putc(&h, '}');
    first = false;
  }
  size_t off = 0;
  for (size_t k = 0; k < w->nt; k++) {
    const wtensor *t = &w->t[k];
    if (!first) dmx_buf_putc(&h, ',');
    first = false;
    sb_json_str(&h, t->name);
    char tmp[128];
    int m = snprintf(tmp, sizeof tmp, ":{\"dtype\":\"%s\",\"shape\":[", dmx_st_dtype_name(t->dtype));
    dmx_buf_put(&h, tmp, (size_t)m);
    for (int d = 0; d < t->ndim; d++) {
      m = snprintf(tmp, sizeof tmp, "%s%" PRId64, d ? "," : "", t->shape[d]);
      dmx_buf_put(&h, tmp, (size_t)m);
    }
    m = snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%zu,%zu]}", off, off + t->nbytes);
    dmx_buf_put(&h, tmp, (size_t)m);
    if (t->nbytes > SIZE_MAX - off) {
      free(h.b);
      return dmx_fail(err, "safetensors writer: total size overflows");
    }
    off += t->nbytes;
  }
  dmx_buf_putc(&h, '}');
  while (h.n % 8) dmx_buf_putc(&h, ' ');
  if (off > SIZE_MAX - 8 - h.n) {
    free(h.b);
    return dmx_fail(err, "safetensors writer: total size overflows");
  }
  size_t total = 8 + h.n + off;
  unsigned char *buf = dmx_malloc(total);
  for (int k = 0; k < 8; k++) buf[k] = (unsigned char)(((uint64_t)h.n >> (8 * k)) & 0xFF);
  memcpy(buf + 8, h.b, h.n);
  size_t at = 8 + h.n;
  bool le = host_little_endian();
  for (size_t k = 0; k < w->nt; k++) {
    const wtensor *t = &w->t[k];
    if (le) {
      if (t->nbytes) memcpy(buf + at, t->data, t->nbytes);
    } else {
      const unsigned char *s = t->data;
      size_t es = dmx_st_dtype_size(t->dtype);
      for (size_t e = 0; e < t->nbytes; e += es)
        for (size_t b = 0; b < es; b++) buf[at + e + b] = s[e + es - 1 - b];
    }
    at += t->nbytes;
  }
  free(h.b);
  *out = buf;
  *len = total;
  return 0;
}

int dmx_st_writer_write(const dmx_st_writer *w, const char *path, dmx_error *err) {
  unsigned char *buf;
  size_t len;
  if (dmx_st_writer_serialize(w, &buf, &len, err) != 0) return -1;
  int rc = dmx_write_file_atomic(path, buf, len, err);
  free(buf);
  return rc;
}
