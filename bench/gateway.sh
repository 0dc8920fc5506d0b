#!/usr/bin/env bash
# gateway.sh: throughput through `sluice gateway` against direct connections,
# in the same session on the same cluster.
#
# Starts NODES (default 3) `sluice broker` processes as one Raft quorum on
# fresh data dirs and free loopback ports, and one `sluice gateway` in front of
# them. Then, for acks=1 and acks=all, it runs `sluice bench --mode both` RUNS
# times against the brokers directly and RUNS times through the gateway,
# interleaved (direct, gateway, gateway, direct, ...: each round starts with
# the next path) so that both see the same load from the rest of the machine,
# each once the brokers are idle again (with acks=1 the followers copy a run's
# records after it ends), each run on a fresh topic of PARTITIONS
# partitions, replication factor NODES, min.insync.replicas 2. It prints every
# run, the medians of produce and consume records/s per path, and the ratio
# gateway/direct (acks=1 runs produce only: see below). The gateway, the brokers and the bench client share the cores.
#
# Environment (all optional):
#   SLUICE      the binary, default bin/sluice (built if missing)
#   NODES       brokers, default 3
#   RUNS        runs per path and acks, default 5
#   RECORDS     records per run, default 1000000
#   PARTITIONS  partitions of each topic, default 6
#   BUFFERED    --max-buffered-records, default 16384
#   BENCH_FLAGS more `sluice bench` flags
#   KEEP=1      keep the work dir (data and logs)
#   GATEWAY_FLAGS  more `sluice gateway` flags (e.g. --per-broker-view=false)
#   BASELINE    another sluice binary (an older build): a second gateway of
#               that build runs in front of the same brokers, and every round
#               adds a run through it (path "baseline"), so that a change to the
#               gateway is measured against the old one in the same session
set -euo pipefail

cd "$(dirname "$0")/.."
SLUICE=${SLUICE:-bin/sluice}
NODES=${NODES:-3}
RUNS=${RUNS:-5}
RECORDS=${RECORDS:-1000000}
PARTITIONS=${PARTITIONS:-6}
BUFFERED=${BUFFERED:-16384}
BENCH_FLAGS=${BENCH_FLAGS:-}

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

