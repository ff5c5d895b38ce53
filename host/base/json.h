/* The one JSON reader of the project (safetensors headers, tuner files, peaks, trainer states,
 * tokenizer vocabularies): strict RFC 8259 into a tree. Errors name the file and line:column
 * (or, for a binary header, the byte offsets). */
#ifndef DMX_BASE_JSON_H
#define DMX_BASE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/base/common.h"

#define DMX_JSON_MAX_DEPTH 64         /* nesting limit of dmx_json_parse_file */
#define DMX_JSON_MAX_FILE (256 << 20) /* bytes: larger JSON files are refused */

typedef enum {
  DMX_JSON_OBJECT,
  DMX_JSON_ARRAY,
  DMX_JSON_STRING,
  DMX_JSON_NUMBER,
  DMX_JSON_TRUE,
  DMX_JSON_FALSE,
  DMX_JSON_NULL
} dmx_json_type;

typedef struct dmx_json {
  dmx_json_type type;
  size_t pos; /* byte offset where the value starts */
  char *s;    /* STRING: decoded bytes (NUL-terminated; may hold NULs, see slen); NUMBER: raw text */
  size_t slen;
  size_t n, cap; /* OBJECT / ARRAY: children */
  struct dmx_json *kids;
  char **keys; /* OBJECT only: decoded keys, keylen bytes each, and their byte offsets */
  size_t *keylen, *keypos;
} dmx_json;

typedef struct {
  const char *what;     /* the file (or name) for messages */
  const char *kind;     /* what the text is, for messages ("safetensors header"); NULL: "JSON" */
  const char *noun;     /* how messages name the text ("header"); NULL: "text" */
  size_t header_offset; /* > 0: report byte offsets, plus this for the file offset, not line:column */
  const char *top_key;  /* what a key of the top object names, for duplicate messages ("tensor name") */
  int max_depth;
  bool require_object; /* the text must be one object */
} dmx_json_opts;

/* Parses len bytes into *root; 0, or -1 with err (and *root empty). Free with dmx_json_free. */
int dmx_json_parse(const void *text, size_t len, const dmx_json_opts *o, dmx_json *root, dmx_error *err);
/* Reads and parses a file holding one JSON object. */
int dmx_json_parse_file(const char *path, const char *kind, dmx_json *root, dmx_error *err);
void dmx_json_free(dmx_json *v);

/* The member `key` of an object (NULL when absent or obj is not an object). */
const dmx_json *dmx_json_member(const dmx_json *obj, const char *key);
/* The value as a double / an integer in [lo, hi] / a NUL-free string; false or NULL otherwise. */
bool dmx_json_number(const dmx_json *v, double *out);
bool dmx_json_integer(const dmx_json *v, long long lo, long long hi, long long *out);
const char *dmx_json_string(const dmx_json *v);

/* The string member `key` of obj into out[cap]: 0, or -1 with err naming `what` (the file). */
int dmx_json_copy_string(const dmx_json *obj, const char *what, const char *key, char *out, size_t cap, dmx_error *err);
/* The same for one member of the object in file `path`: 0, or -1 (err, when non-NULL, says why:
 * unreadable, not JSON, no such string, too long). It parses the file, so for several members parse
 * once with dmx_json_parse_file and copy each. */
int dmx_json_file_string(const char *path, const char *key, char *out, size_t cap, dmx_error *err);

/* The line (from 1) of byte offset pos in text: for messages about a value (v->pos). */
int dmx_json_line(const char *text, size_t pos);

/* Length of a valid UTF-8 sequence starting at s (at most n bytes), 0 when invalid. */
size_t dmx_utf8_len(const unsigned char *s, size_t n);

/* A growable byte buffer, always NUL-terminated. */
typedef struct {
  char *b;
  size_t n, cap;
} dmx_buf;
void dmx_buf_put(dmx_buf *b, const void *d, size_t n);
void dmx_buf_putc(dmx_buf *b, char c);

#endif
