#!/bin/bash
# nboost experiment end to end with the tiny model (--quick, seconds): the
# report (results.md, results.json, SVG and PNG plots), the skip of finished
# jobs on a rerun, a failed job (the others still run, its dependants are
# skipped, exit 1), a clean stop on SIGTERM (exit 75) and the resume, two
# processes under mpirun sharing the jobs, lm/semi arms, and bad study files.
set -u
: "${NBOOST:?}"
source "$(dirname "$0")/lib.sh"
STUDY=$NB_SRC/jobs/study.conf
command -v gnuplot >/dev/null || { bad "gnuplot is not installed (scripts/setup installs gnuplot-nox)"; finish; }

# 1. --quick: 2 arms x 2 seeds, and the report
run_ok "experiment --quick" "$NBOOST" experiment "$STUDY" --out "$T/q" --quick
grep -q "4 of 4 jobs done" "$T/q/results.md" && ok || bad "results.md: $(head -5 "$T/q/results.md")"
for p in sigma-labels100 shift attention; do
	[ -s "$T/q/plots/$p.svg" ] && [ -s "$T/q/plots/$p.png" ] && ok || bad "plot $p missing"
done
$PY - "$T/q" <<'PY' && ok || bad "results.json / plots"
import json, sys, xml.dom.minidom
q = sys.argv[1]
r = json.load(open(f"{q}/results.json"))
assert r["format"] == "nboost.study-report" and r["quick"] and r["jobs"] == 4 and r["jobs_done"] == 4, r
arms = {a["name"]: a for a in r["arms"]}
assert set(arms) == {"s0", "s03"}, arms.keys()
for a in arms.values():
    assert a["seeds_done"] == 2 and len(a["results"]) == 2
    for res in a["results"]:
        assert res["commit"] and res["wall_s"] > 0 and res["cost"]["train"]["wall_s"] > 0
        assert set(res["eval"]) >= {"test", "test-counter-uniform", "test-shift-occlude-3", "test-dense"}, res["eval"].keys()
        assert res["attn"]["images"] == 8, res["attn"]
        # the summary is the mean of the seeds
        m = sum(x["eval"]["test"]["chair_i"] for x in a["results"]) / 2
        assert abs(a["summary"]["test"]["chair_i"]["mean"] - m) < 1e-9, (a["summary"]["test"], m)
    assert a["results"][0]["config"]["sigma"] == (0.3 if a["name"] == "s03" else 0)
