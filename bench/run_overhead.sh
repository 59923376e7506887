#!/bin/bash
# What `nboost run` costs a teacher, against the same decoding done by
# `nboost caption --shards` (the same checkpoint, the same decode batch of
# 16, the same thread count, the same shards; K = 0 because caption decodes
# the clean stream only):
#   A. a lone teacher: `mpirun -np 4 nboost run` (1 teacher with THREADS
#      threads, 1 filter, 1 student with student.start = after_labeling, so
#      it sleeps while labeling runs, and the master) against one caption
#      process with THREADS threads. The issue's bound: the teacher with an
#      idle master and filter beside it is at most 10% slower (ratio >= 0.90).
#   E. end to end: `nboost run` with T teachers (E_THREADS threads each)
#      against T caption processes started together, each on 1/T of the
#      shards. The bound: run labels at least 90% as fast.
# Both sides of A and of E run in every rep, interleaved; figures are
# medians over REPS. Two rates per side:
#   - steady: least-squares slope of images labeled against time between
#     10% and 90% of the images (run: the master's "unit" events in
#     events.jsonl; caption: its output lines, timestamped as they arrive);
#   - launch-to-last: N images / (time of the last label - launch), so
#     start-up (mpirun, the model sent to the teachers, the shard checks)
#     counts.
# After the reps, one more run of A (not timed: the sampler reads /proc)
# gives the CPU the master, the filter and the sleeping student used while
# units were being labeled (from /proc/PID/stat, every 0.5 s).
#
#   bash bench/run_overhead.sh [NBOOST]
#   env: CKPT=teacher checkpoint (default /tmp/demo-out/teacher/checkpoint.h5
#        if present, else a 30-step teacher trained here: short training
#        gives captions of another length, say which), N=4096 images,
#        THREADS=2, T=2, E_THREADS=1, REPS=3
# Last line: JSON.
set -eu
NBOOST=$(readlink -f "${1:-${NBOOST:-build/nboost}}")
N=${N:-4096}
THREADS=${THREADS:-2}
T=${T:-2}
E_THREADS=${E_THREADS:-1}
REPS=${REPS:-3}
PY=/usr/bin/python3
SRC=$(cd "$(dirname "$0")/.." && pwd)
export HDF5_PLUGIN_PATH=${HDF5_PLUGIN_PATH:-$(dirname "$NBOOST")/plugins}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_plm=isolated
export OMPI_MCA_rmaps_base_oversubscribe=1
MPIEXEC=${MPIEXEC:-mpirun}
W=$(mktemp -d "${TMPDIR:-/tmp}/nb-bench-run.XXXXXX")
trap 'rm -rf "$W"' EXIT
now() { date +%s.%N; }

echo "== data: $N unlabeled scenes in shards of 512 (nboost synth)"
"$NBOOST" synth --out "$W/data" --labeled 64 --unlabeled "$N" --test 16 --seed 7 --shard-size 512 -q
if [ -z "${CKPT:-}" ]; then
	if [ -f /tmp/demo-out/teacher/checkpoint.h5 ]; then
		CKPT=/tmp/demo-out/teacher/checkpoint.h5
	else
		echo "== no CKPT: training a 30-step teacher (its captions are not the trained length)"
		"$NBOOST" train "$SRC/jobs/demo.conf" --labeled "$W/data/labeled" --out "$W/teacher" \
			--train.steps=30 --train.warmup=3 --train.log_every=10 >/dev/null
		CKPT=$W/teacher/checkpoint.h5
	fi
