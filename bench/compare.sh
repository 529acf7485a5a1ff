#!/usr/bin/env bash
# The whole comparison in one run, one table: bench/bench.sh against wa-gateway with the four
# bundled plugins and without plugins, optionally another build of it (BEFORE=path, with the
# plugins), and the seed design's own stack (bench/seed) with synchronous=FULL and tuned
# (synchronous=NORMAL), one after the other on this machine.
# Usage: bench/compare.sh [duration=15s] [connections=32]
#        BEFORE=/path/to/old/wa-gateway bench/compare.sh      adds a row for that build
#        (every run has a row for the gateway on PostgreSQL: Debian's postgresql package)
#        REPEAT=3 bench/compare.sh ...   three rounds, the rows alternating; each cell is then
#        the median and, in brackets, the range (this VM's speed moves by a third run to run)
# Needs what bench.sh needs, and node + npm for the seed stack.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15s}
CONNS=${2:-32}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/wa-gateway
fi
RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT
row() { # name, then the environment of its bench.sh run
  local name=$1; shift
  echo "== $name" >&2
  env "$@" bench/bench.sh "$DURATION" "$CONNS" | grep '^RESULT' | sed "s/^RESULT /$name /" >> "$RESULTS"
}
for _ in $(seq "${REPEAT:-1}"); do
  row "wa-gateway, 4 plugins" BIN="$BIN" PLUGINS=bundled
  row "wa-gateway, no plugins" BIN="$BIN"
  if [ -n "${BEFORE:-}" ]; then row "before, 4 plugins" BIN="$BEFORE" PLUGINS=bundled; fi
  row "wa-gateway on PostgreSQL, 4 plugins" BIN="$BIN" PLUGINS=bundled STORE=postgres
  row "seed stack" TARGET=seed SYNC=FULL
  row "seed stack, tuned" TARGET=seed SYNC=NORMAL
done
python3 - "$RESULTS" <<'PY'
import sys
rows, order = {}, []
for line in open(sys.argv[1]):
    name, key, value = line.rstrip("\n").rsplit(" ", 2)
    if name not in rows:
        rows[name] = {}
        order.append(name)
    rows[name].setdefault(key, []).append(float(value))

def cell(values):
    if not values:
        return "-"
    v = sorted(values)
    whole = v[-1] >= 100 or all(x == int(x) for x in v)
    fmt = (lambda x: f"{x:,.0f}") if whole else (lambda x: f"{x:.2f}")
    median = v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2
    return fmt(median) if len(v) == 1 else f"{fmt(median)} ({fmt(v[0])}–{fmt(v[-1])})"
cols = [("idle_rss_mib", "idle RSS MiB"), ("rss_enqueue_mib", "RSS accepting MiB"),
        ("rss_drain_mib", "RSS draining MiB"), ("enqueue_per_s", "sends/s"),
        ("enqueue_p99_ms", "p99 ms"), ("drain_c3_per_s", "drain c3 jobs/s"),
        ("drain_c50_per_s", "drain c50 jobs/s"), ("burst_s", "10k posted+drained c50 s")]
print("| stack | " + " | ".join(h for _, h in cols) + " |")
print("| --- " * (len(cols) + 1) + "|")
for name in order:
    print(f"| {name} | " + " | ".join(cell(rows[name].get(k, [])) for k, _ in cols) + " |")
PY
