#!/bin/bash
# nboost run end to end under mpirun (shared/DESIGN.md §3-§4):
#   1. a 4-rank run: the run directory, the journal, every pseudo shard read
#      back with h5py against the unlabeled corpus and labels.json;
#   2. the pseudo-labels do not depend on the split (1 teacher + 1 filter vs
#      2 + 2) with a fixed teacher checkpoint;
#   3. kill -9 of the whole job at random moments aimed at each phase (teacher
#      training, labeling, student training; two rounds), rerun after each:
#      the same pseudo-labels, labels.json, teachers and students as an
#      uninterrupted run;
#   4. SIGTERM to the ranks and SIGUSR1 to mpirun during labeling: every rank
#      exits 75 (stopped, resumable), the run stops resumable; SIGTERM to mpirun (Open MPI's own
#      handling): every process exits; the rerun gives the same pseudo-labels
#      and labels.json;
#   5. bad input: each fails fast with a message naming the cause;
#   6. the wall time of the 4-rank run, printed.
# Every mpirun runs in its own session under `timeout`; a process of it that
# outlives mpirun is a failure (and is killed). NB_RUN_SEED fixes the random
# kill moments.
source "$(dirname "$0")/lib.sh"
NBOOST=${NBOOST:-build/nboost}
MPIEXEC=${MPIEXEC:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}
command -v "$MPIEXEC" >/dev/null || { echo "$NB_TEST_NAME: no mpirun ($MPIEXEC), skipped"; exit 77; }
$PY -c 'import h5py' 2>/dev/null || { echo "$NB_TEST_NAME: no h5py, skipped"; exit 77; }
SEED=${NB_RUN_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
echo "$NB_TEST_NAME: seed $SEED (NB_RUN_SEED=$SEED repeats the kill moments)"
START=$(date +%s.%N)
elapsed() { echo "$(date +%s.%N) - $1" | bc; }
LAP=$START
lap() { echo "$NB_TEST_NAME: $1 took $(elapsed "$LAP") s"; LAP=$(date +%s.%N); }

# ---- the h5py side: validate a run directory, digest its pseudo-labels ----
cat >"$T/pseudo.py" <<'EOF'
import glob, hashlib, json, os, re, signal, sys, time
if sys.argv[1] not in ("signal", "phase"):  # these must start fast
    import h5py
    import numpy as np

def journal(rundir):
    return [json.loads(l) for l in open(os.path.join(rundir, "journal.jsonl"))]

def replay(recs):
    """Per round: the done units and the committed shards {name: samples}."""
    done, shards, pending, rnd = {}, {}, {}, 0
    for r in recs[1:]:
        ev = r["ev"]
        if ev == "unit":
            if r["accepted"] == 0:
                done.setdefault(rnd, []).append(r["unit"])
            else:
                pending[r["unit"]] = r["shard"]
        elif ev == "shard":
            units = [u for u, s in pending.items() if s == r["shard"]]
            done.setdefault(rnd, []).extend(units)
            for u in units:
                del pending[u]
            shards.setdefault(rnd, {})[r["shard"]] = r["samples"]
        elif ev == "resume":
            pending.clear()
        elif ev == "round":
            rnd += 1
    return done, shards

def unlabeled(d):
    """id -> image, and the ids of each unit of `unit` images, in unit order."""
    imgs, units = {}, []
    for p in sorted(glob.glob(os.path.join(d, "*.h5"))):
        with h5py.File(p, "r") as f:
            ids = f["ids"][:]
            im = f["images"][:]
        for i, x in zip(ids, im):
            imgs[int(i)] = x
        units.append(ids)
    return imgs, units

def shard_files(rundir, r, everything=False):
    """The pseudo-label shards of round r (with everything: all entries)."""
    d = os.path.join(rundir, "round-%d" % r, "pseudo")
    names = sorted(os.listdir(d)) if os.path.isdir(d) else []
    return d, names if everything else [n for n in names if re.match(r"unit-[0-9]+\.h5$", n)]

def read(path):
    with h5py.File(path, "r") as f:
        a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        return a, {k: f[k][:] for k in ("ids", "offsets", "tokens", "score", "images")}

def check(rundir, rounds, unl, unit):
    bad = []
    recs = journal(rundir)
    for i, l in enumerate(open(os.path.join(rundir, "events.jsonl"))):
        try:
            json.loads(l)
        except ValueError:
            bad.append("events.jsonl:%d: not JSON: %r" % (i + 1, l[:100]))
    for r in range(rounds):
        st = os.path.join(rundir, "round-%d" % r, "staging")
        # (a crashed writer's hidden temporary may stay when its pid was
        # still taken, e.g. by a zombie, when the round ended)
        left = [f for f in os.listdir(st) if not re.match(r"\..*\.tmp\.[0-9]+$", f)] if os.path.isdir(st) else []
        if left:
            bad.append("%s: left behind: %s" % (st, left))
    if recs[-1].get("ev") != "done":
        bad.append("journal: last record %s, not done" % recs[-1])
    done, committed = replay(recs)
    imgs, per_shard = unlabeled(unl)
    expect_units = []
    for ids in per_shard:
        expect_units += [set(int(i) for i in ids[s:s + unit]) for s in range(0, len(ids), unit)]
    for r in range(rounds):
        lab = json.load(open(os.path.join(rundir, "round-%d" % r, "labels.json")))
        d, names = shard_files(rundir, r, everything=True)
        units = sorted(done.get(r, []))
        if units != list(range(len(expect_units))) or lab["units"] != len(expect_units):
            bad.append("round %d: journal units done %s, labels.json units %d, expected %d" %
                       (r, units, lab["units"], len(expect_units)))
        if set(names) != set(committed.get(r, {})):
            bad.append("round %d: files %s but journal commits %s" % (r, names, sorted(committed.get(r, {}))))
        seen, total = set(), 0
        for name in names:
            p = os.path.join(d, name)
            try:
                a, x = read(p)
            except Exception as e:
                bad.append("%s: cannot read: %s" % (p, e))
                continue
            n = len(x["ids"])
            ids = [int(i) for i in x["ids"]]
            o = x["offsets"]
            if a.get("origin") != "pseudo" or int(a.get("round", -1)) != r:
                bad.append("%s: origin %r round %r" % (p, a.get("origin"), a.get("round")))
            if not (np.all(x["score"] > 0) and np.all(x["score"] <= 1)):
                bad.append("%s: scores outside (0,1]: %s" % (p, x["score"]))
            if len(o) != n + 1 or o[0] != 0 or o[-1] != len(x["tokens"]) or np.any(np.diff(o.astype(np.int64)) <= 0):
                bad.append("%s: empty caption or bad offsets %s" % (p, o))
            u = int(name[len("unit-"):-len(".h5")]) if name.startswith("unit-") else -1
            if not (0 <= u < len(expect_units)) or not set(ids) <= expect_units[u]:
                bad.append("%s: ids %s not all from unit %d of the unlabeled corpus" % (p, ids, u))
            if seen & set(ids) or len(set(ids)) != n:
                bad.append("%s: ids labeled twice: %s" % (p, sorted(seen & set(ids))))
            seen |= set(ids)
            for i, im in zip(ids, x["images"]):
                if i in imgs and not np.array_equal(imgs[i], im):
                    bad.append("%s: image of id %d differs from the unlabeled one" % (p, i))
                    break
            if committed.get(r, {}).get(name) != n:
                bad.append("%s: %d samples, the journal says %s" % (p, n, committed.get(r, {}).get(name)))
            total += n
        if lab["accepted"] != total or lab["seen"] != len(imgs):
            bad.append("round %d: labels.json accepted %d seen %d, shards hold %d of %d images" %
                       (r, lab["accepted"], lab["seen"], total, len(imgs)))
    for b in bad:
        print("pseudo check:", b, file=sys.stderr)
    return 1 if bad else 0

def digest(rundir, rounds):
    out = []
    for r in range(rounds):
        h, n = hashlib.sha256(), 0
        d, names = shard_files(rundir, r)
        for name in names:
            _, x = read(os.path.join(d, name))
            h.update(name.encode())
            for k in ("ids", "offsets", "tokens", "score"):
                h.update(x[k].tobytes())
            n += len(x["ids"])
        out.append("r%d:%d:%d:%s" % (r, len(names), n, h.hexdigest()[:16]))
    print(" ".join(out))
    return 0

def phase(rundir, nunits):
    """What the run was doing, from its journal."""
    p = os.path.join(rundir, "journal.jsonl")
    if not os.path.exists(p) or os.path.getsize(p) == 0:
        print("starting (no journal)")
        return 0
    recs = []
    for l in open(p):
        try:
            recs.append(json.loads(l))
        except ValueError:
            print("torn journal line", end=" ")
    done, _ = replay(recs)
    rnd = sum(1 for r in recs if r.get("ev") == "round")
    teacher = any(r.get("ev") == "teacher" and r["round"] == rnd for r in recs)
    n = len(done.get(rnd, []))
    if recs[-1].get("ev") == "done":
        print("finished")
    elif not teacher:
        print("round 0 teacher training" if rnd == 0 else "round %d: between rounds" % rnd)
    elif n < nunits:
        print("round %d labeling (%d/%d units done)" % (rnd, n, nunits))
    else:
        print("round %d student training" % rnd)
    return 0

def params(path):
    with h5py.File(path, "r") as f:
        print(f.attrs["params_digest"].decode() if isinstance(f.attrs["params_digest"], bytes)
              else f.attrs["params_digest"], int(f.attrs["step"]))
    return 0

def session(sid, only_children=False):
    """The live processes of session sid (with only_children, mpirun's ranks)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()  # state ppid pgrp session ...
        if int(f[3]) == sid and f[0] != "Z" and (not only_children or int(f[1]) == sid):
            out.append(int(d))
    return out

def send(journal, start, what, n, other, delay, sid, sig, target):
    """Waits until n records of journal past byte `start` match the regex
    `what` or one matches `other` ("-": none), sleeps `delay` (what "-":
    waits `delay`, or until `other` matches), then sends signal `sig` to the
    target of session sid: "all" (every process, at once), "ranks" (mpirun's
    children), "group" (mpirun's process group). Prints "sent", or "ended"
    if the job ended first."""
    start, n, delay, sid = int(start), int(n), float(delay), int(sid)
    rw = re.compile(what) if what != "-" else None
    ro = re.compile(other) if other != "-" else None
    buf, pos, count, fired = b"", start, 0, rw is None and ro is None
    deadline = time.time() + delay if rw is None else None
    while not fired:
        if deadline and time.time() >= deadline:
            break
        if not os.path.exists("/proc/%d" % sid):
            print("ended")
            return 0
        try:
            with open(journal, "rb") as f:
                f.seek(0, 2)
                if f.tell() < pos:  # a torn line was cut off
                    pos, buf = f.tell(), b""
                f.seek(pos)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        pos += len(chunk)
        lines = (buf + chunk).split(b"\n")
        buf = lines.pop()
        for l in lines:
            l = l.decode("utf-8", "replace")
            count += bool(rw and rw.search(l))
            if (rw and count >= n) or (ro and ro.search(l)):
                fired = True
                break
        if not fired:
            time.sleep(0.002)
    if rw is not None or ro is None:
        time.sleep(delay)
    signo = getattr(signal, "SIG" + sig)
    pids = [-sid] if target == "group" else session(sid, target == "ranks")
    if not pids or not os.path.exists("/proc/%d" % sid):
        print("ended")
        return 0
    for p in pids:
        try:
            os.kill(p, signo)
        except OSError:
            pass
    print("sent")
    return 0

def samples(a, b):
    """The round-0 pseudo-labels of two runs, whatever their units, agree."""
    def load(rundir):
        d, names = shard_files(rundir, 0)
        out = []
        for name in names:
            _, x = read(os.path.join(d, name))
            o = x["offsets"]
            out += [(int(i), x["tokens"][o[k]:o[k + 1]].tobytes(), float(x["score"][k]))
                    for k, i in enumerate(x["ids"])]
        return sorted(out)
    sa, sb = load(a), load(b)
    if sa != sb:
        print("pseudo-labels differ: %d vs %d samples" % (len(sa), len(sb)), file=sys.stderr)
        return 1
    return 0

def labels(a, b, rounds):
    """labels.json of two runs agree, but for the wall time."""
    for r in range(rounds):
        x, y = [json.load(open(os.path.join(d, "round-%d" % r, "labels.json"))) for d in (a, b)]
        x.pop("wall_s"), y.pop("wall_s")
        if x != y:
            print("labels.json of round %d differ:\n %s\n %s" % (r, x, y), file=sys.stderr)
            return 1
    return 0

cmd, a = sys.argv[1], sys.argv[2:]
if cmd == "check":
    sys.exit(check(a[0], int(a[1]), a[2], int(a[3])))
elif cmd == "digest":
    sys.exit(digest(a[0], int(a[1])))
elif cmd == "phase":
    sys.exit(phase(a[0], int(a[1])))
elif cmd == "signal":
    sys.exit(send(*a))
elif cmd == "samples":
    sys.exit(samples(a[0], a[1]))
elif cmd == "labels":
    sys.exit(labels(a[0], a[1], int(a[2])))
elif cmd == "params":
    sys.exit(params(a[0]))
EOF
pseudo() { $PY "$T/pseudo.py" "$@"; }

# ---- jobs in their own session ----
SIDS=()
# launch NAME NP ARGS...: `mpirun -np NP nboost run ARGS` in the background,
# in a new session whose leader is mpirun ($SID); stderr in $T/NAME.err.
launch() {
	local name=$1 np=$2
	shift 2
	rm -f "$T/$name.sid"
	timeout -k 5 "${RUN_TIMEOUT:-120}" setsid bash -c 'echo $$ >"$0"; exec "$@"' "$T/$name.sid" \
		"$MPIEXEC" -np "$np" "$NBOOST" run "$@" >"$T/$name.out" 2>"$T/$name.err" &
	JOB=$!
	while [ ! -s "$T/$name.sid" ] && kill -0 $JOB 2>/dev/null; do sleep 0.01; done
	SID=$(cat "$T/$name.sid" 2>/dev/null || echo 0)
	SIDS+=("$SID")
	KILLED=0
}
# The live processes of session $1 (mpirun and its ranks).
session_pids() { ps -o pid=,stat= -s "$1" 2>/dev/null | awk '$2 !~ /^Z/ {print $1}'; }
# reap NAME: waits for the job (exit status in RC); any process of its
# session still there 5 s later is a failure, and is killed.
reap() {
	wait $JOB
	RC=$?
	local left
	for _ in $(seq 50); do
		left=$(session_pids "$SID")
		[ -z "$left" ] && break
		sleep 0.1
	done
	if [ -n "$left" ]; then
		bad "$1: processes outlived mpirun: $(ps -o pid=,cmd= -p "$(echo $left | tr ' ' ,)" | cut -c1-80)"
		kill -9 $left 2>/dev/null
	fi
	if [ "$KILLED" = 0 ] && { [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; }; then
		bad "$1: timed out ($(tail -c 300 "$T/$1.err"))"
	fi
	return 0
}
at_exit 'for s in "${SIDS[@]}"; do p=$(session_pids "$s"); [ -n "$p" ] && kill -9 $p 2>/dev/null; done'
nbrun() { local name=$1; shift; launch "$name" "$@"; reap "$name"; }
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
rand() { DELAY=$(echo "scale=3; $1 + ($2 - $1) * $RANDOM / 32767" | bc); }
# signal_when SIG TARGET DELAY JOURNAL FROM WHAT N ELSE: in the background,
# for the job just launched: once N records of JOURNAL past byte FROM match
# the regex WHAT, or one matches ELSE ("-": none), and DELAY s later, SIG to
# TARGET: all (every process of the job at once), ranks, or group (mpirun's
# process group). WHAT "-": after DELAY s, or at once when ELSE matches.
# Then `signal_done` waits for it: SENT=1 when it signalled, 0 when the job
# ended first.
signal_when() {
	pseudo signal "$4" "$5" "$6" "$7" "$8" "$3" "$SID" "$1" "$2" >"$T/signal.out" &
	SP=$!
}
signal_done() { wait $SP; SENT=0; grep -q sent "$T/signal.out" && SENT=1; }

# ---- data ----
"$NBOOST" synth --out "$T/D" --labeled 128 --unlabeled 96 --test 32 --size 16 --shard-size 48 -q ||
	{ echo "cannot make the corpus"; exit 1; }
D=$T/D
# A teacher trained 200 steps labels with noise-dependent votes (about 70%
# accepted at teacher.sigma 1), so the pseudo set is sensitive to the noise
# draws; 40 steps gives one caption for every image.
J=(jobs/run-tiny.conf --corpus.labeled="$D/labeled" --corpus.unlabeled="$D/unlabeled" --corpus.test="$D/test"
   --train.steps=200 --train.lr=5e-3 --teacher.sigma=1.0)

# ---- 1. one 4-rank run ----
t0=$(date +%s.%N)
nbrun c1 4 "${J[@]}" --out "$T/r1"
WALL1=$(elapsed "$t0")
check "1: 4-rank run exits 0 ($(tail -c 400 "$T/c1.err"))" test "$RC" -eq 0
for f in journal.jsonl events.jsonl config.conf round-0/teacher.h5 round-0/student.h5 round-0/labels.json; do
	check "1: $f exists" test -s "$T/r1/$f"
done
check_sh "1: pseudo shards exist" 'compgen -G "$T/r1/round-0/pseudo/unit-*.h5" >/dev/null'
check "1: the journal ends with done" test "$(tail -n 1 "$T/r1/journal.jsonl")" = '{"ev":"done"}'
check "1: pseudo shards, journal and labels.json agree" pseudo check "$T/r1" 1 "$D/unlabeled" 16
check_sh "1: some samples rejected, some accepted" \
	'grep -qE "\"accepted\": [1-9][0-9]*, \"rejected_no_statement\": 0, \"rejected_too_few_votes\": [1-9]" "$T/r1/round-0/labels.json"'
lap "case 1"

# ---- 2. the split does not change the labels ----
TEACHER=$T/teacher.h5
cp "$T/r1/round-0/teacher.h5" "$TEACHER"
J2=("${J[@]}" --teacher.model="$TEACHER" --run.unit=8)
nbrun c2a 4 "${J2[@]}" --out "$T/r2a"
check "2: 4 ranks exit 0 ($(tail -c 300 "$T/c2a.err"))" test "$RC" -eq 0
nbrun c2b 6 "${J2[@]}" --run.teachers=2 --run.filters=2 --out "$T/r2b"
check "2: 6 ranks exit 0 ($(tail -c 300 "$T/c2b.err"))" test "$RC" -eq 0
check "2: 6-rank pseudo shards valid" pseudo check "$T/r2b" 1 "$D/unlabeled" 8
D2A=$(pseudo digest "$T/r2a" 1)
D2B=$(pseudo digest "$T/r2b" 1)
echo "pseudo-labels: 1+1: $D2A  2+2: $D2B"
check "2: 2 teachers + 2 filters label exactly as 1 + 1 ($D2A vs $D2B)" test "$D2A" = "$D2B"
# the same teacher file as case 1, so the same samples (cut into 8-image units)
check "2: same samples as case 1, whose teacher it is" pseudo samples "$T/r1" "$T/r2a"

lap "case 2"

# ---- 3. kill -9 at random moments, rerun after each ----
# Two rounds, students after labeling (deterministic), 4-image units (24 a
# round: more commits to land in, and labeling long enough to hit).
J3=("${J[@]}" --student.start=after_labeling --run.rounds=2 --run.unit=4)
nbrun c3ref 4 "${J3[@]}" --out "$T/r3ref"
check "3: uninterrupted 2-round run exits 0 ($(tail -c 300 "$T/c3ref.err"))" test "$RC" -eq 0
R3=$T/r3k
# Kills, in order, as WHAT;N;ELSE;LO;HI: wait until N journal records of
# this attempt match the regex WHAT, N drawn from the range given, or one
# matches ELSE (a later phase: the one aimed at is over); then sleep a random
# LO..HI s and SIGKILL every process of the job at once. WHAT "-": kill after
# the random LO..HI s, or when ELSE matches if that comes first. Aimed at:
# the round-0 teacher's training, round 0's labeling, its student, round 1's
# labeling, anywhere (at random), round 1's student.
KILLS=('teacher\.h5;1-10;"ev":"unit"|student\.h5;0;0.05' '"ev":"unit";1-16;student\.h5;0;0.05'
       'round-0/student\.h5;1-15;"round":1;0;0.1' '"ev":"unit","round":1;1-16;round-1/student\.h5;0;0.05'
       '-;0;round-1/student\.h5;0.3;3.0' 'round-1/student\.h5;1-15;"ev":"done";0;0.1')
effective=0 phases="" i=0
for k in "${KILLS[@]}"; do
	i=$((i + 1))
	IFS=';' read -r what n other lo hi <<<"$k"
	[ "$n" != 0 ] && n=$((${n%-*} + RANDOM % (${n#*-} - ${n%-*} + 1)))
	rand "$lo" "$hi"
	from=$(size "$R3/journal.jsonl")
	launch c3k$i 4 "${J3[@]}" --out "$R3"
	signal_when KILL all "$DELAY" "$R3/journal.jsonl" "$from" "$what" "$n" "$other"
	signal_done
	KILLED=$SENT
	reap c3k$i
	ph=$(pseudo phase "$R3" 24)
	echo "kill $i (${n}x '$what' + ${DELAY}s): $ph"
	[ "$KILLED" = 1 ] && case $ph in finished*) ;; *) effective=$((effective + 1)) phases="$phases|$ph" ;; esac
done
nbrun c3k 4 "${J3[@]}" --out "$R3"
check "3: the run completes after the kills ($(tail -c 400 "$T/c3k.err"))" test "$RC" -eq 0
check "3: at least 5 of ${#KILLS[@]} kills landed mid-run ($effective)" test "$effective" -ge 5
check "3: a kill landed during teacher training ($phases)" grep -q "teacher training" <<<"$phases"
check "3: a kill landed during labeling" grep -q labeling <<<"$phases"
check "3: a kill landed during student training" grep -q "student training" <<<"$phases"
check "3: the journal counts the restarts" test "$(grep -c '"ev":"resume"' "$R3/journal.jsonl")" -ge 4
check "3: pseudo shards, journal and labels.json agree" pseudo check "$R3" 2 "$D/unlabeled" 4
D3REF=$(pseudo digest "$T/r3ref" 2)
D3K=$(pseudo digest "$R3" 2)
echo "pseudo-labels: uninterrupted $D3REF  killed: $D3K"
check "3: the same pseudo-labels as the uninterrupted run" test "$D3REF" = "$D3K"
check "3: the same labels.json (reasons, ground-truth scores)" pseudo labels "$T/r3ref" "$R3" 2
teachers() { grep '"ev":"teacher"' "$1/journal.jsonl" | sed 's/.*"digest":"\([0-9a-f]*\)".*/\1/' | tr '\n' ' '; }
check "3: the same teachers (round 1's is round 0's student): $(teachers "$R3")" \
	test "$(teachers "$R3")" = "$(teachers "$T/r3ref")"
check "3: the same final student" test "$(pseudo params "$R3/round-1/student.h5")" = \
	"$(pseudo params "$T/r3ref/round-1/student.h5")"
lap "case 3"

# ---- 4. signals during labeling: stop, resumable, same labels ----
R4=$T/r4
# One unit in flight per teacher (run.in_flight does not change the labels),
# so that a stop leaves units to do.
J4=("${J2[@]}" --run.in_flight=1)
# stopped NAME RC: the job stopped cleanly during labeling, resumable
stopped() {
	local name=$1 want_rc=$2 ph
	check "4 $name: exit status $want_rc, got $RC ($(tail -c 300 "$T/$name.err"))" test "$RC" -eq "$want_rc"
	check "4 $name: the master says stopped" grep -q "run: stopped; rerun the same command" "$T/$name.err"
	check "4 $name: no rank failed" eval '! grep -qE "exited on signal|fatal" "$T/$name.err"'
	# mpirun reports the first non-zero exit: it must be the stop's 75
	check "4 $name: every non-zero exit is 75" eval '! grep "Exit code:" "$T/$name.err" | grep -qv "Exit code: *75$"'
	check "4 $name: the journal shows no done" eval '! grep -q "\"ev\":\"done\"" "$R4/journal.jsonl"'
	ph=$(pseudo phase "$R4" 12)
	echo "$name: stopped in $ph"
	check "4 $name: stopped during labeling ($ph)" grep -q labeling <<<"$ph"
}
# a: SIGTERM to every rank, as Slurm signals a step's tasks (--signal, time limit)
launch c4a 4 "${J4[@]}" --out "$R4"
signal_when TERM ranks 0 "$R4/journal.jsonl" 0 '"ev":"teacher"' 1 -
signal_done
reap c4a
stopped c4a 75
# b: SIGUSR1 to mpirun's process group: mpirun forwards it to the ranks
from=$(size "$R4/journal.jsonl")
launch c4b 4 "${J4[@]}" --out "$R4"
signal_when USR1 group 0 "$R4/journal.jsonl" "$from" '"ev":"resume"' 1 -
signal_done
reap c4b
stopped c4b 75
check "4 c4b: mpirun forwarded SIGUSR1" grep -q "run: signal 10: stopping" "$T/c4b.err"
# c: SIGTERM to mpirun's process group. Open MPI 4.1's mpirun then exits 1
# by design, relays SIGTERM to the ranks about 2 s later, and on some runs
# dies of a signal itself (139, 141) instead: no status or outcome to
# expect, only that every process exits and the run resumes.
from=$(size "$R4/journal.jsonl")
launch c4c 4 "${J4[@]}" --out "$R4"
signal_when TERM group 0 "$R4/journal.jsonl" "$from" '"ev":"resume"' 1 -
signal_done
reap c4c
echo "c4c: SIGTERM to mpirun: exit status $RC, $(grep -q 'run: stopped' "$T/c4c.err" && echo stopped || echo 'no stop message'), $(pseudo phase "$R4" 12)"
check "4 c4c: no rank failed" eval '! grep -qE "fatal" "$T/c4c.err"'
nbrun c4d 4 "${J4[@]}" --out "$R4"
check "4: the rerun completes ($(tail -c 300 "$T/c4d.err"))" test "$RC" -eq 0
check "4: pseudo shards, journal and labels.json agree" pseudo check "$R4" 1 "$D/unlabeled" 8
D4=$(pseudo digest "$R4" 1)
check "4: the same pseudo-labels as the uninterrupted run ($D4 vs $D2A)" test "$D4" = "$D2A"
check "4: the same labels.json" pseudo labels "$T/r2a" "$R4" 1
lap "case 4"

# ---- 5. bad input: a clear message, never a hang (all at once) ----
RUN_TIMEOUT=60
BG=()
# fails NAME NP NEEDLE ARGS...: in the background; fails_wait collects
fails() {
	local name=$1 np=$2 needle=$3
	shift 3
	(
		fail=0
		nbrun "$name" "$np" "$@"
		if [ "$RC" -eq 0 ] || [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
			bad "5 $name: exit status $RC: $(tail -c 300 "$T/$name.err")"
		elif ! grep -qF -- "$needle" "$T/$name.err"; then
			bad "5 $name: stderr lacks '$needle': $(head -c 400 "$T/$name.err")"
		fi
		echo "$fail" >"$T/$name.fails"
	) &
	BG+=($!)
}
fails_wait() {
	wait "${BG[@]}"
	local f
	for f in "$T"/*.fails; do
		if [ "$(cat "$f")" = 0 ]; then ok; else fail=$((fail + 1)); fi
	done
}
mkdir -p "$T/empty" "$T/corrupt" "$T/imgonly"
cp "$D/unlabeled/shard-000000.h5" "$T/corrupt/" && truncate -s 5000 "$T/corrupt/shard-000000.h5"
cp "$D/unlabeled/shard-000000.h5" "$T/imgonly/"
"$NBOOST" synth --out "$T/D24" --labeled 8 --unlabeled 8 --test 0 --size 24 -q
echo "not a checkpoint" >"$T/junk.h5"
# A labeled shard whose token ids follow another vocabulary (one written
# before shards stored /vocab: a /vocab that disagreed with the digest would
# be refused on open, schemas/caption_shard.md).
mkdir -p "$T/othervocab"
cp "$D/labeled/shard-000000.h5" "$T/othervocab/"
$PY -c "import h5py, numpy as np, sys
with h5py.File(sys.argv[1], 'r+') as f:
    del f['vocab']
    f.attrs.modify('vocab_digest', np.bytes_('0123456789abcdef'))" "$T/othervocab/shard-000000.h5"
fails small 3 "needs at least 4 ranks" "${J[@]}" --out "$T/e-small"
fails split 4 "for 4 ranks try --run.teachers=1 --run.filters=1 --run.students=1" "${J[@]}" --run.teachers=2 --out "$T/e-split"
fails empty 4 "the unlabeled corpus '$T/empty' holds no shards" "${J[@]}" --corpus.unlabeled="$T/empty" --out "$T/e-empty"
fails missing 4 "'$T/nonexistent': No such file or directory" "${J[@]}" --corpus.unlabeled="$T/nonexistent" --out "$T/e-missing"
fails corrupt 4 "'$T/corrupt/shard-000000.h5': truncated file" "${J[@]}" --corpus.unlabeled="$T/corrupt" --out "$T/e-corrupt"
fails wrongkind 4 "'$T/imgonly/shard-000000.h5' holds no captions" "${J[@]}" --corpus.labeled="$T/imgonly" --out "$T/e-kind"
fails size 4 "holds 24x24 images but [model] image_size is 16" "${J[@]}" --corpus.labeled="$T/D24/labeled" --out "$T/e-size"
fails usize 4 "holds 24x24 images but [model] image_size is 16" "${J[@]}" --corpus.unlabeled="$T/D24/unlabeled" --out "$T/e-usize"
fails notckpt 4 "teacher.model: cannot load checkpoint '$T/junk.h5': not an HDF5 file" "${J[@]}" --teacher.model="$T/junk.h5" --out "$T/e-ckpt"
fails typo 4 "unknown key 'run.teachrs' (did you mean 'run.teachers'?)" "${J[@]}" --run.teachrs=1 --out "$T/e-typo"
fails vocab 4 "was written with vocabulary 0123456789abcdef" "${J[@]}" --corpus.labeled="$T/othervocab" --out "$T/e-vocab"
fails value 4 "filter.mode = 'both' must be 'whole' or 'subset'" "${J[@]}" --filter.mode=both --out "$T/e-value"
fails vote 4 "filter.vote" "${J[@]}" --filter.vote=9 --out "$T/e-vote"
fails dpo 4 "train.objective = dpo: nboost run trains its students with cross-entropy" "${J[@]}" --train.objective=dpo --out "$T/e-dpo"
fails textonly 4 "train.text_only = 1: nboost run's students caption images" "${J[@]}" --train.text_only=1 --out "$T/e-textonly"
fails frozen 4 "belongs to a different job configuration" "${J[@]}" --teacher.K=2 --out "$T/r1"
fails_wait
check "5: the refused resume left the finished run alone" test "$(tail -n 1 "$T/r1/journal.jsonl")" = '{"ev":"done"}'
lap "case 5"

# ---- 6. timings ----
echo "$NB_TEST_NAME: 4-rank run (teacher + labeling 96 images + student, 200 steps each) took ${WALL1} s wall"
echo "$NB_TEST_NAME: whole test $(elapsed "$START") s"
finish
