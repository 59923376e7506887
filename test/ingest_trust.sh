#!/bin/bash
# Ingest that a data engineer trusts (issue #12), against the loopback
# server (test/http_fault_server.py): options recorded and a changed one
# refused; caption, kept columns, original size and SHA-256 in the shard;
# HTTP reason phrases; SIGTERM/SIGUSR1 stop with exit 75 and a rerun equal to
# an uninterrupted run; --slice and Slurm array variables; --user-agent and
# X-Robots-Tag opt-outs; gzip lists (and damaged ones); WebP (and a damaged
# one); the progress ETA during a network stall.
set -u
: "${NBOOST:?NBOOST must name the nboost binary}"
source "$(dirname "$0")/lib.sh"
SRV=
at_exit '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null'
if ! $PY -c 'import PIL, h5py, numpy; from PIL import features; assert features.check("webp")' 2>/dev/null; then
	echo "ingest_trust: /usr/bin/python3 lacks PIL (with WebP)/h5py/numpy" >&2
	exit 77
fi
mkdir -p "$T/root"
"$NBOOST" synth --out "$T/synth" --png "$T/png" --labeled 8 --unlabeled 0 --test 0 --size 48 -q \
	|| { echo "FAIL: nboost synth --png"; echo "0 passed, 1 failed"; exit 1; }
