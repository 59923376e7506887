#!/bin/bash
# A real one-node Slurm (scripts/slurm, test/slurm_lib.sh) runs job scripts the
# way a cluster does:
#   1. sbatch + `srun --mpi=pmix -n 2`: nboost synth sees a world of 2 ranks
#      (SLURM_NTASKS checked by the program, "on 2 rank(s)" in its summary)
#      without the OMPI_ALLOW_RUN_AS_ROOT/OMPI_MCA_* variables that mpirun
#      needs, and writes the same corpus as a single process;
#   2. the requeue-on-signal pattern of the coming run.sbatch: USR1 sent to
#      the batch shell only (`scancel --signal=USR1 --batch`, what
#      `--signal=B:USR1@T` does at T seconds before the time limit) reaches a
#      trap, the trap passes it on to the running srun step and waits for it,
#      then calls `scontrol requeue`; the job runs again with
#      SLURM_RESTART_COUNT=1 while `sbatch --wait` keeps waiting.
# Run by ctest (env NBOOST, HDF5_PLUGIN_PATH set by test/CMakeLists.txt).
set -u
: "${NBOOST:?run through ctest}" "${HDF5_PLUGIN_PATH:?}"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/slurm_lib.sh"
t_all=$(date +%s.%N)
secs() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

slurm_start
echo "slurm start: $SLURM_START_S s"
check "sinfo shows partition debug, node idle" test "$(sinfo -h -p debug -o %T)" = idle

ARGS=(--labeled 64 --unlabeled 16 --test 16 --shard-size 32 --seed 3)

# ---- 1. synth under srun --mpi=pmix, 2 tasks, vs one process ----
run_ok "synth, one process" "$NBOOST" synth --out "$T/one" --png "$T/one-png" "${ARGS[@]}"

cat >"$T/synth.sbatch" <<EOF
#!/bin/bash
#SBATCH --job-name=nb-synth
#SBATCH --ntasks=2
#SBATCH --overcommit
#SBATCH --time=5
#SBATCH --output=$T/synth-%j.out
set -eu
# srun starts the ranks itself (PMIx): none of what mpirun needs as root.
unset OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM OMPI_MCA_plm OMPI_MCA_rmaps_base_oversubscribe
echo "batch: SLURM_NTASKS=\$SLURM_NTASKS SLURM_JOB_PARTITION=\$SLURM_JOB_PARTITION"
srun --mpi=pmix -n 2 --overcommit "\$NBOOST" synth --out "\$1" --png "\$2" ${ARGS[*]}
EOF
t0=$(date +%s.%N)
slurm_submit_wait "$T/synth.sbatch" "$T/two" "$T/two-png"
rc=$?
echo "synth job $SLURM_LAST_JOB: $(secs "$t0") s (sbatch --wait)"
check "synth job under srun exits 0" test "$rc" -eq 0
out="$T/synth-$SLURM_LAST_JOB.out"
check "batch shell saw SLURM_NTASKS=2 in partition debug" grep -q '^batch: SLURM_NTASKS=2 SLURM_JOB_PARTITION=debug$' "$out"
check "synth ran on 2 ranks: $(grep 'rank(s)' "$out")" grep -q 'on 2 rank(s)' "$out"

