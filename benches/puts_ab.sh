#!/bin/bash
# Alternating runs of benches/puts_cpu.sh for two or more mxpva binaries (issue 23), and
# the median of each figure per binary:
#
#   benches/puts_ab.sh ROUNDS BINARY_A BINARY_B ...
#
# Each round runs every binary once, in order, 6 s each (100 writers); prints, per
# binary, puts/s (median and each run) and the median CPU per put in us of all
# processes, the bridge thread (named as the binary), pvxs's TCP thread, the simulator
# and the put client. Give the binaries different file names: the bridge thread is found
# by the name. Needs what benches/puts_cpu.sh needs.
ROUNDS=$1; shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROWS=$(mktemp)
for i in $(seq 1 "$ROUNDS"); do
  for b in "$@"; do
    n=$(basename "$b")
    out=$("$ROOT/benches/puts_cpu.sh" mxpva "$b" "$ROOT/target/bench/ab-$n" 6 2>&1 | tail -12)
    field() { echo "$out" | awk -v k="$1" -v c="$2" '$1==k{print $c}'; }
    echo "$n $(field puts/s 2) $(field all 2) $(field "srv:${n:0:15}" 2) $(field srv:PVXTCP 2) $(field sim 2) $(field put 3)" >> "$ROWS"
  done
done
python3 - "$ROWS" "$@" <<'PY'
import os, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for b in sys.argv[2:]:
    n = os.path.basename(b)
    rs = [r for r in rows if r[0] == n and len(r) == 7]
    if not rs:
        print(f"{n}: no complete run"); continue
    med = lambda k: statistics.median(float(r[k]) for r in rs)
    print(f"{n}: {len(rs)} runs, puts/s median {med(1):.0f} [{' '.join(r[1] for r in rs)}]; "
          f"CPU us per put: all {med(2):.1f}, bridge {med(3):.1f}, PVXTCP {med(4):.1f}, "
          f"simulator {med(5):.1f}, put client {med(6):.1f}")
PY
rm -f "$ROWS"
