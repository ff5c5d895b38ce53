/* safetensors: reading a file written by the Python reference library (every dtype, scalar, empty
 * tensor, metadata with escapes), conversions and their errors, writer round trip (bytes and header
 * alignment), and hostile files, each rejected with a message naming the problem. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/formats/safetensors.h"
#include "tests/harness.h"

#define FIX "tests/fixtures/safetensors/"

static void check_err_contains(const dmx_error *e, const char *want) {
  CHECKF(strstr(e->msg, want) != NULL, "error '%s' does not contain '%s'", e->msg, want);
}

static void test_python_file(void) {
  th_begin("reads a file written by Python safetensors: shapes, dtypes, data order, metadata");
  dmx_error e = {{0}};
  dmx_st_file *f = dmx_st_load(FIX "tiny.safetensors", &e);
  CHECKF(f != NULL, "load failed: %s", e.msg);
  if (!f) {
    th_end();
    return;
  }
  CHECK(dmx_st_count(f) == 9);
  const dmx_st_tensor *t = dmx_st_find(f, "f32");
  CHECK(t && t->dtype == DMX_ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->numel == 6 &&
        t->nbytes == 24);
  t = dmx_st_find(f, "scalar");
  CHECK(t && t->ndim == 0 && t->numel == 1 && t->nbytes == 4);
  t = dmx_st_find(f, "empty");
  CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3 && t->numel == 0 && t->nbytes == 0);
  t = dmx_st_find(f, "bf16");
  CHECK(t && t->dtype == DMX_ST_BF16 && t->nbytes == 4);
  CHECK(dmx_st_find(f, "nope") == NULL);
  CHECK(dmx_st_find(f, "__metadata__") == NULL);
  /* Iteration is in data order: offsets increase and tile the data section. */
  const unsigned char *prev_end = NULL;
  for (size_t i = 0; i < dmx_st_count(f); i++) {
    const dmx_st_tensor *ti = dmx_st_at(f, i);
    if (prev_end) CHECKF((const unsigned char *)ti->data == prev_end, "tensor %zu '%s' not contiguous", i, ti->name);
    prev_end = (const unsigned char *)ti->data + ti->nbytes;
  }
  CHECK(dmx_st_at(f, dmx_st_count(f)) == NULL);
  CHECK(dmx_st_meta(f, "format") && strcmp(dmx_st_meta(f, "format"), "pt") == 0);
  const char *note = dmx_st_meta(f, "note");
  CHECKF(note && strcmp(note, "quote \" backslash \\ unicode \xc3\xbcn\xc3\xaf \xf0\x9f\x98\x80") == 0, "note = '%s'",
         note ? note : "(null)");
  CHECK(dmx_st_meta(f, "missing") == NULL);
  CHECK(dmx_st_meta_count(f) == 2);
  const char *k, *v;
  CHECK(dmx_st_meta_at(f, 0, &k, &v) == 0 && dmx_st_meta_at(f, 2, &k, &v) == -1);

  float x[6];
  CHECK(dmx_st_get_f32(f, "f32", x, 6, &e) == 0);
  CHECK(x[0] == 0.0f && x[1] == 1.5f && x[2] == -2.25f && x[3] == 3e-8f && x[4] == 1e10f && x[5] == 0.0f &&
        signbit(x[5]));
  CHECK(dmx_st_get_f32(f, "f16", x, 6, &e) == 0);
  CHECK(x[0] == 1.0f && x[1] == -2.5f && x[2] == 65504.0f && x[3] == 6.103515625e-05f &&
        x[4] == 5.960464477539063e-08f && isinf(x[5]) && x[5] < 0);
  float w[6];
  CHECK(dmx_st_get_f32(f, "layer.0.weight", w, 6, &e) == 0);
  for (int i = 0; i < 6; i++) CHECK(w[i] == (float)i / 4);
  CHECK(dmx_st_get_f32(f, "scalar", x, 1, &e) == 0 && x[0] == 42.0f);
  CHECK(dmx_st_get_f32(f, "empty", x, 0, &e) == 0);
  int32_t iv[4];
  CHECK(dmx_st_get_i32(f, "i32", iv, 3, &e) == 0 && iv[0] == -7 && iv[1] == 0 && iv[2] == 2147483647);
  CHECK(dmx_st_get_i32(f, "i64", iv, 4, &e) == 0 && iv[0] == 1 && iv[1] == -2 && iv[2] == 3 && iv[3] == INT32_MIN);
  int64_t sh[2] = {2, 3}, bad[2] = {3, 2};
  CHECK(dmx_st_expect_shape(f, "f32", 2, sh, &e) == 0);
  th_end();

  th_begin("conversion errors: missing tensor, element count, BF16, wrong kind, int32 range");
  CHECK(dmx_st_get_f32(f, "nope", x, 1, &e) == -1);
  check_err_contains(&e, "no tensor named 'nope'");
  CHECK(dmx_st_get_f32(f, "f32", x, 5, &e) == -1);
  check_err_contains(&e, "tensor 'f32' has 6 elements (shape [2, 3]), expected 5");
  CHECK(dmx_st_get_f32(f, "bf16", x, 2, &e) == -1);
  check_err_contains(&e, "is BF16, which is not supported");
  CHECK(dmx_st_get_f32(f, "i32", x, 3, &e) == -1);
  check_err_contains(&e, "is I32, expected a float tensor");
  CHECK(dmx_st_get_i32(f, "f32", iv, 6, &e) == -1);
  check_err_contains(&e, "is F32, expected an integer tensor");
  CHECK(dmx_st_get_i32(f, "i64_big", iv, 1, &e) == -1);
  check_err_contains(&e, "element 0 = 1099511627776 does not fit in int32");
  CHECK(dmx_st_expect_shape(f, "f32", 2, bad, &e) == -1);
  check_err_contains(&e, "has shape [2, 3], expected [3, 2]");
  th_end();
  dmx_st_free(f);
}

