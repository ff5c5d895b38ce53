/* data/idx.c: the installed Fashion-MNIST files (counts, label histogram, pixel spot checks), and
 * malformed files written here (bad magic, wrong dimension count, truncation, trailing bytes,
 * images and labels of different counts, a corrupt gzip stream), each of which must fail with a
 * message naming the file. Links only datamux_data: no OpenCL. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data/idx.h"
#include "tests/harness.h"

#define FASHION "/usr/share/datasets/fashion-mnist"

static char tmpdir[256];

static void check_fashion(void) {
  th_begin("fashion-mnist train and test splits");
  dmx_idx_set s;
  dmx_error err = {{0}};
  int rc = dmx_idx_load(FASHION "/train-images-idx3-ubyte.gz", FASHION "/train-labels-idx1-ubyte.gz", &s, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc == 0) {
    CHECK(s.n == 60000 && s.rows == 28 && s.cols == 28 && s.num_classes == 10);
    int hist[256] = {0};
    for (int i = 0; i < s.n; i++) hist[s.labels[i]]++;
    for (int c = 0; c < 10; c++) CHECKF(hist[c] == 6000, "train class %d has %d images", c, hist[c]);
    /* values read with Python's gzip module: image 0 is an ankle boot (9), pixel sum 76247,
     * centre pixel 217; the last image is a sandal (5), sum 16684 */
    long sum0 = 0, sum_last = 0;
    for (int p = 0; p < 784; p++) sum0 += s.pixels[p], sum_last += s.pixels[(size_t)59999 * 784 + p];
    CHECK(s.labels[0] == 9 && sum0 == 76247 && s.pixels[14 * 28 + 14] == 217);
    CHECK(s.labels[59999] == 5 && sum_last == 16684);
    dmx_idx_free(&s);
  }
  rc = dmx_idx_load(FASHION "/t10k-images-idx3-ubyte.gz", FASHION "/t10k-labels-idx1-ubyte.gz", &s, &err);
  CHECKF(rc == 0, "%s", err.msg);
  if (rc == 0) {
    CHECK(s.n == 10000 && s.rows == 28 && s.cols == 28);
    int hist[256] = {0};
    for (int i = 0; i < s.n; i++) hist[s.labels[i]]++;
    for (int c = 0; c < 10; c++) CHECKF(hist[c] == 1000, "test class %d has %d images", c, hist[c]);
    long sum0 = 0;
    for (int p = 0; p < 784; p++) sum0 += s.pixels[p];
    CHECK(s.labels[0] == 9 && sum0 == 33456);
    dmx_idx_free(&s);
  }
  char lp[512];
  CHECK(dmx_idx_labels_path("/a/train-images-idx3-ubyte.gz", lp, sizeof lp) == 0 &&
        !strcmp(lp, "/a/train-labels-idx1-ubyte.gz"));
  CHECK(dmx_idx_labels_path("/a/images.bin", lp, sizeof lp) == -1);
  th_end();
}

/* ------------------------------------------------------------------ malformed files */

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8),
  p[3] = (unsigned char)v;
}

/* An IDX file: magic, the given sizes, then `payload` bytes (pattern i & 255), gzipped when gz. */
static const char *write_idx(const char *name, uint32_t magic, int ndim, const uint32_t *dims, size_t payload,
                             bool gz) {
  static char path[8][512];
  static int slot;
  char *p = path[slot++ % 8];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  size_t n = 4 + 4 * (size_t)ndim + payload;
  unsigned char *b = malloc(n);
  put32(b, magic);
  for (int d = 0; d < ndim; d++) put32(b + 4 + 4 * d, dims[d]);
  for (size_t i = 0; i < payload; i++) b[4 + 4 * ndim + i] = (unsigned char)(i % 7);
  if (gz) {
    gzFile f = gzopen(p, "wb");
    if (!f || gzwrite(f, b, (unsigned)n) != (int)n || gzclose(f) != Z_OK)
      th_fail_at(__FILE__, __LINE__, "cannot write %s", p);
  } else {
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f)) th_fail_at(__FILE__, __LINE__, "cannot write %s", p);
  }
  free(b);
  return p;
}

