/* Byte-level BPE tokenizer (see data/tokenizer.h for the exact behaviour it reproduces).
 *
 * Everything works on raw bytes: vocab.json and merges.txt spell tokens in GPT-2's byte-to-unicode
 * alphabet, and loading maps them back to the bytes they stand for, so BPE starts from one symbol
 * per input byte and never needs the alphabet again. */
#include "data/tokenizer.h"

#include "host/base/json.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "data/unicode_tables.h"

#define MAX_TEXT_BYTES ((size_t)1 << 30)
#define CACHE_MAX_PIECE 64          /* longer pieces are rare and not worth remembering */
#define CACHE_MAX_ENTRIES (1 << 20) /* the cache is emptied when it holds this many pieces */
#define CACHE_MAX_IDS (1 << 24)     /* ... or this many ids (64 MiB) */

/* ---------------------------------------------------------------- growable arrays */

typedef struct {
  int32_t *v;
  size_t n, cap;
} i32_vec;

static void i32_reserve(i32_vec *a, size_t need) {
  if (need <= a->cap) return;
  size_t cap = a->cap ? a->cap : 64;
  while (cap < need) cap *= 2;
  a->v = dmx_realloc(a->v, cap * sizeof *a->v);
  a->cap = cap;
}

static void i32_push(i32_vec *a, int32_t x) {
  i32_reserve(a, a->n + 1);
  a->v[a->n++] = x;
}

typedef struct {
  char *v;
  size_t n, cap;
} byte_vec;

static void bytes_reserve(byte_vec *a, size_t need) {
  if (need <= a->cap) return;
  size_t cap = a->cap ? a->cap : 256;
  while (cap < need) cap *= 2;
  a->v = dmx_realloc(a->v, cap);
  a->cap = cap;
}

static void bytes_append(byte_vec *a, const void *p, size_t len) {
  if (len == 0) return; /* an empty token ("" in vocab.json): NULL + 0 is undefined (fuzz_tokenizer) */
  bytes_reserve(a, a->n + len);
  memcpy(a->v + a->n, p, len);
  a->n += len;
}

/* ---------------------------------------------------------------- hashing */

static uint64_t hash_bytes(const void *p, size_t len) {
  const unsigned char *s = p;
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ s[i]) * 1099511628211ull;
  return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

/* Open-addressing table from byte strings to int32 values. Keys are copied into `keys`. */
typedef struct {
  uint32_t *slot; /* entry index + 1, 0 = empty */
  size_t cap;     /* power of two */
  size_t *key_off;
  uint32_t *key_len;
  int32_t *val;
  size_t n, entries_cap;
  byte_vec keys;
} str_map;

static void str_map_clear(str_map *m) {
  free(m->slot);
  free(m->key_off);
  free(m->key_len);
  free(m->val);
  free(m->keys.v);
  memset(m, 0, sizeof *m);
}

static size_t str_map_find_slot(const str_map *m, const void *key, size_t len) {
  size_t mask = m->cap - 1, i = (size_t)hash_bytes(key, len) & mask;
  for (;; i = (i + 1) & mask) {
    uint32_t e = m->slot[i];
    if (!e) return i;
    e--;
    if (m->key_len[e] == len && memcmp(m->keys.v + m->key_off[e], key, len) == 0) return i;
  }
}

static void str_map_grow(str_map *m) {
  size_t cap = m->cap ? m->cap * 2 : 1024;
  free(m->slot);
  m->slot = dmx_calloc(cap, sizeof *m->slot);
  m->cap = cap;
  for (size_t e = 0; e < m->n; e++) {
    size_t i = str_map_find_slot(m, m->keys.v + m->key_off[e], m->key_len[e]);
    m->slot[i] = (uint32_t)e + 1;
  }
}

/* The value stored for key, or -1. */
static int32_t str_map_get(const str_map *m, const void *key, size_t len) {
  if (!m->cap) return -1;
  uint32_t e = m->slot[str_map_find_slot(m, key, len)];
  return e ? m->val[e - 1] : -1;
}

/* Inserts key -> val; returns false (and changes nothing) when the key is already present. */
static bool str_map_put(str_map *m, const void *key, size_t len, int32_t val) {
  if (2 * (m->n + 1) > m->cap) str_map_grow(m);
  size_t i = str_map_find_slot(m, key, len);
  if (m->slot[i]) return false;
  if (m->n == m->entries_cap) {
    m->entries_cap = m->entries_cap ? m->entries_cap * 2 : 1024;
    m->key_off = dmx_realloc(m->key_off, m->entries_cap * sizeof *m->key_off);
    m->key_len = dmx_realloc(m->key_len, m->entries_cap * sizeof *m->key_len);
    m->val = dmx_realloc(m->val, m->entries_cap * sizeof *m->val);
  }
  m->key_off[m->n] = m->keys.n;
  m->key_len[m->n] = (uint32_t)len;
  m->val[m->n] = val;
  bytes_append(&m->keys, key, len);
  m->slot[i] = (uint32_t)++m->n;
  return true;
}

