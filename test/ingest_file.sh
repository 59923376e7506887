#!/bin/bash
# Ingest of file:// URLs (no server): damaged JPEGs are decode_error, a FIFO
# or other non-regular file is file_error at once (under a timeout, so a
# regression that blocks in open() fails instead of hanging).
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

finish
