/* `datamux predict` end to end: a tiny run is trained (2 steps of the micro model), then lines go
 * in on stdin and labels must come out on stdout, one per line, in input order.
 *
 * With multiplexing a line's prediction depends on the lines sharing its group, so the test does
 * not compare a line fed alone with the same line among others. It checks the count and validity
 * of the labels, that the same input gives the same output (evaluation mode is deterministic),
 * that the run directory, its checkpoint folder and the checkpoint file are interchangeable, and
 * for NER that every output line has exactly as many tags as its input line has words (the word
 * counts differ from line to line, so this also checks the order). Errors must name the problem.
 *
 * --format jsonl: on tests/fixtures/predict (a checkpoint and the logits the PyTorch reference model
 * gives for its input lines, tests/reference/make_predict_fixture.py) the logits must match within
 * 1e-4 and the labels exactly; everywhere the probabilities must sum to 1 within 1e-6 and their
 * argmax must be the label. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host/base/json.h"
#include "tests/harness.h"

static char dir[] = "/tmp/datamux-test-predict-XXXXXX";
static char out[65536], err_text[16384];

static void read_file(const char *path, char *buf, size_t cap) {
  buf[0] = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return;
  size_t n = fread(buf, 1, cap - 1, f);
  buf[n] = 0;
  fclose(f);
}

/* Runs `datamux predict ARGS` with `input` on stdin: stdout into out, stderr into err_text.
 * Returns the exit status. */
static int predict(const char *args, const char *input) {
  char in_path[256], err_path[256], cmd[8192];
  snprintf(in_path, sizeof in_path, "%s/in.txt", dir);
  snprintf(err_path, sizeof err_path, "%s/err.txt", dir);
  FILE *f = fopen(in_path, "wb");
  if (!f || fputs(input, f) < 0 || fclose(f) != 0) {
    th_fail_at(__FILE__, __LINE__, "cannot write %s", in_path);
    return -1;
  }
  snprintf(cmd, sizeof cmd, "%s predict %s < %s 2> %s", th_datamux_bin(), args, in_path, err_path);
  int rc = th_run(cmd, out, sizeof out);
  read_file(err_path, err_text, sizeof err_text);
  return rc;
}

/* Splits out into lines (in place); returns the count. A final line must end with '\n'. */
static int split_lines(char *s, char **lines, int cap) {
  int n = 0;
  char *p = s;
  while (*p) {
    char *nl = strchr(p, '\n');
    if (!nl) {
      th_fail_at(__FILE__, __LINE__, "output does not end with a newline: '%s'", p);
      break;
    }
    *nl = 0;
    if (n < cap) lines[n] = p;
    n++;
    p = nl + 1;
  }
  return n;
}

static bool one_of(const char *s, const char *const *names, int k) {
  for (int i = 0; i < k; i++)
    if (!strcmp(s, names[i])) return true;
  return false;
}

static int count_words(const char *s) {
  int n = 0;
  bool in = false;
  for (; *s; s++) {
    bool space = *s == ' ' || *s == '\t';
    if (!space && !in) n++;
    in = !space;
  }
  return n;
}

static bool train_run(const char *name, const char *flags) {
  char cmd[4096], log[65536];
  snprintf(cmd, sizeof cmd,
           "%s train experiments/quickstart.yaml --config_name experiments/models/micro.yaml --model_path '' "
           "--max_steps 2 --batch_size 2 --set task.max_train_examples=16 --set task.max_eval_examples=8 "
           "--set task.max_length=32 --set training.time_budget_seconds=0 %s --output_dir %s/%s",
           th_datamux_bin(), flags, dir, name);
  int rc = th_run(cmd, log, sizeof log);
  CHECKF(rc == 0, "training the %s run failed (exit %d):\n%s", name, rc, log);
  return rc == 0;
}

static const char *const sst2_labels[] = {"negative", "positive"};
static const char *const qnli_labels[] = {"entailment", "not_entailment"};
static const char *const ner_tags[] = {"O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"};

static const char *five =
    "a gripping, funny film\n"
    "terrible, boring and far too long\n"
    "I loved every minute of it\n"
    "meh\n"
    "the worst movie of the year , by a mile\n";


/* One line of --format jsonl parsed; false (with a failure recorded) when it is not an object with
 * a label, probabilities and logits. */
