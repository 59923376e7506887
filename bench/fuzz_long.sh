#!/bin/bash
# Long fuzzing runs, outside the test suite (issue #13 asks each parser's
# target for 10 million executions without a finding). Builds the nb_fuzz
# targets with clang in $NB_FUZZ_BUILD (default build-fuzz), then runs each
# target named on the command line (default: all) until RUNS executions
# (default 10000000) or SECS seconds (default 3600), whichever comes first,
# with a persistent corpus under $OUT (default /tmp/nb-fuzz-long/<target>).
# Prints one line per target: executions, seconds, execs/s, corpus size,
# and "clean" or the crashing input's path; the last line is JSON.
#
#   bash bench/fuzz_long.sh [TARGET...]
#   env: RUNS, SECS, OUT (run two at once on two cores with separate target lists)
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${NB_FUZZ_BUILD:-$SRC/build-fuzz}
RUNS=${RUNS:-10000000}
SECS=${SECS:-3600}
OUT=${OUT:-/tmp/nb-fuzz-long}
CC_FUZZ=$(command -v clang-14 || command -v clang) || { echo "fuzz_long: no clang-14 or clang"; exit 2; }
targets=("$@")
[ ${#targets[@]} -eq 0 ] && mapfile -t targets < <(sed -n 's/^[[:space:]]*nb_fuzz(\([A-Za-z0-9_]*\).*/\1/p' "$SRC"/fuzz/*.cmake | sort -u)
cmake -S "$SRC" -B "$BUILD" -DNB_FUZZ=ON -DCMAKE_C_COMPILER="$CC_FUZZ" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1
cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}" >/dev/null || exit 1
export HDF5_PLUGIN_PATH=${HDF5_PLUGIN_PATH:-$BUILD/plugins}
json="["
for t in "${targets[@]}"; do
	bin=$(find "$BUILD" -type f -name "$t" -perm -u+x | head -1)
	mkdir -p "$OUT/$t" "$OUT/artifacts"
	t0=$(date +%s)
	"$bin" -runs="$RUNS" -max_total_time="$SECS" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$OUT/artifacts/$t-" "$OUT/$t" "$SRC/fuzz/corpus/$t" >"$OUT/$t.log" 2>&1
	rc=$?
	secs=$(($(date +%s) - t0))
	n=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$OUT/$t.log" | grep -o '[0-9]*$')
	n=${n:-0}
	verdict=clean
	[ $rc -ne 0 ] && verdict="FINDING: $(ls -t "$OUT/artifacts/$t-"* 2>/dev/null | head -1) (rc $rc, log $OUT/$t.log)"
	printf '%-22s %12s runs %6ss %8s/s corpus %5s  %s\n' "$t" "$n" "$secs" "$((n / (secs > 0 ? secs : 1)))" \
		"$(ls "$OUT/$t" | wc -l)" "$verdict"
	json+="{\"target\":\"$t\",\"runs\":$n,\"seconds\":$secs,\"clean\":$([ $rc -eq 0 ] && echo true || echo false)},"
done
echo "${json%,}]"
