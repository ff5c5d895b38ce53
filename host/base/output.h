/* Output files every command shares: text built in memory and written atomically, JSON string
 * literals, and PNG plots drawn by gnuplot. */
#ifndef DMX_BASE_OUTPUT_H
#define DMX_BASE_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include "host/base/common.h"

/* A JSON string literal of s (quotes, backslashes and control characters escaped); null for NULL. */
void dmx_json_put_str(FILE *f, const char *s);

/* A CSV field (RFC 4180): as it is, or quoted, with quotes doubled, when it holds a comma, a quote
 * or a line break. */
void dmx_csv_put(FILE *f, const char *s);

/* A memory stream for building a file's text, then written atomically into dir/name. */
typedef struct {
  char *text;
  size_t len;
  FILE *f;
} dmx_membuf;
int dmx_membuf_open(dmx_membuf *m, dmx_error *err);
/* Closes the stream and writes it to dir/name (the path goes to written); 0 or -1 with err. */
int dmx_membuf_write(dmx_membuf *m, const char *dir, const char *name, char *written, size_t cap, dmx_error *err);
/* dmx_membuf_write, then "wrote <path>" on stdout. */
int dmx_membuf_commit(dmx_membuf *m, const char *dir, const char *name, dmx_error *err);
/* Closes the stream and frees its text without writing (an error path). */
void dmx_membuf_discard(dmx_membuf *m);

/* Draws dir/<stem>.png with gnuplot from `script`, which must read its data from files in dir and
 * must not set the terminal or output (this does: PNG, 800x500). The script is kept as
 * dir/<stem>.gp so a plot can be redrawn or restyled. Prints "wrote <png>", or one line saying why
 * no plot was drawn (gnuplot not installed: `apt-get install gnuplot-nox`, or it failed); a missing
 * plot is never an error, since the CSV next to it has the numbers. Returns true when drawn. */
bool dmx_plot_png(const char *dir, const char *stem, const char *script);

#endif
