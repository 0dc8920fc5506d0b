#!/usr/bin/env bash
# compat.sh runs franz-go's own pkg/kgo integration suite, unmodified, against
# Sluice brokers started from this checkout: a single broker with
# KGO_TEST_RF=1, and a 3-broker cluster (three processes forming one Raft
# metadata quorum) with the suite's default replication factor, KGO_TEST_RF=3,
# and all three brokers as KGO_SEEDS; and a secured single broker (mode
# secure) whose listeners all authenticate: the suite's clients use mTLS on an
# SSL listener (KGO_TEST_TLS with a client certificate), and TestSCRAMAuth,
# TestSCRAMAuthBadCredentials and TestOAuthAuth use a SASL_PLAINTEXT listener
# with SCRAM-SHA-256 and OAUTHBEARER (KGO_TEST_SCRAM, KGO_TEST_SCRAM_SEEDS,
# KGO_TEST_OAUTH_SEEDS; unsecured test tokens, loopback only). franz-go's suite
# never combines TLS with SASL in one client, so the SASL tests cannot run over
# SASL_SSL; tests in broker/ cover SASL_SSL with franz-go, sarama and kcat.
# Mode gateway starts the 3-broker cluster and `sluice gateway` in front of it,
# and gives the suite the gateway's address alone as KGO_SEEDS, KGO_TEST_RF=3:
# the suite treats the gateway as the whole cluster.
#
# The franz-go version is the one go.mod requires. Its module tree is copied out
# of the module cache into a writable work dir so that pkg/kgo still builds as
# github.com/twmb/franz-go/pkg/kgo with its own go.mod and go.sum.
#
# Environment:
#   COMPAT_MODE       single, cluster, secure, gateway, both (single and
#                     cluster) or all (default: single, cluster, secure,
#                     gateway): which Sluice deployments the suite runs
#                     against, in that order; every mode runs even if an
#                     earlier one fails
#   COMPAT_DIR        work dir (default: a fresh mktemp -d, removed on exit)
#   KGO_TEST_RECORDS  records per ETL test (default 500000, upstream's default;
#                     on 2 cores the single-broker run takes about a minute,
#                     the cluster run about a minute and a half)
#   COMPAT_SECURE_RECORDS  KGO_TEST_RECORDS of the secure mode (default 50000:
#                     TLS costs more CPU, and the mode is about security)
#   COMPAT_TIMEOUT    go test -timeout per mode (default 20m)
#   COMPAT_RUN        go test -run pattern (default: every test)
#   COMPAT_SEEDS      if set, do not start Sluice; run once against these seed
#                     brokers instead, with KGO_TEST_RF from the environment
#                     (default 1) (used to calibrate the suite on kfake)
#   COMPAT_VERBOSE=1  go test -v
#   SLUICE            use this sluice binary instead of building one
#   COMPAT_HOGS       if set to N > 0, start N CPU hogs (busy shell loops at
#                     the brokers' priority) before the brokers and keep them
#                     running until the brokers are stopped: the load test of
#                     a busy machine (COMPAT_HOGS=2 keeps both cores of the
#                     reference machine busy); off by default
#
# In cluster mode the brokers serve the admin interface, and after the suite
# the script reads /api/v1/events: a broker fenced while the suite ran (other
# than by its own request at shutdown) fails the mode, with the events listed.
#
# Exit status: non-zero if the build, a broker start or any test fails in any
# mode. A summary line per mode is printed last.
#
# Excluded tests (passed to go test -skip), with the reason. TestTxnEtl (the
# exactly-once ETL over transactions and read_committed fetches) runs in every
# mode: Sluice serves the transaction APIs (22 with a transactional id, 24-28).
#   TestIssue769  (secure mode only) sets its own Dialer, which franz-go refuses
#               together with KGO_TEST_TLS's DialTLSConfig: the client is nil
#               and the test panics, whatever the broker.
# Tests that gate themselves at runtime from ApiVersions and therefore skip on
# Sluice without being listed here: static membership (JoinGroup v5+),
# KIP-848 (ConsumerGroupHeartbeat, key 68) and share groups (keys 76-79).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SKIP=''
RECORDS=${KGO_TEST_RECORDS:-500000}
TIMEOUT=${COMPAT_TIMEOUT:-20m}
RUN=${COMPAT_RUN:-.}
MODE=${COMPAT_MODE:-all}
SECURE_RECORDS=${COMPAT_SECURE_RECORDS:-50000}
case $MODE in
single) MODES=(single) ;;
cluster) MODES=(cluster) ;;
secure) MODES=(secure) ;;
gateway) MODES=(gateway) ;;
both) MODES=(single cluster) ;;
all) MODES=(single cluster secure gateway) ;;
*)
	echo "compat: COMPAT_MODE $MODE is not single, cluster, secure, gateway, both or all" >&2
	exit 2
	;;
