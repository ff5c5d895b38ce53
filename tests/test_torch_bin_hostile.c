/* Hostile and malformed torch.save files: the zip reader, the restricted unpickler and the loader
 * must refuse each with a message naming the problem, never crash and never execute anything.
 * Also checks conversions the fixture does not cover (bf16, half subnormals, strided views).
 *
 * With DATAMUX_WRITE_CORPUS=DIR set, every input is also written to DIR/zip/ or DIR/pickle/: that
 * is how tests/fuzz/corpus/ was seeded (see README.md, Fuzzing). */
#include <stdlib.h>
#include <string.h>

#include "host/formats/torch_bin.h"
#include "host/formats/torch_pickle.h"
#include "host/formats/zip_reader.h"
#include "host/formats/zip_writer.h"
#include "tests/harness.h"

typedef struct {
  unsigned char *b;
  size_t n, cap;
} buf;

static void put(buf *o, const void *d, size_t n) {
  if (o->n + n > o->cap) {
    o->cap = (o->n + n) * 2 + 64;
    o->b = realloc(o->b, o->cap);
    if (!o->b) abort();
  }
  memcpy(o->b + o->n, d, n);
  o->n += n;
}
static void puts_(buf *o, const char *s) { put(o, s, strlen(s)); }
static void put_u32(buf *o, uint32_t v) {
  unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
  put(o, b, 4);
}
static void str(buf *o, const char *s) {
  puts_(o, "X");
  put_u32(o, (uint32_t)strlen(s));
  puts_(o, s);
}
static void small_int(buf *o, unsigned v) { /* BININT1 or BININT2 */
  unsigned char b[3] = {v < 256 ? 'K' : 'M', (unsigned char)v, (unsigned char)(v >> 8)};
  put(o, b, v < 256 ? 2 : 3);
}

/* A state dict {name: tensor}, the tensor a view (offset, sizes, strides) of storage `key`. */
static void pkl_tensor(buf *o, const char *name, const char *stype, const char *key, unsigned numel, unsigned off,
                       int ndim, const unsigned *size, const unsigned *stride) {
  str(o, name);
  puts_(o, "ctorch._utils\n_rebuild_tensor_v2\n((");
  str(o, "storage");
  puts_(o, "ctorch\n");
  puts_(o, stype);
  puts_(o, "\n");
  str(o, key);
  str(o, "cpu");
  small_int(o, numel);
  puts_(o, "tQ");
  small_int(o, off);
  puts_(o, "(");
  for (int d = 0; d < ndim; d++) small_int(o, size[d]);
  puts_(o, "t(");
  for (int d = 0; d < ndim; d++) small_int(o, stride[d]);
  puts_(o,
        "t\x89"
        "ccollections\nOrderedDict\n)RtR");
}
static void pkl_begin(buf *o) {
  puts_(o,
        "\x80\x02"
        "ccollections\nOrderedDict\n)R(");
}
static void pkl_end(buf *o) { puts_(o, "u."); }

static buf one_tensor_pickle(const char *stype, unsigned numel, unsigned off, unsigned size, unsigned stride) {
  buf o = {0};
  pkl_begin(&o);
  pkl_tensor(&o, "w", stype, "0", numel, off, 1, &size, &stride);
  pkl_end(&o);
  return o;
}

/* An archive of data.pkl and storage 0 (storage NULL: no storage entry). */
static buf archive(const buf *pkl, const void *storage, size_t n, const char *byteorder) {
  dmx_error err;
  dmx_zip_writer *w = dmx_zip_writer_new();
  dmx_zip_writer_add(w, "archive/data.pkl", pkl->b, pkl->n, &err);
  if (byteorder) dmx_zip_writer_add(w, "archive/byteorder", byteorder, strlen(byteorder), &err);
  if (storage) dmx_zip_writer_add(w, "archive/data/0", storage, n, &err);
  buf out = {0};
  if (dmx_zip_writer_finish(w, &out.b, &out.n, &err)) abort();
  out.cap = out.n;
  dmx_zip_writer_free(w);
  return out;
}

