#!/usr/bin/env bash
# The training step of two builds, interleaved in one run (the machine is
# shared and noisy, so only the ratio means anything): for a refactor that
# must not slow the model down.
#   bench/compare_builds.sh OLD_BUILD_DIR NEW_BUILD_DIR [rounds] [steps]
# Prints each round's ms/step and the median of new/old; the last line is JSON.
set -euo pipefail
old=$1 new=$2 rounds=${3:-5} steps=${4:-3}
ms() { NB_NO_TORCH=1 "$1/bench/bench_train_step" 1 "$steps" 2>/dev/null | sed -n 's/.*"c_ms":\([0-9.]*\).*/\1/p'; }
ratios=()
for r in $(seq 1 "$rounds"); do
	a=$(ms "$old") b=$(ms "$new")
	ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')
	ratios+=("$ratio")
	echo "round $r: old $a ms/step, new $b ms/step, new/old $ratio"
done
med=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo "median new/old over $rounds rounds: $med"
echo "{\"bench\":\"compare_builds\",\"rounds\":$rounds,\"steps\":$steps,\"median_new_over_old\":$med}"
