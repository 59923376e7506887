#!/bin/bash
# The one option parser (cli/cli_args.h), command by command: --help, and the
# same wording and exit status 2 for an unknown option, a missing value, a
# bad number, a stray or missing argument, and job-file overrides (a typo in
# a section or key is an error naming it; commands without a job file refuse
# them). None of these runs the command, so no data is needed.
set -u
: "${NBOOST:?run through ctest}"
source "$(dirname "$0")/lib.sh"

# usage_error CMD NEEDLE ARGS...: `nboost CMD ARGS` exits 2, stderr has
# "nboost CMD: NEEDLE" and the usage, stdout is empty.
usage_error() {
	local cmd=$1 needle=$2; shift 2
	"$NBOOST" "$cmd" "$@" >"$T/out.txt" 2>"$T/err.txt"
	local rc=$?
	local what="nboost $cmd $*"
	if [ "$rc" -ne 2 ]; then bad "'$what' exited $rc, expected 2: $(head -c 400 "$T/err.txt")"; return; fi
	if ! grep -qF -- "nboost $cmd: $needle" "$T/err.txt"; then
		bad "'$what': stderr lacks 'nboost $cmd: $needle': $(head -c 400 "$T/err.txt")"; return
	fi
	if ! grep -q "^usage: .*nboost $cmd" "$T/err.txt"; then bad "'$what': no usage on stderr"; return; fi
	if [ -s "$T/out.txt" ]; then bad "'$what': wrote to stdout"; return; fi
	ok
}

# Per command: arguments that satisfy everything else, an option that takes
# a value, and an integer option.
declare -A BASE VALUE_OPT INT_OPT
BASE[synth]="--out $T/never"
BASE[ingest]="list.tsv --out $T/never"
BASE[train]="jobs/tiny.conf"
BASE[eval]="--shards $T/never --write-gt $T/never.tsv"
BASE[caption]="--model $T/never.h5 img.png"
BASE[inspect]="file.h5"
BASE[export]="src --format jsonl --out $T/never.jsonl"
VALUE_OPT=([synth]=--png [ingest]=--resize [train]=--out [eval]=--captions [caption]=--shards [inspect]=--n
	[export]=--format)
INT_OPT=([synth]=--shard-size [ingest]=--concurrency [train]=--steps [eval]=--batch [caption]=--batch [inspect]=--n
	[export]=--round)

for cmd in synth ingest train eval caption inspect export; do
	read -r -a base <<<"${BASE[$cmd]}"
	# --help and -h: usage on stdout, exit 0, every option of the table listed
	"$NBOOST" "$cmd" --help >"$T/help.txt" 2>"$T/help.err"
	check "$cmd --help exits 0" test $? -eq 0
	check "$cmd --help prints the usage" grep -q "^usage: nboost $cmd" "$T/help.txt"
	check "$cmd --help lists -h, --help" grep -qF -- "-h, --help" "$T/help.txt"
	check "$cmd --help lists ${INT_OPT[$cmd]}" grep -qF -- "${INT_OPT[$cmd]} " "$T/help.txt"
	check "$cmd --help: nothing on stderr" test ! -s "$T/help.err"
	"$NBOOST" "$cmd" -h >"$T/h.txt" 2>&1
	check "$cmd -h exits 0 with the same text" cmp -s "$T/h.txt" "$T/help.txt"
	# --help wins over everything else on the line
	"$NBOOST" "$cmd" "${base[@]}" --help >/dev/null 2>&1
	check "$cmd ARGS --help exits 0" test $? -eq 0

	usage_error "$cmd" "unknown option '--bogus'" "${base[@]}" --bogus
	usage_error "$cmd" "unknown option '--bogus'" "${base[@]}" --bogus=1
	usage_error "$cmd" "unknown option '-x'" "${base[@]}" -x
	usage_error "$cmd" "option '${VALUE_OPT[$cmd]}' needs a value" "${base[@]}" "${VALUE_OPT[$cmd]}"
	usage_error "$cmd" "option '--help' takes no value" "${base[@]}" --help=yes
	usage_error "$cmd" "${INT_OPT[$cmd]}: 'x' is not" "${base[@]}" "${INT_OPT[$cmd]}" x
	usage_error "$cmd" "${INT_OPT[$cmd]}: '12x' is not" "${base[@]}" "${INT_OPT[$cmd]}=12x"
	usage_error "$cmd" "${INT_OPT[$cmd]}: 99999999999 is out of range [" "${base[@]}" "${INT_OPT[$cmd]}" 99999999999
done

# run has no number option; the rest as above
"$NBOOST" run --help >"$T/help.txt" 2>"$T/help.err"
check "run --help exits 0" test $? -eq 0
check "run --help prints the usage" grep -q "^usage: mpirun -np N nboost run" "$T/help.txt"
check "run --help lists --section.key=V" grep -qF -- "--section.key=V" "$T/help.txt"
usage_error run "unknown option '--bogus'" jobs/run-tiny.conf --bogus
usage_error run "option '--out' needs a value" jobs/run-tiny.conf --out
usage_error run "missing JOB" --out "$T/never"
usage_error run "unexpected argument 'jobs/tiny.conf'" jobs/run-tiny.conf jobs/tiny.conf
usage_error run "command line: unknown key 'nosie.sigma' (did you mean 'noise.sigma'?)" \
	jobs/run-tiny.conf --nosie.sigma=0