static void save_corpus(const char *target, const char *name, const void *data, size_t n) {
  const char *dir = getenv("DATAMUX_WRITE_CORPUS");
  if (!dir || !*dir || n > 65536) return; /* the corpus stays small; bombs are built by the test */
  char path[1024];
  dmx_error err;
  snprintf(path, sizeof path, "%s/%s", dir, target);
  if (dmx_mkdirs(path, &err) == 0) {
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    if (dmx_write_file_atomic(path, data, n, &err)) printf("  %s\n", err.msg);
  }
}

static void expect_bin_error(const char *name, const buf *b, const char *want) {
  save_corpus("zip", name, b->b, b->n);
  dmx_error err = {{0}};
  dmx_st_file *f = dmx_torch_bin_parse(b->b, b->n, name, &err);
  CHECKF(f == NULL, "%s: accepted", name);
  dmx_st_free(f);
  CHECKF(strstr(err.msg, want) && strstr(err.msg, name), "%s: error '%s' lacks '%s'", name, err.msg, want);
}

static void expect_pickle_error(const char *name, const buf *p, const char *want) {
  save_corpus("pickle", name, p->b, p->n);
  dmx_error err = {{0}};
  dmx_tp_state_dict sd;
  int rc = dmx_tp_parse(p->b, p->n, name, &sd, &err);
  CHECKF(rc == -1, "%s: accepted", name);
  if (rc == 0) dmx_tp_free(&sd);
  CHECKF(strstr(err.msg, want) && strstr(err.msg, name), "%s: error '%s' lacks '%s'", name, err.msg, want);
}

static void expect_pickle_bytes(const char *name, const char *bytes, size_t n, const char *want) {
  buf p = {0};
  put(&p, bytes, n);
  expect_pickle_error(name, &p, want);
  free(p.b);
}

/* Offset of the central record of `entry` in a valid archive b. */
static size_t central_of(const buf *b, const char *entry) {
  size_t nl = strlen(entry);
  for (size_t i = 0; i + 46 + nl <= b->n; i++)
    if (!memcmp(b->b + i, "PK\x01\x02", 4) && b->b[i + 28] == nl && !memcmp(b->b + i + 46, entry, nl)) return i;
  abort();
}

static size_t local_of(const buf *b, const char *entry) {
  size_t nl = strlen(entry);
  for (size_t i = 0; i + 30 + nl <= b->n; i++)
    if (!memcmp(b->b + i, "PK\x03\x04", 4) && b->b[i + 26] == nl && !memcmp(b->b + i + 30, entry, nl)) return i;
  abort();
}

static buf copy(const buf *b) {
  buf c = {malloc(b->n), b->n, b->n};
  memcpy(c.b, b->b, b->n);
  return c;
}

static void test_valid_conversions(void) {
  th_begin("valid files: strided view, half (incl. subnormal), bfloat16, int32 storages");
  const float f[6] = {0, 1, 2, 3, 4, 5};
  buf p = one_tensor_pickle("FloatStorage", 6, 1, 3, 2);
  buf z = archive(&p, f, sizeof f, "little");
  save_corpus("zip", "ok_strided", z.b, z.n);
  save_corpus("pickle", "ok_strided", p.b, p.n);
  dmx_error err = {{0}};
  dmx_st_file *s = dmx_torch_bin_parse(z.b, z.n, "strided", &err);
  float got[3] = {0};
  CHECKF(s && dmx_st_get_f32(s, "w", got, 3, &err) == 0, "%s", err.msg);
  CHECKF(got[0] == 1 && got[1] == 3 && got[2] == 5, "strided view gave %g %g %g", got[0], got[1], got[2]);
  dmx_st_free(s);
  free(p.b);
  free(z.b);
  const unsigned char half[8] = {0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0x01, 0x00}; /* 1, -2, 65504, 2^-24 */
  p = one_tensor_pickle("HalfStorage", 4, 0, 4, 1);
  z = archive(&p, half, sizeof half, NULL);
  save_corpus("zip", "ok_half", z.b, z.n);
  float h[4] = {0};
  s = dmx_torch_bin_parse(z.b, z.n, "half", &err);
  CHECKF(s && dmx_st_get_f32(s, "w", h, 4, &err) == 0, "%s", err.msg);
  CHECKF(h[0] == 1.0f && h[1] == -2.0f && h[2] == 65504.0f && h[3] == 0x1p-24f, "half: %g %g %g %g", h[0], h[1], h[2],
         h[3]);
  dmx_st_free(s);
  free(p.b);
  free(z.b);
  const unsigned char bf[4] = {0x80, 0x3F, 0x40, 0xC0}; /* 1, -3 */
  p = one_tensor_pickle("BFloat16Storage", 2, 0, 2, 1);
  z = archive(&p, bf, sizeof bf, NULL);
  s = dmx_torch_bin_parse(z.b, z.n, "bf16", &err);
  CHECKF(s && dmx_st_get_f32(s, "w", h, 2, &err) == 0 && h[0] == 1.0f && h[1] == -3.0f, "bf16: %s", err.msg);
  dmx_st_free(s);
  free(p.b);
  free(z.b);
  const int32_t iv[2] = {-7, 9};
  p = one_tensor_pickle("IntStorage", 2, 0, 2, 1);
  z = archive(&p, iv, sizeof iv, NULL);
  int32_t ig[2] = {0};
  s = dmx_torch_bin_parse(z.b, z.n, "int", &err);
  CHECKF(s && dmx_st_find(s, "w")->dtype == DMX_ST_I32 && dmx_st_get_i32(s, "w", ig, 2, &err) == 0 && ig[0] == -7 &&
             ig[1] == 9,
         "int32: %s", err.msg);
  dmx_st_free(s);
  free(p.b);
  free(z.b);
  th_end();
}

