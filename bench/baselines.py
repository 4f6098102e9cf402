"""Benchmark of the baselines (a script, not a test): each contender against its baseline in one run.

1. Spark ``tfidf_lr`` (the task's code: Spark ML tokeniser/HashingTF/IDF + one weighted LR per label)
   against scikit-learn's ``LogisticRegression`` on the *same* tokenisation (same regex, lower-casing,
   Spark's English stop-word list, 2^18 hashed features, IDF, L2 norm, same class weights) and the same
   split: training time and micro/macro-F1 (thresholds tuned on validation for both, by the harness).
2. ``SparkXGBClassifier`` (``tfidf_xgb``) with ``num_workers=1`` against ``num_workers=2``.

Ratios are printed as contender / baseline. Data: Reuters-21578 ModApte train from ../shared (a seeded
train/validation/test split of it), or the synthetic corpus when ../shared is absent.

    .venv/bin/python bench/baselines.py [--labels 10] [--max-docs 0] [--skip-xgb]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LAKEDOC_SHARED", ROOT.parent / "shared"))


def load(args):
    from lakedoc.evaluation import load_jsonl

    path = SHARED / "datasets" / "reuters21578" / "train.jsonl"
    if path.is_file():
        recs, name = load_jsonl(path), "reuters21578 ModApte train"
    else:
        from lakedoc.baselines.synthetic import generate

        recs, name = generate(1500, seed=1), "synthetic (../shared absent)"
    if args.labels:
        from collections import Counter

        top = {lab for lab, _ in Counter(lab for r in recs for lab in r["labels"]).most_common(args.labels)}
        recs = [{**r, "labels": [x for x in r["labels"] if x in top]} for r in recs]
        recs = [r for r in recs if r["labels"]]
        name += f", top {args.labels} labels"
    if args.max_docs:
        recs = recs[: args.max_docs]
    return recs, name


class SklearnLR:
    """scikit-learn twin of ``tfidf_lr``: identical tokens, hashing, IDF, norm and class weights."""

    name = "sklearn_lr"

    def fit(self, texts, labels, names, cfg):
        from pyspark.ml.feature import StopWordsRemover
        from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
        from sklearn.linear_model import LogisticRegression

        from lakedoc.spark import get_spark

        get_spark(cfg)  # Spark's stop-word list lives in the JVM
        sec = cfg["baselines"]
        stop = set(StopWordsRemover.loadDefaultStopWords("english")) if sec["stop_words"] else set()
        split = re.compile(r"[^\w]+|_", re.UNICODE)

        def analyzer(t):
            return [w for w in split.split(t.lower()) if len(w) >= 2 and w not in stop]

        self.vec = HashingVectorizer(analyzer=analyzer, n_features=sec["num_features"], alternate_sign=False,
                                     norm=None)
        self.idf = TfidfTransformer(norm="l2", smooth_idf=True)
        X = self.idf.fit_transform(self.vec.transform(texts))
        self.names = names
        self.models = []
        n = X.shape[0]
        C = 1.0 / max(sec["lr_reg_param"] * n, 1e-12)  # Spark: reg * mean loss; sklearn: C * sum loss
        for lab in names:
            y = np.array([lab in labs for labs in labels], dtype=int)
            pos = y.sum()
            w = min((n - pos) / pos, sec["max_pos_weight"]) if pos else 1.0
            m = LogisticRegression(C=C, max_iter=sec["lr_max_iter"] * 10, class_weight={0: 1.0, 1: max(w, 1.0)})
            self.models.append(m.fit(X, y))

    def predict_scores(self, texts):
        X = self.idf.transform(self.vec.transform(texts))
        return np.column_stack([m.predict_proba(X)[:, 1] for m in self.models])


def run_pair(base, contender, tr, va, te, cfg_base, cfg_cont, st):
    from lakedoc.evaluation import evaluate_method

    out = {}
    for tag, method, cfg in (("baseline", base, cfg_base), ("contender", contender, cfg_cont)):
        t0 = time.perf_counter()
        r = evaluate_method(method, tr, va, te, cfg, st)
        out[tag] = {"method": getattr(method, "name", tag), "train_s": r.train_seconds,
                    "total_s": time.perf_counter() - t0, "micro_f1": r.metrics["micro_f1"],
                    "macro_f1": r.metrics["macro_f1"]}
    b, c = out["baseline"], out["contender"]
    out["ratio_train_time"] = c["train_s"] / b["train_s"]
    out["ratio_micro_f1"] = c["micro_f1"] / b["micro_f1"] if b["micro_f1"] else float("nan")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", type=int, default=0, help="keep the N most frequent labels (0 = all)")
    ap.add_argument("--xgb-labels", type=int, default=10, help="labels for the XGBoost comparison")
    ap.add_argument("--max-docs", type=int, default=0)
    ap.add_argument("--skip-lr", action="store_true")
    ap.add_argument("--skip-xgb", action="store_true")
    ap.add_argument("--out", help="write the results as JSON")
    args = ap.parse_args()

    from lakedoc.baselines.tfidf import TfidfLogReg, TfidfXGB
    from lakedoc.config import load_config
    from lakedoc.evaluation import eval_settings, three_way_split

    cfg = load_config("local")
    st = eval_settings(cfg)
    results = {}
    if not args.skip_lr:
        recs, name = load(args)
        tr, va, te = three_way_split(recs, st)
        print(f"data: {name}; train {len(tr)}, validation {len(va)}, test {len(te)}", file=sys.stderr)
        results["lr"] = run_pair(SklearnLR(), TfidfLogReg(), tr, va, te, cfg, cfg, st)
        results["lr"]["data"] = name
        r = results["lr"]
        print(f"tfidf_lr Spark vs scikit-learn: train time ratio {r['ratio_train_time']:.2f} "
              f"(Spark {r['contender']['train_s']:.1f}s, sklearn {r['baseline']['train_s']:.1f}s); "
              f"micro-F1 {r['contender']['micro_f1']:.4f} vs {r['baseline']['micro_f1']:.4f}; "
              f"macro-F1 {r['contender']['macro_f1']:.4f} vs {r['baseline']['macro_f1']:.4f}")
    if not args.skip_xgb:
        a2 = argparse.Namespace(**{**vars(args), "labels": args.xgb_labels})
        recs, name = load(a2)
        tr, va, te = three_way_split(recs, st)
        c1 = load_config("local", sets=["baselines.xgb_num_workers=1", "baselines.parallel_labels=1"])
        c2 = load_config("local", sets=["baselines.xgb_num_workers=2", "baselines.parallel_labels=1"])
        results["xgb"] = run_pair(TfidfXGB(), TfidfXGB(), tr, va, te, c1, c2, st)
        results["xgb"]["data"] = name
        r = results["xgb"]
        print(f"tfidf_xgb num_workers=2 vs 1: train time ratio {r['ratio_train_time']:.2f} "
              f"({r['contender']['train_s']:.1f}s vs {r['baseline']['train_s']:.1f}s); "
              f"micro-F1 {r['contender']['micro_f1']:.4f} vs {r['baseline']['micro_f1']:.4f}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
