/* `datamux data`: loads one dataset split through the same code the trainer uses, prints its
 * summary line and the first multiplexed group exactly as it would be uploaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/batch.h"
#include "data/dataset.h"
#include "host/cli/commands.h"

static void data_usage(FILE *f) {
  fprintf(f,
          "usage: datamux data --task T [--split S] [options]\n"
          "\n"
          "Loads a dataset split, tokenizes it with roberta-base, prints a one-line summary and the\n"
          "first multiplexed group of the first batch (ids with prefix, positions, labels).\n"
          "\n"
          "  --task T            sst2 mnli qnli qqp cola mrpc stsb rte wnli ner text\n"
          "  --split S           train, dev (default), test, or a file stem such as dev_mismatched or\n"
          "                      test-labeled; ner also iob1-train, iob1-dev, iob1-test\n"
          "  --data-dir D        data root (default $DATAMUX_DATA, else $XDG_CACHE_HOME/datamux/data\n"
          "                      or ~/.cache/datamux/data); layout glue/SST-2/dev.tsv, conll2003/valid.txt,\n"
          "                      wikitext-103-raw/wiki.valid.raw, tokenizers/roberta-base/\n"
          "  --tokenizer DIR     tokenizer folder (default <data root>/tokenizers/roberta-base)\n"
          "  -N n                instances multiplexed together (default 1: plain RoBERTa input)\n"
          "  --demuxing V        index (default) or mlp; ignored when N is 1\n"
          "  --max-length L      padded length before any prefix (default 128)\n"
          "  --batch-size B      multiplexed groups per step, for the step counts (default 1)\n"
          "  --groups K          how many groups of the first batch to print (default 1)\n"
          "  --text-source T     task text only: warm up on GLUE task T's sentences instead of WikiText-103\n"
          "  --dump              instead of the group, print every encoded row: label(s) TAB ids\n"
          "                      (token tasks: ids TAB token labels), for comparison with other tools\n"
          "  -h, --help          this help\n");
}

typedef struct {
  dmx_dataset_opts ds;
  int N, B, groups;
  bool dump;
  dmx_input_kind input;
} data_args;

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out) {
  char *end;
  long v = strtol(s, &end, 10);
  if (*s == 0 || *end != 0 || v < lo || v > hi) {
    fprintf(stderr, "datamux data: %s wants an integer in %d..%d, got '%s'\n", flag, lo, hi, s);
    return -1;
  }
  *out = (int)v;
  return 0;
}

/* 0 ok, 1 help shown, -1 bad usage (message printed). */
static int parse_args(int argc, char **argv, data_args *a) {
  a->ds = dmx_dataset_opts_default();
  a->ds.split = "dev";
  a->N = 1, a->B = 1, a->groups = 1, a->input = DMX_INPUT_INDEX, a->dump = false;
  for (int i = 0; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
      data_usage(stdout);
      return 1;
    }
    if (!strcmp(f, "--dump")) {
      a->dump = true;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "datamux data: %s\n", f[0] == '-' ? "flag needs a value" : "unexpected argument");
      fprintf(stderr, "  at '%s' (see datamux data --help)\n", f);
      return -1;
    }
    const char *v = argv[++i];
    int rc = 0;
    if (!strcmp(f, "--task"))
      a->ds.task = v;
    else if (!strcmp(f, "--split"))
      a->ds.split = v;
    else if (!strcmp(f, "--data-dir"))
      a->ds.data_dir = v;
    else if (!strcmp(f, "--tokenizer"))
      a->ds.tokenizer_dir = v;
    else if (!strcmp(f, "--text-source"))
      a->ds.text_source = v;
    else if (!strcmp(f, "-N") || !strcmp(f, "--num-instances"))
      rc = parse_int(f, v, 1, DMX_MAX_INSTANCES, &a->N);
    else if (!strcmp(f, "--max-length"))
      rc = parse_int(f, v, 4, 512, &a->ds.max_length);
    else if (!strcmp(f, "--batch-size"))
      rc = parse_int(f, v, 1, 1 << 20, &a->B);
    else if (!strcmp(f, "--groups"))
      rc = parse_int(f, v, 1, 1 << 20, &a->groups);
    else if (!strcmp(f, "--demuxing")) {
      int k = dmx_input_kind_parse(v);
      if (k != DMX_INPUT_INDEX && k != DMX_INPUT_MLP) {
        fprintf(stderr, "datamux data: --demuxing wants index or mlp, got '%s'\n", v);
        return -1;
      }
      a->input = (dmx_input_kind)k;
    } else {
      fprintf(stderr, "datamux data: unknown flag '%s' (see datamux data --help)\n", f);
      return -1;
    }
    if (rc) return -1;
  }
  if (!a->ds.task) {
    fprintf(stderr, "datamux data: --task is required (see datamux data --help)\n");
    return -1;
  }
  if (a->N == 1) a->input = DMX_INPUT_PLAIN;
  if (a->dump) a->ds.log = stderr; /* keep stdout to the rows alone */
  if (a->groups > a->B) a->groups = a->B;
  return 0;
}

