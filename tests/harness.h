/* A minimal test harness: named cases, checks that record failures without stopping, and the
 * closing line "N passed, N failed". Every tests/test_*.c is its own ctest executable. */
#ifndef DMX_TEST_HARNESS_H
#define DMX_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

extern int th_checks_failed_in_case;

void th_begin(const char *case_name);
void th_end(void);   /* records the case as passed or failed */
int th_finish(void); /* prints the summary; returns the process exit status */
void th_fail_at(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define CHECK(cond)                                           \
  do {                                                        \
    if (!(cond)) th_fail_at(__FILE__, __LINE__, "%s", #cond); \
  } while (0)
#define CHECKF(cond, ...)                                     \
  do {                                                        \
    if (!(cond)) th_fail_at(__FILE__, __LINE__, __VA_ARGS__); \
  } while (0)

/* Relative error check for arrays against a double reference:
 * |got - want| <= atol + rtol * |want| elementwise. Prints the worst element on failure. */
bool th_close(const char *what, const float *got, const double *want, size_t n, double rtol, double atol);

/* Path of $DATAMUX_DATA/<rel>, or NULL (and the case is reported skipped) when unset. */
const char *th_data_path(const char *rel);
/* Whether $DATAMUX_DATA is set; when not, records a failed case "<what> need DATAMUX_DATA" (tests
 * that train on real data cannot pass without it). */
bool th_need_data(const char *what);
/* Runs a shell command, captures stdout+stderr into out (cap bytes); returns the exit status. */
int th_run(const char *cmd, char *out, size_t cap);
/* th_run of a formatted command line (at most 8 KiB). */
int th_runf(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The datamux binary under test ($DATAMUX_BIN, set by ctest). */
const char *th_datamux_bin(void);

/* Whether two files have the same bytes (a missing one prints its error and counts as different). */
bool th_same_file(const char *a, const char *b);

/* Test data: one xorshift64 stream per test process, seeded with th_seed (each test keeps its own
 * seed so its cases see the same numbers run to run). */
void th_seed(uint64_t seed);
double th_urand(void);                     /* uniform in [0, 1) */
float th_frand(void);                      /* uniform in [-1, 1) */
int th_irand(int n);                       /* uniform in 0 .. n-1 */
float *th_rand_vec(size_t n, float scale); /* malloc'd, uniform in [-scale, scale) */

#endif
