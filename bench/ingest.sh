#!/usr/bin/env bash
# End-to-end ingest benchmark: vigil on one core (taskset + GOMAXPROCS=1),
# the load tool on the other, each signal over its real protocol into
# durable storage. Prints items/s acknowledged, bytes on disk per item and
# the server's peak RSS. Usage: bench/ingest.sh [seconds] (from the repo root).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-30}
make -s build
(cd bench && go build -o ../bin/vigil-load ./cmd/vigil-load)
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT

metric() { # metric NAME_WITH_LABELS -> value from vigil's /metrics
  curl -s localhost:17070/metrics | awk -v m="$1" '$1==m {print $2}'
}

run_signal() { # run_signal SIGNAL LOADFLAGS...
  local signal=$1; shift
  rm -rf "$work/data"
  GOMAXPROCS=1 taskset -c 0 ./bin/vigil server --data-dir "$work/data" --http-addr 127.0.0.1:17070 \
    --otlp-http-addr 127.0.0.1:14318 --otlp-grpc-addr 127.0.0.1:14317 --log-level warn &
  pid=$!
  until curl -sf localhost:17070/-/ready >/dev/null; do sleep 0.2; done
  taskset -c 1 ./bin/vigil-load -signal "$signal" -duration "${DUR}s" \
    -otlp-http http://127.0.0.1:14318 -otlp-grpc 127.0.0.1:14317 \
    -remote-write http://127.0.0.1:17070/api/v1/write "$@" | sed "s/^/  /"
  local sig=${signal%-grpc}; [ "$sig" = metrics ] || true
  local stored
  stored=$(metric "vigil_stored_total{signal=\"$sig\"}")
  local hwm
  hwm=$(awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' /proc/$pid/status)
  kill -TERM $pid; wait $pid || true   # a clean stop checkpoints the stores
  local bytes
  if [ "$sig" = metrics ]; then bytes=$(du -sb "$work/data/tsdb" | cut -f1); else bytes=$(du -sb "$work/data/spanlogs" | cut -f1); fi
  echo "  stored=$stored disk_bytes=$bytes bytes_per_item=$(awk -v b="$bytes" -v n="$stored" 'BEGIN{printf "%.1f", b/n}') peak_rss=$hwm"
}

echo "== traces over OTLP/HTTP protobuf (500 spans per request, 8 senders)"; run_signal traces -concurrency 8 -batch 500
echo "== traces over OTLP/gRPC"; run_signal traces-grpc -concurrency 8 -batch 500
echo "== logs over OTLP/HTTP protobuf (500 records per request)"; run_signal logs -concurrency 8 -batch 500
echo "== remote_write (2000 series per request, one sample each)"; run_signal metrics -concurrency 8 -batch 2000
