#!/usr/bin/env bash
# Search over HTTP with and without auth + rate limits, same data, alternating rounds.
# Usage: bench/auth_overhead.sh   (binaries from build/bin; B=dir to use another)
set -e
B=${B:-$(cd "$(dirname "$0")/.." && pwd)/build/bin}
D=/tmp/authbench; rm -rf $D; mkdir -p $D
cat > $D/keys.yaml <<'K'
api_keys:
  - key: "bench-key-0123456789abcdef"
    tenant_id: default
    is_admin: true
K
start() { rm -f $D/p.json; $B/kyrodb_server --data-dir $D/data --http-port 0 --grpc-port 0 --port-file $D/p.json --set hnsw.dimension=768 --set persistence.fsync_policy=never "$@" > $D/log 2>&1 & 
  for i in $(seq 1 600); do [ -f $D/p.json ] && break; sleep 0.1; done; PORT=$(python3 -c "import json;print(json.load(open('$D/p.json'))['http'])"); }
stop() { kill -TERM $(python3 -c "import json;print(json.load(open('$D/p.json'))['pid'])"); wait || true; }
start
$B/kyrodb_bench load --http http://127.0.0.1:$PORT --op insert --concurrency 16 --duration 4 --dim 768 --warmup 0 > /dev/null 2>&1 || true
curl -s -X POST http://127.0.0.1:$PORT/v1/flush > /dev/null
curl -s -X POST http://127.0.0.1:$PORT/v1/snapshot > /dev/null
curl -s http://127.0.0.1:$PORT/v1/collections; echo
stop
for round in 1 2; do
  start
  echo "noauth round $round: $($B/kyrodb_bench load --http http://127.0.0.1:$PORT --op search --concurrency 64 --duration 6 --dim 768 | grep -o '"throughput_per_s":[0-9.]*,"p50_us":[0-9.]*')"
  stop
  start --set auth.enabled=true --set auth.api_keys_file=$D/keys.yaml --set rate_limit.enabled=true --set rate_limit.max_qps_per_tenant=1000000 --set rate_limit.max_qps_per_connection=1000000 --set rate_limit.max_qps_global=10000000
  echo "auth+limits round $round: $($B/kyrodb_bench load --http http://127.0.0.1:$PORT --op search --concurrency 64 --duration 6 --dim 768 --api-key bench-key-0123456789abcdef | grep -o '"throughput_per_s":[0-9.]*,"p50_us":[0-9.]*\|"errors":[0-9]*' | tr '\n' ' ')"
  stop
done