/* Merge table: (left id, right id) -> (rank, merged id). */
typedef struct {
  uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
  int32_t rank, merged;
} merge_slot;

typedef struct {
  merge_slot *slot;
  size_t cap, n;
} merge_map;

static uint64_t merge_key(int32_t left, int32_t right) {
  return ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
}

static merge_slot *merge_find(const merge_map *m, uint64_t key) {
  size_t mask = m->cap - 1, i = (size_t)hash_u64(key) & mask;
  while (m->slot[i].key && m->slot[i].key != key) i = (i + 1) & mask;
  return &m->slot[i];
}

static void merge_grow(merge_map *m) {
  merge_map bigger = {dmx_calloc(m->cap ? m->cap * 2 : 1 << 16, sizeof(merge_slot)), m->cap ? m->cap * 2 : 1 << 16,
                      m->n};
  for (size_t i = 0; i < m->cap; i++)
    if (m->slot[i].key) *merge_find(&bigger, m->slot[i].key) = m->slot[i];
  free(m->slot);
  *m = bigger;
}

static const merge_slot *merge_get(const merge_map *m, int32_t left, int32_t right) {
  const merge_slot *s = merge_find(m, merge_key(left, right));
  return s->key ? s : NULL;
}

/* ---------------------------------------------------------------- the tokenizer */

typedef struct {
  const char *text;
  int32_t id;
  bool lstrip; /* swallow whitespace on the left, like HF AddedToken(lstrip=True) */
} special_token;

struct dmx_tokenizer {
  str_map vocab;      /* raw bytes -> id */
  size_t *id_key_off; /* id -> its entry in vocab.keys (SIZE_MAX when the id is unused) */
  uint32_t *id_key_len;
  int vocab_size;       /* largest id + 1 */
  int32_t byte_id[256]; /* id of each single-byte token */
  merge_map merges;
  special_token specials[5];

  /* piece -> ids cache: value is an offset into cache_ids, whose first element is the count */
  str_map cache;
  i32_vec cache_ids;

  /* scratch, reused between calls */
  byte_vec clean;   /* input after invalid UTF-8 was replaced */
  byte_vec segment; /* one segment with its optional prefix space */
  i32_vec sym, prev, next;
  struct heap_entry *heap;
  size_t heap_cap;
  i32_vec ids_a, ids_b, words_of;
};

/* ---------------------------------------------------------------- GPT-2 byte <-> unicode */

/* GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes are
 * given the code points 256, 257, ... in byte order. Returns the code point for byte b. */
static uint32_t byte_to_codepoint(int b) {
  static uint32_t table[256];
  static bool ready;
  if (!ready) {
    uint32_t extra = 256;
    for (int i = 0; i < 256; i++) {
      bool printable = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
      table[i] = printable ? (uint32_t)i : extra++;
    }
    ready = true;
  }
  return table[b];
}

/* Inverse of byte_to_codepoint: the byte, or -1 when cp is outside the alphabet. */
static int codepoint_to_byte(uint32_t cp) {
  static int16_t table[324];
  static bool ready;
  if (!ready) {
    for (int i = 0; i < 324; i++) table[i] = -1;
    for (int b = 0; b < 256; b++) table[byte_to_codepoint(b)] = (int16_t)b;
    ready = true;
  }
  return cp < 324 ? table[cp] : -1;
}

/* ---------------------------------------------------------------- UTF-8 */

int dmx_unicode_class(uint32_t cp) {
  if (cp < 128) return dmx_ascii_class[cp];
  int lo = 0, hi = dmx_unicode_range_count - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2;
    if (cp < dmx_unicode_ranges[mid].lo)
      hi = mid - 1;
    else if (cp > dmx_unicode_ranges[mid].hi)
      lo = mid + 1;
    else
      return dmx_unicode_ranges[mid].cls;
  }
  return DMX_UCLASS_OTHER;
}

/* Length of the well-formed UTF-8 sequence at s[0..n), or 0 when it is ill-formed; then *bad gets
 * the length of its maximal subpart (the bytes one U+FFFD replaces, Unicode 3.9 / Python). */
