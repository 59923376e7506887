#!/bin/bash
# The master's dispatch rate against the number of teacher ranks: runs
# bench_scheduler (null teachers, the real request/unit/done protocol, see
# bench/bench_scheduler.c) under mpirun --oversubscribe for T = TMIN..TMAX
# teachers and prints the curve: units/s with the pipeline's run_wait, with
# the local copy of run_wait (sleep-only as before the spin phase, or
# NB_BENCH_SPIN_US of spin), and with MPI's blocking probe (the baseline
# measured in the same run), each the median of REPS runs.
#
#   bash bench/scheduler.sh [BUILD_DIR]   (env: UNITS=100000 REPS=3 IN_FLIGHT=2
#                                          TMIN=2 TMAX=8 NB_BENCH_SPIN_US=0)
# Last line: JSON.
set -eu
BUILD=${1:-${NB_BUILD:-build}}
BENCH=$BUILD/bench/bench_scheduler
UNITS=${UNITS:-100000}
REPS=${REPS:-3}
IN_FLIGHT=${IN_FLIGHT:-2}
TMIN=${TMIN:-2}
TMAX=${TMAX:-8}
export NB_BENCH_SPIN_US=${NB_BENCH_SPIN_US:-0}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm=isolated
MPIEXEC=${MPIEXEC:-mpirun}
[ -x "$BENCH" ] || { echo "scheduler.sh: no $BENCH (build first)" >&2; exit 1; }
OUT=$(mktemp "${TMPDIR:-/tmp}/nb-bench-sched.XXXXXX")
trap 'rm -f "$OUT" "$OUT.one"' EXIT
echo "cores: $(nproc); load: $(cut -d' ' -f1-3 /proc/loadavg); $UNITS units, in_flight $IN_FLIGHT, median of $REPS"
for T in $(seq "$TMIN" "$TMAX"); do
	timeout 900 "$MPIEXEC" -np $((1 + T)) --oversubscribe -x NB_BENCH_SPIN_US \
		"$BENCH" "$UNITS" "$REPS" "$IN_FLIGHT" >"$OUT.one"
	grep -v '^{' "$OUT.one"
	grep '^{' "$OUT.one" >>"$OUT"
done
/usr/bin/python3 - "$OUT" "$(cut -d' ' -f1 /proc/loadavg)" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(f"{'T':>3} {'run_wait u/s':>13} {'local u/s':>11} {'probe u/s':>11} {'rw/local':>9} {'rw/probe':>9}"
      f" {'master cores':>13} {'teacher cores':>14} {'idle CPU %':>10}")
for r in rows:
    print(f"{r['teachers']:>3} {r['run_wait']['units_per_s']:>13.0f} {r['local']['units_per_s']:>11.0f}"
          f" {r['probe']['units_per_s']:>11.0f} {r['ratio_run_wait_to_local']:>9.2f} {r['ratio_run_wait_to_probe']:>9.2f}"
          f" {r['run_wait']['master_cores']:>13.2f} {r['run_wait']['teacher_cores']:>14.2f} {r['idle_cpu_pct_max']:>10.2f}")
curve = {str(r["teachers"]): r["run_wait"]["units_per_s"] for r in rows}
print(json.dumps({"bench": "scheduler_curve", "local_spin_us": rows[0]["local_spin_us"] if rows else None,
                  "load_after": float(sys.argv[2]), "run_wait_units_per_s": curve,
                  "local_units_per_s": {str(r["teachers"]): r["local"]["units_per_s"] for r in rows},
                  "probe_units_per_s": {str(r["teachers"]): r["probe"]["units_per_s"] for r in rows},
                  "min_run_wait_units_per_s": min(curve.values()) if curve else None}))
EOF
