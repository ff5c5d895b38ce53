/* libFuzzer target: a GLUE TSV file (header, quoting, labels) for a task picked by the first byte. */
#include "data/glue.h"
#include "tests/fuzz/fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *tasks[] = {"sst2", "qnli", "mnli", "qqp", "stsb", "cola", "mrpc", "rte"};
  if (size < 1) return 0;
  const dmx_glue_task *task = dmx_glue_find(tasks[data[0] % 8]);
  if (!task) return 0;
  const char *path = fuzz_write("train.tsv", data + 1, size - 1);
  dmx_glue_data d;
  dmx_error err;
  if (dmx_glue_load(task, path, (data[0] & 8) != 0, &d, &err) == 0) {
    char buf[512];
    dmx_glue_summary(&d, buf, sizeof buf);
    dmx_glue_free(&d);
  }
  return 0;
}
