#!/bin/bash
# jobs/run.sbatch on a real one-node Slurm (scripts/slurm, test/slurm_lib.sh):
#   1. sbatch --wait runs the tiny pipeline under srun --mpi=pmix on 4 tasks
#      to completion, with the same pseudo-labels as mpirun;
#   2. USR1 to the batch shell (what --signal=B:USR1@120 sends) during the
#      students' training: the trap passes it to the ranks, the run stops
#      cleanly (exit 75, journal not done), the job requeues itself, and the
#      second run resumes and finishes with the same pseudo-labels.
# Run by ctest (NBOOST, MPIEXEC, HDF5_PLUGIN_PATH from test/CMakeLists.txt).
set -u
: "${NBOOST:?run through ctest}" "${HDF5_PLUGIN_PATH:?}" "${MPIEXEC:?}"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/slurm_lib.sh"
cd "$NB_SRC"

"$NBOOST" synth --out "$T/d" --labeled 128 --unlabeled 96 --test 16 --size 16 --shard-size 48 -q
JOB=(jobs/run-tiny.conf --corpus.labeled="$T/d/labeled" --corpus.unlabeled="$T/d/unlabeled")

# The pseudo-label set of one or more run directories: ids, tokens and
# scores of every shard, by round and unit.
pseudo_digest() {
	$PY - "$@" <<'PY'
import glob, hashlib, sys, h5py
h = hashlib.sha256()
paths = [p for d in sys.argv[1:] for p in glob.glob(d + "/round-*/pseudo/unit-*.h5")]
for key, p in sorted((tuple(p.rsplit("/", 3)[-3::2]), p) for p in paths):
    with h5py.File(p, "r") as f:
        h.update("/".join(key).encode())
        for k in ("ids", "tokens", "offsets", "score"):
            h.update(f[k][...].tobytes())
print(h.hexdigest())
PY
}

# The reference: the same job under mpirun.
run_ok "reference run under mpirun" timeout 120 "$MPIEXEC" -np 4 "$NBOOST" run "${JOB[@]}" --out "$T/ref"
ref=$(pseudo_digest "$T/ref")

slurm_start
export NBOOST
SBATCH_OPTS=(--ntasks=4 --overcommit --output="$T/job-%j.out")

# ---- 1. to completion ----
slurm_submit_wait jobs/run.sbatch "${JOB[0]}" "$T/r1" "${JOB[@]:1}"
rc=$?
check "run.sbatch exits 0" test "$rc" -eq 0
check "the journal ends with done" sh -c "tail -n 1 '$T/r1/journal.jsonl' | grep -q '\"ev\":\"done\"'"
check "the student checkpoint exists" test -s "$T/r1/round-0/student.h5"
check "pseudo-labels under srun equal mpirun's" test "$(pseudo_digest "$T/r1")" = "$ref"

# ---- 2. USR1 during the students' training: stop, requeue, resume ----
# Long enough training that the signal lands in it (the tiny model takes
# a few ms per step), with the reference run's teacher, so that the labels
# are comparable.
SLOW=(--train.steps=4000 --train.checkpoint_every=500 --teacher.model="$T/ref/round-0/teacher.h5")
slurm_submit_wait jobs/run.sbatch "${JOB[0]}" "$T/r2" "${JOB[@]:1}" "${SLOW[@]}" >/dev/null 2>"$T/wait.err" &
waiter=$!
jid="" ready=""
for _ in $(seq 1 600); do
	# Labeling of round 0 is done when the round summary exists; the
	# students are training then.
	if [ -s "$T/r2/round-0/labels.json" ] || grep -qs '"ev":"checkpoint","round":0,"step":500' "$T/r2/journal.jsonl"; then
		ready=1
		break
	fi
	sleep 0.1
done
jid=$(squeue -h -o %i -n nboost-run | head -n 1)
check "the job reached the students' training within 60 s" test -n "$ready"
check "the job is running (squeue)" test -n "$jid"
if [ -n "$jid" ] && [ -n "$ready" ]; then
	check "scancel --signal=USR1 --batch $jid" scancel --signal=USR1 --batch "$jid"
	wait "$waiter"
	rc=$?
	out="$T/job-$jid.out"
	check "sbatch --wait followed the requeue to exit 0 ($(cat "$T/wait.err"))" test "$rc" -eq 0
	check "the trap ran and requeued" grep -q '^run.sbatch: the run exited 75 (stopped, resumable); requeueing$' "$out"
	check "the master stopped on the signal" grep -q 'stopping (in-flight units finish' "$out"
	check "the second run was a restart" grep -q '^run.sbatch: job .* restart 1:' "$out"
	check "the journal shows a resume" grep -q '"ev":"resume"' "$T/r2/journal.jsonl"
	check "the resumed run finished" sh -c "tail -n 1 '$T/r2/journal.jsonl' | grep -q '\"ev\":\"done\"'"
	check "pseudo-labels after the requeue equal mpirun's" test "$(pseudo_digest "$T/r2")" = "$ref"
else
	kill "$waiter" 2>/dev/null
fi

# ---- 3. labeling only, as a job array of 2 slices, then the merge job ----
TEACH=--teacher.model="$T/ref/round-0/teacher.h5"
SBATCH_OPTS=(--ntasks=3 --overcommit --output="$T/label-%A_%a.out" --array=0-1)
arr=$(sbatch --parsable "${SBATCH_OPTS[@]}" jobs/label-array.sbatch "${JOB[0]}" "$T/lab" "${JOB[@]:1}" "$TEACH")
arr=${arr%%;*}
SBATCH_OPTS=(--ntasks=1 --output="$T/merge-%j.out" --dependency=afterok:"$arr")
slurm_submit_wait jobs/label-array.sbatch --merge "$T/lab"
rc=$?
check "the merge job after the array exits 0" test "$rc" -eq 0
check "each slice labeled only its units" sh -c "ls '$T/lab/slice-0/round-0/pseudo' | grep -qv '[13579].h5' && ! ls '$T/lab/slice-0/round-0/pseudo' | grep -q '[13579].h5'"
check "no student in a labeling-only run" test ! -e "$T/lab/slice-0/round-0/student.h5"
check "the manifest lists every shard of both slices" \
	test "$(tail -n +2 "$T/lab/manifest.tsv" | wc -l)" -eq "$(ls "$T/lab"/slice-*/round-0/pseudo/*.h5 | wc -l)"
check "the slices together hold the pseudo-labels of the whole corpus (the mpirun run's)" \
	test "$(pseudo_digest "$T/lab/slice-0" "$T/lab/slice-1")" = "$(pseudo_digest "$T/ref")"
finish
