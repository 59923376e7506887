#!/bin/bash
# `nboost caption --shards` and `nboost eval --model` under mpirun split
# their images over the ranks (each a contiguous block in shard order, rank
# 0 prints everything): the output of 2 and 3 ranks equals that of one
# process byte for byte, and each rank does only its share. Progress lines
# carry an ETA.
source "$(dirname "$0")/lib.sh"
: "${NBOOST:?run through ctest}" "${MPIEXEC:?}"
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
cd "$NB_SRC"
# 3 test shards of 23, 23 and 4 images: rank blocks straddle shards
"$NBOOST" synth --out "$T/s" --size 16 --labeled 32 --unlabeled 0 --test 50 --shard-size 23 -q || { echo "cannot synth"; exit 1; }
"$NBOOST" train jobs/tiny.conf --labeled "$T/s/labeled" --out "$T/run" --steps 30 2>/dev/null || { echo "cannot train"; exit 1; }
M=$T/run/checkpoint.h5

# ---- caption --shards ----
run_ok "caption, 1 process" "$NBOOST" caption --model "$M" --shards "$T/s/test" --batch 4
cp "$T/last.out" "$T/c1.tsv"
check "caption: 50 lines" test "$(wc -l <"$T/c1.tsv")" -eq 50
check "caption: a progress line with an ETA" grep -qE '^caption: 50 of 50 images  [0-9.]+ img/s  ETA ' "$T/last.err"
for np in 2 3; do
	run_ok "caption, $np ranks" $MPIEXEC -np $np --oversubscribe "$NBOOST" caption --model "$M" --shards "$T/s/test" --batch 4
	check "caption: $np ranks print the same bytes as 1" cmp "$T/c1.tsv" "$T/last.out"
	share=$(( 50 / np ))
	check "caption: rank 0 did its share of $np ($(grep '^caption:' "$T/last.err" | tail -1))" \
		grep -qE "^caption: $share of $share images \\(rank 0's share; 50 over $np ranks\\)" "$T/last.err"
done

# ---- eval --model ----
run_ok "eval, 1 process" "$NBOOST" eval --model "$M" --shards "$T/s/test" --json --out-captions "$T/e1.tsv" --batch 4
cp "$T/last.out" "$T/e1.json"
for np in 2 3; do
	run_ok "eval, $np ranks" $MPIEXEC -np $np --oversubscribe "$NBOOST" eval --model "$M" --shards "$T/s/test" --json \
		--out-captions "$T/e$np.tsv" --batch 4
	check "eval: $np ranks print the same JSON as 1" cmp "$T/e1.json" "$T/last.out"
	check "eval: $np ranks write the same captions as 1" cmp "$T/e1.tsv" "$T/e$np.tsv"
	check "eval: $np ranks, one report on stderr" test "$(grep -cE '^CHAIR_i +[0-9]' "$T/last.err")" -eq 1
done
run_ok "eval --corpus --pope, 2 ranks" $MPIEXEC -np 2 --oversubscribe "$NBOOST" eval --model "$M" --corpus "$T/s" --pope --json
cp "$T/last.out" "$T/p2.json"
run_ok "eval --corpus --pope, 1 process" "$NBOOST" eval --model "$M" --corpus "$T/s" --pope --json
check "eval --corpus --pope: 2 ranks equal 1" cmp "$T/p2.json" "$T/last.out"
# a bad checkpoint fails on every rank with one message
"$NBOOST" synth --out "$T/big" --size 48 --labeled 0 --unlabeled 0 --test 4 -q
expect_fail 1 "images are 48x48 but the model takes 16x16" timeout 60 $MPIEXEC -np 2 --oversubscribe "$NBOOST" eval --model "$M" --shards "$T/big/test"
finish
