#!/bin/bash
# One run per run directory (issue #13): a second `nboost train` (fresh or
# --resume, 1 or 2 ranks) or `nboost run` on a directory that a running
# train holds is refused with the holder's PID, and the directory is free
# again once the holder exits. Shards are identified by their canonical
# path: a run started with --labeled through a symlink and resumed with the
# real path does not add its shards a second time.
source "$(dirname "$0")/train_lib.sh"

mkdir -p "$T/data"
"$MKDATA" "$T/data/shard-000000.h5" 40 --seed 1 || { echo "cannot make data"; exit 1; }
mkdir -p "$T/images" && "$MKDATA" "$T/images/shard-000000.h5" 16 --image-shard
A=(jobs/tiny.conf --labeled "$T/data" --train.log_every=1)

# ---- two runs on one --out ----
"$NBOOST" train "${A[@]}" --steps 100000 --train.checkpoint_every=0 --out "$T/one" 2>"$T/holder.err" &
holder=$!
at_exit "kill -9 $holder 2>/dev/null"
for _ in $(seq 200); do [ -s "$T/one/metrics.jsonl" ] && break; sleep 0.05; done
expect_fail 1 "run directory '$T/one' is in use by another nboost (pid $holder)" "$NBOOST" train "${A[@]}" --steps 5 --out "$T/one"
expect_fail 1 "(pid $holder)" "$NBOOST" train "${A[@]}" --steps 5 --out "$T/one" --resume
expect_fail 1 "(pid $holder)" $MPIEXEC -np 2 --oversubscribe "$NBOOST" train "${A[@]}" --steps 5 --out "$T/one"
expect_fail 1 "run directory '$T/one' is in use by another nboost (pid $holder)" \
	timeout 120 $MPIEXEC -np 4 --oversubscribe "$NBOOST" run jobs/run-tiny.conf --corpus.labeled="$T/data" \
	--corpus.unlabeled="$T/images" --out "$T/one"
check "the refused runs left the holder's files alone" test ! -e "$T/one/journal.jsonl"
kill -TERM $holder
wait $holder
rc=$?
check "holder: SIGTERM exit 75" test $rc -eq 75
check "holder: its config.conf is its own (steps = 100000)" grep -qx "steps = 100000" "$T/one/config.conf"
check "holder: one metrics line per step" $PY -c 'import json,sys
steps=[json.loads(l)["step"] for l in open(sys.argv[1])]
assert steps==list(range(1,len(steps)+1)), steps' "$T/one/metrics.jsonl"
run_ok "free again after the holder exits" "$NBOOST" train "${A[@]}" --steps 100000 --out "$T/one" --resume --stop-at 0

# ---- --labeled through a symlink, resumed with the real path ----
ln -s "$T/data" "$T/link"
W=(jobs/tiny.conf --steps 30 --train.log_every=1 --train.watch_every=5)
run_ok "straight, real path" "$NBOOST" train "${W[@]}" --labeled "$T/data" --out "$T/straight"
run_ok "symlink, stop at 10" "$NBOOST" train "${W[@]}" --labeled "$T/link" --out "$T/sym" --stop-at 10
run_ok "resume with the real path" "$NBOOST" train "${W[@]}" --labeled "$T/data" --out "$T/sym" --resume
check "symlink: no shard added again ($(grep "new shard" "$T/last.err"))" test -z "$(grep "new shard" "$T/last.err")"
check "symlink: the checkpoint lists one shard of 40" $PY -c 'import h5py,sys
s=h5py.File(sys.argv[1],"r")["state"]
assert list(s["shard_counts"][:])==[40], s["shard_counts"][:]' "$T/sym/checkpoint.h5"
check "symlink: same final params as the straight run" test "$(digest "$T/sym/checkpoint.h5")" = "$(digest "$T/straight/checkpoint.h5")"
# and the other way round: started on the real path, resumed through the link
run_ok "real path, stop at 10" "$NBOOST" train "${W[@]}" --labeled "$T/data" --out "$T/real" --stop-at 10
run_ok "resume through the symlink" "$NBOOST" train "${W[@]}" --labeled "$T/link" --out "$T/real" --resume
check "real then symlink: same final params" test "$(digest "$T/real/checkpoint.h5")" = "$(digest "$T/straight/checkpoint.h5")"

finish