static void test_round_trip(void) {
  th_begin("writer round trip: F32/I32, scalar, empty, metadata with escapes, 8-byte aligned data");
  char path[256];
  snprintf(path, sizeof path, "/tmp/datamux-st-test-%ld.safetensors", (long)getpid());
  float a[12];
  for (int i = 0; i < 12; i++) a[i] = (float)i * 0.5f - 3.0f;
  int32_t b[5] = {-100, 0, 1, 50264, INT32_MAX};
  float s = -1.25f;
  dmx_error e = {{0}};
  dmx_st_writer *w = dmx_st_writer_new();
  int64_t sa[3] = {2, 3, 2}, sb[1] = {5}, se[2] = {4, 0};
  CHECK(dmx_st_writer_add(w, "roberta.encoder.layer.0.attention.self.query.weight", DMX_ST_F32, 3, sa, a, &e) == 0);
  CHECK(dmx_st_writer_add(w, "input.ids", DMX_ST_I32, 1, sb, b, &e) == 0);
  CHECK(dmx_st_writer_add(w, "scalar", DMX_ST_F32, 0, NULL, &s, &e) == 0);
  CHECK(dmx_st_writer_add(w, "empty", DMX_ST_F32, 2, se, NULL, &e) == 0);
  CHECK(dmx_st_writer_meta(w, "num_instances", "4", &e) == 0);
  CHECK(dmx_st_writer_meta(w, "odd", "tab\there \"q\" \\ nl\n", &e) == 0);
  /* writer-side refusals */
  CHECK(dmx_st_writer_add(w, "input.ids", DMX_ST_I32, 1, sb, b, &e) == -1);
  check_err_contains(&e, "duplicate tensor name 'input.ids'");
  CHECK(dmx_st_writer_add(w, "__metadata__", DMX_ST_F32, 1, sb, a, &e) == -1);
  check_err_contains(&e, "reserved");
  CHECK(dmx_st_writer_add(w, "h", DMX_ST_F16, 1, sb, a, &e) == -1);
  check_err_contains(&e, "only F32, I32 and I64 can be written");
  CHECK(dmx_st_writer_add(w, "bad\xff", DMX_ST_F32, 1, sb, a, &e) == -1);
  check_err_contains(&e, "not valid UTF-8");
  CHECK(dmx_st_writer_meta(w, "odd", "again", &e) == -1);
  check_err_contains(&e, "duplicate metadata key 'odd'");
  CHECK(dmx_st_writer_write(w, path, &e) == 0);

  unsigned char *bytes;
  size_t len;
  CHECK(dmx_st_writer_serialize(w, &bytes, &len, &e) == 0);
  uint64_t hlen = 0;
  for (int k = 7; k >= 0; k--) hlen = (hlen << 8) | bytes[k];
  CHECK(hlen % 8 == 0 && bytes[8] == '{' && len == 8 + hlen + 48 + 20 + 4);
  CHECK(bytes[8 + hlen - 1] == ' ' || bytes[8 + hlen - 1] == '}');
  free(bytes);
  dmx_st_writer_free(w);

  dmx_st_file *f = dmx_st_load(path, &e);
  CHECKF(f != NULL, "reload failed: %s", e.msg);
  if (f) {
    CHECK(dmx_st_count(f) == 4);
    float ga[12], gs;
    int32_t gb[5];
    CHECK(dmx_st_get_f32(f, "roberta.encoder.layer.0.attention.self.query.weight", ga, 12, &e) == 0);
    CHECK(memcmp(ga, a, sizeof a) == 0);
    CHECK(dmx_st_expect_shape(f, "roberta.encoder.layer.0.attention.self.query.weight", 3, sa, &e) == 0);
    CHECK(dmx_st_get_i32(f, "input.ids", gb, 5, &e) == 0 && memcmp(gb, b, sizeof b) == 0);
    CHECK(dmx_st_get_f32(f, "scalar", &gs, 1, &e) == 0 && gs == s);
    CHECK(dmx_st_expect_shape(f, "empty", 2, se, &e) == 0);
    CHECK(dmx_st_meta(f, "num_instances") && strcmp(dmx_st_meta(f, "num_instances"), "4") == 0);
    CHECK(dmx_st_meta(f, "odd") && strcmp(dmx_st_meta(f, "odd"), "tab\there \"q\" \\ nl\n") == 0);
    /* data section starts 8-byte aligned relative to the file start */
    const dmx_st_tensor *t0 = dmx_st_at(f, 0);
    CHECK(t0 && strcmp(t0->name, "roberta.encoder.layer.0.attention.self.query.weight") == 0);
    dmx_st_free(f);
  }
  CHECK(unlink(path) == 0);

  /* An empty writer gives a valid empty file. */
  w = dmx_st_writer_new();
  CHECK(dmx_st_writer_serialize(w, &bytes, &len, &e) == 0);
  dmx_st_file *g = dmx_st_parse(bytes, len, "empty", &e);
  CHECKF(g && dmx_st_count(g) == 0 && dmx_st_meta_count(g) == 0, "empty file: %s", e.msg);
  dmx_st_free(g);
  free(bytes);
  dmx_st_writer_free(w);
  th_end();
}

