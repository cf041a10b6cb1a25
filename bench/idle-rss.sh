#!/usr/bin/env bash
# Idle memory: starts `vigil server` on an empty data directory and prints
# its VmRSS, split into anonymous memory (Go heap, DuckDB) and file-backed
# pages (the executable), 15 s and 60 s after start; then sends 5 s each of
# traces, logs and remote_write (2 senders) and prints the same 30 s and
# 90 s after the load. Usage: bench/idle-rss.sh [path/to/vigil] (from the
# repo root; builds bin/vigil if no path is given).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
  make -s build-go
  bin=./bin/vigil
fi
(cd bench && go build -o ../bin/vigil-load ./cmd/vigil-load)
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null && wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" server --data-dir "$work/data" --http-addr 127.0.0.1:17170 \
  --otlp-http-addr 127.0.0.1:14418 --otlp-grpc-addr 127.0.0.1:14417 --log-level error &
pid=$!

rss() { # rss LABEL
  awk -v l="$1" '/^(VmRSS|RssAnon|RssFile):/ {s = s sprintf("  %s %d MiB", $1, $2/1024)} END {print l ":" s}' "/proc/$pid/status"
}

sleep 15; rss "idle 15s"
sleep 45; rss "idle 60s"
for signal in traces logs metrics; do
  ./bin/vigil-load -signal "$signal" -duration 5s -concurrency 2 \
    -otlp-http http://127.0.0.1:14418 -otlp-grpc 127.0.0.1:14417 \
    -remote-write http://127.0.0.1:17170/api/v1/write >/dev/null
done
rss "after load"
sleep 30; rss "30s after load"
sleep 60; rss "90s after load"
