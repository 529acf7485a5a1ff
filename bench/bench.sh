#!/usr/bin/env bash
# Measures the gateway's throughput and memory on this machine:
#  1. burst: the queue runs at concurrency 50 while wrk posts BURST (10,000) sends over 50
#     connections; the time from the first post until the last of them is completed.
#  2. enqueue: wrk posts send-message with a token (queue paused, so only accepting is measured);
#     every 202 is fsynced (synchronous=FULL) before it is sent.
#  3. drain: accepted jobs go through the sandbox driver with zero delay, DRAIN_JOBS (10,000) at
#     a time, at each concurrency of DRAIN_CONCURRENCY ("3 50"; 3 is the default).
#  4. RSS: sampled every 0.25 s all along; the last table gives the lowest and highest RSS of
#     each phase.
# Every figure is also printed as a "RESULT name value" line (bench/compare.sh reads them).
# Usage: bench/bench.sh [duration=10s] [connections=64]
#        PLUGINS=bundled bench/bench.sh ...   the same with the four bundled WASM plugins loaded
#        BIN=path/to/wa-gateway bench/bench.sh ...   measure that binary (no build), e.g. to
#        compare two versions in one run
#        TARGET=seed [SYNC=NORMAL] bench/bench.sh ...   measure the seed design's own stack
#        (bench/seed: Express + better-sqlite3 + jsonwebtoken + bcryptjs; needs node and npm)
#        STORE=postgres bench/bench.sh ...   the gateway on PostgreSQL: a server of its own from
#        Debian's postgresql package (default settings, fsync on), started and removed here
# Needs: wrk, curl, python3 (apt-get install -y wrk curl). Builds the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
CONNS=${2:-64}
DRAIN_JOBS=${DRAIN_JOBS:-10000}
BURST=${BURST:-10000}
TARGET=${TARGET:-gateway}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
if [ "$TARGET" = seed ]; then
  command -v node >/dev/null || { echo "node is missing" >&2; exit 1; }
  [ -d bench/seed/node_modules ] || npm ci --prefix bench/seed --no-audit --no-fund >&2