static const struct {
  const char *file, *want;
} hostile[] = {
    {"bad_too_short", "3 bytes, too short for the 8-byte header length"},
    {"bad_header_beyond_file", "header length 4096 exceeds the 62 bytes after the length field"},
    {"bad_offsets_out_of_range", "tensor 'b': data_offsets [16, 24] out of range: the data section has 16 bytes"},
    {"bad_overlap", "tensors 'a' [0, 8] and 'b' [4, 12] overlap"},
    {"bad_reversed_offsets", "out-of-order data_offsets [8, 0] (begin after end)"},
    {"bad_gap", "gap of 8 unused bytes before tensor 'a'"},
    {"bad_trailing_data", "8 bytes after the last tensor are not described by the header"},
    {"bad_dtype_shape_mismatch", "size mismatch: data_offsets [0, 16] span 16 bytes but F32 [2, 3] needs 24"},
    {"bad_json", "JSON error at header byte 14 (file offset 22): expected ':' after object key"},
    {"bad_json_trailing", "trailing characters after the header object"},
    {"bad_deep_nesting", "nesting deeper than 32 levels"},
    {"bad_duplicate_name", "duplicate tensor name 'a'"},
    {"bad_unknown_dtype", "unsupported dtype 'F64'"},
    {"bad_shape_overflow", "shape overflows the address space: [4294967296, 4294967296, 4294967296]"},
    {"bad_too_many_dims", "too many dimensions: 9 (at most 8)"},
    {"bad_negative_dim", "\"shape\" entries must be non-negative integers"},
    {"bad_metadata_value", "metadata value for 'k' is not a string"},
    {"bad_string_escape", "invalid escape sequence"},
    {"bad_missing_offsets", "tensor 'a': missing \"data_offsets\""},
    {"bad_not_object", "header is not a JSON object"},
};

