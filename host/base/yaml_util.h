/* Small helpers over libyaml's document API: load a file with messages that name file:line:column,
 * describe nodes for error messages, and suggest the closest valid word for a misspelt key. */
#ifndef DMX_YAML_UTIL_H
#define DMX_YAML_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "host/base/common.h"

#define DMX_YAML_MAX_FILE ((size_t)1 << 20) /* an experiment is a few KB: anything larger is not one */

typedef struct {
  yaml_document_t doc;
  bool loaded;
  const char *path; /* borrowed: used only to prefix messages */
} dmx_yaml_file;

/* Reads and parses one YAML document. An empty file or a file holding more than one document is an
 * error. The root must exist; callers check its kind. 0 or -1 with err ("file:line:col: ..."). */
int dmx_yaml_load_file(dmx_yaml_file *y, const char *path, dmx_error *err);
void dmx_yaml_free(dmx_yaml_file *y);

yaml_node_t *dmx_yaml_root(dmx_yaml_file *y);
yaml_node_t *dmx_yaml_node(dmx_yaml_file *y, int id);

/* "a scalar", "a sequence", "a mapping": for "expected X, got Y" messages. */
const char *dmx_yaml_kind_name(const yaml_node_t *n);
/* The scalar's text (NUL-terminated by libyaml); NULL when n is not a scalar. */
const char *dmx_yaml_scalar(const yaml_node_t *n);
/* True for a plain scalar spelling YAML's null: "", "~", "null". */
bool dmx_yaml_is_null(const yaml_node_t *n);

/* Formats "path:line:col: <message>" into err (libyaml marks are 0-based; this prints 1-based). */
#ifdef __clang_analyzer__ /* see dmx_fail */
#define dmx_yaml_fail_at(...) (dmx_yaml_fail_at(__VA_ARGS__), -1)
#endif
int(dmx_yaml_fail_at)(dmx_error *err, const char *path, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Levenshtein distance, case-insensitive. */
size_t dmx_edit_distance(const char *a, const char *b);
/* The candidate closest to word when it is close enough to be a plausible typo; else NULL. */
const char *dmx_closest_word(const char *word, const char *const *candidates, size_t n);

#endif
