#!/usr/bin/env python3
"""Fit the complexity scorer's weights offline (python3 standard library only).

The features come from the C++ scorer itself (`fastpath route-eval --dump-features`), so the fit and
the server can never disagree about what a feature means. The model is an ordinal logistic
regression (proportional odds): z = w.x, P(label >= moderate) = sigmoid(z - t1),
P(label = complex) = sigmoid(z - t2), with L2 regularisation. The fitted z is then mapped linearly
so that the cut points t1, t2 land on the tier thresholds 0.3 and 0.7 of score = sigmoid(z'), and
written as src/routing/scorer_weights.inc.

Generalisation: lambda is chosen by repeated stratified k-fold cross-validation and the CV figures
(exact accuracy, within one tier, complex sent to small) are printed for the report; the numbers
on the full set are training figures and flattering.

Usage:
  scripts/fit-router.py --fastpath build/routing/fastpath \
      --queries ../shared/data/routing-queries.jsonl [--write src/routing/scorer_weights.inc]
  scripts/fit-router.py --features features.jsonl [...]
"""
import argparse
import json
import math
import random
import subprocess
import sys

FEATURES = ["length", "long_context", "code", "proof", "design", "algorithm", "debugging", "math",
            "numbers", "multi_step", "constraints", "expert_domain", "task", "factual",
            "multi_part", "conversation", "tools", "non_english"]
# Not present in the single-turn evaluation data: set by hand, not fitted (z' units).
# conversation: a deep conversation leans towards the stronger tiers a little; tools: tool use
# needs a capable model; non_english: the labelling rule says language does not change the label.
FIXED = {"conversation": 0.8, "tools": 1.2, "non_english": 0.0}
LOGIT = lambda p: math.log(p / (1 - p))


def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def load(args):
    if args.features:
        lines = open(args.features, encoding="utf-8").read().splitlines()
    else:
        out = subprocess.run([args.fastpath, "route-eval", "--queries", args.queries, "--dump-features"],
                             check=True, capture_output=True, text=True).stdout
        lines = out.splitlines()
    rows = [json.loads(l) for l in lines if l.strip()]
    return [(r["x"], r["label"]) for r in rows]


FREE = [i for i, n in enumerate(FEATURES) if n not in FIXED]


def fit(rows, lam, iters=3000, lr=0.5, complex_weight=2.0):
    """Full-batch gradient descent on the ordinal logistic loss; returns (w, t1, t2)."""
    d = len(FEATURES)
    w = [0.0] * d
    t1, t2 = -0.5, 0.5
    n = len(rows)
    for it in range(iters):
        gw = [0.0] * d
        g1 = g2 = 0.0
        for x, y in rows:
            z = sum(w[i] * x[i] for i in FREE)
            # two binary problems sharing w: y>=1 vs z-t1, y>=2 vs z-t2
            sw = complex_weight if y == 2 else 1.0
            p1 = sigmoid(z - t1)
            p2 = sigmoid(z - t2)
            e1 = (p1 - (1.0 if y >= 1 else 0.0)) * sw
            e2 = (p2 - (1.0 if y >= 2 else 0.0))
            for i in FREE:
                gw[i] += (e1 + e2) * x[i]
            g1 -= e1
            g2 -= e2
        step = lr / n
        for i in FREE:
            w[i] -= step * (gw[i] + lam * n * w[i])
        t1 -= step * g1
        t2 -= step * g2
        if t2 < t1 + 0.1:
            t2 = t1 + 0.1
    return w, t1, t2


def to_score_weights(w, t1, t2):
    """Maps z so that t1 -> logit(0.3) and t2 -> logit(0.7); returns (bias, weights)."""
    a = (LOGIT(0.7) - LOGIT(0.3)) / (t2 - t1)
    c = LOGIT(0.3) - a * t1
    ws = [a * wi for wi in w]
    for name, v in FIXED.items():
        ws[FEATURES.index(name)] = v
    return c, ws


def predict(bias, ws, x):
    s = sigmoid(bias + sum(wi * xi for wi, xi in zip(ws, x)))
    return 0 if s < 0.3 else (1 if s <= 0.7 else 2)


def metrics(pairs):
    n = len(pairs)
    exact = sum(1 for y, p in pairs if y == p) / n
    within = sum(1 for y, p in pairs if abs(y - p) <= 1) / n
    cx = [p for y, p in pairs if y == 2]
    c2s = sum(1 for p in cx if p == 0) / len(cx) if cx else 0.0
    return exact, within, c2s


def cross_validate(rows, lam, k=5, repeats=3, iters=1500):
    results = []
    for rep in range(repeats):
        rnd = random.Random(1000 + rep)
        folds = [[] for _ in range(k)]
        for label in (0, 1, 2):  # stratified
            idx = [i for i, r in enumerate(rows) if r[1] == label]
            rnd.shuffle(idx)
            for j, i in enumerate(idx):
                folds[j % k].append(i)
        pairs = []
        for f in range(k):
            test = set(folds[f])
            train = [r for i, r in enumerate(rows) if i not in test]
            w, t1, t2 = fit(train, lam, iters=iters)
            bias, ws = to_score_weights(w, t1, t2)
            pairs += [(rows[i][1], predict(bias, ws, rows[i][0])) for i in test]
        results.append(metrics(pairs))
    return [sum(r[j] for r in results) / len(results) for j in range(3)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fastpath", default="build/release/fastpath")
    ap.add_argument("--queries", default="../shared/data/routing-queries.jsonl")
    ap.add_argument("--features", help="JSONL from route-eval --dump-features (instead of running it)")
    ap.add_argument("--lambdas", default="0.001,0.003,0.01,0.03")
    ap.add_argument("--write", help="write the weights as a C++ include (scorer_weights.inc)")
    args = ap.parse_args()

    rows = load(args)
    print(f"{len(rows)} queries, {len(FEATURES)} features ({len(FREE)} fitted)")
    best = None
    for lam in [float(s) for s in args.lambdas.split(",")]:
        acc, within, c2s = cross_validate(rows, lam)
        print(f"lambda={lam:<6} cv: accuracy={acc:.3f} within_one_tier={within:.3f} complex_to_small={c2s:.3f}")
        # prefer accuracy, but never at the price of complex queries on the small tier
        key = acc - 2.0 * max(0.0, c2s - 0.02)
        if best is None or key > best[0]:
            best = (key, lam, acc, within, c2s)
    _, lam, acc, within, c2s = best
    print(f"chosen lambda={lam}: cv accuracy={acc:.3f} within_one_tier={within:.3f} complex_to_small={c2s:.3f}")

    w, t1, t2 = fit(rows, lam)
    bias, ws = to_score_weights(w, t1, t2)
    tr = metrics([(y, predict(bias, ws, x)) for x, y in rows])
    print(f"full-set (training) accuracy={tr[0]:.3f} within_one_tier={tr[1]:.3f} complex_to_small={tr[2]:.3f}")
    print("weights:")
    print(f"  bias: {bias:.4f}")
    for n, v in zip(FEATURES, ws):
        print(f"  {n}: {v:.4f}")
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write("// Generated by scripts/fit-router.py -- do not edit by hand.\n")
            f.write(f"// lambda={lam} cv_accuracy={acc:.3f} cv_within_one_tier={within:.3f} "
                    f"cv_complex_to_small={c2s:.3f} n={len(rows)}\n")
            f.write(f"s.bias = {bias:.6f};\n")
            f.write("s.w = {" + ", ".join(f"{v:.6f}" for v in ws) + "};\n")
        print(f"wrote {args.write}")


if __name__ == "__main__":
    sys.exit(main())
