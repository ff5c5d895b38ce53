/* `datamux report A.json B.json ... [--out DIR]`: benchmark results of `datamux bench` (throughput,
 * --gemm, --build, --train and vision JSON files), from any number of devices and machines, side by side: per
 * benchmark kind one table with a column per file, headed by what each column was measured with
 * (device, platform, driver, GEMM backend, CLBlast and OpenBLAS versions, tuning, commit, date,
 * host), and a row per configuration (N, GEMM shape, program). Printed; with out_dir also written
 * as report.md and report.csv, with report.png (throughput against N, a line per file). */
#ifndef DMX_PERF_REPORT_H
#define DMX_PERF_REPORT_H

#include "host/base/common.h"

int dmx_report(const char *const *paths, int n, const char *out_dir, dmx_error *err);

#endif
