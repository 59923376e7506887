#!/bin/bash
# The MLLM regime's two pieces (issue #10): train.text_only pretrains the
# decoder on captions alone (zero visual tokens: the images do not matter),
# and train.init_decoder starts a run's decoder from such a checkpoint while
# the encoder and projector start fresh.
set -u
: "${NBOOST:?run through ctest}"
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
JOB="$NB_SRC/jobs/tiny.conf"

"$NBOOST" synth --out "$T/d" --size 16 --labeled 48 --unlabeled 0 --test 0 --shard-size 48 -q &&
	ok || bad "synth failed"
"$NBOOST" train "$JOB" --labeled "$T/d/labeled" --out "$T/lm" --steps 4 --train.text_only=true >"$T/lm.out" 2>&1 &&
	ok || bad "text-only training failed: $(tail -3 "$T/lm.out")"
check "config records text_only" grep -qx "text_only = true" "$T/lm/config.conf"
# the same text-only run with other images (the same captions) gives the same model
mkdir -p "$T/inv" && cp "$T/d/labeled/shard-000000.h5" "$T/inv/" && chmod u+w "$T/inv/shard-000000.h5"
"$PY" - "$T/inv/shard-000000.h5" <<'PY' && ok || bad "inverting the images failed"
import h5py, sys
with h5py.File(sys.argv[1], "r+") as f:
    f["images"][...] = 255 - f["images"][...]
PY
"$NBOOST" train "$JOB" --labeled "$T/inv" --out "$T/lm2" --steps 4 --train.text_only=true >"$T/lm2.out" 2>&1 &&
	ok || bad "text-only training on inverted images failed: $(tail -3 "$T/lm2.out")"
"$PY" - "$T/lm/checkpoint.h5" "$T/lm2/checkpoint.h5" <<'PY' && ok || bad "text-only training depends on the images"
import h5py, sys, numpy as np
a, b = h5py.File(sys.argv[1], "r")["params"], h5py.File(sys.argv[2], "r")["params"]
for k in a:
    assert np.array_equal(a[k][:], b[k][:]), k
PY

# init_decoder: one step at lr 0 keeps the copied decoder exactly; a
# different seed gives another encoder
"$NBOOST" train "$JOB" --labeled "$T/d/labeled" --out "$T/ft" --steps 1 --train.lr=0 --train.seed=2 \
	--train.init_decoder="$T/lm/checkpoint.h5" >"$T/ft.out" 2>&1 && ok || bad "init_decoder run failed: $(tail -3 "$T/ft.out")"
"$PY" - "$T/lm/checkpoint.h5" "$T/ft/checkpoint.h5" <<'PY' && ok || bad "decoder not copied, or encoder copied"
import h5py, sys, numpy as np
a, b = h5py.File(sys.argv[1], "r")["params"], h5py.File(sys.argv[2], "r")["params"]
dec = [k for k in a if k.startswith("dec.") or k.startswith("head.")]
vis = [k for k in a if k.startswith("enc.") or k.startswith("proj.")]
assert dec and vis
for k in dec:
    assert np.array_equal(a[k][:], b[k][:]), "decoder tensor %s differs" % k
assert any(not np.array_equal(a[k][:], b[k][:]) for k in vis), "encoder copied too"
PY
check "config records init_decoder" grep -q "^init_decoder = $T/lm/checkpoint.h5" "$T/ft/config.conf"

# a decoder of another shape is refused, naming the file and the key
"$NBOOST" train "$JOB" --labeled "$T/d/labeled" --out "$T/bad" --steps 1 --model.dec_dim=32 --model.dec_heads=2 \
	--train.init_decoder="$T/lm/checkpoint.h5" >"$T/bad.out" 2>&1
rc=$?
check "other decoder shape: exit 1 (got $rc)" test $rc -eq 1
check "other decoder shape: message" grep -q "cannot initialise the decoder from '$T/lm/checkpoint.h5': its dec_dim is 16, this model's 32" "$T/bad.out"
"$NBOOST" train "$JOB" --labeled "$T/d/labeled" --out "$T/bad2" --steps 1 --train.init_decoder="$T/none.h5" >"$T/bad2.out" 2>&1
rc=$?
check "missing init checkpoint: exit 1 (got $rc) and named" bash -c "test $rc -eq 1 && grep -q '$T/none.h5' '$T/bad2.out'"
# text_only is frozen on resume
"$NBOOST" train "$JOB" --labeled "$T/d/labeled" --out "$T/lm" --steps 6 --resume >"$T/re.out" 2>&1
rc=$?
check "resume without text_only refused (rc $rc)" bash -c "test $rc -ne 0 && grep -q 'train.text_only = true (checkpoint) vs unset (now)' '$T/re.out'"
finish