# ---- positional arguments ----
usage_error synth "unexpected argument 'extra'" --out "$T/never" extra
usage_error eval "unexpected argument 'extra'" --shards "$T/never" --write-gt "$T/g.tsv" extra
usage_error ingest "unexpected argument 'b.tsv'" a.tsv b.tsv --out "$T/never"
usage_error train "unexpected argument 'jobs/demo.conf'" jobs/tiny.conf jobs/demo.conf
usage_error inspect "unexpected argument 'b.h5'" a.h5 b.h5
usage_error ingest "missing LIST" --out "$T/never"
usage_error train "missing JOB" --labeled "$T/never"
usage_error inspect "missing FILE" --json
usage_error caption "missing IMAGE" --model "$T/never.h5"
# "--" ends the options: what follows is an argument, even with a dash
usage_error inspect "unexpected argument '--json'" a.h5 -- --json

# ---- required options ----
usage_error synth "missing --out DIR" --labeled 5
usage_error ingest "missing --out DIR" list.tsv
usage_error eval "missing --shards DIR" --write-gt "$T/g.tsv"
usage_error caption "missing --model CKPT" img.png

# ---- ranges and kinds ----
usage_error synth "--size: 8 is out of range [16, 512]" --out "$T/never" --size 8
usage_error synth "--labeled: '-5' is not a non-negative integer" --out "$T/never" --labeled -5
usage_error ingest "--timeout: 'soon' is not a number" list.tsv --out "$T/never" --timeout soon
usage_error ingest "--max-bytes: '2X' is not a size" list.tsv --out "$T/never" --max-bytes 2X
usage_error ingest "--resize: 'stretch' is not center_crop or pad" list.tsv --out "$T/never" --resize stretch
usage_error train "--stop-at: -1 is out of range [0, 100000000]" jobs/tiny.conf --stop-at -1
usage_error synth "option '--force' takes no value" --out "$T/never" --force=yes
usage_error synth "--out: the value is empty" --out ""
check "no output directory made by usage errors" test ! -e "$T/never"

# ---- job-file overrides ----
usage_error train "command line: unknown key 'nosie.sigma' (did you mean 'noise.sigma'?)" \
	jobs/tiny.conf --nosie.sigma=0
usage_error train "command line: unknown key 'train.stpes' (did you mean 'train.steps'?)" \
	jobs/tiny.conf --train.stpes=5
usage_error train "command line: unknown key 'nosie.amount': no section [nosie] (did you mean [noise]?)" \
	jobs/tiny.conf --nosie.amount=0
usage_error train "command line: unknown key 'zzz.sigma': no section [zzz]" jobs/tiny.conf --zzz.sigma=0
usage_error train "option '--train.steps' needs a value (--section.key=value)" jobs/tiny.conf --train.steps
usage_error train "command line: invalid key 'train.a.b'" jobs/tiny.conf --train.a.b=1
for cmd in synth ingest eval caption inspect export; do
	read -r -a base <<<"${BASE[$cmd]}"
	usage_error "$cmd" "unknown option '--noise.sigma': nboost $cmd reads no job file" "${base[@]}" --noise.sigma=0
done
# a value that looks like an override is still the option's value
usage_error inspect "--n: '--a.b=1' is not an integer" file.h5 --n --a.b=1

# the same typos in a job file: exit 1, naming the file and line
printf '[nosie]\nsigma = 0\n' >"$T/nosie.conf"
expect_fail 1 "nosie.conf:2: unknown key 'nosie.sigma' (did you mean 'noise.sigma'?)" \
	"$NBOOST" train "$T/nosie.conf" --labeled "$T/never" --out "$T/never"
printf '[nosie]\namount = 0\n' >"$T/amount.conf"
expect_fail 1 "amount.conf:2: unknown key 'nosie.amount': no section [nosie] (did you mean [noise]?)" \
	"$NBOOST" train "$T/amount.conf" --labeled "$T/never" --out "$T/never"

# --version: nboost's and every command's, the same text on stdout, exit 0:
# the version, the commit baked in at build time and the library versions.
"$NBOOST" --version >"$T/version.txt" 2>&1
check "nboost --version exits 0" test $? -eq 0
for field in nboost commit blas hdf5 mpi libcurl zstd; do
	check "nboost --version prints $field" grep -qE "^$field +[^ ]" "$T/version.txt"
done
check "the commit is a git commit or 'unknown'" grep -qE '^commit +([0-9a-f]{40}(-dirty)?|unknown)$' "$T/version.txt"
for cmd in synth ingest train run eval attn caption inspect export; do
	"$NBOOST" "$cmd" --version >"$T/cv.txt" 2>&1
	check "nboost $cmd --version exits 0 and prints what nboost --version does" \
		bash -c "[ $? -eq 0 ] && cmp -s '$T/cv.txt' '$T/version.txt'"
	check "nboost $cmd --help lists --version" bash -c "'$NBOOST' $cmd --help | grep -q -- '--version'"
done
finish