p = arms["s03"]["paired"]["test"]["chair_i"]
d = [x["eval"]["test"]["chair_i"] - y["eval"]["test"]["chair_i"] for x, y in zip(arms["s03"]["results"], arms["s0"]["results"])]
assert p["diff"]["n"] == 2 and abs(p["diff"]["mean"] - sum(d) / 2) < 1e-6, (p, d)
assert p["exceeds_spread"] in ("yes", "no"), p
for f in ("sigma-labels100", "shift", "attention"):
    xml.dom.minidom.parse(f"{q}/plots/{f}.svg")
    assert open(f"{q}/plots/{f}.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
md = open(f"{q}/results.md").read()
for s in ("## Paired comparisons", "| s03 | s0 | test | CHAIR_i |", "## Attention", "## Cost", "![shift](plots/shift.svg)",
          "## CHAIR_i by statement position (test-dense)", "| captions with 7+ |"):
    assert s in md, s
PY

# 2. a rerun runs nothing and leaves the results as they were
sum1=$(cat "$T"/q/arms/*/seed-*/result.json | md5sum)
run_ok "rerun" "$NBOOST" experiment "$STUDY" --out "$T/q" --quick
grep -q "experiment: start" "$T/last.err" && bad "rerun started jobs: $(grep start "$T/last.err")" || ok
[ "$sum1" = "$(cat "$T"/q/arms/*/seed-*/result.json | md5sum)" ] && ok || bad "rerun changed results"
# a lost result is the one job run again
rm "$T/q/arms/s03/seed-2/result.json"
run_ok "rerun after a lost result" "$NBOOST" experiment "$STUDY" --out "$T/q" --quick
[ "$(grep -c "experiment: start" "$T/last.err")" = 1 ] && grep -q "start s03 seed 2" "$T/last.err" && ok ||
	bad "expected only s03 seed 2: $(grep start "$T/last.err")"
run_ok "--dry-run" "$NBOOST" experiment "$STUDY" --out "$T/q" --quick --dry-run
[ "$(grep -c "(done)" "$T/last.out")" = 4 ] && ok || bad "dry run: $(cat "$T/last.out")"

# published results continue elsewhere: the copied jobs are not run again
run_ok "publish-study" bash "$NB_SRC/scripts/publish-study" "$T/q" "$T/pub"
[ "$(ls "$T"/pub/arms/*/seed-*/result.json | wc -l)" = 4 ] && [ -s "$T/pub/results.md" ] && [ -s "$T/pub/plots/shift.svg" ] &&
	[ -z "$(find "$T/pub" -name '*.h5')" ] && ok || bad "publish-study copied: $(find "$T/pub" -type f | head)"
mkdir -p "$T/q2" && cp -r "$T/pub/arms" "$T/q2/"
run_ok "continue from published results" "$NBOOST" experiment "$STUDY" --out "$T/q2" --quick
grep -q "experiment: start" "$T/last.err" && bad "published jobs ran again" || ok
grep -q "4 of 4 jobs done" "$T/q2/results.md" && ok || bad "continued report: $(head -3 "$T/q2/results.md")"

# a published dependency without its checkpoint is run again for its dependant
run_ok "dependant of a published arm" "$NBOOST" experiment "$STUDY" --out "$T/q2" --quick \
	"--quick-arms.dep=supervised labels=50 sigma=0 init=s0"
grep -q "s0 seed 1 is done but its checkpoint" "$T/last.err" && [ -f "$T/q2/arms/s0/seed-1/result.json.lost-checkpoint" ] &&
	[ -f "$T/q2/arms/dep/seed-2/result.json" ] && grep -q "6 of 6 jobs done" "$T/q2/results.md" && ok ||
	bad "lost dependency: $(grep -E 'start|checkpoint' "$T/last.err")"
cmp -s <($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["eval"])' "$T/q2/arms/s0/seed-1/result.json") \
	<($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["eval"])' "$T/q2/arms/s0/seed-1/result.json.lost-checkpoint") &&
	ok || bad "the rerun of a published job gave other results"
[ "$(grep -c 'experiment: start s03' "$T/last.err")" = 0 ] && ok || bad "s03 (no dependant) ran again"

# 3. a failing job: the others finish, its dependant is skipped, exit 1
cat >"$T/fake-nboost" <<SH
#!/bin/bash
case "\$*" in *"/arms/bad/"*) echo "injected failure" >&2; exit 3;; esac
exec "$NBOOST" "\$@"
SH
chmod +x "$T/fake-nboost"
expect_fail 1 "bad seed 1 failed" "$NBOOST" experiment "$STUDY" --out "$T/f" --quick --quick.seeds=1 \
	--nboost "$T/fake-nboost" "--quick-arms.bad=supervised labels=100 sigma=0" \
	"--quick-arms.dep=supervised labels=50 sigma=0 init=bad"
grep -q "dep seed 1 skipped: it needs bad, which failed" "$T/err.txt" && ok || bad "dependant not skipped: $(cat "$T/err.txt")"
[ -f "$T/f/arms/s0/seed-1/result.json" ] && [ -f "$T/f/arms/s03/seed-1/result.json" ] && ok || bad "other jobs did not finish"
grep -q "exited with 3" "$T/f/arms/bad/seed-1/failed" && ok || bad "failed file: $(cat "$T/f/arms/bad/seed-1/failed")"
grep -q "2 of 4 jobs done" "$T/f/results.md" && ok || bad "partial report: $(head -3 "$T/f/results.md")"
# the rerun with a working nboost finishes them
run_ok "rerun after the failure" "$NBOOST" experiment "$STUDY" --out "$T/f" --quick --quick.seeds=1 \
	"--quick-arms.bad=supervised labels=100 sigma=0" "--quick-arms.dep=supervised labels=50 sigma=0 init=bad"
