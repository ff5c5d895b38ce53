#!/bin/sh
# Runs a program under Oclgrind with its data-race and API checks; fails when the program fails or
# Oclgrind reports anything. With --expect TEXT (repeatable), it instead fails unless every TEXT is
# in Oclgrind's report: how the oclgrind label proves it can catch a planted bug.
#   scripts/oclgrind-test.sh [--expect TEXT]... PROGRAM [ARGS...]
# Oclgrind's wrapper preloads its runtime, so PROGRAM sees Oclgrind's platform alone and picks it.
set -u
expects=""
n_expect=0
while [ "${1:-}" = "--expect" ]; do
  [ $# -ge 2 ] || { echo "oclgrind-test: --expect needs a text" >&2; exit 2; }
  n_expect=$((n_expect + 1))
  eval "expect_$n_expect=\$2"
  shift 2
done
[ $# -ge 1 ] || { echo "usage: oclgrind-test.sh [--expect TEXT]... PROGRAM [ARGS...]" >&2; exit 2; }
command -v oclgrind >/dev/null 2>&1 || {
  echo "oclgrind-test: oclgrind is not installed (./scripts/install-deps.sh installs it)" >&2
  exit 2
}
log=$(mktemp "${TMPDIR:-/tmp}/oclgrind.XXXXXX") || exit 2
trap 'rm -f "$log"' EXIT
# each report starts with an unindented headline ("Read-write data race at ...", "Invalid write of
# size 4 at ..."): their counts without addresses, then the first reports in full
report() {
  echo "--- Oclgrind's report, by kind:"
  grep -v '^[[:space:]]' "$log" | grep -v '^$' | sed 's/ at .*//; s/ of size [0-9]*//' | sort | uniq -c
  echo "--- its first 80 lines:"
  head -n 80 "$log"
}
start=$(date +%s)
oclgrind --data-races --check-api --log "$log" "$@"
rc=$?
echo "oclgrind-test: $1 exited $rc after $(($(date +%s) - start)) s under Oclgrind; its report has $(wc -l <"$log") lines"
if [ "$n_expect" -gt 0 ]; then
  fail=0
  i=1
  while [ "$i" -le "$n_expect" ]; do
    eval "want=\$expect_$i"
    if grep -qF -- "$want" "$log"; then
      echo "oclgrind-test: caught as expected: $want"
    else
      echo "oclgrind-test: Oclgrind did not report '$want'" >&2
      fail=1
    fi
    i=$((i + 1))
  done
  [ "$fail" -eq 0 ] || report >&2
  exit "$fail"
fi
if [ -s "$log" ]; then
  echo "oclgrind-test: Oclgrind reported errors in $1" >&2
  report >&2
  exit 1
fi
exit "$rc"
