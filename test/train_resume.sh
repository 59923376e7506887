#!/bin/bash
# Resume is bit-exact: stop + --resume, a crash after the last checkpoint,
# SIGTERM mid-run; streaming: a shard committed while training runs is
# picked up by the watch and then used, also across a resume.
source "$(dirname "$0")/train_lib.sh"

mkdir -p "$T/data" "$T/more"
"$MKDATA" "$T/data/shard-000000.h5" 40 --seed 1 || { echo "cannot make data"; exit 1; }
"$MKDATA" "$T/more/shard-000001.h5" 40 --seed 2 --first-id 7000
A=(jobs/tiny.conf --labeled "$T/data" --train.log_every=1)

# ---- stop at 20 of 40, resume ----
run_ok "straight 40" "$NBOOST" train "${A[@]}" --steps 40 --out "$T/straight"
run_ok "stop at 20" "$NBOOST" train "${A[@]}" --steps 40 --out "$T/split" --stop-at 20
check "checkpoint at 20" test "$(digest "$T/split/checkpoint.h5" | cut -d' ' -f2)" = 20
run_ok "resume to 40" "$NBOOST" train "${A[@]}" --steps 40 --out "$T/split" --resume
check "resume: same final params digest" test "$(digest "$T/split/checkpoint.h5")" = "$(digest "$T/straight/checkpoint.h5")"
check "resume: identical losses at every step" test "$(losses "$T/split/metrics.jsonl")" = "$(losses "$T/straight/metrics.jsonl")"

# ---- a crash after the checkpoint at 20: metrics beyond it are redone ----
mkdir -p "$T/crash"
cp "$T/straight/metrics.jsonl" "$T/crash/"            # logged up to 40
cp "$T/split/config.conf" "$T/crash/"
run_ok "checkpoint 20 again" "$NBOOST" train "${A[@]}" --steps 40 --out "$T/c20" --stop-at 20
cp "$T/c20/checkpoint.h5" "$T/crash/"                 # but checkpointed at 20
run_ok "resume after crash" "$NBOOST" train "${A[@]}" --steps 40 --out "$T/crash" --resume
check "crash: same final digest" test "$(digest "$T/crash/checkpoint.h5")" = "$(digest "$T/straight/checkpoint.h5")"
check "crash: metrics hold each step once" test "$(losses "$T/crash/metrics.jsonl")" = "$(losses "$T/straight/metrics.jsonl")"

# ---- SIGTERM mid-run, then --resume ----
L=(jobs/tiny.conf --labeled "$T/data" --steps 1500 --train.log_every=10)
run_ok "straight 1500" "$NBOOST" train "${L[@]}" --out "$T/long"
"$NBOOST" train "${L[@]}" --out "$T/sig" 2>"$T/sig.err" &
pid=$!
for _ in $(seq 100); do [ -s "$T/sig/metrics.jsonl" ] && break; sleep 0.05; done
sleep 0.3
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM: exit 75, stopped resumable ($(tail -2 "$T/sig.err"))" test $rc -eq 75
check "SIGTERM: says stopped on a signal" grep -q "stopped at step [0-9]*/1500 on a signal" "$T/sig.err"
k=$(digest "$T/sig/checkpoint.h5" | cut -d' ' -f2)
check "SIGTERM: checkpoint mid-run (step $k)" test "$k" -gt 0 -a "$k" -lt 1500
run_ok "resume after SIGTERM" "$NBOOST" train "${L[@]}" --out "$T/sig" --resume
check "SIGTERM + resume: same final digest" test "$(digest "$T/sig/checkpoint.h5")" = "$(digest "$T/long/checkpoint.h5")"

# ---- streaming, deterministic: a shard appears between stop and resume ----
W=(jobs/tiny.conf --labeled "$T/data2" --steps 30 --train.log_every=1 --train.watch_every=5)
mkdir -p "$T/data2" && cp "$T/data/shard-000000.h5" "$T/data2/"
run_ok "watch run, stop at 10" "$NBOOST" train "${W[@]}" --out "$T/w1" --stop-at 10
cp -r "$T/w1" "$T/w2"
cp "$T/more/shard-000001.h5" "$T/data2/"
run_ok "watch run resumed" "$NBOOST" train "${W[@]}" --out "$T/w1" --resume
check "watch: new shard reported" grep -q "step 10: added 1 new shard(s), 80 samples in all" "$T/last.err"
check "watch: checkpoint records the shard and its step" $PY -c 'import h5py,sys
f=h5py.File(sys.argv[1],"r"); s=f["state"]
assert list(s["shard_steps"][:])==[0,10], s["shard_steps"][:]
assert list(s["shard_counts"][:])==[40,40]
assert bytes(s["shard_paths"][:]).decode().split("\n")[1].endswith("data2/shard-000001.h5")' "$T/w1/checkpoint.h5"
run_ok "same without the new shard" "$NBOOST" train "${W[@]/data2/data}" --out "$T/w0"
check "watch: losses up to step 10 unchanged" test "$(losses "$T/w1/metrics.jsonl" | sed -n 1,10p)" = "$(losses "$T/w0/metrics.jsonl" | sed -n 1,10p)"
check "watch: the new samples change later steps" test "$(losses "$T/w1/metrics.jsonl" | sed -n 11,30p)" != "$(losses "$T/w0/metrics.jsonl" | sed -n 11,30p)"
# resuming after the shard was added is bit-exact too
run_ok "watch: stop at 20" "$NBOOST" train "${W[@]}" --out "$T/w2" --resume --stop-at 20
run_ok "watch: resume to 30" "$NBOOST" train "${W[@]}" --out "$T/w2" --resume
check "watch: split run equals the continuous one" test "$(digest "$T/w2/checkpoint.h5")" = "$(digest "$T/w1/checkpoint.h5")"

# ---- streaming, live: a shard committed while the process trains ----
mkdir -p "$T/live" && cp "$T/data/shard-000000.h5" "$T/live/"
"$NBOOST" train jobs/tiny.conf --labeled "$T/live" --steps 3000 --train.watch_every=10 --out "$T/lrun" 2>"$T/live.err" &
pid=$!
for _ in $(seq 100); do [ -s "$T/lrun/metrics.jsonl" ] && break; sleep 0.05; done
"$MKDATA" "$T/live/shard-000002.h5" 40 --seed 3 --first-id 9000
sleep 0.5
kill -USR1 $pid
wait $pid
rc=$?
check "live: SIGUSR1 exit 75" test $rc -eq 75
check "live: shard picked up while running ($(tail -2 "$T/live.err"))" grep -q "added 1 new shard(s), 80 samples in all" "$T/live.err"

finish
