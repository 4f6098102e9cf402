"""``lakedoc evaluate``: train and evaluate registered methods (:mod:`lakedoc.methods`) on labelled JSONL.

Fits each method on ``--train``, tunes per-label thresholds on a seeded validation split of it, and
measures on ``--test`` (or a seeded held-out split of ``--train``) — the same harness as the
``baselines`` task (:func:`lakedoc.methods.evaluate_method`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lakedoc import methods
from lakedoc.evaluation import load_jsonl, three_way_split

if TYPE_CHECKING:
    # mypy checks here that every registered implementation conforms to its protocol
    from lakedoc.baselines.embedding import EmbeddingLogReg, EmbeddingXGB
    from lakedoc.baselines.tfidf import TfidfLogReg, TfidfXGB
    from lakedoc.classify.zero_shot import ZeroShotMethod
    from lakedoc.finetune.method import FinetunedMethod

    _SPARK_METHODS: tuple[type[methods.SparkMethod], ...] = (TfidfLogReg, TfidfXGB, EmbeddingLogReg, EmbeddingXGB)
    _METHODS: tuple[type[methods.Method], ...] = (*_SPARK_METHODS, ZeroShotMethod, FinetunedMethod)


def format_table(rows: list[dict]) -> str:
    if not rows:
        return "(no results)"
    cols = list(rows[0])
    w = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    lines = ["  ".join(f"{c:<{w[c]}}" for c in cols), "  ".join("-" * w[c] for c in cols)]
    lines += ["  ".join(f"{str(r.get(c, '')):<{w[c]}}" for c in cols) for r in rows]
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="train and evaluate classifiers on labelled JSONL (doc_id, text, labels)",
        description="Fit a method on --train, tune per-label thresholds on a seeded validation split of it, "
                    "and measure on --test (or a seeded held-out split of --train). The same code as the "
                    "baselines task.")
    p.add_argument("--train", required=True, help="labelled JSONL: doc_id, text, labels")
    p.add_argument("--test", help="labelled JSONL for the test set (default: a seeded split of --train)")
    p.add_argument("--method", default="tfidf_lr",
                   help=f"one of {', '.join(methods.METHODS)}, a comma-separated list, or 'all'")
    p.add_argument("--out", help="write metrics (JSON) here")
    p.add_argument("--split-file", help="save/reuse the seeded split here (JSON)")
    p.add_argument("--target", default="local")
    p.add_argument("--config", help="extra YAML merged over conf/")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configuration override")
    p.add_argument("--mlflow", action=argparse.BooleanOptionalAction, default=None,
                   help="log to MLflow (default: baselines.mlflow_enabled)")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from lakedoc.config import load_config

    cfg = load_config(args.target, user_file=args.config, sets=args.set)
    st = methods.eval_settings(cfg)
    records = load_jsonl(args.train)
    test = load_jsonl(args.test) if args.test else None
    train, val, te = three_way_split(records, st, test, args.split_file)
    names = (list(methods.METHODS) if args.method == "all"
             else [m.strip() for m in args.method.split(",") if m.strip()])
    print(f"train {len(train)}, validation {len(val)}, test {len(te)} documents "
          f"(seed {st['seed']}{', test from ' + args.test if args.test else ''})", file=sys.stderr)
    results: list[methods.EvalResult] = []
    skipped: dict[str, str] = {}
    from lakedoc.report.progress import Progress  # a bar on a terminal only (not in CI)

    for name in Progress(len(names), "evaluate", unit="method").iterate(names):
        try:
            # MethodUnavailable: the method cannot be imported, or its fit lacks an optional input
            res = methods.evaluate_method(methods.load_method(name), train, val, te, cfg, st)
        except methods.MethodUnavailable as exc:
            if args.method == "all":
                print(f"skipping {name}: {exc}", file=sys.stderr)
                skipped[name] = str(exc)
                continue
            print(f"error: {exc}", file=sys.stderr)
            return 2
        results.append(res)
        print(f"{name}: micro-F1 {res.metrics['micro_f1']:.4f}, macro-F1 {res.metrics['macro_f1']:.4f} "
              f"(train {res.train_seconds:.1f}s)", file=sys.stderr)
        mlflow_on = args.mlflow if args.mlflow is not None else cfg.baselines.mlflow_enabled
        if mlflow_on:
            try:
                from lakedoc.baselines.tracking import log_evaluation

                log_evaluation(cfg, res, source="cli", extra_params={"train_file": args.train,
                                                                     "test_file": args.test or ""})
            except Exception as exc:  # noqa: BLE001 - tracking must not fail an evaluation
                print(f"warning: MLflow logging failed: {exc}", file=sys.stderr)
    print(format_table([r.summary() for r in results]))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({
            "train_file": args.train, "test_file": args.test, "seed": st["seed"],
            "results": {r.method: r.to_dict() for r in results}, "skipped": skipped,
        }, indent=1, default=str))
    return 0 if results else 1
