#!/bin/bash
# nboost export end to end: JSON lines and LLaVA JSON + PNGs of a synthetic
# corpus, read back with Python (json, h5py, PIL) against the shards: the
# counts, ids, captions (against `nboost eval --write-gt`), scores,
# attributes and image bytes; --min-score and empty captions; the errors;
# and the pseudo-labels of a tiny `nboost run`.
set -u
: "${NBOOST:?}"
source "$(dirname "$0")/lib.sh"

"$NBOOST" synth --out "$T/D" --labeled 64 --unlabeled 8 --test 16 --size 16 -q || { echo "synth failed"; exit 1; }
D=$T/D
"$NBOOST" eval --shards "$D/labeled" --write-gt "$T/gt.tsv" >/dev/null && ok || bad "eval --write-gt failed"
"$NBOOST" eval --shards "$D/test" --write-gt "$T/gt-test.tsv" >/dev/null && cat "$T/gt-test.tsv" >>"$T/gt.tsv" &&
	ok || bad "eval --write-gt (test) failed"

# The checker: python3 - FORMAT OUT GT MIN_SCORE SHARD... compares the
# export OUT with the shards, which must be given in export order. GT is a
# ground-truth TSV or '-'; without it the captions are decoded with a word
# table learnt from the shards WORD_SHARDS against $T/gt.tsv (independent of
# the C vocabulary). Env: GT_ALL, the ground truth of WORD_SHARDS.
cat >"$T/check.py" <<'PYEOF'
import json, os, sys
import h5py
import numpy as np
from PIL import Image

fmt, out, gt, min_score = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
shards = sys.argv[5:]
errors = []

def err(msg):
    errors.append(msg)
    print("FAIL:", msg, file=sys.stderr)

def attr(f, k):
    v = f.attrs[k]
    return v.decode() if isinstance(v, bytes) else v.item()

def captions(f):
    off, tok = f["offsets"][...], f["tokens"][...]
    return [tok[off[i]:off[i + 1]] for i in range(len(off) - 1)]

def read_gt(path):
    m = {}
    for line in open(path):
        i, c = line.rstrip("\n").split("\t", 1)
        m[int(i)] = c
    return m

truth = read_gt(os.environ["GT_ALL"])
words = {3: "<unk>"}
for p in os.environ["WORD_SHARDS"].split(":"):
    with h5py.File(p, "r") as f:
        for i, t in zip(f["ids"][...], captions(f)):
            ws = truth[int(i)].split()
            assert len(ws) == len(t)
            for k, w in zip(t, ws):
                assert words.setdefault(int(k), w) == w, "inconsistent word table"

def decode(t):
    out = []
    for k in map(int, t):
        if k == 2:  # <eos>
            break
        if k in (0, 1):  # <pad>, <bos>
            continue
        out.append(words[k])
    return " ".join(out)

gtmap = read_gt(gt) if gt != "-" else None
want, images = [], {}
for p in shards:
    with h5py.File(p, "r") as f:
        a = {k: attr(f, k) for k in ("origin", "round", "teacher_digest", "sigma", "K", "vote")}
        ids, scores, imgs = f["ids"][...], f["score"][...], f["images"][...]
        srcs = f["sources"][...].tobytes().decode()
        so = f["source_offsets"][...]
        for i, t in enumerate(captions(f)):
            text = decode(t)
            if not text or not scores[i] >= min_score:
                continue
            want.append((int(ids[i]), text, float(scores[i]), a, p, srcs[so[i]:so[i + 1]]))
            images[int(ids[i])] = imgs[i]

