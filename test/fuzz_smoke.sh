#!/bin/bash
# Short libFuzzer run of every nb_fuzz target (fuzz/*.cmake) over its seed
# corpus fuzz/corpus/<target>/. Configures a clang build with -DNB_FUZZ=ON in
# $NB_FUZZ_BUILD (default <source>/build-fuzz), builds the targets, runs each
# for $NB_FUZZ_SECONDS (default 12) and fails on any crash, leak, sanitizer
# report or timeout. Exits 77 (skip) only when no clang is installed.
set -u
SRC=${NB_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
BUILD=${NB_FUZZ_BUILD:-$SRC/build-fuzz}
SECS=${NB_FUZZ_SECONDS:-12}
CC_FUZZ=
for c in clang-14 clang; do
	if command -v "$c" > /dev/null; then CC_FUZZ=$(command -v "$c"); break; fi
done
if [ -z "$CC_FUZZ" ]; then
	echo "fuzz_smoke: SKIP: no clang-14 or clang on PATH (apt-get install clang-14)"
	exit 77
fi
pass=0
fail=0
targets=$(sed -n 's/^[[:space:]]*nb_fuzz(\([A-Za-z0-9_]*\).*/\1/p' "$SRC"/fuzz/*.cmake | sort -u)
if [ -z "$targets" ]; then
	echo "FAIL: no nb_fuzz targets in $SRC/fuzz/*.cmake"
	echo "0 passed, 1 failed"
	exit 1
fi
log=$(mktemp -d "${TMPDIR:-/tmp}/nb-fuzz.XXXXXX")
trap 'rm -rf "$log"' EXIT
if ! cmake -S "$SRC" -B "$BUILD" -DNB_FUZZ=ON -DCMAKE_C_COMPILER="$CC_FUZZ" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	> "$log/configure" 2>&1; then
	tail -30 "$log/configure"
	echo "FAIL: configuring $BUILD"
	echo "0 passed, 1 failed"
	exit 1
fi
for t in $targets; do
	if ! cmake --build "$BUILD" -j2 --target "$t" > "$log/build-$t" 2>&1; then
		tail -30 "$log/build-$t"
		echo "FAIL: building $t"
		fail=$((fail + 1))
		continue
	fi
	bin=$(find "$BUILD" -type f -name "$t" -perm -u+x | head -1)
	seeds="$SRC/fuzz/corpus/$t"
	if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds" 2>/dev/null)" ]; then
		echo "FAIL: $t has no seed corpus in $seeds"
		fail=$((fail + 1))
		continue
	fi
	# New inputs go to a scratch corpus, never into the repository.
	mkdir -p "$log/corpus-$t"
	# A fixed seed: every run replays the same sequence of inputs (a shorter
	# run a prefix of it), so a failure reproduces. The targets that parse
	# whole HDF5 files run a fixed number of inputs: libhdf5 1.10.8 itself
	# has memory errors on some corrupt files (docs/guarantees.md), which a
	# longer or faster run may reach; the long runs are bench/fuzz_long.sh.
	limit=(-max_total_time="$SECS")
	case "$t" in
	fuzz_checkpoint | fuzz_shard_reader) limit+=(-runs="${NB_FUZZ_HDF5_RUNS:-300}") ;;
	esac
	if "$bin" "${limit[@]}" -seed=1 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$log/$t-" "$log/corpus-$t" "$seeds" > "$log/run-$t" 2>&1; then
		echo "fuzz_smoke: $t: ok ($(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log/run-$t" | grep -o '[0-9]*$') runs)"
		pass=$((pass + 1))
	else
		tail -40 "$log/run-$t"
		for a in "$log/$t-"*; do
			[ -f "$a" ] && { echo "crashing input ($a), base64:"; head -c 4096 "$a" | base64; }
		done
		echo "FAIL: $t"
		fail=$((fail + 1))
	fi
done
echo "fuzz_smoke: $pass passed, $fail failed"
[ $fail -eq 0 ]
