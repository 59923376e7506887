#!/bin/bash
# `nboost train` driven by a job script (docs/training.md, docs/exit-codes.md):
#   - a signal stops with exit 75 (resumable), a finished run exits 0, a
#     usage error 2;
#   - --resume=auto starts when there is no checkpoint and resumes when there
#     is one: the same command, run until it exits 0, gives the digest of an
#     uninterrupted run;
#   - train.keep_checkpoints = N keeps the last N step checkpoints;
#   - metrics.jsonl: wall-clock time; train.eval_every with data.test logs
#     held-out CHAIR_i and tuple F1 equal to `nboost eval --model` on the
#     checkpoint of that step.
source "$(dirname "$0")/train_lib.sh"

mkdir -p "$T/data"
"$MKDATA" "$T/data/shard-000000.h5" 40 --seed 1 || { echo "cannot make data"; exit 1; }
A=(jobs/tiny.conf --labeled "$T/data")

# ---- exit statuses ----
expect_fail 2 "--resume: 'later' is not a value it takes (only --resume or --resume=auto)" "$NBOOST" train "${A[@]}" --resume=later
expect_fail 2 "train.eval_every = 5 needs held-out shards: set data.test" "$NBOOST" train "${A[@]}" --out "$T/u" --train.eval_every=5
expect_fail 1 "train.keep_checkpoints = -1 is out of range" "$NBOOST" train "${A[@]}" --out "$T/u" --train.keep_checkpoints=-1
"$NBOOST" train "${A[@]}" --steps 100000 --train.checkpoint_every=0 --out "$T/sig" 2>"$T/sig.err" &
pid=$!
for _ in $(seq 200); do [ -s "$T/sig/metrics.jsonl" ] && break; sleep 0.05; done
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM: exit 75, stopped and resumable ($(tail -1 "$T/sig.err"))" test $rc -eq 75
k=$(digest "$T/sig/checkpoint.h5" | cut -d' ' -f2)
check "SIGTERM: checkpoint mid-run (step $k)" test "${k:-0}" -gt 0
run_ok "--stop-at: a requested stop" "$NBOOST" train "${A[@]}" --steps 40 --out "$T/stopat" --stop-at 10

# ---- --resume=auto: the same command until it exits 0 ----
L=("${A[@]}" --steps 400 --train.checkpoint_every=50 --train.log_every=10)
run_ok "straight 400" "$NBOOST" train "${L[@]}" --out "$T/straight"
"$NBOOST" train "${L[@]}" --out "$T/auto" --resume=auto 2>"$T/auto1.err" &
pid=$!
for _ in $(seq 200); do [ -s "$T/auto/metrics.jsonl" ] && break; sleep 0.02; done
kill -USR1 $pid
wait $pid
rc1=$?
check "--resume=auto without a checkpoint starts" grep -q "no checkpoint yet, starting" "$T/auto1.err"
check "first part stopped (75) or finished (0): $rc1" test $rc1 -eq 75 -o $rc1 -eq 0
rounds=1
rc=$rc1
while [ $rc -eq 75 ] && [ $rounds -lt 5 ]; do
	"$NBOOST" train "${L[@]}" --out "$T/auto" --resume=auto 2>"$T/auto2.err"
	rc=$?
	rounds=$((rounds + 1))
done
check "--resume=auto: the rerun exits 0 ($rc)" test $rc -eq 0
[ $rc1 -eq 75 ] && check "--resume=auto with a checkpoint resumes" grep -q "a checkpoint exists, resuming" "$T/auto2.err"
check "--resume=auto: same final digest as the straight run" \
	test "$(digest "$T/auto/checkpoint.h5")" = "$(digest "$T/straight/checkpoint.h5")"
run_ok "--resume=auto on a finished run: nothing to do" "$NBOOST" train "${L[@]}" --out "$T/auto" --resume=auto
check "the finished run stays at 400" test "$(digest "$T/auto/checkpoint.h5" | cut -d' ' -f2)" = 400

# ---- train.keep_checkpoints ----
run_ok "keep 2" "$NBOOST" train "${A[@]}" --steps 230 --train.checkpoint_every=50 --train.keep_checkpoints=2 --out "$T/keep"
check "keep 2: the last two step checkpoints and checkpoint.h5 ($(ls "$T/keep" | tr '\n' ' '))" \
	test "$(ls "$T/keep" | grep '^checkpoint' | tr '\n' ' ')" = "checkpoint-00000200.h5 checkpoint-00000230.h5 checkpoint.h5 "
check "keep 2: the newest kept file is checkpoint.h5's step" \
	test "$(digest "$T/keep/checkpoint-00000230.h5")" = "$(digest "$T/keep/checkpoint.h5")"
check "keep 2: an older one holds its own step" test "$(digest "$T/keep/checkpoint-00000200.h5" | cut -d' ' -f2)" = 200
run_ok "keep 0 (default): checkpoint.h5 alone" "$NBOOST" train "${A[@]}" --steps 120 --train.checkpoint_every=50 --out "$T/keep0"
check "keep 0: no step checkpoints" test -z "$(ls "$T/keep0" | grep '^checkpoint-')"
check "keep 2 is written to config.conf" grep -qx "keep_checkpoints = 2" "$T/keep/config.conf"

# ---- metrics.jsonl: wall-clock time; held-out scores every train.eval_every ----
"$NBOOST" synth --out "$T/s" --size 16 --labeled 64 --unlabeled 0 --test 24 --shard-size 32 -q ||
	{ echo "cannot synth"; exit 1; }
before=$(date +%s)
run_ok "eval_every" "$NBOOST" train "$NB_SRC/jobs/tiny.conf" --labeled "$T/s/labeled" --out "$T/ev" --steps 40 \
	--train.eval_every=20 --data.test="$T/s/test" --train.checkpoint_every=20 --train.keep_checkpoints=5
after=$(date +%s)
check "held-out line on stderr" grep -qE "^train: step 20: held-out '.*': CHAIR_i [0-9.]+  tuple F1 [0-9.]+  \(24 images\)" "$T/last.err"
for step in 20 40; do
	"$NBOOST" eval --model "$T/ev/checkpoint-000000$step.h5" --shards "$T/s/test" --json >"$T/e$step.json" 2>/dev/null
done
check "metrics.jsonl: time, elapsed and held-out scores equal to nboost eval" $PY - "$T/ev/metrics.jsonl" "$before" "$after" "$T/e20.json" "$T/e40.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
lo, hi = float(sys.argv[2]), float(sys.argv[3]) + 1
for r in rows:
    assert lo <= r["time"] <= hi, r
    assert r["elapsed_s"] >= 0, r
evals = [r for r in rows if "eval" in r]
assert [r["step"] for r in evals] == [20, 40], evals
for r, path in zip(evals, sys.argv[4:]):
    want = json.loads(open(path).read())
    for k in ("chair_i", "chair_s", "recall", "tuple_f1"):
        assert r["eval"][k] == want[k], (k, r["eval"][k], want[k])
    assert r["eval"]["n"] == want["n"] == 24
steps = [r["step"] for r in rows if "loss" in r]
assert steps == sorted(steps) and steps[-1] == 40, steps
PY
expect_fail 1 "cannot list shards in '$T/nowhere'" "$NBOOST" train "$NB_SRC/jobs/tiny.conf" --labeled "$T/s/labeled" --out "$T/ev2" \
	--steps 4 --train.eval_every=2 --data.test="$T/nowhere"

finish
