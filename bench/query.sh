#!/usr/bin/env bash
# Query benchmark on a large store: fills a data directory with spans, log
# records and their RED series spread over a day (vigil-querybench gen;
# 10M spans + 10M log records, 50 services, unless GEN_FLAGS says otherwise),
# starts vigil on it, times each query API sequentially (vigil-querybench
# run), stops vigil, then times RED computed by SQL over the stored spans
# (vigil-querybench red-sql). Prints the Markdown table, disk usage and the
# server's RSS.
# Usage: bench/query.sh [data-dir] [requests per query] (from the repo root).
# A data directory gen already filled is reused; without one a temporary
# directory is filled and removed at the end.
# With VICTORIALOGS_BIN=/path/to/victoria-logs, gen also sends the log
# records to a VictoriaLogs kept in data-dir/victorialogs, and afterwards
# vigil and VictoriaLogs are started again, each pinned to CPU 0 with
# GOMAXPROCS=1 as make bench-peers pins them, for the same log searches on
# both (vigil-querybench peer).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${2:-50}
make -s build-go   # the query APIs do not need the web UI built
(cd bench && go build -o ../bin/vigil-querybench ./cmd/vigil-querybench)
if [ -n "${1:-}" ]; then data=$1; keep=1; else data=$(mktemp -d); keep=0; fi
log=$(mktemp)
pid=
vlpid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  if [ -n "$vlpid" ]; then kill "$vlpid" 2>/dev/null || true; fi
  rm -f "$log"
  if [ "$keep" = 0 ]; then rm -rf "$data"; fi
}
trap cleanup EXIT

free_port() { # free_port FIRST -> the first port from FIRST nobody listens on
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}
vl=${VICTORIALOGS_BIN:-}
start_vl() { # start_vl [command prefix...] -> VictoriaLogs on $data/victorialogs at $vlurl
  vlurl="http://127.0.0.1:$(free_port 19428)"
  "$@" "$vl" -storageDataPath="$data/victorialogs" -httpListenAddr="${vlurl#http://}" \
    -retentionPeriod=100y -loggerLevel=WARN 2>>"$log" &
  vlpid=$!
  until curl -sf "$vlurl/health" >/dev/null; do
    if ! kill -0 "$vlpid" 2>/dev/null; then cat "$log"; echo "VictoriaLogs exited before it was ready" >&2; exit 1; fi
    sleep 0.2
  done
}
stop_vl() { kill -TERM "$vlpid"; wait "$vlpid" || true; vlpid=; }

if [ ! -f "$data/querybench.json" ]; then
  vlflag=
  if [ -n "$vl" ]; then start_vl; vlflag="--victorialogs $vlurl"; fi
  # shellcheck disable=SC2086 # GEN_FLAGS and vlflag are lists of flags
  ./bin/vigil-querybench gen --data-dir "$data" ${GEN_FLAGS:-} $vlflag
  if [ -n "$vl" ]; then stop_vl; fi
elif [ -n "$vl" ] && [ ! -d "$data/victorialogs" ]; then
  echo "$data was filled without VictoriaLogs; fill a fresh directory with VICTORIALOGS_BIN set" >&2
  exit 1
fi
http=$(free_port 17170); grpc=$(free_port $((http + 1))); otlp=$(free_port $((grpc + 1)))
./bin/vigil server --data-dir "$data" --http-addr "127.0.0.1:$http" \
  --otlp-grpc-addr "127.0.0.1:$grpc" --otlp-http-addr "127.0.0.1:$otlp" --log-level warn 2>"$log" &
pid=$!
t0=$(date +%s.%N)
until curl -sf "127.0.0.1:$http/-/ready" >/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "vigil exited before it was ready" >&2; exit 1; fi
  sleep 0.2
done
echo "vigil ready after $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s (data dir opened, WALs replayed)"
rss() { awk -v f="$1" '$1==f":" {printf "%.0f MiB", $2/1024}' "/proc/$pid/status"; }
echo "server RSS before the queries: $(rss VmRSS)"
echo
./bin/vigil-querybench run --url "http://127.0.0.1:$http" --data-dir "$data" --n "$N"
echo
echo "server RSS after the queries: $(rss VmRSS) (peak $(rss VmHWM))"
kill -TERM "$pid"; wait "$pid" || true; pid=
if [ -s "$log" ]; then echo "server log (warnings and errors):"; sed 's/^/  /' "$log" | tail -20; fi
echo
./bin/vigil-querybench red-sql --data-dir "$data"

if [ -n "$vl" ]; then
  # Both pinned to the same CPU, as make bench-peers pins servers; only
  # one request is in flight at a time.
  echo
  http=$(free_port 17170); grpc=$(free_port $((http + 1))); otlp=$(free_port $((grpc + 1)))
  GOMAXPROCS=1 taskset -c 0 ./bin/vigil server --data-dir "$data" --http-addr "127.0.0.1:$http" \
    --otlp-grpc-addr "127.0.0.1:$grpc" --otlp-http-addr "127.0.0.1:$otlp" --log-level warn 2>>"$log" &
  pid=$!
  until curl -sf "127.0.0.1:$http/-/ready" >/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "vigil exited before it was ready" >&2; exit 1; fi
    sleep 0.2
  done
  GOMAXPROCS=1 start_vl taskset -c 0
  ./bin/vigil-querybench peer --vigil "http://127.0.0.1:$http" --victorialogs "$vlurl" --data-dir "$data" --n "$N"
  kill -TERM "$pid"; wait "$pid" || true; pid=
  stop_vl
fi
echo
echo "disk usage:"
du -sh "$data/spanlogs" "$data/tsdb" | sed 's/^/  /'
if [ -n "$vl" ]; then du -sh "$data/victorialogs" | sed 's/^/  /'; fi
