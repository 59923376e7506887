#!/bin/bash
# Preference training end to end on the tiny model: `nboost pairs` (on-policy,
# synthetic, the same pairs for 1 and 2 ranks, refusals), `nboost train
# --objective dpo` (metrics, 1 vs 2 ranks within 1e-4 over 20 steps, stop +
# --resume bit-exact on 1 and 2 ranks, SIGTERM, refusals of wrong inputs).
source "$(dirname "$0")/train_lib.sh"

mkdir -p "$T/data"
"$MKDATA" "$T/data/shard-000000.h5" 48 --seed 1 || { echo "cannot make data"; exit 1; }
"$MKDATA" "$T/data/shard-000001.h5" 24 --seed 2 --first-id 5000
run_ok "supervised reference" "$NBOOST" train jobs/tiny.conf --labeled "$T/data" --steps 40 --out "$T/sft"
REF="$T/sft/checkpoint.h5"

# ---- pairs ----
run_ok "pairs, on-policy + synthetic when perfect" "$NBOOST" pairs --model "$REF" --shards "$T/data" --out "$T/p1" --synthetic-when-perfect
check "summary counts 72 images" grep -q "^images *72$" "$T/last.out"
check "summary: pairs for every image" grep -q "^pairs *72 in 1 shard" "$T/last.out"
check "some on-policy pairs" grep -Eq "^on-policy +[1-9]" "$T/last.out"
run_ok "pairs on 2 ranks" $MPIEXEC -np 2 --oversubscribe "$NBOOST" pairs --model "$REF" --shards "$T/data" --out "$T/p2" --synthetic-when-perfect
check "2 ranks: one shard each" test "$(ls "$T/p2" | grep -c '^pairs-0000[01].h5$')" = 2
run_ok "pairs, synthetic only" "$NBOOST" pairs --shards "$T/data" --out "$T/ps" --synthetic-only --seed 4
run_ok "pairs, on-policy only" "$NBOOST" pairs --model "$REF" --shards "$T/data" --out "$T/po"

# every pair (id, chosen, rejected, kind) the same for 1 and 2 ranks; the
# rejected caption has an absent object and the chosen one is the ground truth
dump() { HDF5_PLUGIN_PATH=$NB_BUILD/plugins $PY - "$@" <<'PY'
import glob, sys, h5py, numpy as np
rows = []
for path in sorted(glob.glob(sys.argv[1] + "/*.h5")):
    f = h5py.File(path, "r")
    assert f.attrs["schema"] == b"nboost.pairs", f.attrs["schema"]
    off, tok = f["offsets"][...], f["tokens"][...]
    roff, rtok = f["rejected_offsets"][...], f["rejected_tokens"][...]
    for i, id_ in enumerate(f["ids"][...]):
        rows.append((int(id_), tuple(tok[off[i]:off[i+1]]), tuple(rtok[roff[i]:roff[i+1]]), int(f["pair_kind"][i]),
                     tuple(f["objects"][i])))
rows.sort()
for r in rows:  # kind first
    print(r[3], *r[:3], r[4])
PY
}
check "1 and 2 ranks make the same pairs" test "$(dump "$T/p1")" = "$(dump "$T/p2")"
check_sh "on-policy only: kind 0 only, the kind-0 pairs of the filled run" '[ -n "$(dump "$T/po")" ] && [ "$(dump "$T/po")" = "$(dump "$T/p1" | grep "^0 ")" ]'
check_sh "synthetic only: kinds 1-3 only" '[ "$(dump "$T/ps" | cut -d" " -f1 | sort -u | tr -d "\n")" = 123 ]'
# the synthetic pairs' rejected captions name an absent object (the grammar's ids)
check_sh "synthetic: rejected != chosen and both non-empty" "HDF5_PLUGIN_PATH=$NB_BUILD/plugins $PY - '$T/ps' <<'PY'
import glob, sys, h5py
for p in glob.glob(sys.argv[1] + '/*.h5'):
    f = h5py.File(p, 'r')
    off, tok, roff, rtok = f['offsets'][...], f['tokens'][...], f['rejected_offsets'][...], f['rejected_tokens'][...]
    for i in range(len(off) - 1):
        c, r = list(tok[off[i]:off[i+1]]), list(rtok[roff[i]:roff[i+1]])
        assert c and r and c != r, (i, c, r)
