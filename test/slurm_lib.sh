# Sourced (after lib.sh) by the tests that run job scripts under a real
# one-node Slurm. `slurm_start` starts a private cluster (scripts/slurm) in
# $T/slurm, exports SLURM_CONF, and registers an exit hook that stops it by the
# PIDs in its pid files before $T is removed. A cluster that cannot start
# FAILS the test (exit 1, never the skip code): Slurm is part of the test
# environment (scripts/setup installs it). See docs/slurm.md.
#
#   slurm_start                      start (or fail the test)
#   slurm_submit_wait SCRIPT ARGS... sbatch --wait --parsable SCRIPT ARGS with a
#                                    timeout; sets SLURM_LAST_JOB; returns the
#                                    job's exit code and prints its output file
#                                    on failure. sbatch options: #SBATCH lines
#                                    in SCRIPT, or the array SBATCH_OPTS.
# Tunables: NB_SLURM_JOB_TIMEOUT (s, default 120) for slurm_submit_wait.
NB_SRC=${NB_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
SLURM_DIR=$T/slurm
SLURM_LAST_JOB=
SBATCH_OPTS=()

slurm_start() {
	local why=""
	if [ "$(id -u)" -ne 0 ]; then
		why="needs root (the test cluster runs SlurmUser=root and munged as user munge)"
	elif ! command -v sbatch >/dev/null 2>&1 || [ ! -x /usr/sbin/slurmctld ] || [ ! -x /usr/sbin/munged ]; then
		why="Slurm is not installed: run scripts/setup (packages slurm-wlm munge)"
	fi
	if [ -n "$why" ]; then
		echo "FAIL: $NB_TEST_NAME: cannot start Slurm: $why" >&2
		exit 1
	fi
	# munged runs as user munge and must reach $SLURM_DIR/munge: the scratch
	# dir is 0700 from mktemp, and munged wants a+x on every directory above
	# its socket.
	chmod a+x "$T"
	# The hook first: a half-started cluster is stopped too.
	at_exit "bash '$NB_SRC/scripts/slurm' stop '$SLURM_DIR' 2>&1 | sed 's/^/  /' >&2"
	local t0 out
	t0=$(date +%s.%N)
	if ! out=$(bash "$NB_SRC/scripts/slurm" start "$SLURM_DIR" 2>"$T/slurm-start.err"); then
		echo "FAIL: $NB_TEST_NAME: cannot start Slurm (scripts/slurm start $SLURM_DIR):" >&2
		sed 's/^/  /' "$T/slurm-start.err" >&2
		exit 1
	fi
	eval "$out"
	[ "${SLURM_CONF:-}" = "$SLURM_DIR/slurm.conf" ] || { echo "FAIL: scripts/slurm start printed '$out'" >&2; exit 1; }
	export SLURM_CONF
	sed 's/^/  /' "$T/slurm-start.err" >&2
	SLURM_START_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
}

# slurm_job_field JOBID FIELD: FIELD=value from `scontrol show job` (finished
# jobs stay visible for MinJobAge = 8 s).
slurm_job_field() {
	scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

slurm_submit_wait() {
	local script=$1 rc out_file state
	local tmo=${NB_SLURM_JOB_TIMEOUT:-120}
	: >"$T/sbatch.id"
	# stdbuf: --parsable prints the id at submission; unbuffered it reaches
	# the file even when the timeout kills sbatch.
	timeout "$tmo" stdbuf -oL sbatch --wait --parsable "${SBATCH_OPTS[@]}" "$@" \
		>"$T/sbatch.id" 2>"$T/sbatch.err"
	rc=$?
	SLURM_LAST_JOB=$(cut -d';' -f1 <"$T/sbatch.id" | tr -dc 0-9)
	[ "$rc" -eq 0 ] && return 0
	if [ -z "$SLURM_LAST_JOB" ]; then
		echo "slurm_submit_wait: sbatch $script failed (exit $rc): $(cat "$T/sbatch.err")" >&2
		return "$rc"
	fi
	out_file=$(slurm_job_field "$SLURM_LAST_JOB" StdOut)
	state=$(slurm_job_field "$SLURM_LAST_JOB" JobState)
	if [ "$rc" -eq 124 ]; then
		echo "slurm_submit_wait: job $SLURM_LAST_JOB ($script) not done after $tmo s (state ${state:-?}); cancelling" >&2
		scancel "$SLURM_LAST_JOB" 2>/dev/null
	else
		echo "slurm_submit_wait: job $SLURM_LAST_JOB ($script) exited $rc (state ${state:-?}): $(tail -c 300 "$T/sbatch.err")" >&2
	fi
	if [ -n "$out_file" ] && [ -f "$out_file" ]; then
		echo "--- $out_file (last 40 lines)" >&2
		tail -n 40 "$out_file" >&2
	else
		echo "--- job output file unknown or missing ('$out_file')" >&2
	fi
	echo "--- tail of $SLURM_DIR/log/slurmd.log" >&2
	tail -n 10 "$SLURM_DIR/log/slurmd.log" >&2
	return "$rc"
}
