#!/usr/bin/env bash
# compare.sh: Sluice against kfake in one session, with the same load.
#
# Starts `sluice broker` on a fresh data dir (unless BOOTSTRAP names a
# running broker) and franz-go's kfake in a process of its own
# (`go run ./bench/kfake --port PORT`, built to bin/kfake), then alternates runs against the two,
# each on a fresh topic: `sluice bench --mode produce` and then
# `--mode consume` reading the whole topic back. It prints per-run figures,
# medians and sluice/kfake ratios. Both brokers are separate processes
# reached over loopback TCP, so neither shares a Go runtime with the load
# generator.
#
# Besides records/s it reports the CPU time (user + system, from
# /proc/PID/stat) each broker process spent per record in each phase. On a
# shared, noisy machine that figure is much steadier than wall-clock rates:
# other tenants take cores away, but not CPU time per record.
#
# Environment (all optional):
#   SLUICE      the binary, default bin/sluice (built if missing)
#   BOOTSTRAP   benchmark this broker instead of starting one
#   LISTEN      where the started broker listens, default 127.0.0.1:29092
#   FAKE_PORT   where kfake listens on 127.0.0.1, default 29093
#   PPROF       passed to the broker as --pprof, e.g. 127.0.0.1:6060
#   PROFILE     a path prefix: during the first Sluice run, save a broker
#               CPU profile of each phase as PREFIX.produce.prof and
#               PREFIX.consume.prof (needs PPROF)
#   PROFILE_SECONDS  length of those profiles, default 3
#   RUNS        runs per broker, default 5
#   RECORDS     records per run, default 5000000
#   BENCH_FLAGS more `sluice bench` flags, e.g. "--acks all --partitions 12"
#               (not --mode, --topic or --records)
set -euo pipefail

cd "$(dirname "$0")/.."
SLUICE=${SLUICE:-bin/sluice}
KFAKE=${KFAKE:-bin/kfake}
LISTEN=${LISTEN:-127.0.0.1:29092}
FAKE_PORT=${FAKE_PORT:-29093}
RUNS=${RUNS:-5}
RECORDS=${RECORDS:-5000000}
BENCH_FLAGS=${BENCH_FLAGS:-}

if [[ ! -x $SLUICE ]]; then
	go build -o "$SLUICE" ./cmd/sluice
fi
if [[ ! -x $KFAKE ]]; then
	go build -o "$KFAKE" ./bench/kfake
fi

work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

# free HOST:PORT fails if something already listens there: the bench
# would otherwise measure, and write to, somebody else's broker.
free() {
	if (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; then
		echo "$1 is already in use; set LISTEN or FAKE_PORT" >&2
		exit 1
	fi
}

# await HOST:PORT PID LOG waits until HOST:PORT accepts connections.
await() {
	local host=${1%:*} port=${1##*:}
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return; fi
		kill -0 "$2" 2>/dev/null || { cat "$3" >&2; exit 1; }
		sleep 0.1
	done
	echo "nothing listens on $1 after 10s" >&2
	exit 1
}

if [[ -z ${BOOTSTRAP:-} ]]; then
	BOOTSTRAP=$LISTEN
	args=(broker --listen "$LISTEN" --data-dir "$work/data")
	[[ -n ${PPROF:-} ]] && args+=(--pprof "$PPROF")
	free "$LISTEN"
	"$SLUICE" "${args[@]}" >"$work/broker.log" 2>&1 &
	broker_pid=$!
	pids+=($!)
	await "$LISTEN" $! "$work/broker.log"
	echo "started: $SLUICE ${args[*]}"
fi
free "127.0.0.1:$FAKE_PORT"
"$KFAKE" --port "$FAKE_PORT" >"$work/kfake.log" 2>&1 &
fake_pid=$!
pids+=($!)
await "127.0.0.1:$FAKE_PORT" $! "$work/kfake.log"
echo "started: $KFAKE --port $FAKE_PORT"

# rate FILE prints the records/s of the one phase in a bench output.
rate() { sed -n 's/^run 1 [a-z]*: .* = \([0-9,]*\) records\/s.*/\1/p' "$1" | tr -d ,; }

# ticks PID prints the CPU time (user + system) PID has used, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

# median of the numbers on stdin.
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }

declare -A pid=([sluice]=${broker_pid:-} [kfake]=$fake_pid)
declare -A bootstrap=([sluice]=$BOOTSTRAP [kfake]=127.0.0.1:$FAKE_PORT)
for i in $(seq "$RUNS"); do
	for target in sluice kfake; do
		line="run $i $target:"
		for phase in produce consume; do
			out="$work/$target.$phase.$i.txt"
			# shellcheck disable=SC2206 # BENCH_FLAGS is split on purpose
			cmd=("$SLUICE" bench --bootstrap "${bootstrap[$target]}" --topic "bench-$$-$i"
				--records "$RECORDS" --mode "$phase" $BENCH_FLAGS)
			[[ $i == 1 ]] && echo "command ($target $phase): ${cmd[*]}"
			prof_pid=
			if [[ $target == sluice && $i == 1 && -n ${PROFILE:-} && -n ${PPROF:-} ]]; then
				curl -s -o "$PROFILE.$phase.prof" "http://$PPROF/debug/pprof/profile?seconds=${PROFILE_SECONDS:-3}" &
				prof_pid=$!
			fi
			t0=$(ticks "${pid[$target]:-self}")
			"${cmd[@]}" >"$out"
			t1=$(ticks "${pid[$target]:-self}")
			if [[ -n $prof_pid ]]; then
				wait "$prof_pid"
				echo "broker CPU profile: $PROFILE.$phase.prof"
			fi
			cpu=-
			if [[ -n ${pid[$target]} ]]; then
				cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$RECORDS" 'BEGIN { printf "%.0f", d / hz * 1e9 / n }')
			fi
			echo "$cpu" >"$out.cpu"
			[[ $i == 1 && $target == sluice && $phase == produce ]] && sed -n '/^sluice bench/,/^run/p' "$out" | grep -v '^run'
			line+=" $phase $(rate "$out") records/s ($cpu ns broker CPU/record);"
		done
		echo "$line"
	done
done

echo
printf '%-8s %18s %18s %20s %20s\n' "" "produce records/s" "consume records/s" "produce CPU ns/rec" "consume CPU ns/rec"
declare -A med
for target in sluice kfake; do
	for phase in produce consume; do
		med[$target.$phase]=$(for i in $(seq "$RUNS"); do rate "$work/$target.$phase.$i.txt"; done | median)
		med[$target.$phase.cpu]=$(for i in $(seq "$RUNS"); do cat "$work/$target.$phase.$i.txt.cpu"; done | median)
	done
	printf '%-8s %18s %18s %20s %20s\n' "$target" "${med[$target.produce]}" "${med[$target.consume]}" \
		"${med[$target.produce.cpu]}" "${med[$target.consume.cpu]}"
done
awk -v sp="${med[sluice.produce]}" -v kp="${med[kfake.produce]}" \
	-v sc="${med[sluice.consume]}" -v kc="${med[kfake.consume]}" \
	-v spc="${med[sluice.produce.cpu]}" -v kpc="${med[kfake.produce.cpu]}" \
	-v scc="${med[sluice.consume.cpu]}" -v kcc="${med[kfake.consume.cpu]}" \
	'function r(a, b) { return (a + 0 > 0 && b + 0 > 0) ? sprintf("%.2f", a / b) : "-" }
	BEGIN { printf "%-8s %18s %18s %20s %20s\n", "ratio", r(sp, kp), r(sc, kc), r(spc, kpc), r(scc, kcc) }'
