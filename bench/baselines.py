"""Benchmark of the baselines (a script, not a test): each contender against its baseline in one run.

1. Spark ``tfidf_lr`` (the task's code: Spark ML tokeniser/HashingTF/IDF + one weighted LR per label)
   against scikit-learn's ``LogisticRegression`` on the *same* tokenisation (same regex, lower-casing,
   Spark's English stop-word list, 2^18 hashed features, IDF, L2 norm, same class weights) and the same
   split: training time and micro/macro-F1 (thresholds tuned on validation for both, by the harness).
   In the same run, a second scikit-learn baseline that fits each label on the used columns only, as
   ``tfidf_lr``'s workers do (``--same-solver``, on by default): the ratio against it separates what the
   distribution gains from what the narrower solve gains.
2. ``SparkXGBClassifier`` (``tfidf_xgb``) with ``num_workers=1`` against ``num_workers=2``.

Ratios are printed as contender / baseline. Data: Reuters-21578 ModApte train from ../shared (a seeded
train/validation/test split of it), or the synthetic corpus when ../shared is absent.

    .venv/bin/python bench/baselines.py [--labels 10] [--max-docs 0] [--skip-xgb] [--quick] [--json PATH]

``--quick`` (under 10 minutes on 2 cores): the ``tfidf_lr`` comparison only, on every Reuters label.
``--json PATH`` writes ``ratio`` (scikit-learn train time / ``tfidf_lr`` train time: > 1 = lakedoc faster),
``ratio_same_solver`` (the used-columns baseline's train time / ``tfidf_lr``'s), the raw figures, the machine
(cpus, CPU model, RAM, load average), the date and the command.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from machine import machine  # bench/machine.py (this folder is first on sys.path)

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
    """scikit-learn twin of ``tfidf_lr`` in one process: identical tokens, hashing size, IDF, norm, class
    weights and per-label solver (:func:`lakedoc.baselines.parallel.fit_binary`), labels fitted in turn."""

    name = "sklearn_lr"

    def __init__(self, blas_threads: int | None = 1, used_columns: bool = False):
        self.blas_threads = blas_threads  # 1: no BLAS oversubscription (its best here); None: library default
        self.used_columns = used_columns  # fit on the non-empty columns, as tfidf_lr's workers do
        if used_columns:
            self.name = "sklearn_lr_used_columns"

    def fit(self, texts, labels, names, cfg):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(self.blas_threads):
            self._fit(texts, labels, names, cfg)

    def _fit(self, texts, labels, names, cfg):
        from pyspark.ml.feature import StopWordsRemover

        from lakedoc.baselines.parallel import class_weight, fit_binary, used_columns
        from lakedoc.config_schema import BaselinesSettings
        from lakedoc.spark import get_spark

        get_spark(cfg)  # Spark's stop-word list lives in the JVM
        sec = cfg["baselines"]
        stop = set(StopWordsRemover.loadDefaultStopWords("english")) if sec["stop_words"] else set()
        self.stop = stop

        # Spark's HashingTF: murmur3_x86_32 (seed 42) of the UTF-8 term, non-negative mod num_features
        self.num_features = sec["num_features"]
        tf = self._tf(texts)
        n_docs = tf.shape[0]
        df = np.bincount(tf.indices, minlength=tf.shape[1])
        self.idf = np.log((n_docs + 1.0) / (df + 1.0))  # Spark ML's IDF (minDocFreq 0/1): log((n+1)/(df+1))
        X = self._weigh(tf)
        self.names = names
        self.models = []
        n = X.shape[0]
        st = BaselinesSettings.from_config(cfg)
        Xf, cols = used_columns(X) if self.used_columns else (X, None)
        for lab in names:  # one-vs-rest, one label after another, the per-label fit tfidf_lr's workers run
            y = np.array([lab in labs for labs in labels], dtype=np.int64)
            coef, b, it = fit_binary(Xf, y, class_weight(n, int(y.sum()), st.max_pos_weight), st)
            if cols is not None:
                full = np.zeros(X.shape[1])
                full[cols] = coef
                coef = full
            self.models.append((coef, b, it))
        self.train_stats = {"docs": n, "nnz": int(X.nnz), "max_iter_used": max(m[2] for m in self.models),
                            "blas_threads": self.blas_threads or "default"}

    def _tf(self, texts):
        """Term counts exactly as Spark's RegexTokenizer -> StopWordsRemover -> HashingTF."""
        import regex
        import scipy.sparse as sp
        from sklearn.utils import murmurhash3_32

        split = regex.compile(r"[^\p{L}\p{N}]+")
        cache: dict[str, int] = {}
        rows, cols = [], []
        for i, t in enumerate(texts):
            for w in split.split(t.lower()):
                if len(w) < 2 or w in self.stop:
                    continue
                j = cache.get(w)
                if j is None:
                    j = cache[w] = murmurhash3_32(w.encode("utf-8"), seed=42) % self.num_features
                rows.append(i)
                cols.append(j)
        return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), self.num_features))

    def _weigh(self, tf):
        from sklearn.preprocessing import normalize

        return normalize(tf.multiply(self.idf).tocsr(), norm="l2")  # IDF, then L2 norm, as Spark's pipeline

    def predict_scores(self, texts):
        X = self._weigh(self._tf(texts))
        z = np.column_stack([X @ coef + b for coef, b, _ in self.models])
        return 1.0 / (1.0 + np.exp(-z))