esac

FRANZ_VERSION=$(go list -m -f '{{.Version}}' github.com/twmb/franz-go)
SRC="$(go env GOMODCACHE)/github.com/twmb/franz-go@${FRANZ_VERSION}"
if [[ ! -d "$SRC/pkg/kgo" ]]; then
	go mod download github.com/twmb/franz-go@"$FRANZ_VERSION"
fi

CLEAN_WORK=0
if [[ -z "${COMPAT_DIR:-}" ]]; then
	COMPAT_DIR=$(mktemp -d)
	CLEAN_WORK=1
fi
mkdir -p "$COMPAT_DIR"

# BROKER_PIDS are the brokers of the mode running now, BROKER_LOGS their logs,
# ADMIN_ADDRS their admin listeners (cluster mode), HOG_PIDS the CPU hogs.
BROKER_PIDS=()
BROKER_LOGS=()
ADMIN_ADDRS=()
HOG_PIDS=()
HOGS=${COMPAT_HOGS:-0}
if ! [[ $HOGS =~ ^[0-9]+$ ]]; then
	echo "compat: COMPAT_HOGS $HOGS is not a number of CPU hogs" >&2
	exit 2
fi

# start_hogs starts HOGS busy loops; stop_hogs ends them.
start_hogs() {
	local i
	for i in $(seq 1 "$HOGS"); do
		bash -c 'while :; do :; done' &
		HOG_PIDS+=($!)
	done
	if ((HOGS > 0)); then
		echo "compat: started $HOGS CPU hog(s): ${HOG_PIDS[*]}"
	fi
}
stop_hogs() {
	local pid
	for pid in "${HOG_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	HOG_PIDS=()
}

# stop_brokers sends SIGTERM to every broker, waits up to 10 s for each and
# then kills what is left. It fails if a broker did not exit 0 after
# SIGTERM, printing the tail of its log.
stop_brokers() {
	local i pid st failed=0
	for pid in "${BROKER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for i in "${!BROKER_PIDS[@]}"; do
		pid=${BROKER_PIDS[i]}
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		st=0
		wait "$pid" 2>/dev/null || st=$?
		if [[ $st != 0 ]]; then
			echo "compat: broker ${BROKER_LOGS[i]} exited $st after SIGTERM; log tail follows" >&2
			tail -n 50 "${BROKER_LOGS[i]}" >&2
			failed=1
		fi
	done
	BROKER_PIDS=()
	BROKER_LOGS=()
	ADMIN_ADDRS=()
	return $failed
}

# check_fencing prints the broker fencings in the cluster's event log that the
# brokers did not ask for, and fails if there are any.
check_fencing() {
	local events fenced
	if ! events=$(curl -fsS --max-time 10 "http://${ADMIN_ADDRS[0]}/api/v1/events"); then
		echo "compat: cannot read /api/v1/events from ${ADMIN_ADDRS[0]}" >&2
		return 1
	fi
	fenced=$(jq -c '[.[] | select(.type == "broker_fenced" and .detail != "requested by broker")]' <<<"$events")
	echo "compat: broker fencings not asked for: $(jq length <<<"$fenced"), leader elections: $(jq '[.[] | select(.type == "leader_elected")] | length' <<<"$events")"
	if [[ $(jq length <<<"$fenced") != 0 ]]; then
		jq -c '.[]' <<<"$fenced" >&2
		return 1
	fi
}

