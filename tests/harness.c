#include "tests/harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "host/base/common.h"

int th_checks_failed_in_case;
/* the case's name is copied: callers may build it in a buffer they reuse */
static char current[256] = "(outside a case)";
static int passed, failed, failed_outside;

void th_begin(const char *case_name) {
  failed_outside += th_checks_failed_in_case; /* checks since the last th_end */
  snprintf(current, sizeof current, "%s", case_name);
  th_checks_failed_in_case = 0;
}

void th_end(void) {
  if (th_checks_failed_in_case) {
    failed++;
    printf("FAIL %s\n", current);
  } else {
    passed++;
    printf("ok   %s\n", current);
  }
  snprintf(current, sizeof current, "(outside a case)");
  th_checks_failed_in_case = 0;
  fflush(stdout);
}

int th_finish(void) {
  /* a check that failed between cases fails the run too */
  failed_outside += th_checks_failed_in_case;
  if (failed_outside) {
    failed++;
    printf("FAIL %d check(s) outside a case\n", failed_outside);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

void th_fail_at(const char *file, int line, const char *fmt, ...) {
  th_checks_failed_in_case++;
  if (th_checks_failed_in_case > 20) return;
  printf("  %s:%d: [%s] ", file, line, current);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
}

bool th_close(const char *what, const float *got, const double *want, size_t n, double rtol, double atol) {
  size_t worst = 0;
  double worst_excess = -1;
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    double diff = fabs((double)got[i] - want[i]);
    double tol = atol + rtol * fabs(want[i]);
    if (!(diff <= tol)) bad++;
    double excess = diff - tol;
    if (isnan(got[i])) excess = INFINITY;
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = i;
    }
  }
  if (bad) {
    th_fail_at(__FILE__, __LINE__,
               "%s: %d of %zu elements out of tolerance (rtol %g, atol %g); worst [%zu] got %.8g want %.8g", what, bad,
               n, rtol, atol, worst, (double)got[worst], want[worst]);
    return false;
  }
  return true;
}

const char *th_data_path(const char *rel) {
  static char buf[8][4096];
  static int slot;
  const char *root = getenv("DATAMUX_DATA");
  if (!root || !*root) return NULL;
  char *b = buf[slot++ % 8];
  snprintf(b, 4096, "%s/%s", root, rel);
  return b;
}

bool th_need_data(const char *what) {
  const char *root = getenv("DATAMUX_DATA");
  if (root && *root) return true;
  char name[256];
  snprintf(name, sizeof name, "%s need DATAMUX_DATA (the shared data folder)", what);
  th_begin(name);
  CHECKF(0, "DATAMUX_DATA is not set");
  th_end();
  return false;
}

int th_run(const char *cmd, char *out, size_t cap) {
  char full[8192];
  snprintf(full, sizeof full, "(%s) 2>&1", cmd);
  FILE *p = popen(full, "r");
  if (!p) return -1;
  size_t n = 0;
  if (cap) out[0] = 0;
  int c;
  while ((c = fgetc(p)) != EOF)
    if (n + 1 < cap) out[n++] = (char)c;
  if (cap) out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int th_runf(char *out, size_t cap, const char *fmt, ...) {
  char cmd[8192];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof cmd) {
    if (cap) snprintf(out, cap, "th_runf: the command is over %zu bytes", sizeof cmd - 1);
    return -1;
  }
  return th_run(cmd, out, cap);
}

const char *th_datamux_bin(void) {
  const char *b = getenv("DATAMUX_BIN");
  return b && *b ? b : "build/datamux";
}

static uint64_t th_rng = 88172645463325252ULL;

void th_seed(uint64_t seed) { th_rng = seed ? seed : 88172645463325252ULL; }

double th_urand(void) {
  th_rng ^= th_rng << 13;
  th_rng ^= th_rng >> 7;
  th_rng ^= th_rng << 17;
  return (double)(th_rng >> 11) * (1.0 / 9007199254740992.0);
}

float th_frand(void) { return (float)(th_urand() * 2.0 - 1.0); }

int th_irand(int n) { return (int)(th_urand() * n); }

float *th_rand_vec(size_t n, float scale) {
  float *v = malloc((n ? n : 1) * sizeof(float));
  if (!v) {
    fprintf(stderr, "th_rand_vec: out of memory for %zu floats\n", n);
    exit(2);
  }
  for (size_t i = 0; i < n; i++) v[i] = scale * th_frand();
  return v;
}

bool th_same_file(const char *a, const char *b) {
  dmx_error err;
  size_t la = 0, lb = 0;
  char *x = dmx_read_file(a, &la, &err), *y = x ? dmx_read_file(b, &lb, &err) : NULL;
  bool same = x && y && la == lb && memcmp(x, y, la) == 0;
  if (!x || !y) printf("  %s\n", err.msg);
  free(x);
  free(y);
  return same;
}
