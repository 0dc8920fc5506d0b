#!/usr/bin/env bash
# reassign.sh measures what partition moves take from client traffic: acks=all produce
# throughput of `sluice bench` on a 4-broker loopback cluster without moves, and while a loaded
# topic's replicas move onto broker 4 under a replication throttle (sluice partitions reassign
# --throttle). Runs alternate (quiet, moving, quiet, moving, ...) so machine load hits both alike.
# Usage: bench/reassign.sh [SLUICE_BIN] (default: builds ./cmd/sluice)
# Env: RUNS (3), THROTTLE bytes/s (10485760), LOAD_RECORDS (200000 x 1000 B), BENCH_SECONDS (15).
set -euo pipefail
BIN=${1:-}
RUNS=${RUNS:-3}
THROTTLE=${THROTTLE:-10485760}
LOAD_RECORDS=${LOAD_RECORDS:-200000}
BENCH_SECONDS=${BENCH_SECONDS:-15}
DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"' EXIT
if [ -z "$BIN" ]; then BIN=$DIR/sluice; go build -o "$BIN" ./cmd/sluice; fi

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A KAFKA CTL
VOTERS=""
for i in 1 2 3 4; do KAFKA[$i]=$(port); CTL[$i]=$(port); VOTERS+="${VOTERS:+,}$i@127.0.0.1:${CTL[$i]}"; done
printf 'flush: interval\nauto.balance.enable: false\n' >"$DIR/broker.yaml"
start() {
  "$BIN" broker --config "$DIR/broker.yaml" --node-id "$1" --listen "127.0.0.1:${KAFKA[$1]}" --data-dir "$DIR/d$1" \
    --controller-listen "127.0.0.1:${CTL[$1]}" --controller-quorum "$VOTERS" --log-level warn >"$DIR/b$1.log" 2>&1 &
}
for i in 1 2 3; do start $i; done
BOOT="127.0.0.1:${KAFKA[1]},127.0.0.1:${KAFKA[2]},127.0.0.1:${KAFKA[3]}"
until "$BIN" partitions status --bootstrap "$BOOT" >/dev/null 2>&1; do sleep 0.5; done
echo "loading topic 'moving' (6 partitions, RF 3 on brokers 1-3): $LOAD_RECORDS x 1000 B"
for try in $(seq 60); do # until three brokers are live
  "$BIN" bench --bootstrap "$BOOT" --topic moving --partitions 6 --replication-factor 3 --mode produce --keep-topic \
    --records "$LOAD_RECORDS" --record-size 1000 --acks 1 >/dev/null 2>"$DIR/load.err" && break
  [ "$try" = 60 ] && { cat "$DIR/load.err"; exit 1; }
  sleep 1
done
start 4
BOOT="$BOOT,127.0.0.1:${KAFKA[4]}"
sleep 5

bench() { # prints the produce records/s of one acks=all run
  "$BIN" bench --bootstrap "$BOOT" --topic "bench-$1" --partitions 6 --replication-factor 3 --mode produce \
    --acks all --duration "${BENCH_SECONDS}s" --record-size 100 | awk '/produce/ && /records\/s/ {for (i=1;i<=NF;i++) if ($i ~ /records\/s/) print $(i-1)}' | tail -1 | tr -d ,
}
# plan: every partition of 'moving' swaps one replica (not the leader) for broker 4, and back.
plan() { # $1: 4 = onto broker 4, 3 = back to broker 3
  python3 - "$1" <<'PY' >"$DIR/plan.json"
import json, sys
to = int(sys.argv[1])
parts = []
for p in range(6):
    base = [1 + (p + k) % 3 for k in range(3)]
    parts.append({"topic": "moving", "partition": p, "replicas": [r if r != 3 or to == 3 else 4 for r in base]})
print(json.dumps({"version": 1, "partitions": parts}))
PY
}
quiet=(); moving=(); ratios=(); dest=4
for r in $(seq "$RUNS"); do
  quiet+=("$(bench q$r)")
  plan $dest
  "$BIN" partitions reassign --bootstrap "$BOOT" --plan "$DIR/plan.json" --throttle "$THROTTLE" --wait >"$DIR/reassign.log" 2>&1 &
  rpid=$!
  moving+=("$(bench m$r)")
  wait $rpid || { cat "$DIR/reassign.log"; exit 1; }
  if [ "$dest" = 4 ]; then dest=3; else dest=4; fi
  ratios+=("$(python3 -c "print(round(${moving[-1]}/${quiet[-1]}, 3))")")
  echo "run $r: quiet ${quiet[-1]} records/s, during moves ${moving[-1]} records/s, ratio ${ratios[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mq=$(median "${quiet[@]}"); mm=$(median "${moving[@]}")
echo "median quiet $mq records/s, median during moves $mm records/s, ratio of medians $(python3 -c "print(round($mm/$mq, 2))")"
echo "median of the paired ratios (each moving run against the quiet run just before it): $(median "${ratios[@]}")"
echo "config: 4 brokers on loopback, acks=all, RF 3, 6 partitions, 100 B records, ${BENCH_SECONDS}s per run, $RUNS runs;"
echo "        moving 6 partitions of $LOAD_RECORDS x 1000 B (RF 3) onto/off broker 4 at --throttle $THROTTLE B/s"
