/* Restricted unpickler for torch.save state dicts; see torch_pickle.h. Values live in an arena
 * freed all at once, so shared (memoised) and even cyclic values need no ownership rules, and no
 * code here recurses over the value graph. */
#include "host/formats/torch_pickle.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR } vkind;

typedef struct val {
  vkind k;
  int64_t i; /* BOOL/INT value; GLOBAL id; STORAGE and TENSOR: index into the vm's lists */
  char *s;   /* STR: bytes, NUL-terminated */
  size_t slen;
  struct val **items; /* TUPLE/LIST items; DICT: key, value, key, value, ... */
  size_t n, cap;
} val;

enum { G_ODICT = 1, G_REBUILD_V2, G_REBUILD_PARAM, G_STORAGE = 16 /* + dmx_tp_dtype */ };

static const struct {
  const char *module, *name;
  int id;
} allowed_globals[] = {
    {"collections", "OrderedDict", G_ODICT},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM},
    {"torch", "FloatStorage", G_STORAGE + DMX_TP_F32},
    {"torch", "DoubleStorage", G_STORAGE + DMX_TP_F64},
    {"torch", "HalfStorage", G_STORAGE + DMX_TP_F16},
    {"torch", "BFloat16Storage", G_STORAGE + DMX_TP_BF16},
    {"torch", "LongStorage", G_STORAGE + DMX_TP_I64},
    {"torch", "IntStorage", G_STORAGE + DMX_TP_I32},
};

typedef struct {
  const unsigned char *p;
  size_t len, pos, op_pos;
  const char *what;
  dmx_error *err;
  val **arena;
  size_t narena, caparena;
  val **stack;
  size_t sp, capstack;
  size_t marks[DMX_TP_MAX_MARKS];
  int nmarks;
  val **memo;
  size_t capmemo, nmemo; /* nmemo: one past the highest slot written (for MEMOIZE) */
  dmx_tp_storage *st;    /* one per BINPERSID, deduplicated by key at the end */
  size_t nst, capst;
  dmx_tp_tensor *tt; /* one per rebuilt tensor */
  size_t ntt, captt;
} vm;

const char *dmx_tp_dtype_name(dmx_tp_dtype t) {
  switch (t) {
    case DMX_TP_F32: return "FloatStorage";
    case DMX_TP_F64: return "DoubleStorage";
    case DMX_TP_F16: return "HalfStorage";
    case DMX_TP_BF16: return "BFloat16Storage";
    case DMX_TP_I64: return "LongStorage";
    case DMX_TP_I32: return "IntStorage";
  }
  return "?";
}

size_t dmx_tp_dtype_size(dmx_tp_dtype t) {
  switch (t) {
    case DMX_TP_F64:
    case DMX_TP_I64: return 8;
    case DMX_TP_F32:
    case DMX_TP_I32: return 4;
    case DMX_TP_F16:
    case DMX_TP_BF16: return 2;
  }
  return 0;
}

