/* `datamux sweep`: the tables and plots of a sweep's results (sweep.h, dmx_sweep_collect). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/json.h"
#include "host/base/output.h"
#include "host/run/sweep.h"

typedef struct {
  bool have;
  char metric[64];
  double final, best, ips;
  long long best_step, steps;
} run_result;

/* One point's results.json, text or vision trainer's. 0 with r->have false when there is none yet. */
static int read_result(const dmx_sweep_point *p, run_result *r, dmx_error *err) {
  memset(r, 0, sizeof *r);
  char path[1800];
  snprintf(path, sizeof path, "%s/results.json", p->dir);
  if (!dmx_is_file(path)) return 0;
  dmx_json root;
  if (dmx_json_parse_file(path, "results", &root, err)) return -1;
  const dmx_json *fin = dmx_json_member(&root, "final"), *best = dmx_json_member(&root, "best");
  const char *metric = dmx_json_string(dmx_json_member(fin, "metric"));
  const char *value_key = metric ? "value" : "mean_accuracy"; /* vision runs: mean accuracy */
  snprintf(r->metric, sizeof r->metric, "%s", metric ? metric : "mean_accuracy");
  bool ok = dmx_json_number(dmx_json_member(fin, value_key), &r->final) &&
            dmx_json_number(dmx_json_member(best, value_key), &r->best) &&
            dmx_json_integer(dmx_json_member(best, "step"), -1, 1LL << 40, &r->best_step) &&
            dmx_json_integer(dmx_json_member(&root, "steps"), 0, 1LL << 40, &r->steps);
  const dmx_json *ips = dmx_json_member(&root, "train_instances_per_second");
  if (!ips) ips = dmx_json_member(&root, "train_images_per_second");
  ok = ok && dmx_json_number(ips, &r->ips);
  dmx_json_free(&root);
  if (!ok) return dmx_fail(err, "%s: not a results.json of datamux train (final/best values, steps)", path);
  r->have = true;
  return 0;
}

typedef struct {
  int first;   /* index of its first point */
  int n;       /* runs with results */
  int points;  /* points in the group (seeds) */
  double final_mean, final_std, best_mean, best_std, ips_mean, ips_std, steps_mean;
} group;

static void mean_std(const double *v, int n, double *mean, double *std) {
  double s = 0;
  for (int i = 0; i < n; i++) s += v[i];
  *mean = n ? s / n : NAN;
  double q = 0;
  for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
  *std = n > 1 ? sqrt(q / (n - 1)) : NAN; /* the sample standard deviation, as over seeds */
}

/* Points with the same values on every axis but the seed form a group. */
static bool same_group(const dmx_sweep *s, const dmx_sweep_point *a, const dmx_sweep_point *b) {
  for (int x = 0; x < s->naxes; x++)
    if (x != s->seed_axis && strcmp(a->axis_text[x], b->axis_text[x])) return false;
  return true;
}

static void csv_num(FILE *f, double v, const char *fmt) {
  if (isfinite(v)) fprintf(f, fmt, v);
}

static bool is_number(const char *s) {
  char *end;
  if (!*s) return false;
  strtod(s, &end);
  return *end == 0;
}

/* metric.png and throughput.png against the first axis that is not the seed, one line per value of
 * the other grid axes (list keys such as a model_path that goes with each N do not split lines);
 * the numbers come from plot.dat (blocks per line, gnuplot's `index`). */
