#!/bin/bash
# `nboost inspect` on image and caption shards (pattern of test_shard_store
# --write-pattern), on a checkpoint-like file (the format is walked
# generically), and on bad input: missing, not HDF5, no schema, unknown
# schema, truncated shard, bad options.
set -u
source "$(dirname "$0")/lib.sh"
# run CMD...: sets out (stdout), err (stderr), rc
run() {
	out=$("$@" 2>"$dir/stderr")
	rc=$?
	err=$(cat "$dir/stderr")
}

NB=${NBOOST:?NBOOST not set}
if [ ! -x "$NB" ]; then
	echo "skipped: $NB is not built"
	exit 77
fi
dir=$T
"$NB_BUILD/test/test_shard_store" --write-pattern "$dir" || { echo "writer failed"; exit 1; }

run "$NB" inspect "$dir/captions.h5" --n 14
check_sh "inspect captions rc $rc: $err" '[ $rc -eq 0 ]'
check_sh "caption summary: $out" 'grep -q "schema nboost.captions v1 (captions shard), 70 samples of 4x5 RGB" <<<"$out"'
check_sh "ratio missing" 'grep -qE "ratio [0-9]+\.[0-9]+" <<<"$out"'
check_sh "origin attribute" 'grep -q "origin           '"'"'pseudo'"'"'" <<<"$out"'
check_sh "sigma attribute: $(grep sigma <<<"$out")" 'grep -q "sigma            0.3$" <<<"$out"'
check_sh "vote attribute" 'grep -q "vote             3" <<<"$out"'
check_sh "tokens dataset line" 'grep -q "/tokens *\[515\]" <<<"$out"'
check_sh "sample 13 line" 'grep -q "\[13\] id 1039  source '"'"'src-13'"'"'" <<<"$out"'
check_sh "caption of sample 5" 'grep -q "caption (7 tokens, score 0.050): small large red green blue yellow magenta" <<<"$out"'
check_sh "truth of sample 0" 'grep -q "truth: small red circle top center . small red square top right" <<<"$out"'
check_sh "--n 14 printed more than 14 samples" '! grep -q "\[14\]" <<<"$out"'

