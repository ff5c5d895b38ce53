/* Zip reader for torch.save archives; see zip_reader.h for what is accepted. */
#include "host/formats/zip_reader.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u

typedef struct {
  char *name;
  uint64_t local_off; /* offset of the local header */
  uint64_t size;
  uint32_t crc;
} entry;

struct dmx_zip {
  const unsigned char *buf;
  size_t len;
  char *what;
  entry *e;
  size_t n;
  entry **sorted; /* by name, for lookups */
};

static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const unsigned char *p) { return rd16(p) | rd16(p + 2) << 16; }
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* Whether [off, off + n) lies inside a buffer of len bytes, without overflow. */
static bool fits(uint64_t off, uint64_t n, size_t len) { return off <= len && n <= len - off; }

uint32_t dmx_crc32(uint32_t crc, const void *data, size_t n) {
  static uint32_t table[256];
  static bool ready;
  if (!ready) { /* computing the table twice from two threads writes the same values */
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    ready = true;
  }
  const unsigned char *p = data;
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void dmx_zip_free(dmx_zip *z) {
  if (!z) return;
  for (size_t i = 0; i < z->n; i++) free(z->e[i].name);
  free(z->e);
  free(z->sorted);
  free(z->what);
  free(z);
}

static dmx_zip *fail_free(dmx_zip *z) {
  dmx_zip_free(z);
  return NULL;
}

/* The end-of-central-directory record: the last signature match in the final 64 KiB + 22 bytes
 * (the comment can be at most 65535 bytes). */
static long find_eocd(const unsigned char *b, size_t len) {
  if (len < 22) return -1;
  size_t lo = len - 22 > 65535 ? len - 22 - 65535 : 0;
  for (size_t i = len - 22 + 1; i-- > lo;)
    if (rd32(b + i) == SIG_EOCD && i + 22 + rd16(b + i + 20) == len) return (long)i;
  return -1;
}

typedef struct {
  uint64_t count, cd_size, cd_off;
} cd_info;

/* Fills the central-directory location, from the zip64 record when the 32-bit fields are
 * saturated (torch always writes the zip64 record and locator; either source must agree with the
 * buffer). */
static int read_end_records(dmx_zip *z, size_t eocd, cd_info *cd, dmx_error *err) {
  const unsigned char *p = z->buf + eocd;
  if (rd16(p + 4) != 0 || rd16(p + 6) != 0 || rd16(p + 8) != rd16(p + 10))
    return dmx_fail(err, "%s: multi-disk (split) zip archives are not supported (end record at offset %zu)", z->what,
                    eocd);
  cd->count = rd16(p + 10);
  cd->cd_size = rd32(p + 12);
  cd->cd_off = rd32(p + 16);
  bool saturated = cd->count == 0xFFFF || cd->cd_size == 0xFFFFFFFFu || cd->cd_off == 0xFFFFFFFFu;
  if (!saturated) return 0;
  if (eocd < 20 || rd32(z->buf + eocd - 20) != SIG_LOC64)
    return dmx_fail(err,
                    "%s: the end record at offset %zu needs a zip64 record, but there is no zip64 locator before it",
                    z->what, eocd);
  uint64_t rec = rd64(z->buf + eocd - 20 + 8);
  if (!fits(rec, 56, z->len) || rd32(z->buf + rec) != SIG_EOCD64)
    return dmx_fail(err, "%s: the zip64 locator points at offset %llu, where there is no zip64 end record", z->what,
                    (unsigned long long)rec);
  const unsigned char *q = z->buf + rec;
  if (rd32(q + 16) != 0 || rd32(q + 20) != 0 || rd64(q + 24) != rd64(q + 32))
    return dmx_fail(err, "%s: multi-disk (split) zip archives are not supported (zip64 record at offset %llu)", z->what,
                    (unsigned long long)rec);
  cd->count = rd64(q + 32);
  cd->cd_size = rd64(q + 40);
  cd->cd_off = rd64(q + 48);
  return 0;
}

/* Replaces saturated 32-bit fields by the values of the zip64 extra field (id 1), which holds, in
 * this order, only the fields that are saturated. */
static int apply_zip64_extra(dmx_zip *z, const unsigned char *x, size_t xlen, uint64_t *usize, uint64_t *csize,
                             uint64_t *off, const char *name, size_t at, dmx_error *err) {
  uint64_t *want[3] = {usize, csize, off};
  for (size_t k = 0; k + 4 <= xlen;) {
    uint32_t id = rd16(x + k), n = rd16(x + k + 2);
    if (n > xlen - k - 4) break; /* a truncated trailing field: checked below if it was needed */
    if (id == 1) {
      size_t pos = k + 4;
      for (int f = 0; f < 3; f++) {
        if (*want[f] != 0xFFFFFFFFu) continue;
        if (pos + 8 > k + 4 + n)
          return dmx_fail(err, "%s: entry '%.200s' (central record at offset %zu): zip64 extra field too short",
                          z->what, name, at);
        *want[f] = rd64(x + pos);
        pos += 8;
      }
      return 0;
    }
    k += 4 + n;
  }
  if (*usize == 0xFFFFFFFFu || *csize == 0xFFFFFFFFu || *off == 0xFFFFFFFFu)
    return dmx_fail(err, "%s: entry '%.200s' (central record at offset %zu) needs a zip64 extra field and has none",
                    z->what, name, at);
  return 0;
}

static int parse_central(dmx_zip *z, size_t at, entry *e, size_t *next, dmx_error *err) {
  if (!fits(at, 46, z->len) || rd32(z->buf + at) != SIG_CENTRAL)
    return dmx_fail(err, "%s: no central directory record at offset %zu (truncated or corrupt archive)", z->what, at);
  const unsigned char *p = z->buf + at;
  uint32_t flags = rd16(p + 8), method = rd16(p + 10), nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
  if (!fits(at + 46, (uint64_t)nlen + xlen + clen, z->len))
    return dmx_fail(err, "%s: central record at offset %zu runs past the end of the file", z->what, at);
  if (nlen == 0 || nlen > DMX_ZIP_MAX_NAME || memchr(p + 46, 0, nlen))
    return dmx_fail(err, "%s: central record at offset %zu has an empty, over-long or NUL-containing name", z->what,
                    at);
  e->name = dmx_malloc(nlen + 1);
  memcpy(e->name, p + 46, nlen);
  e->name[nlen] = 0;
  if (flags & 0x41)
    return dmx_fail(err,
                    "%s: entry '%.200s' is encrypted; torch.save never encrypts, so this is not a PyTorch "
                    "checkpoint (re-save it with torch.save)",
                    z->what, e->name);
  if (method != 0)
    return dmx_fail(err,
                    "%s: entry '%.200s' is compressed (method %u); only stored entries are supported, as "
                    "torch.save writes them: re-save the file with torch.save rather than re-zipping it",
                    z->what, e->name, method);
  uint64_t usize = rd32(p + 24), csize = rd32(p + 20), off = rd32(p + 42);
  if (apply_zip64_extra(z, p + 46 + nlen, xlen, &usize, &csize, &off, e->name, at, err)) return -1;
  if (usize != csize)
    return dmx_fail(err, "%s: entry '%.200s' is stored but its sizes differ (%llu vs %llu bytes)", z->what, e->name,
                    (unsigned long long)usize, (unsigned long long)csize);
  if (!fits(off, 30, z->len))
    return dmx_fail(err, "%s: entry '%.200s': local header offset %llu is beyond the file (%zu bytes)", z->what,
                    e->name, (unsigned long long)off, z->len);
  e->local_off = off;
  e->size = usize;
  e->crc = rd32(p + 16);
  *next = at + 46 + nlen + xlen + clen;
  return 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp((*(entry *const *)a)->name, (*(entry *const *)b)->name);
}

dmx_zip *dmx_zip_open(const unsigned char *buf, size_t len, const char *what, dmx_error *err) {
  dmx_zip *z = dmx_calloc(1, sizeof *z);
  z->buf = buf;
  z->len = len;
  z->what = dmx_strdup(what ? what : "(zip)");
  long eocd = find_eocd(buf, len);
  if (eocd < 0) {
    dmx_fail(err,
             "%s: not a zip archive (no end-of-central-directory record; truncated file?): a PyTorch file "
             "saved with torch.save >= 1.6 is a zip archive",
             z->what);
    return fail_free(z);
  }
  cd_info cd = {0, 0, 0};
  if (read_end_records(z, (size_t)eocd, &cd, err)) return fail_free(z);
  if (!fits(cd.cd_off, cd.cd_size, len) || cd.count > cd.cd_size / 46) {
    dmx_fail(err, "%s: central directory (offset %llu, %llu bytes, %llu entries) does not fit in the file (%zu bytes)",
             z->what, (unsigned long long)cd.cd_off, (unsigned long long)cd.cd_size, (unsigned long long)cd.count, len);
    return fail_free(z);
  }
  z->e = dmx_calloc(cd.count ? cd.count : 1, sizeof *z->e);
  size_t at = (size_t)cd.cd_off;
  for (uint64_t i = 0; i < cd.count; i++) {
    z->n++; /* counted first so a half-filled entry is freed */
    if (parse_central(z, at, &z->e[i], &at, err)) return fail_free(z);
    if (at > cd.cd_off + cd.cd_size) {
      dmx_fail(err, "%s: central record of '%.200s' runs past the central directory's stated size", z->what,
               z->e[i].name);
      return fail_free(z);
    }
  }
  z->sorted = dmx_malloc((z->n ? z->n : 1) * sizeof *z->sorted);
  for (size_t i = 0; i < z->n; i++) z->sorted[i] = &z->e[i];
  qsort(z->sorted, z->n, sizeof *z->sorted, by_name);
  for (size_t i = 1; i < z->n; i++)
    if (!strcmp(z->sorted[i]->name, z->sorted[i - 1]->name)) {
      dmx_fail(err, "%s: entry '%.200s' appears twice in the archive", z->what, z->sorted[i]->name);
      return fail_free(z);
    }
  return z;
}

size_t dmx_zip_count(const dmx_zip *z) { return z->n; }

const char *dmx_zip_name(const dmx_zip *z, size_t i) { return i < z->n ? z->e[i].name : NULL; }

long dmx_zip_find(const dmx_zip *z, const char *name) {
  size_t lo = 0, hi = z->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(z->sorted[mid]->name, name);
    if (c == 0) return (long)(z->sorted[mid] - z->e);
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

const unsigned char *dmx_zip_data(const dmx_zip *z, size_t i, size_t *len, dmx_error *err) {
  if (i >= z->n) {
    dmx_fail(err, "%s: no zip entry %zu (the archive has %zu)", z->what, i, z->n);
    return NULL;
  }
  const entry *e = &z->e[i];
  const unsigned char *p = z->buf + e->local_off;
  if (rd32(p) != SIG_LOCAL) {
    dmx_fail(err, "%s: entry '%.200s': no local header at offset %llu (corrupt archive)", z->what, e->name,
             (unsigned long long)e->local_off);
    return NULL;
  }
  uint32_t nlen = rd16(p + 26), xlen = rd16(p + 28);
  if (!fits(e->local_off + 30, (uint64_t)nlen + xlen, z->len) || nlen != strlen(e->name) ||
      memcmp(p + 30, e->name, nlen)) {
    dmx_fail(err, "%s: entry '%.200s': the local header at offset %llu does not match the central directory", z->what,
             e->name, (unsigned long long)e->local_off);
    return NULL;
  }
  if ((rd16(p + 6) & 0x41) || rd16(p + 8) != 0) {
    dmx_fail(err, "%s: entry '%.200s': the local header says compressed or encrypted, unlike the central directory",
             z->what, e->name);
    return NULL;
  }
  uint64_t start = e->local_off + 30 + nlen + xlen;
  if (!fits(start, e->size, z->len)) {
    dmx_fail(err,
             "%s: entry '%.200s': its %llu bytes at offset %llu run past the end of the file (%zu bytes; "
             "truncated download?)",
             z->what, e->name, (unsigned long long)e->size, (unsigned long long)start, z->len);
    return NULL;
  }
  uint32_t crc = dmx_crc32(0, z->buf + start, (size_t)e->size);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
  crc = e->crc; /* the fuzzer cannot fix up CRCs; checking them would hide everything behind this check */
#endif
  if (crc != e->crc) {
    dmx_fail(err, "%s: entry '%.200s': CRC-32 %08x does not match the recorded %08x (corrupt file: download it again)",
             z->what, e->name, crc, e->crc);
    return NULL;
  }
  *len = (size_t)e->size;
  return z->buf + start;
}