for i in 0 1 2 3 4 5 6 7; do cp "$T/png/labeled/$i.png" "$T/root/s$i.png"; done
$PY - "$T/root" <<'EOF' || { echo "FAIL: making inputs"; echo "0 passed, 1 failed"; exit 1; }
import sys
import numpy as np
from PIL import Image
root = sys.argv[1]
a = np.asarray(Image.open(f"{root}/s0.png").convert("RGB"))
Image.fromarray(a).save(f"{root}/w_lossless.webp", lossless=True)
Image.fromarray(a).save(f"{root}/w_lossy.webp", quality=90)
rgba = np.dstack([np.asarray(Image.open(f"{root}/s1.png").convert("RGB")), np.full((48, 48), 255, np.uint8)])
rgba[:, :24, 3] = 0
Image.fromarray(rgba, "RGBA").save(f"{root}/w_alpha.webp", lossless=True)
w = open(f"{root}/w_lossy.webp", "rb").read()
open(f"{root}/w_cut.webp", "wb").write(w[: len(w) // 2])
# a 300x200 JPEG: its original size differs from the 48 px output
Image.fromarray(np.kron(a, np.ones((7, 7, 1), np.uint8))[:200, :300]).save(f"{root}/big.jpg", quality=95)
EOF
$PY "$NB_SRC/test/http_fault_server.py" "$T/root" "$T/port" &
SRV=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
PORT=$(cat "$T/port" 2>/dev/null) || { echo "FAIL: server did not start"; echo "0 passed, 1 failed"; exit 1; }
B="http://127.0.0.1:$PORT"
# status of line L of the status tables in DIR
status_of() { awk -F'\t' -v l="$2" '$1 == l {print $3}' "$1"/ingest-*.status.tsv; }
detail_of() { awk -F'\t' -v l="$2" '$1 == l {print $8}' "$1"/ingest-*.status.tsv; }

# ---- options recorded; a changed one is refused, naming it ----
printf 'url\n%s\n%s\n' "$B/f/s0.png" "$B/f/s1.png" >"$T/two.tsv"
run_ok "first ingest at 32 px" "$NBOOST" ingest "$T/two.tsv" --out "$T/opt" --size 32 -q
check "ingest.json records the size" grep -q '"size": 32,' "$T/opt/ingest.json"
expect_fail 1 '"size": 32 but this run asks for 48 (--size)' "$NBOOST" ingest "$T/two.tsv" --out "$T/opt" --size 48 -q
expect_fail 1 '(--resize)' "$NBOOST" ingest "$T/two.tsv" --out "$T/opt" --size 32 --resize pad -q
expect_fail 1 '(--zstd-level)' "$NBOOST" ingest "$T/two.tsv" --out "$T/opt" --size 32 --zstd-level 5 -q
check "the refused runs wrote nothing: still 32 px" $PY -c "
import h5py, sys; f = h5py.File(sys.argv[1]); sys.exit(int(f.attrs['height']) != 32)" "$T/opt/ingest-00000.h5"
run_ok "a rerun with the same options" "$NBOOST" ingest "$T/two.tsv" --out "$T/opt" --size 32 -q
mkdir -p "$T/old" && cp "$T/opt/ingest-00000.status.tsv" "$T/opt/ingest-00000.h5" "$T/old/"
expect_fail 1 "holds ingest output but no ingest.json" "$NBOOST" ingest "$T/two.tsv" --out "$T/old" -q

# ---- caption, kept columns, original size, SHA-256, reasons ----
{
	printf 'url\tTEXT\talt\tlicense\tkey\n'
	printf '%s\tfirst caption\talt one\tcc-by\tk1\n' "$B/f/s2.png"
	printf '%s\tsecond, "quoted"\t\tcc0\tk2\n' "$B/f/big.jpg"
	printf '%s\tmissing\tx\ty\tk3\n' "$B/404"
	printf '%s\tcustom\tx\ty\tk4\n' "$B/custom"
	printf '%s\twebp caption\twebp alt\tcc-by-sa\tk5\n' "$B/f/w_lossless.webp"
} >"$T/meta.tsv"
run_ok "ingest with --keep-columns alt,license" "$NBOOST" ingest "$T/meta.tsv" --out "$T/meta" --keep-columns alt,license -q
check_sh "404: detail 'HTTP 404 Not Found'" '[ "$(detail_of "$T/meta" 4)" = "HTTP 404 Not Found" ]'
check_sh "599: the server's own reason phrase" '[ "$(status_of "$T/meta" 5)" = http_599 ] && [ "$(detail_of "$T/meta" 5)" = "HTTP 599 Custom Reason" ]'
check "shard holds captions, columns, sizes and SHA-256" $PY - "$T/meta/ingest-00000.h5" "$T/root" <<'EOF'
import hashlib, sys
import h5py
f = h5py.File(sys.argv[1], "r")
root = sys.argv[2]
def texts(g, name):
    flat, off = g[name][...].tobytes(), g[name + "_offsets"][...]
    return [flat[off[i]:off[i + 1]].decode() for i in range(len(off) - 1)]
g = f["ingest"]
assert list(f["ids"][...]) == [2, 3, 6], list(f["ids"][...])
assert texts(g, "caption") == ["first caption", 'second, "quoted"', "webp caption"], texts(g, "caption")
assert texts(g["columns"], "alt") == ["alt one", "", "webp alt"]
assert texts(g["columns"], "license") == ["cc-by", "cc0", "cc-by-sa"]
assert g.attrs["columns"].decode() == "alt,license", g.attrs["columns"]
assert list(g["orig_width"][...]) == [48, 300, 48] and list(g["orig_height"][...]) == [48, 200, 48]
for i, name in enumerate(["s2.png", "big.jpg", "w_lossless.webp"]):
    want = hashlib.sha256(open(f"{root}/{name}", "rb").read()).digest()
    assert g["sha256"][i].tobytes() == want, name
EOF
check_sh "status table keeps the SHA-256 and the original size" \
	'awk -F"\t" '"'"'$1 == 3 {print $10, $11}'"'"' "$T/meta"/ingest-00000.status.tsv | grep -qx "300 200"'
expect_fail 1 "--keep-columns names 'nosuch', but the header on line 1 has no such column" \
	"$NBOOST" ingest "$T/meta.tsv" --out "$T/meta2" --keep-columns alt,nosuch -q

# ---- WebP ----
printf 'url\n%s\n%s\n%s\n%s\n' "$B/f/w_lossless.webp" "$B/f/w_lossy.webp" "$B/f/w_alpha.webp" "$B/f/w_cut.webp" >"$T/webp.tsv"
run_ok "ingest of WebP images" "$NBOOST" ingest "$T/webp.tsv" --out "$T/webp" -q
check_sh "WebP statuses ok ok ok decode_error" '[ "$(status_of "$T/webp" 2)$(status_of "$T/webp" 3)$(status_of "$T/webp" 4)$(status_of "$T/webp" 5)" = okokokdecode_error ]'
check_sh "a cut WebP names the cause" 'detail_of "$T/webp" 5 | grep -q "cannot decode webp: truncated data"'
check "WebP pixels: lossless exact, lossy as PIL decodes it, alpha composited on black" $PY - "$T/webp/ingest-00000.h5" "$T/root" <<'EOF'
import sys
import h5py, numpy as np
from PIL import Image
im = h5py.File(sys.argv[1], "r")["images"][...].astype(int)
root = sys.argv[2]
a = np.asarray(Image.open(f"{root}/s0.png").convert("RGB")).astype(int)
assert (im[0] == a).all()
assert (im[1] == np.asarray(Image.open(f"{root}/w_lossy.webp").convert("RGB"))).all()  # as libwebp via PIL
b = np.asarray(Image.open(f"{root}/s1.png").convert("RGB")).astype(int)
assert (im[2][:, :24] == 0).all() and (im[2][:, 24:] == b[:, 24:]).all()
EOF

# ---- gzip lists ----
gzip -c "$T/meta.tsv" >"$T/meta.tsv.gz"
run_ok "ingest of a gzip list" "$NBOOST" ingest "$T/meta.tsv.gz" --out "$T/gz" --keep-columns alt,license -q
check "gzip list: same status table and shard as the plain list" cmp -s "$T/meta/ingest-00000.status.tsv" "$T/gz/ingest-00000.status.tsv"
check "gzip list: shard identical" same_h5 "$T/meta/ingest-00000.h5" "$T/gz/ingest-00000.h5"
cp "$T/meta.tsv.gz" "$T/plain-name.txt"
run_ok "gzip found by its magic bytes, whatever the name" "$NBOOST" ingest "$T/plain-name.txt" --out "$T/gz2" -q
check_sh "  ... and parsed as TSV" '[ "$(status_of "$T/gz2" 2)" = ok ]'
head -c 60 "$T/meta.tsv.gz" >"$T/cut.tsv.gz"
expect_fail 1 "cannot read url list '$T/cut.tsv.gz': gzip data is truncated" "$NBOOST" ingest "$T/cut.tsv.gz" --out "$T/gzbad" -q
$PY -c "
import sys; b = bytearray(open(sys.argv[1], 'rb').read()); b[20] ^= 0xff; b[21] ^= 0x55
open(sys.argv[2], 'wb').write(bytes(b))" "$T/meta.tsv.gz" "$T/bad.tsv.gz"
expect_fail 1 "cannot read url list '$T/bad.tsv.gz': corrupt gzip data" "$NBOOST" ingest "$T/bad.tsv.gz" --out "$T/gzbad" -q

# ---- User-Agent and opt-outs ----
printf 'url\n%s\n' "$B/f/s3.png" >"$T/ua.tsv"
run_ok "--user-agent" "$NBOOST" ingest "$T/ua.tsv" --out "$T/ua" --user-agent "testbot/2.0 (+https://example.org/bot)" -q
check_sh "the server saw that User-Agent" '[ "$(curl -s "$B/lastua")" = "testbot/2.0 (+https://example.org/bot)" ]'
run_ok "the default User-Agent" "$NBOOST" ingest "$T/ua.tsv" --out "$T/ua2" -q
check_sh "  ... is nboost-ingest/1" '[ "$(curl -s "$B/lastua")" = "nboost-ingest/1" ]'
q() { $PY -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$1"; }
{
	echo url
	for t in noai noimageai "noindex, nofollow" noimageindex none "NoAI" "nboost-ingest: noai" \
		"otherbot: noai" "nofollow" "unavailable_after: 2020-01-01" ""; do
		echo "$B/robots/s4.png?t=$(q "$t")"
	done
} >"$T/robots.tsv"
run_ok "ingest with opt-out headers" "$NBOOST" ingest "$T/robots.tsv" --out "$T/robots" -q
got=$(for l in $(seq 2 12); do status_of "$T/robots" "$l"; done | tr '\n' ' ')
want="opted_out opted_out opted_out opted_out opted_out opted_out opted_out ok duplicate duplicate duplicate "
check_sh "opt-outs refused, other robots' and other directives not ($got)" '[ "$got" = "$want" ]'
check_sh "opted_out names the directive" '[ "$(detail_of "$T/robots" 2)" = "X-Robots-Tag: noai" ]'
run_ok "--no-respect-optout" "$NBOOST" ingest "$T/robots.tsv" --out "$T/robots-off" --no-respect-optout -q
check_sh "  ... fetches them all" '[ "$(status_of "$T/robots-off" 2)" = ok ] && ! grep -q opted_out "$T/robots-off"/ingest-00000.status.tsv'
expect_fail 1 '"respect_optout": true but this run asks for false (--no-respect-optout)' \
	"$NBOOST" ingest "$T/robots.tsv" --out "$T/robots" --no-respect-optout -q

# ---- slices ----
{ echo url; for i in $(seq 0 20); do echo "$B/f/s$((i % 8)).png?$i"; done; } >"$T/many.tsv"
run_ok "the whole list in one run" "$NBOOST" ingest "$T/many.tsv" --out "$T/whole" --shard-size 3 -q
for i in 0 1 2; do
	run_ok "slice $i/3" "$NBOOST" ingest "$T/many.tsv" --out "$T/sliced" --shard-size 3 --slice "$i/3" -q
	check_sh "  slice $i/3 wrote shards k = $i mod 3 only" \
		'ls "$T/sliced"/ingest-*.status.tsv | sed "s/.*ingest-0*\([0-9]*\)\.status.tsv/\1/" | awk -v i='"$i"' "\$1 % 3 > i {bad = 1} END {exit bad}"'
done
check_sh "slices cover the list: 7 shards" '[ "$(ls "$T/sliced"/ingest-*.status.tsv | wc -l)" = 7 ]'
same=1
for f in "$T/whole"/ingest-*.status.tsv; do cmp -s "$f" "$T/sliced/$(basename "$f")" || same=0; done
for f in "$T/whole"/ingest-*.h5; do same_h5 "$f" "$T/sliced/$(basename "$f")" || same=0; done
check_sh "the slices' shards and tables equal the whole run's" '[ $same = 1 ]'
check "each slice wrote its own totals" test -s "$T/sliced/ingest-stats.slice-2-of-3.json"
SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_MIN=4 SLURM_ARRAY_TASK_MAX=6 SLURM_ARRAY_TASK_COUNT=3 \
	run_ok "Slurm array task 5 of 4..6" "$NBOOST" ingest "$T/many.tsv" --out "$T/slurm" --shard-size 3 -q
check_sh "  ... ran slice 1/3: shards 1 and 4" '[ "$(ls "$T/slurm" | grep -c "status.tsv")" = 2 ] && [ -f "$T/slurm/ingest-00001.status.tsv" ] && [ -f "$T/slurm/ingest-00004.status.tsv" ]'
SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_COUNT=3 \
	run_ok "Slurm array task 2 with only a count" "$NBOOST" ingest "$T/many.tsv" --out "$T/slurm2" --shard-size 3 -q
check_sh "  ... ran slice 2/3: shards 2 and 5" '[ -f "$T/slurm2/ingest-00002.status.tsv" ] && [ -f "$T/slurm2/ingest-00005.status.tsv" ] && [ "$(ls "$T/slurm2" | grep -c "status.tsv")" = 2 ]'
SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_COUNT=3 \
	run_ok "--slice wins over Slurm variables" "$NBOOST" ingest "$T/many.tsv" --out "$T/slurm3" --shard-size 3 --slice 0/3 -q
check "  ... slice 0/3" test -f "$T/slurm3/ingest-00000.status.tsv"
expect_fail 2 "--slice: '3/3' is not I/N" "$NBOOST" ingest "$T/many.tsv" --out "$T/x" --slice 3/3
expect_fail 2 "--slice: '1' is not I/N" "$NBOOST" ingest "$T/many.tsv" --out "$T/x" --slice 1
SLURM_ARRAY_TASK_ID=1 expect_fail 2 "neither SLURM_ARRAY_TASK_MIN/MAX nor SLURM_ARRAY_TASK_COUNT" \
	"$NBOOST" ingest "$T/many.tsv" --out "$T/x"

# ---- SIGTERM / SIGUSR1: exit 75, nothing half-written, the rerun completes ----
{ echo url; for i in $(seq 0 23); do echo "$B/sleep/s$((i % 8)).png?$i"; done; } >"$T/slow.tsv"
run_ok "an uninterrupted run" "$NBOOST" ingest "$T/slow.tsv" --out "$T/calm" --shard-size 4 --concurrency 2 -q
for sig in TERM USR1; do
	"$NBOOST" ingest "$T/slow.tsv" --out "$T/sig$sig" --shard-size 4 --concurrency 2 -q 2>"$T/sig.err" &
	pid=$!
	# signal once the first shard is complete
	for _ in $(seq 300); do ls "$T/sig$sig"/ingest-*.status.tsv >/dev/null 2>&1 && break; sleep 0.1; done
	kill -$sig $pid
	wait $pid
	rc=$?
	check_sh "SIG$sig: exit 75 ($rc: $(head -c 300 "$T/sig.err"))" '[ $rc = 75 ]'
	nh5=$(ls "$T/sig$sig"/ingest-*.h5 2>/dev/null | wc -l)
	nst=$(ls "$T/sig$sig"/ingest-*.status.tsv 2>/dev/null | wc -l)
	check_sh "SIG$sig: stopped mid-way ($nst of 6 shards), every shard with its table" '[ "$nst" -ge 1 ] && [ "$nst" -lt 6 ] && [ "$nh5" = "$nst" ]'
	check_sh "SIG$sig: no totals, no temporary left" '[ ! -e "$T/sig$sig/ingest-stats.json" ] && [ -z "$(find "$T/sig$sig" -name "*.tmp.*")" ]'
	check "SIG$sig: says it stopped" grep -q "stopped on a signal" "$T/sig.err"
	run_ok "SIG$sig: the rerun completes" "$NBOOST" ingest "$T/slow.tsv" --out "$T/sig$sig" --shard-size 4 --concurrency 2 -q
	same=1
	for f in "$T/calm"/ingest-*.status.tsv; do cmp -s "$f" "$T/sig$sig/$(basename "$f")" || same=0; done
	for f in "$T/calm"/ingest-*.h5; do same_h5 "$f" "$T/sig$sig/$(basename "$f")" || same=0; done
	check_sh "SIG$sig: the result equals the uninterrupted run's" '[ $same = 1 ]'
done

# ---- progress: a whole-run ETA that keeps printing during a stall ----
printf 'url\n%s\n%s\n' "$B/f/s5.png" "$B/stall/s6.png" >"$T/stall.tsv"
run_ok "a run with a 7 s stall" "$NBOOST" ingest "$T/stall.tsv" --out "$T/stall" --concurrency 1
nlines=$(grep -c "records (.*ETA" "$T/last.err")
check_sh "progress lines with the ETA during the stall ($nlines)" '[ "$nlines" -ge 3 ]'
check "the stall is named" grep -q "no record for [5-9] s" "$T/last.err"
check "the first line is a whole-run count" grep -q "ingest: rank 0: [01]/2 records" "$T/last.err"
finish