grep -q "4 of 4 jobs done" "$T/f/results.md" && [ ! -e "$T/f/arms/bad/seed-1/failed" ] && ok || bad "rerun did not finish"

# 4. SIGTERM: every job stops cleanly (checkpoint), exit 75; the rerun resumes
"$NBOOST" experiment "$STUDY" --out "$T/s" --quick --quick.seeds=1 --quick.steps=3000 >"$T/s.out" 2>"$T/s.err" &
pid=$!
for _ in $(seq 300); do grep -q "step 1[0-9]*/3000" "$T"/s/arms/s0/seed-1/job.log 2>/dev/null && break; sleep 0.1; done
kill -TERM $pid
wait $pid
rc=$?
[ $rc = 75 ] && ok || bad "SIGTERM: exit $rc, expected 75: $(tail -3 "$T/s.err")"
[ -f "$T/s/arms/s0/seed-1/train/checkpoint.h5" ] && [ ! -e "$T/s/arms/s0/seed-1/result.json" ] && ok ||
	bad "no checkpoint after the stop, or a result"
[ ! -e "$T/s/arms/s0/seed-1/failed" ] && ok || bad "a stopped job was marked failed"
run_ok "resume after SIGTERM" "$NBOOST" experiment "$STUDY" --out "$T/s" --quick --quick.seeds=1 --quick.steps=60
grep -q -- "--resume" "$T/s/arms/s0/seed-1/job.log" && [ -f "$T/s/arms/s0/seed-1/result.json" ] && ok ||
	bad "no resume: $(grep '^\$' "$T/s/arms/s0/seed-1/job.log")"
# the cost counts both attempts: the stopped one is in the job's ledger
$PY - "$T/s/arms/s0/seed-1" <<'PY' && ok || bad "cost of the stopped attempt lost"
import json, sys
d = sys.argv[1]
lines = [json.loads(l) for l in open(f"{d}/costs.jsonl")]
train = [l for l in lines if l["phase"] == "train"]
assert len(train) == 2 and all(l["cmd"] == "train" for l in train), lines
r = json.load(open(f"{d}/result.json"))
assert abs(r["cost"]["train"]["wall_s"] - sum(l["wall_s"] for l in train)) < 0.11, (r["cost"], train)
assert abs(r["wall_s"] - sum(l["wall_s"] for l in lines)) < 0.35, (r["wall_s"], lines)
PY

# 5. two processes under mpirun share the jobs: each job runs once
run_ok "mpirun -np 2 experiment" mpirun -np 2 "$NBOOST" experiment "$STUDY" --out "$T/m" --quick
n_train=$(cat "$T"/m/arms/*/seed-*/job.log | grep -c '^\$ .* train ')
[ "$n_train" = 4 ] && grep -q "4 of 4 jobs done" "$T/m/results.md" && ok || bad "mpirun: $n_train trainings for 4 jobs"
grep -q "process 1 of 2" "$T/last.err" && ok || bad "second process not seen: $(head -3 "$T/last.err")"

# 6. lm, init, semi (raw and filtered, 2 rounds): the pseudo-label table
run_ok "lm + semi arms" "$NBOOST" experiment "$STUDY" --out "$T/l" --quick --quick.seeds=1 \
	--quick-corpus.lm_captions=64 --quick-arms.lm=lm "--quick-arms.m50=supervised labels=50 sigma=0 init=lm" \
	"--quick-arms.raw=semi labels=50 teacher=s03 filter=off" \
	"--quick-arms.filt=semi labels=50 teacher=s03 filter=on rounds=2 vs=raw" --run.unit=8 --teacher.batch=8 \
	"--quick-arms.dpo=dpo from=s0 noise=both beta=0.2 vs=s0" --quick.dpo_steps=6 --quick.dpo_batch=4
