#!/bin/bash
# nboost run with corpus.test: after each round's student finished, the
# student leader scores it on the test set; round-R/test.json holds the same
# numbers as `nboost eval --model round-R/student.h5 --shards TEST --json`,
# and stderr the "student on the test set" line. A corpus.test without
# ground truth, of the wrong image size, or missing fails before any work
# (no run directory) with a message naming corpus.test and the cause.
# Labeling-only runs (run.students = 0) have no student and ignore it.
set -u
: "${NBOOST:?run through ctest}"
source "$(dirname "$0")/lib.sh"
cd "$NB_SRC"
MPIEXEC=${MPIEXEC:-mpirun}

"$NBOOST" synth --out "$T/D" --labeled 64 --unlabeled 32 --test 24 --size 16 --shard-size 16 -q ||
	{ echo "cannot make the corpus"; exit 1; }
"$NBOOST" synth --out "$T/D24" --labeled 0 --unlabeled 0 --test 8 --size 24 -q ||
	{ echo "cannot make the 24x24 corpus"; exit 1; }
D=$T/D
J=(jobs/run-tiny.conf --corpus.labeled="$D/labeled" --corpus.unlabeled="$D/unlabeled")

# ---- two rounds, scored after each ----
R=$T/R
run_ok "run with corpus.test" timeout 120 "$MPIEXEC" -np 4 "$NBOOST" run "${J[@]}" --corpus.test="$D/test" \
	--run.rounds=2 --out "$R"
cp "$T/last.err" "$T/run.err"
for r in 0 1; do
	check "round $r: test.json exists" test -s "$R/round-$r/test.json"
	check_sh "round $r: stderr has the test-set line" \
		'grep -qE "^run: round $r student on the test set: CHAIR_i [0-9.]+ .* tuple F1 [0-9.]+ .*\(24 images\)" "$T/run.err"'
	run_ok "round $r: nboost eval of the student" "$NBOOST" eval --model "$R/round-$r/student.h5" --shards "$D/test" --json
	tail -n 1 "$T/last.out" >"$T/eval-$r.json"
	$PY - "$R/round-$r/test.json" "$T/eval-$r.json" <<'PY' && ok || bad "round $r: test.json differs from nboost eval"
import json, sys
t = json.load(open(sys.argv[1])); e = json.load(open(sys.argv[2]))
if t["round"] != int(sys.argv[1].split("round-")[1].split("/")[0]):
    print("round", t["round"], file=sys.stderr); sys.exit(1)
keys = ["chair_i", "chair_s", "recall", "tuple_precision", "tuple_recall", "tuple_f1", "bleu4", "cider_d",
        "statements", "malformed", "mentions", "hallucinated", "gt_objects"]
diff = {k: (t[k], e[k]) for k in keys if t[k] != e[k]}
if t["captions"] != e["n"] or t["captions"] != 24:
    diff["captions"] = (t["captions"], e["n"])
if diff:
    print(diff, file=sys.stderr)
sys.exit(1 if diff else 0)
PY
done
check_sh "no temporary test.json left" '! ls -a "$R/round-0" "$R/round-1" | grep -q "\.tmp\."'
check "the journal ends with done" test "$(tail -n 1 "$R/journal.jsonl")" = '{"ev":"done"}'

# ---- SIGTERM while the student is scored: a clean stop, resumed ----
# 50000 test images take seconds to score (about 10000/s on 2 cores); the
# signal goes to every rank once the first progress line is out.
"$NBOOST" synth --out "$T/B" --labeled 0 --unlabeled 0 --test 50000 --size 16 --shard-size 12500 -q ||
	{ echo "cannot make the large test set"; exit 1; }
S=$T/S
timeout 120 "$MPIEXEC" -np 4 "$NBOOST" run "${J[@]}" --corpus.test="$T/B/test" --out "$S" >"$T/s.out" 2>"$T/s.err" &
TP=$!
for _ in $(seq 1 2400); do
	grep -q "student on the test set: [0-9]* of" "$T/s.err" && break
	kill -0 $TP 2>/dev/null || break
	sleep 0.05
done
MP=$(pgrep -P $TP)
[ -n "$MP" ] && kill -TERM $(pgrep -P "$MP")
wait $TP
rc=$?
check "stop while scoring: exit status 75 (stopped, resumable), got $rc ($(tail -c 300 "$T/s.err"))" test "$rc" -eq 75
check "stop while scoring: the master says stopped" grep -q "run: stopped; rerun the same command" "$T/s.err"
check "stop while scoring: no rank failed" eval '! grep -qE "fatal|exited on signal" "$T/s.err"'
check "stop while scoring: every non-zero exit is 75" eval '! grep "Exit code:" "$T/s.err" | grep -qv "Exit code: *75$"'
check "stop while scoring: no test.json" test ! -e "$S/round-0/test.json"
check "stop while scoring: the journal shows no done" eval '! grep -q "\"ev\":\"done\"" "$S/journal.jsonl"'
run_ok "stop while scoring: the rerun" timeout 120 "$MPIEXEC" -np 4 "$NBOOST" run "${J[@]}" \
	--corpus.test="$T/B/test" --out "$S"
check_sh "stop while scoring: the rerun scores all 50000 images" \
	'grep -q "\"captions\": 50000," "$S/round-0/test.json"'
check "stop while scoring: the rerun ends with done" test "$(tail -n 1 "$S/journal.jsonl")" = '{"ev":"done"}'
rm -rf "$T/B"

# ---- bad corpus.test: refused before any work ----
# fails NAME NEEDLE TEST: the run exits non-zero with NEEDLE on stderr and
# leaves no run directory
fails() {
	local name=$1 needle=$2 test=$3
	timeout 60 "$MPIEXEC" -np 4 "$NBOOST" run "${J[@]}" --corpus.test="$test" --out "$T/e-$name" \
		>"$T/$name.out" 2>"$T/$name.err"
	local rc=$?
	if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		bad "$name: exit status $rc: $(tail -c 300 "$T/$name.err")"
	elif ! grep -qF -- "$needle" "$T/$name.err"; then
		bad "$name: stderr lacks '$needle': $(head -c 400 "$T/$name.err")"
	elif [ -e "$T/e-$name" ]; then
		bad "$name: the run directory was created: $(ls "$T/e-$name")"
	else
		ok
	fi
}
# the round's pseudo-labels: caption shards without ground truth
fails nogt "corpus.test: shard '$R/round-0/pseudo/unit-00000000.h5': no /objects ground truth to score against" \
	"$R/round-0/pseudo"
fails size "corpus.test: shard '$T/D24/test/shard-000000.h5': images are 24x24 but the model takes 16x16" \
	"$T/D24/test"
fails missing "corpus.test: cannot list shards in '$T/none': No such file or directory" "$T/none"
mkdir "$T/empty"
fails empty "corpus.test: no shards in '$T/empty'" "$T/empty"

# ---- labeling only: no student, corpus.test ignored (even a bad one) ----
run_ok "labeling-only run with corpus.test" timeout 120 "$MPIEXEC" -np 3 "$NBOOST" run "${J[@]}" \
	--corpus.test="$T/D24/test" --run.students=0 --teacher.model="$R/round-0/teacher.h5" --out "$T/L"
check "labeling only: no test.json" test ! -e "$T/L/round-0/test.json"
check "labeling only: no test-set line" eval '! grep -q "on the test set" "$T/last.err"'

finish
