#!/bin/bash
# CPU per put of every process of the e2e benchmark's put scenario (issue 23), which
# the e2e harness reports only for the server and the simulator:
#
#   benches/puts_cpu.sh mxpva|limit [MXPVA_BINARY] [OUTDIR] [SECONDS] [WRITERS]
#
# Starts the server (mxpva with `mxpva sim`, or `e2e limit`) serving B:0..B:999, the e2e
# monitor on every PV and the e2e put client (WRITERS writers, default 100), as
# `cargo bench --bench e2e` does; then prints puts/s, the round trip, and the CPU time per
# put (utime + stime) of each process over a window in the middle of the run, the
# server's by thread, and the context switches per put. Uses the e2e client, Galaxy and
# config that a `cargo bench --bench e2e -- --only puts --no-peer` run leaves in
# target/bench/.
#
# PIN=1 in the environment: the simulator on the last CPU, the server and both clients on
# the others (as the e2e bench's paced stream rounds, "as if the gateway were another
# host"); the limit and its clients then have the same CPUs as mxpva and its clients.
# MXLOG: mxpva's RUST_LOG (default info; warn leaves out the audit's log lines).
SYS=$1; ROOT=$(cd "$(dirname "$0")/.." && pwd)
MX=${2:-$ROOT/target/release/mxpva}; OUT=${3:-$ROOT/target/bench/puts-cpu-$SYS}
SECS=${4:-6}; W=${5:-100}
SIMCPU=; SRVCPU=
if [ "${PIN:-0}" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  SIMCPU="taskset -c $(($(nproc) - 1))"; SRVCPU="taskset -c 0-$(($(nproc) - 2))"
fi
E2E=$ROOT/target/bench/e2e
B=$ROOT/target/bench
rm -rf $OUT; mkdir -p $OUT
SIMPORT=$((20000 + RANDOM % 20000)); TCP=$((SIMPORT+1)); UDP=$((SIMPORT+2))
export EPICS_PVAS_INTF_ADDR_LIST=127.0.0.1 EPICS_PVAS_SERVER_PORT=$TCP EPICS_PVAS_BROADCAST_PORT=$UDP EPICS_PVAS_BEACON_ADDR_LIST=127.0.0.1 EPICS_PVAS_AUTO_BEACON_ADDR_LIST=NO
mkfifo $OUT/srvin
if [ $SYS = mxpva ]; then
  sed "s#endpoint = .*#endpoint = \"http://127.0.0.1:$SIMPORT\"#" $B/mxpva-1000.toml > $OUT/mxpva.toml
  RUST_LOG=warn $SIMCPU $MX sim --listen 127.0.0.1:$SIMPORT --galaxy $B/galaxy-1000.toml > $OUT/sim.log 2>&1 &
  SIM=$!
  sleep 0.5
  RUST_LOG=${MXLOG:-info} $SRVCPU $MX run --config $OUT/mxpva.toml > $OUT/server.log 2>&1 &
  SRV=$!
  for i in $(seq 1 200); do grep -q "gateway session up" $OUT/server.log && break; sleep 0.1; done
else
  exec 8<> $OUT/srvin; $SRVCPU $E2E limit B: 1000 < $OUT/srvin > $OUT/server.log 2>&1 &
  SRV=$!; SIM=

  for i in $(seq 1 100); do grep -q READY $OUT/server.log && break; sleep 0.1; done
fi
unset EPICS_PVAS_INTF_ADDR_LIST EPICS_PVAS_SERVER_PORT EPICS_PVAS_BROADCAST_PORT EPICS_PVAS_BEACON_ADDR_LIST EPICS_PVAS_AUTO_BEACON_ADDR_LIST
export EPICS_PVA_ADDR_LIST=127.0.0.1 EPICS_PVA_AUTO_ADDR_LIST=NO EPICS_PVA_BROADCAST_PORT=$UDP EPICS_PVA_SERVER_PORT=$TCP
mkfifo $OUT/monin
exec 9<> $OUT/monin; $SRVCPU $E2E monitor B: 1000 < $OUT/monin > $OUT/monitor.out 2>&1 &
MON=$!

for i in $(seq 1 200); do grep -q READY $OUT/monitor.out && break; sleep 0.1; done

$SRVCPU $E2E put B: $W $SECS $OUT/put.txt > $OUT/put.out 2>&1 &
PUTP=$!
snap() { # per-thread ticks of server, and process ticks of others
  for t in /proc/$SRV/task/*; do echo "srv:$(cat $t/comm) $(awk '{print $14+$15}' $t/stat)"; echo "cs:$(cat $t/comm) $(awk '/ctxt_switches/{s+=$2} END {print s}' $t/status)"; done
  for p in $SIM $MON $PUTP; do echo "cs$p $(cat /proc/$p/task/*/status | awk '/ctxt_switches/{s+=$2} END {print s}')"; done
  for p in $SIM $MON $PUTP; do echo "pid$p $(awk '{print $14+$15}' /proc/$p/stat)"; done
}
sleep 1.5
# puts in the window: count the put client's completions via its rate (whole run) later
snap > $OUT/snap0; t0=$(date +%s.%N)
sleep $(python3 -c "print($SECS-2.5)")
snap > $OUT/snap1; t1=$(date +%s.%N)
wait $PUTP
exec 9>&-; [ $SYS = limit ] && exec 8>&-
kill $MON $SRV $SIM 2>/dev/null; wait $MON $SRV $SIM 2>/dev/null
python3 - $OUT $SECS $t0 $t1 "$SIM" "$MON" "$PUTP" <<'PY'
import sys,collections
out,secs,t0,t1=sys.argv[1],float(sys.argv[2]),float(sys.argv[3]),float(sys.argv[4])
sim,mon,put=sys.argv[5],sys.argv[6],sys.argv[7]
names={f"pid{sim}":"sim",f"pid{mon}":"monitor",f"pid{put}":"put client",f"cs{sim}":"cs:sim",f"cs{mon}":"cs:monitor",f"cs{put}":"cs:put client"}
def rd(f):
    d=collections.Counter()
    for l in open(f):
        k,v=l.split(); d[names.get(k,k)]+=int(v)
    return d
a,b=rd(out+"/snap0"),rd(out+"/snap1")
n=int(open(out+"/put.out").read().split()[1]); rate=n/secs
win=t1-t0
v=sorted(float(l) for l in open(out+"/put.txt") if l.strip())
p=lambda q: v[int(round((len(v)-1)*q))]
print(f"puts/s {rate:.0f}  p50 {p(.5):.0f} us  p99 {p(.99):.0f} us   CPU us per put:")
tot=0; srv=0
cs=[]
for k in sorted(b):
    if k.startswith("cs"):
        x=(b[k]-a.get(k,0))/(rate*win)
        if x>0.01: cs.append(f"{k[3:]} {x:.2f}")
        continue
    us=(b[k]-a.get(k,0))/100/ (rate*win) *1e6
    tot+=us
    if k.startswith("srv:"): srv+=us
    if us>0.05: print(f"   {k:24s} {us:7.1f}")
print(f"   {'server total':24s} {srv:7.1f}\n   {'all':24s} {tot:7.1f}")
print("   context switches per put: " + ", ".join(cs))
PY