/* Prints the row up to its last non-pad cell, then how many pads follow. */
static void print_row(const char *name, const int32_t *v, const int32_t *ids, int len) {
  int used = len;
  while (used > 0 && ids[used - 1] == DMX_PAD_ID) used--;
  printf("    %-10s", name);
  for (int j = 0; j < used; j++) printf(" %d", (int)v[j]);
  if (used < len) printf(" ... (%d pad positions)", len - used);
  printf("\n");
}

static void print_group(const dmx_batch *b, const dmx_dataset *ds, int group) {
  for (int i = 0; i < b->N; i++) {
    int r = group * b->N + i;
    const int32_t *ids = b->ids + (size_t)r * (size_t)b->Lp;
    printf("  group %d instance %d: dataset row %d%s", group, i, (int)b->source_row[r],
           b->scored[r] ? "" : " (padding, not scored)");
    if (b->kind == DMX_TARGET_CLASS && b->labels[r] >= 0)
      printf(", label %d (%s)", (int)b->labels[r], ds->label_names ? ds->label_names[b->labels[r]] : "dummy");
    if (b->kind == DMX_TARGET_CLASS && b->labels[r] < 0) printf(", label %d", (int)b->labels[r]);
    if (b->kind == DMX_TARGET_SCORE) printf(", score %.3f", b->scores[r]);
    printf("\n");
    print_row("ids", ids, ids, b->Lp);
    print_row("positions", b->positions + (size_t)r * (size_t)b->Lp, ids, b->Lp);
    if (b->kind == DMX_TARGET_TOKENS)
      print_row("labels", b->token_labels_prefixed + (size_t)r * (size_t)b->Lp, ids, b->Lp);
  }
}

static void print_ints(const int32_t *v, int n) {
  for (int j = 0; j < n; j++) printf("%s%d", j ? " " : "", (int)v[j]);
}

/* One line per encoded row, unpadded: the form external reference scripts compare against. */
static void dump_dataset(const dmx_dataset *ds) {
  for (int r = 0; r < ds->n; r++) {
    const int32_t *ids = ds->ids + (size_t)r * (size_t)ds->L;
    int used = ds->L;
    while (used > 0 && ids[used - 1] == DMX_PAD_ID) used--;
    if (ds->kind == DMX_TARGET_CLASS) printf("%d\t", (int)ds->labels[r]);
    if (ds->kind == DMX_TARGET_SCORE) printf("%g\t", ds->scores[r]);
    print_ints(ids, used);
    if (ds->kind == DMX_TARGET_TOKENS) {
      printf("\t");
      print_ints(ds->token_labels + (size_t)r * (size_t)ds->L, used);
    }
    printf("\n");
  }
}

int dmx_cmd_data(int argc, char **argv) {
  data_args a;
  int parsed = parse_args(argc, argv, &a);
  if (parsed != 0) return parsed > 0 ? 0 : 2;
  dmx_dataset ds;
  dmx_error err;
  if (dmx_dataset_load(&a.ds, &ds, &err) != 0) {
    fprintf(stderr, "datamux data: %s\n", err.msg);
    return 1;
  }
  if (a.dump) {
    dump_dataset(&ds);
    dmx_dataset_free(&ds);
    return 0;
  }
  dmx_batch b;
  if (dmx_batch_alloc(&b, a.B, a.N, ds.L, a.input, ds.kind, &err) != 0) {
    fprintf(stderr, "datamux data: %s\n", err.msg);
    dmx_dataset_free(&ds);
    return 2;
  }
  dmx_batcher padded, truncated;
  dmx_batcher_init(&padded, &ds, b.rows, false, false, a.ds.seed);
  dmx_batcher_init(&truncated, &ds, b.rows, false, true, a.ds.seed);
  printf("multiplexing: N=%d, %s input, L=%d -> L'=%d, %d groups (%d instances) per step\n", a.N,
         dmx_input_kind_name(a.input), ds.L, b.Lp, a.B, b.rows);
  printf(
      "evaluation: %d steps scoring all %d examples (last batch padded); with drop_last as the original: %d steps, %d "
      "examples\n",
      dmx_batcher_steps(&padded), dmx_batcher_scored_per_epoch(&padded), dmx_batcher_steps(&truncated),
      dmx_batcher_scored_per_epoch(&truncated));
  if (dmx_batcher_next(&padded, &b))
    for (int g = 0; g < a.groups; g++) print_group(&b, &ds, g);
  dmx_batcher_free(&padded);
  dmx_batcher_free(&truncated);
  dmx_batch_free(&b);
  dmx_dataset_free(&ds);
  return 0;
}
