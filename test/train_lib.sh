# Helpers shared by the train_*.sh tests (sourced, not run).
set -u
: "${NBOOST:?run through ctest}" "${MPIEXEC:?}" "${NB_BUILD:?}"
PY=/usr/bin/python3
MKDATA="$NB_BUILD/test/test_trainer_mkdata"
# One BLAS/OpenMP thread per rank: the machine has 2 cores for everything.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
T=$(mktemp -d "${TMPDIR:-/tmp}/nboost-$(basename "$0" .sh)-XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
# expect_fail CODE NEEDLE CMD...: exits CODE with NEEDLE in stderr
expect_fail() {
	local code=$1 needle=$2; shift 2
	"$@" >"$T/out.txt" 2>"$T/err.txt"
	local rc=$?
	if [ "$rc" -ne "$code" ]; then bad "'$*' exited $rc, expected $code: $(head -c 400 "$T/err.txt")"; return; fi
	if ! grep -qF -- "$needle" "$T/err.txt"; then bad "'$*': stderr lacks '$needle': $(head -c 400 "$T/err.txt")"; return; fi
	ok
}
# run_ok WHAT CMD...: exits 0 (stderr kept in $T/last.err)
run_ok() {
	local what=$1; shift
	"$@" >"$T/last.out" 2>"$T/last.err"
	local rc=$?
	if [ "$rc" -eq 0 ]; then ok; else bad "$what: exit $rc: $(tail -c 600 "$T/last.err")"; fi
	return $rc
}
finish() {
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit $?
}
# losses STEP-LIMIT FILE: "step loss" lines of a metrics.jsonl
losses() { $PY -c 'import json,sys
for l in open(sys.argv[1]): d=json.loads(l); print(d["step"], repr(d["loss"]))' "$1"; }
digest() { $PY -c 'import h5py,sys; f=h5py.File(sys.argv[1],"r"); print(f.attrs["params_digest"].decode(), int(f.attrs["step"]))' "$1"; }
