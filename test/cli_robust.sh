#!/bin/bash
# The command line against hostile surroundings (issue #13, docs/guarantees.md):
# a full standard output, output paths that are not regular files, control
# characters in shard sources, FIFOs as inputs, byte-order marks, a seed out
# of range and a path too long for the file system. Every command that could
# block on a FIFO runs under `timeout 20`, so a regression fails instead of
# hanging.
set -u
: "${NBOOST:?run through ctest}"
source "$(dirname "$0")/lib.sh"
TO="timeout 20"

"$NBOOST" synth --out "$T/s" --size 16 --labeled 16 --unlabeled 0 --test 20 --shard-size 30 -q ||
	{ echo "synth failed"; exit 1; }
"$NBOOST" train "$NB_SRC/jobs/tiny.conf" --labeled "$T/s/labeled" --out "$T/run" --steps 2 >/dev/null 2>&1 ||
	{ echo "train failed"; exit 1; }
CK=$T/run/checkpoint.h5
S=$T/s/test
SHARD=$(ls "$S"/*.h5 | head -1)
"$NBOOST" eval --shards "$S" --write-gt "$T/gt.tsv" || { echo "write-gt failed"; exit 1; }

# ---- 1. a failed write on standard output is an error ----
# full_fails CMD...: `CMD >/dev/full` exits non-zero and says why
full_fails() {
	"$@" >/dev/full 2>"$T/full.err"
	local rc=$?
	if [ "$rc" -eq 0 ]; then bad "'$*' >/dev/full exited 0"; return; fi
	if ! grep -qF "error writing standard output: No space left on device" "$T/full.err"; then
		bad "'$*' >/dev/full: stderr lacks the cause: $(tail -c 400 "$T/full.err")"; return
	fi
	ok
}
if [ -c /dev/full ]; then
	full_fails "$NBOOST" caption --model "$CK" --shards "$S"
	full_fails "$NBOOST" caption --model "$CK" --shards "$S" --batch 1
	full_fails "$NBOOST" inspect "$SHARD"
	full_fails "$NBOOST" inspect "$SHARD" --json
	full_fails "$NBOOST" inspect "$CK"
	full_fails "$NBOOST" eval --shards "$S" --model "$CK"
	full_fails "$NBOOST" eval --shards "$S" --captions "$T/gt.tsv" --json
	full_fails "$NBOOST" synth --out "$T/full-synth" --size 16 --labeled 2 --unlabeled 0 --test 0
	full_fails "$NBOOST" --help
	full_fails "$NBOOST" --version
	for cmd in synth ingest train run eval caption inspect export; do
		full_fails "$NBOOST" "$cmd" --help
	done
	# the same commands into a regular file still exit 0
	run_ok "caption into a file" "$NBOOST" caption --model "$CK" --shards "$S"
	[ "$(wc -l <"$T/last.out")" -eq 20 ] && ok || bad "caption printed $(wc -l <"$T/last.out") lines, not 20"
	run_ok "inspect into a file" "$NBOOST" inspect "$SHARD"
fi

# ---- 2. output paths that are not regular files are refused, untouched ----
mkfifo "$T/fifo"
echo keep >"$T/victim"
ln -s "$T/victim" "$T/link"
mkdir "$T/dir"
targets=("$T/fifo:FIFO" "$T/link:symbolic link" "$T/dir:directory")
if mknod "$T/null" c 1 3 2>/dev/null; then
	targets+=("$T/null:character device")
else
	echo "cli_robust: not allowed to mknod; the device case is skipped" >&2
fi
for tk in "${targets[@]}"; do
	target=${tk%%:*} kind=${tk#*:}
	want="cannot write '$target': it is a $kind, not a regular file"
	expect_fail 1 "$want" $TO "$NBOOST" eval --shards "$S" --write-gt "$target"
	expect_fail 1 "$want" $TO "$NBOOST" eval --shards "$S" --model "$CK" --out-captions "$target"
	expect_fail 1 "$want" $TO "$NBOOST" export "$T/s/labeled" --format jsonl --out "$target"
	expect_fail 1 "$want" $TO "$NBOOST" export "$T/s/labeled" --format manifest --out "$target"
	expect_fail 1 "$want" $TO "$NBOOST" export "$T/s/labeled" --format llava --out "$target"
done
check "the FIFO is still a FIFO" test -p "$T/fifo"
check "the link is still a link" test -L "$T/link"
check "the link's target is untouched" grep -qx keep "$T/victim"
check "the directory is still a directory" test -d "$T/dir"
[ -e "$T/null" ] && { check "the device is still a device" test -c "$T/null"; }
check_sh "no temporary file left behind" '! ls -a "$T" | grep -q "\.tmp\."'
# an existing regular file is still replaced
run_ok "write-gt over a regular file" "$NBOOST" eval --shards "$S" --write-gt "$T/victim"
check "the regular file was replaced" cmp -s "$T/victim" "$T/gt.tsv"

# ---- 3. control characters in sources are escaped in every output ----
"$NB_BUILD/test/test_shard_sources" --write "$T/odd" || { echo "test_shard_sources --write failed"; exit 1; }
ODD=$T/odd/odd.h5
run_ok "caption --shards with odd sources" "$NBOOST" caption --model "$CK" --shards "$T/odd"
cp "$T/last.out" "$T/odd-caption.tsv"
check "caption: no ESC byte on stdout" test "$(tr -dc '\033' <"$T/odd-caption.tsv" | wc -c)" -eq 0
check "caption: one line per image" test "$(wc -l <"$T/odd-caption.tsv")" -eq "$(cat "$T/odd/count")"
check "caption: three fields on every line" awk -F'\t' 'NF != 3 {exit 1}' "$T/odd-caption.tsv"
for want in '\x1b[31mred\x1b[0m' 'a\tb' 'line1\nline2' 'back\\slash' 'cr\r' 'del\x7f' 'bad\xff' 'c1\xc2\x9b' \
	'utf8-é'; do
	check "caption output holds the escaped source '$want'" grep -qF -- "$want" "$T/odd-caption.tsv"
done
# unescaping the second field gives back the sources byte for byte
$PY - "$T/odd-caption.tsv" "$T/odd/sources.bin" <<'PYEOF' && ok || bad "caption sources do not round-trip"
import re, sys
def unescape(s):
    m = {b"\\": b"\\", b"t": b"\t", b"n": b"\n", b"r": b"\r"}
    return re.sub(rb"\\(x[0-9a-f]{2}|.)", lambda g: bytes([int(g.group(1)[1:], 16)]) if g.group(1)[:1] == b"x"
                  and len(g.group(1)) == 3 else m[g.group(1)], s)
got = [unescape(l.split(b"\t")[1]) for l in open(sys.argv[1], "rb").read().split(b"\n") if l]
want = open(sys.argv[2], "rb").read().split(b"\0")[:-1]
if got != want:
    print(got, want, file=sys.stderr)
sys.exit(got != want)
PYEOF
run_ok "inspect with odd sources" "$NBOOST" inspect "$ODD" --n 100
check "inspect: no ESC byte on stdout" test "$(tr -dc '\033' <"$T/last.out" | wc -c)" -eq 0
check "inspect: the source line is escaped" grep -qF "source 'line1\nline2'" "$T/last.out"
check "inspect: one line per sample and field" \
	test "$(grep -c "^  \[[0-9]*\] id [0-9]*  source '" "$T/last.out")" -eq "$(cat "$T/odd/count")"
run_ok "inspect --json with odd sources" "$NBOOST" inspect "$ODD" --n 100 --json
check "inspect --json: no ESC byte on stdout" test "$(tr -dc '\033' <"$T/last.out" | wc -c)" -eq 0
# eval scores the odd shard's ground truth (the sources are not in its output)
run_ok "eval --write-gt on the odd shard" "$NBOOST" eval --shards "$T/odd" --write-gt "$T/odd-gt.tsv"
check "odd gt TSV: two fields per line" awk -F'\t' 'NF != 2 {exit 1}' "$T/odd-gt.tsv"
run_ok "eval scores the odd shard's TSV" "$NBOOST" eval --shards "$T/odd" --captions "$T/odd-gt.tsv"
# a TAB inside a caption field is refused; an escaped one is read
first=$(head -1 "$T/gt.tsv" | cut -f1)
printf '%s\tsmall red\tcircle\n' "$first" >"$T/tab.tsv"
expect_fail 1 "captions '$T/tab.tsv' line 1: a TAB inside the caption" "$NBOOST" eval --shards "$S" \
	--captions "$T/tab.tsv" --allow-missing
printf '%s\tsmall red\\tcircle \\x1b[31m\n' "$first" >"$T/esc.tsv"
run_ok "eval reads an escaped caption" "$NBOOST" eval --shards "$S" --captions "$T/esc.tsv" --allow-missing
printf '%s\tsmall \\q red\n' "$first" >"$T/badesc.tsv"
expect_fail 1 "captions '$T/badesc.tsv' line 1: bad escape '\\q'" "$NBOOST" eval --shards "$S" \
	--captions "$T/badesc.tsv" --allow-missing
# error messages that quote file content escape it
printf '[train]\n\033[31mred = 1\n' >"$T/esc.conf"
expect_fail 1 "esc.conf' line 2" "$NBOOST" train "$T/esc.conf" --labeled "$T/s/labeled" --out "$T/never"
check "job file error: no ESC byte on stderr" test "$(tr -dc '\033' <"$T/err.txt" | wc -c)" -eq 0
check "job file error: the ESC is written \\x1b" grep -qF '\x1b' "$T/err.txt"

# ---- 4. a FIFO as an input is refused at once, never waited on ----
# (the image FIFO goes through corpus/image's loader)
mkfifo "$T/in.fifo"
expect_fail 1 "$T/in.fifo" $TO "$NBOOST" caption --model "$CK" "$T/in.fifo"
expect_fail 1 "cannot open checkpoint '$T/in.fifo': it is a FIFO, not a regular file" \
	$TO "$NBOOST" caption --model "$T/in.fifo" "$T/victim"
expect_fail 1 "cannot open checkpoint '$T/in.fifo': it is a FIFO, not a regular file" \
	$TO "$NBOOST" eval --shards "$S" --model "$T/in.fifo"
expect_fail 1 "cannot open job file '$T/in.fifo': it is a FIFO, not a regular file" \
	$TO "$NBOOST" train "$T/in.fifo" --labeled "$T/s/labeled" --out "$T/never"
expect_fail 1 "cannot open job file '$T/in.fifo': it is a FIFO, not a regular file" \
	$TO "$NBOOST" run "$T/in.fifo" --out "$T/never"
expect_fail 1 "cannot open captions '$T/in.fifo': it is a FIFO, not a regular file" \
	$TO "$NBOOST" eval --shards "$S" --captions "$T/in.fifo"
expect_fail 1 "cannot inspect '$T/in.fifo': it is a FIFO, not a regular file" $TO "$NBOOST" inspect "$T/in.fifo"
expect_fail 1 "cannot open captions '$T/dir': it is a directory, not a regular file" \
	"$NBOOST" eval --shards "$S" --captions "$T/dir"
check "no directory made for a refused job file" test ! -e "$T/never"

# ---- 5. a UTF-8 byte-order mark at the start is skipped ----
{ printf '\xef\xbb\xbf'; cat "$NB_SRC/jobs/tiny.conf"; } >"$T/bom.conf"
run_ok "train reads a job file that starts with a BOM" \
	"$NBOOST" train "$T/bom.conf" --labeled "$T/s/labeled" --out "$T/bomrun" --steps 1
{ printf '\xef\xbb\xbf'; cat "$T/gt.tsv"; } >"$T/bom.tsv"
run_ok "eval reads a captions TSV that starts with a BOM" "$NBOOST" eval --shards "$S" --captions "$T/bom.tsv"
{ cat "$NB_SRC/jobs/tiny.conf"; printf '\xef\xbb\xbf[noise]\n'; } >"$T/bom2.conf"
expect_fail 1 "bom2.conf' line $(($(wc -l <"$NB_SRC/jobs/tiny.conf") + 1)): a byte-order mark inside the file" \
	"$NBOOST" train "$T/bom2.conf" --labeled "$T/s/labeled" --out "$T/never"

# ---- 6. a seed past the largest value names the range ----
printf '[train]\nseed = 18446744073709551615\n' >"$T/seed.conf"
expect_fail 1 "seed.conf:2: train.seed = 18446744073709551615 is out of range [0, 9223372036854775807]" \
	"$NBOOST" train "$T/seed.conf" --labeled "$T/s/labeled" --out "$T/never"

# ---- 7. a path too long for the file system: the message ends with the cause ----
long=$T/$(printf 'd%.0s' $(seq 200))
while [ ${#long} -lt 4100 ]; do long=$long/$(printf 'd%.0s' $(seq 200)); done
long=${long:0:4100}
# ends_with_cause WHAT CMD...: exits 1, one stderr line ending with the cause
ends_with_cause() {
	local what=$1; shift
	"$@" >/dev/null 2>"$T/long.err"
	local rc=$? last
	last=$(tail -1 "$T/long.err")
	if [ "$rc" -ne 1 ]; then bad "$what: exit $rc, expected 1: $(tail -c 300 "$T/long.err")"; return; fi
	case $last in
	"nboost: fatal: "*": File name too long") ok ;;
	*) bad "$what: the message does not end with the cause: ...${last: -300}" ;;
	esac
}
ends_with_cause "train --out LONG" "$NBOOST" train "$NB_SRC/jobs/tiny.conf" --labeled "$T/s/labeled" --out "$long"
ends_with_cause "synth --out LONG" "$NBOOST" synth --out "$long" --labeled 2 --unlabeled 0 --test 0
ends_with_cause "eval --write-gt LONG" "$NBOOST" eval --shards "$S" --write-gt "$long"
ends_with_cause "eval --out-captions LONG" "$NBOOST" eval --shards "$S" --model "$CK" --out-captions "$long"
ends_with_cause "export --out LONG" "$NBOOST" export "$T/s/labeled" --format jsonl --out "$long"
# a path that fits PATH_MAX but whose files do not: the deepest step fails
mid=${long:0:4080}
ends_with_cause "train --out 4080 chars" "$NBOOST" train "$NB_SRC/jobs/tiny.conf" --labeled "$T/s/labeled" --out "$mid"

finish