fi
cp "$CKPT" "$W/teacher.h5"
echo "== teacher: $CKPT"
# E's caption processes: shard i goes to part i mod T.
for p in $(seq 0 $((T - 1))); do mkdir -p "$W/part$p"; done
i=0
for f in "$W"/data/unlabeled/*.h5; do
	ln -s "$f" "$W/part$((i % T))/$(basename "$f")"
	i=$((i + 1))
done

cat >"$W/job.conf" <<EOF
[model]
image_size = 48
patch = 8
enc_dim = 128
enc_layers = 2
enc_heads = 4
dec_dim = 128
dec_layers = 4
dec_heads = 4
mlp_ratio = 4
max_text = 41

[train]
steps = 1
batch = 8
lr = 1e-3
warmup = 0
seed = 1
checkpoint_every = 1
log_every = 1
watch_every = 0

[noise]
sigma = 0.3

[corpus]
labeled = $W/data/labeled
unlabeled = $W/data/unlabeled
test = $W/data/test

[run]
teachers = 1
filters = 1
students = 1
rounds = 1
unit = 64
in_flight = 2
progress_every = 60

[teacher]
model = $W/teacher.h5
K = 0
sigma = 0.3
batch = 16

[filter]
vote = 1
mode = whole
min_score = 0

[student]
start = after_labeling
init = scratch
EOF

# Timestamps each line of stdin as it arrives: "unix_time".
cat >"$W/stamp.py" <<'EOF'
import sys, time
out = open(sys.argv[1], "w")
r = sys.stdin.buffer
while True:
    l = r.readline()
    if not l:
        break
    out.write("%.6f\n" % time.time())
EOF

# /proc sampler: every 0.5 s, "time rank utime+stime(ticks)" for each
# nboost process of this run (NB_BENCH_TAG in its environment; the rank
# from OMPI_COMM_WORLD_RANK).
cat >"$W/sample.py" <<'EOF'
import os, sys, time
out = open(sys.argv[1], "w")
stop = sys.argv[2]
tag = ("NB_BENCH_TAG=" + sys.argv[3]).encode()
while not os.path.exists(stop):
    t = time.time()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if b"nboost" not in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0]:
                continue
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            if tag not in env:
                continue
            rank = [e.split(b"=", 1)[1].decode() for e in env if e.startswith(b"OMPI_COMM_WORLD_RANK=")]
            if not rank:
                continue
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            out.write(f"{t:.6f} {rank[0]} {int(f[11]) + int(f[12])}\n")
        except OSError:
            pass
    out.flush()
    time.sleep(0.5)
EOF

run_case() { # NAME TEACHERS THREADS [sample]
	local name=$1 teachers=$2 threads=$3 t0
	rm -rf "$W/$name"
	if [ "${4:-}" = sample ]; then
		rm -f "$W/$name.stop"
		$PY "$W/sample.py" "$W/$name.cpu" "$W/$name.stop" "$W" &
		SAMPLER=$!
	fi
	t0=$(now)
	NB_BENCH_TAG=$W OMP_NUM_THREADS=$threads timeout 900 "$MPIEXEC" -np $((teachers + 3)) \
		-x OMP_NUM_THREADS -x NB_BENCH_TAG \
		"$NBOOST" run "$W/job.conf" --out "$W/$name" --run.teachers="$teachers" 2>"$W/$name.log" ||
		{ cat "$W/$name.log" >&2; exit 1; }
	echo "$t0" >"$W/$name.t0"
	if [ "${4:-}" = sample ]; then
		touch "$W/$name.stop"
		wait "$SAMPLER"
	fi
}

caption_case() { # NAME PARTS THREADS: PARTS caption processes started together
	local name=$1 parts=$2 threads=$3 t0 pids=() p
	t0=$(now)
	if [ "$parts" = 1 ]; then
		(OMP_NUM_THREADS=$threads "$NBOOST" caption --model "$W/teacher.h5" --shards "$W/data/unlabeled" \
			--batch 16 2>"$W/$name.0.log" | $PY "$W/stamp.py" "$W/$name.0.ts") &
		pids+=($!)
	else
		for p in $(seq 0 $((parts - 1))); do
			(OMP_NUM_THREADS=$threads "$NBOOST" caption --model "$W/teacher.h5" --shards "$W/part$p" \
				--batch 16 2>"$W/$name.$p.log" | $PY "$W/stamp.py" "$W/$name.$p.ts") &
			pids+=($!)
		done
	fi
	for p in "${pids[@]}"; do wait "$p"; done
	echo "$t0" >"$W/$name.t0"
}

echo "== $REPS reps; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$REPS"); do
	run_case "runA$r" 1 "$THREADS"
	caption_case "capA$r" 1 "$THREADS"
	run_case "runE$r" "$T" "$E_THREADS"
	caption_case "capE$r" "$T" "$E_THREADS"
	echo "rep $r done; load $(cut -d' ' -f1 /proc/loadavg)"
done
run_case runS 1 "$THREADS" sample

$PY - "$W" "$REPS" "$N" "$THREADS" "$T" "$E_THREADS" "$CKPT" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'EOF'
import glob, json, os, statistics, sys
W, reps, N, threads, T, ethreads, ckpt, load = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7], sys.argv[8]

def rates(points, t0):
    """points: (time, images) per event. Steady slope between 10% and 90% of
    the images; launch-to-last rate."""
    points.sort()
    cum, xs, ys = 0, [], []
    for t, n in points:
        cum += n
        xs.append(t), ys.append(cum)
    total = ys[-1]
    sel = [(x, y) for x, y in zip(xs, ys) if 0.1 * total <= y <= 0.9 * total]
    mx = sum(x for x, _ in sel) / len(sel)
    my = sum(y for _, y in sel) / len(sel)
    slope = sum((x - mx) * (y - my) for x, y in sel) / sum((x - mx) ** 2 for x, _ in sel)
    return slope, total / (xs[-1] - t0), total, xs[0], xs[-1]

def run_rates(name):
    t0 = float(open(f"{W}/{name}.t0").read())
    pts = []
    for l in open(f"{W}/{name}/events.jsonl"):
        e = json.loads(l)
        if e["ev"] == "unit":
            pts.append((e["t"], e["seen"]))
    return rates(pts, t0)

def cap_rates(name):
    t0 = float(open(f"{W}/{name}.t0").read())
    pts = []
    for f in glob.glob(f"{W}/{name}.*.ts"):
        pts += [(float(l), 1) for l in open(f)]
    return rates(pts, t0)

def cpu(name, t_first, t_last):
    """Cores used per rank between the first and the last unit event."""
    by = {}
    for l in open(f"{W}/{name}.cpu"):
        t, rank, ticks = l.split()
        by.setdefault(int(rank), []).append((float(t), int(ticks)))
    hz = os.sysconf("SC_CLK_TCK")
    out = {}
    for rank, s in by.items():
        s = [p for p in s if t_first <= p[0] <= t_last]
        if len(s) >= 2:
            out[rank] = (s[-1][1] - s[0][1]) / hz / (s[-1][0] - s[0][0])
    return out

rows = []
for r in range(1, reps + 1):
    ra, ca, re_, ce = run_rates(f"runA{r}"), cap_rates(f"capA{r}"), run_rates(f"runE{r}"), cap_rates(f"capE{r}")
    assert ra[2] == N and ca[2] == N and re_[2] == N and ce[2] == N, (ra[2], ca[2], re_[2], ce[2])
    rows.append(dict(runA=ra[:2], capA=ca[:2], runE=re_[:2], capE=ce[:2]))
    print(f"rep {r}: A: run {ra[0]:.1f} img/s steady, {ra[1]:.1f} launch-to-last; caption {ca[0]:.1f}, {ca[1]:.1f}"
          f" | E (T={T}): run {re_[0]:.1f}, {re_[1]:.1f}; caption x{T} {ce[0]:.1f}, {ce[1]:.1f}")
rs = run_rates("runS")
c = cpu("runS", rs[3], rs[4])

med = lambda f: statistics.median(f(x) for x in rows)
res = {
    "A_run_steady": med(lambda x: x["runA"][0]), "A_caption_steady": med(lambda x: x["capA"][0]),
    "A_ratio_steady": med(lambda x: x["runA"][0] / x["capA"][0]),
    "A_run_launch": med(lambda x: x["runA"][1]), "A_caption_launch": med(lambda x: x["capA"][1]),
    "A_ratio_launch": med(lambda x: x["runA"][1] / x["capA"][1]),
    "E_run_steady": med(lambda x: x["runE"][0]), "E_caption_steady": med(lambda x: x["capE"][0]),
    "E_ratio_steady": med(lambda x: x["runE"][0] / x["capE"][0]),
    "E_run_launch": med(lambda x: x["runE"][1]), "E_caption_launch": med(lambda x: x["capE"][1]),
    "E_ratio_launch": med(lambda x: x["runE"][1] / x["capE"][1]),
}
names = {0: "master", 1: "teacher", 2: "filter", 3: "student"}
cores = {names.get(k, str(k)): v for k, v in sorted(c.items())}
print(f"A, 1 teacher x {threads} threads vs caption x {threads} threads, {N} images, K=0, median of {reps}:"
      f" run {res['A_run_steady']:.1f} img/s, caption {res['A_caption_steady']:.1f} img/s, ratio"
      f" {res['A_ratio_steady']:.3f} (launch-to-last {res['A_ratio_launch']:.3f}); bound >= 0.90")
print(f"E, {T} teachers x {ethreads} thread(s) vs {T} captions x {ethreads}: run {res['E_run_steady']:.1f} img/s,"
      f" captions {res['E_caption_steady']:.1f} img/s, ratio {res['E_ratio_steady']:.3f}"
      f" (launch-to-last {res['E_ratio_launch']:.3f}); bound >= 0.90")
print(f"cores used while labeling (A, the sampled run: {rs[0]:.1f} img/s): " + ", ".join(f"{k} {v:.3f}" for k, v in cores.items()))
print(json.dumps(dict(bench="run_overhead", checkpoint=ckpt, images=N, reps=reps, threads=threads, teachers=T,
                      e_threads=ethreads, load_after=load, cores_while_labeling=cores,
                      **{k: round(v, 4) for k, v in res.items()})))
EOF
