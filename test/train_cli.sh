#!/bin/bash
# nboost train from the command line: help and usage errors, bad job files,
# run-directory rules, and every kind of bad checkpoint on --resume.
source "$(dirname "$0")/train_lib.sh"

mkdir -p "$T/data" "$T/empty"
"$MKDATA" "$T/data/shard-000000.h5" 40 --seed 1 || { echo "cannot make data"; exit 1; }
"$MKDATA" "$T/images.h5" 5 --image-shard

# ---- help and usage ----
"$NBOOST" train --help >"$T/help.txt" 2>&1
check "--help exits 0" test $? -eq 0
for opt in --labeled --out --resume --steps --stop-at "runs/train" "--section.key"; do
	check "--help mentions $opt" grep -qF -- "$opt" "$T/help.txt"
done
expect_fail 2 "unknown option '--bogus'" "$NBOOST" train jobs/tiny.conf --bogus
expect_fail 2 "usage: nboost train" "$NBOOST" train jobs/tiny.conf --bogus
expect_fail 2 "missing JOB" "$NBOOST" train --labeled "$T/data"
expect_fail 2 "unexpected argument 'jobs/demo.conf'" "$NBOOST" train jobs/tiny.conf jobs/demo.conf --labeled "$T/data"
expect_fail 2 "needs a value" "$NBOOST" train jobs/tiny.conf --train.steps --labeled "$T/data"
expect_fail 2 "--stop-at: 'x' is not an integer" "$NBOOST" train jobs/tiny.conf --stop-at x
expect_fail 2 "pass --labeled DIR" "$NBOOST" train jobs/tiny.conf --out "$T/r0"

# ---- bad job files ----
printf '[train]\nstepz = 5\n' >"$T/typo.conf"
expect_fail 1 "unknown key 'train.stepz' (did you mean 'train.steps'?)" "$NBOOST" train "$T/typo.conf" --labeled "$T/data" --out "$T/r1"
expect_fail 1 "typo.conf:2" "$NBOOST" train "$T/typo.conf" --labeled "$T/data" --out "$T/r1"
printf '[train]\nbatch = many\n' >"$T/batch.conf"
expect_fail 1 "train.batch = 'many' is not an integer" "$NBOOST" train "$T/batch.conf" --labeled "$T/data" --out "$T/r1"
printf '[model]\ndec_dim = 30\ndec_heads = 4\n' >"$T/heads.conf"
expect_fail 1 "dec_dim 30 is not a multiple of dec_heads 4" "$NBOOST" train "$T/heads.conf" --labeled "$T/data" --out "$T/r1"
expect_fail 1 "noise.sigma = -1 is out of range" "$NBOOST" train jobs/tiny.conf --noise.sigma=-1 --labeled "$T/data" --out "$T/r1"
expect_fail 2 "command line: unknown key 'noise.sgima'" "$NBOOST" train jobs/tiny.conf --noise.sgima=1 --labeled "$T/data" --out "$T/r1"
expect_fail 1 "$T/absent.conf" "$NBOOST" train "$T/absent.conf" --labeled "$T/data" --out "$T/r1"
# keys of other commands' sections pass through to config.conf
printf '[run]\nteachers = 2\n' >"$T/run.conf"
cat jobs/tiny.conf "$T/run.conf" >"$T/withrun.conf"
run_ok "train with a [run] section" "$NBOOST" train "$T/withrun.conf" --labeled "$T/data" --out "$T/rrun" --steps 2
check "config.conf keeps [run] teachers" grep -qx "teachers = 2" "$T/rrun/config.conf"
# config.conf is itself a job file that reproduces the run (data.labeled included)
run_ok "train from config.conf" "$NBOOST" train "$T/rrun/config.conf" --out "$T/rrun2"
check "config.conf reproduces the run" test "$(digest "$T/rrun2/checkpoint.h5")" = "$(digest "$T/rrun/checkpoint.h5")"

# ---- bad data ----
expect_fail 1 "no training samples: '$T/empty' holds no committed caption shard" "$NBOOST" train jobs/tiny.conf --labeled "$T/empty" --out "$T/r2"
mkdir -p "$T/mixed" && cp "$T/data/shard-000000.h5" "$T/mixed/a.h5" && cp "$T/images.h5" "$T/mixed/b.h5"
expect_fail 1 "cannot train on shard '$T/mixed/b.h5': it is an image shard" "$NBOOST" train jobs/tiny.conf --labeled "$T/mixed" --out "$T/r2"
expect_fail 1 "images are 16x16 but the model takes 48x48" "$NBOOST" train jobs/demo.conf --labeled "$T/data" --out "$T/r3"

# ---- a good run, then the run-directory rules ----
run_ok "tiny run" "$NBOOST" train jobs/tiny.conf --labeled "$T/data" --out "$T/run" --steps 6
check "metrics.jsonl has 6 lines" test "$(wc -l <"$T/run/metrics.jsonl")" -eq 6
check "metrics lines carry every field" $PY -c 'import json,sys
for l in open(sys.argv[1]):
    d=json.loads(l); assert set(d)=={"step","loss","lr","grad_norm","samples_per_s","time","elapsed_s"}, d
    assert d["loss"]>0 and d["lr"]>0' "$T/run/metrics.jsonl"
