#!/bin/bash
# Data parallelism: 1, 2 and 3 ranks over the same global batch give the same
# losses (within 1e-4 relative over 50 steps), and a 2-rank run stopped and
# resumed on 2 ranks ends bit-identical to an uninterrupted one.
source "$(dirname "$0")/train_lib.sh"

mkdir -p "$T/data"
"$MKDATA" "$T/data/shard-000000.h5" 48 --seed 1 || { echo "cannot make data"; exit 1; }
"$MKDATA" "$T/data/shard-000001.h5" 48 --seed 2 --first-id 5000
A=(jobs/tiny.conf --labeled "$T/data" --steps 50 --train.log_every=1 --train.checkpoint_every=0)

run_ok "1 rank" "$NBOOST" train "${A[@]}" --out "$T/r1"
run_ok "2 ranks" $MPIEXEC -np 2 --oversubscribe "$NBOOST" train "${A[@]}" --out "$T/r2"
check "2-rank progress says 2 rank(s) x 1 thread(s)" grep -q "2 rank(s) x 1 thread(s) (OMP_NUM_THREADS), global batch 8" "$T/last.err"
run_ok "3 ranks (uneven slices 2/3/3)" $MPIEXEC -np 3 --oversubscribe "$NBOOST" train "${A[@]}" --out "$T/r3"

close() { # A B: every step's loss within 1e-4 relative, 50 steps each
	$PY - "$1" "$2" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == 50 and len(b) == 50, (len(a), len(b))
worst = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(a, b))
assert all(x["step"] == y["step"] for x, y in zip(a, b))
print("max relative loss difference %.3g" % worst, file=sys.stderr)
assert worst <= 1e-4, worst
# and training did something: the loss fell
assert a[-1]["loss"] < 0.9 * a[0]["loss"], (a[0]["loss"], a[-1]["loss"])
PY
}
check "1 vs 2 ranks: losses within 1e-4" close "$T/r1/metrics.jsonl" "$T/r2/metrics.jsonl"
check "1 vs 3 ranks: losses within 1e-4" close "$T/r1/metrics.jsonl" "$T/r3/metrics.jsonl"

# stop at 25 on 2 ranks, resume on 2 ranks: identical to the straight 2-rank run
run_ok "2 ranks, stop at 25" $MPIEXEC -np 2 --oversubscribe "$NBOOST" train "${A[@]}" --out "$T/s2" --stop-at 25
check "stopped at 25" grep -q "stopped at step 25/50" "$T/last.err"
run_ok "2 ranks, resume" $MPIEXEC -np 2 --oversubscribe "$NBOOST" train "${A[@]}" --out "$T/s2" --resume
check "2-rank resume: same params digest" test "$(digest "$T/s2/checkpoint.h5")" = "$(digest "$T/r2/checkpoint.h5")"
check "2-rank resume: same losses" test "$(losses "$T/s2/metrics.jsonl")" = "$(losses "$T/r2/metrics.jsonl")"
# resuming on another rank count works, with a warning
run_ok "2-rank checkpoint resumed on 1 rank" "$NBOOST" train "${A[@]}" --out "$T/s2" --resume --steps 52
check "rank-count warning" grep -q "written by 2: the run continues, but not bit-identically" "$T/last.err"

# a signal through mpirun (SIGUSR1 is forwarded to every rank): all ranks
# agree on the stop step, checkpoint, exit 75 (resumable; mpirun passes it
# on); --resume finishes the run
$MPIEXEC -np 2 --oversubscribe "$NBOOST" train jobs/tiny.conf --labeled "$T/data" --steps 3000 --out "$T/sig" \
	2>"$T/sig.err" &
pid=$!
for _ in $(seq 200); do [ -s "$T/sig/metrics.jsonl" ] && break; sleep 0.05; done
sleep 0.3
kill -USR1 $pid
wait $pid
rc=$?
check "2 ranks, SIGUSR1 via mpirun: exit 75 ($(tail -2 "$T/sig.err"))" test $rc -eq 75
k=$(digest "$T/sig/checkpoint.h5" | cut -d' ' -f2)
check "2 ranks, SIGUSR1: checkpoint mid-run (step $k)" test "$k" -gt 0 -a "$k" -lt 3000
check "2 ranks, SIGUSR1: one stop message" test "$(grep -c "stopped at step $k/3000 on a signal" "$T/sig.err")" -eq 1
run_ok "2 ranks, resume after SIGUSR1" $MPIEXEC -np 2 --oversubscribe "$NBOOST" train jobs/tiny.conf --labeled "$T/data" --steps 3000 --out "$T/sig" --resume
check "2 ranks, resumed to 3000" test "$(digest "$T/sig/checkpoint.h5" | cut -d' ' -f2)" = 3000

# Threads per rank without OMP_NUM_THREADS: the ranks on a node split its CPUs
# (never more threads than cores in all, at least one each); set, it wins.
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
half=$((cpus / 2)); [ "$half" -ge 1 ] || half=1
B=(jobs/tiny.conf --labeled "$T/data" --steps 1 --train.checkpoint_every=0)
run_ok "threads: 1 process, automatic" env -u OMP_NUM_THREADS "$NBOOST" train "${B[@]}" --out "$T/t1"
check "1 process uses all $cpus CPU(s)" grep -q "1 rank(s) x $cpus thread(s), global" "$T/last.err"
run_ok "threads: 2 ranks, automatic" env -u OMP_NUM_THREADS $MPIEXEC -np 2 --oversubscribe "$NBOOST" train "${B[@]}" --out "$T/t2"
check "2 ranks split $cpus CPU(s): $half each" grep -q "2 rank(s) x $half thread(s), global" "$T/last.err"
run_ok "threads: 3 ranks, automatic" env -u OMP_NUM_THREADS $MPIEXEC -np 3 --oversubscribe "$NBOOST" train "${B[@]}" --out "$T/t3"
third=$((cpus / 3)); [ "$third" -ge 1 ] || third=1
check "3 ranks split $cpus CPU(s): $third each" grep -q "3 rank(s) x $third thread(s), global" "$T/last.err"
run_ok "threads: OMP_NUM_THREADS=3" env OMP_NUM_THREADS=3 "$NBOOST" train "${B[@]}" --out "$T/t4"
check "OMP_NUM_THREADS wins" grep -q "1 rank(s) x 3 thread(s) (OMP_NUM_THREADS), global" "$T/last.err"

finish
