#!/bin/bash
# Ingest throughput on loopback: nginx-light serves distinct 512x512 and
# 48x48 JPEGs; `nboost ingest --size 48` fetches, decodes, resizes and writes
# shards on one rank. Reports images/s (median of REPS runs), the time
# breakdown from ingest-stats.json, and the speed-up of libjpeg DCT scaling
# against full-size decoding measured in the same run.
#
#   bash bench/ingest.sh [NBOOST]     (env: N512=300 N48=1000 REPS=3 CONC=16)
set -eu
NBOOST=${1:-${NBOOST:-build/nboost}}
N512=${N512:-300}
N48=${N48:-1000}
REPS=${REPS:-3}
CONC=${CONC:-16}
PY=/usr/bin/python3
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
export HDF5_PLUGIN_PATH=${HDF5_PLUGIN_PATH:-$(dirname "$NBOOST")/plugins}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm=isolated
T=$(mktemp -d "${TMPDIR:-/tmp}/nb-bench-ingest.XXXXXX")
chmod 755 "$T"
NGX=
trap '[ -n "$NGX" ] && kill "$NGX" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT

mkdir -p "$T/www" "$T/ngx"
$PY - "$T/www" "$N512" "$N48" <<'EOF'
import sys, random
from PIL import Image, ImageDraw
root, n512, n48 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def scene(size, seed):
    r = random.Random(seed)
    im = Image.new("RGB", (size, size), tuple(r.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(im)
    for _ in range(8):
        x, y, s = r.randrange(size), r.randrange(size), r.randrange(size // 8, size // 3)
        box = [x - s, y - s, x + s, y + s]
        col = tuple(r.randrange(256) for _ in range(3))
        (d.ellipse if r.random() < 0.5 else d.rectangle)(box, fill=col)
    return im
for i in range(n512):
    scene(512, i).save(f"{root}/b{i}.jpg", quality=90)
for i in range(n48):
    scene(48, 10**6 + i).save(f"{root}/s{i}.jpg", quality=90)
EOF
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$T/ngx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $T/ngx/nginx.pid;
error_log $T/ngx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  client_body_temp_path $T/ngx/body; proxy_temp_path $T/ngx/proxy;
  fastcgi_temp_path $T/ngx/fcgi; uwsgi_temp_path $T/ngx/uwsgi; scgi_temp_path $T/ngx/scgi;
  server { listen 127.0.0.1:$PORT; root $T/www; }
}
EOF
"$NGINX" -p "$T/ngx" -c "$T/ngx/nginx.conf" &
NGX=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/s0.jpg" -o /dev/null && break; sleep 0.1; done

{ echo url; for i in $(seq 0 $((N512 - 1))); do echo "http://127.0.0.1:$PORT/b$i.jpg"; done; } > "$T/l512.tsv"
{ echo url; for i in $(seq 0 $((N48 - 1))); do echo "http://127.0.0.1:$PORT/s$i.jpg"; done; } > "$T/l48.tsv"

# run LABEL LIST [extra options]: prints "images/s network decode resize write" per run
run() {
	local label=$1 list=$2
	shift 2
	for r in $(seq "$REPS"); do
		rm -rf "$T/out"
		"$NBOOST" ingest "$list" --out "$T/out" --size 48 --concurrency "$CONC" --per-host "$CONC" -q "$@"
		$PY - "$T/out/ingest-stats.json" "$label" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
t = s["time_s"]
print(sys.argv[2], s["images"] / s["run_wall_s"], t["network"], t["decode"], t["resize"], t["write"], t["hash"],
      s["run_wall_s"], s["images"])
EOF
	done
}
run jpeg512_dct "$T/l512.tsv" > "$T/r1"
run jpeg512_full "$T/l512.tsv" --no-dct-scaling > "$T/r2"
run jpeg48 "$T/l48.tsv" > "$T/r3"
kill "$NGX"; wait "$NGX" 2>/dev/null || true; NGX=

$PY - "$T/r1" "$T/r2" "$T/r3" "$N512" "$N48" "$REPS" <<'EOF'
import sys, statistics, json
def load(p):
    rows = [l.split() for l in open(p)]
    med = statistics.median(float(r[1]) for r in rows)
    best = min(rows, key=lambda r: abs(float(r[1]) - med))
    return rows[0][0], med, [float(x) for x in best[2:]]
out = {}
for p in sys.argv[1:4]:
    label, ips, (net, dec, res, wr, hs, wall, n) = load(p)
    print(f"{label:14s} {ips:8.1f} images/s (median of {sys.argv[6]}; {int(n)} images, wall {wall:.2f} s): "
          f"network wait {net:.3f} s, decode {dec:.3f} s, resize {res:.3f} s, hash {hs:.3f} s, "
          f"shard write {wr:.3f} s")
    out[label] = {"images_per_s": round(ips, 1), "network_s": net, "decode_s": dec, "resize_s": res,
                  "write_s": wr, "hash_s": hs, "wall_s": wall}
ratio = out["jpeg512_dct"]["images_per_s"] / out["jpeg512_full"]["images_per_s"]
print(f"DCT scaling speed-up for 512x512 -> 48 (same run, baseline = full-size decode): {ratio:.2f}x")
print(f"512x512 JPEG per rank: {out['jpeg512_dct']['images_per_s']:.0f} images/s "
      f"(goal 300/core; img2dataset reference ~100/core)")
out["dct_speedup"] = round(ratio, 2)
out["bench"] = "ingest"
print(json.dumps(out))
EOF