static bool parse_jsonl(const char *line, int i, dmx_json *v) {
  dmx_error e;
  dmx_json_opts o = {.what = "predict output", .require_object = true, .max_depth = 8};
  if (dmx_json_parse(line, strlen(line), &o, v, &e)) {
    th_fail_at(__FILE__, __LINE__, "line %d is not JSON (%s): %s", i + 1, e.msg, line);
    return false;
  }
  if (!dmx_json_member(v, "label") || !dmx_json_member(v, "probabilities") || !dmx_json_member(v, "logits")) {
    th_fail_at(__FILE__, __LINE__, "line %d lacks label, probabilities or logits: %s", i + 1, line);
    dmx_json_free(v);
    return false;
  }
  return true;
}

/* probabilities: numbers summing to 1 within 1e-6, their argmax names[label], and the same argmax
 * as the logits. */
static void check_distribution(const dmx_json *probs, const dmx_json *logits, const char *label,
                               const char *const *names, int C, const char *where) {
  if (probs->type != DMX_JSON_ARRAY || logits->type != DMX_JSON_ARRAY || (int)probs->n != C || (int)logits->n != C) {
    th_fail_at(__FILE__, __LINE__, "%s: probabilities/logits are not %d numbers", where, C);
    return;
  }
  double sum = 0, best = -1, best_logit = -INFINITY;
  int arg = -1, arg_logit = -1;
  for (int c = 0; c < C; c++) {
    double p = NAN, l = NAN;
    dmx_json_number(&probs->kids[c], &p);
    dmx_json_number(&logits->kids[c], &l);
    CHECKF(p >= 0 && p <= 1, "%s: probability %g", where, p);
    sum += p;
    if (p > best) best = p, arg = c;
    if (l > best_logit) best_logit = l, arg_logit = c;
  }
  CHECKF(fabs(sum - 1) <= 1e-6, "%s: probabilities sum to %.9f", where, sum);
  CHECKF(arg >= 0 && arg == arg_logit && label && !strcmp(label, names[arg]),
         "%s: label '%s' but the most probable class is %s (logits: %d)", where, label ? label : "?",
         arg >= 0 ? names[arg] : "?", arg_logit);
}

static void jsonl_fixture(void) {
  th_begin("predict --format jsonl on the fixture checkpoint: logits as PyTorch's within 1e-4, labels, sums");
  const char *fx = "tests/fixtures/predict";
  char path[256], input[4096], expect[8192];
  snprintf(path, sizeof path, "%s/input.txt", fx);
  read_file(path, input, sizeof input);
  snprintf(path, sizeof path, "%s/expect.jsonl", fx);
  read_file(path, expect, sizeof expect);
  CHECKF(input[0] && expect[0], "cannot read the fixture in %s", fx);
  char args[512];
  snprintf(args, sizeof args, "%s/experiment.yaml --model_path %s/model.safetensors --format jsonl", fx, fx);
  int rc = predict(args, input);
  CHECKF(rc == 0, "exit %d, stderr:\n%s", rc, err_text);
  char *got[16], *want[16];
  int n = split_lines(out, got, 16), m = split_lines(expect, want, 16);
  CHECKF(n == m && n == 8, "%d output lines, %d expected", n, m);
  double worst = 0;
  char want_labels[16][16] = {{0}};
  for (int i = 0; i < n && i < m && i < 16; i++) {
    dmx_json g, w;
    if (!parse_jsonl(got[i], i, &g)) continue;
    dmx_error e;
    dmx_json_opts o = {.what = "expect.jsonl", .require_object = true, .max_depth = 8};
    if (dmx_json_parse(want[i], strlen(want[i]), &o, &w, &e)) {
      th_fail_at(__FILE__, __LINE__, "expect.jsonl line %d: %s", i + 1, e.msg);
      dmx_json_free(&g);
      continue;
    }
    const char *label = dmx_json_string(dmx_json_member(&g, "label"));
    const char *want_label = dmx_json_string(dmx_json_member(&w, "label"));
    CHECKF(label && want_label && !strcmp(label, want_label), "line %d: label %s, PyTorch %s", i + 1,
           label ? label : "?", want_label ? want_label : "?");
    snprintf(want_labels[i], sizeof want_labels[i], "%s", want_label ? want_label : "?");
    const dmx_json *gl = dmx_json_member(&g, "logits"), *wl = dmx_json_member(&w, "logits");
    char where[32];
    snprintf(where, sizeof where, "line %d", i + 1);
    check_distribution(dmx_json_member(&g, "probabilities"), gl, label, sst2_labels, 2, where);
    for (size_t c = 0; wl && gl && c < wl->n && c < gl->n; c++) {
      double a = NAN, b = NAN;
      dmx_json_number(&gl->kids[c], &a);
      dmx_json_number(&wl->kids[c], &b);
      double err = fabs(a - b) / fmax(1.0, fabs(b));
      if (!(err <= worst)) worst = err;
    }
    dmx_json_free(&g);
    dmx_json_free(&w);
  }
  CHECKF(worst <= 1e-4, "logits differ from PyTorch's by %.3g (more than 1e-4)", worst);
  printf("  worst logit difference from PyTorch: %.3g\n", worst);
  /* the labels format prints the same labels */
  snprintf(args, sizeof args, "%s/experiment.yaml --model_path %s/model.safetensors", fx, fx);
  rc = predict(args, input);
  n = split_lines(out, got, 16);
  CHECKF(rc == 0 && n == 8, "labels: exit %d, %d lines", rc, n);
  for (int i = 0; i < n && i < 8; i++)
    CHECKF(!strcmp(got[i], want_labels[i]), "labels format, line %d: %s, PyTorch %s", i + 1, got[i], want_labels[i]);
  snprintf(args, sizeof args, "%s/experiment.yaml --model_path %s/model.safetensors --format xml", fx, fx);
  rc = predict(args, input);
  CHECKF(rc == 2 && strstr(err_text, "--format") && strstr(err_text, "jsonl"), "bad format: exit %d, %s", rc, err_text);
  th_end();
}

