/* `datamux predict` end to end: a tiny run is trained (2 steps of the micro model), then lines go
 * in on stdin and labels must come out on stdout, one per line, in input order.
 *
 * With multiplexing a line's prediction depends on the lines sharing its group, so the test does
 * not compare a line fed alone with the same line among others. It checks the count and validity
 * of the labels, that the same input gives the same output (evaluation mode is deterministic),
 * that the run directory, its checkpoint folder and the checkpoint file are interchangeable, and
 * for NER that every output line has exactly as many tags as its input line has words (the word
 * counts differ from line to line, so this also checks the order). Errors must name the problem. */
#include <stdlib.h>
#include <string.h>

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
    sentence_task();
    ner_task();
  }
  char cmd[300], log[1024];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  th_run(cmd, log, sizeof log);
  return th_finish();
}
