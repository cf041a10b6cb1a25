#!/usr/bin/env bash
# Span ingest at the server's own limit: vigil on one core (taskset +
# GOMAXPROCS=1), vigil-load on the other sending OTLP/HTTP requests it
# encoded once (-signal traces-pre), so that the generator is not what sets
# the pace. Prints spans/s acknowledged, the server's CPU-seconds and spans
# per CPU-second, the generator's CPU share, spans stored and per storage
# write, and bytes per span.
#
#   bench/spans.sh [seconds]                     embedded store (DuckDB)
#   BACKEND=clickhouse bench/spans.sh [seconds]  Debian's clickhouse-server,
#       started on a temporary directory (not pinned: it gets what vigil
#       and the generator leave); bytes per span from its system.parts
#   PROFILE=file.pb.gz bench/spans.sh            also a 15 s CPU profile of
#       the server under the load (needs the admin listener: enabled here)
#
# Run from the repo root. CONCURRENCY (8) and BATCH (500 spans per request)
# shape the load; VIGIL=path runs another vigil binary (for before/after).
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-30}
BACKEND=${BACKEND:-embedded}
CONCURRENCY=${CONCURRENCY:-8}
BATCH=${BATCH:-500}
VIGIL=${VIGIL:-bin/vigil}
[ "$VIGIL" = bin/vigil ] && make -s build-go
(cd bench && go build -o ../bin/vigil-load ./cmd/vigil-load)
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT

# free_port: a port nothing listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; } # utime+stime in clock ticks
hz=$(getconf CLK_TCK)

http=$(free_port) otlp=$(free_port) grpc=$(free_port)
cfg="$work/vigil.yaml"
: >"$cfg"
if [ "$BACKEND" = clickhouse ]; then
  chtcp=$(free_port) chhttp=$(free_port)
  mkdir -p "$work/ch"
  cat >"$work/ch/config.xml" <<EOF
<yandex>
  <logger><level>warning</level><log>$work/ch/server.log</log><errorlog>$work/ch/server.err.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>$chtcp</tcp_port>
  <http_port>$chhttp</http_port>
  <path>$work/ch/data/</path>
  <tmp_path>$work/ch/tmp/</tmp_path>
  <user_files_path>$work/ch/user_files/</user_files_path>
  <format_schema_path>$work/ch/format_schemas/</format_schema_path>
  <users_config>$work/ch/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
</yandex>
EOF
  cat >"$work/ch/users.xml" <<EOF
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
EOF
  (cd "$work/ch" && exec clickhouse-server --config-file="$work/ch/config.xml" >"$work/ch/stdout.log" 2>&1) &
  chpid=$!
  pids+=("$chpid")
  for _ in $(seq 300); do curl -sf "localhost:$chhttp/ping" >/dev/null && break; sleep 0.2; done
  curl -sf "localhost:$chhttp/ping" >/dev/null || { echo "clickhouse-server did not start:"; tail -20 "$work/ch/server.err.log"; exit 1; }
  printf 'storage:\n  backend: clickhouse\n  clickhouse:\n    dsn: clickhouse://127.0.0.1:%s/vigil\n' "$chtcp" >"$cfg"
fi
printf 'admin:\n  enabled: true\n' >>"$cfg"

GOMAXPROCS=1 taskset -c 0 "$VIGIL" server --config "$cfg" --data-dir "$work/data" --http-addr "127.0.0.1:$http" \
  --otlp-http-addr "127.0.0.1:$otlp" --otlp-grpc-addr "127.0.0.1:$grpc" --log-level warn &
pid=$!
pids+=("$pid")
for _ in $(seq 600); do curl -sf "localhost:$http/-/ready" >/dev/null && break; sleep 0.2; done

stored() { curl -s "localhost:$http/metrics" | awk '$1=="vigil_stored_total{signal=\"traces\"}" {printf "%d\n", $2}'; }
writes() { curl -s "localhost:$http/metrics" | awk '$1=="vigil_storage_write_duration_seconds_count{signal=\"traces\"}" {printf "%d\n", $2}'; }
before=$(cpu_ticks "$pid")
[ "$BACKEND" = clickhouse ] && chbefore=$(cpu_ticks "$chpid")
if [ -n "${PROFILE:-}" ]; then
  (sleep $((DUR / 3)); curl -sf -o "$PROFILE" "localhost:$http/debug/pprof/profile?seconds=15") &
  profiler=$!
fi
start=$(date +%s.%N)
taskset -c 1 ./bin/vigil-load -signal traces-pre -duration "${DUR}s" -concurrency "$CONCURRENCY" -batch "$BATCH" \
  -otlp-http "http://127.0.0.1:$otlp" >"$work/load.out" &
load=$!
pids+=("$load")
wait "$load"
sed 's/^/  /' "$work/load.out"
# Acknowledged spans are durable; wait until the store's count stops moving
# (ClickHouse inserts run in batches after the acknowledgement's WAL write).
prev=-1
for _ in $(seq 120); do
  cur=$(stored); [ "$cur" = "$prev" ] && break; prev=$cur; sleep 1
done
after=$(cpu_ticks "$pid")
[ "$BACKEND" = clickhouse ] && chafter=$(cpu_ticks "$chpid")
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{print e-s}')
acked=$(awk '/^acknowledged:/ {print $2}' "$work/load.out")
cpu=$(awk -v a="$after" -v b="$before" -v hz="$hz" 'BEGIN{printf "%.1f", (a-b)/hz}')
n=$(stored) w=$(writes)
echo "  server CPU-s=$cpu over ${elapsed%.*}s (load and drain); stored=$n in $w writes ($(awk -v n="$n" -v w="$w" 'BEGIN{printf "%.0f", n/w}') spans per write)"
[ "$BACKEND" = clickhouse ] && echo "  clickhouse-server CPU-s=$(awk -v a="$chafter" -v b="$chbefore" -v hz="$hz" 'BEGIN{printf "%.1f", (a-b)/hz}')"
echo "  spans per server CPU-second: $(awk -v n="$acked" -v c="$cpu" 'BEGIN{printf "%.0f", n/c}')"
if [ -n "${PROFILE:-}" ]; then wait "$profiler"; echo "  profile: $PROFILE"; fi
kill -TERM "$pid"; wait "$pid" || true
if [ "$BACKEND" = clickhouse ]; then
  curl -s "localhost:$chhttp/" --data-binary "OPTIMIZE TABLE vigil.spans FINAL" >/dev/null || true
  bytes=$(curl -s "localhost:$chhttp/" --data-binary "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database='vigil'")
else
  bytes=$(du -sb "$work/data/spanlogs" | cut -f1)
fi
echo "  bytes on disk=$bytes bytes per span=$(awk -v b="$bytes" -v n="$acked" 'BEGIN{printf "%.1f", b/n}')"