static void test_hostile_zip(void) {
  th_begin("hostile zip archives: compressed, encrypted, directory out of range, truncated, CRC, zip64, dups");
  const float f[4] = {1, 2, 3, 4};
  buf p = one_tensor_pickle("FloatStorage", 4, 0, 4, 1);
  buf good = archive(&p, f, sizeof f, NULL);
  size_t cd = central_of(&good, "archive/data/0"), eocd = good.n - 22;
  buf b = copy(&good);
  b.b[cd + 10] = 8; /* deflate */
  expect_bin_error("zip_compressed", &b, "entry 'archive/data/0' is compressed (method 8)");
  memcpy(b.b, good.b, good.n);
  b.b[cd + 8] |= 1;
  expect_bin_error("zip_encrypted", &b, "entry 'archive/data/0' is encrypted");
  memcpy(b.b, good.b, good.n);
  b.b[eocd + 16 + 3] = 0x7F; /* central directory offset */
  expect_bin_error("zip_cd_out_of_range", &b, "does not fit in the file");
  memcpy(b.b, good.b, good.n);
  memset(b.b + eocd + 16, 0xFF, 4);
  expect_bin_error("zip64_no_locator", &b, "no zip64 locator");
  memcpy(b.b, good.b, good.n);
  memset(b.b + cd + 20, 0x7F, 8); /* both sizes */
  expect_bin_error("zip_entry_past_end", &b, "run past the end of the file");
  memcpy(b.b, good.b, good.n);
  b.b[cd + 42 + 3] = 0x40; /* local header offset */
  expect_bin_error("zip_local_offset", &b, "is beyond the file");
  memcpy(b.b, good.b, good.n);
  b.b[central_of(&good, "archive/data.pkl") - 1] ^= 0xFF; /* the last data byte (storage 0) */
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION          /* the fuzz build lets CRC mismatches through */
  expect_bin_error("zip_crc", &b, "CRC-32");
#endif
  memcpy(b.b, good.b, good.n);
  b.b[local_of(&good, "archive/data/0") + 30 + 13] = '1'; /* the local header names another entry */
  expect_bin_error("zip_local_mismatch", &b, "does not match the central directory");
  b.n = good.n / 2;
  expect_bin_error("zip_truncated", &b, "not a zip archive");
  b.n = 0;
  expect_bin_error("zip_empty", &b, "not a zip archive");
  free(b.b);
  /* two entries with one name */
  dmx_error err;
  dmx_zip_writer *w = dmx_zip_writer_new();
  dmx_zip_writer_add(w, "archive/data.pkl", p.b, p.n, &err);
  dmx_zip_writer_add(w, "archive/data.pkl", "x", 1, &err);
  buf d = {0};
  dmx_zip_writer_finish(w, &d.b, &d.n, &err);
  dmx_zip_writer_free(w);
  expect_bin_error("zip_duplicate", &d, "entry 'archive/data.pkl' appears twice");
  free(d.b);
  w = dmx_zip_writer_new();
  dmx_zip_writer_add(w, "readme.txt", "hello", 5, &err);
  dmx_zip_writer_finish(w, &d.b, &d.n, &err);
  dmx_zip_writer_free(w);
  expect_bin_error("zip_not_torch", &d, "without <folder>/data.pkl");
  free(d.b);
  free(good.b);
  free(p.b);
  th_end();
}