static void plots(const dmx_sweep *s, const group *g, int ng, const char *metric, dmx_error *err) {
  int xa = -1;
  for (int a = 0; a < s->naxes && xa < 0; a++)
    if (a != s->seed_axis) xa = a;
  if (xa < 0 || ng < 2) {
    printf("plots: skipped (no axis besides the seed to plot against)\n");
    return;
  }
  err->msg[0] = 0;
  bool numeric = true;
  for (int i = 0; i < ng; i++) numeric &= is_number(s->points[g[i].first].axis_text[xa]);
  /* lines: groups with the same values on the other axes, in order of appearance */
  int *line_of = dmx_calloc((size_t)ng, sizeof *line_of), nlines = 0;
  int *line_first = dmx_calloc((size_t)ng, sizeof *line_first);
  for (int i = 0; i < ng; i++) {
    line_of[i] = -1;
    for (int l = 0; l < nlines && line_of[i] < 0; l++) {
      bool same = true;
      for (int a = 0; a < s->naxes; a++)
        if (a != xa && a != s->seed_axis && s->grid_axis[a] &&
            strcmp(s->points[g[i].first].axis_text[a], s->points[g[line_first[l]].first].axis_text[a]))
          same = false;
      if (same) line_of[i] = l;
    }
    if (line_of[i] < 0) {
      line_first[nlines] = i;
      line_of[i] = nlines++;
    }
  }
  dmx_membuf dat;
  if (dmx_membuf_open(&dat, err)) goto out;
  for (int l = 0; l < nlines; l++) {
    if (l) fprintf(dat.f, "\n\n");
    fprintf(dat.f, "# x final final_std throughput throughput_std\n");
    for (int i = 0; i < ng; i++) {
      if (line_of[i] != l || g[i].n == 0) continue;
      fprintf(dat.f, numeric ? "%s %.6g %.6g %.6g %.6g\n" : "\"%s\" %.6g %.6g %.6g %.6g\n",
              s->points[g[i].first].axis_text[xa], g[i].final_mean,
              isfinite(g[i].final_std) ? g[i].final_std : 0.0, g[i].ips_mean,
              isfinite(g[i].ips_std) ? g[i].ips_std : 0.0);
    }
  }
  char written[4300];
  if (dmx_membuf_write(&dat, s->out_dir, "plot.dat", written, sizeof written, err)) goto out;
  for (int which = 0; which < 2; which++) {
    dmx_membuf gp;
    if (dmx_membuf_open(&gp, err)) goto out;
    fprintf(gp.f, "set title '%s vs %s'\nset xlabel '%s'\nset ylabel '%s'\nset grid\nset key outside right\n"
            "set offsets graph 0.05, graph 0.05, graph 0.1, graph 0.1\nset pointsize 1.5\n",
            which ? "training throughput" : metric, s->axes[xa], s->axes[xa],
            which ? "instances / s (training)" : metric);
    if (!numeric) fprintf(gp.f, "set xtics rotate by -30\n");
    fprintf(gp.f, "plot ");
    for (int l = 0; l < nlines; l++) {
      char title[600] = "";
      size_t used = 0;
      for (int a = 0; a < s->naxes; a++) {
        if (a == xa || a == s->seed_axis || !s->grid_axis[a]) continue;
        int w = snprintf(title + used, sizeof title - used, "%s%s=%s", used ? " " : "", s->axes[a],
                         s->points[g[line_first[l]].first].axis_text[a]);
        if (w > 0 && (size_t)w < sizeof title - used) used += (size_t)w;
      }
      for (char *c = title; *c; c++)
        if (*c == '\'') *c = '"';
      int y = which ? 4 : 2;
      if (numeric)
        fprintf(gp.f, "%s'plot.dat' index %d using 1:%d:%d with yerrorlines pt 7 title '%s'", l ? ", " : "", l, y, y + 1,
                title[0] ? title : (which ? "throughput" : metric));
      else
        fprintf(gp.f, "%s'plot.dat' index %d using 0:%d:%d:xtic(1) with yerrorlines pt 7 title '%s'", l ? ", " : "", l, y,
                y + 1, title[0] ? title : (which ? "throughput" : metric));
    }
    fprintf(gp.f, "\n");
    fflush(gp.f);
    char *script = dmx_strdup(gp.text ? gp.text : "");
    dmx_membuf_discard(&gp);
    dmx_plot_png(s->out_dir, which ? "throughput" : "metric", script);
    free(script);
  }
out:
  if (err->msg[0]) printf("plots: skipped (%s)\n", err->msg);
  free(line_of);
  free(line_first);
}

