/* `datamux report`: benchmark JSON files from any number of devices and machines, side by side
 * (report.h). */
#include "host/perf/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/json.h"
#include "host/base/output.h"

/* What each benchmark's JSON holds per row, and the one number the report shows of it. */
typedef struct {
  const char *benchmark, *array, *key, *value, *unit;
} kind;
static const kind kinds[] = {
    {"throughput", "rows", "label", "instances_per_s", "inference instances/s"},
    {"gemm", "shapes", "shape", "gflops", "GEMM GFLOP/s"},
    {"build", "files", "file", "cold_s", "cold build seconds"},
    {"train", NULL, NULL, "instances_per_s", "training instances/s"},
    {"vision_throughput", "rows", "label", "images_per_second", "inference images/s"},
};
#define NKINDS (int)(sizeof kinds / sizeof *kinds)

/* The header rows: where a column's numbers come from. */
static const char *const meta_keys[] = {"device",          "device_type", "platform",     "driver_version",
                                        "gemm_backend",    "clblast_version", "openblas_version", "tuning_state",
                                        "commit",          "date",        "host"};
#define NMETA (int)(sizeof meta_keys / sizeof *meta_keys)

typedef struct {
  char path[1024];
  int kind;
  char meta[NMETA][256];
  char title[800]; /* the column's name */
  int nrows;
  char (*row)[128];
  double *value;
} column;

static void copy_meta(const dmx_json *root, column *c) {
  for (int m = 0; m < NMETA; m++) {
    const char *v = dmx_json_string(dmx_json_member(root, meta_keys[m]));
    snprintf(c->meta[m], sizeof c->meta[m], "%s", v ? v : "-");
  }
}

static int read_column(const char *path, column *c, dmx_error *err) {
  memset(c, 0, sizeof *c);
  snprintf(c->path, sizeof c->path, "%s", path);
  dmx_json root;
  if (dmx_json_parse_file(path, "benchmark JSON", &root, err)) return -1;
  int rc = -1;
  const char *b = dmx_json_string(dmx_json_member(&root, "benchmark"));
  c->kind = -1;
  for (int k = 0; b && k < NKINDS; k++)
    if (!strcmp(b, kinds[k].benchmark)) c->kind = k;
  if (c->kind < 0) {
    dmx_fail(err, "%s: not a benchmark file of `datamux bench` (its \"benchmark\" is %s; reports take %s)", path,
             b ? b : "missing", "throughput, gemm, build, train, vision_throughput");
    goto out;
  }
  const kind *k = &kinds[c->kind];
  copy_meta(&root, c);
  if (!dmx_json_member(&root, "device")) {
    dmx_fail(err, "%s: no \"device\": not written by `datamux bench`", path);
    goto out;
  }
  if (!k->array) {
    c->nrows = 1;
    c->row = dmx_calloc(1, sizeof *c->row);
    c->value = dmx_calloc(1, sizeof *c->value);
    char label[128];
    long long N = 0;
    if (dmx_json_integer(dmx_json_member(&root, "N"), 0, 1 << 20, &N))
      snprintf(label, sizeof label, "training step, N=%lld", N);
    else
      snprintf(label, sizeof label, "training step");
    snprintf(c->row[0], sizeof c->row[0], "%s", label);
    if (!dmx_json_number(dmx_json_member(&root, k->value), &c->value[0])) {
      dmx_fail(err, "%s: no number \"%s\"", path, k->value);
      goto out;
    }
  } else {
    const dmx_json *arr = dmx_json_member(&root, k->array);
    if (!arr || arr->type != DMX_JSON_ARRAY) {
      dmx_fail(err, "%s: no \"%s\" list", path, k->array);
      goto out;
    }
    c->row = dmx_calloc(arr->n ? arr->n : 1, sizeof *c->row);
    c->value = dmx_calloc(arr->n ? arr->n : 1, sizeof *c->value);
    for (size_t i = 0; i < arr->n; i++) {
      const dmx_json *r = &arr->kids[i];
      const char *name = dmx_json_string(dmx_json_member(r, k->key));
      double v;
      if (!name) {
        dmx_fail(err, "%s: entry %zu of \"%s\" has no \"%s\"", path, i + 1, k->array, k->key);
        goto out;
      }
      if (!dmx_json_number(dmx_json_member(r, k->value), &v)) v = NAN; /* a failed or skipped row */
      snprintf(c->row[c->nrows], sizeof c->row[0], "%s", name);
      c->value[c->nrows++] = v;
    }
  }
  rc = 0;
out:
  dmx_json_free(&root);
  return rc;
}

