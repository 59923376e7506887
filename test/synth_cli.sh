#!/bin/bash
# nboost synth end to end: 1 rank vs 4 ranks give identical files, shard
# contents match the ground truth, PNGs equal the shard images, an
# interrupted corpus resumes, and bad arguments fail clearly.
# Run by ctest (env NBOOST, MPIEXEC, HDF5_PLUGIN_PATH set by test/CMakeLists.txt).
set -u
: "${NBOOST:?run through ctest}" "${MPIEXEC:?}" "${HDF5_PLUGIN_PATH:?}"
source "$(dirname "$0")/lib.sh"

ARGS=(--labeled 150 --unlabeled 70 --test 40 --hard-tests 5 --shard-size 32 --seed 5)
HARD="test-counter-uniform test-counter-offtheme test-shift-blur-1 test-shift-blur-2 test-shift-blur-3 test-shift-contrast-1 test-shift-contrast-2 test-shift-contrast-3 test-shift-noise-1 test-shift-noise-2 test-shift-noise-3 test-shift-occlude-1 test-shift-occlude-2 test-shift-occlude-3 test-dense"

# ---- 1 rank and 4 ranks ----
"$NBOOST" synth --out "$T/one" --png "$T/one-png" "${ARGS[@]}" >"$T/one.txt" 2>"$T/one.err"
rc=$?
check "synth with 1 process exits 0 ($(tail -3 "$T/one.err"))" test $rc -eq 0
$MPIEXEC -np 4 --oversubscribe "$NBOOST" synth --out "$T/four" --png "$T/four-png" "${ARGS[@]}" -q \
	>"$T/four.txt" 2>"$T/four.err"
rc=$?
check "synth with 4 ranks exits 0 ($(tail -3 "$T/four.err"))" test $rc -eq 0
check "summary table lists every split" grep -qE '^labeled +150 +5 ' "$T/one.txt"
check "summary reports scenes/s" grep -q 'scenes/s' "$T/one.txt"

