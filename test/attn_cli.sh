#!/bin/bash
# nboost attn end to end on a 2-step tiny model: the JSON fields and their
# identities, agreement with nboost eval on the statements, --batch and
# --max-images, and clear errors for bad input.
set -u
: "${NBOOST:?}"
source "$(dirname "$0")/lib.sh"

# 30 steps at lr 1e-2 (3 s): a 2-step model writes no valid statement, which
# would leave the correct/hallucinated groups empty and their checks vacuous.
"$NBOOST" synth --out "$T/s16" --size 16 --labeled 16 --unlabeled 0 --test 40 --shard-size 30 -q &&
	"$NBOOST" train "$NB_SRC/jobs/tiny.conf" --labeled "$T/s16/labeled" --out "$T/run" --steps 30 --train.lr=1e-2 >/dev/null 2>&1 &&
	ok || { bad "tiny synth + training failed"; finish; }
M=$T/run/checkpoint.h5 S=$T/s16/test

run_ok "attn --json" "$NBOOST" attn --model "$M" --shards "$S" --json
tail -1 "$T/last.out" >"$T/a.json"
grep -q '^query positions ' "$T/last.out" && grep -q '^layer ' "$T/last.out" && ok || bad "table lacks its rows: $(cat "$T/last.out")"
run_ok "eval --json" "$NBOOST" eval --model "$M" --shards "$S" --json
tail -1 "$T/last.out" >"$T/e.json"
run_ok "attn --batch 3" "$NBOOST" attn --model "$M" --shards "$S" --json --batch 3
tail -1 "$T/last.out" >"$T/b3.json"
run_ok "attn --max-images 7" "$NBOOST" attn --model "$M" --shards "$S" --json --max-images 7
tail -1 "$T/last.out" >"$T/m7.json"
$PY - "$T/a.json" "$T/e.json" "$T/b3.json" "$T/m7.json" <<'PY' && ok || bad "attn JSON fields"
import json, sys
a, e, b3, m7 = (json.load(open(p)) for p in sys.argv[1:])
assert (a["images"], a["layers"], a["heads"], a["visual_tokens"]) == (40, 1, 2, 4), a
# the statements are eval's mentions; hallucinated ones are eval's CHAIR_i numerator
assert a["all"]["statements"] == e["mentions"] and a["hallucinated"]["statements"] == e["hallucinated"], (a, e)
assert a["correct"]["statements"] > 0 and a["hallucinated"]["statements"] > 0, a
assert a["correct"]["statements"] + a["hallucinated"]["statements"] == a["all"]["statements"], a
assert a["malformed"] == e["malformed"], (a, e)
# positions: every caption row (>= 1 per image); 6 per valid statement
assert a["all"]["positions"] >= 40 + a["correct"]["positions"] + a["hallucinated"]["positions"] - 40, a
for g in ("correct", "hallucinated"):
    assert a[g]["positions"] == 6 * a[g]["statements"], (g, a[g])
for g in ("all", "correct", "hallucinated"):
    r = a[g]
    assert len(r["visual"]) == len(r["text"]) == len(r["max"]) == 1, r
    if r["positions"]:
        assert abs(r["visual"][0] + r["text"][0] - 1) < 1e-6, r
        assert 1 / (4 + 41) <= r["max"][0] <= 1, r
    else:
        assert r["visual"] == r["text"] == r["max"] == [0], r
# the batch does not change the figures (float rounding aside)
for g in ("all", "correct", "hallucinated"):
    assert a[g]["positions"] == b3[g]["positions"], g
    for k in ("visual", "text", "max"):
        assert abs(a[g][k][0] - b3[g][k][0]) < 1e-5, (g, k, a[g][k], b3[g][k])
assert m7["images"] == 7 and m7["all"]["positions"] < a["all"]["positions"], m7
PY

# bad input: exit 2 for usage, 1 with the file and the cause otherwise
expect_fail 2 "missing --model CKPT" "$NBOOST" attn --shards "$S"
expect_fail 2 "missing --shards DIR" "$NBOOST" attn --model "$M"
expect_fail 2 "--batch" "$NBOOST" attn --model "$M" --shards "$S" --batch 0
expect_fail 2 "unexpected argument" "$NBOOST" attn --model "$M" --shards "$S" extra
expect_fail 1 "$T/none.h5" "$NBOOST" attn --model "$T/none.h5" --shards "$S"
"$NBOOST" synth --out "$T/s48" --labeled 0 --unlabeled 0 --test 3 -q || bad "synth 48 failed"
expect_fail 1 "images are 48x48 but the model takes 16x16" "$NBOOST" attn --model "$M" --shards "$T/s48/test"
mkdir "$T/empty"
expect_fail 1 "no shards in '$T/empty'" "$NBOOST" attn --model "$M" --shards "$T/empty"
expect_fail 1 "$T/missing" "$NBOOST" attn --model "$M" --shards "$T/missing"
mkdir "$T/junk" && echo "not hdf5" >"$T/junk/shard-000000.h5"
expect_fail 1 "$T/junk/shard-000000.h5" "$NBOOST" attn --model "$M" --shards "$T/junk"
run_ok "attn --help" "$NBOOST" attn --help
grep -q -- "--max-images N" "$T/last.out" && ok || bad "--help lacks --max-images"

finish
