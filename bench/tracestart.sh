#!/usr/bin/env bash
# Trace reads at once after a start: starts vigil on a data directory
# vigil-querybench gen filled (GEN_FLAGS='--logs 0' bench/query.sh DIR
# fills one), times start -> ready, reads 100 trace ids twice as soon as it
# is ready (the first pass is the files' first touch), waits for the days'
# trace locations to be loaded (the server's info log says how long each
# took), and prints the Go heap in use and the RSS before stopping it.
# Usage: bench/tracestart.sh DATA-DIR [vigil binary] (from the repo root;
# alternate two binaries, A B A B, to compare them).
set -euo pipefail
cd "$(dirname "$0")/.."
data=$1
bin=${2:-bin/vigil}
[ -x bin/vigil-querybench ] || (cd bench && go build -o ../bin/vigil-querybench ./cmd/vigil-querybench)
log=$(mktemp)
free_port() { # free_port FIRST -> the first port from FIRST nobody listens on
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}
http=$(free_port $((30000 + RANDOM % 20000))); grpc=$(free_port $((http + 1))); otlp=$(free_port $((grpc + 1)))
"$bin" server --data-dir "$data" --http-addr "127.0.0.1:$http" --otlp-grpc-addr "127.0.0.1:$grpc" \
  --otlp-http-addr "127.0.0.1:$otlp" --log-level info 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
t0=$(date +%s.%N)
until curl -sf "127.0.0.1:$http/-/ready" >/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "vigil exited before it was ready" >&2; exit 1; fi
  sleep 0.05
done
echo "ready after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}') s"
for pass in cold warm; do
  echo "$pass: $(./bin/vigil-querybench run --url "http://127.0.0.1:$http" --data-dir "$data" \
    --only "trace by id" --n 100 --warmup 0 | grep '^| trace by id' | cut -d'|' -f3-5)"
done
days=$(find "$data/spanlogs" -name 'spanlog-*.duckdb' | wc -l)
for _ in $(seq 600); do
  [ "$(grep -c 'trace index of a day loaded' "$log")" -ge "$days" ] && break
  sleep 0.1
done
grep 'trace index of a day loaded' "$log" |
  sed -E 's/.*spanlog-([0-9]+)\.duckdb","traces":([0-9]+),"took":([0-9]+).*/\1 \2 \3/' |
  awk '{printf "locations of %s: %d traces loaded in %.0f ms\n", $1, $2, $3/1e6}'
sleep 1
heap=$(curl -s "127.0.0.1:$http/metrics" | awk '/^go_memstats_heap_inuse_bytes / {printf "%.0f", $2/1048576}')
echo "Go heap in use $heap MiB, RSS $(awk '$1=="VmRSS:" {printf "%.0f", $2/1024}' "/proc/$pid/status") MiB"
t0=$(date +%s.%N)
kill -TERM "$pid"; wait "$pid" || true
echo "stopped after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}') s"