static void test_hostile_files(void) {
  th_begin("hostile files are rejected with a message naming the problem");
  for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
    char path[256];
    snprintf(path, sizeof path, FIX "%s.safetensors", hostile[i].file);
    dmx_error e = {{0}};
    dmx_st_file *f = dmx_st_load(path, &e);
    CHECKF(f == NULL, "%s was accepted", hostile[i].file);
    dmx_st_free(f);
    CHECKF(strstr(e.msg, hostile[i].want) != NULL, "%s: error '%s' does not contain '%s'", hostile[i].file, e.msg,
           hostile[i].want);
    CHECKF(strstr(e.msg, path) != NULL, "%s: error '%s' does not name the file", hostile[i].file, e.msg);
  }
  dmx_error e = {{0}};
  CHECK(dmx_st_load(FIX "does_not_exist.safetensors", &e) == NULL);
  check_err_contains(&e, "cannot open");
  th_end();
}

/* In-memory header checks for JSON corner cases. */
static int parse_header(const char *json, size_t data_len, dmx_error *e) {
  size_t hl = strlen(json), len = 8 + hl + data_len;
  unsigned char *buf = calloc(1, len);
  if (!buf) return -2;
  for (int k = 0; k < 8; k++) buf[k] = (unsigned char)((uint64_t)hl >> (8 * k));
  memcpy(buf + 8, json, hl);
  dmx_st_file *f = dmx_st_parse(buf, len, "mem", e);
  free(buf);
  int ok = f != NULL;
  dmx_st_free(f);
  return ok ? 0 : -1;
}

