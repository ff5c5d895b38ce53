/* Reading text data files line by line with the checks every loader needs: the file must exist
 * and not be empty, a UTF-8 byte-order mark at the start is skipped, CRLF and LF line ends are
 * both accepted, a last line without a newline is still a line, and each line must be valid
 * UTF-8 without NUL bytes. Errors name file:line. Limits: DMX_LINES_MAX_FILE per file (MNLI's train
 * set is 300 MB, WikiText-103's 540 MB), DMX_LINES_MAX_LINE per line. */
#ifndef DMX_DATA_LINES_H
#define DMX_DATA_LINES_H

#include <stdbool.h>
#include <stddef.h>

#include "host/base/common.h"

#define DMX_LINES_MAX_FILE ((size_t)4 << 30)
#define DMX_LINES_MAX_LINE (1 << 20)

typedef struct {
  char *path; /* owned copy, for messages */
  char *buf;  /* whole file; lines are cut in place (NUL written over the line end) */
  size_t len, pos;
  long lineno;      /* 1-based number of the line last returned */
  bool had_newline; /* whether the line last returned ended with '\n' in the file */
} dmx_lines;

/* Reads the whole file. Fails on a missing or empty file. */
int dmx_lines_open(dmx_lines *r, const char *path, dmx_error *err);
/* 1 with *line (NUL-terminated, line end and CR stripped) and *len set; 0 at end of file;
 * -1 with err set ("path:line: ...") for a NUL byte or invalid UTF-8. */
int dmx_lines_next(dmx_lines *r, char **line, size_t *len, dmx_error *err);
void dmx_lines_close(dmx_lines *r);

/* Length of the longest valid UTF-8 prefix of s[0..n); equals n when all of it is valid.
 * Overlong forms, surrogates and code points above U+10FFFF are invalid. */
size_t dmx_utf8_valid_prefix(const char *s, size_t n);

/* Splits line at TABs in place; fields[] receives up to max pointers. Returns the number of
 * fields in the line (which may exceed max: then only max are stored). */
int dmx_split_tabs(char *line, char **fields, int max);

/* True when s is empty or only ASCII whitespace. */
bool dmx_is_blank(const char *s);

#endif
