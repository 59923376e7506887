#!/bin/bash
# Faults around the run directory's files (issue #13): a checkpoint write on
# a full disk (a 64 KiB tmpfs: exit 1, "No space left on device", no
# temporary left, also on 2 ranks); metrics.jsonl on a full device (/dev/full:
# exit 1 naming the file); a torn last metrics line cut off on resume; and
# temporaries of a writer killed mid-checkpoint (dead or zombie pid) swept
# on start while a live writer's stays.
source "$(dirname "$0")/train_lib.sh"

mkdir -p "$T/data"
"$MKDATA" "$T/data/shard-000000.h5" 40 --seed 1 || { echo "cannot make data"; exit 1; }
A=(jobs/tiny.conf --labeled "$T/data" --train.log_every=1)
# temporaries in a directory (hidden .NAME.tmp.PID files)
temps() { find "$1" -maxdepth 1 -name '.*.tmp.*' | sort; }

# ---- checkpoint on a full disk: a tmpfs too small for one checkpoint ----
# A real ENOSPC from the kernel, which is what users hit; mounting needs
# root (CAP_SYS_ADMIN), so without it this part is skipped, not failed.
mkdir -p "$T/small"
if mount -t tmpfs -o size=64k tmpfs "$T/small" 2>/dev/null; then
	at_exit "umount '$T/small'"
	expect_fail 1 "No space left on device" "$NBOOST" train "${A[@]}" --steps 4 --out "$T/small/r1"
	check "full disk: message names the checkpoint" grep -q "cannot write checkpoint '$T/small/r1/checkpoint.h5'" "$T/err.txt"
	check "full disk: no temporary left ($(temps "$T/small/r1"))" test -z "$(temps "$T/small/r1")"
	check "full disk: no checkpoint" test ! -e "$T/small/r1/checkpoint.h5"
	expect_fail 1 "No space left on device" $MPIEXEC -np 2 --oversubscribe "$NBOOST" train "${A[@]}" --steps 4 --out "$T/small/r2"
	check "full disk, 2 ranks: no temporary left" test -z "$(temps "$T/small/r2")"
else
	echo "train_faults: cannot mount a tmpfs (not root?): full-disk checkpoint part skipped"
fi

# ---- metrics.jsonl on a device that is always full ----
mkdir -p "$T/m"
ln -s /dev/full "$T/m/metrics.jsonl"
expect_fail 1 "cannot write '$T/m/metrics.jsonl': No space left on device" "$NBOOST" train "${A[@]}" --steps 3 --out "$T/m"
check "metrics on /dev/full: no 'done' claimed" test "$(grep -c "train: done" "$T/err.txt")" -eq 0

# ---- a torn last metrics line (a crash mid-write) is cut off on resume ----
run_ok "straight 30" "$NBOOST" train "${A[@]}" --steps 30 --out "$T/straight"
run_ok "stop at 15" "$NBOOST" train "${A[@]}" --steps 30 --out "$T/torn" --stop-at 15
printf '{"step": 16, "loss": 3.1' >>"$T/torn/metrics.jsonl"
run_ok "resume after a torn line" "$NBOOST" train "${A[@]}" --steps 30 --out "$T/torn" --resume
check "torn line: every line is JSON, steps 1..30 once" $PY -c 'import json,sys
steps=[json.loads(l)["step"] for l in open(sys.argv[1])]
assert steps==list(range(1,31)), steps' "$T/torn/metrics.jsonl"
check "torn line: same losses as a straight run" test "$(losses "$T/torn/metrics.jsonl")" = "$(losses "$T/straight/metrics.jsonl")"

# ---- temporaries of dead writers are swept on start, a live one's stays ----
true &
dead=$!
wait $dead
# a zombie: a child that exited and that its parent never waited for
$PY -c 'import os,sys,time
pid=os.fork()
if pid==0: os._exit(0)
print(pid, flush=True); time.sleep(60)' >"$T/zombie.pid" &
zparent=$!
at_exit "kill $zparent 2>/dev/null"
for _ in $(seq 50); do [ -s "$T/zombie.pid" ] && break; sleep 0.1; done
zombie=$(cat "$T/zombie.pid")
sleep 30 &
live=$!
at_exit "kill $live 2>/dev/null"
cp -r "$T/straight" "$T/sweep"
for p in $dead $zombie $live; do
	echo junk >"$T/sweep/.checkpoint.h5.tmp.$p"
done
echo junk >"$T/sweep/.metrics.jsonl.tmp.$dead"
run_ok "resume sweeps temporaries" "$NBOOST" train "${A[@]}" --steps 32 --out "$T/sweep" --resume
check "sweep: dead writer's temporaries removed" test ! -e "$T/sweep/.checkpoint.h5.tmp.$dead" -a ! -e "$T/sweep/.metrics.jsonl.tmp.$dead"
check "sweep: zombie writer's temporary removed" test ! -e "$T/sweep/.checkpoint.h5.tmp.$zombie"
check "sweep: live writer's temporary kept" test -e "$T/sweep/.checkpoint.h5.tmp.$live"
check "sweep: reported" grep -q "removed 3 temporary file(s) left by interrupted writes" "$T/last.err"
# a real kill -9 during the checkpoint writes of a run: whatever it left is
# swept by the resume
"$NBOOST" train "${A[@]}" --steps 100000 --train.checkpoint_every=1 --out "$T/k9" 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ -s "$T/k9/checkpoint.h5" ] && break; sleep 0.05; done
sleep 0.2
kill -9 $pid
wait $pid 2>/dev/null
echo junk >"$T/k9/.checkpoint.h5.tmp.$pid" # whether or not the kill caught a write
run_ok "resume after kill -9" "$NBOOST" train "${A[@]}" --steps 100000 --out "$T/k9" --resume --stop-at 0
check "kill -9: no temporaries after resume ($(temps "$T/k9"))" test -z "$(temps "$T/k9")"

finish
