/* The one JSON reader: a small strict parser (RFC 8259) into a tree, with limits on depth, duplicate
 * keys refused, strings decoded to UTF-8 (surrogate pairs joined, lone surrogates refused). */
#include "host/base/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const unsigned char *s;
  size_t n, i;
  const dmx_json_opts *o;
  dmx_error *err;
  char msg[128];
  bool keyed; /* the error message already names the member it is in */
} jparser;

void dmx_json_free(dmx_json *v) {
  for (size_t k = 0; k < v->n; k++) {
    dmx_json_free(&v->kids[k]);
    if (v->keys) free(v->keys[k]);
  }
  free(v->kids);
  free(v->keys);
  free(v->keylen);
  free(v->keypos);
  free(v->s);
  memset(v, 0, sizeof *v);
}

/* A safetensors header reports header and file offsets; any other text its line and column. */
static int jerr(jparser *p, size_t pos, const char *msg) {
  if (p->o->header_offset)
    return dmx_fail(p->err, "%s: bad %s: JSON error at header byte %zu (file offset %zu): %s", p->o->what,
                    p->o->kind ? p->o->kind : "JSON", pos, pos + p->o->header_offset, msg);
  size_t line = 1, col = 1;
  for (size_t i = 0; i < pos && i < p->n; i++) {
    if (p->s[i] == '\n')
      line++, col = 1;
    else
      col++;
  }
  return dmx_fail(p->err, "%s:%zu:%zu: bad %s: %s", p->o->what, line, col, p->o->kind ? p->o->kind : "JSON", msg);
}

/* A message naming the parsed text by its noun ("header"; default "text"). */
static const char *noun_msg(jparser *p, const char *fmt) {
  snprintf(p->msg, sizeof p->msg, fmt, p->o->noun ? p->o->noun : "text");
  return p->msg;
}

static void skip_ws(jparser *p) {
  while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

/* Length of a valid UTF-8 sequence starting at s (at most n bytes), 0 when invalid. */
size_t dmx_utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp, min;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, cp = c & 0x1F, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3, cp = c & 0x0F, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, cp = c & 0x07, min = 0x10000;
  else
    return 0;
  if (n < len) return 0;
  for (size_t k = 1; k < len; k++) {
    if ((s[k] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[k] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

static void sb_put_utf8(dmx_buf *b, uint32_t cp) {
  unsigned char t[4];
  size_t n;
  if (cp < 0x80)
    t[0] = (unsigned char)cp, n = 1;
  else if (cp < 0x800)
    t[0] = (unsigned char)(0xC0 | (cp >> 6)), t[1] = (unsigned char)(0x80 | (cp & 0x3F)), n = 2;
  else if (cp < 0x10000)
    t[0] = (unsigned char)(0xE0 | (cp >> 12)), t[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)),
    t[2] = (unsigned char)(0x80 | (cp & 0x3F)), n = 3;
  else
    t[0] = (unsigned char)(0xF0 | (cp >> 18)), t[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F)),
    t[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)), t[3] = (unsigned char)(0x80 | (cp & 0x3F)), n = 4;
  dmx_buf_put(b, t, n);
}

static int hex4(jparser *p, uint32_t *out) {
  if (p->n - p->i < 4) return jerr(p, p->i, "truncated \\u escape");
  uint32_t v = 0;
  for (int k = 0; k < 4; k++) {
    unsigned c = p->s[p->i + (size_t)k];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= c - '0';
    else if (c >= 'a' && c <= 'f')
      v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v |= c - 'A' + 10;
    else
      return jerr(p, p->i + (size_t)k, "bad hex digit in \\u escape");
  }
  p->i += 4;
  *out = v;
  return 0;
}

/* p->s[p->i] is the opening quote. */
static int parse_string(jparser *p, char **out, size_t *outlen) {
  size_t start = p->i;
  p->i++;
  dmx_buf b = {0};
  dmx_buf_put(&b, "", 0);
  for (;;) {
    if (p->i >= p->n) {
      free(b.b);
      return jerr(p, start, "unterminated string");
    }
    unsigned c = p->s[p->i];
    if (c == '"') {
      p->i++;
      break;
    }
    if (c < 0x20) {
      free(b.b);
      return jerr(p, p->i, "control character inside a string (must be escaped)");
    }
    if (c == '\\') {
      size_t esc = p->i;
      if (++p->i >= p->n) {
        free(b.b);
        return jerr(p, esc, "unterminated escape");
      }
      unsigned e = p->s[p->i++];
      switch (e) {
        case '"': dmx_buf_putc(&b, '"'); break;
        case '\\': dmx_buf_putc(&b, '\\'); break;
        case '/': dmx_buf_putc(&b, '/'); break;
        case 'b': dmx_buf_putc(&b, '\b'); break;
        case 'f': dmx_buf_putc(&b, '\f'); break;
        case 'n': dmx_buf_putc(&b, '\n'); break;
        case 'r': dmx_buf_putc(&b, '\r'); break;
        case 't': dmx_buf_putc(&b, '\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (hex4(p, &cp) != 0) {
            free(b.b);
            return -1;
          }
          if (cp >= 0xDC00 && cp <= 0xDFFF) {
            free(b.b);
            return jerr(p, esc, "lone low surrogate in \\u escape");
          }
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
              free(b.b);
              return jerr(p, esc, "high surrogate not followed by a low surrogate");
            }
            p->i += 2;
            if (hex4(p, &lo) != 0) {
              free(b.b);
              return -1;
            }
            if (lo < 0xDC00 || lo > 0xDFFF) {
              free(b.b);
              return jerr(p, esc, "high surrogate not followed by a low surrogate");
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          sb_put_utf8(&b, cp);
          break;
        }
        default: free(b.b); return jerr(p, esc, "invalid escape sequence");
      }
      continue;
    }
    size_t ul = dmx_utf8_len(p->s + p->i, p->n - p->i);
    if (ul == 0) {
      free(b.b);
      return jerr(p, p->i, "invalid UTF-8 in string");
    }
    dmx_buf_put(&b, p->s + p->i, ul);
    p->i += ul;
  }
  *out = b.b;
  *outlen = b.n;
  return 0;
}