static void test_hostile_storages(void) {
  th_begin("storages: size vs data mismatch, missing entry, view past the end, big-endian, shared key conflicts");
  const float f[4] = {1, 2, 3, 4};
  buf p = one_tensor_pickle("FloatStorage", 4, 0, 4, 1);
  buf z = archive(&p, f, 12, NULL);
  expect_bin_error("storage_size_mismatch", &z,
                   "storage '0' (FloatStorage of 4 elements) needs 16 bytes but its entry has 12");
  free(z.b);
  z = archive(&p, NULL, 0, NULL);
  expect_bin_error("storage_missing", &z, "no entry 'archive/data/0'");
  free(z.b);
  z = archive(&p, f, sizeof f, "big");
  expect_bin_error("storage_big_endian", &z, "not little-endian");
  free(z.b);
  free(p.b);
  p = one_tensor_pickle("FloatStorage", 4, 1, 4, 1);
  expect_pickle_error("view_past_end", &p, "reaches past the end of storage '0' of 4 elements");
  free(p.b);
  p = one_tensor_pickle("FloatStorage", 4, 0, 3, 2);
  expect_pickle_error("stride_past_end", &p, "reaches past the end");
  free(p.b);
  p = one_tensor_pickle("FloatStorage", 4, 0, 200, 0);
  expect_pickle_error("expanded_view", &p, "has more elements than its storage '0' (4)");
  free(p.b);
  buf q = {0};
  unsigned one = 1;
  pkl_begin(&q);
  pkl_tensor(&q, "a", "FloatStorage", "0", 4, 0, 1, &one, &one);
  pkl_tensor(&q, "b", "HalfStorage", "0", 4, 0, 1, &one, &one);
  pkl_end(&q);
  expect_pickle_error("storage_dtype_conflict", &q, "storage '0' is referenced as");
  q.n = 0;
  pkl_begin(&q);
  pkl_tensor(&q, "a", "FloatStorage", "0", 4, 0, 1, &one, &one);
  pkl_tensor(&q, "a", "FloatStorage", "1", 4, 0, 1, &one, &one);
  pkl_end(&q);
  expect_pickle_error("duplicate_key", &q, "state-dict key 'a' appears twice");
  /* 200 keys viewing one 4096-float storage: 3.2 MB to materialise from a ~40 KB file */
  q.n = 0;
  unsigned n4k = 4096;
  pkl_begin(&q);
  for (int k = 0; k < 200; k++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", k);
    pkl_tensor(&q, key, "FloatStorage", "0", n4k, 0, 1, &n4k, &one);
  }
  pkl_end(&q);
  static float big[4096];
  buf zb = archive(&q, big, sizeof big, NULL);
  expect_bin_error("view_bomb", &zb, "refusing to materialise them");
  free(zb.b);
  q.n = 0;
  pkl_begin(&q);
  pkl_tensor(&q, "a", "FloatStorage", "../../etc/passwd", 4, 0, 1, &one, &one);
  pkl_end(&q);
  expect_pickle_error("storage_key_path", &q, "is not a plain archive entry name");
  free(q.b);
  th_end();
}

