#!/usr/bin/env bash
# cluster.sh: the replicated-cluster benchmark. acks=all into a replication
# factor 3 topic on a 3-broker Sluice cluster.
#
# Starts NODES (default 3) `sluice broker` processes on fresh data dirs and
# free loopback ports, as one Raft metadata quorum (--controller-quorum), waits
# until each logs `broker ready` and Metadata lists all of them, and then runs
# `sluice bench --mode produce --acks all --replication-factor NODES` RUNS
# times, each on a fresh topic with min.insync.replicas 2. It prints each run's
# records/s and produce latency (p50/p99/p999 of every 16th record, from the
# Produce call to the acknowledgement), the medians of each column, the
# brokers' CPU time per record and the load average, then stops the cluster.
# The bench client is a fourth process on the same cores.
#
# With NODES=1 it starts a single broker without --controller-quorum (a
# one-voter quorum), RF 1: the same load, unreplicated, for comparison.
#
# Environment (all optional):
#   SLUICE      the binary, default bin/sluice (built if missing)
#   NODES       brokers, default 3
#   FLUSH       broker flush policy (--flush): none, interval or always;
#               default: the broker's default (interval)
#   RUNS        runs, default 5
#   RECORDS     records per run, default 3000000
#   PARTITIONS  partitions of each topic, default 6 (2 led by each broker)
#   MIN_ISR     min.insync.replicas of each topic, default 2 (1 if NODES=1)
#   BUFFERED    records the producer buffers (--max-buffered-records),
#               default 16384. Latency is measured from the Produce call, so
#               at full throughput it is mostly the wait behind the buffered
#               records (p50 is about BUFFERED / records/s): with the bench
#               default of 262144 that is 150-200 ms of client-side queue.
#               16384 records (1.6 MB) keep the queue short and still fill
#               the pipeline to three brokers.
#   BENCH_FLAGS more `sluice bench` flags, e.g. "--producers 2 --linger 5ms"
#               (not --mode, --topic, --records, --acks, --bootstrap or
#               --max-buffered-records)
#   KEEP=1      keep the work dir (data and broker logs) after the run
set -euo pipefail

cd "$(dirname "$0")/.."
SLUICE=${SLUICE:-bin/sluice}
NODES=${NODES:-3}
RUNS=${RUNS:-5}
RECORDS=${RECORDS:-3000000}
PARTITIONS=${PARTITIONS:-6}
BUFFERED=${BUFFERED:-16384}
BENCH_FLAGS=${BENCH_FLAGS:-}
if [[ $NODES == 1 ]]; then MIN_ISR=${MIN_ISR:-1}; else MIN_ISR=${MIN_ISR:-2}; fi

if [[ ! -x $SLUICE ]]; then
	go build -o "$SLUICE" ./cmd/sluice
fi