PY"
run_ok "inspect a pair shard" "$NBOOST" inspect "$T/ps/pairs-00000.h5"
check "inspect: schema and kinds" grep -q "schema nboost.pairs v1 (pairs shard)" "$T/last.out"
check "inspect: chosen and rejected" grep -Eq "rejected \([0-9]+ tokens, synthetic-(prior|color|shape)\): " "$T/last.out"
expect_fail 1 "already holds 1 shard(s)" "$NBOOST" pairs --model "$REF" --shards "$T/data" --out "$T/p1"
expect_fail 2 "pass --model CKPT" "$NBOOST" pairs --shards "$T/data" --out "$T/x1"
expect_fail 2 "takes no --model" "$NBOOST" pairs --synthetic-only --model "$REF" --shards "$T/data" --out "$T/x2"
# an image shard with ground truth is fine; without it, refused
mkdir -p "$T/img"
"$MKDATA" "$T/img/shard-000000.h5" 4 --image-shard
run_ok "pairs from an image shard with /objects" "$NBOOST" pairs --model "$REF" --shards "$T/img" --out "$T/x5" --synthetic-when-perfect
check "4 pairs from it" grep -q "^pairs *4 in 1" "$T/last.out"
HDF5_PLUGIN_PATH=$NB_BUILD/plugins $PY -c 'import h5py,sys; f=h5py.File(sys.argv[1],"r+"); del f["objects"]; f.attrs["has_objects"]=0' "$T/img/shard-000000.h5"
expect_fail 1 "it has no ground truth (/objects)" "$NBOOST" pairs --model "$REF" --shards "$T/img" --out "$T/x3"
mkdir -p "$T/empty"
expect_fail 1 "no committed shard in" "$NBOOST" pairs --model "$REF" --shards "$T/empty" --out "$T/x4"

# ---- DPO ----
A=(jobs/tiny.conf --objective dpo --pairs "$T/p1" --ref "$REF" --steps 20 --train.log_every=1 --train.checkpoint_every=0)
run_ok "dpo, 1 rank" "$NBOOST" train "${A[@]}" --out "$T/d1"
run_ok "dpo, 2 ranks" $MPIEXEC -np 2 --oversubscribe "$NBOOST" train "${A[@]}" --out "$T/d2"
check "progress shows margin and accuracy" grep -q "margin .* acc " "$T/last.err"
close() { $PY - "$1" "$2" <<'PY'
import json, math, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == 20 and len(b) == 20, (len(a), len(b))
for k in ("loss", "dpo_loss", "reward_margin", "reward_accuracy", "sft_loss"):
    assert all(k in x for x in a + b), k
worst = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(a, b))
print("1 vs 2 ranks: max relative DPO loss difference %.3g" % worst, file=sys.stderr)
assert worst <= 1e-4, worst
# the policy starts at the reference: only the noise on the chosen branch moves z
assert abs(a[0]["dpo_loss"] - math.log(2)) < 0.05, a[0]
# and it learns to prefer the chosen captions
assert a[-1]["dpo_loss"] < a[0]["dpo_loss"] and a[-1]["reward_margin"] > 0, (a[0], a[-1])
PY
}
check "1 vs 2 ranks within 1e-4, loss falls" close "$T/d1/metrics.jsonl" "$T/d2/metrics.jsonl"
check "config records the objective" grep -q "^objective = dpo" "$T/d1/config.conf"
check "config records dpo.noise" grep -q "^noise = chosen" "$T/d1/config.conf"

