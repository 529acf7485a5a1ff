#!/usr/bin/env bash
# The gateway with several nodes, beside one node, in one run, one table. Each row runs
# SESSIONS (4) sandbox sessions with zero delay at concurrency 3 each:
#   sqlite, 1 node       the embedded default
#   postgres, 1 node     one gateway on PostgreSQL
#   postgres, 2 nodes    two gateways on that PostgreSQL; the sessions spread 2/2
# For each: enqueue (wrk -t2 -cCONNS for DURATION against every node at once, queues paused:
# accepted, durable sends/s summed over the nodes, and the worst node's p99), then drain
# (DRAIN_JOBS, 20,000, spread over the sessions: jobs/s from unpausing until the last is
# completed, counted in the database).
# Usage: bench/cluster.sh [duration=10s] [connections=32]
# Needs: wrk, curl, python3, Debian's postgresql package. Builds the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
CONNS=${2:-32}
SESSIONS=${SESSIONS:-4}
DRAIN_JOBS=${DRAIN_JOBS:-20000}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/wa-gateway
fi
WORK=$(mktemp -d)
PIDS=()
PG_UP=false
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  if $PG_UP; then pg_stop; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
. bench/common.sh
SESSION_LIST=$(seq -s, -f 's%g' 1 "$SESSIONS")
export SESSION_LIST

# start_node DIR ID: a gateway in DIR as node ID; sets PORT_<ID> and TOKEN_<ID>.
start_node() {
  local dir=$1 id=$2 port; port=$(free_port)
  mkdir -p "$dir"
  { bench_toml "$port"; printf '[pacing]\nenabled = false\n[cluster]\nnode_id = "%s"\n' "$id"; } \
    > "$dir/gateway.toml"
  GATEWAY_ADMIN_EMAIL=bench@example.com GATEWAY_ADMIN_PASSWORD=bench-password \
    "$BIN" serve --config "$dir/gateway.toml" 2>>"$dir/gateway.log" &
  PIDS+=($!)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:$port/health" >/dev/null || { cat "$dir/gateway.log" >&2; exit 1; }
  local token
  token=$(curl -fs -H 'Content-Type: application/json' \
    -d '{"email":"bench@example.com","password":"bench-password"}' \
    "http://127.0.0.1:$port/api/auth/login" | json 'd["accessToken"]')
  printf -v "PORT_$id" %s "$port"
  printf -v "TOKEN_$id" %s "$token"
}
api() { # node, curl arguments
  local port="PORT_$1" token="TOKEN_$1"; shift
  curl -fs -H "Authorization: Bearer ${!token}" -H 'Content-Type: application/json' \
    "http://127.0.0.1:${!port}$1" "${@:2}"
}
pause_all() { for n in "$@"; do api "$n" /api/whatsapp/queue/config -d "{\"paused\":$PAUSED}" >/dev/null; done; }
STORE_COUNT=
completed() {
  case $STORE_COUNT in
    pg) pg_count "SELECT count(*) FROM jobs WHERE status = 'completed'" ;;
    *) api a /api/whatsapp/status | grep -o '"completed":[0-9]*' | head -1 | cut -d: -f2 ;;
  esac
}

# row NAME NODES...: enqueue then drain on nodes already started (first one: a).
row() {
  local name=$1; shift
  local nodes=("$@")
  # Only the bench's sessions run (the default one would tilt the spread).
  api a /api/sessions/default/stop -X POST -d '{}' >/dev/null || true
  for s in $(echo "$SESSION_LIST" | tr , ' '); do
    api a /api/sessions -d "{\"name\":\"$s\",\"driver\":\"sandbox\"}" >/dev/null ||
      api a "/api/sessions/$s/start" -X POST -d '{}' >/dev/null || true
  done
  # Every session runs somewhere, spread over the nodes.
  for _ in $(seq 200); do
    local placed; placed=$(api a /api/sessions | python3 -c '
import json,sys
d = json.load(sys.stdin)
rows = d["sessions"] if isinstance(d, dict) else d
want = set(sys.argv[1].split(","))
print(" ".join(sorted(r["node"] or "-" for r in rows if r["name"] in want)))' "$SESSION_LIST")
    local spread; spread=$(echo "$placed" | tr ' ' '\n' | sort | uniq -c | awk '{print $1}' | sort -n | tr '\n' ' ')
    if ! echo "$placed" | grep -q -- -; then
      if [ ${#nodes[@]} -eq 1 ] || [ "$(echo "$spread" | awk '{print $NF - $1}')" -le 1 ] && [ "$(echo "$placed" | tr ' ' '\n' | sort -u | wc -l)" -eq ${#nodes[@]} ]; then break; fi
    fi
    sleep 0.25
  done
  echo "== $name: sessions on $placed"
  PAUSED=true pause_all "${nodes[@]}"
  local pids=() i=0
  for n in "${nodes[@]}"; do
    local port="PORT_$n" token="TOKEN_$n"
    TOKEN=${!token} wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s bench/send-sessions.lua \
      "http://127.0.0.1:${!port}/api/whatsapp/send-message" > "$WORK/wrk-$name-$n.txt" &
    pids+=($!)
  done
  wait "${pids[@]}"
  local per_s=0 p99=0
  for n in "${nodes[@]}"; do
    local line; line=$(grep BENCH "$WORK/wrk-$name-$n.txt")
    per_s=$(python3 -c "print(int($per_s + $(echo "$line" | grep -o 'accepted_per_s=[0-9]*' | cut -d= -f2)))")
    p99=$(python3 -c "print(max($p99, $(echo "$line" | grep -o 'p99_ms=[0-9.]*' | cut -d= -f2)))")
  done
  echo "enqueue: $per_s sends/s over ${#nodes[@]} node(s), p99 $p99 ms"
  # Drain DRAIN_JOBS of them (the rest waits).
  local before target t0 t1
  before=$(completed)
  target=$((before + DRAIN_JOBS))
  t0=$(date +%s%3N)
  PAUSED=false pause_all "${nodes[@]}"
  while [ "$(completed)" -lt "$target" ]; do sleep 0.05; done
  t1=$(date +%s%3N)
  PAUSED=true pause_all "${nodes[@]}"
  local rate; rate=$(python3 -c "print('%.0f' % ($DRAIN_JOBS / (($t1 - $t0) / 1000)))")
  echo "drain: $DRAIN_JOBS jobs in $(( t1 - t0 )) ms = $rate jobs/s"
  printf '| %-18s | %9s | %8s | %9s |\n' "$name" "$per_s" "$p99" "$rate" >> "$WORK/table"
}

STORE_COUNT=sqlite
start_node "$WORK/sqlite" a
row "sqlite, 1 node" a
for p in "${PIDS[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
PIDS=()

. bench/pg.sh
PG_UP=true
STORE_COUNT=pg
start_node "$WORK/pg-a" a
row "postgres, 1 node" a
for p in "${PIDS[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
PIDS=()
pg_count "TRUNCATE jobs CASCADE" >/dev/null
start_node "$WORK/pg-a2" a
start_node "$WORK/pg-b2" b
row "postgres, 2 nodes" a b

echo
echo "| setup              | enqueue/s | p99 (ms) | drain/s   |"
echo "| ------------------ | --------- | -------- | --------- |"
cat "$WORK/table"
