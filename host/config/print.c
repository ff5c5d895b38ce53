/* The resolved experiment as YAML, and comparing two experiments field by field. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "host/config/config.h"
#include "host/config/fields.h"

/* ---------------------------------------------------------------------------------------------- */
/* Printing and comparing                                                                          */

/* The shortest %g form that reads back (through the loader's strtod-then-float) as the same float. */
static void format_float(float v, char *buf, size_t cap) {
  for (int prec = 6; prec <= 9; prec++) {
    snprintf(buf, cap, "%.*g", prec, (double)v);
    if ((float)strtod(buf, NULL) == v) return;
  }
}

/* Double-quoted YAML scalar, so any text (colons, '#', leading spaces, "true") stays a string. */
static void print_quoted(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f)
      fprintf(f, "\\x%02x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

/* For comments: one line, no control characters. */
static void print_comment_text(FILE *f, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) fputc(*p < 0x20 ? '?' : *p, f);
}

int dmx_experiment_field_text(const dmx_experiment *e, const char *path, char *out, size_t cap) {
  if (cap) out[0] = 0; /* an unknown path leaves "" */
  int i = dmx_cfg_find_field_path(path);
  if (i < 0) return -1;
  const dmx_cfg_field *d = &dmx_cfg_fields[i];
  const void *p = dmx_cfg_field_cptr(e, i);
  switch (d->type) {
    case DMX_FT_INT: snprintf(out, cap, "%d", *(const int *)p); break;
    case DMX_FT_FLOAT: format_float(*(const float *)p, out, cap); break;
    case DMX_FT_BOOL: snprintf(out, cap, "%s", *(const bool *)p ? "true" : "false"); break;
    case DMX_FT_STRING:
    case DMX_FT_CHOICE: snprintf(out, cap, "%s", (const char *)p); break;
    case DMX_FT_ENUM: {
      int v = *(const int *)p, n = 0;
      while (d->choices[n]) n++;
      snprintf(out, cap, "%s", dmx_cfg_enum_name(d->choices, n, v));
      break;
    }
  }
  return 0;
}

static void print_field(FILE *f, const dmx_experiment *e, int i) {
  const dmx_cfg_field *d = &dmx_cfg_fields[i];
  fprintf(f, "%s%s: ", *d->section ? "  " : "", d->key);
  char buf[1100];
  dmx_experiment_field_text(e, d->path, buf, sizeof buf);
  if (d->type == DMX_FT_STRING || d->type == DMX_FT_CHOICE)
    print_quoted(f, buf);
  else
    fputs(buf, f);
  fputc('\n', f);
}

void dmx_experiment_print_yaml(FILE *f, const dmx_experiment *e) {
  fprintf(f, "# DataMUX-CL experiment, fully resolved from ");
  print_comment_text(f, e->source_path[0] ? e->source_path : "the defaults");
  fputc('\n', f);
  if (e->model_config_file[0]) {
    fprintf(f, "# model from config_name ");
    print_comment_text(f, e->model_config_file);
    fprintf(f, ", shown inline\n");
  }
  const char *section = "";
  for (int i = 0; i < DMX_CFG_NUM_FIELDS; i++) {
    if (strcmp(dmx_cfg_fields[i].section, section)) {
      section = dmx_cfg_fields[i].section;
      if (*section) fprintf(f, "%s:\n", section);
    }
    print_field(f, e, i);
  }
}

static bool field_equal(const dmx_experiment *a, const dmx_experiment *b, int i) {
  const void *pa = dmx_cfg_field_cptr(a, i), *pb = dmx_cfg_field_cptr(b, i);
  switch (dmx_cfg_fields[i].type) {
    case DMX_FT_INT:
    case DMX_FT_ENUM: return *(const int *)pa == *(const int *)pb;
    case DMX_FT_FLOAT: return memcmp(pa, pb, sizeof(float)) == 0; /* bitwise: a round trip must be exact */
    case DMX_FT_BOOL: return *(const bool *)pa == *(const bool *)pb;
    case DMX_FT_STRING:
    case DMX_FT_CHOICE: return strcmp((const char *)pa, (const char *)pb) == 0;
  }
  return false;
}

int dmx_experiment_diff(const dmx_experiment *a, const dmx_experiment *b, char *what, size_t cap) {
  int n = 0;
  if (what && cap) what[0] = 0;
  for (int i = 0; i < DMX_CFG_NUM_FIELDS; i++) {
    if (field_equal(a, b, i)) continue;
    if (n++ == 0 && what && cap) snprintf(what, cap, "%s", dmx_cfg_fields[i].path);
  }
  return n;
}
