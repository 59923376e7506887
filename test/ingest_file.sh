#!/bin/bash
# Ingest of file:// URLs (no server): damaged JPEGs are decode_error, a FIFO
# or other non-regular file is file_error at once (under a timeout, so a
# regression that blocks in open() fails instead of hanging), and an edited
# list line is fetched again on a rerun and on --retry-failed.
set -u
: "${NBOOST:?NBOOST must name the nboost binary}"
source "$(dirname "$0")/lib.sh"
if ! $PY -c 'import PIL, h5py, numpy' 2>/dev/null; then
	echo "ingest_file: /usr/bin/python3 lacks PIL/h5py/numpy (apt-get install python3-pil python3-h5py)" >&2
	exit 77
fi
R="$T/root"
mkdir -p "$R"
$PY - "$R" <<'EOF' || { echo "FAIL: making inputs"; echo "0 passed, 1 failed"; exit 1; }
import sys, io
import numpy as np
from PIL import Image
R = sys.argv[1]
rng = np.random.default_rng(7)
def jpeg(a):
    b = io.BytesIO()
    Image.fromarray(a).save(b, "JPEG", quality=90)
    return b.getvalue()
good = jpeg(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
open(f"{R}/good.jpg", "wb").write(good)
sos = good.find(b"\xff\xda")
cut = sos + (len(good) - sos) * 6 // 10
open(f"{R}/cut.jpg", "wb").write(good[:cut])                  # ends early
open(f"{R}/cut_eoi.jpg", "wb").write(good[:cut] + b"\xff\xd9")  # cut, EOI put back
big = bytearray(jpeg(np.full((16, 16, 3), 90, np.uint8)))    # SOF0 says 6000x6000
k = big.find(b"\xff\xc0")
big[k + 5:k + 9] = (6000).to_bytes(2, "big") * 2
open(f"{R}/big6000.jpg", "wb").write(bytes(big))
for name in "ABCDE":
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(f"{R}/{name}.png")
open(f"{R}/B2.png", "wb").write(open(f"{R}/B.png", "rb").read())
EOF
mkfifo "$R/fifo.png"
mkdir "$R/dir.png"
OPTS=(--allow-file --size 32 --timeout 3 --connect-timeout 2 --retries 0 -q)

# ---- damaged JPEGs and non-regular files ----
cat > "$T/expect.tsv" <<EOF
good.jpg	ok
cut.jpg	decode_error
cut_eoi.jpg	decode_error
big6000.jpg	decode_error
fifo.png	file_error
dir.png	file_error
missing.png	file_error
EOF
{ printf 'url\n'; while IFS=$'\t' read -r f st; do printf 'file://%s/%s\n' "$R" "$f"; done < "$T/expect.tsv"; } > "$T/bad.tsv"
start=$(date +%s)
timeout 20 "$NBOOST" ingest "$T/bad.tsv" --out "$T/bad" "${OPTS[@]}" 2> "$T/err"
rc=$?
check_sh "ingest of damaged and non-regular files exits 0 (rc $rc, 124 = hung): $(head -c 300 "$T/err")" '[ $rc -eq 0 ]'
check_sh "... in under 10 s" '[ $(( $(date +%s) - start )) -lt 10 ]'
n=1
while IFS=$'\t' read -r f st; do
	n=$((n + 1))
	got=$(awk -F'\t' -v l=$n '$1 == l {print $3}' "$T/bad/ingest-00000.status.tsv" 2>/dev/null)
	check_sh "line $n $f: status $st (got '$got')" '[ "$got" = "$st" ]'
done < "$T/expect.tsv"
check_sh "the FIFO's detail says it is not a regular file" \
	'awk -F"\t" "\$1 == 6" "$T/bad/ingest-00000.status.tsv" | grep -q "not a regular file"'
check_sh "the cut JPEG's detail names the cause" \
	'awk -F"\t" "\$1 == 3" "$T/bad/ingest-00000.status.tsv" | grep -q "Premature end of JPEG file"'

# ---- an edited list line is fetched again ----
u() { printf 'file://%s/%s' "$R" "$1"; }
printf 'url\tkey\n%s\tka\n%s\tkb\n%s\tkc\n%s\tkd\n' "$(u A.png)" "$(u B.png)" "$(u C.png)" "$(u B2.png)" > "$T/edit.tsv"
# rows: line status url key attempts
row() { awk -F'\t' -v l="$1" '$1 == l {print $3, $6, $7, $4}' "$T/ed/ingest-00000.status.tsv"; }
run_ok "first run" timeout 20 "$NBOOST" ingest "$T/edit.tsv" --out "$T/ed" "${OPTS[@]}"
check_sh "line 5 is a duplicate of line 3: $(row 5)" '[ "$(row 5 | cut -d" " -f1)" = duplicate ]'
# line 3 now names D.png: a plain rerun fetches it (and line 5, whose
# original is gone), and leaves lines 2 and 4 alone
sed -i "s|$(u B.png)|$(u D.png)|" "$T/edit.tsv"
run_ok "rerun after editing line 3" timeout 20 "$NBOOST" ingest "$T/edit.tsv" --out "$T/ed" "${OPTS[@]}"
check_sh "rerun says the line changed: $(head -c 300 "$T/last.err")" 'grep -q "line 3" "$T/last.err" && grep -q "changed" "$T/last.err"'
check_sh "line 3 has the new url: $(row 3)" '[ "$(row 3)" = "ok $(u D.png) kb 1" ]'
check_sh "line 5 is no longer a duplicate: $(row 5)" '[ "$(row 5 | cut -d" " -f1)" = ok ]'
check_sh "line 2 was not fetched again: $(row 2)" '[ "$(row 2)" = "ok $(u A.png) ka 1" ]'
# line 4 now names E.png and key ke: --retry-failed (nothing retryable) fetches it
sed -i "s|$(u C.png)\tkc|$(u E.png)\tke|" "$T/edit.tsv"
run_ok "--retry-failed after editing line 4" timeout 20 "$NBOOST" ingest "$T/edit.tsv" --out "$T/ed" "${OPTS[@]}" --retry-failed
check_sh "line 4 has the new url and key: $(row 4)" '[ "$(row 4)" = "ok $(u E.png) ke 1" ]'
# line 2 made bad: its image leaves the shard
sed -i "s|$(u A.png)|not-a-url|" "$T/edit.tsv"
run_ok "rerun after breaking line 2" timeout 20 "$NBOOST" ingest "$T/edit.tsv" --out "$T/ed" "${OPTS[@]}"
check_sh "line 2 is bad_line: $(row 2)" '[ "$(row 2 | cut -d" " -f1)" = bad_line ]'
$PY - "$T/ed/ingest-00000.h5" "$R" <<'EOF'
import sys, h5py, numpy as np
from PIL import Image
f = h5py.File(sys.argv[1], "r")
ids = [int(i) for i in f["ids"][:]]
so, flat = f["source_offsets"][:], f["sources"][:].tobytes()
src = [flat[so[k]:so[k + 1]].decode() for k in range(len(ids))]
want = {3: "D.png", 4: "E.png", 5: "B2.png"}
ok = ids == [3, 4, 5]
for k, i in enumerate(ids):
    ref = np.asarray(Image.open(f"{sys.argv[2]}/{want.get(i, '?')}").convert("RGB"))
    ok = ok and src[k].endswith("/" + want[i]) and np.array_equal(f["images"][k], ref)
if not ok:
    print("ids", ids, "sources", src, file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
check_sh "the shard holds D, E and B2 for lines 3, 4, 5, pixel for pixel" '[ $? -eq 0 ]'
grep -q '"changed"' "$T/ed/ingest-stats.json"
check_sh "ingest-stats.json counts the changed records: $(cat "$T/ed/ingest-stats.json")" '[ $? -eq 0 ]'

finish
