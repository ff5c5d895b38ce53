/* A restricted unpickler for the data.pkl that torch.save writes for a state dict.
 *
 * It interprets pickle opcodes without executing anything: the only callables it knows are a
 * fixed list (collections.OrderedDict, torch._utils._rebuild_tensor_v2,
 * torch._utils._rebuild_parameter), each modelled in C, and the only persistent ids it accepts are
 * torch's storage references ('storage', torch.<T>Storage, key, location, numel). Any other GLOBAL
 * (os.system, builtins.eval, ...), a REDUCE of anything else, an opcode outside the protocol-2
 * subset torch uses (plus the protocol-4 framing ones), stack, mark or memo use past fixed limits,
 * lengths past the end of the data, or a result that is not a dict of name -> tensor is refused
 * with a message naming the byte offset. */
#ifndef DMX_TORCH_PICKLE_H
#define DMX_TORCH_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "host/base/common.h"

#define DMX_TP_MAX_DIMS 8
#define DMX_TP_MAX_STACK (1 << 20)  /* values on the pickle stack */
#define DMX_TP_MAX_MARKS 64         /* open MARKs; torch nests 3 */
#define DMX_TP_MAX_MEMO (1 << 20)   /* memo slots */
#define DMX_TP_MAX_STR (1 << 16)    /* bytes in one string: keys and storage names are short */
#define DMX_TP_MAX_VALUES (1 << 21) /* values created in all (~150 MB); a state dict needs ~15 per tensor */

typedef enum { DMX_TP_F32, DMX_TP_F64, DMX_TP_F16, DMX_TP_BF16, DMX_TP_I64, DMX_TP_I32 } dmx_tp_dtype;

typedef struct {
  char *key; /* the archive entry is <prefix>/data/<key> */
  dmx_tp_dtype dtype;
  uint64_t numel; /* elements the storage holds */
} dmx_tp_storage;

typedef struct {
  char *name;      /* the state-dict key */
  size_t storage;  /* index into dmx_tp_state_dict.storages */
  uint64_t offset; /* in elements */
  int ndim;
  int64_t shape[DMX_TP_MAX_DIMS];
  int64_t stride[DMX_TP_MAX_DIMS]; /* in elements */
} dmx_tp_tensor;

typedef struct {
  dmx_tp_storage *storages; /* one per distinct key; tensors may share one */
  size_t nstorages;
  dmx_tp_tensor *tensors; /* in pickle order */
  size_t ntensors;
} dmx_tp_state_dict;

/* Interprets pkl[0..len); `what` names the source in messages. 0, or -1 with err (out is then
 * empty). Checks done here: storages referenced with one key have one dtype and numel; every
 * tensor's view (offset, shape, strides >= 0) lies inside its storage; keys are unique, non-empty
 * and NUL-free. */
int dmx_tp_parse(const unsigned char *pkl, size_t len, const char *what, dmx_tp_state_dict *out, dmx_error *err);
void dmx_tp_free(dmx_tp_state_dict *sd);

const char *dmx_tp_dtype_name(dmx_tp_dtype t); /* "FloatStorage", ... */
size_t dmx_tp_dtype_size(dmx_tp_dtype t);

#endif
