/* `datamux predict --model_path RUN [EXP.yaml] [flags] < lines`: see host/predict.c.
 *
 * The model's configuration comes from the run directory's experiment.yaml (written by
 * `datamux train`) when there is one, else from EXP.yaml; flags override either. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "host/cli/commands.h"
#include "host/config/config.h"
#include "host/run/train.h"

static bool is_bool_flag(const char *a) {
  return !strcmp(a, "--learn_muxing") || !strcmp(a, "--do_train") || !strcmp(a, "--do_eval");
}

static bool is_bool_word(const char *s) {
  static const char *const words[] = {"true", "yes", "on", "1", "false", "no", "off", "0"};
  for (size_t i = 0; i < sizeof words / sizeof *words; i++)
    if (!strcasecmp(s, words[i])) return true;
  return false;
}

/* Cuts the last path component off p in place ("a/b/c" -> "a/b", "c" -> "."). */
static void parent(char *p, size_t cap) {
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/') p[--n] = 0;
  char *slash = strrchr(p, '/');
  if (!slash)
    snprintf(p, cap, ".");
  else if (slash == p)
    p[1] = 0;
  else
    *slash = 0;
}

/* The experiment.yaml of the run that `model_path` (a run directory, one of its checkpoint
 * folders, or a checkpoint file inside one) belongs to; false when there is none. */
static bool find_run_experiment(const char *model_path, char *out, size_t cap) {
  char dir[2048];
  snprintf(dir, sizeof dir, "%s", model_path);
  if (dmx_is_file(dir)) parent(dir, sizeof dir); /* .../best/model.safetensors -> .../best */
  for (int up = 0; up < 2; up++) {
    if (snprintf(out, cap, "%s/experiment.yaml", dir) < (int)cap && dmx_is_file(out)) return true;
    char ckpt[2100];
    snprintf(ckpt, sizeof ckpt, "%s/model.safetensors", dir);
    if (!dmx_is_file(ckpt)) break; /* only a checkpoint folder looks one level up */
    parent(dir, sizeof dir);
  }
  return false;
}

int dmx_cmd_predict(int argc, char **argv) {
  if (argc > 0 && (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help"))) {
    printf(
        "usage: datamux predict --model_path RUN [EXP.yaml] [--format labels|jsonl] [flags] < input.txt\n"
        "Reads one example per line from stdin and prints one label per line, in input order.\n"
        "  pair tasks (mnli, qnli, qqp, mrpc, stsb, rte, wnli): the two sentences separated by a TAB\n"
        "  ner: whitespace-separated words; prints one tag per word\n"
        "The model configuration comes from RUN/experiment.yaml (written by `datamux train`), else from\n"
        "EXP.yaml; flags (e.g. --task, --device, --data-dir) override it. RUN may also be a checkpoint\n"
        "folder (RUN/best) or a .safetensors file. Lines are multiplexed N at a time, so a line's\n"
        "prediction can depend on the lines grouped with it, as in the model's own evaluation.\n"
        "  --format labels   one label per line (the default)\n"
        "  --format jsonl    one JSON object per line: {\"label\": ..., \"probabilities\": [...], \"logits\": [...]}\n"
        "                    (NER: label, probabilities and logits per word; STS-B: the score and its logit)\n");
    return 0;
  }
  /* split the arguments into the optional experiment file and the flags (with their values) */
  char **flags = calloc((size_t)argc + 1, sizeof *flags);
  if (!flags) {
    fprintf(stderr, "datamux predict: out of memory\n");
    return 1;
  }
  int nf = 0, rc = 2;
  const char *exp_path = NULL;
  dmx_predict_format format = DMX_PREDICT_LABELS;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--format") || !strncmp(a, "--format=", 9)) {
      const char *v = a[8] == '=' ? a + 9 : i + 1 < argc ? argv[++i] : "";
      if (!strcmp(v, "jsonl")) {
        format = DMX_PREDICT_JSONL;
      } else if (!strcmp(v, "labels")) {
        format = DMX_PREDICT_LABELS;
      } else {
        fprintf(stderr, "datamux predict: --format: '%s' is not one of labels, jsonl\n", v);
        goto out;
      }
      continue;
    }
    if (a[0] == '-' && a[1]) {
      flags[nf++] = argv[i];
      if (strchr(a, '=')) continue;
      if (is_bool_flag(a)) {
        if (i + 1 < argc && is_bool_word(argv[i + 1])) flags[nf++] = argv[++i];
      } else if (i + 1 < argc) {
        flags[nf++] = argv[++i];
      }
    } else if (!exp_path) {
      exp_path = a;
    } else {
      fprintf(stderr, "datamux predict: unexpected argument '%s' (one experiment file at most; flags start with '-')\n",
              a);
      goto out;
    }
  }

  dmx_error err;
  dmx_experiment scratch, from_file, e;
  /* where the model is: --model_path (or --set model_path=...), else EXP.yaml's model_path */
  dmx_experiment_defaults(&scratch);
  if (dmx_experiment_apply_flags(&scratch, nf, flags, &err)) {
    fprintf(stderr, "datamux predict: %s\n", err.msg);
    goto out;
  }
  char model_path[sizeof scratch.model_path];
  snprintf(model_path, sizeof model_path, "%s", scratch.model_path);
  if (exp_path) {
    if (dmx_experiment_load(&from_file, exp_path, &err)) {
      fprintf(stderr, "datamux predict: %s\n", err.msg);
      goto out;
    }
    if (!model_path[0]) snprintf(model_path, sizeof model_path, "%s", from_file.model_path);
  }
  if (!model_path[0]) {
    fprintf(stderr, "datamux predict: give the model with --model_path RUN_DIR (see datamux predict --help)\n");
    goto out;
  }
  struct stat st;
  if (stat(model_path, &st) != 0) {
    fprintf(stderr, "datamux predict: model path %s: %s\n", model_path, strerror(errno));
    goto out;
  }
  char run_yaml[2200];
  if (find_run_experiment(model_path, run_yaml, sizeof run_yaml)) {
    if (dmx_experiment_load(&e, run_yaml, &err)) {
      fprintf(stderr, "datamux predict: %s\n", err.msg);
      goto out;
    }
    if (exp_path && strcmp(exp_path, run_yaml) != 0)
      fprintf(stderr, "datamux predict: the model configuration comes from %s (%s is not used; flags still apply)\n",
              run_yaml, exp_path);
  } else if (exp_path) {
    e = from_file;
  } else {
    fprintf(stderr,
            "datamux predict: %s has no experiment.yaml (not a run directory of `datamux train`): give the "
            "experiment file that trained it, as in `datamux predict EXP.yaml --model_path %s`\n",
            model_path, model_path);
    goto out;
  }
  if (dmx_experiment_apply_flags(&e, nf, flags, &err) || dmx_experiment_validate(&e, &err)) {
    fprintf(stderr, "datamux predict: %s\n", err.msg);
    goto out;
  }
  /* the run's experiment.yaml names the checkpoint it started from; predict uses the one given */
  snprintf(e.model_path, sizeof e.model_path, "%s", model_path);
  rc = dmx_run_predict(&e, stdin, stdout, format);
out:
  free(flags);
  return rc;
}
