#!/bin/bash
# End-to-end ingest against a loopback fault-injection server
# (test/http_fault_server.py): every fault's status, pixel agreement with the
# originals, reruns, --retry-failed, MPI rank-count independence, bad usage.
set -u
: "${NBOOST:?NBOOST must name the nboost binary}"
MPIEXEC=${MPIEXEC:-mpiexec}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm=isolated
export OMPI_MCA_rmaps_base_oversubscribe=1
source "$(dirname "$0")/lib.sh"
SRV=
# the loopback server, stopped by its PID however the script ends
at_exit '[ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null'
if ! $PY -c 'import PIL, h5py, numpy' 2>/dev/null; then
	echo "ingest_http: /usr/bin/python3 lacks PIL/h5py/numpy (apt-get install python3-pil python3-h5py)" >&2
	exit 77
fi

# ---- inputs: synth --png originals plus converted variants ----
mkdir -p "$T/root"
"$NBOOST" synth --out "$T/synth" --png "$T/png" --labeled 6 --unlabeled 0 --test 0 --size 48 -q \
	|| { echo "FAIL: nboost synth --png"; echo "0 passed, 1 failed"; exit 1; }
for i in 0 1 2 3 4 5; do cp "$T/png/labeled/$i.png" "$T/root/synth$i.png"; done
$PY - "$T/root" <<'EOF' || { echo "FAIL: making variants"; echo "0 passed, 1 failed"; exit 1; }
import sys, struct, zlib
import numpy as np
from PIL import Image
root = sys.argv[1]
src = Image.open(f"{root}/synth0.png").convert("RGB")
a = np.asarray(src)
src.save(f"{root}/j_rgb.jpg", quality=95)
src.save(f"{root}/j_prog.jpg", quality=95, progressive=True)
src.convert("L").save(f"{root}/j_gray.jpg", quality=95)
# CMYK: left half red, right half white (PIL writes Adobe inverted CMYK)
c = np.zeros((48, 64, 4), np.uint8)
c[:, :32, 1] = 255
c[:, :32, 2] = 255
Image.fromarray(c, "CMYK").save(f"{root}/j_cmyk.jpg", quality=95)
Image.open(f"{root}/synth1.png").convert("RGB").quantize(16).save(f"{root}/p_pal.png")
Image.open(f"{root}/synth2.png").convert("L").save(f"{root}/p_gray.png")
rgba = np.dstack([np.asarray(Image.open(f"{root}/synth3.png").convert("RGB")), np.full((48, 48), 255, np.uint8)])
rgba[:, :24, 3] = 0
Image.fromarray(rgba, "RGBA").save(f"{root}/p_rgba.png")
# 16-bit RGB, written by hand (PIL has no 16-bit RGB mode)
b16 = np.asarray(Image.open(f"{root}/synth5.png").convert("RGB")).astype(">u2") * 257
raw = b"".join(b"\0" + b16[y].tobytes() for y in range(48))
def chunk(k, d): return struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 48, 48, 16, 2, 0, 0, 0))
       + chunk(b"sRGB", b"\0") + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
open(f"{root}/p_16.png", "wb").write(png)
# a larger JPEG, for the DCT-scaled path (512 -> 48)
Image.fromarray(np.kron(a, np.ones((11, 11, 1), np.uint8))[:512, :512]).save(f"{root}/j_big.jpg", quality=95)
# corrupt JPEG: SOF0 precision byte set to 3
j = bytearray(open(f"{root}/j_rgb.jpg", "rb").read())
k = j.find(b"\xff\xc0")
j[k + 4] = 3
open(f"{root}/corrupt.jpg", "wb").write(bytes(j))
EOF

$PY "$NB_SRC/test/http_fault_server.py" "$T/root" "$T/port" &
SRV=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
PORT=$(cat "$T/port" 2>/dev/null) || { echo "FAIL: server did not start"; echo "0 passed, 1 failed"; exit 1; }
B="http://127.0.0.1:$PORT"