static bool is_digit(unsigned c) { return c >= '0' && c <= '9'; }

static int parse_number(jparser *p, dmx_json *v) {
  size_t start = p->i;
  if (p->s[p->i] == '-') p->i++;
  if (p->i >= p->n || !is_digit(p->s[p->i])) return jerr(p, start, "invalid number");
  if (p->s[p->i] == '0') {
    p->i++;
    if (p->i < p->n && is_digit(p->s[p->i])) return jerr(p, start, "number with a leading zero");
  } else {
    while (p->i < p->n && is_digit(p->s[p->i])) p->i++;
  }
  if (p->i < p->n && p->s[p->i] == '.') {
    p->i++;
    if (p->i >= p->n || !is_digit(p->s[p->i])) return jerr(p, start, "invalid number (no digits after '.')");
    while (p->i < p->n && is_digit(p->s[p->i])) p->i++;
  }
  if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
    p->i++;
    if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
    if (p->i >= p->n || !is_digit(p->s[p->i])) return jerr(p, start, "invalid number (bad exponent)");
    while (p->i < p->n && is_digit(p->s[p->i])) p->i++;
  }
  v->type = DMX_JSON_NUMBER;
  v->slen = p->i - start;
  v->s = dmx_malloc(v->slen + 1);
  memcpy(v->s, p->s + start, v->slen);
  v->s[v->slen] = 0;
  return 0;
}

static void add_kid(dmx_json *v) {
  if (v->n == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 4;
    v->kids = dmx_realloc(v->kids, v->cap * sizeof *v->kids);
    if (v->type == DMX_JSON_OBJECT) {
      v->keys = dmx_realloc(v->keys, v->cap * sizeof *v->keys);
      v->keylen = dmx_realloc(v->keylen, v->cap * sizeof *v->keylen);
      v->keypos = dmx_realloc(v->keypos, v->cap * sizeof *v->keypos);
    }
  }
  memset(&v->kids[v->n], 0, sizeof v->kids[v->n]);
}

typedef struct {
  const char *k;
  size_t len, idx;
} keyref;

static int keyref_cmp(const void *a, const void *b) {
  const keyref *x = a, *y = b;
  size_t m = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->k, y->k, m);
  if (c) return c;
  if (x->len != y->len) return x->len < y->len ? -1 : 1;
  return x->idx < y->idx ? -1 : (x->idx > y->idx ? 1 : 0);
}

static int parse_value(jparser *p, dmx_json *v, int depth);

