"""Per-label thresholds for zero-shot classification, and ``lakedoc tune-thresholds``.

Thresholds are tuned on a labelled *validation* set only — a seeded validation split carved from
``--train`` exactly as ``lakedoc evaluate`` carves it (so the test part is never looked at), or a
separate ``--validation`` file — with the evaluation harness's :func:`lakedoc.evaluation.tune_thresholds`
(a global threshold with the best micro-F1, then one per label with enough positives).

The result is a JSON file (``classify.thresholds_file``) that the ``classify`` task reads. It records the
model, prefix scheme, taxonomy hash and scoring settings it was tuned for: a file tuned for another
model or scoring is ignored with a warning (its numbers would be meaningless), and every label then
gets ``classify.default_threshold``.
"""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lakedoc.config import Config

log = logging.getLogger(__name__)


@dataclass
class ThresholdSet:
    """Thresholds the stage applies: per label, else the global one."""

    global_threshold: float
    per_label: dict[str, float] = field(default_factory=dict)
    at_least_one: bool = False
    source: str | None = None

    def for_labels(self, names) -> np.ndarray:
        return np.asarray([self.per_label.get(n, self.global_threshold) for n in names], dtype=np.float64)

    def apply(self, scores: np.ndarray, names) -> tuple[np.ndarray, np.ndarray]:
        """(predicted 0/1, thresholds) for an n_docs x n_labels score matrix."""
        from lakedoc.evaluation import apply_thresholds

        th = self.for_labels(names)
        return apply_thresholds(scores, th, self.at_least_one), th


def fingerprint(encoder_model: str, prefix_scheme: str, taxonomy_hash: str, scoring_signature: str,
                chunk_signature: str) -> dict:
    return {"model": encoder_model, "prefix_scheme": prefix_scheme, "taxonomy_hash": taxonomy_hash,
            "scoring": scoring_signature, "chunking": chunk_signature}


def load_threshold_set(path: str | None, expected: dict, default: float, at_least_one: bool) -> ThresholdSet:
    """The thresholds of ``path`` when it was tuned for ``expected`` (see :func:`fingerprint`)."""
    fallback = ThresholdSet(float(default), {}, bool(at_least_one), None)
    if not path:
        return fallback
    p = Path(path)
    if not p.is_file():
        log.warning("thresholds file %s does not exist: every label gets classify.default_threshold %.3f",
                    p, default)
        return fallback
    data = json.loads(p.read_text(encoding="utf-8"))
    tuned_for = data.get("tuned_for", {})
    diff = {k: (tuned_for.get(k), v) for k, v in expected.items() if k != "chunking" and tuned_for.get(k) != v}
    if diff:
        log.warning("thresholds file %s was tuned for other settings (%s): ignored, every label gets "
                    "classify.default_threshold %.3f; re-run lakedoc tune-thresholds", p,
                    ", ".join(f"{k}: file {a!r} != now {b!r}" for k, (a, b) in diff.items()), default)
        return fallback
    return ThresholdSet(float(data["global_threshold"]), {k: float(v) for k, v in data["thresholds"].items()},
                        bool(data.get("at_least_one", at_least_one)), str(p))


def stage_thresholds(cfg: Config, encoder_model: str, prefix_scheme: str, taxonomy, scoring,
                     chunk_signature: str) -> ThresholdSet:
    c = cfg.classify
    expected = fingerprint(encoder_model, prefix_scheme, taxonomy.hash(), scoring.signature(), chunk_signature)
    path = cfg.resolve_path(c.thresholds_file) if c.thresholds_file else None
    return load_threshold_set(path, expected, c.default_threshold, c.at_least_one)


