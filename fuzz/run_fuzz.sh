#!/usr/bin/env bash
# Builds the `fuzz` preset (clang, libFuzzer + ASan + UBSan) into its own directory and runs
# kyrodb_http_fuzz over the seed corpus. Any crash, sanitizer report or broken invariant fails
# (libFuzzer exits non-zero and writes the input as crash-*/leak-*/timeout-* in the work dir).
#   run_fuzz.sh short   a fixed number of runs: the default ctest test (make test)
#   run_fuzz.sh long    10 minutes: the `slow`-labelled test
# clang and libclang-rt-14-dev come from scripts/install-deps.sh; their absence is a failure.
set -euo pipefail

mode=${1:-short}
src=$(cd "$(dirname "$0")/.." && pwd)
build=${KYRODB_FUZZ_BUILD_DIR:-$src/build-fuzz}

if ! command -v clang++ >/dev/null; then
  echo "run_fuzz: clang++ not found (run scripts/install-deps.sh)" >&2
  exit 1
fi

# The preset's binary dir, unless the caller chose another (ctest: one inside its build tree).
cd "$src"
cmake --preset fuzz -B "$build" >/dev/null
cmake --build "$build" -j 2 --target kyrodb_http_fuzz

case "$mode" in
  short) limit=(-runs=200000) ;;
  long) limit=(-max_total_time=600) ;;
  *) echo "usage: run_fuzz.sh short|long" >&2; exit 2 ;;
esac

# Findings land in a scratch dir; the seed corpus in the tree is only read.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
cd "$work"
status=0
"$build/bin/kyrodb_http_fuzz" "${limit[@]}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 "$work/corpus" "$src/fuzz/corpus/http" || status=$?
if [ "$status" -ne 0 ]; then
  for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [ -e "$f" ] || continue
    mkdir -p "$build/findings"
    cp "$f" "$build/findings/"
    echo "run_fuzz: finding kept as $build/findings/$(basename "$f") (base64 below)" >&2
    base64 -w0 "$f" >&2; echo >&2
  done
  exit "$status"
fi
echo "run_fuzz: $mode run passed"
