/* Replays a seed corpus through a fuzz target's entry point without libFuzzer, so every build (and
 * ctest) runs the committed corpus, hostile inputs included: `replay_<target> DIR [DIR...]`.
 * A crash, a sanitizer report (in the sanitizer build) or an empty corpus fails the test. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int replay_dir(const char *dir, int *count) {
  DIR *d = opendir(dir);
  if (!d) {
    perror(dir);
    return -1;
  }
  char **names = NULL;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    names = dmx_realloc(names, (n + 1) * sizeof *names);
    names[n++] = dmx_strdup(e->d_name);
  }
  if (closedir(d)) perror(dir);
  qsort(names, n, sizeof *names, by_name); /* a stable order makes a failure reproducible */
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    dmx_error err;
    size_t len;
    char *data = dmx_read_file(path, &len, &err);
    if (!data) {
      fprintf(stderr, "%s\n", err.msg);
      rc = -1;
    } else {
      printf("%s (%zu bytes)\n", path, len);
      fflush(stdout); /* the last name printed is the input that crashed */
      LLVMFuzzerTestOneInput((const uint8_t *)data, len);
      free(data);
      (*count)++;
    }
    free(names[i]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR [CORPUS_DIR...]\n", argv[0]);
    return 2;
  }
  int count = 0, rc = 0;
  for (int i = 1; i < argc; i++)
    if (replay_dir(argv[i], &count)) rc = 1;
  printf("%d inputs replayed\n", count);
  if (count == 0) {
    fprintf(stderr, "no inputs: the corpus is missing or empty\n");
    return 1;
  }
  return rc;
}
