/* `datamux convert IN OUT`: PyTorch state dict (.bin/.pt/.pth, torch.save zip) <-> safetensors.
 * Tensor names are kept as they are (the original Hugging Face names); the output is written
 * atomically. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "host/cli/commands.h"
#include "host/formats/safetensors.h"
#include "host/formats/torch_bin.h"

typedef enum { FMT_UNKNOWN, FMT_TORCH, FMT_SAFETENSORS } file_format;

static bool ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

static file_format format_of(const char *path) {
  if (ends_with(path, ".safetensors")) return FMT_SAFETENSORS;
  if (ends_with(path, ".bin") || ends_with(path, ".pt") || ends_with(path, ".pth")) return FMT_TORCH;
  return FMT_UNKNOWN;
}

/* Writes every tensor and metadata pair of f as a safetensors file (data is not copied). */
static int write_safetensors(const dmx_st_file *f, const char *path, dmx_error *err) {
  dmx_st_writer *w = dmx_st_writer_new();
  int rc = 0;
  for (size_t i = 0; i < dmx_st_meta_count(f) && rc == 0; i++) {
    const char *k, *v;
    dmx_st_meta_at(f, i, &k, &v);
    rc = dmx_st_writer_meta(w, k, v, err);
  }
  for (size_t i = 0; i < dmx_st_count(f) && rc == 0; i++) {
    const dmx_st_tensor *t = dmx_st_at(f, i);
    rc = dmx_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, err);
  }
  if (rc == 0) rc = dmx_st_writer_write(w, path, err);
  dmx_st_writer_free(w);
  return rc;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: datamux convert IN OUT\n"
          "Converts a PyTorch state dict (pytorch_model.bin, .pt, .pth: what torch.save writes) to safetensors,\n"
          "or back. The format of each file comes from its extension (.bin/.pt/.pth or .safetensors).\n"
          "To safetensors, floating tensors become float32 (half, bfloat16 and double are converted) and\n"
          "integer tensors keep int64/int32; to .bin, every dtype is kept. Names are kept as they are.\n"
          "Reading a .bin never executes its pickle (see README.md, Released models).\n");
}

int dmx_cmd_convert(int argc, char **argv) {
  if (argc > 0 && (!strcmp(argv[0], "-h") || !strcmp(argv[0], "--help"))) {
    usage(stdout);
    return 0;
  }
  if (argc != 2) {
    usage(stderr);
    return 2;
  }
  const char *in = argv[0], *out = argv[1];
  file_format fi = format_of(in), fo = format_of(out);
  if (fi == FMT_UNKNOWN || fo == FMT_UNKNOWN) {
    fprintf(stderr,
            "datamux convert: cannot tell the format of %s from its extension: use .bin, .pt, .pth or "
            ".safetensors\n",
            fi == FMT_UNKNOWN ? in : out);
    return 2;
  }
  if (fi == fo) {
    fprintf(stderr, "datamux convert: %s and %s have the same format; nothing to convert\n", in, out);
    return 2;
  }
  dmx_error err = {{0}};
  dmx_st_file *f = fi == FMT_TORCH ? dmx_torch_bin_load(in, &err) : dmx_st_load(in, &err);
  if (!f) {
    fprintf(stderr, "datamux convert: %s\n", err.msg);
    return 1;
  }
  int rc = fo == FMT_TORCH ? dmx_torch_bin_write(f, out, &err) : write_safetensors(f, out, &err);
  if (rc)
    fprintf(stderr, "datamux convert: %s\n", err.msg);
  else
    printf("wrote %zu tensors to %s\n", dmx_st_count(f), out);
  dmx_st_free(f);
  return rc ? 1 : 0;
}
