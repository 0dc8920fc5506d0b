#!/usr/bin/env bash
# quotas.sh: the cost of client quotas that are configured but not reached.
#
# Starts one `sluice broker` on a fresh data dir and alternates produce runs
# of `sluice bench` without quotas and with quotas for every client (the
# default user: producer_byte_rate, consumer_byte_rate, request_percentage
# and controller_mutation_rate, all far above what the machine can do), so
# that every request is looked up, recorded and checked. Quotas are set and
# removed with `sluice quotas` between runs, each run on a fresh topic. It
# prints each run, the medians of records/s and of broker CPU time per
# record, and the with/without ratios.
#
# Environment (all optional): SLUICE (default bin/sluice), LISTEN (default
# 127.0.0.1:29095), RUNS (default 5), RECORDS (default 3000000), BENCH_FLAGS.
set -euo pipefail

cd "$(dirname "$0")/.."
SLUICE=${SLUICE:-bin/sluice}
LISTEN=${LISTEN:-127.0.0.1:29095}
RUNS=${RUNS:-5}
RECORDS=${RECORDS:-3000000}
BENCH_FLAGS=${BENCH_FLAGS:-}

if [[ ! -x $SLUICE ]]; then
	go build -o "$SLUICE" ./cmd/sluice
fi
work=$(mktemp -d)
broker_pid=
cleanup() {
	if [[ -n $broker_pid ]]; then
		kill "$broker_pid" 2>/dev/null || true
		wait "$broker_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

if (exec 3<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}") 2>/dev/null; then
	echo "$LISTEN is already in use; set LISTEN" >&2
	exit 1
fi
"$SLUICE" broker --listen "$LISTEN" --data-dir "$work/data" >"$work/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 100); do
	if (exec 3<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}") 2>/dev/null; then break; fi
	kill -0 "$broker_pid" 2>/dev/null || { cat "$work/broker.log" >&2; exit 1; }
	sleep 0.1
done
echo "started: $SLUICE broker --listen $LISTEN --data-dir $work/data"

keys=(producer_byte_rate consumer_byte_rate request_percentage controller_mutation_rate)
quotas_on() {
	"$SLUICE" quotas set --bootstrap "$LISTEN" --entity 'user=<default>' \
		producer_byte_rate=1e12 consumer_byte_rate=1e12 request_percentage=1e6 controller_mutation_rate=1e6 >/dev/null
}
quotas_off() {
	local args=()
	for k in "${keys[@]}"; do args+=(--remove "$k"); done
	"$SLUICE" quotas set --bootstrap "$LISTEN" --entity 'user=<default>' "${args[@]}" >/dev/null
}

rate() { sed -n 's/^run 1 [a-z]*: .* = \([0-9,]*\) records\/s.*/\1/p' "$1" | tr -d ,; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
hz=$(getconf CLK_TCK)

declare -A rates cpus
for i in $(seq "$RUNS"); do
	for mode in off on; do
		"quotas_$mode"
		out="$work/$mode.$i.txt"
		# shellcheck disable=SC2206 # BENCH_FLAGS is split on purpose
		cmd=("$SLUICE" bench --bootstrap "$LISTEN" --topic "quotas-$$-$mode-$i" --records "$RECORDS" --mode produce $BENCH_FLAGS)
		[[ $i == 1 ]] && echo "command (quotas $mode): ${cmd[*]}"
		t0=$(ticks "$broker_pid")
		"${cmd[@]}" >"$out"
		t1=$(ticks "$broker_pid")
		r=$(rate "$out")
		cpu=$(awk -v t="$((t1 - t0))" -v hz="$hz" -v n="$RECORDS" 'BEGIN {printf "%.0f", t / hz * 1e9 / n}')
		rates[$mode]+="$r "
		cpus[$mode]+="$cpu "
		echo "run $i quotas $mode: $r records/s, broker CPU $cpu ns/record"
	done
done
off_rate=$(tr ' ' '\n' <<<"${rates[off]}" | grep . | median)
on_rate=$(tr ' ' '\n' <<<"${rates[on]}" | grep . | median)
off_cpu=$(tr ' ' '\n' <<<"${cpus[off]}" | grep . | median)
on_cpu=$(tr ' ' '\n' <<<"${cpus[on]}" | grep . | median)
echo "median without quotas: $off_rate records/s, $off_cpu ns/record broker CPU"
echo "median with quotas:    $on_rate records/s, $on_cpu ns/record broker CPU"
awk -v a="$on_rate" -v b="$off_rate" -v c="$on_cpu" -v d="$off_cpu" \
	'BEGIN {printf "with/without: throughput %.3f, broker CPU per record %.3f\n", a / b, c / d}'