same_shard() { same_h5 "$1" "$2"; }
nshards=0
for s in labeled unlabeled test $HARD; do
	for f in "$T/one/$s"/*.h5; do
		nshards=$((nshards + 1))
		check "$s/$(basename "$f") identical for 1 and 4 ranks" same_shard "$f" "$T/four/$s/$(basename "$f")"
	done
done
check "shard count 5+3+2 + 15 hard test splits" test "$nshards" -eq 25
check "summary lists the hard test splits" grep -qE '^test-shift-occlude-3 +5 +1 ' "$T/one.txt"
check "corpus.json records the hard tests" grep -q '"hard_tests": 5,' "$T/one/corpus.json"
check "4-rank run has the same shard files" test "$(cd "$T/one" && find . -name '*.h5' | sort)" = "$(cd "$T/four" && find . -name '*.h5' | sort)"
check "manifest identical for 1 and 4 ranks" cmp -s "$T/one-png/manifest.tsv" "$T/four-png/manifest.tsv"
check "PNGs identical for 1 and 4 ranks" diff -rq --exclude=manifest.tsv --exclude=.parts "$T/one-png" "$T/four-png"
# corpus.json's byte counts include each shard's /provenance, which names
# the command line (--out differs): all else must be equal.
check "corpus.json identical but for byte counts" \
	cmp -s <(grep -v '"bytes"' "$T/one/corpus.json") <(grep -v '"bytes"' "$T/four/corpus.json")
check "corpus.json complete" grep -q '"complete": true' "$T/one/corpus.json"
check "corpus.json records the seed" grep -q '"seed": 5,' "$T/one/corpus.json"
check "manifest has one line per scene" test "$(wc -l <"$T/one-png/manifest.tsv")" -eq 335

# ---- contents: ids, sources, objects vs captions, PNG == shard image ----
$PY - "$T/one" "$T/one-png" >"$T/py.txt" 2>&1 <<'EOF'
import sys, os, zlib, struct
import h5py, numpy as np
out, png = sys.argv[1], sys.argv[2]
SIZES = ["small", "large"]
COLORS = ["red", "green", "blue", "yellow", "magenta", "cyan", "white", "orange"]
SHAPES = ["circle", "square", "triangle", "cross", "diamond", "ring"]
ROWS, COLS = ["top", "middle", "bottom"], ["left", "center", "right"]
VOCAB = ["<pad>", "<bos>", "<eos>", "<unk>", "."] + SIZES + COLORS + SHAPES + ROWS + COLS
errors = []
def err(msg):
    errors.append(msg)
def caption(cells):
    st = []
    for c, code in enumerate(cells):
        if code:
            q = int(code) - 1
            st.append("%s %s %s %s %s ." % (SIZES[q // 48], COLORS[q % 48 // 6], SHAPES[q % 6], ROWS[c // 3], COLS[c % 3]))
    return " ".join(st)
def read_png(path):
    # minimal decoder for 8-bit RGB non-interlaced PNG (what synth writes)
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype == 2 and interlace == 0
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, bpp = zlib.decompress(idat), w * 3, 3
    img, prev = bytearray(), bytearray(stride)
    for y in range(h):
        ft, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ft == 1: line[i] = (line[i] + a) & 255
            elif ft == 2: line[i] = (line[i] + b) & 255
            elif ft == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        img += line
        prev = line
    return np.frombuffer(bytes(img), np.uint8).reshape(h, w, 3)
manifest = {}
for line in open(os.path.join(png, "manifest.tsv")):
    p, cap = line.rstrip("\n").split("\t")
    manifest[p] = cap
counts = {"labeled": 150, "unlabeled": 70, "test": 40}
for split_no, split in enumerate(["labeled", "unlabeled", "test"]):
    seen = 0
    for name in sorted(os.listdir(os.path.join(out, split))):
        f = h5py.File(os.path.join(out, split, name), "r")
        ids, objs = f["ids"][:], f["objects"][:]
        k = int(name[6:12])
        want_ids = [(split_no << 40) | i for i in range(k * 32, k * 32 + len(ids))]
        if list(ids) != want_ids: err("%s/%s: ids %s..." % (split, name, ids[:3]))
        if split == "unlabeled":
            if "tokens" in f: err("unlabeled shard %s carries captions" % name)
            if f.attrs["schema"] != b"nboost.images": err("unlabeled schema %r" % f.attrs["schema"])
        else:
            if f.attrs["origin"] != b"synthetic": err("%s origin %r" % (name, f.attrs["origin"]))
            tok, off = f["tokens"][:], f["offsets"][:]
            if not np.all(f["score"][:] == 1): err("%s: score not 1" % name)
            for j in range(len(ids)):
                text = " ".join(VOCAB[t] for t in tok[off[j]:off[j + 1]])
                if text != caption(objs[j]): err("%s/%d: tokens '%s' vs objects '%s'" % (split, ids[j], text, caption(objs[j])))
        if "source_offsets" in f:
            src, so = f["sources"][:].tobytes(), f["source_offsets"][:]
            for j in (0, len(ids) - 1):
                s = src[so[j]:so[j + 1]].decode()
                if s != "synth:%s/%d" % (split, k * 32 + j): err("%s source %r" % (split, s))
        nobj = (objs != 0).sum(axis=1)
        if nobj.min() < 2 or nobj.max() > 6: err("%s: object counts %d..%d" % (name, nobj.min(), nobj.max()))
        images = f["images"][:]
        for j in range(len(ids)):
            rel = "%s/%d.png" % (split, ids[j])
            if manifest.get(rel) != caption(objs[j]): err("manifest %s: %r" % (rel, manifest.get(rel)))
            if j % 9 == 0 and not np.array_equal(read_png(os.path.join(png, rel)), images[j]):
                err("%s differs from the shard image" % rel)
        seen += len(ids)
    if seen != counts[split]: err("%s: %d scenes, expected %d" % (split, seen, counts[split]))
for e in errors[:20]:
    print("error:", e)
print("errors:", len(errors))
sys.exit(1 if errors else 0)
EOF
rc=$?
check "shard contents, manifest and PNGs match the ground truth: $(tail -5 "$T/py.txt")" test $rc -eq 0

# ---- resume: a killed run left one shard missing and a temporary ----
rm "$T/one/unlabeled/shard-000001.h5"
: >"$T/one/labeled/.shard-000002.h5.tmp.4242"
"$NBOOST" synth --out "$T/one" --png "$T/one-png" "${ARGS[@]}" >"$T/re.txt" 2>"$T/re.err"
rc=$?
check "rerun exits 0 ($(tail -2 "$T/re.err"))" test $rc -eq 0
check "rerun renders only the missing shard" grep -q 'rendered 32 scenes' "$T/re.txt"
check "rerun restores the missing shard" same_shard "$T/one/unlabeled/shard-000001.h5" "$T/four/unlabeled/shard-000001.h5"
check "rerun sweeps temporaries" test ! -e "$T/one/labeled/.shard-000002.h5.tmp.4242"
check "rerun keeps the manifest" cmp -s "$T/one-png/manifest.tsv" "$T/four-png/manifest.tsv"

# ---- resume: a damaged shard under its final name is rewritten, not trusted ----
head -c 100 "$T/four/test/shard-000001.h5" >"$T/one/test/shard-000001.h5"
"$NBOOST" synth --out "$T/one" --png "$T/one-png" "${ARGS[@]}" >"$T/re.txt" 2>"$T/re.err"
rc=$?
check "rerun over a damaged shard exits 0 ($(tail -2 "$T/re.err"))" test $rc -eq 0
check "damaged shard is reported" grep -qF "rewriting '$T/one/test/shard-000001.h5'" "$T/re.err"
check "damaged shard is rewritten" same_shard "$T/one/test/shard-000001.h5" "$T/four/test/shard-000001.h5"
check "only the damaged shard is rendered" grep -q 'rendered 8 scenes' "$T/re.txt"

# ---- a corpus written before the hard test splits (no "hard_tests") resumes ----
"$NBOOST" synth --out "$T/old" --labeled 10 --unlabeled 0 --test 5 --seed 5 -q
grep -v '"hard_tests"' "$T/old/corpus.json" >"$T/old.json" && mv "$T/old.json" "$T/old/corpus.json"
"$NBOOST" synth --out "$T/old" --labeled 10 --unlabeled 0 --test 5 --seed 5 -q 2>"$T/err.txt"
rc=$?
check "a corpus.json without hard_tests resumes ($(cat "$T/err.txt"))" test $rc -eq 0
check "no hard test directories without --hard-tests" test ! -e "$T/old/test-dense"
expect_fail 1 "has hard_tests 0 but 4 was requested" "$NBOOST" synth --out "$T/old" --labeled 10 --unlabeled 0 --test 5 --seed 5 --hard-tests 4

# ---- a different corpus in the same directory ----
expect_fail 1 "refusing to mix corpora in '$T/one'" "$NBOOST" synth --out "$T/one" --labeled 150 --unlabeled 70 --test 40 --hard-tests 5 --shard-size 32 --seed 6
grep -qF "has seed 5 but 6 was requested" "$T/err.txt" && ok || bad "mismatch message names the seed: $(cat "$T/err.txt")"
"$NBOOST" synth --out "$T/one" --labeled 20 --unlabeled 0 --test 0 --seed 6 --force -q 2>"$T/err.txt"
rc=$?
check "--force replaces the corpus ($(cat "$T/err.txt"))" test $rc -eq 0
check "--force removes the old shards" test "$(find "$T/one" -name '*.h5' | wc -l)" -eq 1
check "--force: new corpus differs" bash -c "! cmp -s '$T/one/labeled/shard-000000.h5' '$T/four/labeled/shard-000000.h5'"

# ---- bad arguments ----
expect_fail 2 "--labeled: '-5' is not a non-negative integer" "$NBOOST" synth --out "$T/x" --labeled -5
expect_fail 2 "--test: 'many' is not a non-negative integer" "$NBOOST" synth --out "$T/x" --test many
expect_fail 2 "missing --out" "$NBOOST" synth --labeled 5
expect_fail 2 "--size: 8 is out of range [16, 512]" "$NBOOST" synth --out "$T/x" --size 8
expect_fail 2 "--shard-size: 0 is out of range [1, 1000000]" "$NBOOST" synth --out "$T/x" --shard-size 0
expect_fail 2 "unknown option '--colour'" "$NBOOST" synth --out "$T/x" --colour red
expect_fail 2 "option '--seed' needs a value" "$NBOOST" synth --out "$T/x" --seed
expect_fail 1 "cannot create directory '/proc/nboost-synth-test'" "$NBOOST" synth --out /proc/nboost-synth-test/out --labeled 1
: >"$T/plainfile"
expect_fail 1 "cannot create directory '$T/plainfile': a file of that name exists" "$NBOOST" synth --out "$T/plainfile" --labeled 1
check "nothing created for bad arguments" test ! -e "$T/x"
"$NBOOST" synth --help >"$T/help.txt"
rc=$?
check "--help exits 0" test $rc -eq 0
for opt in --out --labeled --unlabeled --test --hard-tests --seed --size --shard-size --png --force; do
	check "--help lists $opt" grep -q -- "$opt" "$T/help.txt"
done
check "--help states defaults" grep -q "default 4000" "$T/help.txt"

finish