run "$NB" inspect "$dir/images.h5" --json --n 3
check_sh "inspect images --json rc $rc: $err" '[ $rc -eq 0 ]'
check_sh "images --json content: $out" "$PY -c '
import json, sys
d = json.loads(sys.argv[1])
assert d[\"schema\"] == \"nboost.images\" and d[\"kind\"] == \"images\" and d[\"samples\"] == 70, d
assert d[\"height\"] == 4 and d[\"width\"] == 5 and d[\"raw_bytes\"] > 0 and d[\"stored_bytes\"] > 0
assert abs(d[\"ratio\"] - d[\"raw_bytes\"] / d[\"stored_bytes\"]) < 1e-3
assert d[\"attributes\"][\"schema\"] == \"nboost.images\" and d[\"attributes\"][\"version\"] == 1
assert [s[\"id\"] for s in d[\"first\"]] == [1000, 1003, 1006]
assert d[\"first\"][2][\"source\"] == \"src-2\" and \"caption\" not in d[\"first\"][0]
assert any(x[\"name\"] == \"/images\" and x[\"shape\"] == [70, 4, 5, 3] for x in d[\"datasets\"])
' \"\$out\""

# a checkpoint-like file, written by h5py so the test does not depend on the trainer
$PY - "$dir" <<'PYEOF'
import sys, h5py, numpy as np
d = sys.argv[1]
with h5py.File(d + "/ckpt.h5", "w") as f:
    f.attrs["schema"] = np.bytes_("nboost.checkpoint")
    f.attrs["version"] = np.int32(1)
    f.attrs["step"] = np.int64(4000)
    f.attrs["lr"] = np.float32(0.001)
    f.create_dataset("params/wte", data=np.zeros((27, 128), np.float32))
    f.create_dataset("params/blocks/0/w", data=np.zeros((4, 4), np.float32))
    f.create_dataset("adam/m/wte", data=np.zeros((27, 128), np.float32))
with h5py.File(d + "/other.h5", "w") as f:
    f.attrs["schema"] = np.bytes_("foo.bar")
with h5py.File(d + "/plain.h5", "w") as f:
    f.create_dataset("x", data=np.arange(3))
PYEOF
run "$NB" inspect "$dir/ckpt.h5"
check_sh "inspect checkpoint rc $rc: $err" '[ $rc -eq 0 ]'
check_sh "checkpoint schema" 'grep -q "schema nboost.checkpoint" <<<"$out"'
check_sh "checkpoint step attribute: $out" 'grep -q "step             4000" <<<"$out"'
check_sh "checkpoint lr attribute: $out" 'grep -q "lr               0.001" <<<"$out"'
check_sh "checkpoint wte tensor: $out" 'grep -q "/params/wte *\[27, 128\]" <<<"$out"'
check_sh "checkpoint nested tensor: $out" 'grep -q "/params/blocks/0/w *\[4, 4\]" <<<"$out"'
check_sh "checkpoint parameter count: $out" 'grep -q "total parameters: 3472" <<<"$out"'
check_sh "checkpoint adam" 'grep -q "adam state: present" <<<"$out"'
run "$NB" inspect "$dir/ckpt.h5" --json
check_sh "checkpoint --json: $out" "$PY -c '
import json, sys
d = json.loads(sys.argv[1])
assert d[\"total_params\"] == 3472 and d[\"adam\"] is True and d[\"attributes\"][\"step\"] == 4000, d
' \"\$out\""

# bad input: exit 1 with the file and the cause
run "$NB" inspect "$dir/none.h5"
check_sh "missing file: rc $rc $err" '[ $rc -eq 1 ] && grep -q "none.h5.*No such file or directory" <<<"$err"'
run "$NB" inspect "$dir"
check_sh "directory: rc $rc $err" '[ $rc -eq 1 ] && grep -q "not a regular file" <<<"$err"'
echo "garbage" >"$dir/garbage.h5"
run "$NB" inspect "$dir/garbage.h5"
check_sh "garbage: rc $rc $err" '[ $rc -eq 1 ] && grep -q "garbage.h5.*not an HDF5 file" <<<"$err"'
run "$NB" inspect "$dir/other.h5"
check_sh "unknown schema: rc $rc $err" '[ $rc -eq 1 ] && grep -q "other.h5.*unknown schema '"'"'foo.bar'"'"'" <<<"$err"'
run "$NB" inspect "$dir/plain.h5"
check_sh "no schema: rc $rc $err" '[ $rc -eq 1 ] && grep -q "plain.h5.*missing attribute '"'"'schema'"'"'" <<<"$err"'
head -c 5000 "$dir/captions.h5" >"$dir/cut.h5"
run "$NB" inspect "$dir/cut.h5"
check_sh "truncated: rc $rc $err" '[ $rc -eq 1 ] && grep -q "cut.h5.*truncated" <<<"$err"'
check_sh "HDF5 error stack leaked: $err" '! grep -q "HDF5-DIAG" <<<"$err"'

# ---- checksums (issue #13): a flipped bit in any chunk is an error naming
# the shard, the dataset and the chunk's samples, in every command that
# reads shards; the good shards say they carry checksums.
check_sh "checksums line: $(grep checksums <<<"$(\"$NB\" inspect "$dir/images.h5" --n 0)")" \
	'"$NB" inspect "$dir/images.h5" --n 0 | grep -q "checksums: Fletcher-32 on every chunk of every dataset, HDF5.s on all metadata"'
# flip FILE DATASET CHUNK: one bit in the middle of that stored chunk
flip() {
	$PY - "$@" <<'PYEOF'
import sys, h5py
path, name, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
with h5py.File(path, "r") as f:
    info = f[name].id.get_chunk_info(k)
off = info.byte_offset + info.size // 2
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0x10]))
PYEOF
}
cp "$dir/images.h5" "$dir/flip-images.h5"
flip "$dir/flip-images.h5" images 1
run "$NB" inspect "$dir/flip-images.h5"
check_sh "inspect, flipped /images chunk 1: rc $rc: $err" '[ $rc -eq 1 ] && grep -q "flip-images.h5.*dataset '"'"'/images'"'"' samples 32..63: checksum mismatch" <<<"$err"'
cp "$dir/captions.h5" "$dir/flip-objects.h5"
flip "$dir/flip-objects.h5" objects 0
run "$NB" inspect "$dir/flip-objects.h5"
check_sh "inspect, flipped /objects: rc $rc: $err" '[ $rc -eq 1 ] && grep -q "flip-objects.h5.*dataset '"'"'/objects'"'"' samples 0..69: .*checksum" <<<"$err"'

# eval, caption --shards and train on a corpus with one flipped bit
"$NB" synth --out "$dir/c" --labeled 64 --unlabeled 0 --test 64 --size 16 --shard-size 64 -q || bad "synth failed"
"$NB" train "$NB_SRC/jobs/tiny.conf" --labeled "$dir/c/labeled" --out "$dir/run" --train.steps=2 \
	--train.checkpoint_every=2 2>"$dir/train.log" || bad "train failed: $(tail -3 "$dir/train.log")"
test_shard=$dir/c/test/shard-000000.h5
cp "$test_shard" "$dir/good.h5"
flip "$test_shard" objects 0
run "$NB" eval --shards "$dir/c/test" --write-gt "$dir/gt.tsv"
check_sh "eval, flipped /objects: rc $rc: $err" '[ $rc -ne 0 ] && grep -q "$test_shard.*'"'"'/objects'"'"' samples 0..63: .*checksum" <<<"$err"'
cp "$dir/good.h5" "$test_shard"
flip "$test_shard" images 0
run "$NB" caption --model "$dir/run/checkpoint.h5" --shards "$dir/c/test"
check_sh "caption --shards, flipped /images: rc $rc: $err" '[ $rc -ne 0 ] && grep -q "$test_shard.*'"'"'/images'"'"' samples 0..63: checksum mismatch" <<<"$err"'
cp "$dir/c/labeled/shard-000000.h5" "$dir/good-labeled.h5"
flip "$dir/c/labeled/shard-000000.h5" images 0
run "$NB" train "$NB_SRC/jobs/tiny.conf" --labeled "$dir/c/labeled" --out "$dir/run2" --train.steps=2
check_sh "train, flipped /images: rc $rc: $(tail -3 <<<"$err")" '[ $rc -ne 0 ] && grep -q "shard-000000.h5.*'"'"'/images'"'"' samples 0..63: checksum mismatch" <<<"$err"'

# a shard written without checksums (by h5py, as older nboost did) reads
# with one warning, and inspect says so
$PY - "$dir/captions.h5" "$dir/old.h5" <<'PYEOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as src, h5py.File(sys.argv[2], "w") as dst:
    for k, v in src.attrs.items():
        dst.attrs[k] = v
    for name, ds in src.items():
        if isinstance(ds, h5py.Dataset):   # not /provenance
            dst.create_dataset(name, data=ds[...], chunks=ds.chunks)
PYEOF
run "$NB" inspect "$dir/old.h5" --n 1
check_sh "old shard: rc $rc: $out $err" '[ $rc -eq 0 ] && grep -q "checksums: incomplete" <<<"$out" && grep -q "warning: shard .*old.h5.* has no checksums.*file metadata" <<<"$err"'

# options
run "$NB" inspect --help
check_sh "--help" '[ $rc -eq 0 ] && grep -q -- "--n N" <<<"$out" && grep -q "default 5" <<<"$out"'
run "$NB" inspect "$dir/images.h5" --bogus
check_sh "bad option: rc $rc" '[ $rc -eq 2 ] && grep -q "unknown option '"'"'--bogus'"'"'" <<<"$err" && grep -q usage <<<"$err"'
run "$NB" inspect "$dir/images.h5" --n -3
check_sh "negative --n: rc $rc" '[ $rc -eq 2 ]'
run "$NB" inspect
check_sh "no file: rc $rc" '[ $rc -eq 2 ] && grep -q "missing FILE" <<<"$err"'

finish
