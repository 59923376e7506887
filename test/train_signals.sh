#!/bin/bash
# Stopping `mpirun -np 2 nboost train` with a signal, as docs/training.md
# ("Stopping a run") describes it under Open MPI 4.1:
#   - SIGUSR1 to mpirun is forwarded to the ranks: checkpoint, exit 75
#     (resumable), and mpirun exits 75 too;
#   - SIGTERM to the ranks themselves (here: mpirun's children): checkpoint,
#     every rank exits 75, and so does mpirun;
#   - SIGTERM to mpirun: mpirun itself exits 1; whether the ranks are
#     signalled (and checkpoint) or run on to the end depends on Open MPI's
#     launcher and timing (both seen here), so only a valid checkpoint and
#     a resume are checked.
# Each stop is followed by a --resume to the end.
source "$(dirname "$0")/train_lib.sh"

mkdir -p "$T/data"
"$MKDATA" "$T/data/shard-000000.h5" 40 --seed 1 || { echo "cannot make data"; exit 1; }
A=(jobs/tiny.conf --labeled "$T/data" --steps 3000 --train.checkpoint_every=0)

# start NAME [mpirun options]: mpirun -np 2 nboost train in the background
# (pid in $pid) once it logs its first step.
start() {
	local name=$1; shift
	$MPIEXEC "$@" -np 2 --oversubscribe "$NBOOST" train "${A[@]}" --out "$T/$name" 2>"$T/$name.err" &
	pid=$!
	for _ in $(seq 200); do [ -s "$T/$name/metrics.jsonl" ] && break; sleep 0.05; done
	sleep 0.3
}
# stopped NAME: one stop message, a mid-run checkpoint, and a resume to the end
stopped() {
	local name=$1 k
	k=$(digest "$T/$name/checkpoint.h5" | cut -d' ' -f2)
	check "$name: checkpoint mid-run (step $k)" test "${k:-0}" -gt 0 -a "${k:-0}" -lt 3000
	check "$name: one stop message" test "$(grep -c "stopped at step $k/3000 on a signal" "$T/$name.err")" -eq 1
	run_ok "$name: resume" $MPIEXEC -np 2 --oversubscribe "$NBOOST" train "${A[@]}" --out "$T/$name" --resume
	check "$name: resumed to 3000" test "$(digest "$T/$name/checkpoint.h5" | cut -d' ' -f2)" = 3000
}

start usr1
kill -USR1 $pid
wait $pid
rc=$?
check "SIGUSR1 to mpirun: exit 75 ($(tail -1 "$T/usr1.err"))" test $rc -eq 75
stopped usr1

start ranks
ranks=$(ps -o pid= --ppid $pid)
check "two ranks under mpirun ($ranks)" test "$(echo $ranks | wc -w)" -eq 2
kill -TERM $ranks
wait $pid
rc=$?
check "SIGTERM to the ranks: mpirun exits 75 ($(tail -1 "$T/ranks.err"))" test $rc -eq 75
stopped ranks

start term --mca odls_base_sigkill_timeout 30
kill -TERM $pid
wait $pid
check "SIGTERM to mpirun: exits 1 (Open MPI's status, not the ranks')" test $? -eq 1
k=$(digest "$T/term/checkpoint.h5" | cut -d' ' -f2)
check "term: a valid checkpoint (step $k)" test "${k:-0}" -gt 0 -a "${k:-0}" -le 3000
run_ok "term: resume" $MPIEXEC -np 2 --oversubscribe "$NBOOST" train "${A[@]}" --out "$T/term" --resume
check "term: resumed to 3000" test "$(digest "$T/term/checkpoint.h5" | cut -d' ' -f2)" = 3000

finish