work=$(mktemp -d)
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ ${KEEP:-0} == 1 ]]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# free_port prints a loopback TCP port nobody listens on and that this
# script has not handed out yet.
taken=" "
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		[[ $taken == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			taken+="$p "
			echo "$p"
			return
		fi
	done
	echo "no free port found" >&2
	exit 1
}

# die MESSAGE prints MESSAGE and the tail of every broker log, and exits.
die() {
	echo "cluster: $1" >&2
	for n in $(seq "$NODES"); do
		echo "--- broker $n log (tail) ---" >&2
		tail -n 30 "$work/broker$n.log" >&2 || true
	done
	exit 1
}

declare -a kport rport
quorum=
for n in $(seq "$NODES"); do
	kport[n]=$(free_port)
	rport[n]=$(free_port)
	quorum+="${quorum:+,}$n@127.0.0.1:${rport[n]}"
done
bootstrap=
for n in $(seq "$NODES"); do
	args=(broker --node-id "$n" --listen "127.0.0.1:${kport[n]}" --data-dir "$work/data$n")
	if [[ $NODES -gt 1 ]]; then
		args+=(--controller-listen "127.0.0.1:${rport[n]}" --controller-quorum "$quorum")
	fi
	[[ -n ${FLUSH:-} ]] && args+=(--flush "$FLUSH")
	"$SLUICE" "${args[@]}" >"$work/broker$n.log" 2>&1 &
	pids+=($!)
	bootstrap+="${bootstrap:+,}127.0.0.1:${kport[n]}"
	echo "started: $SLUICE ${args[*]}"
done

# Ready means every broker logged `broker ready` and, where kcat is
# installed, that Metadata from the first broker lists all of them.
deadline=$((SECONDS + 60))
for n in $(seq "$NODES"); do
	until grep -q "broker ready" "$work/broker$n.log"; do
		kill -0 "${pids[n - 1]}" 2>/dev/null || die "broker $n exited before it was ready"
		((SECONDS < deadline)) || die "broker $n not ready after 60s"
		sleep 0.1
	done
done
if command -v kcat >/dev/null; then
	until [[ $(timeout 5 kcat -L -m 5 -b "127.0.0.1:${kport[1]}" 2>/dev/null | sed -n 's/^ \([0-9]*\) brokers:$/\1/p') == "$NODES" ]]; do
		((SECONDS < deadline)) || die "Metadata does not list $NODES brokers after 60s"
		sleep 0.2
	done
fi
echo "cluster ready: $NODES broker(s), bootstrap $bootstrap"

# --topic-config is newer than --replication-factor; without it the
# topics get the broker's default min.insync.replicas.
topic_cfg=()
if "$SLUICE" bench -h 2>&1 | grep -q -- '-topic-config'; then
	topic_cfg=(--topic-config "min.insync.replicas=$MIN_ISR")
else
	echo "note: this sluice bench has no --topic-config; min.insync.replicas is the broker default" >&2
fi

# ticks prints the CPU time (user + system) all brokers have used, in clock ticks.
ticks() {
	local t=0 pid
	for pid in "${pids[@]}"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done
	echo "$t"
}
hz=$(getconf CLK_TCK)

# field FILE NAME prints one figure of the `run 1 produce:` line of a
# bench output: records/s, or a latency percentile in milliseconds.
field() {
	local line
	line=$(grep '^run 1 produce:' "$1")
	case $2 in
	rate) sed 's/.* = \([0-9,]*\) records\/s.*/\1/' <<<"$line" | tr -d , ;;
	*) sed "s/.*[ ,]$2 \([0-9.]*[µmn]*s\)[,( ].*/\1/" <<<"$line" | awk '
		/ns$/ { printf "%.3f\n", $0 / 1e6; next }
		/µs$/ { printf "%.3f\n", $0 / 1e3; next }
		/ms$/ { printf "%.2f\n", $0 + 0; next }
		/s$/  { printf "%.0f\n", $0 * 1e3; next }' ;;
	esac
}

# median of the numbers on stdin.
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$RUNS"); do
	out="$work/run$i.txt"
	# shellcheck disable=SC2206 # BENCH_FLAGS is split on purpose
	cmd=("$SLUICE" bench --bootstrap "$bootstrap" --topic "cluster-$$-$i" --mode produce
		--records "$RECORDS" --acks all --partitions "$PARTITIONS" --replication-factor "$NODES"
		--max-buffered-records "$BUFFERED" "${topic_cfg[@]}" $BENCH_FLAGS)
	[[ $i == 1 ]] && echo "command: ${cmd[*]}"
	t0=$(ticks)
	"${cmd[@]}" >"$out" 2>&1 || { cat "$out" >&2; die "bench run $i failed"; }
	t1=$(ticks)
	if [[ $i == 1 ]]; then
		sed -n '/^sluice bench/,/^run/p' "$out" | grep -v '^run'
		# The replicas and ISR after the run: the figures are for
		# replicated writes only if every ISR still holds all replicas.
		if command -v kcat >/dev/null; then
			echo "partitions after run 1 (kcat -L):"
			timeout 5 kcat -L -m 5 -b "127.0.0.1:${kport[1]}" -t "cluster-$$-1" | grep 'partition ' || true
		fi
	fi
	cpu=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$RECORDS" 'BEGIN { printf "%.0f", d / hz * 1e9 / n }')
	echo "$cpu" >"$out.cpu"
	echo "run $i: $(field "$out" rate) records/s, latency p50 $(field "$out" p50) ms, p99 $(field "$out" p99) ms, p999 $(field "$out" p999) ms ($cpu ns broker CPU/record, load $(cut -d' ' -f1 /proc/loadavg))"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

col() { for i in $(seq "$RUNS"); do field "$work/run$i.txt" "$1"; done | median; }
echo
printf '%-24s %12s %14s %14s %15s %22s\n' "median of $RUNS runs" records/s "p50 ms" "p99 ms" "p999 ms" "broker CPU ns/record"
printf '%-24s %12s %14s %14s %15s %22s\n' "$NODES broker(s), RF $NODES" "$(col rate)" "$(col p50)" "$(col p99)" "$(col p999)" \
	"$(for i in $(seq "$RUNS"); do cat "$work/run$i.txt.cpu"; done | median)"
