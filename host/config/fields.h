/* The one table of experiment fields (section, key, type, where it lives in the struct), shared by
 * the readers and writers of host/config/ so the YAML reader, `--set`, the printer and the
 * comparison can never disagree about a field. Not for other modules. Implemented in fields.c. */
#ifndef DMX_CONFIG_FIELDS_H
#define DMX_CONFIG_FIELDS_H

#include <stdbool.h>
#include <stddef.h>

#include "host/config/config.h"

typedef enum { DMX_FT_INT, DMX_FT_FLOAT, DMX_FT_BOOL, DMX_FT_STRING, DMX_FT_ENUM, DMX_FT_CHOICE } dmx_cfg_field_type;

typedef struct {
  const char *section; /* "" for top-level keys */
  const char *key;     /* = the struct member's name */
  const char *path;    /* "section.key", or key at top level */
  dmx_cfg_field_type type;
  size_t offset;
  size_t size;
  const char *const *choices; /* DMX_FT_ENUM, DMX_FT_CHOICE: NULL-terminated valid values */
} dmx_cfg_field;

extern const dmx_cfg_field dmx_cfg_fields[];
extern const int dmx_cfg_num_fields;
#define DMX_CFG_NUM_FIELDS dmx_cfg_num_fields
#define DMX_CFG_COUNT(a) (sizeof(a) / sizeof *(a))

/* Index of the field at "section.key" (-1: none); dmx_cfg_field_index ends the process on an
 * unknown path (a program bug). */
int dmx_cfg_find_field_path(const char *path);
int dmx_cfg_find_field(const char *section, const char *key);
int dmx_cfg_field_index(const char *path);
void *dmx_cfg_field_ptr(dmx_experiment *e, int i);
const void *dmx_cfg_field_cptr(const dmx_experiment *e, int i);
const char *dmx_cfg_enum_name(const char *const *names, int count, int v);
const char *dmx_cfg_type_description(const dmx_cfg_field *f);

/* Parses text as field i's value into e; 0, or -1 with the reason in why. */
int dmx_cfg_parse_value(dmx_experiment *e, int i, const char *text, char *why, size_t cap);
bool dmx_cfg_parse_bool(const char *s, bool *out);

/* Where a value came from, for messages: a flag, or "file:line:col: " prefixes. */
dmx_field_origin dmx_cfg_flag_origin(const char *flag, const char *value);
void dmx_cfg_describe_origin(const dmx_experiment *e, int i, char *out, size_t cap);

/* The setting-dependent defaults of fields the user did not set. */
void dmx_cfg_derive_defaults(dmx_experiment *e);

/* Model config files named by config_name: found next to base_dir or in experiments/models/. */
bool dmx_cfg_find_model_file(const char *name, const char *base_dir, char *out, size_t cap, char *tried, size_t tcap);
int dmx_cfg_load_model_file(dmx_experiment *e, const char *path, dmx_error *err);

#endif
