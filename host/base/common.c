#include "host/base/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int(dmx_fail)(dmx_error *err, const char *fmt, ...) { /* parenthesised: the analyser's macro (common.h) */
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static char fatal_who[64] = "datamux";
static void (*fatal_end)(int code);

void dmx_set_fatal_hook(const char *who, void (*end)(int code)) {
  snprintf(fatal_who, sizeof fatal_who, "%s", who ? who : "datamux");
  fatal_end = end;
}

void dmx_exit(int code) {
  fflush(stdout);
  if (fatal_end) fatal_end(code);
  exit(code);
}

const char *dmx_program_name(void) { return fatal_who; }

void dmx_die_at(const char *file, int line, const char *fmt, ...) {
  fflush(stdout);
  fprintf(stderr, "%s: %s:%d: ", fatal_who, file, line);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  if (fatal_end) fatal_end(1);
  exit(1);
}

void *dmx_malloc_at(size_t n, const char *file, int line) {
  void *p = malloc(n ? n : 1);
  if (!p) dmx_die_at(file, line, "out of host memory allocating %zu bytes", n);
  return p;
}

void *dmx_calloc_at(size_t n, size_t size, const char *file, int line) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) dmx_die_at(file, line, "out of host memory allocating %zu x %zu bytes", n, size);
  return p;
}

void *dmx_realloc_at(void *p, size_t n, const char *file, int line) {
  void *q = realloc(p, n ? n : 1);
  if (!q) dmx_die_at(file, line, "out of host memory reallocating to %zu bytes", n);
  return q;
}

char *dmx_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = dmx_malloc(n);
  memcpy(d, s, n);
  return d;
}

static void size_text(size_t n, char *out, size_t cap) {
  if (n >= ((size_t)1 << 30) && n % ((size_t)1 << 30) == 0)
    snprintf(out, cap, "%zu GiB", n >> 30);
  else if (n >= ((size_t)1 << 20) && n % ((size_t)1 << 20) == 0)
    snprintf(out, cap, "%zu MiB", n >> 20);
  else
    snprintf(out, cap, "%zu bytes", n);
}

char *dmx_read_file(const char *path, size_t *len, dmx_error *err) {
  return dmx_read_file_max(path, DMX_READ_FILE_MAX, "file", len, err);
}

char *dmx_read_file_max(const char *path, size_t max, const char *kind, size_t *len, dmx_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    dmx_fail(err, "%s: cannot open: %s", path, strerror(errno));
    return NULL;
  }
  char limit[32];
  size_text(max, limit, sizeof limit);
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (unsigned long long)st.st_size > max) {
    fclose(f);
    dmx_fail(err, "%s: %lld bytes, over the %s limit for a %s", path, (long long)st.st_size, limit, kind);
    return NULL;
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = dmx_malloc(cap + 1);
  for (;;) {
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) break;
    if (n > max) { /* not a regular file, or one that grew while it was read */
      fclose(f);
      free(buf);
      dmx_fail(err, "%s: more than %s, the limit for a %s", path, limit, kind);
      return NULL;
    }
    if (n == cap) {
      cap *= 2;
      buf = dmx_realloc(buf, cap + 1);
    }
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    dmx_fail(err, "%s: read error", path);
    return NULL;
  }
  buf[n] = 0;
  if (len) *len = n;
  return buf;
}

int dmx_write_file_atomic(const char *path, const void *data, size_t len, dmx_error *err) {
  size_t plen = strlen(path);
  char *tmp = dmx_malloc(plen + 32);
  snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    dmx_fail(err, "%s: cannot create: %s", tmp, strerror(errno));
    free(tmp);
    return -1;
  }
  const char *p = data;
  size_t left = len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      dmx_fail(err, "%s: write failed: %s (is the disk full?)", tmp, strerror(errno));
      close(fd);
      unlink(tmp);
      free(tmp);
      return -1;
    }
    p += w;
    left -= (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    dmx_fail(err, "%s: fsync/close failed: %s", tmp, strerror(errno));
    unlink(tmp);
    free(tmp);
    return -1;
  }
  if (rename(tmp, path) != 0) {
    dmx_fail(err, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    unlink(tmp);
    free(tmp);
    return -1;
  }
  free(tmp);
  return 0;
}

bool dmx_is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool dmx_is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int dmx_mkdirs(const char *path, dmx_error *err) {
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof buf) return dmx_fail(err, "bad directory path '%s'", path);
  memcpy(buf, path, n + 1);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return dmx_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST)
    return dmx_fail(err, "%s: cannot create directory: %s", buf, strerror(errno));
  return 0;
}

const char *dmx_cache_dir(void) {
  static char dir[4096];
  const char *xdg = getenv("XDG_CACHE_HOME");
  if (xdg && *xdg) {
    snprintf(dir, sizeof dir, "%s/datamux", xdg);
  } else {
    const char *home = getenv("HOME");
    snprintf(dir, sizeof dir, "%s/.cache/datamux", home && *home ? home : "/tmp");
  }
  return dir;
}

double dmx_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int dmx_remove_flat_dir(const char *dir, dmx_error *err) {
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : dmx_fail(err, "%s: cannot open to delete: %s", dir, strerror(errno));
  struct dirent *de;
  char path[8192];
  int rc = 0;
  while (rc == 0 && (de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (unlink(path) != 0) rc = dmx_fail(err, "%s: cannot delete: %s", path, strerror(errno));
  }
  closedir(d);
  if (rc == 0 && rmdir(dir) != 0) rc = dmx_fail(err, "%s: cannot delete folder: %s", dir, strerror(errno));
  return rc;
}
