#!/usr/bin/env bash
# Measures the gateway's throughput on this machine:
#  1. enqueue: wrk posts send-message with a token (queue paused, so only accepting is measured);
#     every 202 is fsynced (synchronous=FULL) before it is sent.
#  2. drain: accepted jobs go through the sandbox driver with zero delay, 10,000 at a time, at
#     concurrency 3 (the default), 32 and 128 (DRAIN_CONCURRENCY, DRAIN_JOBS to change).
#  3. RSS: idle after start, peak (VmHWM) after the enqueue load, and sampled every 0.25 s all
#     along: the last table gives the lowest and highest RSS of each phase.
# Usage: bench/bench.sh [duration=10s] [connections=64]
#        PLUGINS=bundled bench/bench.sh ...   the same with the four bundled WASM plugins loaded
#        BIN=path/to/wa-gateway bench/bench.sh ...   measure that binary (no build), e.g. to
#        compare two versions in one run
# Needs: wrk, curl, python3 (apt-get install -y wrk curl). Builds the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
CONNS=${2:-64}
DRAIN_JOBS=${DRAIN_JOBS:-10000}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/wa-gateway
fi
WORK=$(mktemp -d)
trap 'kill $GW_PID 2>/dev/null || true; wait $GW_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/gateway.toml" <<TOML
[server]
bind = "127.0.0.1:$PORT"
[storage]
data_dir = "data"
[log]
level = "warn"
[whatsapp.sandbox]
delay = "0ms"
outbox = "data/outbox.jsonl"
TOML
# The queue's own speed, not pacing's gaps (a binary from before pacing has no [pacing]).
if grep -q first_contact_per_day "$BIN"; then
  printf '[pacing]\nenabled = false\n' >> "$WORK/gateway.toml"
fi
if [ "${PLUGINS:-}" = "bundled" ]; then
  # The [[plugins]] part of the repository's gateway.toml, with absolute paths.
  sed -n '/^\[\[plugins\]\]/,$p' gateway.toml | sed "s|path = \"plugins/|path = \"$PWD/plugins/|" >> "$WORK/gateway.toml"
  echo "with the four bundled plugins"
fi
BASE="http://127.0.0.1:$PORT"
start_gateway() {
  GATEWAY_ADMIN_EMAIL=bench@example.com GATEWAY_ADMIN_PASSWORD=bench-password \
    "$BIN" serve --config "$WORK/gateway.toml" 2>>"$WORK/gateway.log" &
  GW_PID=$!
  for _ in $(seq 100); do curl -fs "$BASE/health" >/dev/null && return; sleep 0.1; done
  echo "gateway did not start" >&2; cat "$WORK/gateway.log" >&2; exit 1
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
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
sleep 1
echo "idle RSS: $(( $(rss_kb VmRSS) / 1024 )) MiB"

api -d '{"paused":true}' "$BASE/api/whatsapp/queue/config" >/dev/null
phase enqueue
echo "== enqueue: wrk -t2 -c$CONNS -d$DURATION (queue paused) =="
wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s bench/send-message.lua "$BASE/api/whatsapp/send-message" | tee "$WORK/wrk.txt" | grep -E 'Requests/sec|Latency|99%|BENCH|Non-2xx|Socket errors' || true
echo "peak RSS under enqueue load: $(( $(rss_kb VmHWM) / 1024 )) MiB"
phase after-enqueue
WAITING=$(api "$BASE/api/whatsapp/status" | json 'd["queue"]["waiting"]')
echo "jobs accepted and on disk: $WAITING"

# Field from a JSON answer without starting an interpreter per poll (it would steal CPU).
field() { grep -o "\"$1\":[^,}]*" | head -1 | cut -d: -f2- | tr -d '"'; }
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
  # The end is the newest completed job's finishedAt, by the gateway's own clock.
  local last; last=$(api "$BASE/api/whatsapp/jobs?status=completed&limit=1" | field finishedAt)
  python3 -c "
import datetime
end = datetime.datetime.fromisoformat('$last'.replace('Z', '+00:00')).timestamp() * 1000
secs = (end - $t0) / 1000
print('drain at concurrency $conc: $n jobs in %.2fs = %.0f jobs/s' % (secs, $n / secs))"
}
DRAINS=${DRAIN_CONCURRENCY:-3 32 128}
for c in $DRAINS; do
  if [ "$(api "$BASE/api/whatsapp/status" | field waiting)" -ge "$DRAIN_JOBS" ]; then
    drain "$c" "$DRAIN_JOBS"
  else
    echo "not enough jobs left for a drain of $DRAIN_JOBS at concurrency $c" >&2
  fi
done
echo "peak RSS overall: $(( $(rss_kb VmHWM) / 1024 )) MiB"
kill "$SAMPLER" 2>/dev/null || true
echo "== RSS over time (sampled every 0.25 s) =="
awk '{ n[$2]++; if (!($2 in lo) || $3 < lo[$2]) lo[$2] = $3; if ($3 > hi[$2]) hi[$2] = $3;
       if (!($2 in first)) { first[$2] = NR; order[++k] = $2 } }
     END { printf "%-18s %8s %9s %9s\n", "phase", "samples", "min MiB", "max MiB";
           for (i = 1; i <= k; i++) { p = order[i]; printf "%-18s %8d %9.1f %9.1f\n", p, n[p], lo[p] / 1024, hi[p] / 1024 } }' "$WORK/rss.txt"
