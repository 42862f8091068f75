#!/usr/bin/env bash
# The cluster measurements of BENCHMARKS.md ("Several nodes"): S3 and S2 on one standalone node
# and across two nodes (publishers on node 1, watchers on both), a light fan-out for the latency a
# change needs to cross nodes, and sessions held across four nodes. Runs are interleaved
# (standalone, cluster, standalone, …) so that the machine's other load falls on both alike; the
# light fan-out (100 watchers, 50 changes 100 ms apart) measures latency without queueing.
# Every node, the standalone one included, uses a PostgreSQL schema of the run's own on
# $POSTGRES (default postgres://postgres@127.0.0.1:5432/test); the cluster a redis-server the run
# starts. S3 runs at 200 changes/s (RATE), not S3's usual 500: on this machine a PostgreSQL store
# does not take 500 stamped publishes per second, with or without a cluster, and the runs would
# measure the store's queue. The held-sessions run lets the store commit without waiting for the
# disk (--postgres-async-commit): its 79,200 sessions write ~4 million subscription rows, one
# session per commit, which with synchronous commits on this machine's shared disk takes over an
# hour. Results go to bench/results/runs/cluster/<label>/.
#   bash bench/run-cluster.sh [label]        (REPEAT=1 PARTS="steady fanout cross held" to narrow it;
#   S3_EXTRA="--postgres-async-commit" adds arguments to the S3 runs, standalone and cluster alike)
set -euo pipefail
cd "$(dirname "$0")/.."
label="${1:-$(date -u +%Y%m%d)}"
repeat="${REPEAT:-3}"
parts="${PARTS:-steady fanout cross held}"
postgres="${POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
out="bench/results/runs/cluster/$label"
mkdir -p "$out"
cargo build --release --bin presence-gateway --bin presence-gateway-bench
bench=target/release/presence-gateway-bench

run() {
  local dir="$1"; shift
  mkdir -p "$out/$dir"
  echo "== $dir: $*" >&2
  "$bench" "$@" --postgres "$postgres" --out "$out/$dir" --quiet
}

for part in $parts; do
  for i in $(seq "$repeat"); do
    case "$part" in
      steady)
        s3=(steady --sessions 10000 --subscriptions 10 --watchers-per-change 100 --rate "${RATE:-200}" --seconds 30 ${S3_EXTRA:-})
        run s3-standalone "${s3[@]}" --nodes 1
        run s3-2-nodes "${s3[@]}" --nodes 2 ;;
      fanout)
        s2=(fanout --watchers 10000 --changes 5 --sessions-per-user 10)
        run s2-standalone "${s2[@]}" --nodes 1
        run s2-2-nodes "${s2[@]}" --nodes 2 ;;
      cross)
        light=(fanout --watchers 100 --changes 50 --pause-ms 100)
        run cross-standalone "${light[@]}" --nodes 1
        run cross-2-nodes "${light[@]}" --nodes 2 ;;
      held)  [ "$i" -gt "${HELD_REPEAT:-1}" ] || run held-4-nodes idle --nodes 4 --sessions "${HELD_SESSIONS:-79200}" --steps 6 --contacts 50 --sessions-per-user 10 --idle-seconds 30 --postgres-async-commit ;;
      *) echo "unknown part $part" >&2; exit 2 ;;
    esac
  done
done
for dir in "$out"/*/; do
  "$bench" summarize "$dir"*.json > "$dir/summary.md"
done
cat "$out"/*/summary.md