static size_t utf8_sequence(const unsigned char *s, size_t n, size_t *bad) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  if (c >= 0xC2 && c <= 0xDF)
    need = 1;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F; /* no surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
  } else {
    *bad = 1;
    return 0;
  }
  for (size_t k = 1; k <= need; k++) {
    unsigned char lo_k = k == 1 ? lo : 0x80, hi_k = k == 1 ? hi : 0xBF;
    if (k >= n || s[k] < lo_k || s[k] > hi_k) {
      *bad = k;
      return 0;
    }
  }
  return need + 1;
}

/* Decodes the well-formed sequence at s (callers only pass cleaned text); *len gets its length. */
static uint32_t utf8_decode(const unsigned char *s, size_t *len) {
  unsigned char c = s[0];
  if (c < 0x80) {
    *len = 1;
    return c;
  }
  if (c < 0xE0) {
    *len = 2;
    return (uint32_t)(c & 0x1F) << 6 | (s[1] & 0x3F);
  }
  if (c < 0xF0) {
    *len = 3;
    return (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
  }
  *len = 4;
  return (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
}

/* Returns text itself when it is well-formed UTF-8, else a copy in tok->clean with each maximal
 * ill-formed subpart replaced by U+FFFD. *out_len gets the length of what is returned. */
static const char *clean_utf8(dmx_tokenizer *tok, const char *text, size_t len, size_t *out_len) {
  const unsigned char *s = (const unsigned char *)text;
  size_t i = 0, bad = 0, seq;
  while (i < len && (seq = utf8_sequence(s + i, len - i, &bad)) != 0) i += seq;
  *out_len = len;
  if (i == len) return text;
  tok->clean.n = 0;
  bytes_append(&tok->clean, text, i);
  while (i < len) {
    seq = utf8_sequence(s + i, len - i, &bad);
    if (seq) {
      bytes_append(&tok->clean, s + i, seq);
      i += seq;
    } else {
      bytes_append(&tok->clean, "\xEF\xBF\xBD", 3);
      i += bad;
    }
  }
  *out_len = tok->clean.n;
  return tok->clean.v;
}

/* ---------------------------------------------------------------- loading */

/* Maps a token spelled in the byte-level alphabet (UTF-8) to the raw bytes it stands for. */
static int alphabet_to_bytes(const char *spelled, size_t len, byte_vec *out) {
  out->n = 0;
  const unsigned char *s = (const unsigned char *)spelled;
  for (size_t i = 0; i < len;) {
    size_t bad, seq = utf8_sequence(s + i, len - i, &bad);
    if (!seq) return -1;
    int b = codepoint_to_byte(utf8_decode(s + i, &seq));
    if (b < 0) return -1;
    char ch = (char)b;
    bytes_append(out, &ch, 1);
    i += seq;
  }
  return 0;
}

/* vocab.json: one JSON object of token (spelled in GPT-2's byte-level alphabet) -> integer id. */
static int parse_vocab(dmx_tokenizer *tok, const char *path, const char *text, size_t len, dmx_error *err) {
  dmx_json root;
  dmx_json_opts o = {.what = path,
                     .kind = "vocab.json (one JSON object of token -> id)",
                     .top_key = "token",
                     .max_depth = 1,
                     .require_object = true};
  if (dmx_json_parse(text, len, &o, &root, err)) return -1;
  byte_vec raw = {0};
  int rc = 0;
  for (size_t k = 0; k < root.n && rc == 0; k++) {
    const char *spelled = root.keys[k];
    size_t n = root.keylen[k];
    int line = 0; /* worked out only for a message: counting lines per token would be quadratic */
    long long id;
    bool id_ok = dmx_json_integer(&root.kids[k], 0, (1LL << 24) - 1, &id);
    bool spelled_ok = id_ok && alphabet_to_bytes(spelled, n, &raw) == 0;
    bool unique = spelled_ok && str_map_get(&tok->vocab, raw.v, raw.n) < 0;
    if (!unique) line = dmx_json_line(text, root.keypos[k]);
    if (!id_ok)
      rc = dmx_fail(err, "%s:%d: token \"%.*s\": the id must be an integer in [0, %ld)", path, line, (int)n, spelled,
                    1L << 24);
    else if (!spelled_ok)
      rc = dmx_fail(err, "%s:%d: token \"%.*s\" has a character outside GPT-2's byte-level alphabet", path, line,
                    (int)n, spelled);
    else if (!unique || !str_map_put(&tok->vocab, raw.v, raw.n, (int32_t)id))
      rc = dmx_fail(err, "%s:%d: token \"%.*s\" appears twice", path, line, (int)n, spelled);
    else if (id >= tok->vocab_size)
      tok->vocab_size = (int)id + 1;
  }
  if (rc == 0 && tok->vocab.n == 0) rc = dmx_fail(err, "%s: the vocabulary is empty", path);
  free(raw.v);
  dmx_json_free(&root);
  return rc;
}

/* Fills the id -> bytes index and the single-byte ids, and checks the special tokens exist. */
static int index_vocab(dmx_tokenizer *tok, const char *path, dmx_error *err) {
  tok->id_key_off = dmx_malloc((size_t)tok->vocab_size * sizeof *tok->id_key_off);
  tok->id_key_len = dmx_calloc((size_t)tok->vocab_size, sizeof *tok->id_key_len);
  for (int i = 0; i < tok->vocab_size; i++) tok->id_key_off[i] = SIZE_MAX;
  for (size_t e = 0; e < tok->vocab.n; e++) {
    int32_t id = tok->vocab.val[e];
    if (tok->id_key_off[id] != SIZE_MAX) return dmx_fail(err, "%s: id %d is given to two tokens", path, (int)id);
    tok->id_key_off[id] = tok->vocab.key_off[e];
    tok->id_key_len[id] = tok->vocab.key_len[e];
  }
  for (int b = 0; b < 256; b++) {
    char ch = (char)b;
    tok->byte_id[b] = str_map_get(&tok->vocab, &ch, 1);
    if (tok->byte_id[b] < 0)
      return dmx_fail(err, "%s: no token for the single byte 0x%02X (a byte-level vocabulary has all 256)", path, b);
  }
  /* The rest of DataMUX-CL relies on RoBERTa's ids (DMX_TOKEN_*), so they are checked here. */
  static const char *const names[5] = {"<s>", "<pad>", "</s>", "<unk>", "<mask>"};
  static const int32_t expected[5] = {DMX_TOKEN_BOS, DMX_TOKEN_PAD, DMX_TOKEN_EOS, DMX_TOKEN_UNK, DMX_TOKEN_MASK};
  for (int k = 0; k < 5; k++) {
    int32_t id = str_map_get(&tok->vocab, names[k], strlen(names[k]));
    if (id < 0) return dmx_fail(err, "%s: special token %s is missing (not a RoBERTa vocabulary?)", path, names[k]);
    if (id != expected[k])
      return dmx_fail(err, "%s: special token %s has id %d, RoBERTa's is %d", path, names[k], (int)id,
                      (int)expected[k]);
    tok->specials[k] = (special_token){names[k], id, k == 4};
  }
  return 0;
}

/* Looks up one side of a merge rule in the vocabulary. */
static int32_t merge_side_id(dmx_tokenizer *tok, const char *spelled, size_t len, byte_vec *raw) {
  if (alphabet_to_bytes(spelled, len, raw)) return -1;
  return str_map_get(&tok->vocab, raw->v, raw->n);
}

static int parse_merge_line(dmx_tokenizer *tok, const char *path, int line_no, const char *line, size_t len,
                            int32_t rank, byte_vec *raw, dmx_error *err) {
  const char *space = memchr(line, ' ', len);
  if (!space || space == line || space + 1 == line + len || memchr(space + 1, ' ', (size_t)(line + len - space - 1)))
    return dmx_fail(err, "%s:%d: expected two tokens separated by one space", path, line_no);
  size_t left_len = (size_t)(space - line), right_len = len - left_len - 1;
  int32_t left = merge_side_id(tok, line, left_len, raw);
  int32_t right = merge_side_id(tok, space + 1, right_len, raw);
  if (left < 0 || right < 0)
    return dmx_fail(err, "%s:%d: token \"%.*s\" is not in vocab.json", path, line_no,
                    left < 0 ? (int)left_len : (int)right_len, left < 0 ? line : space + 1);
  byte_vec both = {0};
  bytes_append(&both, tok->vocab.keys.v + tok->id_key_off[left], tok->id_key_len[left]);
  bytes_append(&both, tok->vocab.keys.v + tok->id_key_off[right], tok->id_key_len[right]);
  int32_t merged = str_map_get(&tok->vocab, both.v, both.n);
  free(both.v);
  if (merged < 0)
    return dmx_fail(err, "%s:%d: the merged token \"%.*s\" is not in vocab.json", path, line_no, (int)len, line);
  if (2 * (tok->merges.n + 1) > tok->merges.cap) merge_grow(&tok->merges);
  merge_slot *s = merge_find(&tok->merges, merge_key(left, right));
  if (s->key) return 0; /* a repeated rule keeps its first (lowest) rank, as HF does */
  *s = (merge_slot){merge_key(left, right), rank, merged};
  tok->merges.n++;
  return 0;
}

static int parse_merges(dmx_tokenizer *tok, const char *path, const char *text, size_t len, dmx_error *err) {
  byte_vec raw = {0};
  int32_t rank = 0;
  int line_no = 0, rc = 0;
  for (const char *p = text, *end = text + len; p < end && rc == 0;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *line_end = nl ? nl : end;
    size_t n = (size_t)(line_end - p);
    if (n && p[n - 1] == '\r') n--;
    line_no++;
    bool header = line_no == 1 && n >= 8 && memcmp(p, "#version", 8) == 0;
    if (!header && n) rc = parse_merge_line(tok, path, line_no, p, n, rank++, &raw, err);
    p = nl ? nl + 1 : end;
  }
  free(raw.v);
  return rc;
}

dmx_tokenizer *dmx_tokenizer_load(const char *dir, dmx_error *err) {
  char vocab_path[4096], merges_path[4096];
  if ((size_t)snprintf(vocab_path, sizeof vocab_path, "%s/vocab.json", dir) >= sizeof vocab_path ||
      (size_t)snprintf(merges_path, sizeof merges_path, "%s/merges.txt", dir) >= sizeof merges_path) {
    dmx_fail(err, "%s: tokenizer folder path is too long", dir);
    return NULL;
  }
  dmx_tokenizer *tok = dmx_calloc(1, sizeof *tok);
  size_t len;
  char *text = dmx_read_file_max(vocab_path, DMX_JSON_MAX_FILE, "vocab.json", &len, err);
  int rc = text ? parse_vocab(tok, vocab_path, text, len, err) : -1;
  free(text);
  if (rc == 0) rc = index_vocab(tok, vocab_path, err);
  if (rc == 0) {
    text = dmx_read_file_max(merges_path, DMX_JSON_MAX_FILE, "merges.txt", &len, err);
    rc = text ? parse_merges(tok, merges_path, text, len, err) : -1;
    free(text);
  }
  if (rc) {
    dmx_tokenizer_free(tok);
    return NULL;
  }
  return tok;
}

void dmx_tokenizer_free(dmx_tokenizer *tok) {
  if (!tok) return;
  str_map_clear(&tok->vocab);
  free(tok->id_key_off);
  free(tok->id_key_len);
  free(tok->merges.slot);
  str_map_clear(&tok->cache);
  free(tok->cache_ids.v);
  free(tok->clean.v);
  free(tok->segment.v);
  free(tok->sym.v);
  free(tok->prev.v);
  free(tok->next.v);
  free(tok->heap);
  free(tok->ids_a.v);
  free(tok->ids_b.v);
  free(tok->words_of.v);
  free(tok);
}

static bool has_vocab_json(const char *dir) {
  char path[4200];
  snprintf(path, sizeof path, "%s/vocab.json", dir);
  return dmx_is_file(path);
}

static int copy_dir(const char *dir, char *out, size_t cap, dmx_error *err) {
  if ((size_t)snprintf(out, cap, "%s", dir) >= cap) return dmx_fail(err, "%s: path too long", dir);
  return 0;
}

int dmx_tokenizer_resolve_dir(const char *arg, char *out, size_t cap, dmx_error *err) {
  const char *data = getenv("DATAMUX_DATA");
  bool have_data = data && *data;
  char under_data[4096];
  if (!arg) {
    if (!have_data)
      return dmx_fail(err,
                      "no tokenizer folder given and DATAMUX_DATA is unset (expected "
                      "$DATAMUX_DATA/tokenizers/roberta-base)");
    snprintf(under_data, sizeof under_data, "%s/tokenizers/roberta-base", data);
    if (!has_vocab_json(under_data)) return dmx_fail(err, "%s/vocab.json: no such file", under_data);
    return copy_dir(under_data, out, cap, err);
  }
  if (has_vocab_json(arg)) return copy_dir(arg, out, cap, err);
  if (arg[0] != '/' && have_data) {
    snprintf(under_data, sizeof under_data, "%s/%s", data, arg);
    if (has_vocab_json(under_data)) return copy_dir(under_data, out, cap, err);
    return dmx_fail(err, "tokenizer folder not found: neither %s/vocab.json nor %s/vocab.json exists", arg, under_data);
  }
  return dmx_fail(err, "%s/vocab.json: no such file", arg);
}

int dmx_tokenizer_vocab_size(const dmx_tokenizer *tok) { return tok->vocab_size; }

int32_t dmx_tokenizer_token_id(const dmx_tokenizer *tok, const char *bytes, size_t len) {
  return str_map_get(&tok->vocab, bytes, len);
}

const char *dmx_tokenizer_token_bytes(const dmx_tokenizer *tok, int32_t id, size_t *len) {
  if (id < 0 || id >= tok->vocab_size || tok->id_key_off[id] == SIZE_MAX) return NULL;
  *len = tok->id_key_len[id];
  return tok->vocab.keys.v + tok->id_key_off[id];
}

/* ---------------------------------------------------------------- BPE */

struct heap_entry {
  int32_t rank, pos;   /* ordered by rank, then position: HF merges lowest rank, leftmost first */
  int32_t left, right; /* the ids the pair had when queued; a changed pair makes the entry stale */
};

static bool heap_less(const struct heap_entry *a, const struct heap_entry *b) {
  return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(dmx_tokenizer *tok, size_t *n, struct heap_entry e) {
  if (*n == tok->heap_cap) {
    tok->heap_cap = tok->heap_cap ? tok->heap_cap * 2 : 256;
    tok->heap = dmx_realloc(tok->heap, tok->heap_cap * sizeof *tok->heap);
  }
  size_t i = (*n)++;
  while (i && heap_less(&e, &tok->heap[(i - 1) / 2])) {
    tok->heap[i] = tok->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  tok->heap[i] = e;
}

static struct heap_entry heap_pop(dmx_tokenizer *tok, size_t *n) {
  struct heap_entry top = tok->heap[0], last = tok->heap[--*n];
  size_t i = 0;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= *n) break;
    if (child + 1 < *n && heap_less(&tok->heap[child + 1], &tok->heap[child])) child++;
    if (!heap_less(&tok->heap[child], &last)) break;
    tok->heap[i] = tok->heap[child];
    i = child;
  }
  if (*n) tok->heap[i] = last;
  return top;
}

static void queue_pair(dmx_tokenizer *tok, size_t *heap_n, int32_t pos) {
  if (pos < 0) return;
  int32_t right = tok->next.v[pos];
  if (right < 0) return;
  const merge_slot *m = merge_get(&tok->merges, tok->sym.v[pos], tok->sym.v[right]);
  if (m) heap_push(tok, heap_n, (struct heap_entry){m->rank, pos, tok->sym.v[pos], tok->sym.v[right]});
}

/* BPE-merges one pre-tokenized piece and appends its ids to out. */
static void bpe_piece(dmx_tokenizer *tok, const unsigned char *piece, size_t n, i32_vec *out) {
  tok->sym.n = tok->prev.n = tok->next.n = 0;
  i32_reserve(&tok->sym, n);
  i32_reserve(&tok->prev, n);
  i32_reserve(&tok->next, n);
  int32_t *sym = tok->sym.v, *prev = tok->prev.v, *next = tok->next.v;
  for (size_t i = 0; i < n; i++) {
    sym[i] = tok->byte_id[piece[i]];
    prev[i] = (int32_t)i - 1;
    next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
  }
  size_t heap_n = 0;
  for (size_t i = 0; i + 1 < n; i++) queue_pair(tok, &heap_n, (int32_t)i);
  while (heap_n) {
    struct heap_entry e = heap_pop(tok, &heap_n);
    int32_t right = next[e.pos];
    if (sym[e.pos] != e.left || right < 0 || sym[right] != e.right) continue; /* stale */
    sym[e.pos] = merge_get(&tok->merges, e.left, e.right)->merged;
    sym[right] = -1; /* dead */
    next[e.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = e.pos;
    if (prev[e.pos] >= 0) queue_pair(tok, &heap_n, prev[e.pos]);
    queue_pair(tok, &heap_n, e.pos);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) i32_push(out, sym[i]);
}

/* Ids of one piece, through the cache. */
static void encode_piece(dmx_tokenizer *tok, const unsigned char *piece, size_t n, i32_vec *out) {
  if (n > CACHE_MAX_PIECE) {
    bpe_piece(tok, piece, n, out);
    return;
  }
  int32_t at = str_map_get(&tok->cache, piece, n);
  if (at < 0) {
    if (tok->cache.n >= CACHE_MAX_ENTRIES || tok->cache_ids.n >= CACHE_MAX_IDS) {
      str_map_clear(&tok->cache);
      tok->cache_ids.n = 0;
    }
    size_t start = out->n;
    bpe_piece(tok, piece, n, out);
    at = (int32_t)tok->cache_ids.n;
    i32_push(&tok->cache_ids, (int32_t)(out->n - start));
    for (size_t k = start; k < out->n; k++) i32_push(&tok->cache_ids, out->v[k]);
    str_map_put(&tok->cache, piece, n, at);
    return;
  }
  int32_t count = tok->cache_ids.v[at];
  if (count <= 0) return; /* a piece of no ids: out may still be unallocated */
  i32_reserve(out, out->n + (size_t)count);
  memcpy(out->v + out->n, tok->cache_ids.v + at + 1, (size_t)count * sizeof(int32_t));
  out->n += (size_t)count;
}

/* ---------------------------------------------------------------- pre-tokenization */

static int class_at(const unsigned char *s, size_t i, size_t *len) {
  return dmx_unicode_class(utf8_decode(s + i, len));
}

/* End of the run of code points of class cls starting at i. */
static size_t run_end(const unsigned char *s, size_t n, size_t i, int cls) {
  size_t len;
  while (i < n && class_at(s, i, &len) == cls) i += len;
  return i;
}

/* Length of a contraction ('s 't 're 've 'm 'll 'd, lower case only) at s[i], or 0. */
static size_t contraction(const unsigned char *s, size_t n, size_t i) {
  if (s[i] != '\'' || i + 1 >= n) return 0;
  unsigned char a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

/* End of the regex match starting at i (the alternatives are tried in the regex's order). */
static size_t piece_end(const unsigned char *s, size_t n, size_t i) {
  size_t c = contraction(s, n, i);
  if (c) return i + c;
  size_t len;
  int cls = class_at(s, i, &len);
  if (s[i] == ' ' && i + 1 < n) { /* ' ?X+' with the optional space present */
    size_t next_len;
    int next_cls = class_at(s, i + 1, &next_len);
    if (next_cls != DMX_UCLASS_SPACE) return run_end(s, n, i + 1, next_cls);
  }
  if (cls != DMX_UCLASS_SPACE) return run_end(s, n, i, cls);
  /* \s+(?!\S) keeps the last whitespace character for the next word unless the run ends the text;
   * a single whitespace character before a word falls through to plain \s+. */
  size_t end = i, last = i;
  while (end < n && class_at(s, end, &len) == DMX_UCLASS_SPACE) {
    last = end;
    end += len;
  }
  if (end == n || last == i) return end;
  return last;
}

/* Pre-tokenizes and BPE-encodes one segment (text between special tokens). */
static void encode_segment(dmx_tokenizer *tok, const char *text, size_t n, bool add_prefix_space, i32_vec *out) {
  if (n == 0) return;
  if (add_prefix_space && text[0] != ' ') {
    tok->segment.n = 0;
    bytes_append(&tok->segment, " ", 1);
    bytes_append(&tok->segment, text, n);
    text = tok->segment.v;
    n = tok->segment.n;
  }
  const unsigned char *s = (const unsigned char *)text;
  for (size_t i = 0; i < n;) {
    size_t end = piece_end(s, n, i);
    encode_piece(tok, s + i, end - i, out);
    i = end;
  }
}

/* Finds the leftmost special token in s[from..n); returns its index or -1; *at gets its offset. */
static int find_special(const dmx_tokenizer *tok, const char *s, size_t n, size_t from, size_t *at) {
  for (const char *p = s + from; (p = memchr(p, '<', (size_t)(s + n - p))) != NULL; p++) {
    for (int k = 0; k < 5; k++) {
      size_t len = strlen(tok->specials[k].text);
      if ((size_t)(s + n - p) >= len && memcmp(p, tok->specials[k].text, len) == 0) {
        *at = (size_t)(p - s);
        return k;
      }
    }
  }
  return -1;
}

/* Start of the whitespace that ends s[from..end) (valid UTF-8), for an lstrip special token. */
static size_t strip_left(const char *s, size_t from, size_t end) {
  const unsigned char *u = (const unsigned char *)s;
  while (end > from) {
    size_t start = end - 1, len;
    while (start > from && (u[start] & 0xC0) == 0x80) start--;
    if (dmx_unicode_class(utf8_decode(u + start, &len)) != DMX_UCLASS_SPACE) break;
    end = start;
  }
  return end;
}

/* Tokenizes cleaned (valid UTF-8) text: specials first, then each segment between them. */
static void encode_clean(dmx_tokenizer *tok, const char *s, size_t n, bool add_prefix_space, i32_vec *out) {
  size_t from = 0, at;
  int k;
  while ((k = find_special(tok, s, n, from, &at)) >= 0) {
    size_t seg_end = tok->specials[k].lstrip ? strip_left(s, from, at) : at;
    encode_segment(tok, s + from, seg_end - from, add_prefix_space, out);
    i32_push(out, tok->specials[k].id);
    from = at + strlen(tok->specials[k].text);
  }
  encode_segment(tok, s + from, n - from, add_prefix_space, out);
}

static int encode_text(dmx_tokenizer *tok, const char *text, size_t len, bool add_prefix_space, i32_vec *out,
                       dmx_error *err) {
  if (len > MAX_TEXT_BYTES) return dmx_fail(err, "text of %zu bytes is too long to tokenize (limit 1 GiB)", len);
  size_t n;
  const char *s = clean_utf8(tok, text, len, &n);
  encode_clean(tok, s, n, add_prefix_space, out);
  return 0;
}

/* Copies ids to out (at most cap) and returns the count, snprintf-style. */
static int copy_out(const i32_vec *ids, int32_t *out, int cap) {
  size_t n = ids->n < (size_t)(cap > 0 ? cap : 0) ? ids->n : (size_t)(cap > 0 ? cap : 0);
  if (n) memcpy(out, ids->v, n * sizeof *out);
  return ids->n > INT_MAX ? INT_MAX : (int)ids->n;
}

int dmx_tokenize(dmx_tokenizer *tok, const char *text, size_t len, int add_prefix_space, int32_t *out, int cap,
                 dmx_error *err) {
  tok->ids_a.n = 0;
  if (encode_text(tok, text, len, add_prefix_space != 0, &tok->ids_a, err)) return -1;
  return copy_out(&tok->ids_a, out, cap);
}

/* Tokenizes words into tok->ids_a with their word indices in tok->words_of. */
static int encode_words(dmx_tokenizer *tok, const char *const *words, const size_t *lens, int n_words, dmx_error *err) {
  tok->ids_a.n = tok->words_of.n = 0;
  for (int w = 0; w < n_words; w++) {
    size_t len = lens ? lens[w] : strlen(words[w]);
    if (encode_text(tok, words[w], len, true, &tok->ids_a, err)) return -1;
    while (tok->words_of.n < tok->ids_a.n) i32_push(&tok->words_of, w);
  }
  return 0;
}

int dmx_tokenize_words(dmx_tokenizer *tok, const char *const *words, const size_t *lens, int n_words, int32_t *out,
                       int32_t *word_of, int cap, dmx_error *err) {
  if (encode_words(tok, words, lens, n_words, err)) return -1;
  if (word_of) copy_out(&tok->words_of, word_of, cap);
  return copy_out(&tok->ids_a, out, cap);
}

/* ---------------------------------------------------------------- model inputs */

static int check_lengths(int max_length, int specials, int cap, dmx_error *err) {
  if (max_length > 0 && max_length < specials)
    return dmx_fail(err, "max_length %d leaves no room for the %d special tokens", max_length, specials);
  if (max_length > 0 && cap < max_length)
    return dmx_fail(err, "output buffer of %d ids is shorter than max_length %d", cap, max_length);
  return 0;
}

/* Writes x at out[*n] when there is room and counts it either way. */
static void put(int32_t *out, int32_t *word_of, int cap, size_t *n, int32_t x, int32_t word) {
  if (*n < (size_t)cap) {
    out[*n] = x;
    if (word_of) word_of[*n] = word;
  }
  (*n)++;
}

/* Assembles <s> A </s> [</s> B </s>] from ids_a[0..na) (and ids_b[0..nb) when pair), pads to
 * max_length, and returns the unpadded length. */
static int assemble(dmx_tokenizer *tok, size_t na, size_t nb, bool pair, const int32_t *words_a, int max_length,
                    int32_t *out, int32_t *word_of, int cap) {
  size_t n = 0;
  put(out, word_of, cap, &n, tok->specials[0].id, -1);
  for (size_t k = 0; k < na; k++) put(out, word_of, cap, &n, tok->ids_a.v[k], words_a ? words_a[k] : -1);
  put(out, word_of, cap, &n, tok->specials[2].id, -1);
  if (pair) {
    put(out, word_of, cap, &n, tok->specials[2].id, -1);
    for (size_t k = 0; k < nb; k++) put(out, word_of, cap, &n, tok->ids_b.v[k], -1);
    put(out, word_of, cap, &n, tok->specials[2].id, -1);
  }
  int real = n > INT_MAX ? INT_MAX : (int)n;
  for (size_t k = n; (int)k < max_length; k++) put(out, word_of, cap, &n, tok->specials[1].id, -1);
  return real;
}

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

int dmx_encode_single(dmx_tokenizer *tok, const char *a, size_t a_len, int max_length, int32_t *out, int cap,
                      dmx_error *err) {
  if (check_lengths(max_length, 2, cap, err)) return -1;
  tok->ids_a.n = 0;
  if (encode_text(tok, a, a_len, false, &tok->ids_a, err)) return -1;
  size_t na = max_length > 0 ? min_size(tok->ids_a.n, (size_t)max_length - 2) : tok->ids_a.n;
  return assemble(tok, na, 0, false, NULL, max_length, out, NULL, cap);
}

/* tokenizers' LongestFirst: with n1 the shorter and room = max_length - 4, the shorter keeps its
 * length when the longer can take the cut alone, else each gets half and the longer the odd one. */
static void truncate_longest_first(size_t *na, size_t *nb, size_t room) {
  if (*na + *nb <= room) return;
  bool swap = *na > *nb;
  size_t n1 = swap ? *nb : *na, n2;
  n2 = n1 > room ? n1 : (n1 > room - n1 ? n1 : room - n1);
  if (n1 + n2 > room) {
    n1 = room / 2;
    n2 = n1 + room % 2;
  }
  *na = swap ? n2 : n1;
  *nb = swap ? n1 : n2;
}

int dmx_encode_pair(dmx_tokenizer *tok, const char *a, size_t a_len, const char *b, size_t b_len, int max_length,
                    int32_t *out, int cap, dmx_error *err) {
  if (check_lengths(max_length, 4, cap, err)) return -1;
  tok->ids_a.n = tok->ids_b.n = 0;
  if (encode_text(tok, a, a_len, false, &tok->ids_a, err) || encode_text(tok, b, b_len, false, &tok->ids_b, err))
    return -1;
  size_t na = tok->ids_a.n, nb = tok->ids_b.n;
  if (max_length > 0) truncate_longest_first(&na, &nb, (size_t)max_length - 4);
  return assemble(tok, na, nb, true, NULL, max_length, out, NULL, cap);
}

int dmx_encode_words(dmx_tokenizer *tok, const char *const *words, const size_t *lens, int n_words, int max_length,
                     int32_t *out, int32_t *word_of, int cap, dmx_error *err) {
  if (check_lengths(max_length, 2, cap, err)) return -1;
  if (encode_words(tok, words, lens, n_words, err)) return -1;
  size_t na = max_length > 0 ? min_size(tok->ids_a.n, (size_t)max_length - 2) : tok->ids_a.n;
  return assemble(tok, na, 0, false, tok->words_of.v, max_length, out, word_of, cap);
}