def run_pair(base, contender, tr, va, te, cfg_base, cfg_cont, st):
    from lakedoc.methods import evaluate_method

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
    ap.add_argument("--quick", action="store_true",
                    help="tfidf_lr vs scikit-learn only (no XGBoost): under 10 minutes on 2 cores")
    ap.add_argument("--json", "--out", dest="json", help="write the results as JSON (key 'ratio': the headline)")
    ap.add_argument("--baseline-blas-default", action="store_true",
                    help="let the scikit-learn baseline use its default BLAS threads (slower on a shared machine: "
                         "oversubscription); default: 1 thread, its best configuration here")
    ap.add_argument("--no-same-solver", dest="same_solver", action="store_false",
                    help="skip the second scikit-learn baseline that fits on the used columns only, like "
                         "tfidf_lr's workers (default: run it, in the same run)")
    args = ap.parse_args()
    if args.quick:
        args.skip_xgb = True

    from lakedoc.baselines.tfidf import TfidfLogReg, TfidfXGB
    from lakedoc.config import load_config
    from lakedoc.evaluation import three_way_split
    from lakedoc.methods import eval_settings

    started = time.time()
    cfg = load_config("local")
    st = eval_settings(cfg)
    results: dict = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "command": " ".join([Path(sys.executable).name, *sys.argv]),
                     "machine": machine(), "ratio": None,
                     "ratio_means": "scikit-learn one-vs-rest train s / tfidf_lr train s (> 1 = lakedoc faster)"}
    if not args.skip_lr:
        recs, name = load(args)
        tr, va, te = three_way_split(recs, st)
        print(f"data: {name}; train {len(tr)}, validation {len(va)}, test {len(te)}", file=sys.stderr)
        contender = TfidfLogReg()
        base = SklearnLR(None if args.baseline_blas_default else 1)
        results["lr"] = run_pair(base, contender, tr, va, te, cfg, cfg, st)
        r = results["lr"]
        r["data"] = name
        r["fit_mode"] = contender.train_stats.get("fit_mode")
        r["contender_train_stats"] = {k: v for k, v in contender.train_stats.items() if k != "positives"}
        r["baseline_train_stats"] = base.train_stats
        r["speedup"] = r["baseline"]["train_s"] / r["contender"]["train_s"]
        r["micro_f1_diff"] = r["contender"]["micro_f1"] - r["baseline"]["micro_f1"]
        results["ratio"] = r["speedup"]
        print(f"tfidf_lr ({r['fit_mode']}) vs scikit-learn one-vs-rest: {r['speedup']:.2f}x faster "
              f"(Spark {r['contender']['train_s']:.1f}s, sklearn {r['baseline']['train_s']:.1f}s); "
              f"micro-F1 {r['contender']['micro_f1']:.4f} vs {r['baseline']['micro_f1']:.4f}; "
              f"macro-F1 {r['contender']['macro_f1']:.4f} vs {r['baseline']['macro_f1']:.4f}")
        if args.same_solver:
            from lakedoc.methods import evaluate_method

            same = SklearnLR(None if args.baseline_blas_default else 1, used_columns=True)
            t0 = time.perf_counter()
            ev = evaluate_method(same, tr, va, te, cfg, st)
            r["baseline_same_solver"] = {"method": same.name, "train_s": ev.train_seconds,
                                         "total_s": time.perf_counter() - t0, "micro_f1": ev.metrics["micro_f1"],
                                         "macro_f1": ev.metrics["macro_f1"]}
            results["ratio_same_solver"] = ev.train_seconds / r["contender"]["train_s"]
            print(f"tfidf_lr vs scikit-learn fitting the used columns only (the workers' solver): "
                  f"{results['ratio_same_solver']:.2f}x (sklearn {ev.train_seconds:.1f}s); micro-F1 "
                  f"{ev.metrics['micro_f1']:.4f}")
    if not args.skip_xgb:
        a2 = argparse.Namespace(**{**vars(args), "labels": args.xgb_labels})
        recs, name = load(a2)
        tr, va, te = three_way_split(recs, st)
        # barrier mode: a classic session (local[2] here) and num_workers <= task slots
        c1 = load_config("local", sets=["baselines.xgb_num_workers=1", "baselines.parallel_labels=1"])
        c2 = load_config("local", sets=["baselines.xgb_num_workers=2", "baselines.parallel_labels=1"])
        results["xgb"] = run_pair(TfidfXGB(), TfidfXGB(), tr, va, te, c1, c2, st)
        r = results["xgb"]
        r["data"] = name
        r["speedup_2_vs_1"] = r["baseline"]["train_s"] / r["contender"]["train_s"]
        if results["ratio"] is None:  # --skip-lr: the XGBoost comparison is the headline
            results["ratio"] = r["speedup_2_vs_1"]
            results["ratio_means"] = "tfidf_xgb train s with num_workers=1 / with num_workers=2 (> 1 = 2 faster)"
        print(f"tfidf_xgb num_workers=2 vs 1: {r['speedup_2_vs_1']:.2f}x faster "
              f"({r['contender']['train_s']:.1f}s vs {r['baseline']['train_s']:.1f}s); "
              f"micro-F1 {r['contender']['micro_f1']:.4f} vs {r['baseline']['micro_f1']:.4f}")
    results["wall_s"] = time.time() - started
    results["machine"]["loadavg_end"] = list(os.getloadavg())
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
