#!/usr/bin/env bash
# Runs every benchmark scenario REPEAT times (default 3) at the sizes recorded in BENCHMARKS.md,
# with release builds, and prints the medians. Results go to bench/results/runs/<label>/.
#   bash bench/run-all.sh [label]            (REPEAT=1 SCENARIOS="fanout steady" to narrow it)
set -euo pipefail
cd "$(dirname "$0")/.."
label="${1:-$(date -u +%Y%m%d)}"
repeat="${REPEAT:-3}"
scenarios="${SCENARIOS:-idle idle-hub fanout steady query reconnect signin}"
out="bench/results/runs/$label"
mkdir -p "$out"
cargo build --release --bin presence-gateway --bin presence-gateway-bench
bench=target/release/presence-gateway-bench

run() {
  local name="$1"; shift
  for i in $(seq "$repeat"); do
    echo "== $name run $i/$repeat: $*" >&2
    "$bench" "$@" --out "$out" --quiet
  done
}

for s in $scenarios; do
  case "$s" in
    idle)      run S1 idle --sessions 18000 --steps 6 --contacts 50 --sessions-per-user 10 --idle-seconds 30 ;;
    idle-hub)  run S1-hub idle --sessions 100000 --steps 5 --contacts 50 --sessions-per-user 20 --no-poll --idle-seconds 10 ;;
    fanout)    run S2 fanout --watchers 10000 --changes 5 --sessions-per-user 10 ;;
    steady)    run S3 steady --sessions 10000 --subscriptions 10 --watchers-per-change 100 --rate 500 --seconds 30 ;;
    query)     run S4 query --connections 100 --uris 20 --users 2000 --seconds 20 ;;
    reconnect) run S5 reconnect --sessions 16000 --subscriptions 10 --watchers-per-change 100 --rate 200 --before 5 --after 15 ;;
    signin)    run S6 signin --users 300 --contacts 50 --concurrency 4 ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done
"$bench" summarize "$out"/*.json | tee "$out/summary.md"
