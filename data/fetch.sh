#!/usr/bin/env bash
# Downloads the public datasets DataMUX-CL trains on, and the roberta-base tokenizer files, into
# the data-root layout that `datamux` reads:
#   glue/{CoLA,SST-2,MRPC,QQP,STS-B,MNLI,QNLI,RTE,WNLI}/*.tsv   (GLUE distribution)
#   conll2003/{train,valid,test}.txt                            (CoNLL-2003, IOB2)
#   conll2003/original_iob1/eng.{train,testa,testb}             (original IOB1 files)
#   wikitext-103-raw/wiki.{train,valid,test}.raw                (retrieval warm-up text)
#   tokenizers/roberta-base/{vocab.json,merges.txt}
#   mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz     (MNIST; Fashion-MNIST comes from the
#                                                               Debian package dataset-fashion-mnist)
#
# usage: bash data/fetch.sh [DATA_ROOT] [--only glue,conll,tokenizer,wikitext,mnist]
# DATA_ROOT defaults to $DATAMUX_DATA, else $XDG_CACHE_HOME/datamux/data (~/.cache/datamux/data).
#
# Files whose sha256 is known (the CoNLL copies and the tokenizer, pinned to fixed commits) are
# verified; GLUE files are checked by their row counts. A file that is already present and
# verifies is not downloaded again. Needs curl (or wget), unzip, sha256sum, awk. Without internet
# access it stops at the first download with a message saying so.
set -euo pipefail

die() {
  echo "fetch.sh: $*" >&2
  exit 1
}

ROOT=""
ONLY="glue,conll,tokenizer,wikitext,mnist"
while [ $# -gt 0 ]; do
  case "$1" in
    --only) [ $# -ge 2 ] || die "--only needs a list such as glue,conll"; ONLY="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [ -z "$ROOT" ] || die "more than one data root given"; ROOT="$1"; shift ;;
  esac
done
if [ -z "$ROOT" ]; then
  if [ -n "${DATAMUX_DATA:-}" ]; then ROOT="$DATAMUX_DATA"
  else ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/datamux/data"; fi
fi
for part in ${ONLY//,/ }; do
  case "$part" in glue|conll|tokenizer|wikitext|mnist) ;; *) die "--only: unknown part '$part' (glue, conll, tokenizer, wikitext, mnist)" ;; esac
done
wants() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

for tool in unzip sha256sum awk; do
  command -v "$tool" >/dev/null || die "'$tool' is required but not installed"
done
if command -v curl >/dev/null; then FETCH=curl
elif command -v wget >/dev/null; then FETCH=wget
else die "curl or wget is required"; fi

mkdir -p "$ROOT" || die "cannot create data root $ROOT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/datamux-fetch.XXXXXX") || die "cannot create a temporary folder"
trap 'rm -rf "$TMP"' EXIT

# download URL DEST: to DEST.part first, so an interrupted download never looks complete.
download() {
  local url="$1" dest="$2" rc=0
  mkdir -p "$(dirname "$dest")"
  echo "fetch.sh: downloading $url"
  if [ "$FETCH" = curl ]; then
    curl -fL --retry 2 --connect-timeout 20 -o "$dest.part" "$url" || rc=$?
  else
    wget -q --tries=3 --timeout=20 -O "$dest.part" "$url" || rc=$?
  fi
  if [ "$rc" -ne 0 ]; then
    rm -f "$dest.part"
    die "cannot download $url (exit $rc). Is this machine offline? Copy an existing data root instead, or set DATAMUX_DATA."
  fi
  mv "$dest.part" "$dest"
}

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# fetch_pinned URL DEST SHA256: skips a present file that verifies; fails on a mismatch.
fetch_pinned() {
  local url="$1" dest="$2" sha="$3"
  if sha_ok "$dest" "$sha"; then echo "fetch.sh: $dest is present and verified"; return; fi
  download "$url" "$dest"
  sha_ok "$dest" "$sha" || { mv "$dest" "$dest.bad"; die "$dest: sha256 mismatch (kept as $dest.bad); expected $sha"; }
}