# h5dump text without the /provenance group, which names the command line
# and the time (schemas/provenance.md): all else must be equal.
no_provenance() {
	awk '/^ *GROUP "provenance" \{/ { skip = 1; ind = index($0, "G"); next }
	     skip && /^ *\}/ && index($0, "}") == ind { skip = 0; next }
	     !skip'
}
same_shard() {
	cmp -s "$1" "$2" && return 0
	h5dump "$1" 2>&1 | tail -n +2 | no_provenance >"$T/d1" && h5dump "$2" 2>&1 | tail -n +2 | no_provenance >"$T/d2" &&
		cmp -s "$T/d1" "$T/d2"
}
n=0
for f in "$T"/one/*/*.h5; do
	rel=${f#"$T/one/"}
	n=$((n + 1))
	check "$rel identical for 1 process and 2 srun tasks" same_shard "$f" "$T/two/$rel"
done
check "4 shards (2 labeled, 1 unlabeled, 1 test)" test "$n" -eq 4
check "same shard files" test "$(cd "$T/one" && find . -name '*.h5' | sort)" = "$(cd "$T/two" 2>/dev/null && find . -name '*.h5' | sort)"
check "manifest identical" cmp -s "$T/one-png/manifest.tsv" "$T/two-png/manifest.tsv"
check "PNGs identical" diff -rq --exclude=manifest.tsv --exclude=.parts "$T/one-png" "$T/two-png"
check "corpus.json identical" cmp -s "$T/one/corpus.json" "$T/two/corpus.json"

# ---- 2. USR1 to the batch shell -> trap -> scontrol requeue -> second run ----
cat >"$T/requeue.sbatch" <<EOF
#!/bin/bash
#SBATCH --job-name=nb-requeue
#SBATCH --ntasks=1
#SBATCH --time=5
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=$T/requeue-%j.out
n=\${SLURM_RESTART_COUNT:-0}
echo "run: SLURM_RESTART_COUNT=\$n job \$SLURM_JOB_ID"
if [ "\$n" -ge 1 ]; then
	echo "resumed"
	exit 0
fi
on_usr1() {
	echo "trap: USR1"
	kill -USR1 "\$step"
	wait "\$step"
	echo "trap: step exited \$?"
	scontrol requeue "\$SLURM_JOB_ID" && echo "trap: requeued"
	exit 0
}
trap on_usr1 USR1
# The step runs in the background and the script waits: bash runs a trap only
# between commands. srun passes the USR1 from the trap on to the task.
srun -n 1 bash -c 'trap "echo step: USR1; exit 0" USR1; echo "\$SLURM_JOB_ID" >"$T/requeue.ready"; sleep 300 & wait' &
step=\$!
wait "\$step"
echo "not signalled"
exit 3
EOF
t0=$(date +%s.%N)
slurm_submit_wait "$T/requeue.sbatch" >/dev/null 2>"$T/requeue.wait.err" &
waiter=$!
jid=""
for _ in $(seq 1 300); do
	[ -s "$T/requeue.ready" ] && { jid=$(cat "$T/requeue.ready"); break; }
	sleep 0.1
done
check "requeue job started within 30 s" test -n "$jid"
if [ -n "$jid" ]; then
	t1=$(date +%s.%N)
	check "scancel --signal=USR1 --batch $jid" scancel --signal=USR1 --batch "$jid"
	wait "$waiter"
	rc=$?
	echo "requeue job $jid: $(secs "$t0") s from submission, $(secs "$t1") s from USR1 to the end of the second run"
	check "sbatch --wait followed the job through its requeue to exit 0 ($(cat "$T/requeue.wait.err"))" test "$rc" -eq 0
	out="$T/requeue-$jid.out"
	check "first run, SLURM_RESTART_COUNT unset/0" grep -q '^run: SLURM_RESTART_COUNT=0 ' "$out"
	check "USR1 reached the trap in the batch shell" grep -q '^trap: USR1$' "$out"
	check "srun passed USR1 on to the step's task" grep -q '^step: USR1$' "$out"
	check "the step ended 0 before the requeue" grep -q '^trap: step exited 0$' "$out"
	check "scontrol requeue from inside the job succeeded" grep -q '^trap: requeued$' "$out"
	check "second run with SLURM_RESTART_COUNT=1" grep -q "^run: SLURM_RESTART_COUNT=1 job $jid\$" "$out"
	check "second run finished" grep -q '^resumed$' "$out"
	check "the first run did not run to its end" sh -c "! grep -q 'not signalled' '$out'"
	[ "$fail" -eq 0 ] || { echo "--- $out"; cat "$out"; }
else
	kill "$waiter" 2>/dev/null
fi

echo "slurm_smoke body: $(secs "$t_all") s (the stop follows in the exit hook)"
finish