die() {
	echo "gateway bench: $1" >&2
	for f in "$work"/*.log; do
		echo "--- $f (tail) ---" >&2
		tail -n 30 "$f" >&2 || true
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
	"$SLUICE" "${args[@]}" >"$work/broker$n.log" 2>&1 &
	pids+=($!)
	bootstrap+="${bootstrap:+,}127.0.0.1:${kport[n]}"
done
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
gport=$(free_port)
# shellcheck disable=SC2086 # GATEWAY_FLAGS is split on purpose
"$SLUICE" gateway --listen "127.0.0.1:$gport" --bootstrap "$bootstrap" ${GATEWAY_FLAGS:-} >"$work/gateway.log" 2>&1 &
pids+=($!)
gpid=$!
until grep -q "gateway ready" "$work/gateway.log"; do
	kill -0 "${pids[-1]}" 2>/dev/null || die "gateway exited before it was ready"
	((SECONDS < deadline)) || die "gateway not ready after 60s"
	sleep 0.1
done
gateway="127.0.0.1:$gport"
echo "cluster: $NODES broker(s) at $bootstrap; gateway at $gateway"
paths=(direct gateway)
if [[ -n ${BASELINE:-} ]]; then
	bport=$(free_port)
	"$BASELINE" gateway --listen "127.0.0.1:$bport" --bootstrap "$bootstrap" >"$work/baseline.log" 2>&1 &
	pids+=($!)
	bpid=$!
	until grep -q "gateway ready" "$work/baseline.log"; do
		kill -0 "${pids[-1]}" 2>/dev/null || die "baseline gateway exited before it was ready"
		((SECONDS < deadline)) || die "baseline gateway not ready after 60s"
		sleep 0.1
	done
	baseline="127.0.0.1:$bport"
	paths+=(baseline)
	echo "baseline gateway ($BASELINE) at $baseline"
fi

# cpu PID... prints the CPU seconds (user+system) the processes have used.
cpu() {
	local pid t=0
	for pid in "$@"; do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
	done
	awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.1f", t/hz}'
}
brokers=("${pids[@]:0:NODES}")

# settle waits (up to 30s) until the brokers are idle: with acks=1 the
# followers copy a run's records after the producer is done, and that work
# must not be charged to the next run.
settle() {
	local end=$((SECONDS + 30)) a b
	while ((SECONDS < end)); do
		a=$(cpu "${brokers[@]}")
		sleep 0.5
		b=$(cpu "${brokers[@]}")
		awk -v a="$a" -v b="$b" 'BEGIN{exit !(b - a < 0.1)}' && return
	done
	echo "brokers still busy after 30s; running anyway"
}

# rate FILE PHASE prints the records/s of `run 1 PHASE:`.
rate() { grep "^run 1 $2:" "$1" | sed 's/.* = \([0-9,]*\) records\/s.*/\1/' | tr -d , || echo 0; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for acks in 1 all; do
	# With acks=1 the high watermark can trail the acknowledgements, which the
	# bench's end-offset check of --mode both refuses: acks=1 runs produce only.
	mode=both
	[[ $acks == 1 ]] && mode=produce
	for i in $(seq "$RUNS"); do
		# each round starts with the next path, so no path always follows the
		# same one
		for k in $(seq 0 $((${#paths[@]} - 1))); do
			path=${paths[(i + k) % ${#paths[@]}]}
			settle
			seeds=$bootstrap
			[[ $path == gateway ]] && seeds=$gateway
			[[ $path == baseline ]] && seeds=$baseline
			out="$work/$acks-$path-$i.txt"
			# shellcheck disable=SC2206 # BENCH_FLAGS is split on purpose
			cmd=("$SLUICE" bench --bootstrap "$seeds" --topic "gw-$$-$acks-$path-$i" --mode "$mode"
				--records "$RECORDS" --acks "$acks" --partitions "$PARTITIONS" --replication-factor "$NODES"
				--topic-config min.insync.replicas=2 --max-buffered-records "$BUFFERED" $BENCH_FLAGS)
			[[ $i == 1 ]] && echo "command: ${cmd[*]}"
			gw=$gpid
			[[ $path == baseline ]] && gw=$bpid
			b0=$(cpu "${brokers[@]}") g0=$(cpu "$gw")
			"${cmd[@]}" >"$out" 2>&1 || { cat "$out" >&2; die "bench $acks $path run $i failed"; }
			b1=$(cpu "${brokers[@]}") g1=$(cpu "$gw")
			# CPU seconds of the brokers and of the gateway during the run
			# (direct runs: the gateway should be idle)
			echo "acks=$acks $path run $i: produce $(rate "$out" produce) records/s, consume $(rate "$out" consume) records/s (load $(cut -d' ' -f1 /proc/loadavg); CPU s: brokers $(awk -v a="$b0" -v b="$b1" 'BEGIN{printf "%.1f", b-a}'), gateway $(awk -v a="$g0" -v b="$g1" 'BEGIN{printf "%.1f", b-a}'))"
		done
	done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '%-6s %-22s %18s %18s\n' acks path "produce records/s" "consume records/s"
for acks in 1 all; do
	for path in "${paths[@]}"; do
		p=$(for i in $(seq "$RUNS"); do rate "$work/$acks-$path-$i.txt" produce; done | median)
		c=$(for i in $(seq "$RUNS"); do rate "$work/$acks-$path-$i.txt" consume; done | median)
		printf '%-6s %-22s %18s %18s\n' "$acks" "$path" "$p" "$c"
		declare "p_${acks}_$path=$p" "c_${acks}_$path=$c"
	done
	for path in "${paths[@]:1}"; do
		pd="p_${acks}_direct" pg="p_${acks}_$path" cd_="c_${acks}_direct" cg="c_${acks}_$path"
		printf '%-6s %-22s %18s %18s\n' "$acks" "ratio $path/direct" "$(awk -v a="${!pg}" -v b="${!pd}" 'BEGIN{if (b > 0) printf "%.2f", a/b}')" \
			"$(awk -v a="${!cg}" -v b="${!cd_}" 'BEGIN{if (b > 0) printf "%.2f", a/b}')"
	done
done
