#!/bin/bash
# nboost eval end to end: ground truth scored against itself is perfect,
# every metric agrees with the independent Python reference on perturbed
# captions, and every bad input gives a clear error naming file:line.
set -u
: "${NBOOST:?}"
source "$(dirname "$0")/lib.sh"

# expect RC PATTERN CMD...: exit status RC and stderr containing PATTERN
expect() {
	local rc=$1 pat=$2
	shift 2
	"$@" >"$T/out" 2>"$T/err"
	local got=$?
	if [ "$got" -ne "$rc" ]; then
		bad "'$*' exited $got, expected $rc: $(cat "$T/err")"
	elif [ -n "$pat" ] && ! grep -qF -- "$pat" "$T/err"; then
		bad "'$*' stderr lacks '$pat': $(cat "$T/err")"
	else
		ok
	fi
}

"$NBOOST" synth --out "$T/c" --labeled 10 --unlabeled 0 --test 300 --shard-size 120 -q || { echo "synth failed"; exit 1; }
S=$T/c/test

# --write-gt, then the ground truth against itself
"$NBOOST" eval --shards "$S" --write-gt "$T/gt.tsv" && ok || bad "write-gt failed"
[ "$(wc -l <"$T/gt.tsv")" -eq 300 ] && ok || bad "gt.tsv has $(wc -l <"$T/gt.tsv") lines, expected 300"
ls -a "$T" | grep -q '\.tmp\.' && bad "temporary file left behind" || ok
"$NBOOST" eval --shards "$S" --captions "$T/gt.tsv" --json >"$T/self.out" 2>"$T/self.err" && ok || bad "self eval failed"
grep -q '^CHAIR_i  *0.0000' "$T/self.err" && ok || bad "table (stderr with --json) lacks CHAIR_i 0: $(cat "$T/self.err")"
$PY - "$T/self.out" <<'PYEOF' && ok || bad "self scores not perfect"
import json, sys
j = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
want = {"n": 300, "missing": 0, "chair_i": 0, "chair_s": 0, "recall": 1, "tuple_precision": 1, "tuple_recall": 1,
        "tuple_f1": 1, "bleu4": 1, "cider_d": 10, "malformed": 0}