# ---- the list: line -> expected status ----
cat > "$T/expect.tsv" <<EOF
$B/f/synth0.png	ok
$B/f/synth1.png	ok
$B/f/synth0.png	duplicate
$B/f/j_rgb.jpg	ok
$B/f/j_prog.jpg	ok
$B/f/j_gray.jpg	ok
$B/f/j_cmyk.jpg	ok
$B/f/p_pal.png	ok
$B/f/p_gray.png	ok
$B/f/p_rgba.png	ok
$B/f/p_16.png	ok
$B/f/j_big.jpg	ok
$B/redir/synth4.png	ok
$B/once429/synth2.png	ok
$B/404	http_404
$B/500	http_500
$B/always429	http_429
$B/slow	timeout
$B/cut/j_big.jpg	decode_error
$B/cutlen/j_big.jpg	truncated
$B/f/corrupt.jpg	decode_error
$B/bomb	too_large
$B/html	not_image
$B/loop	too_many_redirects
$B/big	too_large
$B/bigcl	too_large
ftp://127.0.0.1:$PORT/x	bad_scheme
file:///etc/hostname	bad_scheme
BADLINE	bad_line
EOF
{
	printf 'url\tcaption\tkey\n'
	n=0
	while IFS=$'\t' read -r url st; do
		n=$((n + 1))
		if [ "$url" = BADLINE ]; then printf 'only-one-field\n'; else printf '%s\tcap %d\tk%d\n' "$url" $n $n; fi
	done < "$T/expect.tsv"
} > "$T/list.tsv"

OPTS=(--size 48 --shard-size 8 --timeout 1.5 --connect-timeout 2 --retries 1 --retry-delay 0.1
	--max-retry-after 1.5 --max-bytes 1M --concurrency 8 --per-host 6 -q)
start=$(date +%s)
timeout 60 "$NBOOST" ingest "$T/list.tsv" --out "$T/out" "${OPTS[@]}" 2> "$T/err1"
rc=$?
check_sh "ingest exits 0 (rc $rc: $(head -c 400 "$T/err1"))" '[ $rc -eq 0 ]'
check_sh "ingest took under 30 s" '[ $(( $(date +%s) - start )) -lt 30 ]'
check_sh "4 shards written" '[ $(ls "$T/out"/ingest-*.h5 2>/dev/null | wc -l) -eq 4 ]'
check_sh "4 status tables" '[ $(ls "$T/out"/ingest-*.status.tsv 2>/dev/null | wc -l) -eq 4 ]'
check_sh "total stats written" '[ -s "$T/out/ingest-stats.json" ]'

# ---- statuses, pixels, stats (python: h5py + numpy) ----
$PY - "$T" <<'EOF'
import sys, glob, json, os
import numpy as np, h5py
from PIL import Image
T = sys.argv[1]
root = f"{T}/root"
passed = failed = 0
def check(what, cond):
    global passed, failed
    if cond: passed += 1
    else:
        failed += 1
        print("FAIL:", what, file=sys.stderr)
expect = [l.rstrip("\n").split("\t")[1] for l in open(f"{T}/expect.tsv")]
rows = []
for p in sorted(glob.glob(f"{T}/out/ingest-*.status.tsv")):
    lines = open(p).read().splitlines()
    check(f"{p} header", lines[0].split("\t")[:3] == ["line", "id", "status"])
    rows += [l.split("\t") for l in lines[1:]]
check(f"one status row per record ({len(rows)} vs {len(expect)})", len(rows) == len(expect))
for i, r in enumerate(rows[:len(expect)]):
    check(f"line {r[0]} ({expect[i]}): got {r[2]} ({r[7] if len(r) > 7 else ''})", r[2] == expect[i])
    check(f"line {r[0]} id is the line number", r[0] == str(i + 2) and r[1] == r[0])
bad = [r for r in rows if r[2] == "bad_line"]
check("bad_line names file:line", bad and "list.tsv:%s:" % bad[0][0] in bad[0][7])
dup = [r for r in rows if r[2] == "duplicate"]
check("duplicate names the first line", dup and dup[0][7] == "same content as line 2")
# images
imgs = {}
for p in sorted(glob.glob(f"{T}/out/ingest-*.h5")):
    with h5py.File(p, "r") as f:
        so, flat = f["source_offsets"][:], f["sources"][:].tobytes()
        for k, (i, im) in enumerate(zip(f["ids"][:], f["images"][:])):
            imgs[int(i)] = (im, flat[so[k]:so[k + 1]].decode())
oks = [int(r[0]) for r in rows if r[2] == "ok"]
check(f"shards hold exactly the ok records ({sorted(imgs)} vs {oks})", sorted(imgs) == sorted(oks))
def ref(name): return np.asarray(Image.open(f"{root}/{name}").convert("RGB")).astype(int)
def line_of(name):
    for r in rows:
        if r[5].endswith("/" + name): return int(r[0])
def diff(line, want):
    if line not in imgs: return 999
    return int(np.abs(imgs[line][0].astype(int) - want).max())
for name in ["synth0.png", "synth1.png", "p_pal.png", "p_gray.png"]:
    d = diff(line_of(name), ref(name))
    check(f"{name} pixels equal the original (max diff {d})", d == 0)
