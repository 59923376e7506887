#!/bin/bash
# python/nboost_shards.py on the three kinds of shards nboost writes:
# synth (caption and image shards), ingest (image shards of file:// URLs)
# and the pseudo-label shards of a tiny `nboost run`. iter_shard's ids,
# captions (decoded with the shard's own /vocab), scores and sources must
# equal what `nboost export --format jsonl` writes for the same shards, its
# images what h5py reads directly, and its provenance the command that
# wrote the shard. The PyTorch Dataset is checked the same way when torch
# is installed; without torch that part is skipped and says so.
set -u
: "${NBOOST:?NBOOST must name the nboost binary}"
source "$(dirname "$0")/lib.sh"
MPIEXEC=${MPIEXEC:-mpirun}
if ! $PY -c 'import PIL, h5py, numpy' 2>/dev/null; then
	echo "python_reader: /usr/bin/python3 lacks PIL/h5py/numpy (apt-get install python3-pil python3-h5py)" >&2
	exit 77
fi
export PYTHONPATH=$PWD/python

# ---- the shards ----
"$NBOOST" synth --out "$T/D" --labeled 64 --unlabeled 32 --test 0 --size 16 --shard-size 40 -q ||
	{ echo "FAIL: synth"; exit 1; }
mkdir -p "$T/png"
$PY - "$T/png" <<'PYEOF' || { echo "FAIL: making PNGs"; exit 1; }
import sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(3)
for k in range(5):
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(f"{sys.argv[1]}/p{k}.png")
PYEOF
{ printf 'url\n'; for k in 0 1 2 3 4; do printf 'file://%s/png/p%d.png\n' "$T" $k; done; } > "$T/urls.tsv"
"$NBOOST" ingest "$T/urls.tsv" --out "$T/ing" --allow-file --size 16 --retries 0 -q ||
	{ echo "FAIL: ingest"; exit 1; }
timeout -k 5 300 "$MPIEXEC" --oversubscribe -np 4 "$NBOOST" run jobs/run-tiny.conf --corpus.labeled="$T/D/labeled" \
	--corpus.unlabeled="$T/D/unlabeled" --corpus.test= --train.steps=20 --out "$T/r" >"$T/run.out" 2>"$T/run.err"
rc=$?
check "tiny nboost run exits 0 ($(tail -c 300 "$T/run.err"))" test $rc -eq 0
check "the run directory records its provenance" grep -q '"command_line": ".*nboost run jobs/run-tiny.conf' \
	"$T/r/provenance.json"
"$NBOOST" train jobs/tiny.conf --labeled "$T/D/labeled" --out "$T/t" --train.steps=2 >"$T/train.out" 2>&1
rc=$?
check "nboost train exits 0 ($(tail -c 300 "$T/train.out"))" test $rc -eq 0
check "the train run directory records its provenance" grep -q '"command_line": ".*nboost train jobs/tiny.conf' \
	"$T/t/provenance.json"
for src in "$T/D/labeled" "$T/r"; do
	"$NBOOST" export "$src" --format jsonl --out "$T/$(basename "$src").jsonl" ||
		bad "export $src"
done

# ---- the reader against export and h5py ----
cat > "$T/check.py" <<'PYEOF'
import glob, json, sys
import h5py
import numpy as np
import nboost_shards as ns

fails = 0
def check(what, cond):
    global fails
    if not cond:
        fails += 1
        print("FAIL:", what, file=sys.stderr)

def by_id(jsonl):
    return {r["id"]: r for r in map(json.loads, open(jsonl))}

def against_export(paths, ref, what, prov_cmd):
    n = 0
    for p in paths:
        with h5py.File(p, "r") as f:
            images = f["images"][:]
        for k, s in enumerate(ns.iter_shard(p)):
            r = ref.get(s["id"])
            check(f"{what}: id {s['id']} of {p} is exported", r is not None)
            if r is None:
                continue
            check(f"{what}: caption of {s['id']}: {s['caption']!r} vs {r['caption']!r}", s["caption"] == r["caption"])
            check(f"{what}: score of {s['id']}", abs(s["score"] - r["score"]) < 1e-6)
            check(f"{what}: source of {s['id']}", s["source"] == r["source"])
            check(f"{what}: image {k} of {p}", s["image"].dtype == np.uint8 and np.array_equal(s["image"], images[k]))
            check(f"{what}: provenance of {p}: {s['provenance']}", prov_cmd in s["provenance"].get("command_line", "")
                  and s["provenance"].get("nboost_commit") and s["provenance"].get("created", "").endswith("Z"))
            n += 1
    check(f"{what}: every exported sample read ({n} of {len(ref)})", n == len(ref) and n > 0)

