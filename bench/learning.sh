#!/usr/bin/env bash
# The learning experiment of the README ("Learning"): train the reference model on the
# synthetic corpus with and without NoiseBoost, several seeds, and score each
# on the test split. Long-running (hours at 4000 steps on 2 cores): a
# benchmark, not a test.
#
#   bench/learning.sh [OUT]          (default OUT=runs/learning)
# Environment:
#   STEPS=4000  SEEDS="1 2"  SIGMAS="0 0.3"  LABELED=4000  TEST=1000
#   PARALLEL=2   runs trained at once, one thread each (2 cores: 2 runs x 1 thread
#                is faster overall than 1 run x 2 threads)
#   NBOOST=build/nboost
# Finished runs are skipped and interrupted runs resume from their checkpoint,
# so the script can be stopped and started again.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/learning}
nb=${NBOOST:-build/nboost}
steps=${STEPS:-4000}
seeds=${SEEDS:-"1 2"}
sigmas=${SIGMAS:-"0 0.3"}
parallel=${PARALLEL:-2}
export HDF5_PLUGIN_PATH=${HDF5_PLUGIN_PATH:-$PWD/build/plugins}
mkdir -p "$out"

if [[ ! -f "$out/data/corpus.json" ]]; then
  "$nb" synth --out "$out/data" --labeled "${LABELED:-4000}" --unlabeled 0 --test "${TEST:-1000}" --seed 1
fi

train_one() {  # sigma seed
  local dir="$out/sigma$1-seed$2" resume=()
  if [[ -f "$dir/done" ]]; then return 0; fi
  [[ -f "$dir/checkpoint.h5" ]] && resume=(--resume)
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$nb" train jobs/demo.conf --labeled "$out/data/labeled" \
    --out "$dir" "${resume[@]}" --noise.sigma="$1" --train.seed="$2" --train.steps="$steps" \
    --train.log_every=100 > "$dir.log" 2>&1 || { echo "run sigma=$1 seed=$2 failed: see $dir.log" >&2; return 1; }
  "$nb" eval --model "$dir/checkpoint.h5" --shards "$out/data/test" --json \
    --out-captions "$dir/test_captions.tsv" > "$dir/eval.json"
  touch "$dir/done"
}

pids=()
for sigma in $sigmas; do
  for seed in $seeds; do
    mkdir -p "$out/sigma$sigma-seed$seed"
    train_one "$sigma" "$seed" &
    pids+=($!)
    if [[ ${#pids[@]} -ge $parallel ]]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  done
done
for p in "${pids[@]}"; do wait "$p"; done

/usr/bin/python3 - "$out" "$steps" $sigmas <<'PY'
import json, os, statistics, sys
out, steps, sigmas = sys.argv[1], sys.argv[2], sys.argv[3:]
keys = ["chair_i", "chair_s", "recall", "tuple_f1", "bleu4", "cider_d"]
print(f"learning experiment: {steps} steps, test split of {out}/data")
print(f"{'sigma':>6} {'seed':>5}" + "".join(f"{k:>10}" for k in keys))
summary = {}
for s in sigmas:
    rows = []
    for d in sorted(os.listdir(out)):
        if d.startswith(f"sigma{s}-seed") and os.path.isfile(f"{out}/{d}/eval.json"):
            r = json.loads(open(f"{out}/{d}/eval.json").read().strip().splitlines()[-1])
            rows.append(r)
            print(f"{s:>6} {d.split('seed')[1]:>5}" + "".join(f"{r[k]:10.3f}" for k in keys))
    if rows:
        summary[s] = {k: statistics.mean(r[k] for r in rows) for k in keys}
        summary[s]["runs"] = len(rows)
        print(f"{s:>6} {'mean':>5}" + "".join(f"{summary[s][k]:10.3f}" for k in keys))
print(json.dumps({"bench": "learning", "steps": int(steps), "by_sigma": summary}))
PY
