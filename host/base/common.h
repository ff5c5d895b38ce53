/* Error handling shared by every part of DataMUX-CL that is not data/.
 * Unrecoverable failures (a driver call that failed, memory that ran out) end the process with a
 * message naming the call site and what to do; recoverable bad input is reported through dmx_error
 * so callers (and tests) can see the message. */
#ifndef DMX_COMMON_H
#define DMX_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define DMX_ERRMSG 1024
typedef struct {
  char msg[DMX_ERRMSG];
} dmx_error;

/* Formats into err (when non-NULL) and returns -1, so `return dmx_fail(err, ...)` reads well. */
int dmx_fail(dmx_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The static analyser (`make analyze`) reads one file at a time and does not follow variadic
 * calls, so it would not know that a failure returns -1; this tells it. The same for the other
 * variadic error helpers. */
#ifdef __clang_analyzer__
#define dmx_fail(...) (dmx_fail(__VA_ARGS__), -1)
#endif

/* Prints "datamux: <file>:<line>: <message>" to stderr and exits with status 1 (or ends the
 * process through the fatal hook). */
_Noreturn void dmx_die_at(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define dmx_die(...) dmx_die_at(__FILE__, __LINE__, __VA_ARGS__)
/* For a process in a multi-process job (host/dist): `who` replaces "datamux" in dmx_die's
 * messages ("datamux rank 1 of 2"), and `end` replaces exit(1), so a fatal error on one rank ends
 * the whole job instead of leaving the others waiting. NULLs restore the defaults. */
void dmx_set_fatal_hook(const char *who, void (*end)(int code));
/* exit(code), or the fatal hook's end: for exits on bad input outside dmx_die. */
_Noreturn void dmx_exit(int code);
/* "datamux", or the hook's `who` ("datamux rank 1 of 2"): the prefix of such messages. */
const char *dmx_program_name(void);

void *dmx_malloc_at(size_t n, const char *file, int line);
void *dmx_calloc_at(size_t n, size_t size, const char *file, int line);
void *dmx_realloc_at(void *p, size_t n, const char *file, int line);
#define dmx_malloc(n) dmx_malloc_at((n), __FILE__, __LINE__)
#define dmx_calloc(n, s) dmx_calloc_at((n), (s), __FILE__, __LINE__)
#define dmx_realloc(p, n) dmx_realloc_at((p), (n), __FILE__, __LINE__)
char *dmx_strdup(const char *s);

/* Reads a whole file; NULL with err set when it cannot. *len excludes the added NUL. */
char *dmx_read_file(const char *path, size_t *len, dmx_error *err);
/* The same, refusing files (or streams: a FIFO, /dev/zero) over `max` bytes with a message
 * naming the limit and `kind` ("experiment YAML"). dmx_read_file's limit is DMX_READ_FILE_MAX. */
char *dmx_read_file_max(const char *path, size_t max, const char *kind, size_t *len, dmx_error *err);
#define DMX_READ_FILE_MAX ((size_t)16 << 30)
/* Writes atomically: temporary file in the same folder, fsync, rename. 0 or -1 with err. */
int dmx_write_file_atomic(const char *path, const void *data, size_t len, dmx_error *err);
/* Whether path names a regular file (after links) / a folder. */
bool dmx_is_file(const char *path);
bool dmx_is_dir(const char *path);
/* mkdir -p; 0 or -1 with err. */
int dmx_mkdirs(const char *path, dmx_error *err);
/* Deletes a folder holding plain files only (checkpoint and tuner scratch folders); a missing one
 * is not an error. 0 or -1 with err. */
int dmx_remove_flat_dir(const char *dir, dmx_error *err);
/* $XDG_CACHE_HOME/datamux or ~/.cache/datamux (not created). */
const char *dmx_cache_dir(void);

double dmx_now_seconds(void); /* monotonic clock */

#endif
