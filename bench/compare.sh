#!/usr/bin/env bash
# compare.sh: Sluice against kfake in one session, with the same load.
#
# Starts `sluice broker` on a fresh data dir (unless BOOTSTRAP names a
# running broker) and franz-go's kfake in a process of its own
# (`sluice bench --serve-fake PORT`), then alternates runs of `sluice bench`
# against the two, each run on a fresh topic, and prints per-run figures,
# medians and the sluice/kfake ratio. Both brokers are separate processes
# reached over loopback TCP, so neither shares a Go runtime with the load
# generator.
#
# Environment (all optional):
#   SLUICE      the binary, default bin/sluice (built if missing)
#   BOOTSTRAP   benchmark this broker instead of starting one
#   LISTEN      where the started broker listens, default 127.0.0.1:29092
#   FAKE_PORT   where kfake listens on 127.0.0.1, default 29093
#   PPROF       passed to the broker as --pprof, e.g. 127.0.0.1:6060
#   PROFILE     a file: during the first Sluice run, save a 5s broker CPU
#               profile there (needs PPROF)
#   RUNS        runs per broker, default 5
#   RECORDS     records per run, default 5000000
#   BENCH_FLAGS more `sluice bench` flags, e.g. "--acks all --partitions 12"
set -euo pipefail

cd "$(dirname "$0")/.."
SLUICE=${SLUICE:-bin/sluice}
LISTEN=${LISTEN:-127.0.0.1:29092}
FAKE_PORT=${FAKE_PORT:-29093}
RUNS=${RUNS:-5}
RECORDS=${RECORDS:-5000000}
BENCH_FLAGS=${BENCH_FLAGS:-}

if [[ ! -x $SLUICE ]]; then
	go build -o "$SLUICE" ./cmd/sluice
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
	pids+=($!)
	await "$LISTEN" $! "$work/broker.log"
	echo "started: $SLUICE ${args[*]}"
fi
free "127.0.0.1:$FAKE_PORT"
"$SLUICE" bench --serve-fake "$FAKE_PORT" >"$work/kfake.log" 2>&1 &
pids+=($!)
await "127.0.0.1:$FAKE_PORT" $! "$work/kfake.log"
echo "started: $SLUICE bench --serve-fake $FAKE_PORT"

# rate PHASE FILE prints the records/s of PHASE from one bench output.
rate() { sed -n "s/^run 1 $1: .* = \([0-9,]*\) records\/s.*/\1/p" "$2" | tr -d ,; }

# median of the numbers on stdin.
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }

for i in $(seq "$RUNS"); do
	for target in sluice kfake; do
		out="$work/$target.$i.txt"
		if [[ $target == sluice ]]; then
			cmd=("$SLUICE" bench --bootstrap "$BOOTSTRAP" --topic "bench-$$-$i")
		else
			cmd=("$SLUICE" bench --bootstrap "127.0.0.1:$FAKE_PORT" --topic "bench-$$-$i")
		fi
		# shellcheck disable=SC2206 # BENCH_FLAGS is split on purpose
		cmd+=(--records "$RECORDS" --mode both $BENCH_FLAGS)
		[[ $i == 1 ]] && echo "command ($target): ${cmd[*]}"
		if [[ $target == sluice && $i == 1 && -n ${PROFILE:-} && -n ${PPROF:-} ]]; then
			curl -s -o "$PROFILE" "http://$PPROF/debug/pprof/profile?seconds=5" &
			prof_pid=$!
			"${cmd[@]}" >"$out"
			wait "$prof_pid"
			echo "broker CPU profile: $PROFILE"
		else
			"${cmd[@]}" >"$out"
		fi
		[[ $i == 1 ]] && sed -n '/^sluice bench/,/^run/p' "$out" | grep -v '^run'
		echo "run $i $target: produce $(rate produce "$out") records/s, consume $(rate consume "$out") records/s"
	done
done

echo
printf '%-8s %18s %18s\n' "" "produce records/s" "consume records/s"
declare -A med
for target in sluice kfake; do
	for phase in produce consume; do
		med[$target.$phase]=$(for i in $(seq "$RUNS"); do rate "$phase" "$work/$target.$i.txt"; done | median)
	done
	printf '%-8s %18s %18s\n' "$target" "${med[$target.produce]}" "${med[$target.consume]}"
done
awk -v sp="${med[sluice.produce]}" -v kp="${med[kfake.produce]}" \
	-v sc="${med[sluice.consume]}" -v kc="${med[kfake.consume]}" \
	'BEGIN { printf "%-8s %18.2f %18.2f\n", "ratio", sp/kp, sc/kc }'
