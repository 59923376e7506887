# Shared by the test scripts (sourced, not run): a scratch directory removed
# on exit, pass/fail counting, the check helpers, and the ASan preload that
# Python and the HDF5 tools need under a sanitizer build. A script ends with
# `finish`, which prints "NAME: N passed, N failed" and sets the exit status.
set -u
NB_TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/nboost-$NB_TEST_NAME-XXXXXX")
NB_AT_EXIT=()
# at_exit CMD: run CMD (a shell text) at exit, before $T is removed; e.g. to
# stop a server by its PID.
at_exit() { NB_AT_EXIT+=("$1"); }
nb_on_exit() {
	local h
	for h in "${NB_AT_EXIT[@]}"; do eval "$h"; done
	rm -rf "$T"
}
trap nb_on_exit EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# check WHAT CMD...: CMD exits 0
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
# check_sh WHAT TEXT: the shell text TEXT (eval'd) exits 0
check_sh() { if eval "$2"; then ok; else bad "$1"; fi; }
# expect_fail CODE NEEDLE CMD...: exits CODE with NEEDLE in stderr
expect_fail() {
	local code=$1 needle=$2; shift 2
	"$@" >"$T/out.txt" 2>"$T/err.txt"
	local rc=$?
	if [ "$rc" -ne "$code" ]; then bad "'$*' exited $rc, expected $code: $(head -c 400 "$T/err.txt")"; return; fi
	if ! grep -qF -- "$needle" "$T/err.txt"; then bad "'$*': stderr lacks '$needle': $(head -c 400 "$T/err.txt")"; return; fi
	ok
}
# run_ok WHAT CMD...: exits 0 (stdout in $T/last.out, stderr in $T/last.err)
run_ok() {
	local what=$1; shift
	"$@" >"$T/last.out" 2>"$T/last.err"
	local rc=$?
	if [ "$rc" -eq 0 ]; then ok; else bad "$what: exit $rc: $(tail -c 600 "$T/last.err")"; fi
	return $rc
}
finish() {
	echo "$NB_TEST_NAME: $pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit $?
}
# The ASan runtime when the zstd plugin in DIR (default $HDF5_PLUGIN_PATH) was
# built with NB_SANITIZE=ON, else nothing. Such a plugin only loads into a
# process whose first library is that runtime, so tools get it in LD_PRELOAD.
asan_runtime() {
	ldd "${1:-${HDF5_PLUGIN_PATH:-/nonexistent}}/libh5zstd.so" 2>/dev/null | awk '/libasan/ {print $3}'
}
# PY: the Python for h5py and PIL, used unquoted ($PY), preloading ASan
# where needed.
PY=/usr/bin/python3
if [ -n "$(asan_runtime)" ]; then
	PY="env LD_PRELOAD=$(asan_runtime) ASAN_OPTIONS=detect_leaks=0 /usr/bin/python3"
fi

# same_h5 A B: two HDF5 files hold the same data: byte-identical, or equal
# h5dump text without the /provenance group, which names the command line,
# the host and the time (schemas/provenance.md).
same_h5() {
	cmp -s "$1" "$2" && return 0
	local strip='/^ *GROUP "provenance" \{/ { skip = 1; ind = index($0, "G"); next }
		skip && /^ *\}/ && index($0, "}") == ind { skip = 0; next }
		!skip'
	h5dump "$1" 2>&1 | tail -n +2 | awk "$strip" >"$T/same_h5.1" &&
		h5dump "$2" 2>&1 | tail -n +2 | awk "$strip" >"$T/same_h5.2" && cmp -s "$T/same_h5.1" "$T/same_h5.2"
}