static void sentence_task(void) {
  th_begin("predict sst2 (N=2, index): one valid label per line, deterministic, any checkpoint path");
  if (!train_run("sst2", "-d index")) {
    th_end();
    return;
  }
  char args[512], first[65536];
  snprintf(args, sizeof args, "--model_path %s/sst2", dir);
  int rc = predict(args, five);
  CHECKF(rc == 0, "exit %d, stderr:\n%s", rc, err_text);
  snprintf(first, sizeof first, "%s", out);
  char *lines[16];
  int n = split_lines(out, lines, 16);
  CHECKF(n == 5, "%d output lines for 5 input lines:\n%s", n, first);
  for (int i = 0; i < n && i < 16; i++)
    CHECKF(one_of(lines[i], sst2_labels, 2), "line %d: '%s' is not an sst2 label", i + 1, lines[i]);

  /* the same input again, and through the checkpoint folder and file: the same output */
  const char *paths[] = {"%s/sst2", "%s/sst2/best", "%s/sst2/best/model.safetensors", "%s/sst2/last"};
  for (int k = 0; k < 4; k++) {
    char mp[300];
    snprintf(mp, sizeof mp, paths[k], dir);
    snprintf(args, sizeof args, "--model_path %s", mp);
    rc = predict(args, five);
    CHECKF(rc == 0, "%s: exit %d, stderr:\n%s", mp, rc, err_text);
    /* last/ holds the same parameters as best/ here: the only evaluation was at the last step */
    CHECKF(!strcmp(out, first), "%s: output differs from the first run:\n%s\nwas:\n%s", mp, out, first);
  }
  /* the experiment file is accepted after the flags too (the run's experiment.yaml still wins) */
  snprintf(args, sizeof args, "--model_path %s/sst2 experiments/quickstart.yaml", dir);
  rc = predict(args, five);
  CHECKF(rc == 0 && !strcmp(out, first), "with EXP.yaml: exit %d, output:\n%s\nstderr:\n%s", rc, out, err_text);

  /* 6 lines (a full last group) and a single line: counts and validity */
  snprintf(args, sizeof args, "--model_path %s/sst2", dir);
  rc = predict(args, "one\ntwo\nthree\nfour\nfive\nsix\n");
  n = split_lines(out, lines, 16);
  CHECKF(rc == 0 && n == 6, "6 lines: exit %d, %d output lines; stderr:\n%s", rc, n, err_text);
  rc = predict(args, "just one line without a newline at the end");
  n = split_lines(out, lines, 16);
  CHECKF(rc == 0 && n == 1 && one_of(lines[0], sst2_labels, 2), "1 line: exit %d, %d output lines; stderr:\n%s", rc, n,
         err_text);
  /* CRLF, an empty line, invalid UTF-8: still one label each */
  rc = predict(args, "windows line\r\n\ncaf\xe9 \xff\n");
  n = split_lines(out, lines, 16);
  CHECKF(rc == 0 && n == 3, "odd lines: exit %d, %d output lines; stderr:\n%s", rc, n, err_text);

  /* --format jsonl: one object per line, probabilities summing to 1, their argmax the label */
  snprintf(args, sizeof args, "--model_path %s/sst2 --format=jsonl", dir);
  rc = predict(args, five);
  n = split_lines(out, lines, 16);
  CHECKF(rc == 0 && n == 5, "jsonl: exit %d, %d lines; stderr:\n%s", rc, n, err_text);
  for (int i = 0; i < n && i < 16; i++) {
    dmx_json v;
    if (!parse_jsonl(lines[i], i, &v)) continue;
    char where[32];
    snprintf(where, sizeof where, "jsonl line %d", i + 1);
    check_distribution(dmx_json_member(&v, "probabilities"), dmx_json_member(&v, "logits"),
                       dmx_json_string(dmx_json_member(&v, "label")), sst2_labels, 2, where);
    dmx_json_free(&v);
  }
  snprintf(args, sizeof args, "--model_path %s/sst2", dir);

  /* empty input: no output, success */
  rc = predict(args, "");
  CHECKF(rc == 0 && out[0] == 0, "empty input: exit %d, output '%s', stderr:\n%s", rc, out, err_text);

  /* a pair task on the same (2-class) model: TAB-separated pairs */
  snprintf(args, sizeof args, "--model_path %s/sst2 --task qnli", dir);
  rc = predict(args, "What is eaten?\tA man is eating an apple.\nWhere is the sky?\tThe sky is blue.\n\t\n");
  n = split_lines(out, lines, 16);
  CHECKF(rc == 0 && n == 3, "qnli: exit %d, %d output lines; stderr:\n%s", rc, n, err_text);
  for (int i = 0; i < n && i < 16; i++)
    CHECKF(one_of(lines[i], qnli_labels, 2), "qnli line %d: '%s' is not a qnli label", i + 1, lines[i]);
  th_end();

  th_begin("predict: errors name the problem, and nothing is printed on stdout");
  rc = predict(args, "a pair\tis fine\nbut this line has no tab\n");
  CHECKF(rc != 0 && strstr(err_text, "<stdin>:2") && strstr(err_text, "TAB") && !out[0],
         "missing TAB: exit %d, stdout '%s', stderr:\n%s", rc, out, err_text);
  rc = predict(args, "one\ttwo\tthree\n");
  CHECKF(rc != 0 && strstr(err_text, "<stdin>:1") && !out[0], "two TABs: exit %d, stderr:\n%s", rc, err_text);
  rc = predict(args, "x\n");
  CHECKF(rc != 0 && strstr(err_text, "<stdin>:1"), "qnli single sentence: exit %d, stderr:\n%s", rc, err_text);
  snprintf(args, sizeof args, "--model_path %s/sst2 --task ner", dir);
  rc = predict(args, "EU rejects German call\n");
  CHECKF(rc != 0 && strstr(err_text, "task head") && !out[0], "head mismatch: exit %d, stderr:\n%s", rc, err_text);
  snprintf(args, sizeof args, "--model_path %s/sst2 -d mlp", dir);
  rc = predict(args, "x\n");
  CHECKF(rc != 0 && strstr(err_text, "task head"), "demux mismatch: exit %d, stderr:\n%s", rc, err_text);
  snprintf(args, sizeof args, "--model_path %s/no-such-run", dir);
  rc = predict(args, "x\n");
  CHECKF(rc != 0 && strstr(err_text, "no-such-run"), "missing run: exit %d, stderr:\n%s", rc, err_text);
  rc = predict("", "x\n");
  CHECKF(rc != 0 && strstr(err_text, "--model_path"), "no model: exit %d, stderr:\n%s", rc, err_text);
  snprintf(args, sizeof args, "--model_path %s/sst2 --bogus", dir);
  rc = predict(args, "x\n");
  CHECKF(rc != 0 && strstr(err_text, "--bogus"), "unknown flag: exit %d, stderr:\n%s", rc, err_text);
  snprintf(args, sizeof args, "--model_path %s/sst2 a.yaml b.yaml", dir);
  rc = predict(args, "x\n");
  CHECKF(rc != 0 && strstr(err_text, "b.yaml"), "two experiment files: exit %d, stderr:\n%s", rc, err_text);
  th_end();
}