int dmx_sweep_collect(const dmx_sweep *s, dmx_error *err) {
  int rc = -1;
  run_result *r = dmx_calloc((size_t)s->npoints, sizeof *r);
  group *g = dmx_calloc((size_t)s->npoints, sizeof *g);
  double *v1 = dmx_calloc((size_t)s->npoints, sizeof *v1), *v2 = dmx_calloc((size_t)s->npoints, sizeof *v2),
         *v3 = dmx_calloc((size_t)s->npoints, sizeof *v3), *v4 = dmx_calloc((size_t)s->npoints, sizeof *v4);
  char metric[64] = "";
  int missing = 0, ng = 0;
  for (int i = 0; i < s->npoints; i++) {
    if (read_result(&s->points[i], &r[i], err)) goto out;
    if (!r[i].have) missing++;
    if (r[i].have && !metric[0]) snprintf(metric, sizeof metric, "%s", r[i].metric);
  }
  if (!metric[0]) snprintf(metric, sizeof metric, "metric");
  int *group_of = dmx_calloc((size_t)s->npoints, sizeof *group_of);
  for (int i = 0; i < s->npoints; i++) {
    group_of[i] = -1;
    for (int k = 0; k < ng && group_of[i] < 0; k++)
      if (same_group(s, &s->points[g[k].first], &s->points[i])) group_of[i] = k;
    if (group_of[i] < 0) {
      g[ng].first = i;
      group_of[i] = ng++;
    }
  }
  for (int k = 0; k < ng; k++) {
    int n = 0;
    for (int i = 0; i < s->npoints; i++) {
      if (group_of[i] != k) continue;
      g[k].points++;
      if (!r[i].have) continue;
      v1[n] = r[i].final, v2[n] = r[i].best, v3[n] = r[i].ips, v4[n] = (double)r[i].steps;
      n++;
    }
    g[k].n = n;
    double unused;
    mean_std(v1, n, &g[k].final_mean, &g[k].final_std);
    mean_std(v2, n, &g[k].best_mean, &g[k].best_std);
    mean_std(v3, n, &g[k].ips_mean, &g[k].ips_std);
    mean_std(v4, n, &g[k].steps_mean, &unused);
  }
  free(group_of);

  /* runs.csv: every run */
  dmx_membuf m;
  if (dmx_membuf_open(&m, err)) goto out;
  fprintf(m.f, "point");
  for (int a = 0; a < s->naxes; a++) fprintf(m.f, ","), dmx_csv_put(m.f, s->axes[a]);
  fprintf(m.f, ",metric,final,best,best_step,steps\n");
  for (int i = 0; i < s->npoints; i++) {
    dmx_csv_put(m.f, s->points[i].name);
    for (int a = 0; a < s->naxes; a++) fprintf(m.f, ","), dmx_csv_put(m.f, s->points[i].axis_text[a]);
    if (r[i].have)
      fprintf(m.f, ",%s,%.6f,%.6f,%lld,%lld\n", r[i].metric, r[i].final, r[i].best, r[i].best_step, r[i].steps);
    else
      fprintf(m.f, ",,,,,\n");
  }
  if (dmx_membuf_commit(&m, s->out_dir, "runs.csv", err)) goto out;

  /* results.csv and throughput.csv: one row per group */
  dmx_membuf res, thr;
  if (dmx_membuf_open(&res, err)) goto out;
  if (dmx_membuf_open(&thr, err)) {
    dmx_membuf_discard(&res);
    goto out;
  }
  bool first_col = true;
  for (int a = 0; a < s->naxes; a++) {
    if (a == s->seed_axis) continue;
    fprintf(res.f, "%s", first_col ? "" : ","), dmx_csv_put(res.f, s->axes[a]);
    fprintf(thr.f, "%s", first_col ? "" : ","), dmx_csv_put(thr.f, s->axes[a]);
    first_col = false;
  }
  const char *sep = first_col ? "" : ",";
  fprintf(res.f, "%sruns,of,metric,final_mean,final_std,best_mean,best_std,steps_mean\n", sep);
  fprintf(thr.f, "%sruns,train_instances_per_second_mean,train_instances_per_second_std\n", sep);
  for (int k = 0; k < ng; k++) {
    const dmx_sweep_point *p = &s->points[g[k].first];
    first_col = true;
    for (int a = 0; a < s->naxes; a++) {
      if (a == s->seed_axis) continue;
      fprintf(res.f, "%s", first_col ? "" : ","), dmx_csv_put(res.f, p->axis_text[a]);
      fprintf(thr.f, "%s", first_col ? "" : ","), dmx_csv_put(thr.f, p->axis_text[a]);
      first_col = false;
    }
    fprintf(res.f, "%s%d,%d,%s,", sep, g[k].n, g[k].points, metric);
    csv_num(res.f, g[k].final_mean, "%.6f");
    fprintf(res.f, ",");
    csv_num(res.f, g[k].final_std, "%.6f");
    fprintf(res.f, ",");
    csv_num(res.f, g[k].best_mean, "%.6f");
    fprintf(res.f, ",");
    csv_num(res.f, g[k].best_std, "%.6f");
    fprintf(res.f, ",");
    csv_num(res.f, g[k].steps_mean, "%.1f");
    fprintf(res.f, "\n");
    fprintf(thr.f, "%s%d,", sep, g[k].n);
    csv_num(thr.f, g[k].ips_mean, "%.2f");
    fprintf(thr.f, ",");
    csv_num(thr.f, g[k].ips_std, "%.2f");
    fprintf(thr.f, "\n");
  }
  if (dmx_membuf_commit(&res, s->out_dir, "results.csv", err)) {
    dmx_membuf_discard(&thr);
    goto out;
  }
  if (dmx_membuf_commit(&thr, s->out_dir, "throughput.csv", err)) goto out;

  /* results.md: the same as a table to read, printed too */
  if (dmx_membuf_open(&m, err)) goto out;
  fprintf(m.f, "Sweep `%s` (base `%s`)%s\n\n|", s->path, s->base,
          s->seed_axis >= 0 ? ": mean ± standard deviation over the seeds" : "");
  for (int a = 0; a < s->naxes; a++)
    if (a != s->seed_axis) fprintf(m.f, " %s |", s->axes[a]);
  fprintf(m.f, " runs | %s (final) | %s (best) | training instances/s |\n|", metric, metric);
  for (int a = 0; a < s->naxes; a++)
    if (a != s->seed_axis) fprintf(m.f, "---|");
  fprintf(m.f, "---|---|---|---|\n");
  for (int k = 0; k < ng; k++) {
    const dmx_sweep_point *p = &s->points[g[k].first];
    fprintf(m.f, "|");
    for (int a = 0; a < s->naxes; a++)
      if (a != s->seed_axis) fprintf(m.f, " %s |", p->axis_text[a]);
    fprintf(m.f, " %d of %d |", g[k].n, g[k].points);
    double vals[3][2] = {{g[k].final_mean, g[k].final_std}, {g[k].best_mean, g[k].best_std},
                         {g[k].ips_mean, g[k].ips_std}};
    for (int c = 0; c < 3; c++) {
      bool pct = c < 2 && strcmp(metric, "pearson") && strcmp(metric, "spearmanr") && strcmp(metric, "metric");
      double scale = pct ? 100 : 1;
      if (!isfinite(vals[c][0]))
        fprintf(m.f, " - |");
      else if (isfinite(vals[c][1]))
        fprintf(m.f, c < 2 ? " %.2f ± %.2f%s |" : " %.1f ± %.1f%s |", vals[c][0] * scale, vals[c][1] * scale,
                pct ? " %" : "");
      else
        fprintf(m.f, c < 2 ? " %.2f%s |" : " %.1f%s |", vals[c][0] * scale, pct ? " %" : "");
    }
    fprintf(m.f, "\n");
  }
  if (missing) fprintf(m.f, "\n%d of %d points have no results yet: run the sweep again to finish them.\n", missing,
                       s->npoints);
  fflush(m.f);
  fputs(m.text ? m.text : "", stdout);
  if (dmx_membuf_commit(&m, s->out_dir, "results.md", err)) goto out;
  plots(s, g, ng, metric, err);
  rc = 0;
out:
  free(r);
  free(g);
  free(v1), free(v2), free(v3), free(v4);
  return rc;
}