static int verr(vm *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#ifdef __clang_analyzer__ /* see dmx_fail */
#define verr(...) (verr(__VA_ARGS__), -1)
#endif
static int(verr)(vm *v, const char *fmt, ...) {
  char msg[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  unsigned op = v->op_pos < v->len ? v->p[v->op_pos] : 0;
  return dmx_fail(v->err, "%s: data.pkl byte %zu (opcode 0x%02x): %s", v->what, v->op_pos, op, msg);
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return p;
  size_t c = *cap ? *cap : 16;
  while (c < need) c *= 2;
  *cap = c;
  return dmx_realloc(p, c * elem);
}

static val *new_val(vm *v, vkind k) {
  v->arena = grow(v->arena, &v->caparena, v->narena + 1, sizeof *v->arena);
  val *x = dmx_calloc(1, sizeof *x);
  x->k = k;
  v->arena[v->narena++] = x;
  return x;
}

static void add_item(val *c, val *x) {
  c->items = grow(c->items, &c->cap, c->n + 1, sizeof *c->items);
  c->items[c->n++] = x;
}

static int push(vm *v, val *x) {
  if (v->sp >= DMX_TP_MAX_STACK) return verr(v, "more than %d values on the pickle stack", DMX_TP_MAX_STACK);
  v->stack = grow(v->stack, &v->capstack, v->sp + 1, sizeof *v->stack);
  v->stack[v->sp++] = x;
  return 0;
}

/* The lowest stack index an opcode may pop: values below the innermost MARK belong to it. */
static size_t floor_sp(const vm *v) { return v->nmarks ? v->marks[v->nmarks - 1] : 0; }

static val *pop(vm *v) {
  if (v->sp <= floor_sp(v)) {
    verr(v, "pops an empty stack (or past a MARK)");
    return NULL;
  }
  return v->stack[--v->sp];
}

static val *top(vm *v) {
  if (v->sp <= floor_sp(v)) {
    verr(v, "needs a value on the stack and there is none");
    return NULL;
  }
  return v->stack[v->sp - 1];
}

static int take(vm *v, size_t n, const unsigned char **out) {
  if (n > v->len - v->pos)
    return verr(v, "needs %zu more bytes but the pickle ends at byte %zu (truncated?)", n, v->len);
  *out = v->p + v->pos;
  v->pos += n;
  return 0;
}

static uint64_t le(const unsigned char *b, size_t n) {
  uint64_t x = 0;
  for (size_t k = n; k-- > 0;) x = x << 8 | b[k];
  return x;
}

/* Pops everything above the innermost MARK (and the MARK) into a new container of kind k. */
static val *pop_mark(vm *v, vkind k) {
  if (!v->nmarks) {
    verr(v, "needs a MARK and there is none");
    return NULL;
  }
  size_t m = v->marks[--v->nmarks];
  val *c = new_val(v, k);
  for (size_t i = m; i < v->sp; i++) add_item(c, v->stack[i]);
  v->sp = m;
  return c;
}

static int op_string(vm *v, size_t lenbytes) {
  const unsigned char *b = NULL, *s = NULL;
  if (take(v, lenbytes, &b)) return -1;
  uint64_t n = le(b, lenbytes);
  if (n > DMX_TP_MAX_STR)
    return verr(v, "string of %" PRIu64 " bytes (limit %d): not a state-dict key", n, DMX_TP_MAX_STR);
  if (take(v, (size_t)n, &s)) return -1;
  val *x = new_val(v, V_STR);
  x->s = dmx_malloc((size_t)n + 1);
  memcpy(x->s, s, (size_t)n);
  x->s[n] = 0;
  x->slen = (size_t)n;
  return push(v, x);
}

static int push_global(vm *v, const char *module, const char *name) {
  for (size_t g = 0; g < sizeof allowed_globals / sizeof *allowed_globals; g++)
    if (!strcmp(module, allowed_globals[g].module) && !strcmp(name, allowed_globals[g].name)) {
      val *x = new_val(v, V_GLOBAL);
      x->i = allowed_globals[g].id;
      return push(v, x);
    }
  return verr(v,
              "GLOBAL %.100s.%.100s is not allowed: a state dict saved by torch.save only refers to "
              "collections.OrderedDict, torch._utils._rebuild_tensor_v2/_rebuild_parameter and torch.*Storage; "
              "this file is not a plain state dict (nothing was executed)",
              module, name);
}

/* GLOBAL: "module\nname\n" in the opcode stream. */
static int op_global(vm *v) {
  char parts[2][256];
  for (int k = 0; k < 2; k++) {
    const unsigned char *start = v->p + v->pos;
    const unsigned char *nl = memchr(start, '\n', v->len - v->pos);
    if (!nl) return verr(v, "GLOBAL name is not terminated by a newline before the end of the pickle");
    size_t n = (size_t)(nl - start);
    if (n == 0 || n >= sizeof parts[k] || memchr(start, 0, n))
      return verr(v, "GLOBAL with an empty, NUL-containing or over-long name");
    memcpy(parts[k], start, n);
    parts[k][n] = 0;
    v->pos += n + 1;
  }
  return push_global(v, parts[0], parts[1]);
}

static int op_stack_global(vm *v) {
  val *name = pop(v), *module = name ? pop(v) : NULL;
  if (!module) return -1;
  if (module->k != V_STR || name->k != V_STR || memchr(module->s, 0, module->slen) || memchr(name->s, 0, name->slen))
    return verr(v, "STACK_GLOBAL needs two strings");
  return push_global(v, module->s, name->s);
}

static int memo_put(vm *v, uint64_t idx) {
  val *x = top(v);
  if (!x) return -1;
  /* a pickler numbers memo slots from 0, one per PUT opcode, so a slot past the pickle's length was
   * never written by one: refusing it keeps a 6-byte input from allocating a huge memo */
  if (idx >= DMX_TP_MAX_MEMO || idx > v->len)
    return verr(v, "memo index %" PRIu64 " is past the limit (%d, and the pickle's %zu bytes)", idx, DMX_TP_MAX_MEMO,
                v->len);
  if (idx >= v->capmemo) {
    size_t old = v->capmemo;
    v->memo = grow(v->memo, &v->capmemo, (size_t)idx + 1, sizeof *v->memo);
    memset(v->memo + old, 0, (v->capmemo - old) * sizeof *v->memo);
  }
  v->memo[idx] = x;
  if (idx + 1 > v->nmemo) v->nmemo = (size_t)idx + 1;
  return 0;
}

static int memo_get(vm *v, uint64_t idx) {
  if (idx >= v->capmemo || !v->memo[idx]) return verr(v, "memo slot %" PRIu64 " was never written", idx);
  return push(v, v->memo[idx]);
}

static bool is_int(const val *x) { return x->k == V_INT || x->k == V_BOOL; }

static bool is_empty_dict(const val *x) { return x->k == V_DICT && x->n == 0; }

/* Reads a tuple of non-negative ints (a size or stride) into out. */
static int int_tuple(vm *v, const val *t, int64_t *out, int *n, const char *what) {
  if (t->k != V_TUPLE) return verr(v, "_rebuild_tensor_v2: %s is not a tuple", what);
  if (t->n > DMX_TP_MAX_DIMS)
    return verr(v, "_rebuild_tensor_v2: %s has %zu dimensions (limit %d)", what, t->n, DMX_TP_MAX_DIMS);
  for (size_t k = 0; k < t->n; k++) {
    const val *x = t->items[k];
    if (!is_int(x) || x->i < 0 || x->i > ((int64_t)1 << 53))
      return verr(v, "_rebuild_tensor_v2: %s[%zu] is not an integer in [0, 2^53]", what, k);
    out[k] = x->i;
  }
  *n = (int)t->n;
  return 0;
}

/* torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata]) */
static val *rebuild_tensor(vm *v, const val *args) {
  if (args->n != 6 && args->n != 7) {
    verr(v, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %zu", args->n);
    return NULL;
  }
  const val *s = args->items[0], *off = args->items[1];
  if (s->k != V_STORAGE || !is_int(off) || off->i < 0 || off->i > ((int64_t)1 << 53)) {
    verr(v, "_rebuild_tensor_v2: arguments 1-2 must be a storage reference and an offset >= 0");
    return NULL;
  }
  dmx_tp_tensor t = {0};
  int nstride = 0;
  if (int_tuple(v, args->items[2], t.shape, &t.ndim, "size") ||
      int_tuple(v, args->items[3], t.stride, &nstride, "stride"))
    return NULL;
  if (nstride != t.ndim) {
    verr(v, "_rebuild_tensor_v2: size has %d dimensions and stride %d", t.ndim, nstride);
    return NULL;
  }
  if (!is_int(args->items[4]) || !is_empty_dict(args->items[5]) ||
      (args->n == 7 && args->items[6]->k != V_DICT && args->items[6]->k != V_NONE)) {
    verr(v, "_rebuild_tensor_v2: requires_grad must be a bool and backward hooks an empty dict");
    return NULL;
  }
  t.storage = (size_t)s->i;
  t.offset = (uint64_t)off->i;
  v->tt = grow(v->tt, &v->captt, v->ntt + 1, sizeof *v->tt);
  v->tt[v->ntt] = t;
  val *x = new_val(v, V_TENSOR);
  x->i = (int64_t)v->ntt++;
  return x;
}

static val *call(vm *v, const val *f, const val *args) {
  if (f->k != V_GLOBAL || args->k != V_TUPLE) {
    verr(v, "REDUCE of something that is not an allowed callable with a tuple of arguments (nothing was executed)");
    return NULL;
  }
  switch (f->i) {
    case G_ODICT:
      if (args->n != 0) {
        verr(v, "OrderedDict called with %zu arguments; torch.save passes none", args->n);
        return NULL;
      }
      return new_val(v, V_DICT);
    case G_REBUILD_V2: return rebuild_tensor(v, args);
    case G_REBUILD_PARAM:
      if (args->n != 3 || args->items[0]->k != V_TENSOR || !is_int(args->items[1]) || !is_empty_dict(args->items[2])) {
        verr(v, "_rebuild_parameter takes (tensor, requires_grad, empty hooks)");
        return NULL;
      }
      return args->items[0];
    default:
      verr(v, "REDUCE of torch.%s: a storage type is not callable in a state dict (nothing was executed)",
           dmx_tp_dtype_name((dmx_tp_dtype)(f->i - G_STORAGE)));
      return NULL;
  }
}

/* BINPERSID: ('storage', torch.<T>Storage, key, location, numel) */
static int op_persid(vm *v) {
  val *pid = pop(v);
  if (!pid) return -1;
  if (pid->k != V_TUPLE || pid->n != 5 || pid->items[0]->k != V_STR || strcmp(pid->items[0]->s, "storage") ||
      pid->items[1]->k != V_GLOBAL || pid->items[1]->i < G_STORAGE || pid->items[2]->k != V_STR ||
      pid->items[3]->k != V_STR || !is_int(pid->items[4]) || pid->items[4]->i < 0)
    return verr(v, "persistent id is not ('storage', torch.<T>Storage, key, location, numel)");
  const val *key = pid->items[2];
  if (key->slen == 0 || key->slen > 64 || memchr(key->s, 0, key->slen) || strchr(key->s, '/') || strstr(key->s, ".."))
    return verr(v, "storage key '%.64s' is not a plain archive entry name", key->s);
  dmx_tp_dtype dt = (dmx_tp_dtype)(pid->items[1]->i - G_STORAGE);
  uint64_t numel = (uint64_t)pid->items[4]->i;
  if (numel > ((uint64_t)1 << 60) / dmx_tp_dtype_size(dt))
    return verr(v, "storage '%s' claims %" PRIu64 " elements", key->s, numel);
  v->st = grow(v->st, &v->capst, v->nst + 1, sizeof *v->st);
  v->st[v->nst] = (dmx_tp_storage){dmx_strdup(key->s), dt, numel};
  val *x = new_val(v, V_STORAGE);
  x->i = (int64_t)v->nst++;
  return push(v, x);
}

static int op_setitems(vm *v, bool many) {
  val *d;
  if (many) {
    val *items = pop_mark(v, V_LIST);
    if (!items || !(d = top(v))) return -1;
    if (items->n % 2) return verr(v, "SETITEMS with an odd number of values");
    if (d->k != V_DICT) return verr(v, "SETITEMS on something that is not a dict");
    for (size_t k = 0; k < items->n; k++) add_item(d, items->items[k]);
    return 0;
  }
  val *value = pop(v), *key = value ? pop(v) : NULL;
  if (!key || !(d = top(v))) return -1;
  if (d->k != V_DICT) return verr(v, "SETITEM on something that is not a dict");
  add_item(d, key);
  add_item(d, value);
  return 0;
}

static int op_appends(vm *v, bool many) {
  val *items = many ? pop_mark(v, V_TUPLE) : NULL, *one = many ? NULL : pop(v), *l;
  if ((many && !items) || (!many && !one) || !(l = top(v))) return -1;
  if (l->k != V_LIST) return verr(v, "APPEND on something that is not a list");
  if (many)
    for (size_t k = 0; k < items->n; k++) add_item(l, items->items[k]);
  else
    add_item(l, one);
  return 0;
}

static int op_tuple(vm *v, size_t n) {
  if (v->sp - floor_sp(v) < n) return verr(v, "TUPLE%zu needs %zu values on the stack", n, n);
  val *t = new_val(v, V_TUPLE);
  for (size_t k = v->sp - n; k < v->sp; k++) add_item(t, v->stack[k]);
  v->sp -= n;
  return push(v, t);
}

static int op_int(vm *v, size_t n, bool is_signed) {
  const unsigned char *b = NULL;
  if (take(v, n, &b)) return -1;
  uint64_t u = le(b, n);
  int64_t x = (int64_t)u;
  if (is_signed && n > 0 && n < 8 && (u >> (8 * n - 1)) & 1) x = (int64_t)(u | ~(((uint64_t)1 << (8 * n)) - 1));
  val *r = new_val(v, V_INT);
  r->i = x;
  return push(v, r);
}

static int op_long1(vm *v) {
  const unsigned char *b = NULL;
  if (take(v, 1, &b)) return -1;
  if (*b > 8) return verr(v, "LONG1 of %u bytes: integers wider than 64 bits are not used by torch.save", *b);
  if (*b == 0) {
    val *r = new_val(v, V_INT);
    return push(v, r);
  }
  return op_int(v, *b, true);
}

static int op_reduce_or_build(vm *v, bool reduce) {
  val *arg = pop(v), *target = arg ? pop(v) : NULL;
  if (!target) return -1;
  if (reduce) {
    val *r = call(v, target, arg);
    return r ? push(v, r) : -1;
  }
  /* BUILD: an OrderedDict's attributes (the state dict's _metadata) carry no tensor, so are dropped */
  if (target->k != V_DICT || (arg->k != V_DICT && arg->k != V_NONE))
    return verr(v, "BUILD is only accepted on a dict with a dict of attributes (a state dict's _metadata)");
  return push(v, target);
}

static int step(vm *v, bool *done) {
  const unsigned char *b = NULL;
  v->op_pos = v->pos;
  if (v->narena >= DMX_TP_MAX_VALUES)
    return verr(v, "more than %d values: far more than a state dict needs (about 15 per tensor)", DMX_TP_MAX_VALUES);
  if (take(v, 1, &b)) return -1;
  switch (*b) {
    case 0x80: /* PROTO */
      if (take(v, 1, &b)) return -1;
      if (*b < 2 || *b > 5) return verr(v, "pickle protocol %u (torch.save writes 2)", *b);
      return 0;
    case 0x95: return take(v, 8, &b); /* FRAME: a length hint */
    case '.': *done = true; return 0;
    case '(':
      if (v->nmarks >= DMX_TP_MAX_MARKS) return verr(v, "more than %d nested MARKs", DMX_TP_MAX_MARKS);
      v->marks[v->nmarks++] = v->sp;
      return 0;
    case '}': return push(v, new_val(v, V_DICT));
    case ']': return push(v, new_val(v, V_LIST));
    case ')': return push(v, new_val(v, V_TUPLE));
    case 't': {
      val *t = pop_mark(v, V_TUPLE);
      return t ? push(v, t) : -1;
    }
    case 0x85: return op_tuple(v, 1);
    case 0x86: return op_tuple(v, 2);
    case 0x87: return op_tuple(v, 3);
    case 'q': return take(v, 1, &b) ? -1 : memo_put(v, b[0]);
    case 'r': return take(v, 4, &b) ? -1 : memo_put(v, le(b, 4));
    case 0x94: return memo_put(v, v->nmemo);
    case 'h': return take(v, 1, &b) ? -1 : memo_get(v, b[0]);
    case 'j': return take(v, 4, &b) ? -1 : memo_get(v, le(b, 4));
    case 'J': return op_int(v, 4, true);
    case 'K': return op_int(v, 1, false);
    case 'M': return op_int(v, 2, false);
    case 0x8a: return op_long1(v);
    case 'N': return push(v, new_val(v, V_NONE));
    case 0x88:
    case 0x89: {
      val *x = new_val(v, V_BOOL);
      x->i = *b == 0x88;
      return push(v, x);
    }
    case 'X': return op_string(v, 4);
    case 0x8c: return op_string(v, 1);
    case 'G': { /* BINFLOAT: kept as a placeholder value; no tensor field is a float */
      if (take(v, 8, &b)) return -1;
      return push(v, new_val(v, V_FLOAT));
    }
    case 'c': return op_global(v);
    case 0x93: return op_stack_global(v);
    case 'R': return op_reduce_or_build(v, true);
    case 'b': return op_reduce_or_build(v, false);
    case 's': return op_setitems(v, false);
    case 'u': return op_setitems(v, true);
    case 'a': return op_appends(v, false);
    case 'e': return op_appends(v, true);
    case 'Q': return op_persid(v);
    default:
      return verr(v, "unsupported pickle opcode 0x%02x ('%c'): torch.save of a state dict does not write it", *b,
                  *b >= 0x20 && *b < 0x7f ? *b : '?');
  }
}

static void vm_free(vm *v) {
  for (size_t i = 0; i < v->narena; i++) {
    free(v->arena[i]->s);
    free(v->arena[i]->items);
    free(v->arena[i]);
  }
  free(v->arena);
  free(v->stack);
  free(v->memo);
  for (size_t i = 0; i < v->nst; i++) free(v->st[i].key);
  free(v->st);
  free(v->tt);
}

void dmx_tp_free(dmx_tp_state_dict *sd) {
  if (!sd) return;
  for (size_t i = 0; i < sd->nstorages; i++) free(sd->storages[i].key);
  for (size_t i = 0; i < sd->ntensors; i++) free(sd->tensors[i].name);
  free(sd->storages);
  free(sd->tensors);
  memset(sd, 0, sizeof *sd);
}

static const vm *sort_ctx; /* qsort has no context argument; parsing is not reentrant across threads */
static int st_by_key(const void *a, const void *b) {
  return strcmp(sort_ctx->st[*(const size_t *)a].key, sort_ctx->st[*(const size_t *)b].key);
}
static int t_by_name(const void *a, const void *b) {
  return strcmp(((const dmx_tp_tensor *)a)->name, ((const dmx_tp_tensor *)b)->name);
}

/* Merges storage references with the same key into one storage each and renumbers the tensors. */
static int dedupe_storages(vm *v, dmx_tp_state_dict *out) {
  size_t *order = dmx_malloc((v->nst ? v->nst : 1) * sizeof *order),
         *map = dmx_malloc((v->nst ? v->nst : 1) * sizeof *map);
  for (size_t i = 0; i < v->nst; i++) order[i] = i;
  sort_ctx = v;
  qsort(order, v->nst, sizeof *order, st_by_key);
  out->storages = dmx_calloc(v->nst ? v->nst : 1, sizeof *out->storages);
  int rc = 0;
  for (size_t k = 0; k < v->nst && !rc; k++) {
    dmx_tp_storage *s = &v->st[order[k]];
    dmx_tp_storage *last = out->nstorages ? &out->storages[out->nstorages - 1] : NULL;
    if (last && !strcmp(last->key, s->key)) {
      if (last->dtype != s->dtype || last->numel != s->numel)
        rc = dmx_fail(v->err, "%s: storage '%s' is referenced as %s of %" PRIu64 " and as %s of %" PRIu64 " elements",
                      v->what, s->key, dmx_tp_dtype_name(last->dtype), last->numel, dmx_tp_dtype_name(s->dtype),
                      s->numel);
    } else {
      out->storages[out->nstorages++] = (dmx_tp_storage){dmx_strdup(s->key), s->dtype, s->numel};
    }
    map[order[k]] = out->nstorages - 1;
  }
  for (size_t i = 0; i < out->ntensors && !rc; i++) out->tensors[i].storage = map[out->tensors[i].storage];
  free(order);
  free(map);
  return rc;
}

/* Elements of t, or UINT64_MAX when the product overflows. */
static uint64_t tensor_numel(const dmx_tp_tensor *t) {
  uint64_t n = 1;
  for (int d = 0; d < t->ndim; d++) {
    if (t->shape[d] == 0) return 0;
    if (n > UINT64_MAX / (uint64_t)t->shape[d]) return UINT64_MAX;
    n *= (uint64_t)t->shape[d];
  }
  return n;
}

/* Whether a view (offset, shape, stride) stays inside a storage of numel elements. */
static bool view_fits(const dmx_tp_tensor *t, uint64_t numel) {
  uint64_t last = t->offset;
  for (int d = 0; d < t->ndim; d++) {
    if (t->shape[d] == 0) return t->offset <= numel;
    uint64_t span = (uint64_t)(t->shape[d] - 1);
    if (t->stride[d] && span > (UINT64_MAX / 4 - last) / (uint64_t)t->stride[d]) return false;
    last += span * (uint64_t)t->stride[d];
  }
  return last < numel;
}

static int extract(vm *v, val *root, dmx_tp_state_dict *out) {
  if (root->k != V_DICT)
    return dmx_fail(v->err,
                    "%s: data.pkl holds no dict at the top: not a state dict (a whole pickled model or "
                    "training checkpoint cannot be loaded; save model.state_dict())",
                    v->what);
  out->tensors = dmx_calloc(root->n / 2 + 1, sizeof *out->tensors);
  for (size_t k = 0; k + 1 < root->n; k += 2) {
    const val *key = root->items[k], *value = root->items[k + 1];
    if (key->k != V_STR || key->slen == 0 || memchr(key->s, 0, key->slen))
      return dmx_fail(v->err, "%s: state-dict key %zu is not a non-empty string", v->what, k / 2);
    if (value->k != V_TENSOR)
      return dmx_fail(v->err,
                      "%s: state-dict key '%.200s' does not hold a tensor: only a plain state dict of "
                      "tensors can be loaded",
                      v->what, key->s);
    dmx_tp_tensor *t = &out->tensors[out->ntensors++];
    *t = v->tt[value->i];
    t->name = dmx_strdup(key->s);
    if (!view_fits(t, v->st[t->storage].numel))
      return dmx_fail(v->err,
                      "%s: tensor '%.200s' (offset %" PRIu64
                      ", %d dims) reaches past the end of storage '%s' "
                      "of %" PRIu64 " elements",
                      v->what, t->name, t->offset, t->ndim, v->st[t->storage].key, v->st[t->storage].numel);
    /* an expanded view (stride 0) would be materialised larger than the file: a size bomb */
    if (tensor_numel(t) > v->st[t->storage].numel)
      return dmx_fail(v->err,
                      "%s: tensor '%.200s' has more elements than its storage '%s' (%" PRIu64
                      "): an expanded "
                      "(stride 0) view; save a contiguous copy (tensor.contiguous()) instead",
                      v->what, t->name, v->st[t->storage].key, v->st[t->storage].numel);
  }
  if (dedupe_storages(v, out)) return -1;
  dmx_tp_tensor *sorted = dmx_malloc((out->ntensors ? out->ntensors : 1) * sizeof *sorted);
  if (out->ntensors) memcpy(sorted, out->tensors, out->ntensors * sizeof *sorted);
  qsort(sorted, out->ntensors, sizeof *sorted, t_by_name);
  int rc = 0;
  for (size_t i = 1; i < out->ntensors && !rc; i++)
    if (!strcmp(sorted[i].name, sorted[i - 1].name))
      rc = dmx_fail(v->err, "%s: state-dict key '%.200s' appears twice", v->what, sorted[i].name);
  free(sorted);
  return rc;
}

int dmx_tp_parse(const unsigned char *pkl, size_t len, const char *what, dmx_tp_state_dict *out, dmx_error *err) {
  memset(out, 0, sizeof *out);
  vm v = {.p = pkl, .len = len, .what = what ? what : "(pickle)", .err = err};
  bool done = false;
  int rc = 0;
  while (!done && rc == 0) rc = step(&v, &done);
  if (rc == 0 && v.nmarks) rc = verr(&v, "STOP with %d MARK(s) still open", v.nmarks);
  if (rc == 0 && v.sp != 1) rc = verr(&v, "STOP with %zu values on the stack (a pickle ends with exactly one)", v.sp);
  if (rc == 0) rc = extract(&v, v.stack[0], out);
  vm_free(&v);
  if (rc) dmx_tp_free(out);
  return rc;
}