# stop at 8, resume: bit-identical to the straight run, on 1 and 2 ranks
run_ok "dpo stop at 8" "$NBOOST" train "${A[@]}" --out "$T/s1" --stop-at 8
run_ok "dpo resume" "$NBOOST" train "${A[@]}" --out "$T/s1" --resume
check "resume: same params digest" test "$(digest "$T/s1/checkpoint.h5")" = "$(digest "$T/d1/checkpoint.h5")"
check "resume: same losses" test "$(losses "$T/s1/metrics.jsonl")" = "$(losses "$T/d1/metrics.jsonl")"
run_ok "dpo 2 ranks stop at 11" $MPIEXEC -np 2 --oversubscribe "$NBOOST" train "${A[@]}" --out "$T/s2" --stop-at 11
run_ok "dpo 2 ranks resume" $MPIEXEC -np 2 --oversubscribe "$NBOOST" train "${A[@]}" --out "$T/s2" --resume
check "2-rank resume: same params digest" test "$(digest "$T/s2/checkpoint.h5")" = "$(digest "$T/d2/checkpoint.h5")"
# a reference file changed under a resumed run is refused
cp "$REF" "$T/ref_saved.h5"
cp "$T/d1/checkpoint.h5" "$REF"
expect_fail 1 "are not those the run started from" "$NBOOST" train "${A[@]}" --out "$T/s1" --resume --steps 21
cp "$T/ref_saved.h5" "$REF"
expect_fail 1 "train.text_only and train.objective = dpo exclude each other" "$NBOOST" train "${A[@]}" --train.text_only=true --out "$T/e9"
expect_fail 1 "train.init_decoder and train.objective = dpo exclude each other" "$NBOOST" train "${A[@]}" --train.init_decoder="$REF" --out "$T/e10"
expect_fail 1 "dpo.beta = 0.1 (checkpoint) vs 0.2 (now)" "$NBOOST" train "${A[@]}" --out "$T/s1" --resume --dpo.beta=0.2
expect_fail 1 "dpo.noise = chosen (checkpoint) vs both (now)" "$NBOOST" train "${A[@]}" --out "$T/s1" --resume --dpo.noise=both

# noise modes and the SFT term run; with no noise and no SFT the first loss is log 2
run_ok "dpo.noise none" "$NBOOST" train "${A[@]}" --steps 2 --dpo.noise=none --out "$T/n0"
check_sh "noise none: first dpo_loss = log 2" "$PY -c 'import json,math,sys; d=json.loads(open(sys.argv[1]).readline()); assert abs(d[\"dpo_loss\"]-math.log(2))<1e-6 and d[\"reward_margin\"]==0, d' '$T/n0/metrics.jsonl'"
run_ok "dpo.noise both + sft" "$NBOOST" train "${A[@]}" --steps 2 --dpo.noise=both --dpo.sft_weight=0.5 --out "$T/nb"
check_sh "sft: loss = dpo_loss + 0.5 sft_loss" "$PY -c 'import json,sys; d=json.loads(open(sys.argv[1]).readline()); assert abs(d[\"loss\"]-d[\"dpo_loss\"]-0.5*d[\"sft_loss\"])<1e-6*d[\"loss\"], d' '$T/nb/metrics.jsonl'"

# SIGTERM mid-run: checkpoint, exit 75 (stopped, resumable), then --resume finishes
"$NBOOST" train "${A[@]}" --steps 4000 --train.log_every=10 --out "$T/sig" 2>"$T/sig.err" &
pid=$!
for _ in $(seq 200); do [ -s "$T/sig/metrics.jsonl" ] && break; sleep 0.05; done
kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM: exit 75, got $rc" test $rc -eq 75
check "SIGTERM: stopped on a signal" grep -q "stopped at step [0-9]*/4000 on a signal" "$T/sig.err"
run_ok "resume after SIGTERM" "$NBOOST" train "${A[@]}" --steps 4000 --train.log_every=100 --out "$T/sig" --resume
check "resumed to 4000" test "$(digest "$T/sig/checkpoint.h5" | cut -d' ' -f2)" = 4000

# refusals
expect_fail 2 "needs a reference checkpoint" "$NBOOST" train jobs/tiny.conf --objective dpo --pairs "$T/p1" --out "$T/e1"
expect_fail 2 "needs pair shards" "$NBOOST" train jobs/tiny.conf --objective dpo --ref "$REF" --out "$T/e2"
expect_fail 1 "expected sft or dpo" "$NBOOST" train jobs/tiny.conf --objective ppo --labeled "$T/data" --out "$T/e3"
expect_fail 1 "expected chosen, both or none" "$NBOOST" train "${A[@]}" --dpo.noise=rejected --out "$T/e4"
expect_fail 1 "needs a pair shard (nboost pairs), this is a caption shard" "$NBOOST" train jobs/tiny.conf --objective dpo --pairs "$T/data" --ref "$REF" --out "$T/e5"
expect_fail 1 "train on pairs with --objective dpo" "$NBOOST" train jobs/tiny.conf --labeled "$T/p1" --out "$T/e6"
expect_fail 1 "cannot load the DPO reference" "$NBOOST" train jobs/tiny.conf --objective dpo --pairs "$T/p1" --ref "$T/nothing.h5" --out "$T/e7"
expect_fail 1 "its model config differs" "$NBOOST" train jobs/tiny.conf --objective dpo --pairs "$T/p1" --ref "$REF" --model.dec_dim=32 --out "$T/e8"
finish
