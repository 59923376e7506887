#!/bin/bash
# `nboost inspect` on image and caption shards (pattern of test_shard_store
# --write-pattern), on a checkpoint-like file (the format is walked
# generically), and on bad input: missing, not HDF5, no schema, unknown
# schema, truncated shard, bad options.
set -u
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
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
PY=/usr/bin/python3
dir=$(mktemp -d "${TMPDIR:-/tmp}/nboost-inspect-XXXXXX")
trap 'rm -rf "$dir"' EXIT
"$NB_BUILD/test/test_shard_store" --write-pattern "$dir" || { echo "writer failed"; exit 1; }

run "$NB" inspect "$dir/captions.h5" --n 14
check '[ $rc -eq 0 ]' "inspect captions rc $rc: $err"
check 'grep -q "schema nboost.captions v1 (captions shard), 70 samples of 4x5 RGB" <<<"$out"' "caption summary: $out"
check 'grep -qE "ratio [0-9]+\.[0-9]+" <<<"$out"' "ratio missing"
check 'grep -q "origin           '"'"'pseudo'"'"'" <<<"$out"' "origin attribute"
check 'grep -q "sigma            0.3$" <<<"$out"' "sigma attribute: $(grep sigma <<<"$out")"
check 'grep -q "vote             3" <<<"$out"' "vote attribute"
check 'grep -q "/tokens *\[375\]" <<<"$out"' "tokens dataset line"
check 'grep -q "\[13\] id 1039  source '"'"'src-13'"'"'" <<<"$out"' "sample 13 line"
check 'grep -q "caption (5 tokens, score 0.050): small large red green blue" <<<"$out"' "caption of sample 5"
check 'grep -q "truth: small red circle top center . small red square top right" <<<"$out"' "truth of sample 0"
check '! grep -q "\[14\]" <<<"$out"' "--n 14 printed more than 14 samples"

run "$NB" inspect "$dir/images.h5" --json --n 3
check '[ $rc -eq 0 ]' "inspect images --json rc $rc: $err"
check "$PY -c '
import json, sys
d = json.loads(sys.argv[1])
assert d[\"schema\"] == \"nboost.images\" and d[\"kind\"] == \"images\" and d[\"samples\"] == 70, d
assert d[\"height\"] == 4 and d[\"width\"] == 5 and d[\"raw_bytes\"] > 0 and d[\"stored_bytes\"] > 0
assert abs(d[\"ratio\"] - d[\"raw_bytes\"] / d[\"stored_bytes\"]) < 1e-3
assert d[\"attributes\"][\"schema\"] == \"nboost.images\" and d[\"attributes\"][\"version\"] == 1
assert [s[\"id\"] for s in d[\"first\"]] == [1000, 1003, 1006]
assert d[\"first\"][2][\"source\"] == \"src-2\" and \"caption\" not in d[\"first\"][0]
assert any(x[\"name\"] == \"/images\" and x[\"shape\"] == [70, 4, 5, 3] for x in d[\"datasets\"])
' \"\$out\"" "images --json content: $out"

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
check '[ $rc -eq 0 ]' "inspect checkpoint rc $rc: $err"
check 'grep -q "schema nboost.checkpoint" <<<"$out"' "checkpoint schema"
check 'grep -q "step             4000" <<<"$out"' "checkpoint step attribute: $out"
check 'grep -q "lr               0.001" <<<"$out"' "checkpoint lr attribute: $out"
check 'grep -q "/params/wte *\[27, 128\]" <<<"$out"' "checkpoint wte tensor: $out"
check 'grep -q "/params/blocks/0/w *\[4, 4\]" <<<"$out"' "checkpoint nested tensor: $out"
check 'grep -q "total parameters: 3472" <<<"$out"' "checkpoint parameter count: $out"
check 'grep -q "adam state: present" <<<"$out"' "checkpoint adam"
run "$NB" inspect "$dir/ckpt.h5" --json
check "$PY -c '
import json, sys
d = json.loads(sys.argv[1])
assert d[\"total_params\"] == 3472 and d[\"adam\"] is True and d[\"attributes\"][\"step\"] == 4000, d
' \"\$out\"" "checkpoint --json: $out"

# bad input: exit 1 with the file and the cause
run "$NB" inspect "$dir/none.h5"
check '[ $rc -eq 1 ] && grep -q "none.h5.*No such file or directory" <<<"$err"' "missing file: rc $rc $err"
run "$NB" inspect "$dir"
check '[ $rc -eq 1 ] && grep -q "not a regular file" <<<"$err"' "directory: rc $rc $err"
echo "garbage" >"$dir/garbage.h5"
run "$NB" inspect "$dir/garbage.h5"
check '[ $rc -eq 1 ] && grep -q "garbage.h5.*not an HDF5 file" <<<"$err"' "garbage: rc $rc $err"
run "$NB" inspect "$dir/other.h5"
check '[ $rc -eq 1 ] && grep -q "other.h5.*unknown schema '"'"'foo.bar'"'"'" <<<"$err"' "unknown schema: rc $rc $err"
run "$NB" inspect "$dir/plain.h5"
check '[ $rc -eq 1 ] && grep -q "plain.h5.*missing attribute '"'"'schema'"'"'" <<<"$err"' "no schema: rc $rc $err"
head -c 5000 "$dir/captions.h5" >"$dir/cut.h5"
run "$NB" inspect "$dir/cut.h5"
check '[ $rc -eq 1 ] && grep -q "cut.h5.*truncated" <<<"$err"' "truncated: rc $rc $err"
check '! grep -q "HDF5-DIAG" <<<"$err"' "HDF5 error stack leaked: $err"

# options
run "$NB" inspect --help
check '[ $rc -eq 0 ] && grep -q -- "--n N" <<<"$out" && grep -q "default 5" <<<"$out"' "--help"
run "$NB" inspect "$dir/images.h5" --bogus
check '[ $rc -eq 2 ] && grep -q "unknown option '"'"'--bogus'"'"'" <<<"$err" && grep -q usage <<<"$err"' "bad option: rc $rc"
run "$NB" inspect "$dir/images.h5" --n -3
check '[ $rc -eq 2 ]' "negative --n: rc $rc"
run "$NB" inspect
check '[ $rc -eq 2 ] && grep -q "no FILE given" <<<"$err"' "no file: rc $rc"

echo "shard_inspect: $pass passed, $fail failed"
[ $fail -eq 0 ]