static void free_column(column *c) {
  free(c->row);
  free(c->value);
}

/* The N of a throughput row label ("N=5"), for the plot's x axis; -1 for others ("vanilla"). */
static int row_n(const char *label) {
  if (!strncmp(label, "N=", 2)) return atoi(label + 2);
  return -1;
}

/* Kinds whose rows are values of N: plotted against N. */
static bool by_n(int k) { return k == 0 || k == 4; }

static void print_cell(FILE *f, double v, int width) {
  if (isfinite(v))
    fprintf(f, " %*.*f |", width, v >= 100 ? 1 : 3, v);
  else
    fprintf(f, " %*s |", width, "-");
}

/* One markdown table per benchmark kind: its rows, a column per file of that kind. */
static void write_tables(FILE *f, const column *cols, int n) {
  for (int k = 0; k < NKINDS; k++) {
    int in = 0;
    for (int c = 0; c < n; c++) in += cols[c].kind == k;
    if (!in) continue;
    fprintf(f, "\n%s (%s)\n\n| |", kinds[k].benchmark, kinds[k].unit);
    for (int c = 0; c < n; c++)
      if (cols[c].kind == k) fprintf(f, " %s |", cols[c].title);
    fprintf(f, "\n|---|");
    for (int c = 0; c < n; c++)
      if (cols[c].kind == k) fprintf(f, "---:|");
    fprintf(f, "\n");
    for (int m = 1; m < NMETA; m++) {
      fprintf(f, "| %s |", meta_keys[m]);
      for (int c = 0; c < n; c++)
        if (cols[c].kind == k) fprintf(f, " %s |", cols[c].meta[m]);
      fprintf(f, "\n");
    }
    /* rows in order of first appearance over the files */
    for (int c = 0; c < n; c++) {
      if (cols[c].kind != k) continue;
      for (int r = 0; r < cols[c].nrows; r++) {
        bool seen = false;
        for (int c2 = 0; c2 < c && !seen; c2++)
          if (cols[c2].kind == k)
            for (int r2 = 0; r2 < cols[c2].nrows; r2++) seen |= !strcmp(cols[c2].row[r2], cols[c].row[r]);
        if (seen) continue;
        fprintf(f, "| **%s** |", cols[c].row[r]);
        for (int c2 = 0; c2 < n; c2++) {
          if (cols[c2].kind != k) continue;
          double v = NAN;
          for (int r2 = 0; r2 < cols[c2].nrows; r2++)
            if (!strcmp(cols[c2].row[r2], cols[c].row[r])) v = cols[c2].value[r2];
          print_cell(f, v, 1);
        }
        fprintf(f, "\n");
      }
    }
  }
}

static int write_csv(const char *dir, const column *cols, int n, dmx_error *err) {
  dmx_membuf m;
  if (dmx_membuf_open(&m, err)) return -1;
  fprintf(m.f, "benchmark,row,file,device,platform,gemm_backend,commit,date,host,value,unit\n");
  for (int c = 0; c < n; c++)
    for (int r = 0; r < cols[c].nrows; r++) {
      const char *fields[] = {kinds[cols[c].kind].benchmark, cols[c].row[r], cols[c].path,     cols[c].meta[0],
                              cols[c].meta[2],               cols[c].meta[4], cols[c].meta[8], cols[c].meta[9],
                              cols[c].meta[10]};
      for (int i = 0; i < (int)(sizeof fields / sizeof *fields); i++) {
        dmx_csv_put(m.f, fields[i]);
        fputc(',', m.f);
      }
      if (isfinite(cols[c].value[r])) fprintf(m.f, "%.6g", cols[c].value[r]);
      fputc(',', m.f);
      dmx_csv_put(m.f, kinds[cols[c].kind].unit);
      fputc('\n', m.f);
    }
  return dmx_membuf_commit(&m, dir, "report.csv", err);
}

/* report.png: inference instances (or images)/s against N, a line per throughput file; without throughput
 * files, the first kind present as bars per row. */