static int parse_object(jparser *p, dmx_json *v, int depth) {
  v->type = DMX_JSON_OBJECT;
  p->i++; /* '{' */
  skip_ws(p);
  if (p->i < p->n && p->s[p->i] == '}') {
    p->i++;
    return 0;
  }
  for (;;) {
    skip_ws(p);
    if (p->i >= p->n) return jerr(p, p->i, noun_msg(p, "unexpected end of %s inside an object"));
    if (p->s[p->i] != '"') return jerr(p, p->i, "expected a string key in object");
    add_kid(v);
    v->keypos[v->n] = p->i;
    v->keys[v->n] = NULL;
    if (parse_string(p, &v->keys[v->n], &v->keylen[v->n]) != 0) return -1;
    v->n++; /* counted now so jfree releases the key even if the value fails */
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != ':') return jerr(p, p->i, "expected ':' after object key");
    p->i++;
    skip_ws(p);
    if (parse_value(p, &v->kids[v->n - 1], depth + 1) != 0) {
      if (!p->keyed) { /* name the innermost member, so a damaged value is easy to find */
        size_t used = strlen(p->err->msg);
        snprintf(p->err->msg + used, sizeof p->err->msg - used, " (in the value of \"%.100s\")", v->keys[v->n - 1]);
        p->keyed = true;
      }
      return -1;
    }
    skip_ws(p);
    if (p->i >= p->n) return jerr(p, p->i, noun_msg(p, "unexpected end of %s inside an object"));
    if (p->s[p->i] == ',') {
      p->i++;
      continue;
    }
    if (p->s[p->i] == '}') {
      p->i++;
      break;
    }
    return jerr(p, p->i, "expected ',' or '}' in object");
  }
  /* Duplicate keys: sort references, compare neighbours. */
  keyref *r = dmx_malloc(v->n * sizeof *r);
  for (size_t k = 0; k < v->n; k++) r[k] = (keyref){v->keys[k], v->keylen[k], k};
  qsort(r, v->n, sizeof *r, keyref_cmp);
  for (size_t k = 1; k < v->n; k++) {
    if (r[k].len == r[k - 1].len && memcmp(r[k].k, r[k - 1].k, r[k].len) == 0) {
      char msg[400];
      if (depth == 0 && p->o->top_key)
        snprintf(msg, sizeof msg, "duplicate %s '%.300s'", p->o->top_key, r[k].k);
      else
        snprintf(msg, sizeof msg, "duplicate key '%.300s' in object", r[k].k);
      size_t pos = v->keypos[r[k].idx];
      free(r);
      return jerr(p, pos, msg);
    }
  }
  free(r);
  return 0;
}

static int parse_array(jparser *p, dmx_json *v, int depth) {
  v->type = DMX_JSON_ARRAY;
  p->i++; /* '[' */
  skip_ws(p);
  if (p->i < p->n && p->s[p->i] == ']') {
    p->i++;
    return 0;
  }
  for (;;) {
    skip_ws(p);
    add_kid(v);
    v->n++;
    if (parse_value(p, &v->kids[v->n - 1], depth + 1) != 0) return -1;
    skip_ws(p);
    if (p->i >= p->n) return jerr(p, p->i, noun_msg(p, "unexpected end of %s inside an array"));
    if (p->s[p->i] == ',') {
      p->i++;
      continue;
    }
    if (p->s[p->i] == ']') {
      p->i++;
      return 0;
    }
    return jerr(p, p->i, "expected ',' or ']' in array");
  }
}

static int parse_literal(jparser *p, dmx_json *v, const char *word, int type) {
  size_t len = strlen(word);
  if (p->n - p->i < len || memcmp(p->s + p->i, word, len) != 0) return jerr(p, p->i, "invalid literal");
  p->i += len;
  v->type = type;
  return 0;
}

static int parse_value(jparser *p, dmx_json *v, int depth) {
  if (p->i >= p->n) return jerr(p, p->i, noun_msg(p, "unexpected end of %s (value expected)"));
  v->pos = p->i;
  unsigned c = p->s[p->i];
  if ((c == '{' || c == '[') && depth >= p->o->max_depth) {
    char msg[96];
    snprintf(msg, sizeof msg, "nesting deeper than %d levels", p->o->max_depth);
    return jerr(p, p->i, msg);
  }
  switch (c) {
    case '{': return parse_object(p, v, depth);
    case '[': return parse_array(p, v, depth);
    case '"': v->type = DMX_JSON_STRING; return parse_string(p, &v->s, &v->slen);
    case 't': return parse_literal(p, v, "true", DMX_JSON_TRUE);
    case 'f': return parse_literal(p, v, "false", DMX_JSON_FALSE);
    case 'n': return parse_literal(p, v, "null", DMX_JSON_NULL);
    default:
      if (c == '-' || is_digit(c)) return parse_number(p, v);
      {
        char msg[64];
        if (c >= 0x20 && c < 0x7F)
          snprintf(msg, sizeof msg, "unexpected character '%c'", (char)c);
        else
          snprintf(msg, sizeof msg, "unexpected byte 0x%02x", c);
        return jerr(p, p->i, msg);
      }
  }
}

