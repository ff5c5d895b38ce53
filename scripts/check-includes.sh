#!/bin/sh
# Checks the project's own #include "..." graph (run by ctest as check_includes, so in CI):
#  1. no include circle between modules (a module is a .c and its .h: host/runtime/gemm), and
#  2. every include goes to the same folder or to a folder below it in the layer order
#     base < data, runtime, config, formats, dist < layers < run < perf < cli  (README.md, Layout).
# Prints each circle and each wrong-way include with file:line, and exits 1 if there is any.
# Usage: scripts/check-includes.sh [SOURCE_ROOT]   (default: the folder above this script)
set -eu
root=${1:-$(dirname "$0")/..}
cd "$root"
files=$(find host layers data -name '*.[ch]' | sort)
[ -n "$files" ] || { echo "check-includes: no sources under $(pwd)/host, layers, data" >&2; exit 2; }
# one line per include: file line target
grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' $files |
  sed -E 's/^([^:]+):([0-9]+):[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1 \2 \3/' |
  awk '
function folder(path) { sub(/\/[^\/]*$/, "", path); return path }
function module(path) { sub(/\.[ch]$/, "", path); return path }
function dfs(v,    i, w) {
  index_of[v] = low[v] = ++counter; stack[++sp] = v; on_stack[v] = 1
  for (i = 1; i <= n_out[v]; i++) {
    w = out[v, i]
    if (!(w in index_of)) { dfs(w); if (low[w] < low[v]) low[v] = low[w] }
    else if (on_stack[w] && index_of[w] < low[v]) low[v] = index_of[w]
  }
  if (low[v] == index_of[v]) {
    members = ""; count = 0
    do { w = stack[sp--]; on_stack[w] = 0; members = w " " members; count++ } while (w != v)
    if (count > 1) { print "include circle between modules: " members; bad = 1 }
  }
}
BEGIN {
  # allowed[a, b]: folder a may include folder b
  below["host/base"] = ""
  below["data"] = "host/base"
  below["host/runtime"] = "host/base"
  below["host/config"] = "host/base"
  below["host/formats"] = "host/base"
  below["host/dist"] = "host/base"
  below["layers"] = "host/runtime host/config host/base"
  below["host/run"] = "layers host/formats host/dist data host/runtime host/config host/base"
  below["host/perf"] = "host/run " below["host/run"]
  below["host/cli"] = "host/perf " below["host/perf"]
  for (f in below) { allowed[f, f] = 1; n = split(below[f], parts, " "); for (i = 1; i <= n; i++) allowed[f, parts[i]] = 1 }
}
{
  file = $1; line = $2; target = $3
  from = folder(file); to = folder(target)
  if (!(from in below)) { print file ": folder " from " has no place in the layer order (add it to scripts/check-includes.sh)"; bad = 1; next }
  if (to in below && !((from, to) in allowed)) {
    print file ":" line ": includes " target ": " from " may include only " from " " below[from]; bad = 1
  }
  ma = module(file); mb = module(target)
  if (ma != mb && !((ma, mb) in seen)) { seen[ma, mb] = 1; out[ma, ++n_out[ma]] = mb; nodes[ma] = 1; nodes[mb] = 1 }
}
END {
  for (v in nodes) if (!(v in index_of)) dfs(v)
  if (bad) exit 1
  print "check-includes: no include circle, no wrong-way include"
}'
