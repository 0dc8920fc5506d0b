#!/usr/bin/env bash
# compat.sh runs franz-go's own pkg/kgo integration suite, unmodified, against
# a single Sluice broker started from this checkout.
#
# The franz-go version is the one go.mod requires. Its module tree is copied out
# of the module cache into a writable work dir so that pkg/kgo still builds as
# github.com/twmb/franz-go/pkg/kgo with its own go.mod and go.sum.
#
# Environment:
#   COMPAT_DIR        work dir (default: a fresh mktemp -d, removed on exit)
#   KGO_TEST_RECORDS  records per ETL test (default 500000, upstream's default;
#                     the whole run takes about a minute on 2 cores)
#   COMPAT_TIMEOUT    go test -timeout (default 20m)
#   COMPAT_RUN        go test -run pattern (default: every test)
#   COMPAT_SEEDS      if set, do not start Sluice; run against these seed
#                     brokers instead (used to calibrate the suite on kfake)
#   COMPAT_VERBOSE=1  go test -v
#
# Exit status: non-zero if the build, the broker start or any test fails.
#
# Excluded tests (passed to go test -skip), with the reason:
#   TestTxnEtl  needs transactions (InitProducerID with a transactional id,
#               AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit,
#               WriteTxnMarkers) and read_committed fetches; Sluice does not
#               serve the transaction APIs (24-28) yet.
# Tests that gate themselves at runtime from ApiVersions and therefore skip on
# Sluice without being listed here: static membership (JoinGroup v5+),
# KIP-848 (ConsumerGroupHeartbeat, key 68) and share groups (keys 76-79).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SKIP='^TestTxnEtl$'
RECORDS=${KGO_TEST_RECORDS:-500000}
TIMEOUT=${COMPAT_TIMEOUT:-20m}
RUN=${COMPAT_RUN:-.}

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

BROKER_PID=""
cleanup() {
	if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
		kill -TERM "$BROKER_PID" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$BROKER_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$BROKER_PID" 2>/dev/null || true
	fi
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

# free_port prints a loopback TCP port nobody is listening on right now.
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

if [[ -n "${COMPAT_SEEDS:-}" ]]; then
	SEEDS=$COMPAT_SEEDS
	echo "compat: COMPAT_SEEDS set, not starting Sluice; seeds $SEEDS"
else
	go build -o "$COMPAT_DIR/sluice" ./cmd/sluice
	PORT=$(free_port)
	SEEDS="127.0.0.1:$PORT"
	mkdir -p "$COMPAT_DIR/data"
	"$COMPAT_DIR/sluice" broker --listen "$SEEDS" --data-dir "$COMPAT_DIR/data" >"$COMPAT_DIR/broker.log" 2>&1 &
	BROKER_PID=$!
	ready=0
	for _ in $(seq 1 300); do # 30 s
		if grep -q ready "$COMPAT_DIR/broker.log"; then
			ready=1
			break
		fi
		if ! kill -0 "$BROKER_PID" 2>/dev/null; then
			break
		fi
		sleep 0.1
	done
	if [[ $ready != 1 ]]; then
		echo "compat: sluice did not log ready; log follows" >&2
		cat "$COMPAT_DIR/broker.log" >&2
		exit 1
	fi
	echo "compat: sluice pid $BROKER_PID serving $SEEDS"
fi

VERBOSE=()
if [[ "${COMPAT_VERBOSE:-0}" == 1 ]]; then
	VERBOSE=(-v)
fi

status=0
(
	cd "$COMPAT_DIR/franz-go/pkg/kgo"
	GOWORK=off GOFLAGS=-mod=mod KGO_SEEDS="$SEEDS" KGO_TEST_RF=1 KGO_TEST_RECORDS="$RECORDS" \
		go test -count=1 -timeout "$TIMEOUT" "${VERBOSE[@]}" -run "$RUN" -skip "$SKIP" .
) || status=$?

if [[ -n "$BROKER_PID" ]]; then
	kill -TERM "$BROKER_PID" 2>/dev/null || true
	bstatus=0
	wait "$BROKER_PID" || bstatus=$?
	BROKER_PID=""
	if [[ $bstatus != 0 ]]; then
		echo "compat: sluice exited $bstatus after SIGTERM; log tail follows" >&2
		tail -n 50 "$COMPAT_DIR/broker.log" >&2
		[[ $status != 0 ]] || status=1
	fi
fi

if [[ $status != 0 ]]; then
	echo "compat: FAIL (status $status)" >&2
	exit "$status"
fi
echo "compat: PASS"
