#!/usr/bin/env bash
# Where the server's CPU goes per search, next to the in-process reference: one search round of
# `kyrodb_bench server` with `perf record -a` over its HTTP (or gRPC) window, then the server's
# samples split into engine, body decode, kernel, libc, other libraries (gRPC's) and the rest, in
# µs per search (the share of the server's samples times its measured CPU per search).
#   bench/profile_server_search.sh [BUILD_DIR] [http|grpc]   (default build, http; needs perf)
# Prints the bench's in-process and HTTP (gRPC) lines' CPU per search, then the split. One-off tooling,
# not part of make test; docs/benchmarks.md quotes a run of it.
set -euo pipefail

build=${1:-build}
protocol=${2:-http}
case "$protocol" in http|grpc) ;; *) echo "profile_server_search: protocol http or grpc" >&2; exit 2;; esac
command -v perf >/dev/null || { echo "profile_server_search: perf not found (apt install linux-perf)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$build/bin/kyrodb_bench" server --search-rounds 1 --search-duration 8 --auth-rounds 0 \
  --grpc-library-search false --ceilings false >"$work/bench.jsonl" 2>"$work/bench.err" &
bench=$!
if [ "$protocol" = http ]; then
  until grep -q "http search" "$work/bench.err" 2>/dev/null; do sleep 0.2; done
  perf record -a -F 1999 -o "$work/perf.data" >/dev/null 2>&1 &
  rec=$!
  until grep -q "grpc search" "$work/bench.err" 2>/dev/null; do sleep 0.2; done
else  # the gRPC window: 8 s of which perf takes 1 to 7 (the h2 client's window)
  until grep -q "grpc search" "$work/bench.err" 2>/dev/null; do sleep 0.2; done
  sleep 1
  perf record -a -F 1999 -o "$work/perf.data" >/dev/null 2>&1 &
  rec=$!
  sleep 6
fi
kill -INT "$rec"
wait "$rec" || true
wait "$bench"

# The search server's pid (its threads are not all named kyrodb_server: gRPC names its own).
pid=$(grep -o "search: pid [0-9]*" "$work/bench.err" | tail -1 | awk '{print $3}')
perf report -i "$work/perf.data" --pid "$pid" --sort dso,sym --stdio 2>/dev/null >"$work/report.txt"
python3 - "$work/bench.jsonl" "$work/report.txt" "$protocol" <<'EOF'
import json, re, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
inproc = next(l for l in lines if l.get("bench") == "server_inprocess_search")
window = next(l for l in lines if l.get("protocol") == sys.argv[3] and l.get("op") == "search")
server_us = window["server_cpu_us_per_request"]
print(f"in-process CPU per search {inproc['cpu_us_per_search']:.1f} us; "
      f"{sys.argv[3]} server {server_us:.1f} us, client {window['client_cpu_us_per_request']:.1f} us")
engine = re.compile(r"kyrodb::index|kyrodb::distance|kyrodb::Collection|kyrodb::Database|ColdMeta|SearchHit|"
                    r"std::vector<std::pair<std::__cxx11::basic_string")
decode = re.compile(r"ParseFloat|ParseJsonFloat|DecodeSearch|TryDecodeSearchFast")
parts = {"engine": 0.0, "decode": 0.0, "kernel": 0.0, "libc": 0.0, "rest of kyrodb_server": 0.0, "other libraries": 0.0}
for line in open(sys.argv[2]):
    m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[.\]\s+(.*)", line)
    if not m:
        continue
    share, dso, sym = float(m.group(1)), m.group(2), m.group(3)
    if "kernel" in dso:
        parts["kernel"] += share
    elif dso.startswith("libc"):
        parts["libc"] += share
    elif dso == "kyrodb_server":
        parts["decode" if decode.search(sym) else "engine" if engine.search(sym) else "rest of kyrodb_server"] += share
    else:
        parts["other libraries"] += share
total = sum(parts.values())
for name, share in parts.items():
    print(f"  {name:22s} {share / total * 100:5.1f}%  {share / total * server_us:6.1f} us per search")
EOF
