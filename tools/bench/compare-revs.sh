#!/usr/bin/env bash
# Compares Aspen at another revision with the working tree: a 3-node cluster
# of each on this machine, the same load through the same client (this
# tree's aspen bench), rounds alternating so background load hits both
# alike. Use it to check a change does not slow puts or gets.
#
#   tools/bench/compare-revs.sh REV [seconds per round] [rounds] [clients]
set -uo pipefail
cd "$(dirname "$0")/../.."
rev=${1:?usage: compare-revs.sh REV [seconds] [rounds]}
secs=${2:-8}
rounds=${3:-3}
clients=${4:-64}
work=$(mktemp -d /tmp/aspen-revs.XXXXXX)
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  git worktree remove --force "$work/src" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

git worktree add -q --detach "$work/src" "$rev" || exit 1
(cd "$work/src" && go build -o "$work/old" ./cmd/aspen) || exit 1
go build -o "$work/new" ./cmd/aspen || exit 1

. tools/bench/lib.sh

start_aspen "$work/old" old 19600
start_aspen "$work/new" new 19700
sleep 2
for r in $(seq 1 "$rounds"); do
  for mode in put get; do
    for bin in old new; do
      base=19600; [ $bin = new ] && base=19700
      addrs=127.0.0.1:$((base + 11)),127.0.0.1:$((base + 12)),127.0.0.1:$((base + 13))
      printf 'round %d %-4s %-4s ' "$r" $mode $bin
      "$work/new" bench --mode $mode --clients $clients --value-size 256 --keys 10000 \
        --duration ${secs}s --addrs $addrs --json 2>&1 |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print("%8.0f ops/s  p50 %6.1f ms  p99 %6.1f ms  errors %d" % (d["ops_per_second"], d["latency_p50_ms"], d["latency_p99_ms"], d["errors"]))'
    done
  done
done
