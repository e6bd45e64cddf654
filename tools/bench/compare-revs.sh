#!/usr/bin/env bash
# Compares Aspen at another revision with the working tree: a 3-node cluster
# of each on this machine, the same load through the same client (this
# tree's aspen bench), rounds alternating so background load hits both
# alike. Use it to check a change does not slow puts or gets.
#
#   tools/bench/compare-revs.sh REV [seconds per round] [rounds]
set -uo pipefail
cd "$(dirname "$0")/../.."
rev=${1:?usage: compare-revs.sh REV [seconds] [rounds]}
secs=${2:-8}
rounds=${3:-3}
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

# start NAME BASEPORT: a 3-node cluster of binary NAME, peers on BASEPORT+1..3,
# HTTP on BASEPORT+11..13.
start() {
  local bin=$1 base=$2 cluster=""
  for i in 1 2 3; do cluster+="${cluster:+,}$i=127.0.0.1:$((base + i))"; done
  for i in 1 2 3; do
    "$work/$bin" node start --id $i --data-dir "$work/$bin$i" --http-addr 127.0.0.1:$((base + 10 + i)) \
      --initial-cluster "$cluster" --log-level warn 2>"$work/$bin$i.log" &
    pids+=($!)
  done
  for _ in $(seq 1 100); do
    curl -sf http://127.0.0.1:$((base + 11))/v1/status/leader | grep -q : && return
    sleep 0.1
  done
  echo "$bin cluster elected no leader" >&2
  exit 1
}
start old 19600
start new 19700
sleep 2
for r in $(seq 1 "$rounds"); do
  for mode in put get; do
    for bin in old new; do
      base=19600; [ $bin = new ] && base=19700
      addrs=127.0.0.1:$((base + 11)),127.0.0.1:$((base + 12)),127.0.0.1:$((base + 13))
      printf 'round %d %-4s %-4s ' "$r" $mode $bin
      "$work/new" bench --mode $mode --clients 64 --value-size 256 --keys 10000 \
        --duration ${secs}s --addrs $addrs --json 2>&1 |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print("%8.0f ops/s  p50 %6.1f ms  p99 %6.1f ms  errors %d" % (d["ops_per_second"], d["latency_p50_ms"], d["latency_p99_ms"], d["errors"]))'
    done
  done
done