d = diff(line_of("synth4.png"), ref("synth4.png"))
check(f"redirected synth4.png equals the original (max diff {d})", d == 0)
d = diff(line_of("synth2.png"), ref("synth2.png"))
check(f"synth2.png after a 429 equals the original (max diff {d})", d == 0)
d = diff(line_of("p_16.png"), ref("synth5.png"))
check(f"16-bit png equals its 8-bit source (max diff {d})", d <= 1)
rgba = np.asarray(Image.open(f"{root}/synth3.png").convert("RGB")).astype(int).copy()
rgba[:, :24] = 0
d = diff(line_of("p_rgba.png"), rgba)
check(f"alpha png composited on black (max diff {d})", d <= 1)
for name in ["j_rgb.jpg", "j_prog.jpg", "j_gray.jpg"]:
    d = diff(line_of(name), ref(name))
    check(f"{name} pixels close to PIL's decode (max diff {d})", d <= 3)
# 512x512 JPEG resized to 48: close to the original synth0 (11x upscaled, cropped)
big = np.asarray(Image.open(f"{root}/j_big.jpg").convert("RGB").resize((48, 48), Image.BOX)).astype(int)
l = line_of("j_big.jpg")
if l in imgs:
    m = float(np.abs(imgs[l][0].astype(int) - big).mean())
    check(f"512x512 jpeg -> 48: mean diff {m:.2f} vs PIL box resize", m < 4)
else:
    check("j_big.jpg ingested", False)