int dmx_json_parse(const void *text, size_t len, const dmx_json_opts *o, dmx_json *root, dmx_error *err) {
  memset(root, 0, sizeof *root);
  jparser p = {text, len, 0, o, err, "", false};
  skip_ws(&p);
  if (p.i >= p.n) return jerr(&p, p.i, noun_msg(&p, "empty %s"));
  if (o->require_object && p.s[p.i] != '{') return jerr(&p, p.i, noun_msg(&p, "%s is not a JSON object"));
  if (parse_value(&p, root, 0) != 0) {
    dmx_json_free(root);
    return -1;
  }
  skip_ws(&p);
  if (p.i != p.n) {
    dmx_json_free(root);
    return jerr(&p, p.i, noun_msg(&p, "trailing characters after the %s object"));
  }
  return 0;
}

int dmx_json_parse_file(const char *path, const char *kind, dmx_json *root, dmx_error *err) {
  size_t len = 0;
  char *text = dmx_read_file(path, &len, err);
  if (!text) return -1;
  if (len > DMX_JSON_MAX_FILE) {
    free(text);
    return dmx_fail(err, "%s: %zu bytes, over the %d MiB limit for a JSON file", path, len, DMX_JSON_MAX_FILE >> 20);
  }
  dmx_json_opts o = {.what = path, .kind = kind, .max_depth = DMX_JSON_MAX_DEPTH, .require_object = true};
  int rc = dmx_json_parse(text, len, &o, root, err);
  free(text);
  return rc;
}

const dmx_json *dmx_json_member(const dmx_json *obj, const char *key) {
  if (!obj || obj->type != DMX_JSON_OBJECT) return NULL;
  size_t kl = strlen(key);
  for (size_t k = 0; k < obj->n; k++)
    if (obj->keylen[k] == kl && memcmp(obj->keys[k], key, kl) == 0) return &obj->kids[k];
  return NULL;
}

bool dmx_json_number(const dmx_json *v, double *out) {
  if (!v || v->type != DMX_JSON_NUMBER) return false;
  char *end;
  errno = 0;
  double d = strtod(v->s, &end);
  if (errno == ERANGE || *end) return false;
  *out = d;
  return true;
}

bool dmx_json_integer(const dmx_json *v, long long lo, long long hi, long long *out) {
  double d;
  if (!dmx_json_number(v, &d) || strpbrk(v->s, ".eE")) return false;
  char *end;
  errno = 0;
  long long x = strtoll(v->s, &end, 10);
  if (errno || *end || x < lo || x > hi) return false;
  *out = x;
  return true;
}

const char *dmx_json_string(const dmx_json *v) {
  return v && v->type == DMX_JSON_STRING && strlen(v->s) == v->slen ? v->s : NULL;
}

int dmx_json_copy_string(const dmx_json *obj, const char *what, const char *key, char *out, size_t cap,
                         dmx_error *err) {
  const char *s = dmx_json_string(dmx_json_member(obj, key));
  if (!s) return dmx_fail(err, "%s: no string member \"%s\"", what, key);
  size_t n = strlen(s);
  if (n >= cap) return dmx_fail(err, "%s: \"%s\" is over %zu bytes", what, key, cap - 1);
  memcpy(out, s, n + 1);
  return 0;
}

int dmx_json_file_string(const char *path, const char *key, char *out, size_t cap, dmx_error *err) {
  dmx_error local;
  if (!err) err = &local;
  dmx_json root;
  if (dmx_json_parse_file(path, NULL, &root, err)) return -1;
  int rc = dmx_json_copy_string(&root, path, key, out, cap, err);
  dmx_json_free(&root);
  return rc;
}

int dmx_json_line(const char *text, size_t pos) {
  int line = 1;
  for (size_t i = 0; i < pos; i++) line += text[i] == '\n';
  return line;
}

void dmx_buf_put(dmx_buf *b, const void *d, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + n + 1) cap *= 2;
    b->b = dmx_realloc(b->b, cap);
    b->cap = cap;
  }
  memcpy(b->b + b->n, d, n);
  b->n += n;
  b->b[b->n] = 0;
}

void dmx_buf_putc(dmx_buf *b, char c) { dmx_buf_put(b, &c, 1); }
