#!/bin/sh
# The vision notebook's sweep: every muxing scheme at N = 1, 2, 4, 8, 16, on MNIST and
# Fashion-MNIST, each from experiments/vision/<dataset>_n<N>.yaml with --set vision.muxing=<scheme>.
# Run directories: runs/vision/<dataset>/<scheme>/n<N>/ (results.json has per-instance and mean
# accuracy). Finished runs (results.json present) are skipped, so the sweep can be resumed.
#
# usage: scripts/vision_sweep.sh [DATAMUX_BIN] [--datasets "mnist fashion_mnist"] [--schemes "..."]
#                                [--n "1 2 4 8 16"] [-- EXTRA datamux train FLAGS]
# MNIST needs `bash data/fetch.sh --only mnist`; Fashion-MNIST comes from dataset-fashion-mnist.
set -eu
bin=build/datamux
datasets="mnist fashion_mnist"
schemes="gaussian graded identity learnable so_n learnable_w nonlinear nonlinear_expand rotation"
ns="1 2 4 8 16"
while [ $# -gt 0 ]; do
  case "$1" in
    --datasets) datasets="$2"; shift 2 ;;
    --schemes) schemes="$2"; shift 2 ;;
    --n) ns="$2"; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "vision_sweep.sh: unknown option $1" >&2; exit 2 ;;
    *) bin="$1"; shift ;;
  esac
done
[ -x "$bin" ] || { echo "vision_sweep.sh: $bin is not an executable (build first, or pass the datamux binary)" >&2; exit 2; }
for ds in $datasets; do
  for n in $ns; do
    exp="experiments/vision/${ds}_n${n}.yaml"
    [ -f "$exp" ] || { echo "vision_sweep.sh: $exp is missing" >&2; exit 2; }
    for s in $schemes; do
      out="runs/vision/$ds/$s/n$n"
      if [ -f "$out/results.json" ]; then echo "skip $out (done)"; continue; fi
      echo "=== $ds N=$n muxing=$s -> $out"
      "$bin" train "$exp" --set vision.muxing="$s" --set output_dir="$out" --set name="${ds}_${s}_n${n}" "$@"
    done
  done
done
# summary: dataset, scheme, N, mean accuracy
for f in runs/vision/*/*/n*/results.json; do
  [ -f "$f" ] || continue
  printf '%s %s\n' "$f" "$(grep -o '"mean_accuracy": [0-9.]*' "$f" | head -1)"
done