static void ner_task(void) {
  th_begin("predict ner (N=2, mlp): one tag per word, lines in input order");
  if (!th_data_path("conll2003")) {
    th_fail_at(__FILE__, __LINE__, "DATAMUX_DATA is not set: point it at the shared data folder");
    th_end();
    return;
  }
  if (!train_run("ner", "--task ner -d mlp")) {
    th_end();
    return;
  }
  const char *input =
      "EU rejects German call to boycott British lamb .\n"
      "Peter Blackburn\n"
      "\n"
      "   BRUSSELS 1996-08-22  \n"
      "The European Commission said on Thursday it disagreed with German advice .\n"
      "Germany\n"
      "to\tbe separated by tabs\n";
  char args[512], copy[4096], first[65536];
  snprintf(args, sizeof args, "--model_path %s/ner", dir);
  int rc = predict(args, input);
  CHECKF(rc == 0, "exit %d, stderr:\n%s", rc, err_text);
  snprintf(first, sizeof first, "%s", out);
  snprintf(copy, sizeof copy, "%s", input);
  char *in_lines[16], *lines[16];
  int n_in = split_lines(copy, in_lines, 16);
  int n = split_lines(out, lines, 16);
  CHECKF(n == n_in, "%d output lines for %d input lines:\n%s", n, n_in, first);
  for (int i = 0; i < n && i < n_in && i < 16; i++) {
    int want = count_words(in_lines[i]), got = 0;
    char *save = NULL;
    for (char *t = strtok_r(lines[i], " ", &save); t; t = strtok_r(NULL, " ", &save)) {
      got++;
      CHECKF(one_of(t, ner_tags, 9), "line %d: '%s' is not a CoNLL tag", i + 1, t);
    }
    CHECKF(got == want, "line %d: %d tags for %d words", i + 1, got, want);
  }
  rc = predict(args, input);
  CHECKF(rc == 0 && !strcmp(out, first), "second run differs:\n%s\nwas:\n%s", out, first);
  /* --format jsonl: per word a tag, a distribution and logits, the tags those of the labels format */
  char tags_first[65536];
  snprintf(tags_first, sizeof tags_first, "%s", first);
  char *tag_lines[16];
  int nt = split_lines(tags_first, tag_lines, 16);
  snprintf(args, sizeof args, "--model_path %s/ner --format jsonl", dir);
  rc = predict(args, input);
  n = split_lines(out, lines, 16);
  CHECKF(rc == 0 && n == n_in && nt == n_in, "jsonl: exit %d, %d lines for %d; stderr:\n%s", rc, n, n_in, err_text);
  for (int i = 0; i < n && i < nt && i < 16; i++) {
    dmx_json v;
    if (!parse_jsonl(lines[i], i, &v)) continue;
    const dmx_json *lab = dmx_json_member(&v, "label"), *pr = dmx_json_member(&v, "probabilities"),
                   *lg = dmx_json_member(&v, "logits");
    int words = count_words(in_lines[i]);
    CHECKF(lab->type == DMX_JSON_ARRAY && (int)lab->n == words && (int)pr->n == words && (int)lg->n == words,
           "jsonl line %d: not %d words", i + 1, words);
    char joined[4096] = "";
    for (size_t w = 0; lab->type == DMX_JSON_ARRAY && w < lab->n && w < pr->n && w < lg->n; w++) {
      const char *t = dmx_json_string(&lab->kids[w]);
      snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s", w ? " " : "", t ? t : "?");
      char where[48];
      snprintf(where, sizeof where, "jsonl line %d word %zu", i + 1, w + 1);
      check_distribution(&pr->kids[w], &lg->kids[w], t, ner_tags, 9, where);
    }
    CHECKF(!strcmp(joined, tag_lines[i]), "jsonl line %d tags '%s', labels format '%s'", i + 1, joined, tag_lines[i]);
    dmx_json_free(&v);
  }
  snprintf(args, sizeof args, "--model_path %s/ner", dir);
  /* a line longer than max_length (32 tokens): still one tag per word, and a warning */
  char long_line[2048] = "";
  for (int i = 0; i < 60; i++) strcat(long_line, "word ");
  strcat(long_line, "\n");
  rc = predict(args, long_line);
  int got = count_words(out);
  CHECKF(rc == 0 && got == 60 && strstr(err_text, "truncated"), "long line: exit %d, %d tags, stderr:\n%s", rc, got,
         err_text);
  th_end();
}

int main(void) {
  if (!mkdtemp(dir)) {
    fprintf(stderr, "mkdtemp failed\n");
    return 1;
  }
  th_begin("shared data is available");
  CHECKF(th_data_path("tokenizers/roberta-base") != NULL,
         "DATAMUX_DATA is not set: point it at the shared data folder (e.g. ../shared/data)");
  bool have_data = th_checks_failed_in_case == 0;
  th_end();
  if (have_data) {
    jsonl_fixture();
    sentence_task();
    ner_task();
  }
  char cmd[300], log[1024];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  th_run(cmd, log, sizeof log);
  return th_finish();
}