elif [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/wa-gateway
fi
. bench/common.sh
WORK=$(mktemp -d)
PG_STOP=true
trap 'kill $GW_PID 2>/dev/null || true; wait $GW_PID 2>/dev/null || true; eval "$PG_STOP"; rm -rf "$WORK"' EXIT
if [ "${STORE:-sqlite}" = postgres ]; then
  . bench/pg.sh
  PG_STOP=pg_stop
fi
PORT=$(free_port)
bench_toml "$PORT" > "$WORK/gateway.toml"
# The queue's own speed, not pacing's gaps (a binary from before pacing has no [pacing]).
if [ "$TARGET" = gateway ] && grep -q first_contact_per_day "$BIN"; then
  printf '[pacing]\nenabled = false\n' >> "$WORK/gateway.toml"
fi
if [ "${PLUGINS:-}" = "bundled" ]; then
  # The [[plugins]] part of the repository's gateway.toml, with absolute paths.
  sed -n '/^\[\[plugins\]\]/,$p' gateway.toml | sed "s|path = \"plugins/|path = \"$PWD/plugins/|" >> "$WORK/gateway.toml"
  echo "with the four bundled plugins"
fi
BASE="http://127.0.0.1:$PORT"
start_gateway() {
  if [ "$TARGET" = seed ]; then
    PORT=$PORT DB="$WORK/seed.db" SYNC=${SYNC:-FULL} ADMIN_EMAIL=bench@example.com \
      ADMIN_PASSWORD=bench-password node bench/seed/server.js 2>>"$WORK/gateway.log" &
  else
    GATEWAY_ADMIN_EMAIL=bench@example.com GATEWAY_ADMIN_PASSWORD=bench-password \
      "$BIN" serve --config "$WORK/gateway.toml" 2>>"$WORK/gateway.log" &
  fi
  GW_PID=$!
  for _ in $(seq 100); do curl -fs "$BASE/health" >/dev/null && return; sleep 0.1; done
  echo "gateway did not start" >&2; cat "$WORK/gateway.log" >&2; exit 1
}
api() { curl -fs -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
rss_kb() { awk "/^$1:/ {print \$2}" /proc/$GW_PID/status; }

start_gateway
# RSS over time: one "ms phase kB" line every 0.25 s; `phase` names what runs now.
echo idle > "$WORK/phase"
( while kill -0 "$GW_PID" 2>/dev/null; do
    echo "$(date +%s%3N) $(cat "$WORK/phase") $(rss_kb VmRSS)" >> "$WORK/rss.txt"; sleep 0.25
  done ) &
SAMPLER=$!
phase() { echo "$1" > "$WORK/phase"; }
TOKEN=$(curl -fs -H 'Content-Type: application/json' -d '{"email":"bench@example.com","password":"bench-password"}' "$BASE/api/auth/login" | json 'd["accessToken"]')
export TOKEN
result() { echo "RESULT $1 $2"; }
sleep 1
IDLE=$(( $(rss_kb VmRSS) / 1024 ))
echo "idle RSS: $IDLE MiB"
result idle_rss_mib "$IDLE"

# Field from a JSON answer without starting an interpreter per poll (it would steal CPU).
field() { grep -o "\"$1\":[^,}]*" | head -1 | cut -d: -f2- | tr -d '"'; }
# Seconds from t0 (ms, this machine's clock) to the newest completed job's finishedAt (the
# target's own clock, on the same machine).
since_t0() {
  local last; last=$(api "$BASE/api/whatsapp/jobs?status=completed&limit=1" | field finishedAt)
  python3 -c "
import datetime
end = datetime.datetime.fromisoformat('$last'.replace('Z', '+00:00')).timestamp() * 1000
print('%.3f' % ((end - $1) / 1000))"
}

if [ "$BURST" -gt 0 ]; then
  echo "== burst: $BURST sends posted over 50 connections while the queue runs at concurrency 50 =="
  api -d '{"concurrency":50,"paused":false}' "$BASE/api/whatsapp/queue/config" >/dev/null
  phase burst
  T0=$(date +%s%3N)
  # wrk runs for its whole duration even once its threads have stopped: it is ended here.
  BURST=$BURST wrk -t2 -c50 -d60s -s bench/send-burst.lua "$BASE/api/whatsapp/send-message" >"$WORK/burst.txt" &
  WRK=$!
  while :; do
    S=$(api "$BASE/api/whatsapp/status")
    [ "$(echo "$S" | field completed)" -ge "$BURST" ] && [ "$(echo "$S" | field waiting)" -eq 0 ] \
      && [ "$(echo "$S" | field active)" -eq 0 ] && break
    sleep 0.02
  done
  kill "$WRK" 2>/dev/null; wait "$WRK" 2>/dev/null || true
  phase after-burst
  N=$(echo "$S" | field completed)
  SECS=$(since_t0 "$T0")
  echo "$N jobs posted and drained in ${SECS}s"
  result burst_jobs "$N"
  result burst_s "$SECS"
fi

api -d '{"paused":true}' "$BASE/api/whatsapp/queue/config" >/dev/null
phase enqueue
echo "== enqueue: wrk -t2 -c$CONNS -d$DURATION (queue paused) =="
wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s bench/send-message.lua "$BASE/api/whatsapp/send-message" | tee "$WORK/wrk.txt" | grep -E 'Requests/sec|Latency|99%|BENCH|Non-2xx|Socket errors' || true
result enqueue_per_s "$(grep -o 'accepted_per_s=[0-9]*' "$WORK/wrk.txt" | cut -d= -f2)"
result enqueue_p99_ms "$(grep -o 'p99_ms=[0-9.]*' "$WORK/wrk.txt" | cut -d= -f2)"
phase after-enqueue
WAITING=$(api "$BASE/api/whatsapp/status" | json 'd["queue"]["waiting"]')
echo "jobs accepted and on disk: $WAITING"

drain() { # concurrency, jobs to drain
  local conc=$1 n=$2
  api -d "{\"concurrency\":$conc,\"paused\":true}" "$BASE/api/whatsapp/queue/config" >/dev/null
  sleep 0.2
  local before target; before=$(api "$BASE/api/whatsapp/status" | field completed)
  target=$((before + n))
  local t0; t0=$(date +%s%3N)
  phase "drain-c$conc"
  api -d '{"paused":false}' "$BASE/api/whatsapp/queue/config" >/dev/null
  while [ "$(api "$BASE/api/whatsapp/status" | field completed)" -lt "$target" ]; do sleep 0.05; done
  api -d '{"paused":true}' "$BASE/api/whatsapp/queue/config" >/dev/null
  phase "after-drain-c$conc"
  sleep 0.2
  local secs rate; secs=$(since_t0 "$t0")
  rate=$(python3 -c "print('%.0f' % ($n / $secs))")
  echo "drain at concurrency $conc: $n jobs in ${secs}s = $rate jobs/s"
  result "drain_c${conc}_per_s" "$rate"
}
DRAINS=${DRAIN_CONCURRENCY:-3 50}
for c in $DRAINS; do
  if [ "$(api "$BASE/api/whatsapp/status" | field waiting)" -ge "$DRAIN_JOBS" ]; then
    drain "$c" "$DRAIN_JOBS"
  else
    echo "not enough jobs left for a drain of $DRAIN_JOBS at concurrency $c" >&2
  fi
done
# SMAPS=1: the ten mappings holding the most memory at the end, to see where it goes.
if [ -n "${SMAPS:-}" ]; then
  awk '/^[0-9a-f]+-[0-9a-f]+ / { name = $6 ? $6 : "[anon " $1 "]" } /^Rss:/ { print $2, name }' \
    /proc/$GW_PID/smaps | sort -rn | head -10
fi
echo "peak RSS overall: $(( $(rss_kb VmHWM) / 1024 )) MiB"
result peak_rss_mib $(( $(rss_kb VmHWM) / 1024 ))
kill "$SAMPLER" 2>/dev/null || true
echo "== RSS over time (sampled every 0.25 s) =="
awk '{ n[$2]++; if (!($2 in lo) || $3 < lo[$2]) lo[$2] = $3; if ($3 > hi[$2]) hi[$2] = $3;
       if (!($2 in first)) { first[$2] = NR; order[++k] = $2 } }
     END { printf "%-18s %8s %9s %9s\n", "phase", "samples", "min MiB", "max MiB";
           for (i = 1; i <= k; i++) { p = order[i]; printf "%-18s %8d %9.1f %9.1f\n", p, n[p], lo[p] / 1024, hi[p] / 1024 } }' "$WORK/rss.txt"
# The highest RSS while accepting (the enqueue phase) and while draining (every drain phase).
awk '$2 == "enqueue" && $3 > e { e = $3 } $2 ~ /^drain-c/ && $3 > d { d = $3 }
     END { printf "RESULT rss_enqueue_mib %.0f\nRESULT rss_drain_mib %.0f\n", e / 1024, d / 1024 }' "$WORK/rss.txt"
