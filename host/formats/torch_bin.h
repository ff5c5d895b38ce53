/* PyTorch state-dict files (pytorch_model.bin, what torch.save writes since 1.6: a zip archive of
 * <prefix>/data.pkl plus one raw little-endian entry <prefix>/data/<key> per storage).
 *
 * Loading goes through zip_reader (stored entries only) and torch_pickle (a restricted unpickler
 * that executes nothing), then hands the tensors over in the same form as a safetensors file, so
 * checkpoint loading and conversion share one code path: floating tensors become contiguous F32
 * (half, bfloat16 and double converted), LongStorage tensors I64 and IntStorage tensors I32. Views
 * (storage offset, strides, storages shared between keys) are materialised per key.
 *
 * Writing produces a file torch.load (weights_only=True included) reads: protocol-2 pickle of an
 * OrderedDict of tensors rebuilt with torch._utils._rebuild_tensor_v2, one storage per tensor,
 * entries stored uncompressed with their data aligned to 64 bytes, as torch.save does. */
#ifndef DMX_TORCH_BIN_H
#define DMX_TORCH_BIN_H

#include <stddef.h>

#include "host/base/common.h"
#include "host/formats/safetensors.h"

/* Reads and converts a whole file; NULL with err ("<path>: ...") on any problem. The returned
 * file's metadata holds "format": "pt". */
dmx_st_file *dmx_torch_bin_load(const char *path, dmx_error *err);
/* Same from memory (borrowed; nothing points into it afterwards). */
dmx_st_file *dmx_torch_bin_parse(const unsigned char *buf, size_t len, const char *what, dmx_error *err);

/* Serialises every tensor of f (F32, F16, BF16, I32, I64) under its name; *out is malloc'd. */
int dmx_torch_bin_serialize(const dmx_st_file *f, unsigned char **out, size_t *len, dmx_error *err);
/* Same, written atomically to path. */
int dmx_torch_bin_write(const dmx_st_file *f, const char *path, dmx_error *err);

#endif
