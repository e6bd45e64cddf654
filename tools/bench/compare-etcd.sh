#!/usr/bin/env bash
# Compares a 3-node Aspen cluster with a 3-node etcd cluster (Debian's
# etcd-server, 3.4) on this machine, with the same load shape through the same
# client: aspen bench, 64 clients, 256-byte values. Rounds alternate between
# the two stores so that background load hits both alike.
#
#   apt-get install -y etcd-server     # once
#   tools/bench/compare-etcd.sh [seconds per round] [rounds]
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-15}
rounds=${2:-2}
. tools/bench/lib.sh
bench_work aspen-vs-etcd
go build -o "$work/aspen" ./cmd/aspen
start_aspen "$work/aspen" aspen 19300
ecluster=e1=http://127.0.0.1:19381,e2=http://127.0.0.1:19382,e3=http://127.0.0.1:19383
for i in 1 2 3; do
  etcd --name e$i --data-dir "$work/etcd$i" \
    --listen-peer-urls http://127.0.0.1:1938$i --initial-advertise-peer-urls http://127.0.0.1:1938$i \
    --listen-client-urls http://127.0.0.1:1937$i --advertise-client-urls http://127.0.0.1:1937$i \
    --initial-cluster $ecluster --initial-cluster-state new --log-level error 2>"$work/etcd$i.log" &
  pids+=($!)
done
aspen_addrs=127.0.0.1:19311,127.0.0.1:19312,127.0.0.1:19313
etcd_addrs=127.0.0.1:19371,127.0.0.1:19372,127.0.0.1:19373
sleep 2
# VmRSS, and in brackets the part that is the process's own memory (RssAnon);
# the rest is Badger's memory-mapped files, which the kernel can reclaim.
rss() {
  for p in "${pids[@]:0:3}"; do
    awk '/^VmRSS/ {t=$2} /^RssAnon/ {a=$2} END {printf "%d MB (%d MB anon)  ", t/1024, a/1024}' /proc/$p/status
  done
  echo
}
echo "aspen idle RSS: $(rss)"
for r in $(seq 1 "$rounds"); do
  for mode in put get; do
    for target in aspen etcd; do
      addrs=$aspen_addrs; [ $target = etcd ] && addrs=$etcd_addrs
      printf 'round %d %-4s %-5s ' "$r" $mode $target
      "$work/aspen" bench --target $target --mode $mode --clients 64 --value-size 256 --keys 10000 \
        --duration ${secs}s --addrs $addrs --json 2>&1 | tee -a "$work/bench.log" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%8.0f ops/s  p50 %6.1f ms  p99 %6.1f ms  errors %d" % (d["ops_per_second"], d["latency_p50_ms"], d["latency_p99_ms"], d["errors"]))'
    done
  done
done
echo "aspen RSS after load: $(rss)"
