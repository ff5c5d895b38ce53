/* safetensors reader and writer (https://github.com/huggingface/safetensors format).
 *
 * File layout: 8-byte little-endian unsigned header length n; n bytes of JSON (UTF-8, possibly padded
 * with trailing spaces); then the data section. The JSON is one object: an optional "__metadata__"
 * object of string -> string, and per tensor name {"dtype": "F32", "shape": [..], "data_offsets":
 * [begin, end]} with offsets relative to the start of the data section.
 *
 * The reader validates everything it can and reports bad files through dmx_error (never crashes):
 * header length beyond the file, JSON syntax errors with their byte position, nesting deeper than
 * DMX_ST_MAX_DEPTH, duplicate keys or tensor names, unknown dtypes, shapes with more than
 * DMX_ST_MAX_DIMS dimensions or whose byte size overflows, byte sizes that differ from
 * prod(shape) * dtype size, offsets out of range, overlapping, with gaps, or not covering the data
 * section exactly (the same rules as the reference implementation). */
#ifndef DMX_SAFETENSORS_H
#define DMX_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "host/base/common.h"

#define DMX_ST_MAX_DIMS 8
#define DMX_ST_MAX_DEPTH 32                   /* JSON nesting limit (the format itself needs 3) */
#define DMX_ST_MAX_HEADER ((size_t)100000000) /* same limit as the reference implementation */

typedef enum {
  DMX_ST_F32 = 0,
  DMX_ST_F16,
  DMX_ST_BF16, /* recognised, but dmx_st_get_f32 refuses to convert it */
  DMX_ST_I32,
  DMX_ST_I64,
} dmx_st_dtype;

typedef struct {
  const char *name;
  dmx_st_dtype dtype;
  int ndim; /* 0 for a scalar */
  int64_t shape[DMX_ST_MAX_DIMS];
  size_t numel;     /* prod(shape); 1 for a scalar */
  const void *data; /* little-endian bytes inside the file; may be unaligned */
  size_t nbytes;
} dmx_st_tensor;

typedef struct dmx_st_file dmx_st_file;

/* Reads and validates a whole file. NULL with err set ("<path>: ...") on any problem. */
dmx_st_file *dmx_st_load(const char *path, dmx_error *err);
/* Same from memory (the bytes are copied); `what` names the source in messages. */
dmx_st_file *dmx_st_parse(const void *bytes, size_t len, const char *what, dmx_error *err);
/* Same, taking ownership of buf (a dmx_malloc'd buffer, freed with the file or on failure). */
dmx_st_file *dmx_st_adopt(unsigned char *buf, size_t len, const char *what, dmx_error *err);
void dmx_st_free(dmx_st_file *f);

/* Tensors in data-offset order. */
size_t dmx_st_count(const dmx_st_file *f);
const dmx_st_tensor *dmx_st_at(const dmx_st_file *f, size_t i);
/* NULL when absent. */
const dmx_st_tensor *dmx_st_find(const dmx_st_file *f, const char *name);

/* Metadata value for key, or NULL. Pairs in file order via dmx_st_meta_at (0 or -1 past the end). */
const char *dmx_st_meta(const dmx_st_file *f, const char *key);
size_t dmx_st_meta_count(const dmx_st_file *f);
int dmx_st_meta_at(const dmx_st_file *f, size_t i, const char **key, const char **value);

/* Copies tensor `name` into out[0..n) as float32 (F32 as is, F16 converted). Errors when the tensor
 * is missing, has another element count than n, or is not F32/F16. */
int dmx_st_get_f32(const dmx_st_file *f, const char *name, float *out, size_t n, dmx_error *err);
/* Same for int32 (I32 as is, I64 converted with a range check). */
int dmx_st_get_i32(const dmx_st_file *f, const char *name, int32_t *out, size_t n, dmx_error *err);
/* Checks that `name` exists with exactly this shape; error text shows both shapes. */
int dmx_st_expect_shape(const dmx_st_file *f, const char *name, int ndim, const int64_t *shape, dmx_error *err);

const char *dmx_st_dtype_name(dmx_st_dtype t);
/* IEEE half (binary16) bits to float, subnormals, infinities and NaNs included. */
float dmx_half_to_float(uint16_t h);
size_t dmx_st_dtype_size(dmx_st_dtype t);
/* Formats a shape as "[2, 3]" into buf (always NUL-terminated); returns buf. */
char *dmx_st_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);

/* Writer: collects tensors (F32, I32 or I64) and metadata, then writes the file atomically. Tensor data
 * is NOT copied: each pointer must stay valid until dmx_st_writer_write returns. Tensors are
 * written in the order added; the JSON header is padded with spaces so the data section starts at
 * an 8-byte aligned offset, as the reference implementation does. */
typedef struct dmx_st_writer dmx_st_writer;
dmx_st_writer *dmx_st_writer_new(void);
int dmx_st_writer_add(dmx_st_writer *w, const char *name, dmx_st_dtype dtype, int ndim, const int64_t *shape,
                      const void *data, dmx_error *err);
int dmx_st_writer_meta(dmx_st_writer *w, const char *key, const char *value, dmx_error *err);
/* Serialises to a malloc'd buffer (*out, *len); the caller frees it. */
int dmx_st_writer_serialize(const dmx_st_writer *w, unsigned char **out, size_t *len, dmx_error *err);
int dmx_st_writer_write(const dmx_st_writer *w, const char *path, dmx_error *err);
void dmx_st_writer_free(dmx_st_writer *w);

#endif