# rows FILE WANT: data rows (lines after the header) must be WANT.
expect_rows() {
  local file="$1" want="$2" got
  [ -f "$file" ] || die "$file: missing after unpacking"
  got=$(awk 'END { print NR - 1 }' "$file")
  [ "$got" = "$want" ] || die "$file: $got data rows, expected $want (a changed or damaged download?)"
}

fetch_glue() {
  local base=https://dl.fbaipublicfiles.com/glue/data
  local zip
  for zip in CoLA SST-2 QQP-clean STS-B MNLI QNLIv2 RTE WNLI; do
    download "$base/$zip.zip" "$TMP/$zip.zip"
    unzip -q -o "$TMP/$zip.zip" -d "$ROOT/glue" || die "$zip.zip: cannot unpack into $ROOT/glue"
  done
  expect_rows "$ROOT/glue/SST-2/train.tsv" 67349
  expect_rows "$ROOT/glue/SST-2/dev.tsv" 872
  expect_rows "$ROOT/glue/QNLI/dev.tsv" 5463
  expect_rows "$ROOT/glue/MNLI/dev_matched.tsv" 9815
  expect_rows "$ROOT/glue/MNLI/dev_mismatched.tsv" 9832
  expect_rows "$ROOT/glue/QQP/dev.tsv" 40430
  # CoLA dev has 1,043 rows and no header line, so "lines after the first" is 1,042.
  expect_rows "$ROOT/glue/CoLA/dev.tsv" 1042
  fetch_mrpc
}

# MRPC is not in a GLUE zip: GLUE's own script builds it from the SentEval copy of the Microsoft
# files, moving the pairs listed in mrpc_dev_ids.tsv from train into dev. Same here.
fetch_mrpc() {
  local src=https://dl.fbaipublicfiles.com/senteval/senteval_data dir="$ROOT/glue/MRPC"
  mkdir -p "$dir"
  download "$src/msr_paraphrase_train.txt" "$TMP/msr_train.txt"
  download "$src/msr_paraphrase_test.txt" "$TMP/msr_test.txt"
  download https://dl.fbaipublicfiles.com/glue/data/mrpc_dev_ids.tsv "$TMP/mrpc_dev_ids.tsv"
  awk -F'\t' -v OFS='\t' -v devf="$dir/dev.tsv" -v trainf="$dir/train.tsv" '
    { sub(/\r$/, "") }
    FNR == NR { dev[$1 "\t" $2] = 1; next }
    FNR == 1 { print > trainf; print > devf; next }
    { if (($2 "\t" $3) in dev) print > devf; else print > trainf }
  ' "$TMP/mrpc_dev_ids.tsv" "$TMP/msr_train.txt" || die "cannot build MRPC train/dev"
  awk -F'\t' -v OFS='\t' '
    { sub(/\r$/, "") }
    NR == 1 { print "index", "#1 ID", "#2 ID", "#1 String", "#2 String"; next }
    { print NR - 2, $2, $3, $4, $5 }
  ' "$TMP/msr_test.txt" > "$dir/test.tsv" || die "cannot build MRPC test"
  expect_rows "$dir/train.tsv" 3668
  expect_rows "$dir/dev.tsv" 408
  expect_rows "$dir/test.tsv" 1725
}