if fmt == "jsonl":
    got = [json.loads(line) for line in open(out)]
    if len(got) != len(want):
        err(f"{len(got)} records, expected {len(want)}")
    for g, (i, text, score, a, p, src) in zip(got, want):
        keys = ["id", "source", "caption", "score", "origin", "round", "teacher_digest", "sigma", "K", "vote", "shard"]
        if list(g) != keys:
            err(f"keys {list(g)}")
            break
        if g["id"] != i or g["caption"] != text or g["shard"] != p or g["source"] != src:
            err(f"record {g} != id {i} caption {text!r} shard {p} source {src}")
        if gtmap is not None and g["caption"] != gtmap[i]:
            err(f"id {i}: caption {g['caption']!r} is not the ground truth {gtmap[i]!r}")
        if abs(g["score"] - score) > 1e-6 or abs(g["sigma"] - a["sigma"]) > 1e-6:
            err(f"id {i}: score/sigma {g['score']} {g['sigma']} vs {score} {a['sigma']}")
        for k in ("origin", "round", "teacher_digest", "K", "vote"):
            if g[k] != a[k]:
                err(f"id {i}: {k} {g[k]!r} vs {a[k]!r}")
else:
    got = json.load(open(out))
    if len(got) != len(want):
        err(f"{len(got)} records, expected {len(want)}")
    base = os.path.dirname(out)
    stem = os.path.splitext(os.path.basename(out))[0]
    for g, (i, text, score, a, p, src) in zip(got, want):
        conv = [{"from": "human", "value": "<image>\nDescribe the image in detail."}, {"from": "gpt", "value": text}]
        if g != {"id": str(i), "image": f"{stem}_images/{i}.png", "conversations": conv}:
            err(f"record {g} for id {i}")
            continue
        if gtmap is not None and text != gtmap[i]:
            err(f"id {i}: caption {text!r} is not the ground truth {gtmap[i]!r}")
        im = Image.open(os.path.join(base, g["image"]))
        if im.mode != "RGB" or not np.array_equal(np.asarray(im), images[i]):
            err(f"id {i}: {g['image']} ({im.mode} {im.size}) differs from the shard's image")
print(len(got))
sys.exit(1 if errors else 0)
PYEOF
LABELED_SHARD=$D/labeled/shard-000000.h5
export GT_ALL=$T/gt.tsv WORD_SHARDS=$LABELED_SHARD:$D/test/shard-000000.h5
chk() { $PY "$T/check.py" "$@" >"$T/chk.out" 2>"$T/chk.err" || { echo "$(head -c 1500 "$T/chk.err")" >&2; return 1; }; }
no_tmp() { ! find "$1" -name '.*.tmp.*' | grep -q .; }

# a directory of caption shards, both formats
run_ok "export jsonl" "$NBOOST" export "$D/labeled" --format jsonl --out "$T/o/labeled.jsonl"
grep -q "nboost export: 64 samples from 1 shard to $T/o/labeled.jsonl; skipped 0" "$T/last.err" &&
	ok || bad "jsonl summary: $(cat "$T/last.err")"
check "jsonl matches the shard" chk jsonl "$T/o/labeled.jsonl" "$T/gt.tsv" 0 "$LABELED_SHARD"
grep -qx 64 "$T/chk.out" && ok || bad "jsonl count $(cat "$T/chk.out")"
run_ok "export llava" "$NBOOST" export "$D/labeled" --format llava --out "$T/o/llava.json"
grep -q "64 samples from 1 shard to $T/o/llava.json (+ 64 PNGs in $T/o/llava_images)" "$T/last.err" &&
	ok || bad "llava summary: $(cat "$T/last.err")"
check "llava matches the shard, PNGs included" chk llava "$T/o/llava.json" "$T/gt.tsv" 0 "$LABELED_SHARD"
[ "$(ls "$T/o/llava_images" | wc -l)" -eq 64 ] && ok || bad "llava_images holds $(ls "$T/o/llava_images" | wc -l) files"
check "no temporary files left" no_tmp "$T/o"

