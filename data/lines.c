#include "data/lines.h"

#include <stdlib.h>
#include <string.h>

int dmx_lines_open(dmx_lines *r, const char *path, dmx_error *err) {
  memset(r, 0, sizeof *r);
  size_t len = 0;
  char *buf = dmx_read_file_max(path, DMX_LINES_MAX_FILE, "text data file", &len, err);
  if (!buf) return -1;
  if (len == 0) {
    free(buf);
    return dmx_fail(err, "%s: file is empty", path);
  }
  r->path = dmx_strdup(path);
  r->buf = buf;
  r->len = len;
  /* Some GLUE files (MRPC) begin with a byte-order mark that would otherwise glue itself to the
   * first header name. */
  if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) r->pos = 3;
  return 0;
}

int dmx_lines_next(dmx_lines *r, char **line, size_t *len, dmx_error *err) {
  if (r->pos >= r->len) return 0;
  char *start = r->buf + r->pos;
  size_t left = r->len - r->pos;
  char *nl = memchr(start, '\n', left);
  size_t n = nl ? (size_t)(nl - start) : left;
  r->pos += n + (nl ? 1 : 0);
  r->lineno++;
  r->had_newline = nl != NULL;
  if (n > DMX_LINES_MAX_LINE)
    return dmx_fail(err, "%s:%ld: a line of %zu bytes, over the %d MiB limit for one line (is this the right file?)",
                    r->path, r->lineno, n, DMX_LINES_MAX_LINE >> 20);
  if (n > 0 && start[n - 1] == '\r') n--;
  start[n] = 0; /* overwrites '\n' or '\r', or the NUL that dmx_read_file appended */
  if (memchr(start, 0, n))
    return dmx_fail(err, "%s:%ld: NUL byte in line (is this a binary file?)", r->path, r->lineno);
  size_t ok = dmx_utf8_valid_prefix(start, n);
  if (ok != n)
    return dmx_fail(err, "%s:%ld: invalid UTF-8 at byte %zu of the line (0x%02X)", r->path, r->lineno, ok + 1,
                    (unsigned)(unsigned char)start[ok]);
  *line = start;
  *len = n;
  return 1;
}

void dmx_lines_close(dmx_lines *r) {
  free(r->buf);
  free(r->path);
  memset(r, 0, sizeof *r);
}

size_t dmx_utf8_valid_prefix(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    unsigned c = u[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int extra;
    unsigned min, cp;
    if ((c & 0xE0) == 0xC0) {
      extra = 1, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return i;
    }
    if (i + (size_t)extra >= n) return i; /* sequence cut off by the end of the line */
    for (int k = 1; k <= extra; k++) {
      if ((u[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (u[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += (size_t)extra + 1;
  }
  return n;
}

int dmx_split_tabs(char *line, char **fields, int max) {
  int count = 0;
  char *p = line;
  for (;;) {
    if (count < max) fields[count] = p;
    count++;
    char *tab = strchr(p, '\t');
    if (!tab) break;
    *tab = 0;
    p = tab + 1;
  }
  return count;
}

bool dmx_is_blank(const char *s) {
  for (; *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n' && *s != '\f' && *s != '\v') return false;
  return true;
}
