#!/bin/sh
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each for RUNS executions or SECONDS
# seconds, whichever comes first, two at a time (README.md, Fuzzing). New inputs go to
# $FUZZ_DIR/<target>/, crashes to $FUZZ_DIR/crashes/; the committed corpus is only read.
# Usage: scripts/fuzz.sh [SECONDS [RUNS [TARGET...]]]   (defaults: 600, 1000000, all targets)
set -eu
seconds=${1:-600}
runs=${2:-1000000}
[ $# -gt 2 ] && shift 2 && targets="$*" || targets="yaml glue conll idx tokenizer trainer_state hf_config safetensors zip pickle sweep"
dir=${FUZZ_DIR:-/tmp/datamux-fuzz-runs}
build=${FUZZ_BUILD:-build-fuzz}
command -v clang >/dev/null || { echo "fuzz.sh: needs clang and libclang-rt-14-dev (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
[ -f "$build/Makefile" ] || CC=clang cmake -S . -B "$build" -DDATAMUX_FUZZ=ON
make -C "$build" -j"$(nproc)" $(for t in $targets; do printf 'fuzz_%s ' "$t"; done)
mkdir -p "$dir/crashes"
one() {
  mkdir -p "$dir/$1"
  "$build/fuzz_$1" -runs="$runs" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
    -artifact_prefix="$dir/crashes/$1-" "$dir/$1" "tests/fuzz/corpus/$1" > "$dir/$1.log" 2>&1 && rc=0 || rc=$?
  echo "$1: $(grep -E '^Done' "$dir/$1.log" || echo "stopped (status $rc): see $dir/$1.log")"
}
set -- $targets
while [ $# -gt 0 ]; do
  one "$1" &
  [ $# -gt 1 ] && one "$2" &
  wait
  shift; [ $# -gt 0 ] && shift
done
ls "$dir/crashes" | grep -q . && { echo "crashes in $dir/crashes: replay with build/replay_<target> FILE's folder"; exit 1; }
echo "no crashes"
