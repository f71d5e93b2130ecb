#!/bin/bash
# Each thread's run time and its wait for a CPU (the run queue), in us per put, under the
# 100 writers of benches/puts_cpu.sh (issue 23): whether a system's puts/s is bound by
# one thread or by the CPUs all of its threads share.
#
#   benches/puts_sched.sh mxpva|limit [MXPVA_BINARY]
#
# Runs benches/puts_cpu.sh (8 s) and reads /proc/<pid>/task/<tid>/schedstat of the
# server, the simulator, the monitor and the put client over 3 s in its middle. Needs
# what benches/puts_cpu.sh needs.
SYS=$1; ROOT=$(cd "$(dirname "$0")/.." && pwd)
MX=${2:-$ROOT/target/release/mxpva}
OUT=$ROOT/target/bench/puts-sched-$SYS
rm -rf "$OUT"; mkdir -p "$OUT"
"$ROOT/benches/puts_cpu.sh" "$SYS" "$MX" "$OUT/pc" 8 > "$OUT/pc.out" 2>&1 &
RUN=$!
sleep 3.5
PIDS="$(pgrep -f 'e2e put B: 100') $(pgrep -f 'e2e monitor B: 1000') $(pgrep -f 'e2e limit B: 1000') $(pgrep -f "$(basename "$MX") run --config $OUT/pc") $(pgrep -f "$(basename "$MX") sim --listen")"
snap() {
  for p in $PIDS; do
    for t in /proc/$p/task/*; do
      echo "$p:$(cat "$t/comm" 2>/dev/null):$(basename "$t") $(cat "$t/schedstat" 2>/dev/null)"
    done
  done
}
snap > "$OUT/s0"; sleep 3; snap > "$OUT/s1"
wait $RUN
head -1 "$OUT/pc.out"
python3 - "$OUT" <<'PY'
import sys
o = sys.argv[1]
def rd(f):
    d = {}
    for l in open(f):
        p = l.split()
        if len(p) == 4:
            d[p[0]] = tuple(int(x) for x in p[1:])
    return d
a, b = rd(o + "/s0"), rd(o + "/s1")
rate = float(open(o + "/pc.out").read().split()[1])
n = rate * 3
print("pid:thread:tid                 run us/put  wait us/put  slices/put")
tr = tw = 0
for k in sorted(b):
    if k not in a:
        continue
    r = (b[k][0] - a[k][0]) / 1e3 / n
    w = (b[k][1] - a[k][1]) / 1e3 / n
    s = (b[k][2] - a[k][2]) / n
    if r > 0.2:
        print(f"{k:30s} {r:8.2f} {w:11.2f} {s:11.3f}")
        tr += r; tw += w
print(f"total run {tr:.1f} wait {tw:.1f}")
PY