static void test_json_corners(void) {
  th_begin("JSON corner cases: escapes, surrogates, numbers, literals, UTF-8, padding");
  dmx_error e = {{0}};
  CHECKF(parse_header("{\"__metadata__\":{\"k\":\"\\u00e9\\ud83d\\ude00\\/\\b\\f\\n\\r\\t\"}}   ", 0, &e) == 0, "%s",
         e.msg);
  CHECKF(parse_header(" \t\n{ \"a\" : { \"shape\" : [ 2 ] , \"dtype\" : \"I32\" , \"data_offsets\" : [ 0 , 8 ] } } ", 8,
                      &e) == 0,
         "%s", e.msg);
  CHECKF(parse_header("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                      "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                      4, &e) == 0,
         "%s", e.msg);
  static const struct {
    const char *json, *want;
  } bad[] = {
      {"", "empty header"},
      {"{", "unexpected end of header inside an object"},
      {"{\"a\":1,}", "expected a string key in object"},
      {"{\"__metadata__\":{\"k\":\"\\ud800\"}}", "high surrogate not followed by a low surrogate"},
      {"{\"__metadata__\":{\"k\":\"\\udc00\"}}", "lone low surrogate"},
      {"{\"__metadata__\":{\"k\":\"\\u12g4\"}}", "bad hex digit"},
      {"{\"__metadata__\":{\"k\":\"a\nb\"}}", "control character inside a string"},
      {"{\"__metadata__\":{\"k\":\"\xc3\x28\"}}", "invalid UTF-8 in string"},
      {"{\"__metadata__\":{\"k\":\"abc}}", "unterminated string"},
      {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", "duplicate key 'k' in object"},
      {"{\"__metadata__\":[1,2]}", "\"__metadata__\" is not an object of strings"},
      {"{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", "metadata contains a NUL character"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", "number with a leading zero"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "must be non-negative integers"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4e0]}}", "must be non-negative integers"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", "must be an array [begin, end]"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", "unknown field 'x'"},
      {"{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", "\"dtype\" is not a string"},
      {"{\"a\":[1]}", "entry is not a JSON object"},
      {"{\"a\":tru}", "invalid literal"},
      {"{\"a\":-}", "invalid number"},
      {"{\"a\":1.}", "no digits after '.'"},
      {"{\"a\":1e+}", "bad exponent"},
      {"{\"a\":@}", "unexpected character '@'"},
      {"{\"a\":[1 2]}", "expected ',' or ']' in array"},
      {"{\"a\":{} \"b\":{}}", "expected ',' or '}' in object"},
      {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "tensor name contains a NUL"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}",
       "must be non-negative integers"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    memset(&e, 0, sizeof e);
    int rc = parse_header(bad[i].json, 4, &e);
    CHECKF(rc == -1, "case %zu accepted: %s", i, bad[i].json);
    CHECKF(strstr(e.msg, bad[i].want) != NULL, "case %zu: error '%s' does not contain '%s'", i, e.msg, bad[i].want);
  }
  /* Deep nesting exactly at the limit is fine; one more is not. */
  char deep[200];
  int lim = DMX_ST_MAX_DEPTH - 1; /* root object is depth 0, metadata value at depth 1 */
  size_t n = 0;
  n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"x\":");
  for (int i = 0; i < lim; i++) deep[n++] = '[';
  for (int i = 0; i < lim; i++) deep[n++] = ']';
  deep[n++] = '}';
  deep[n] = 0;
  CHECK(parse_header(deep, 0, &e) == -1);
  CHECKF(strstr(e.msg, "entry is not a JSON object") != NULL, "at the limit: %s", e.msg);
  n = 0;
  n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"x\":");
  for (int i = 0; i < lim + 1; i++) deep[n++] = '[';
  for (int i = 0; i < lim + 1; i++) deep[n++] = ']';
  deep[n++] = '}';
  deep[n] = 0;
  CHECK(parse_header(deep, 0, &e) == -1);
  check_err_contains(&e, "nesting deeper than");
  th_end();
}

/* Every prefix and many single-byte corruptions of a valid file: each either parses or fails with a
 * message; none may crash (run under -fsanitize=address,undefined with DATAMUX_SANITIZE=ON). */
static void test_mutations(void) {
  th_begin("truncated and byte-flipped copies of a valid file never crash");
  size_t len;
  dmx_error e = {{0}};
  char *orig = dmx_read_file(FIX "tiny.safetensors", &len, &e);
  CHECKF(orig != NULL, "%s", e.msg);
  if (!orig) {
    th_end();
    return;
  }
  size_t accepted = 0, rejected = 0;
  for (size_t n = 0; n < len; n++) {
    dmx_st_file *f = dmx_st_parse(orig, n, "cut", &e);
    if (f)
      accepted++;
    else
      rejected++;
    dmx_st_free(f);
  }
  CHECKF(accepted == 0, "%zu truncated copies were accepted", accepted);
  unsigned char *buf = malloc(len);
  CHECK(buf != NULL);
  static const unsigned char flips[] = {0xFF, 0x01, 0x20, 0x80};
  for (size_t i = 0; buf && i < len; i++) {
    for (size_t m = 0; m < sizeof flips; m++) {
      memcpy(buf, orig, len);
      buf[i] ^= flips[m];
      e.msg[0] = 0;
      dmx_st_file *f = dmx_st_parse(buf, len, "flip", &e);
      if (f) {
        /* whatever was accepted must be self-consistent */
        for (size_t t = 0; t < dmx_st_count(f); t++) {
          const dmx_st_tensor *ti = dmx_st_at(f, t);
          CHECK(ti->nbytes == ti->numel * dmx_st_dtype_size(ti->dtype));
          CHECK(dmx_st_find(f, ti->name) == ti);
        }
        accepted++;
      } else {
        CHECK(e.msg[0] != 0);
        rejected++;
      }
      dmx_st_free(f);
    }
  }
  CHECK(rejected > 0 && accepted > 0); /* flips inside tensor data are harmless */
  free(buf);
  free(orig);
  th_end();
}

