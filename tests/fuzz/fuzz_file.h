/* For fuzz targets whose readers take paths: the input goes into a file of a private folder (one
 * per process, removed at exit), rewritten for every input. */
#ifndef DMX_FUZZ_FILE_H
#define DMX_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_dir_path[256];

static inline void fuzz_dir_remove(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_path);
  if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir_path);
}

static inline const char *fuzz_dir(void) {
  if (!fuzz_dir_path[0]) {
    snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "/tmp/datamux-fuzz-%ld", (long)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", fuzz_dir_path);
    if (system(cmd) != 0) abort();
    atexit(fuzz_dir_remove);
  }
  return fuzz_dir_path;
}

/* Writes data into <dir>/<name>; returns the path (static storage, one per name slot). */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
  static char paths[4][512];
  static int next;
  char *path = paths[next++ & 3];
  snprintf(path, 512, "%s/%s", fuzz_dir(), name);
  FILE *f = fopen(path, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) abort();
  return path;
}

/* Splits data at the first "\n--\n" into two parts (the second empty when there is none). */
static inline void fuzz_split(const uint8_t *data, size_t size, size_t *first, const uint8_t **second, size_t *second_size) {
  for (size_t i = 0; i + 4 <= size; i++)
    if (!memcmp(data + i, "\n--\n", 4)) {
      *first = i;
      *second = data + i + 4;
      *second_size = size - i - 4;
      return;
    }
  *first = size;
  *second = data + size;
  *second_size = 0;
}

#endif
