#!/bin/bash
# jobs/study.sbatch on a real one-node Slurm (scripts/slurm, test/slurm_lib.sh):
# two srun tasks share the --quick study's jobs (each trained once), and the
# report is written.
set -u
: "${NBOOST:?run through ctest}" "${HDF5_PLUGIN_PATH:?}"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/slurm_lib.sh"
cd "$NB_SRC"
slurm_start
export NBOOST
SBATCH_OPTS=(--ntasks=2 --cpus-per-task=1 --overcommit --output="$T/job-%j.out")
slurm_submit_wait jobs/study.sbatch jobs/study.conf "$T/st" --quick
rc=$?
check "study.sbatch exits 0" test "$rc" -eq 0
check "the report says 4 of 4" grep -q "4 of 4 jobs done" "$T/st/results.md"
n=$(cat "$T"/st/arms/*/seed-*/job.log 2>/dev/null | grep -c '^\$ .* train ')
check "each job trained once ($n trainings)" test "$n" -eq 4
check "two processes shared the jobs" grep -q "process 1 of 2" "$T"/job-*.out
finish