def tune(cfg: Config, records: list[dict], *, source: str, seed: int | None = None) -> dict:
    """Tune thresholds for the configured taxonomy on ``records`` (the validation set)."""
    from lakedoc import evaluation as ev
    from lakedoc.chunking import ChunkSettings
    from lakedoc.classify.taxonomy import taxonomy_for
    from lakedoc.classify.zero_shot import ScoringSettings, ZeroShotScorer
    from lakedoc.encoder import get_encoder
    from lakedoc.methods import eval_settings

    st = eval_settings(cfg)
    present = sorted({lab for r in records for lab in r["labels"]})
    taxonomy = taxonomy_for(cfg, present)
    names = taxonomy.names
    unknown = [lab for lab in present if lab not in taxonomy]
    if unknown:
        log.warning("%d validation label(s) are not in taxonomy %s and are ignored: %s", len(unknown),
                    taxonomy.name, ", ".join(unknown[:10]))
    encoder = get_encoder(cfg)
    scoring = ScoringSettings.from_config(cfg)
    chunking = ChunkSettings.from_config(cfg)
    scorer = ZeroShotScorer(encoder, taxonomy, scoring, chunking)
    scores = scorer.score_texts([r["text"] for r in records])
    y = ev.binarize([r["labels"] for r in records], names)
    th = ev.tune_thresholds(y, scores, st["grid"], st["at_least_one"], st["min_positives"], names)
    metrics = ev.multilabel_metrics(y, th.apply(scores), names)
    return {
        "method": "zero_shot",
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tuned_for": fingerprint(encoder.model_id, encoder.prefix_scheme, taxonomy.hash(), scoring.signature(),
                                 chunking.fitted(encoder).signature(encoder)),
        "taxonomy": taxonomy.name,
        "global_threshold": th.global_threshold,
        "at_least_one": th.at_least_one,
        "thresholds": {n: v for n, v in zip(names, th.values, strict=True)},
        "tuned_labels": th.tuned_labels,
        "validation": {"source": source, "n_docs": len(records), "seed": seed,
                       "micro_f1": round(metrics["micro_f1"], 4), "macro_f1": round(metrics["macro_f1"], 4)},
    }


# ---------------------------------------------------------------------------------------------------
# CLI: lakedoc tune-thresholds
# ---------------------------------------------------------------------------------------------------

def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "tune-thresholds",
        help="tune per-label zero-shot thresholds on a labelled validation set (never on test data)",
        description="Score a labelled validation set with the configured encoder and taxonomy and write per-label "
                    "thresholds (JSON) that the classify task reads (classify.thresholds_file). With --train the "
                    "validation split is carved from the file with the same seed and fractions as "
                    "'lakedoc evaluate', so its test split stays unseen.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--train", help="labelled JSONL (doc_id, text, labels): its seeded validation split is used")
    src.add_argument("--validation", help="labelled JSONL used whole as the validation set")
    p.add_argument("--out", help="thresholds file to write (default: classify.thresholds_file)")
    p.add_argument("--target", default="local")
    p.add_argument("--config", help="extra YAML merged over conf/")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configuration override")
    p.set_defaults(func=cmd_tune_thresholds)


def cmd_tune_thresholds(args) -> int:
    from lakedoc import evaluation as ev
    from lakedoc.config import load_config
    from lakedoc.methods import eval_settings

    cfg = load_config(args.target, user_file=args.config, sets=args.set)
    st = eval_settings(cfg)
    if args.validation:
        records, source, seed = ev.load_jsonl(args.validation), args.validation, None
    else:
        _, records, _ = ev.three_way_split(ev.load_jsonl(args.train), st)
        source, seed = f"{args.train} (validation split)", st["seed"]
    if not records:
        print("error: the validation set is empty", file=sys.stderr)
        return 2
    out = args.out or cfg.classify.thresholds_file
    if not out:
        print("error: pass --out or set classify.thresholds_file", file=sys.stderr)
        return 2
    data = tune(cfg, records, source=source, seed=seed)
    path = Path(cfg.resolve_path(out) if not args.out else out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    v = data["validation"]
    print(f"{path}: {len(data['thresholds'])} labels ({data['tuned_labels']} tuned, others "
          f"{data['global_threshold']:.3f}); validation micro-F1 {v['micro_f1']:.4f}, macro-F1 {v['macro_f1']:.4f} "
          f"on {v['n_docs']} documents")
    return 0