T = sys.argv[1]
against_export(sorted(glob.glob(f"{T}/D/labeled/*.h5")), by_id(f"{T}/labeled.jsonl"), "synth", "nboost synth")
pseudo = sorted(glob.glob(f"{T}/r/round-0/pseudo/*.h5"))
check("the run wrote pseudo-label shards", len(pseudo) > 0)
against_export(pseudo, by_id(f"{T}/r.jsonl"), "pseudo", "nboost run")
for p in pseudo:
    with h5py.File(p, "r") as f:
        check(f"{p}: origin pseudo", f.attrs["origin"] == b"pseudo")

# Checkpoints: the words and what made them.
for ck, cmd in ((f"{T}/r/round-0/teacher.h5", "nboost run"), (f"{T}/t/checkpoint.h5", "nboost train")):
    with h5py.File(ck, "r") as f:
        words = list(f["vocab"].asstr()[...])
        prov = ns.provenance(f)
    check(f"{ck}: /vocab holds the shards' words", words == ns.vocabulary(h5py.File(glob.glob(f"{T}/D/labeled/*.h5")[0], "r")))
    check(f"{ck}: provenance names {cmd} ({prov})", cmd in prov.get("command_line", "") and prov.get("host"))

# Image shards: no caption or score; ingest's provenance has its options.
unl = sorted(glob.glob(f"{T}/D/unlabeled/*.h5"))
got = [s for p in unl for s in ns.iter_shard(p)]
check(f"synth image shards: 32 samples ({len(got)})", len(got) == 32)
check("synth image shards: caption and score None, objects present",
      all(s["caption"] is None and s["score"] is None and len(s["objects"]) == 9 for s in got))
ing = sorted(glob.glob(f"{T}/ing/*.h5"))
got = [s for p in ing for s in ns.iter_shard(p)]
check(f"ingest: 5 samples ({len(got)})", len(got) == 5)
check("ingest: sources are the URLs", sorted(s["source"] for s in got) ==
      sorted(f"file://{T}/png/p{k}.png" for k in range(5)))
check("ingest: 16x16x3 uint8 images", all(s["image"].shape == (16, 16, 3) and s["image"].dtype == np.uint8 for s in got))
opts = got[0]["provenance"].get("options", "") if got else ""
check(f"ingest: provenance records its options ({opts!r})", "size=16" in opts and "resize=center_crop" in opts)

# A caption shard without /vocab (written before it) is refused by name.
old = f"{T}/old.h5"
with h5py.File(sorted(glob.glob(f"{T}/D/labeled/*.h5"))[0], "r") as a, h5py.File(old, "w") as b:
    for k, v in a.attrs.items():
        b.attrs[k] = v
    for name in ("ids", "sources", "source_offsets", "tokens", "offsets", "score"):
        b[name] = a[name][()]
    b["images"] = a["images"][()]
try:
    next(ns.iter_shard(old))
    check("a caption shard without /vocab is refused", False)
except ValueError as e:
    check(f"the refusal names the file and /vocab ({e})", old in str(e) and "/vocab" in str(e))

# The PyTorch Dataset.
try:
    import torch
except ImportError:
    torch = None
    print("python_reader: SKIPPED the PyTorch Dataset checks: torch is not installed")
if torch is not None:
    from nboost_shards import ShardDataset
    paths = sorted(glob.glob(f"{T}/D/labeled/*.h5"))
    ds = ShardDataset(paths)
    ref = by_id(f"{T}/labeled.jsonl")
    check(f"Dataset length {len(ds)}", len(ds) == len(ref))
    flat = [s for p in paths for s in ns.iter_shard(p)]
    for i in (0, len(ds) // 2, len(ds) - 1):
        it = ds[i]
        check(f"Dataset[{i}]", it["id"] == flat[i]["id"] and it["caption"] == ref[it["id"]]["caption"] and
              tuple(it["image"].shape) == (3, 16, 16) and torch.equal(it["image"].permute(1, 2, 0),
                                                                    torch.from_numpy(flat[i]["image"])))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2)))
    check("DataLoader batches with 2 workers", tuple(batch["image"].shape) == (8, 3, 16, 16) and len(batch["caption"]) == 8)
    img = ShardDataset(sorted(glob.glob(f"{T}/ing/*.h5")))
    check("Dataset over image shards: no caption key", "caption" not in img[0] and img[0]["source"].startswith("file://"))
print(f"python_reader: reader checks, {fails} failed")
sys.exit(1 if fails else 0)
PYEOF
$PY "$T/check.py" "$T" 2>&1 | tee "$T/check.out" | tail -30
check "iter_shard and ShardDataset agree with export and h5py" grep -q 'reader checks, 0 failed' "$T/check.out"
finish