# The exact copies described in shared/data/SOURCES.md, pinned by commit and sha256.
fetch_conll() {
  local iob2=https://raw.githubusercontent.com/ViktorooReps/sp-test-task/e8b50bf3c137c0d0b3b508568a7591e815e24a19/conll2003
  local iob1=https://raw.githubusercontent.com/ZhixiuYe/HSCRF-pytorch/86bb64890317b74517c5ad44b47c66635df327d8/data
  local c="$ROOT/conll2003"
  fetch_pinned "$iob2/train.txt" "$c/train.txt" ea10020985e45f11d7363b2f7ff72b09bdb8652a62125d22fc3103f88affb607
  fetch_pinned "$iob2/valid.txt" "$c/valid.txt" 82d27596bc16cd955275506695770e3f454b4950640ac5e3b4c10a19d5326efc
  fetch_pinned "$iob2/test.txt" "$c/test.txt" 450543d05ea7181fce73494aa2090797e1fb1011fe6fc031d3fab98d5b36a83b
  fetch_pinned "$iob1/eng.train" "$c/original_iob1/eng.train" bed631399cb0e859c4b446438ce57dfe0208792ca6106ef11620877355494c3a
  fetch_pinned "$iob1/eng.testa" "$c/original_iob1/eng.testa" aa83a45b88e4952998156583e2ff5a8be7c1f04fb9efa3a29cd87fac2c883807
  fetch_pinned "$iob1/eng.testb" "$c/original_iob1/eng.testb" 443914daf51328868558859b28252a28caee2fd02b65e77987977d6489246c5f
}

fetch_tokenizer() {
  local hub=https://huggingface.co/FacebookAI/roberta-base/resolve/e2da8e2f811d1448a5b465c236feacd80ffbac7b
  local t="$ROOT/tokenizers/roberta-base"
  fetch_pinned "$hub/vocab.json" "$t/vocab.json" 9e7f63c2d15d666b52e21d250d2e513b87c9b713cfa6987a82ed89e5e6e50655
  fetch_pinned "$hub/merges.txt" "$t/merges.txt" 1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
}

# WikiText-103 raw (about 190 MB zipped, 540 MB unpacked), from where Hugging Face's wikitext loader
# takes it. No published checksum: the three files must exist and be non-empty.
fetch_wikitext() {
  local w="$ROOT/wikitext-103-raw"
  if [ -s "$w/wiki.train.raw" ] && [ -s "$w/wiki.valid.raw" ] && [ -s "$w/wiki.test.raw" ]; then
    echo "fetch.sh: $w is present"; return
  fi
  download https://wikitext.smerity.com/wikitext-103-raw-v1.zip "$TMP/wikitext-103-raw-v1.zip"
  unzip -q -o "$TMP/wikitext-103-raw-v1.zip" -d "$ROOT" || die "wikitext-103-raw-v1.zip: cannot unpack into $ROOT"
  local f
  for f in train valid test; do [ -s "$w/wiki.$f.raw" ] || die "$w/wiki.$f.raw: missing after unpacking"; done
}

# MNIST from the mirror torchvision uses, checked against the md5 sums torchvision pins.
fetch_mnist() {
  command -v md5sum >/dev/null || die "'md5sum' is required for MNIST"
  local base=https://ossci-datasets.s3.amazonaws.com/mnist m="$ROOT/mnist" f sum
  for pair in train-images-idx3-ubyte.gz:f68b3c2dcbeaaa9fbdd348bbdeb94873 \
              train-labels-idx1-ubyte.gz:d53e105ee54ea40749a09fcbcd1e9432 \
              t10k-images-idx3-ubyte.gz:9fb629c4189551a2d022fa330f9573f3 \
              t10k-labels-idx1-ubyte.gz:ec29112dd5afa0611ce80d1b7f02629c; do
    f="${pair%%:*}"; sum="${pair##*:}"
    if [ -s "$m/$f" ] && [ "$(md5sum "$m/$f" | cut -d' ' -f1)" = "$sum" ]; then continue; fi
    download "$base/$f" "$m/$f"
    [ "$(md5sum "$m/$f" | cut -d' ' -f1)" = "$sum" ] || { rm -f "$m/$f"; die "$m/$f: md5 mismatch"; }
  done
  echo "fetch.sh: $m is complete"
}

echo "fetch.sh: data root $ROOT"
wants tokenizer && fetch_tokenizer
wants conll && fetch_conll
wants glue && fetch_glue
wants wikitext && fetch_wikitext
wants mnist && fetch_mnist
echo "fetch.sh: done; use it with DATAMUX_DATA=$ROOT or --data-dir $ROOT"