/* The oracle fixtures of tests/reference/datamux_reference.py follow the documented layout. */
static void test_oracle_fixtures(void) {
  th_begin("oracle fixtures parse and have the documented metadata and tensors");
  static const char *cases[] = {"gh_index_n4_sentence", "ro_mlp_n3_token", "baseline_n1", "bh_index_n2_token",
                                "gh_mlp_n2_sentence"};
  static const char *meta_keys[] = {"vocab_size",
                                    "hidden_size",
                                    "num_layers",
                                    "num_heads",
                                    "intermediate_size",
                                    "max_position_embeddings",
                                    "num_instances",
                                    "muxing",
                                    "demuxing",
                                    "task_type",
                                    "num_labels",
                                    "setting",
                                    "task_loss_coeff",
                                    "retrieval_loss_coeff",
                                    "learning_rate",
                                    "max_grad_norm",
                                    "steps",
                                    "groups",
                                    "seq_len",
                                    "learn_muxing"};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/oracle/%s.safetensors", cases[c]);
    dmx_error e = {{0}};
    dmx_st_file *f = dmx_st_load(path, &e);
    CHECKF(f != NULL, "%s", e.msg);
    if (!f) continue;
    for (size_t k = 0; k < sizeof meta_keys / sizeof meta_keys[0]; k++)
      CHECKF(dmx_st_meta(f, meta_keys[k]) != NULL, "%s: metadata '%s' missing", cases[c], meta_keys[k]);
    int64_t V = atoll(dmx_st_meta(f, "vocab_size")), d = atoll(dmx_st_meta(f, "hidden_size"));
    int64_t N = atoll(dmx_st_meta(f, "num_instances")), B = atoll(dmx_st_meta(f, "groups"));
    int64_t L = atoll(dmx_st_meta(f, "seq_len"));
    bool index = strcmp(dmx_st_meta(f, "demuxing"), "index") == 0;
    bool baseline = strcmp(dmx_st_meta(f, "setting"), "baseline") == 0;
    int64_t Lp = index ? L + N + 1 : L;
    int64_t we[2] = {V, d}, idsh[2] = {B * N, Lp}, one[1] = {1}, steps[1] = {10};
    CHECKF(dmx_st_expect_shape(f, "roberta.embeddings.word_embeddings.weight", 2, we, &e) == 0, "%s", e.msg);
    CHECKF(dmx_st_expect_shape(f, "input.ids", 2, idsh, &e) == 0, "%s", e.msg);
    CHECKF(dmx_st_expect_shape(f, "expect.loss", 1, one, &e) == 0, "%s", e.msg);
    CHECKF(dmx_st_expect_shape(f, "expect.step_losses", 1, steps, &e) == 0, "%s", e.msg);
    CHECK(dmx_st_find(f, "input.ids")->dtype == DMX_ST_I32);
    if (!baseline) {
      int64_t rs[2] = {B, Lp};
      CHECKF(dmx_st_expect_shape(f, "input.retrieval_targets", 2, rs, &e) == 0, "%s", e.msg);
      CHECK(dmx_st_find(f, "instance_embedding") != NULL);
      /* tied biases are stored under both names, the gradient once */
      CHECK(dmx_st_find(f, "retrieval_head.bias") && dmx_st_find(f, "retrieval_head.decoder.bias"));
      CHECK(dmx_st_find(f, "grad.retrieval_head.decoder.bias") && !dmx_st_find(f, "grad.retrieval_head.bias"));
      bool learn = strcmp(dmx_st_meta(f, "learn_muxing"), "1") == 0;
      CHECK((dmx_st_find(f, "grad.instance_embedding") != NULL) == learn);
    } else {
      CHECK(dmx_st_find(f, "classifier.out_proj.weight") && !dmx_st_find(f, "instance_embedding"));
    }
    float loss[10];
    CHECK(dmx_st_get_f32(f, "expect.step_losses", loss, 10, &e) == 0 && loss[9] < loss[0]);
    dmx_st_free(f);
  }
  th_end();
}

int main(void) {
  test_python_file();
  test_round_trip();
  test_hostile_files();
  test_json_corners();
  test_mutations();
  test_oracle_fixtures();
  return th_finish();
}
