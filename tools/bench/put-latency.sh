#!/usr/bin/env bash
# Where one client's put goes: starts 3 Aspen node processes on loopback,
# runs aspen bench with one client against the leader, and prints, from each
# node's /metrics before and after, the mean of every step of the loop a put
# passes through: the core's step (aspen_ready_seconds), the batch write
# into Badger (aspen_batch_write_seconds), the sync (aspen_fsync_seconds),
# and on the leader the server's time for the request
# (aspen_http_request_seconds, route kv). The client's own p50 and p99 come
# from aspen bench. DESIGN.md (Performance) reads these figures.
#
#   tools/bench/put-latency.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-15}
. tools/bench/lib.sh
bench_work aspen-put-latency
go build -o "$work/aspen" ./cmd/aspen
base=19400
start_aspen "$work/aspen" n $base
leader=
for i in 1 2 3; do
  if curl -sf http://127.0.0.1:$((base + 10 + i))/v1/aspen/status | grep -q '"Role":"StateLeader"'; then leader=$i; fi
done
[ -n "$leader" ] || { echo "the leader moved before the run" >&2; exit 1; }
addr=127.0.0.1:$((base + 10 + leader))

scrape() {
  for i in 1 2 3; do
    curl -sf http://127.0.0.1:$((base + 10 + i))/metrics |
      grep -E '^aspen_(ready|batch_write|fsync|state_write)_seconds_(sum|count) |^aspen_http_request_seconds_(sum|count)\{code="OK",route="kv"\}' |
      sed -e 's/{code="OK",route="kv"}//' -e "s/^/$i /"
  done
}
"$work/aspen" bench --mode put --clients 8 --duration 2s --addrs "$addr" >/dev/null # warm up
scrape >"$work/before"
"$work/aspen" bench --mode put --clients 1 --duration "${secs}s" --addrs "$addr"
scrape >"$work/after"

echo "means per step over the run (node 1-3; * leads):"
awk -v leader="$leader" '
  FNR == NR { before[$1 " " $2] = $3; next }
  { after[$1 " " $2] = $3 }
  END {
    split("ready batch_write fsync state_write http_request", steps, " ")
    for (n = 1; n <= 3; n++) {
      line = sprintf("  node %d%s", n, n == leader ? "*" : " ")
      for (s = 1; s <= 5; s++) {
        k = n " aspen_" steps[s] "_seconds"
        c = after[k "_count"] - before[k "_count"]
        if (c > 0) line = line sprintf("  %s %d x %.0f us", steps[s], c, 1e6 * (after[k "_sum"] - before[k "_sum"]) / c)
      }
      print line
    }
  }' "$work/before" "$work/after"