static void test_hostile_pickles(void) {
  th_begin("hostile pickles: GLOBAL os.system, unknown callables and opcodes, stack/mark/memo bombs, lengths");
#define P(name, lit, want) expect_pickle_bytes(name, lit, sizeof lit - 1, want)
  P("global_os_system",
    "\x80\x02"
    "cos\nsystem\n(X\x02\x00\x00\x00lstR.",
    "GLOBAL os.system is not allowed");
  P("stack_global_eval",
    "\x80\x04\x8c\x08"
    "builtins\x8c\x04"
    "eval\x93.",
    "GLOBAL builtins.eval is not allowed");
  P("global_unterminated",
    "\x80\x02"
    "cos\nsys",
    "not terminated by a newline");
  P("reduce_storage_type",
    "\x80\x02"
    "ctorch\nFloatStorage\n)R.",
    "a storage type is not callable");
  P("reduce_string",
    "\x80\x02X\x01\x00\x00\x00"
    "a)R.",
    "not an allowed callable");
  P("reduce_odict_args",
    "\x80\x02"
    "ccollections\nOrderedDict\n(NtR.",
    "OrderedDict called with 1 arguments");
  P("unknown_opcode", "\x80\x02I1\n.", "unsupported pickle opcode 0x49");
  P("opcode_inst", "\x80\x02iex\nx\n.", "unsupported pickle opcode 0x69");
  P("protocol_1", "\x80\x01}.", "pickle protocol 1");
  P("memo_unset", "\x80\x02h\x05.", "memo slot 5 was never written");
  P("memo_huge", "\x80\x02Nr\xff\xff\xff\x7f.", "memo index 2147483647 is past the limit");
  P("memo_past_length", "\x80\x02Nr\x00\x01\x00\x00.",
    "memo index 256 is past the limit (1048576, and the pickle's 9 bytes)");
  P("string_huge", "\x80\x02X\xff\xff\xff\x7f", "string of 2147483647 bytes");
  P("string_past_end",
    "\x80\x02X\x10\x00\x00\x00"
    "ab",
    "the pickle ends at byte");
  P("no_stop", "\x80\x02}", "the pickle ends at byte");
  P("long1_wide", "\x80\x02\x8a\xc8", "LONG1 of 200 bytes");
  P("pop_empty", "\x80\x02R", "pops an empty stack");
  P("pop_past_mark", "\x80\x02N(R", "pops an empty stack (or past a MARK)");
  P("setitem_on_list", "\x80\x02]NNs.", "SETITEM on something that is not a dict");
  P("setitems_odd", "\x80\x02}(Nu.", "SETITEMS with an odd number of values");
  P("build_on_tuple", "\x80\x02)}b.", "BUILD is only accepted");
  P("persid_bad", "\x80\x02NQ.", "persistent id is not");
  P("two_values", "\x80\x02}}.", "STOP with 2 values");
  P("open_mark", "\x80\x02(}.", "STOP with 1 MARK(s) still open");
  P("top_not_dict", "\x80\x02].", "no dict at the top");
  P("value_not_tensor",
    "\x80\x02}X\x01\x00\x00\x00"
    "aK\x01s.",
    "key 'a' does not hold a tensor");
  P("key_not_string", "\x80\x02}K\x01K\x01s.", "key 0 is not a non-empty string");
  /* a list that contains itself (memo): cycles are harmless, nothing walks the value graph */
  P("self_list",
    "\x80\x02]q\x00h\x00"
    "a.",
    "no dict at the top");
#undef P
  buf b = {0};
  puts_(&b, "\x80\x02");
  for (int i = 0; i < 100; i++) puts_(&b, "(");
  expect_pickle_error("mark_bomb", &b, "more than 64 nested MARKs");
  b.n = 0;
  puts_(&b, "\x80\x02");
  for (int i = 0; i <= DMX_TP_MAX_STACK; i++) puts_(&b, "N");
  expect_pickle_error("stack_bomb", &b, "more than 1048576 values on the pickle stack");
  /* 200000 nested lists: nothing here recurses over values, so this is only refused as a non-dict */
  b.n = 0;
  puts_(&b, "\x80\x02");
  for (int i = 0; i < 200000; i++) puts_(&b, "]");
  for (int i = 1; i < 200000; i++) puts_(&b, "a");
  puts_(&b, ".");
  dmx_tp_state_dict sd;
  dmx_error err = {{0}};
  CHECK(dmx_tp_parse(b.b, b.n, "deep_lists", &sd, &err) == -1 && strstr(err.msg, "no dict at the top"));
  free(b.b);
  th_end();
}

int main(void) {
  test_valid_conversions();
  test_hostile_zip();
  test_hostile_storages();
  test_hostile_pickles();
  return th_finish();
}