/* Loading must fail with a message that names `blamed` and contains `phrase`. */
static void expect_fail(const char *images, const char *labels, const char *blamed, const char *phrase) {
  dmx_idx_set s;
  dmx_error err = {{0}};
  int rc = dmx_idx_load(images, labels, &s, &err);
  CHECKF(rc == -1, "loading %s / %s should fail (%s)", images, labels, phrase);
  if (rc == 0) {
    dmx_idx_free(&s);
    return;
  }
  CHECKF(strstr(err.msg, blamed) != NULL, "message does not name %s: %s", blamed, err.msg);
  CHECKF(strstr(err.msg, phrase) != NULL, "message lacks '%s': %s", phrase, err.msg);
}

static void check_malformed(void) {
  th_begin("malformed IDX files fail with the file name");
  uint32_t img[3] = {5, 4, 3}, lab[1] = {5}, lab6[1] = {6};
  for (int gz = 0; gz < 2; gz++) {
    char ok_img[512], ok_lab[512]; /* write_idx's own buffers are reused after a few calls */
    snprintf(ok_img, sizeof ok_img, "%s", write_idx(gz ? "ok-img.gz" : "ok-img", 0x803, 3, img, 60, gz));
    snprintf(ok_lab, sizeof ok_lab, "%s", write_idx(gz ? "ok-lab.gz" : "ok-lab", 0x801, 1, lab, 5, gz));
    dmx_idx_set s;
    dmx_error err = {{0}};
    CHECKF(dmx_idx_load(ok_img, ok_lab, &s, &err) == 0, "%s", err.msg);
    if (s.pixels) {
      CHECK(s.n == 5 && s.rows == 4 && s.cols == 3 && s.pixels[8] == 1 && s.labels[4] == 4 && s.num_classes == 5);
      dmx_idx_free(&s);
    }
    expect_fail(write_idx("bad-magic", 0x1803, 3, img, 60, gz), ok_lab, "bad-magic", "bad magic");
    expect_fail(write_idx("float-type", 0x0d03, 3, img, 60, gz), ok_lab, "float-type", "bad magic");
    expect_fail(ok_lab, ok_lab, "ok-lab", "dimensions"); /* a labels file where images belong */
    expect_fail(write_idx("short", 0x803, 3, img, 59, gz), ok_lab, "short", "truncated");
    expect_fail(write_idx("hdr-only", 0x803, 2, img, 0, gz), ok_lab, "hdr-only", "truncated");
    expect_fail(write_idx("long", 0x803, 3, img, 61, gz), ok_lab, "long", "longer than its header");
    expect_fail(write_idx("zero-dim", 0x803, 3, (uint32_t[]){0, 4, 3}, 0, gz), ok_lab, "zero-dim", "size 0");
    expect_fail(write_idx("huge", 0x803, 3, (uint32_t[]){100000, 100000, 100}, 10, gz), ok_lab, "huge", "corrupt");
    expect_fail(ok_img, write_idx("lab6", 0x801, 1, lab6, 6, gz), "5 images", "6 labels");
    expect_fail(ok_img, write_idx("lab-short", 0x801, 1, lab, 3, gz), "lab-short", "truncated");
    expect_fail(ok_img, "/nonexistent/labels-idx1", "/nonexistent/labels-idx1", "cannot open");
  }
  /* a gzip stream cut in the middle */
  char cut[512];
  snprintf(cut, sizeof cut, "%s/cut.gz", tmpdir);
  {
    const char *full = write_idx("full.gz", 0x803, 3, (uint32_t[]){50, 20, 20}, 20000, true);
    FILE *f = fopen(full, "rb");
    unsigned char buf[65536];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    FILE *o = fopen(cut, "wb");
    if (o) {
      fwrite(buf, 1, n / 2, o);
      fclose(o);
    }
    uint32_t l50[1] = {50};
    expect_fail(cut, write_idx("l50", 0x801, 1, l50, 50, false), "cut.gz", "");
  }
  th_end();
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/datamux-idx-test.XXXXXX");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 2;
  }
  if (access(FASHION "/train-images-idx3-ubyte.gz", R_OK) == 0) {
    check_fashion();
  } else {
    printf("skipped: %s not installed (Debian package dataset-fashion-mnist)\n", FASHION);
  }
  check_malformed();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
  return th_finish();
}
