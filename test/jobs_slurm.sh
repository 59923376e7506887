#!/bin/bash
# jobs/train.sbatch, jobs/caption.sbatch and jobs/ingest.sbatch on the
# one-node Slurm of the tests (scripts/slurm, test/slurm_lib.sh):
#   1. train.sbatch on 2 tasks: USR1 to the batch shell mid-run stops the
#      ranks (exit 75), the job requeues itself, the rerun (--resume=auto)
#      finishes with the digest of an uninterrupted 2-rank run;
#   2. caption.sbatch on 2 tasks writes the bytes of one process;
#   3. ingest.sbatch on 2 tasks ingests a file:// list, and a second
#      submission on the same output skips the complete shards.
set -u
: "${NBOOST:?run through ctest}" "${HDF5_PLUGIN_PATH:?}" "${MPIEXEC:?}"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/slurm_lib.sh"
cd "$NB_SRC"
digest() { $PY -c 'import h5py,sys; f=h5py.File(sys.argv[1],"r"); print(f.attrs["params_digest"].decode(), int(f.attrs["step"]))' "$1"; }

"$NBOOST" synth --out "$T/d" --png "$T/png" --size 16 --labeled 64 --unlabeled 0 --test 30 --shard-size 16 -q ||
	{ echo "cannot synth"; exit 1; }
TR=(jobs/tiny.conf --labeled "$T/d/labeled" --steps 4000 --train.checkpoint_every=0)
run_ok "reference: 2 ranks under mpirun" timeout 300 "$MPIEXEC" -np 2 --oversubscribe "$NBOOST" train "${TR[@]}" --out "$T/ref"

slurm_start
export NBOOST

# ---- 1. train.sbatch: stop, requeue, resume ----
SBATCH_OPTS=(--ntasks=2 --overcommit --output="$T/train-%j.out")
NB_SLURM_JOB_TIMEOUT=300 slurm_submit_wait jobs/train.sbatch "${TR[0]}" "$T/t" "${TR[@]:1}" >/dev/null 2>"$T/wait.err" &
waiter=$!
for _ in $(seq 1 600); do [ -s "$T/t/metrics.jsonl" ] && break; sleep 0.1; done
jid=$(squeue -h -o %i -n nboost-train | head -n 1)
check "the training job is running ($jid)" test -n "$jid"
if [ -n "$jid" ]; then
	check "scancel --signal=USR1 --batch $jid" scancel --signal=USR1 --batch "$jid"
	wait "$waiter"
	rc=$?
	out="$T/train-$jid.out"
	check "sbatch --wait followed the requeue to exit 0 ($(cat "$T/wait.err"))" test "$rc" -eq 0
	check "the step exited 75 and the job requeued" grep -q '^train.sbatch: the training exited 75 (stopped, resumable); requeueing$' "$out"
	check "the first run started afresh" grep -q 'no checkpoint yet, starting' "$out"
	check "the requeued run resumed" grep -q 'a checkpoint exists, resuming' "$out"
	check "the second run was a restart" grep -q '^train.sbatch: job .* restart 1:' "$out"
	check "the requeued training equals an uninterrupted one" test "$(digest "$T/t/checkpoint.h5")" = "$(digest "$T/ref/checkpoint.h5")"
else
	kill "$waiter" 2>/dev/null
fi

# ---- 2. caption.sbatch: 2 tasks, one process's bytes ----
run_ok "caption, 1 process" "$NBOOST" caption --model "$T/ref/checkpoint.h5" --shards "$T/d/test"
cp "$T/last.out" "$T/c1.tsv"
SBATCH_OPTS=(--ntasks=2 --overcommit --output="$T/caption-%j.out")
slurm_submit_wait jobs/caption.sbatch "$T/ref/checkpoint.h5" "$T/d/test" "$T/c2.tsv"
check "caption.sbatch exits 0" test $? -eq 0
check "caption.sbatch: the same bytes as 1 process" cmp "$T/c1.tsv" "$T/c2.tsv"
check "caption.sbatch: no .part left" test ! -e "$T/c2.tsv.part"

# ---- 3. ingest.sbatch: 2 tasks, then a rerun that skips ----
grep -P '^test/' "$T/png/manifest.tsv" | cut -f1 | sed "s|^|file://$T/png/|" >"$T/list.txt"
SBATCH_OPTS=(--ntasks=2 --overcommit --output="$T/ingest-%j.out")
slurm_submit_wait jobs/ingest.sbatch "$T/list.txt" "$T/web" --allow-file --shard-size 10 --size 16 -q
check "ingest.sbatch exits 0" test $? -eq 0
check "ingest.sbatch: 3 shards" test "$(ls "$T/web"/*.h5 2>/dev/null | wc -l)" -eq 3
slurm_submit_wait jobs/ingest.sbatch "$T/list.txt" "$T/web" --allow-file --shard-size 10 --size 16
check "ingest.sbatch rerun exits 0" test $? -eq 0
check "ingest.sbatch: the rerun says ingest exited 0" grep -q '^ingest.sbatch: the ingest exited 0$' "$T"/ingest-*.out
finish
