/* Output files every command shares: see output.h. */
#define _DEFAULT_SOURCE /* realpath */
#include "host/base/output.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void dmx_json_put_str(FILE *f, const char *s) {
  if (!s) {
    fputs("null", f);
    return;
  }
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

void dmx_csv_put(FILE *f, const char *s) {
  if (!strpbrk(s, ",\"\r\n")) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

int dmx_membuf_open(dmx_membuf *m, dmx_error *err) {
  m->text = NULL;
  m->len = 0;
  m->f = open_memstream(&m->text, &m->len);
  if (!m->f) return dmx_fail(err, "open_memstream failed: %s", strerror(errno));
  return 0;
}

int dmx_membuf_write(dmx_membuf *m, const char *dir, const char *name, char *written, size_t cap, dmx_error *err) {
  if (fclose(m->f) != 0) {
    free(m->text);
    return dmx_fail(err, "building %s failed: %s", name, strerror(errno));
  }
  snprintf(written, cap, "%s/%s", dir, name);
  int rc = dmx_write_file_atomic(written, m->text, m->len, err);
  free(m->text);
  m->text = NULL;
  return rc;
}

int dmx_membuf_commit(dmx_membuf *m, const char *dir, const char *name, dmx_error *err) {
  char path[4200];
  if (dmx_membuf_write(m, dir, name, path, sizeof path, err)) return -1;
  printf("wrote %s\n", path);
  return 0;
}

void dmx_membuf_discard(dmx_membuf *m) {
  fclose(m->f);
  free(m->text);
  m->text = NULL;
}

bool dmx_plot_png(const char *dir, const char *stem, const char *script) {
  if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
    printf("plot %s.png: skipped (gnuplot is not installed: apt-get install gnuplot-nox; the CSV has the numbers)\n",
           stem);
    return false;
  }
  /* gnuplot takes the paths inside single quotes */
  if (strchr(dir, '\'') || strchr(dir, '\n')) {
    printf("plot %s.png: skipped (the output folder's name has a quote or a newline)\n", stem);
    return false;
  }
  /* absolute paths in the kept script, so `gnuplot DIR/STEM.gp` redraws it from any folder */
  char abs_dir[4096];
  if (!realpath(dir, abs_dir)) {
    printf("plot %s.png: skipped (%s: %s)\n", stem, dir, strerror(errno));
    return false;
  }
  if (strchr(abs_dir, '\'') || strchr(abs_dir, '\n')) {
    printf("plot %s.png: skipped (the output folder's path has a quote or a newline)\n", stem);
    return false;
  }
  char gp[4200], png[4200], cmd[4400];
  snprintf(gp, sizeof gp, "%s/%s.gp", dir, stem);
  snprintf(png, sizeof png, "%s/%s.png", abs_dir, stem);
  dmx_membuf m;
  dmx_error err;
  if (dmx_membuf_open(&m, &err)) {
    printf("plot %s.png: skipped (%s)\n", stem, err.msg);
    return false;
  }
  fprintf(m.f, "set terminal png size 800,500 noenhanced\nset output '%s'\ncd '%s'\n%s", png, abs_dir, script);
  char written[4300];
  snprintf(cmd, sizeof cmd, "%s.gp", stem);
  if (dmx_membuf_write(&m, dir, cmd, written, sizeof written, &err)) {
    printf("plot %s.png: skipped (%s)\n", stem, err.msg);
    return false;
  }
  snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>&1", gp);
  int rc = system(cmd);
  if (rc != 0) {
    printf("plot %s.png: gnuplot failed (status %d, script %s); the CSV has the numbers\n", stem, rc, gp);
    return false;
  }
  printf("wrote %s/%s.png\n", dir, stem);
  return true;
}