# several SOURCEs concatenate: a directory and a single shard file
run_ok "export two sources" "$NBOOST" export "$D/test" "$LABELED_SHARD" --format jsonl --out "$T/o/two.jsonl"
check "two sources in order" chk jsonl "$T/o/two.jsonl" "$T/gt.tsv" 0 "$D/test/shard-000000.h5" "$LABELED_SHARD"
grep -qx 80 "$T/chk.out" && ok || bad "two sources: count $(cat "$T/chk.out")"
# a file name without extension, in the current folder
(cd "$T/o" && "$NBOOST" export "$D/test" --format llava --out plain 2>/dev/null) && ok || bad "llava --out plain failed"
check "llava next to a plain name" chk llava "$T/o/plain" "$T/gt.tsv" 0 "$D/test/shard-000000.h5"

# --min-score and empty captions: a copy of the labeled shard with scores
# 0, .25, .5, .75 and a caption that decodes to nothing (all <eos>) for its
# first sample (one of nothing but <pad> is refused by the shard reader).
# h5py can read but not write filter 32015, so both datasets are rewritten
# uncompressed (the reader accepts that: SHARD_NO_COMPRESSION).
mkdir -p "$T/m"
cp "$LABELED_SHARD" "$T/m/scored.h5"
$PY - "$T/m/scored.h5" <<'PYEOF' && ok || bad "cannot make the scored shard"
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    n = len(f["score"])
    s = ((np.arange(n) % 4) / 4.0).astype(np.float32)
    off, t = f["offsets"][...], f["tokens"][...]
    t[off[0]:off[1]] = 2
    del f["score"], f["tokens"]
    f.create_dataset("score", data=s, chunks=True)
    f.create_dataset("tokens", data=t, chunks=True)
PYEOF
run_ok "export --min-score" "$NBOOST" export "$T/m" --format jsonl --out "$T/o/m.jsonl" --min-score 0.5
check "--min-score keeps score >= 0.5 only" chk jsonl "$T/o/m.jsonl" - 0.5 "$T/m/scored.h5"
grep -qx 32 "$T/chk.out" && ok || bad "--min-score count $(cat "$T/chk.out"), expected 32"
grep -q "32 samples from 1 shard to $T/o/m.jsonl; skipped 32 (31 below --min-score, 1 empty)" "$T/last.err" &&
	ok || bad "--min-score summary: $(cat "$T/last.err")"
grep -q "skipping an empty caption: id 0 in '$T/m/scored.h5'" "$T/last.err" && ok || bad "no empty-caption warning"
run_ok "export --min-score llava" "$NBOOST" export "$T/m" --format llava --out "$T/o/m.json" --min-score 0.75
check "--min-score llava" chk llava "$T/o/m.json" - 0.75 "$T/m/scored.h5"
grep -qx 16 "$T/chk.out" && ok || bad "--min-score llava count $(cat "$T/chk.out"), expected 16"
run_ok "export --min-score 0" "$NBOOST" export "$T/m" --format jsonl --out "$T/o/m0.jsonl"
grep -q "63 samples .*skipped 1 (0 below --min-score, 1 empty)" "$T/last.err" && ok || bad "empty caption count: $(cat "$T/last.err")"