check "progress line on stderr" grep -qE '^train: step 6/6  loss [0-9.]+  lr .* samples/s  ETA' "$T/last.err"
check "config.conf written" grep -qx "steps = 6" "$T/run/config.conf"
check "checkpoint at step 6" test "$(digest "$T/run/checkpoint.h5" | cut -d' ' -f2)" = 6
check "no temporary files left (the lock file stays)" test -z "$(ls -A "$T/run" | grep -v -e '^checkpoint.h5$' -e '^metrics.jsonl$' -e '^config.conf$' -e '^provenance.json$' -e '^.lock$')"
expect_fail 1 "already holds a checkpoint: pass --resume" "$NBOOST" train jobs/tiny.conf --labeled "$T/data" --out "$T/run" --steps 6
expect_fail 1 "cannot resume: no checkpoint '$T/nothing/checkpoint.h5'" "$NBOOST" train jobs/tiny.conf --labeled "$T/data" --out "$T/nothing" --resume
# a finished run resumed with more steps continues
run_ok "resume to 8 steps" "$NBOOST" train jobs/tiny.conf --labeled "$T/data" --out "$T/run" --steps 8 --resume
check "resumed to step 8" test "$(digest "$T/run/checkpoint.h5" | cut -d' ' -f2)" = 8
check "metrics continue at 7, 8" test "$(losses "$T/run/metrics.jsonl" | cut -d' ' -f1 | tr '\n' ' ')" = "1 2 3 4 5 6 7 8 "

# ---- bad checkpoints on --resume ----
bad_ckpt() { # NAME PYTHON-EDIT
	rm -rf "$T/$1" && mkdir -p "$T/$1" && cp "$T/run/checkpoint.h5" "$T/$1/checkpoint.h5"
	[ -n "$2" ] && $PY -c "import h5py,sys,numpy as np; f=h5py.File(sys.argv[1],'r+'); $2" "$T/$1/checkpoint.h5"
}
R=(jobs/tiny.conf --labeled "$T/data" --steps 10 --resume)
bad_ckpt mism ""
expect_fail 1 "does not match the requested model config: dec_layers 1 (checkpoint) vs 2 (requested)" "$NBOOST" train "${R[@]}" --out "$T/mism" --model.dec_layers=2
expect_fail 1 "the job differs from the checkpoint's: train.batch = 8 (checkpoint) vs 16 (now), noise.sigma = 0.3 (checkpoint) vs 0 (now)" "$NBOOST" train "${R[@]}" --out "$T/mism" --train.batch=16 --noise.sigma=0
expect_fail 1 "train.seed = 1 (checkpoint) vs 9 (now)" "$NBOOST" train "${R[@]}" --out "$T/mism" --train.seed=9
bad_ckpt trunc ""
truncate -s $(( $(stat -c %s "$T/trunc/checkpoint.h5") / 2 )) "$T/trunc/checkpoint.h5"
expect_fail 1 "cannot load checkpoint '$T/trunc/checkpoint.h5': HDF5 cannot open it (file truncated or corrupt)" "$NBOOST" train "${R[@]}" --out "$T/trunc"
mkdir -p "$T/text" && echo "not a checkpoint" >"$T/text/checkpoint.h5"
expect_fail 1 "cannot load checkpoint '$T/text/checkpoint.h5': not an HDF5 file" "$NBOOST" train "${R[@]}" --out "$T/text"
bad_ckpt schema "f.attrs['schema']=np.bytes_('nboost.captions')"
expect_fail 1 "wrong schema 'nboost.captions' (expected nboost.checkpoint)" "$NBOOST" train "${R[@]}" --out "$T/schema"
bad_ckpt missing "del f['params/dec.0.attn.qkv.w']"
expect_fail 1 "tensor '/params/dec.0.attn.qkv.w' is missing" "$NBOOST" train "${R[@]}" --out "$T/missing"
bad_ckpt shape "del f['adam/m/head.w']; f['adam/m/head.w']=np.zeros((27,8),'f4')"
expect_fail 1 "tensor '/adam/m/head.w' has shape [27,8], the model expects [27,16]" "$NBOOST" train "${R[@]}" --out "$T/shape"
bad_ckpt order "del f['state/data_order']"
expect_fail 1 "'/state/data_order' is missing" "$NBOOST" train "${R[@]}" --out "$T/order"
# an edit that keeps the checksum right meets the semantic check
FNV='
def fnv(b):
    h = 0xcbf29ce484222325
    for x in b: h = ((h ^ x) * 0x100000001b3) & 0xffffffffffffffff
    return np.bytes_("%016x" % h)
'
bad_ckpt shards "$FNV
d=f['state/shard_counts']; a=d[:]; a[0]=39; d[...]=a; d.attrs['fnv1a64']=fnv(a.astype('<u8').tobytes())"
expect_fail 1 "shard '$T/data/shard-000000.h5' now holds 40 samples, the run used 39" "$NBOOST" train "${R[@]}" --out "$T/shards"
# edits that do not are refused, naming what changed (a flipped optimizer
# bit used to train on and end in "loss is not finite")
bad_ckpt adamflip "d=f['adam/v/head.b']; a=d[:]; a.view('<u4')[0]^=0x40000000; d[...]=a"
expect_fail 1 "cannot load checkpoint '$T/adamflip/checkpoint.h5': dataset '/adam/v/head.b' does not match its checksum" "$NBOOST" train "${R[@]}" --out "$T/adamflip"
bad_ckpt stepedit "f.attrs['step']=np.int64(3)"
expect_fail 1 "cannot load checkpoint '$T/stepedit/checkpoint.h5': attribute 'step' does not match its checksum" "$NBOOST" train "${R[@]}" --out "$T/stepedit"
bad_ckpt orderedit "d=f['state/data_order']; a=d[:]; a[[0,1]]=a[[1,0]]; d[...]=a"
expect_fail 1 "dataset '/state/data_order' does not match its checksum" "$NBOOST" train "${R[@]}" --out "$T/orderedit"

finish