bad = {k: (j[k], v) for k, v in want.items() if abs(j[k] - v) > 1e-9}
if bad:
    print(bad, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF

# every metric against the Python reference (test/metrics_ref.py), on perturbed captions
for seed in 1 2; do
	$PY "$NB_SRC/test/metrics_ref.py" make "$T/gt.tsv" "$T/cand$seed.tsv" $seed
	"$NBOOST" eval --shards "$S" --captions "$T/cand$seed.tsv" --json | tail -1 >"$T/c$seed.json"
	$PY "$NB_SRC/test/metrics_ref.py" score "$T/gt.tsv" "$T/cand$seed.tsv" >"$T/p$seed.json"
	$PY - "$T/c$seed.json" "$T/p$seed.json" <<'PYEOF' && ok || bad "C and Python metrics differ (seed $seed)"
import json, sys
c = json.load(open(sys.argv[1])); p = json.load(open(sys.argv[2]))
diff = {k: (c[k], p[k]) for k in p if abs(c[k] - p[k]) > 1e-7 * max(1, abs(p[k]))}
if diff:
    print(diff, file=sys.stderr)
if not 0 < c["cider_d"] < 10 or not 0 < c["bleu4"] < 1 or not 0 < c["chair_i"] < 1 or not 0 < c["malformed"]:
    print("degenerate perturbation", c, file=sys.stderr); sys.exit(1)
sys.exit(1 if diff else 0)
PYEOF
done

# bad TSV input: errors name file:line and the cause
first=$(head -1 "$T/gt.tsv" | cut -f1)
{ head -1 "$T/gt.tsv"; echo "no tab here"; } >"$T/notab.tsv"
expect 1 "captions '$T/notab.tsv' line 2: malformed line" "$NBOOST" eval --shards "$S" --captions "$T/notab.tsv"
{ cat "$T/gt.tsv"; head -1 "$T/gt.tsv"; } >"$T/dup.tsv"
expect 1 "line 301: duplicate id $first (first on line 1)" "$NBOOST" eval --shards "$S" --captions "$T/dup.tsv"
{ cat "$T/gt.tsv"; printf '12345\tsmall red circle top left .\n'; } >"$T/extra.tsv"
expect 1 "line 301: id 12345 is not in the ground truth" "$NBOOST" eval --shards "$S" --captions "$T/extra.tsv"
printf 'x12\tsmall red circle top left .\n' >"$T/badid.tsv"
expect 1 "line 1: id 'x12' is not an unsigned integer" "$NBOOST" eval --shards "$S" --captions "$T/badid.tsv"
printf '%s\tsmall\0 red\n' "$first" >"$T/nul.tsv"
expect 1 "line 1: NUL byte" "$NBOOST" eval --shards "$S" --captions "$T/nul.tsv"
expect 1 "cannot open captions '$T/none.tsv'" "$NBOOST" eval --shards "$S" --captions "$T/none.tsv"
expect 1 "$T/nodir" "$NBOOST" eval --shards "$T/nodir" --captions "$T/gt.tsv"
mkdir "$T/empty"
expect 1 "no shards in '$T/empty'" "$NBOOST" eval --shards "$T/empty" --captions "$T/gt.tsv"
echo "not hdf5" >"$T/empty/x.h5"
expect 1 "x.h5" "$NBOOST" eval --shards "$T/empty" --captions "$T/gt.tsv"

# missing captions: an error, or reported and skipped with --allow-missing
head -200 "$T/gt.tsv" >"$T/part.tsv"
expect 1 "100 of 300 ground-truth images have no caption" "$NBOOST" eval --shards "$S" --captions "$T/part.tsv"
expect 0 "100 of 300 ground-truth images have no caption" "$NBOOST" eval --shards "$S" --captions "$T/part.tsv" --allow-missing --json
tail -1 "$T/out" | grep -q '"n":200,"missing":100,"chair_i":0,' && ok || bad "--allow-missing json: $(tail -1 "$T/out")"
grep -q '^missing captions  *100$' "$T/err" && ok || bad "table lacks missing count"

# an empty caption is a valid row (it mentions nothing); CRLF line ends are accepted
sed 's/\t.*/\t/' "$T/gt.tsv" | sed 's/$/\r/' >"$T/blank.tsv"
expect 0 "" "$NBOOST" eval --shards "$S" --captions "$T/blank.tsv" --json
tail -1 "$T/out" | grep -q '"n":300,"missing":0,"chair_i":0,"chair_s":0,"recall":0,' && ok || bad "blank captions: $(tail -1 "$T/out")"

# options
expect 0 "" "$NBOOST" eval --help
grep -q -- "--allow-missing" "$T/out" && ok || bad "--help lacks --allow-missing"
expect 2 "usage:" "$NBOOST" eval --shards "$S" --bogus
expect 2 "missing --shards DIR" "$NBOOST" eval --captions "$T/gt.tsv"
expect 2 "nothing to do" "$NBOOST" eval --shards "$S"
expect 2 "--batch" "$NBOOST" eval --shards "$S" --model x.h5 --batch 0
expect 2 "exclude each other" "$NBOOST" eval --shards "$S" --model x.h5 --captions "$T/gt.tsv"
expect 1 "x-missing.h5" "$NBOOST" eval --shards "$S" --model "$T/x-missing.h5"

# --model: decode with a (2-step) checkpoint; the written captions, scored
# as a TSV, give the same numbers
"$NBOOST" synth --out "$T/s16" --size 16 --labeled 16 --unlabeled 0 --test 40 --shard-size 30 -q &&
	"$NBOOST" train "$NB_SRC/jobs/tiny.conf" --labeled "$T/s16/labeled" --out "$T/run" --steps 2 >/dev/null 2>&1 &&
	ok || bad "tiny training failed"
"$NBOOST" eval --shards "$T/s16/test" --model "$T/run/checkpoint.h5" --out-captions "$T/mc.tsv" --batch 16 --json >"$T/m.out" &&
	ok || bad "eval --model failed"
[ "$(wc -l <"$T/mc.tsv")" -eq 40 ] && ok || bad "--out-captions has $(wc -l <"$T/mc.tsv") lines, expected 40"
"$NBOOST" eval --shards "$T/s16/test" --captions "$T/mc.tsv" --json >"$T/m2.out" && ok || bad "rescoring failed"
[ -s "$T/m.out" ] && cmp -s <(tail -1 "$T/m.out") <(tail -1 "$T/m2.out") && ok || bad "--model and its TSV score differently"
expect 1 "images are 48x48 but the model takes 16x16" "$NBOOST" eval --shards "$S" --model "$T/run/checkpoint.h5"

# --corpus: every test split of a corpus, one report each; --pope adds the probe
"$NBOOST" synth --out "$T/h16" --size 16 --labeled 0 --unlabeled 0 --test 6 --hard-tests 6 --shard-size 6 -q &&
	ok || bad "synth --hard-tests failed"
"$NBOOST" eval --corpus "$T/h16" --model "$T/run/checkpoint.h5" --pope --json >"$T/c.out" 2>"$T/c.err" &&
	ok || bad "eval --corpus failed: $(tail -3 "$T/c.err")"
[ "$(grep -c '^{"split":' "$T/c.out")" -eq 16 ] && ok || bad "eval --corpus: $(grep -c '^{"split":' "$T/c.out") JSON lines, expected 16"
grep -q '^== test-shift-occlude-3 ' "$T/c.err" && grep -q '^POPE yes ratio' "$T/c.err" && ok || bad "eval --corpus report (stderr with --json) lacks a split or POPE"
# --json: stdout is JSON alone, one object per line, in every mode (the
# report went to stderr); without --json the report is on stdout
"$NBOOST" eval --shards "$S" --captions "$T/gt.tsv" --json >"$T/j1.out" 2>"$T/j1.err" && ok || bad "eval --json (TSV) failed"
/usr/bin/python3 - "$T/j1.out" "$T/m.out" "$T/c.out" <<'PY' && ok || bad "eval --json: stdout is not JSON alone"
import json, sys
for path in sys.argv[1:]:
    text = open(path).read()
    assert text.endswith("\n") and text.strip(), (path, text[:200])
    for line in text.splitlines():
        obj = json.loads(line)  # any report line on stdout fails here
        assert isinstance(obj, dict) and "chair_i" in obj, (path, line)
PY
grep -q '^CHAIR_i ' "$T/j1.err" && ok || bad "eval --json: the report is not on stderr"
"$NBOOST" eval --shards "$S" --captions "$T/gt.tsv" >"$T/j2.out" 2>/dev/null && grep -q '^CHAIR_i ' "$T/j2.out" &&
	! grep -q '^{' "$T/j2.out" && ok || bad "eval without --json: no report on stdout, or JSON there"
# the corpus report of a split equals eval --shards of that split
"$NBOOST" eval --shards "$T/h16/test-dense" --model "$T/run/checkpoint.h5" --pope --json >"$T/d.out" 2>/dev/null
cmp -s <(grep '"split":"test-dense"' "$T/c.out" | sed 's/^{"split":"test-dense",/{/') <(tail -1 "$T/d.out") &&
	ok || bad "--corpus and --shards differ on test-dense"
/usr/bin/python3 - "$T/c.out" <<'PY' && ok || bad "eval --corpus JSON fields"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for r in rows:
    assert r["n"] == 6, r
    assert 0 <= r["pope_yes_ratio"] <= 1 and r["pope_probes"] > 0, r
    assert len(r["chair_i_by_position"]) == 10 and sum(r["mentions_by_position"]) == r["mentions"], r
PY
expect 2 "--corpus needs --model" "$NBOOST" eval --corpus "$T/h16" --captions "$T/gt.tsv"
expect 2 "--shards and --corpus exclude each other" "$NBOOST" eval --corpus "$T/h16" --shards "$S" --model x.h5
expect 2 "--pope needs --model" "$NBOOST" eval --shards "$S" --captions "$T/gt.tsv" --pope
expect 1 "has no test split" "$NBOOST" eval --corpus "$T/s16/labeled" --model "$T/run/checkpoint.h5"

finish