grep -q "^| filt | 1 |" "$T/l/results.md" && grep -q "^| raw | 0 |" "$T/l/results.md" && ok || bad "pseudo-label rows missing"
grep -q "init_decoder=$T/l/arms/lm/seed-1/train/checkpoint.h5" "$T/l/arms/m50/seed-1/job.log" && ok || bad "init not passed"
grep -q -- "--teacher.K=0" "$T/l/arms/raw/seed-1/job.log" && ! grep -q -- "--teacher.K=0" "$T/l/arms/filt/seed-1/job.log" &&
	ok || bad "filter=off is not K = 0"
[ -f "$T/l/plots/labels.svg" ] && ok || bad "no labels plot"
grep -q -- "pairs --model $T/l/arms/s0/seed-1/train/checkpoint.h5" "$T/l/arms/dpo/seed-1/job.log" &&
	grep -q -- "--objective dpo .*--ref $T/l/arms/s0/seed-1/train/checkpoint.h5 --dpo.noise=both --dpo.beta=0.2" \
		"$T/l/arms/dpo/seed-1/job.log" && grep -q '"dpo_noise":"both"' "$T/l/arms/dpo/seed-1/result.json" && ok ||
	bad "dpo arm: $(grep '^\$' "$T/l/arms/dpo/seed-1/job.log")"

# 7. bad study files name the file, the line and the cause
printf '[study]\nseeds = 2\nsteps = 10\nbogus = 1\n[arms]\na = supervised\n' >"$T/b1.conf"
expect_fail 1 "b1.conf:4" "$NBOOST" experiment "$T/b1.conf" --out "$T/b"
printf '[study]\njob = %s/jobs/tiny.conf\n[corpus]\nlabeled = 64\nshard_size = 16\n[arms]\na = supervised init=zz\n' "$NB_SRC" >"$T/b2.conf"
expect_fail 1 "init=zz names no arm defined above it" "$NBOOST" experiment "$T/b2.conf" --out "$T/b"
printf '[study]\njob = %s/jobs/tiny.conf\n[corpus]\nlabeled = 64\nshard_size = 16\n[arms]\na = supervised labels=10\n' "$NB_SRC" >"$T/b3.conf"
expect_fail 1 "is not a whole number of shards" "$NBOOST" experiment "$T/b3.conf" --out "$T/b"
printf '[study]\njob = %s/jobs/tiny.conf\n[corpus]\nlabeled = 64\nshard_size = 16\n[arms]\na = superviced\n' "$NB_SRC" >"$T/b4.conf"
expect_fail 1 "unknown kind 'superviced'" "$NBOOST" experiment "$T/b4.conf" --out "$T/b"
printf '[study]\njob = %s/jobs/tiny.conf\n[corpus]\nlabeled = 64\nshard_size = 16\n[arms]\na = semi labels=50\n' "$NB_SRC" >"$T/b5.conf"
expect_fail 1 "a semi arm needs teacher=ARM" "$NBOOST" experiment "$T/b5.conf" --out "$T/b"
printf '[study]\njob = %s/jobs/tiny.conf\n[arms]\n' "$NB_SRC" >"$T/b6.conf"
expect_fail 1 "has no arms" "$NBOOST" experiment "$T/b6.conf" --out "$T/b"
expect_fail 2 "exclude each other" "$NBOOST" experiment "$STUDY" --quick --full
# a result file that is not JSON is named in the error
echo '{"format": broken' >"$T/q/arms/s0/seed-1/result.json"
expect_fail 1 "$T/q/arms/s0/seed-1/result.json line 1 column 12: not valid JSON" "$NBOOST" experiment "$STUDY" --out "$T/q" --quick --report
finish
