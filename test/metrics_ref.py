"""Independent reference for BLEU-4 and CIDEr-D (docs/metrics.md), written
from the coco-caption definitions, to cross-check labeler/metrics.c.

usage: metrics_ref.py make GT.tsv CAND.tsv SEED   perturb ground truth into candidates
       metrics_ref.py score GT.tsv CAND.tsv       print the scores as JSON: bleu1..bleu4,
                                                  cider_d, and the object metrics (chair_i,
                                                  chair_s, recall, tuple_precision,
                                                  tuple_recall, tuple_f1, malformed)
The ground truth of an image is recovered by parsing its ground-truth caption.
"""
import json
import math
import random
import sys
from collections import Counter

WORDS = ["small", "large", "red", "green", "blue", "yellow", "magenta", "cyan", "white",
         "orange", "circle", "square", "triangle", "cross", "diamond", "ring", "top",
         "middle", "bottom", "left", "center", "right", "."]


def read_tsv(path):
    out = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            i, cap = line.split("\t", 1)
            out[int(i)] = cap
    return out


def tokens(cap):
    return cap.replace(".", " . ").split()


def grams(toks, n):
    return Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def bleu(cands, refs):
    match = [0] * 4
    total = [0] * 4
    clen = rlen = 0
    for c, rs in zip(cands, refs):
        for n in range(1, 5):
            cg = grams(c, n)
            best = Counter()
            for r in rs:
                for g, k in grams(r, n).items():
                    best[g] = max(best[g], k)
            match[n - 1] += sum(min(k, best[g]) for g, k in cg.items())
            total[n - 1] += max(0, len(c) - n + 1)
        clen += len(c)
        rlen += min((len(r) for r in rs), key=lambda L: (abs(L - len(c)), L))
    bp = 1.0
    ratio = (clen + 1e-15) / (rlen + 1e-9)
    if ratio < 1:
        bp = math.exp(1 - 1 / ratio)
    out, logp = [], 0.0
    for n in range(4):
        logp += math.log((match[n] + 1e-15) / (total[n] + 1e-9))
        out.append(math.exp(logp / (n + 1)) * bp)
    return out


def all_grams(toks):
    c = Counter()
    for n in range(1, 5):
        c.update(grams(toks, n))
    return c


def cider(cands, refs):
    df = Counter()
    for rs in refs:
        seen = set()
        for r in rs:
            seen.update(all_grams(r))
        df.update(seen)
    logn = math.log(len(cands))

    def vec(toks):
        v = {g: k * (logn - math.log(max(1.0, df[g]))) for g, k in all_grams(toks).items()}
        norms = [math.sqrt(sum(x * x for g, x in v.items() if len(g) == n)) for n in range(1, 5)]
        return v, norms, max(0, len(toks) - 1)

    scores = []
    for c, rs in zip(cands, refs):
        vc, nc, lc = vec(c)
        acc = 0.0
        for r in rs:
            vr, nr, lr = vec(r)
            pen = math.exp(-((lc - lr) ** 2) / (2 * 36.0))
            per = []
            for n in range(1, 5):
                s = sum(min(x, vr.get(g, 0.0)) * vr.get(g, 0.0) for g, x in vc.items() if len(g) == n)
                if nc[n - 1] and nr[n - 1]:
                    s /= nc[n - 1] * nr[n - 1]
                per.append(s * pen)
            acc += sum(per) / 4
        scores.append(acc / len(rs) * 10)
    return sum(scores) / len(scores)


SIZES = ["small", "large"]
COLORS = ["red", "green", "blue", "yellow", "magenta", "cyan", "white", "orange"]
SHAPES = ["circle", "square", "triangle", "cross", "diamond", "ring"]
ROWS = ["top", "middle", "bottom"]
COLS = ["left", "center", "right"]


def statements(toks):
    """(size, color, shape, cell) of each valid statement, and the malformed count."""
    out, bad, cur = [], 0, []
    for t in toks + ["<end>"]:
        if t not in (".", "<end>"):
            cur.append(t)
            continue
        if t == "<end>" and not cur:
            break
        ok = (t == "." and len(cur) == 5 and cur[0] in SIZES and cur[1] in COLORS and cur[2] in SHAPES
              and cur[3] in ROWS and cur[4] in COLS)
        if ok:
            out.append((cur[0], cur[1], cur[2], ROWS.index(cur[3]) * 3 + COLS.index(cur[4])))
        else:
            bad += 1
        cur = []
    return out, bad


def objects(cands, gts):
    ment = hall = hcap = gtn = rec = cand_t = match = bad = 0
    for c, g in zip(cands, gts):
        truth, gbad = statements(g)
        assert gbad == 0
        present = {(t[1], t[2]) for t in truth}
        mine, b = statements(c)
        bad += b
        mentioned = {(t[1], t[2]) for t in mine}
        h = sum((t[1], t[2]) not in present for t in mine)
        ment += len(mine)
        hall += h
        hcap += h > 0
        gtn += len(truth)
        rec += sum((t[1], t[2]) in mentioned for t in truth)
        cand_t += len(mine)
        match += len(set(mine) & set(truth))
    div = lambda a, b: a / b if b else 0.0
    p, r = div(match, cand_t), div(match, gtn)
    return {"chair_i": div(hall, ment), "chair_s": div(hcap, len(cands)), "recall": div(rec, gtn),
            "tuple_precision": p, "tuple_recall": r, "tuple_f1": div(2 * p * r, p + r), "malformed": bad}


def perturb(cap, rng):
    stmts = [s.split() for s in cap.split(".") if s.strip()]
    kind = rng.randrange(9)
    if kind == 0:
        return cap
    if kind in (7, 8):
        # A plausible hallucination: another colour or shape in a valid statement.
        s = rng.choice(stmts)
        s[kind - 6] = rng.choice(COLORS if kind == 7 else SHAPES)
    elif kind == 1 and len(stmts) > 1:
        del stmts[rng.randrange(len(stmts))]
    elif kind == 2:
        s = rng.choice(stmts)
        s[rng.randrange(5)] = rng.choice(WORDS)
    elif kind == 3:
        stmts.append(list(rng.choice(stmts)))
    elif kind == 4:
        rng.shuffle(stmts)
    elif kind == 5:
        toks = tokens(cap)
        return " ".join(toks[:rng.randrange(len(toks) + 1)])
    else:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 40)))
    return " ".join(" ".join(s) + " ." for s in stmts)


def main():
    if sys.argv[1] == "make":
        gt = read_tsv(sys.argv[2])
        rng = random.Random(int(sys.argv[4]))
        with open(sys.argv[3], "w") as f:
            for i, cap in gt.items():
                f.write("%d\t%s\n" % (i, perturb(cap, rng)))
        return
    gt = read_tsv(sys.argv[2])
    cand = read_tsv(sys.argv[3])
    ids = sorted(gt)
    c = [tokens(cand[i]) for i in ids]
    r = [[tokens(gt[i])] for i in ids]
    b = bleu(c, r)
    out = {"bleu1": b[0], "bleu2": b[1], "bleu3": b[2], "bleu4": b[3], "cider_d": cider(c, r)}
    out.update(objects(c, [x[0] for x in r]))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
