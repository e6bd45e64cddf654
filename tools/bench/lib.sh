# Sourced by the benchmark scripts beside it (bash).

# bench_work PREFIX makes the work folder $work, removed on exit with every
# process whose pid is in pids.
bench_work() {
  work=$(mktemp -d "/tmp/$1.XXXXXX")
  pids=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}

# start_aspen BIN NAME BASEPORT starts a 3-node cluster of the aspen binary
# BIN on loopback, peers on BASEPORT+1..3 and HTTP on BASEPORT+11..13, data
# and logs in $work/NAME1..3, and waits until it has a leader.
start_aspen() {
  local bin=$1 name=$2 base=$3 cluster=""
  for i in 1 2 3; do cluster+="${cluster:+,}$i=127.0.0.1:$((base + i))"; done
  for i in 1 2 3; do
    "$bin" node start --id $i --data-dir "$work/$name$i" --http-addr 127.0.0.1:$((base + 10 + i)) \
      --initial-cluster "$cluster" --log-level warn 2>"$work/$name$i.log" &
    pids+=($!)
  done
  for _ in $(seq 1 100); do
    curl -sf http://127.0.0.1:$((base + 11))/v1/status/leader | grep -q : && return
    sleep 0.1
  done
  echo "$name cluster elected no leader" >&2
  exit 1
}
