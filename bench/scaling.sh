#!/usr/bin/env bash
# scaling.sh records the scaling drill's figures (docs/benchmarks.md, "Scaling drill"): it runs
# TestScalingDrill (test/cluster, the scaling scenario of chaos/scaling) RUNS times and prints, per run
# and as medians, the time to balance and the acknowledged records/s before the brokers joined, with
# them joined and the balancer paused (nothing moving), while the balancer moved partitions onto them
# and over the 10 s after, with the ratios during/before, during/idle and during/after, and the
# median of the paired ratios of each 10 s the balancer worked to the 10 s paused right after it.
# The drill asserts no speed; this script is where its figures come from.
# Usage: bench/scaling.sh [SLUICE_BIN] (default: builds ./cmd/sluice)
# Env: RUNS (5); LOGS, a directory that keeps each run's test log (run1.log ...).
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
  ok=1
  (cd test/cluster && SLUICE_BIN=$BIN SCALING_PAIRED=1 "$DIR/cluster.test" -test.count=1 -test.run '^TestScalingDrill$' -test.v >"$DIR/run$i.log" 2>&1) || ok=0
  if [ -n "${LOGS:-}" ]; then mkdir -p "$LOGS" && cp "$DIR/run$i.log" "$LOGS/"; fi
  if [ $ok = 0 ]; then
    echo "run $i failed:"; grep -E -- '--- FAIL|Error:|Error Trace' -A3 "$DIR/run$i.log" | head -20
    continue
  fi
  # "time to balance 26.5s; acknowledged records/s before 8134, during balancing 2426 (ratio 0.30), after 4506 (0.55); ..."
  # "joined and idle (balancer paused) 6012 records/s, during/idle 0.81, paired 0.93 over 8 pairs; joining took 3.2s"
  fig=$(sed -nE 's/.*time to balance ([0-9.]+)(ms|s|m[0-9.]*s); acknowledged records\/s before ([0-9]+), during balancing ([0-9]+) \(ratio [0-9.]+\), after ([0-9]+).*/\1\2 \3 \4 \5/p' \
    "$DIR/run$i.log" | tail -1)
  idle=$(sed -nE 's/.*joined and idle \(balancer paused\) ([0-9]+) records\/s.*/\1/p' "$DIR/run$i.log" | tail -1)
  paired=$(sed -nE 's/.*, paired ([0-9.]+) over [0-9]+ pairs.*/\1/p' "$DIR/run$i.log" | tail -1)
  echo "$fig ${idle:-0} $(cut -d' ' -f1 /proc/loadavg) ${paired:-0}" >>"$DIR/figures"
  echo "run $i: $(tail -1 "$DIR/figures") (time to balance, records/s before, during, after, joined and idle; load average; paired moving/paused)"
done
[ -s "$DIR/figures" ] || { echo "no run completed"; exit 1; }
echo "load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
python3 - "$DIR/figures" <<'PY'
import re, statistics, sys
rows = []
for line in open(sys.argv[1]):
    t, b, d, a, i, load, paired = line.split()
    m = re.fullmatch(r"(?:(\d+)m)?([\d.]+)(ms|s)", t)
    secs = (int(m.group(1) or 0) * 60) + float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
    rows.append((secs, float(b), float(d), float(a), float(i), float(load), float(paired)))
med = lambda xs: statistics.median(xs)
def ratios(name, k):
    rs = [r[2] / r[k] for r in rows if r[k] > 0]
    if rs:
        print(f"during/{name} per run: median {med(rs):.2f}  ({', '.join(f'{x:.2f}' for x in rs)})")
print(f"runs: {len(rows)}")
print(f"time to balance s (the balancer working, paused windows left out): median {med([r[0] for r in rows]):.1f}  ({', '.join(f'{r[0]:.1f}' for r in rows)})")
for k, name in ((1, "before"), (4, "joined and idle"), (2, "during"), (3, "after")):
    print(f"records/s {name}: median {med([r[k] for r in rows]):.0f}  ({', '.join(f'{r[k]:.0f}' for r in rows)})")
ratios("before", 1)
ratios("idle", 4)
ratios("after", 3)
print(f"paired moving/paused per run (median of the run's pairs): median {med([r[6] for r in rows]):.2f}  ({', '.join(f'{r[6]:.2f}' for r in rows)})")
print(f"load average (1 min) at each run's end: {', '.join(f'{r[5]:.1f}' for r in rows)}")
PY
