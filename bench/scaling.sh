#!/usr/bin/env bash
# scaling.sh records the scaling drill's figures (docs/benchmarks.md, "Scaling drill"): it runs
# TestScalingDrill (test/cluster, the scaling scenario of chaos/scaling) RUNS times and prints, per run
# and as medians, the time to balance and the acknowledged records/s before the brokers joined, while
# the balancer moved partitions onto them and over the 10 s after, with the ratios during/before and
# during/after. The drill asserts no speed; this script is where its figures come from.
# Usage: bench/scaling.sh [SLUICE_BIN] (default: builds ./cmd/sluice)
# Env: RUNS (5).
set -euo pipefail
BIN=${1:-}
RUNS=${RUNS:-5}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
if [ -z "$BIN" ]; then BIN=$DIR/sluice; go build -o "$BIN" ./cmd/sluice; fi
BIN=$(realpath "$BIN")
go test -c -o "$DIR/cluster.test" ./test/cluster/
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start, $(date -u +%FT%TZ)"
for i in $(seq "$RUNS"); do
  if ! (cd test/cluster && SLUICE_BIN=$BIN "$DIR/cluster.test" -test.count=1 -test.run '^TestScalingDrill$' -test.v >"$DIR/run$i.log" 2>&1); then
    echo "run $i failed:"; grep -E -- '--- FAIL|Error:|Error Trace' -A3 "$DIR/run$i.log" | head -20
    continue
  fi
  # "time to balance 26.5s; acknowledged records/s before 8134, during balancing 2426 (ratio 0.30), after 4506 (0.55); ..."
  sed -nE 's/.*time to balance ([0-9.]+)(ms|s|m[0-9.]*s); acknowledged records\/s before ([0-9]+), during balancing ([0-9]+) \(ratio [0-9.]+\), after ([0-9]+).*/\1\2 \3 \4 \5/p' \
    "$DIR/run$i.log" | tail -1 >>"$DIR/figures"
  echo "run $i: $(tail -1 "$DIR/figures") (time to balance, records/s before, during, after)"
done
[ -s "$DIR/figures" ] || { echo "no run completed"; exit 1; }
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
python3 - "$DIR/figures" <<'PY'
import re, statistics, sys
rows = []
for line in open(sys.argv[1]):
    t, b, d, a = line.split()
    m = re.fullmatch(r"(?:(\d+)m)?([\d.]+)(ms|s)", t)
    secs = (int(m.group(1) or 0) * 60) + float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
    rows.append((secs, float(b), float(d), float(a)))
med = lambda xs: statistics.median(xs)
print(f"runs: {len(rows)}")
print(f"time to balance s: median {med([r[0] for r in rows]):.1f}  ({', '.join(f'{r[0]:.1f}' for r in sorted(rows))})")
for i, name in ((1, "before"), (2, "during"), (3, "after")):
    print(f"records/s {name}: median {med([r[i] for r in rows]):.0f}  ({', '.join(f'{r[i]:.0f}' for r in rows)})")
print(f"during/before per run: median {med([r[2]/r[1] for r in rows]):.2f}  ({', '.join(f'{r[2]/r[1]:.2f}' for r in rows)})")
print(f"during/after per run: median {med([r[2]/r[3] for r in rows]):.2f}  ({', '.join(f'{r[2]/r[3]:.2f}' for r in rows)})")
PY