c = imgs.get(line_of("j_cmyk.jpg"), (np.zeros((48, 48, 3), np.uint8),))[0].astype(int)
# center_crop of 64x48 keeps x in [8, 56): left 24 px red, right 24 white
check(f"cmyk left is red {c[24, 5]}", c[24, 5, 0] > 235 and c[24, 5, 1] < 20 and c[24, 5, 2] < 20)
check(f"cmyk right is white {c[24, 43]}", (c[24, 43] > 235).all())
src = imgs.get(2, (None, ""))[1]
check(f"sources hold the url ({src})", src.endswith("/f/synth0.png"))
# stats
tot = json.load(open(f"{T}/out/ingest-stats.json"))
check("total records", tot["records"] == len(expect))
check("total ok count", tot["status"].get("ok") == expect.count("ok"))
check("total images", tot["images"] == expect.count("ok"))
check("time breakdown present", all(k in tot["time_s"] for k in ["network", "decode", "resize", "write"]))
s0 = json.load(open(f"{T}/out/ingest-00000.stats.json"))
check("shard stats", s0["shard"] == 0 and s0["records"] == 8)
print(f"python checks: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
EOF
check_sh "status/pixel/stats checks" '[ $? -eq 0 ]'

# ---- rerun: completed shards are skipped (no request reaches the server) ----
before=$(curl -s "$B/count")
sum1=$(cat "$T/out"/ingest-*.status.tsv | md5sum)
st1=$(cat "$T/out"/ingest-*.status.tsv | cut -f1-3 | md5sum)
"$NBOOST" ingest "$T/list.tsv" --out "$T/out" "${OPTS[@]}"
check_sh "rerun exits 0" '[ $? -eq 0 ]'
after=$(curl -s "$B/count")
check_sh "rerun fetched nothing ($before -> $after: one /count request)" '[ $((after - before)) -eq 1 ]'
check_sh "rerun left the status tables alone" '[ "$(cat "$T/out"/ingest-*.status.tsv | md5sum)" = "$sum1" ]'

# ---- --retry-failed refetches only the retryable failures ----
# retryable here: http_500, http_429, timeout, truncated (2 attempts each at --retries 1)
before=$(curl -s "$B/count")
"$NBOOST" ingest "$T/list.tsv" --out "$T/out" "${OPTS[@]}" --retry-failed
check_sh "retry-failed exits 0" '[ $? -eq 0 ]'
after=$(curl -s "$B/count")
check_sh "retry-failed made 8 requests + 1 ($before -> $after)" '[ $((after - before)) -eq 9 ]'
check_sh "retry-failed kept the statuses" '[ "$(cat "$T"/out/ingest-*.status.tsv | cut -f1-3 | md5sum)" = "$st1" ]'
$PY -c "
import h5py, glob, sys
n = sum(len(h5py.File(p, 'r')['ids']) for p in glob.glob('$T/out/ingest-*.h5'))
sys.exit(0 if n == 13 else 1)"
check_sh "retry-failed kept the 13 ok images" '[ $? -eq 0 ]'

# ---- MPI: 3 ranks give the same shards as 1 rank ----
grep -v -e /slow -e /always429 "$T/list.tsv" > "$T/list2.tsv"
"$NBOOST" ingest "$T/list2.tsv" --out "$T/r1" "${OPTS[@]}"
check_sh "1-rank run exits 0" '[ $? -eq 0 ]'
timeout 120 "$MPIEXEC" -n 3 "$NBOOST" ingest "$T/list2.tsv" --out "$T/r3" "${OPTS[@]}"
check_sh "3-rank run exits 0" '[ $? -eq 0 ]'
same=1
for f in "$T"/r1/ingest-*.status.tsv; do
	g="$T/r3/$(basename "$f")"
	cmp -s <(cut -f1-3,5- "$f") <(cut -f1-3,5- "$g") || same=0
done
check_sh "status tables identical for 1 and 3 ranks" '[ $same -eq 1 ]'
$PY -c "
import h5py, glob, sys, os, numpy as np
for p in sorted(glob.glob('$T/r1/ingest-*.h5')):
    a, b = h5py.File(p, 'r'), h5py.File('$T/r3/' + os.path.basename(p), 'r')
    if not (np.array_equal(a['ids'][:], b['ids'][:]) and np.array_equal(a['images'][:], b['images'][:])):
        sys.exit(1)"
check_sh "image shards identical for 1 and 3 ranks" '[ $? -eq 0 ]'

# ---- file:// only with --allow-file; pad mode ----
printf 'url\nfile://%s\n' "$T/root/j_cmyk.jpg" > "$T/file.tsv"
"$NBOOST" ingest "$T/file.tsv" --out "$T/f1" -q
check_sh "file:// refused by default" 'grep -q bad_scheme "$T/f1/ingest-00000.status.tsv"'
"$NBOOST" ingest "$T/file.tsv" --out "$T/f2" -q --allow-file --resize pad --size 32
check_sh "file:// with --allow-file" 'grep -qP "\tok\t" "$T/f2/ingest-00000.status.tsv"'
$PY -c "
import h5py, sys
im = h5py.File('$T/f2/ingest-00000.h5', 'r')['images'][0].astype(int)
# 64x48 padded into 32x32: 32x24 image, 4 black rows above and below
sys.exit(0 if im.shape == (32, 32, 3) and im[:4].max() == 0 and im[-4:].max() == 0 and im[16, 4, 0] > 235 else 1)"
check_sh "pad mode letterboxes" '[ $? -eq 0 ]'

# ---- per-host limit and keep-alive ----
{ echo url; for i in 0 1 2 3 4 5 0 1; do echo "$B/hold/synth$i.png?$RANDOM$i"; done; } > "$T/hold.tsv"
curl -s "$B/reset" > /dev/null
"$NBOOST" ingest "$T/hold.tsv" --out "$T/h1" -q --concurrency 8 --per-host 2
read -r maxactive conns < <(curl -s "$B/stats")
check_sh "--per-host 2 keeps at most 2 in flight (saw $maxactive)" '[ "$maxactive" -eq 2 ]'
check_sh "--per-host 2 reuses its 2 connections (saw $conns + 2 for /reset,/stats)" '[ "$conns" -le 4 ]'
check_sh "query strings kept: 8 records, 6 ok, 2 duplicate" \
	'[ $(grep -c -P "\tok\t" "$T/h1/ingest-00000.status.tsv") -eq 6 ] && [ $(grep -c duplicate "$T/h1/ingest-00000.status.tsv") -eq 2 ]'

# ---- usage and input errors ----
"$NBOOST" ingest --help > "$T/help" 2>&1
check_sh "--help exits 0" '[ $? -eq 0 ]'
check_sh "--help lists every option" '(for o in --out --shard-size --size --resize --concurrency --per-host --connect-timeout --timeout --max-bytes --max-pixels --retries --retry-failed --allow-file; do grep -q -- "$o" "$T/help" || exit 1; done)'
"$NBOOST" ingest "$T/list.tsv" --out "$T/x" --resize stretch 2> "$T/e"
check_sh "bad --resize exits 2" '[ $? -eq 2 ] && grep -q "\-\-resize: '"'"'stretch'"'"' is not center_crop or pad" "$T/e"'
"$NBOOST" ingest "$T/list.tsv" --out "$T/x" --concurrency 0 2> "$T/e"
check_sh "bad --concurrency exits 2" '[ $? -eq 2 ]'
"$NBOOST" ingest "$T/list.tsv" 2> "$T/e"
check_sh "missing --out exits 2" '[ $? -eq 2 ] && grep -q "missing --out" "$T/e"'
"$NBOOST" ingest "$T/nope.tsv" --out "$T/x" -q 2> "$T/e"
check_sh "missing list exits 1 naming it" '[ $? -eq 1 ] && grep -q "nope.tsv" "$T/e"'
printf 'name\tcaption\nx\ty\n' > "$T/nourl.tsv"
"$NBOOST" ingest "$T/nourl.tsv" --out "$T/x" -q 2> "$T/e"
check_sh "list without url column exits 1" '[ $? -eq 1 ] && grep -q "no url column" "$T/e"'

finish