static void plot(const char *dir, const column *cols, int n, dmx_error *err) {
  int k = -1; /* the first throughput kind present, else the first kind */
  for (int c = 0; c < n; c++)
    if (k < 0 || (!by_n(k) && by_n(cols[c].kind))) k = cols[c].kind;
  dmx_membuf dat, gp;
  if (dmx_membuf_open(&dat, err)) return;
  int blocks = 0;
  for (int c = 0; c < n; c++) {
    if (cols[c].kind != k) continue;
    if (blocks++) fprintf(dat.f, "\n\n");
    for (int r = 0; r < cols[c].nrows; r++) {
      int N = row_n(cols[c].row[r]);
      if (by_n(k) && N < 0) continue; /* the vanilla row has no place on the N axis */
      if (!isfinite(cols[c].value[r])) continue;
      fprintf(dat.f, "%d \"%s\" %.6g\n", by_n(k) ? N : r, cols[c].row[r], cols[c].value[r]);
    }
  }
  char written[4300];
  if (dmx_membuf_write(&dat, dir, "report.dat", written, sizeof written, err)) {
    printf("plot report.png: skipped (%s)\n", err->msg);
    return;
  }
  if (dmx_membuf_open(&gp, err)) return;
  fprintf(gp.f, "set title '%s'\nset ylabel '%s'\nset grid\nset key outside right\n", kinds[k].benchmark,
          kinds[k].unit);
  if (by_n(k))
    fprintf(gp.f, "set xlabel 'N (instances multiplexed)'\nset logscale x 2\nset logscale y 2\n");
  else
    fprintf(gp.f, "set xtics rotate by -30\nset offsets 0.5, 0.5, 0, 0\n");
  fprintf(gp.f, "plot ");
  int b = 0;
  for (int c = 0; c < n; c++) {
    if (cols[c].kind != k) continue;
    char title[800];
    snprintf(title, sizeof title, "%s", cols[c].title);
    for (char *p = title; *p; p++)
      if (*p == '\'') *p = '"';
    if (by_n(k))
      fprintf(gp.f, "%s'report.dat' index %d using 1:3 with linespoints pt 7 title '%s'", b ? ", " : "", b, title);
    else
      fprintf(gp.f, "%s'report.dat' index %d using ($1+%.2f):3:xtic(2) with impulses lw 8 title '%s'", b ? ", " : "",
              b, 0.15 * b, title);
    b++;
  }
  fprintf(gp.f, "\n");
  fflush(gp.f);
  char *script = dmx_strdup(gp.text ? gp.text : "");
  dmx_membuf_discard(&gp);
  dmx_plot_png(dir, "report", script);
  free(script);
}

int dmx_report(const char *const *paths, int n, const char *out_dir, dmx_error *err) {
  column *cols = dmx_calloc((size_t)n, sizeof *cols);
  int rc = -1;
  for (int i = 0; i < n; i++)
    if (read_column(paths[i], &cols[i], err)) goto out;
  /* column titles: the device, then what tells two columns of one device apart */
  for (int i = 0; i < n; i++) {
    int same = 0;
    for (int j = 0; j < n; j++) same += !strcmp(cols[j].meta[0], cols[i].meta[0]) && cols[j].kind == cols[i].kind;
    if (same > 1)
      snprintf(cols[i].title, sizeof cols[i].title, "%s (%s, %s)", cols[i].meta[0], cols[i].meta[10], cols[i].meta[9]);
    else
      snprintf(cols[i].title, sizeof cols[i].title, "%s", cols[i].meta[0]);
  }
  dmx_membuf md;
  if (dmx_membuf_open(&md, err)) goto out;
  fprintf(md.f, "Benchmark report: %d files\n", n);
  for (int i = 0; i < n; i++) fprintf(md.f, "- %s: %s\n", cols[i].title, cols[i].path);
  write_tables(md.f, cols, n);
  fflush(md.f);
  fputs(md.text ? md.text : "", stdout);
  if (!out_dir) {
    dmx_membuf_discard(&md);
    rc = 0;
    goto out;
  }
  if (dmx_mkdirs(out_dir, err)) {
    dmx_membuf_discard(&md);
    goto out;
  }
  if (dmx_membuf_commit(&md, out_dir, "report.md", err) || write_csv(out_dir, cols, n, err)) goto out;
  plot(out_dir, cols, n, err);
  rc = 0;
out:
  for (int i = 0; i < n; i++) free_column(&cols[i]); /* calloc'd: unread ones are empty */
  free(cols);
  return rc;
}