# errors
expect_fail 1 "no samples to export" "$NBOOST" export "$T/m" --format jsonl --out "$T/o/none.jsonl" --min-score 1
check "no output when nothing is exported" test ! -e "$T/o/none.jsonl"
check "no temporary files left after errors" no_tmp "$T/o"
U=$(ls "$D"/unlabeled/*.h5 | head -1)
expect_fail 1 "'$U' is an image shard" "$NBOOST" export "$U" --format jsonl --out "$T/o/u.jsonl"
expect_fail 1 "is an image shard" "$NBOOST" export "$D/labeled" "$D/unlabeled" --format llava --out "$T/o/u.json"
check "no output after an image shard" test ! -e "$T/o/u.jsonl" -a ! -e "$T/o/u.json"
expect_fail 2 "--format: 'bad' is not llava, jsonl or manifest" "$NBOOST" export "$D/labeled" --format bad --out "$T/o/x"
expect_fail 2 "missing --format" "$NBOOST" export "$D/labeled" --out "$T/o/x"
expect_fail 2 "missing --out" "$NBOOST" export "$D/labeled" --format jsonl
expect_fail 2 "missing SOURCE" "$NBOOST" export --format jsonl --out "$T/o/x"
expect_fail 2 "--min-score" "$NBOOST" export "$D/labeled" --format jsonl --out "$T/o/x" --min-score 2
expect_fail 2 "--round applies to run directories only" "$NBOOST" export "$D/labeled" --format jsonl --out "$T/o/x" --round 0
expect_fail 1 "cannot read SOURCE '$T/nothing'" "$NBOOST" export "$T/nothing" --format jsonl --out "$T/o/x"
mkdir "$T/empty"
expect_fail 1 "no shards in '$T/empty'" "$NBOOST" export "$T/empty" --format jsonl --out "$T/o/x"
expect_fail 1 "id 0 is in" "$NBOOST" export "$D/labeled" "$LABELED_SHARD" --format llava --out "$T/o/dup.json"
run_ok "export --help" "$NBOOST" export --help
grep -q -- "--with-labeled" "$T/last.out" && ok || bad "--help lacks --with-labeled"
"$NBOOST" --help | grep -q "^  export " && ok || bad "nboost --help lacks export"

# a run directory of the tiny pipeline: its round-0 pseudo-labels
if ! "$NBOOST" run --help >/dev/null 2>&1; then
	echo "export_cli: nboost run is not built; run directory checks skipped"
	finish
fi
R=$T/R
timeout 120 "${MPIEXEC:-mpirun}" -np 4 "$NBOOST" run jobs/run-tiny.conf --corpus.labeled="$D/labeled" \
	--corpus.unlabeled="$D/unlabeled" --out "$R" >"$T/run.log" 2>&1 && ok || bad "tiny run failed: $(tail -5 "$T/run.log")"
accepted=$($PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["accepted"])' "$R/round-0/labels.json")
pseudo=$(ls "$R"/round-0/pseudo/*.h5 2>/dev/null)
run_ok "export a run directory" "$NBOOST" export "$R" --format jsonl --out "$T/o/run.jsonl"
[ "$(wc -l <"$T/o/run.jsonl")" = "$accepted" ] && ok || bad "run export: $(wc -l <"$T/o/run.jsonl") lines, labels.json accepted $accepted"
check "run export matches the pseudo shards" chk jsonl "$T/o/run.jsonl" - 0 $pseudo
$PY - "$T/o/run.jsonl" <<'PYEOF' && ok || bad "run export: not all origin pseudo, round 0, with a teacher digest"
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if rs and all(r["origin"] == "pseudo" and r["round"] == 0 and r["teacher_digest"] for r in rs) else 1)
PYEOF
run_ok "export a run directory as llava, with labels" "$NBOOST" export "$R" --format llava --out "$T/o/run.json" --with-labeled
check "run llava with labels" chk llava "$T/o/run.json" - 0 $pseudo "$LABELED_SHARD"
[ "$(cat "$T/chk.out")" = "$((accepted + 64))" ] && ok || bad "run llava --with-labeled count $(cat "$T/chk.out")"
run_ok "export --round 0" "$NBOOST" export "$R" --format jsonl --out "$T/o/run0.jsonl" --round 0
cmp -s "$T/o/run.jsonl" "$T/o/run0.jsonl" && ok || bad "--round 0 differs from the last complete round"
expect_fail 1 "round 1 is not complete (1 round complete)" "$NBOOST" export "$R" --format jsonl --out "$T/o/x" --round 1
# a shard file the journal does not name (a crash's orphan) is not exported
cp "$LABELED_SHARD" "$R/round-0/pseudo/unit-99999999.h5"
run_ok "export ignores an orphan shard" "$NBOOST" export "$R" --format jsonl --out "$T/o/orphan.jsonl"
cmp -s "$T/o/run.jsonl" "$T/o/orphan.jsonl" && ok || bad "an orphan shard was exported"

finish