cleanup() {
	stop_brokers >/dev/null 2>&1 || true
	stop_hogs
	if [[ $CLEAN_WORK == 1 ]]; then
		chmod -R u+w "$COMPAT_DIR" 2>/dev/null || true
		rm -rf "$COMPAT_DIR"
	fi
}
trap cleanup EXIT

echo "compat: franz-go $FRANZ_VERSION, work dir $COMPAT_DIR"
rm -rf "$COMPAT_DIR/franz-go"
cp -r "$SRC" "$COMPAT_DIR/franz-go"
chmod -R u+w "$COMPAT_DIR/franz-go"

# free_port prints a loopback TCP port nobody is listening on right now and
# that this script has not handed out yet. It picks below Linux's ephemeral
# range (32768-60999 by default), where an outgoing connection of another
# process can take the port between this check and the broker's bind.
TAKEN=" "
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 12768))
		[[ $TAKEN == *" $p "* ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			TAKEN+="$p "
			echo "$p"
			return 0
		fi
	done
	return 1
}

# start_brokers N starts N brokers on fresh data dirs, as one quorum if N > 1,
# waits until each logs that it is ready and, for a cluster, until Metadata
# lists all of them, and sets SEEDS.
start_brokers() {
	local n=$1 i quorum="" dir="$COMPAT_DIR/$2"
	local -a kport rport aport args
	rm -rf "$dir"
	mkdir -p "$dir"
	SEEDS=""
	for i in $(seq 1 "$n"); do
		kport[i]=$(free_port)
		rport[i]=$(free_port)
		aport[i]=$(free_port)
		quorum+="${quorum:+,}$i@127.0.0.1:${rport[i]}"
		SEEDS+="${SEEDS:+,}127.0.0.1:${kport[i]}"
	done
	for i in $(seq 1 "$n"); do
		args=(broker --listen "127.0.0.1:${kport[i]}" --data-dir "$dir/data$i")
		if [[ $n -gt 1 ]]; then
			args+=(--node-id "$i" --controller-listen "127.0.0.1:${rport[i]}" --controller-quorum "$quorum"
				--admin-listen "127.0.0.1:${aport[i]}")
			ADMIN_ADDRS+=("127.0.0.1:${aport[i]}")
		fi
		"$SLUICE_BIN" "${args[@]}" >"$dir/broker$i.log" 2>&1 &
		BROKER_PIDS+=($!)
		BROKER_LOGS+=("$dir/broker$i.log")
		echo "compat: started sluice ${args[*]} (pid $!)"
	done
	local deadline=$((SECONDS + 30))
	for i in $(seq 1 "$n"); do
		until grep -q "broker ready" "$dir/broker$i.log"; do
			if ! kill -0 "${BROKER_PIDS[i - 1]}" 2>/dev/null || ((SECONDS >= deadline)); then
				echo "compat: sluice broker $i did not log ready; log follows" >&2
				cat "$dir/broker$i.log" >&2
				return 1
			fi
			sleep 0.1
		done
	done
	if [[ $n -gt 1 ]] && command -v kcat >/dev/null; then
		until [[ $(timeout 5 kcat -L -m 5 -b "127.0.0.1:${kport[1]}" 2>/dev/null | sed -n 's/^ \([0-9]*\) brokers:$/\1/p') == "$n" ]]; do
			if ((SECONDS >= deadline)); then
				echo "compat: Metadata does not list $n brokers after 30 s" >&2
				timeout 5 kcat -L -m 5 -b "127.0.0.1:${kport[1]}" 2>&1 | head -n 10 >&2 || true
				return 1
			fi
			sleep 0.2
		done
	fi
	echo "compat: $n sluice broker(s) serving $SEEDS"
}

# start_secure_broker starts one broker whose listeners all authenticate, with
# certificates from `sluice certs` and an initial SCRAM-SHA-256 admin, and sets
# SEEDS and SECURE_ENV (the suite's KGO_TEST_TLS/SCRAM/OAUTH settings).
start_secure_broker() {
	local dir="$COMPAT_DIR/secure" sport aport
	rm -rf "$dir"
	mkdir -p "$dir"
	sport=$(free_port)
	aport=$(free_port)
	"$SLUICE_BIN" certs --dir "$dir/certs" --server broker=127.0.0.1,localhost --client kgo-suite >/dev/null
	printf 'kgo-admin-secret\n' >"$dir/admin.pass"
	cat >"$dir/broker.yaml" <<EOF
log.dir: $dir/data
listeners: MTLS://127.0.0.1:$sport,SASL://127.0.0.1:$aport
listener.security.protocol.map: MTLS:SSL,SASL:SASL_PLAINTEXT
ssl.keystore.location: $dir/certs/broker-keystore.pem
ssl.truststore.location: $dir/certs/ca.pem
ssl.client.auth: required
ssl.principal.mapping.rules: RULE:^CN=([^,]*),.*\$/\$1/,DEFAULT
sasl.enabled.mechanisms: SCRAM-SHA-256,OAUTHBEARER
sasl.oauthbearer.unsecured.tokens.enable: true
scram.initial.users:
  - {name: admin, mechanism: SCRAM-SHA-256, password.file: $dir/admin.pass}
EOF
	"$SLUICE_BIN" broker --config "$dir/broker.yaml" >"$dir/broker1.log" 2>&1 &
	BROKER_PIDS+=($!)
	BROKER_LOGS+=("$dir/broker1.log")
	echo "compat: started sluice broker --config $dir/broker.yaml (pid $!)"
	local deadline=$((SECONDS + 30))
	until grep -q "broker ready" "$dir/broker1.log" && grep -q "initial SCRAM credential written" "$dir/broker1.log"; do
		if ! kill -0 "${BROKER_PIDS[0]}" 2>/dev/null || ((SECONDS >= deadline)); then
			echo "compat: secure sluice broker did not get ready; log follows" >&2
			cat "$dir/broker1.log" >&2
			return 1
		fi
		sleep 0.1
	done
	SEEDS="127.0.0.1:$sport"
	SECURE_ENV=(
		"KGO_TEST_TLS=ca:$dir/certs/ca.pem,cert:$dir/certs/kgo-suite.pem,key:$dir/certs/kgo-suite-key.pem"
		"KGO_TEST_SCRAM=admin:kgo-admin-secret:256"
		"KGO_TEST_SCRAM_SEEDS=127.0.0.1:$aport"
		"KGO_TEST_OAUTH_SEEDS=127.0.0.1:$aport"
	)
	echo "compat: secure sluice broker serving mTLS on $SEEDS, SASL on 127.0.0.1:$aport"
}

# start_gateway starts `sluice gateway` in front of SEEDS (the brokers) on a
# free loopback port, waits until it is ready, and sets SEEDS to its address
# alone. It is stopped with the brokers.
start_gateway() {
	local dir="$COMPAT_DIR/gateway" gport mport
	mkdir -p "$dir"
	gport=$(free_port)
	mport=$(free_port)
	"$SLUICE_BIN" gateway --listen "127.0.0.1:$gport" --bootstrap "$SEEDS" --metrics-listen "127.0.0.1:$mport" \
		>"$dir/gateway.log" 2>&1 &
	BROKER_PIDS+=($!)
	BROKER_LOGS+=("$dir/gateway.log")
	echo "compat: started sluice gateway --listen 127.0.0.1:$gport --bootstrap $SEEDS (pid $!)"
	local deadline=$((SECONDS + 30))
	until grep -q "gateway ready" "$dir/gateway.log"; do
		if ! kill -0 "${BROKER_PIDS[-1]}" 2>/dev/null || ((SECONDS >= deadline)); then
			echo "compat: sluice gateway did not get ready; log follows" >&2
			cat "$dir/gateway.log" >&2
			return 1
		fi
		sleep 0.1
	done
	SEEDS="127.0.0.1:$gport"
	echo "compat: gateway serving $SEEDS (metrics on 127.0.0.1:$mport)"
}

SECURE_ENV=()
VERBOSE=()
if [[ "${COMPAT_VERBOSE:-0}" == 1 ]]; then
	VERBOSE=(-v)
fi

# run_suite SEEDS RF [RECORDS] runs the kgo suite once, with SECURE_ENV.
run_suite() {
	(
		cd "$COMPAT_DIR/franz-go/pkg/kgo"
		local skip=$SKIP
		if [[ ${#SECURE_ENV[@]} -gt 0 ]]; then
			skip='^TestIssue769$'
		fi
		env "${SECURE_ENV[@]}" GOWORK=off GOFLAGS=-mod=mod KGO_SEEDS="$1" KGO_TEST_RF="$2" KGO_TEST_RECORDS="${3:-$RECORDS}" \
			go test -count=1 -timeout "$TIMEOUT" "${VERBOSE[@]}" -run "$RUN" -skip "$skip" .
	)
}

if [[ -n "${COMPAT_SEEDS:-}" ]]; then
	echo "compat: COMPAT_SEEDS set, not starting Sluice; seeds $COMPAT_SEEDS"
	if run_suite "$COMPAT_SEEDS" "${KGO_TEST_RF:-1}"; then
		echo "compat: PASS"
		exit 0
	fi
	echo "compat: FAIL" >&2
	exit 1
fi

if [[ -n "${SLUICE:-}" ]]; then
	SLUICE_BIN=$(cd "$(dirname "$SLUICE")" && pwd)/$(basename "$SLUICE")
else
	SLUICE_BIN="$COMPAT_DIR/sluice"
	go build -o "$SLUICE_BIN" ./cmd/sluice
fi

status=0
summary=()
for mode in "${MODES[@]}"; do
	case $mode in
	single | secure) nodes=1 rf=1 ;;
	cluster | gateway) nodes=3 rf=3 ;;
	esac
	echo "compat: === $mode: $nodes broker(s), KGO_TEST_RF=$rf ==="
	st=0
	start=$SECONDS
	SECURE_ENV=()
	start_hogs
	if [[ $mode == secure ]]; then
		if start_secure_broker; then
			run_suite "$SEEDS" "$rf" "$SECURE_RECORDS" || st=$?
		else
			st=1
		fi
	elif [[ $mode == gateway ]]; then
		if start_brokers "$nodes" "$mode" && start_gateway; then
			run_suite "$SEEDS" "$rf" || st=$?
			check_fencing || { [[ $st != 0 ]] || st=1; }
		else
			st=1
		fi
	elif start_brokers "$nodes" "$mode"; then
		run_suite "$SEEDS" "$rf" || st=$?
		if [[ $nodes -gt 1 ]]; then
			check_fencing || { [[ $st != 0 ]] || st=1; }
		fi
	else
		st=1
	fi
	if [[ $st != 0 ]]; then
		# What the brokers complained about while the suite failed.
		for log in "${BROKER_LOGS[@]}"; do
			echo "compat: $mode: warnings and errors in $log (last 40):" >&2
			grep -v 'level=INFO' "$log" | tail -n 40 >&2 || true
		done
	fi
	stop_brokers || { [[ $st != 0 ]] || st=1; }
	stop_hogs
	if [[ $st == 0 ]]; then
		summary+=("compat: $mode ($nodes broker(s), KGO_TEST_RF=$rf, $HOGS CPU hog(s)): PASS in $((SECONDS - start)) s")
	else
		summary+=("compat: $mode ($nodes broker(s), KGO_TEST_RF=$rf, $HOGS CPU hog(s)): FAIL (status $st) after $((SECONDS - start)) s")
		status=$st
	fi
done

printf '%s\n' "${summary[@]}"
if [[ $status != 0 ]]; then
	echo "compat: FAIL (status $status)" >&2
	exit "$status"
fi
echo "compat: PASS"
