#include "host/base/yaml_util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int(dmx_yaml_fail_at)(dmx_error *err, const char *path, yaml_mark_t mark, const char *fmt, ...) {
  if (!err) return -1;
  int n = snprintf(err->msg, sizeof err->msg, "%s:%zu:%zu: ", path, mark.line + 1, mark.column + 1);
  if (n < 0 || (size_t)n >= sizeof err->msg) return -1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
  va_end(ap);
  return -1;
}

/* libyaml reports reader errors (bad encoding) by byte offset and parser/scanner errors by mark. */
static int report_parser_error(const yaml_parser_t *p, const char *path, dmx_error *err) {
  const char *problem = p->problem ? p->problem : "unknown error";
  if (p->error == YAML_READER_ERROR)
    return dmx_fail(err, "%s: invalid YAML: %s at byte %zu", path, problem, p->problem_offset);
  if (p->error == YAML_MEMORY_ERROR) return dmx_fail(err, "%s: out of memory while parsing YAML", path);
  if (p->context)
    return dmx_yaml_fail_at(err, path, p->problem_mark, "invalid YAML: %s %s (started at line %zu, column %zu)",
                            problem, p->context, p->context_mark.line + 1, p->context_mark.column + 1);
  return dmx_yaml_fail_at(err, path, p->problem_mark, "invalid YAML: %s", problem);
}

int dmx_yaml_load_file(dmx_yaml_file *y, const char *path, dmx_error *err) {
  memset(y, 0, sizeof *y);
  y->path = path;
  size_t len = 0;
  char *text = dmx_read_file_max(path, DMX_YAML_MAX_FILE, "YAML file", &len, err);
  if (!text) return -1;
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) {
    free(text);
    return dmx_fail(err, "%s: cannot initialise the YAML parser (out of memory?)", path);
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  int rc = 0;
  if (!yaml_parser_load(&parser, &y->doc)) {
    rc = report_parser_error(&parser, path, err);
  } else {
    y->loaded = true;
    if (!yaml_document_get_root_node(&y->doc)) {
      rc = dmx_fail(err, "%s: file is empty (expected a mapping of keys)", path);
    } else {
      /* A second document would be silently ignored; say so instead. */
      yaml_document_t extra;
      if (!yaml_parser_load(&parser, &extra)) {
        rc = report_parser_error(&parser, path, err);
      } else {
        yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
        if (extra_root)
          rc = dmx_yaml_fail_at(err, path, extra_root->start_mark,
                                "a second YAML document starts here; an experiment file holds exactly one");
        yaml_document_delete(&extra);
      }
    }
  }
  yaml_parser_delete(&parser);
  free(text);
  if (rc != 0) dmx_yaml_free(y);
  return rc;
}

void dmx_yaml_free(dmx_yaml_file *y) {
  if (y->loaded) yaml_document_delete(&y->doc);
  y->loaded = false;
}

yaml_node_t *dmx_yaml_root(dmx_yaml_file *y) { return yaml_document_get_root_node(&y->doc); }
yaml_node_t *dmx_yaml_node(dmx_yaml_file *y, int id) { return yaml_document_get_node(&y->doc, id); }

const char *dmx_yaml_kind_name(const yaml_node_t *n) {
  switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
  }
}

const char *dmx_yaml_scalar(const yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

bool dmx_yaml_is_null(const yaml_node_t *n) {
  if (!n || n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
  const char *s = (const char *)n->data.scalar.value;
  return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

size_t dmx_edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  size_t *row = dmx_malloc((lb + 1) * sizeof *row);
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      int same = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]);
      size_t best = diag + (same ? 0 : 1);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  size_t d = row[lb];
  free(row);
  return d;
}

/* "lr" for learning_rate: the initials of the underscore-separated parts. */
static bool is_initials_of(const char *word, const char *candidate) {
  if (!candidate) return false;
  const char *w = word;
  bool start = true;
  for (const char *c = candidate; *c; c++) {
    if (start) {
      if (tolower((unsigned char)*w) != tolower((unsigned char)*c)) return false;
      w++;
    }
    start = *c == '_' || *c == '-' || *c == '.';
  }
  return !*w && strlen(word) >= 2;
}

const char *dmx_closest_word(const char *word, const char *const *candidates, size_t n) {
  /* A third of the word's length (at least 2) separates typos from unrelated words. */
  size_t limit = strlen(word) / 3;
  if (limit < 2) limit = 2;
  const char *best = NULL;
  size_t best_d = limit + 1;
  for (size_t i = 0; i < n; i++) {
    size_t d = dmx_edit_distance(word, candidates[i]);
    if (d < best_d) {
      best_d = d;
      best = candidates[i];
    }
  }
  if (best) return best;
  /* Abbreviations: initials ("lr") or a prefix of at least three letters ("warmup" of warmup_steps). */
  for (size_t i = 0; i < n; i++)
    if (is_initials_of(word, candidates[i])) return candidates[i];
  size_t len = strlen(word);
  for (size_t i = 0; i < n && len >= 3; i++)
    if (!strncmp(word, candidates[i], len)) return candidates[i];
  return NULL;
}
