"""Evaluation arithmetic of lakedoc: labelled data, seeded splits, metrics and thresholds — numpy only.

Pure numpy / standard library (no Spark), and it imports nothing of lakedoc: the harness that fits and
measures a classifier (:mod:`lakedoc.methods`), the ``baselines`` task, the zero-shot threshold tuning
(:mod:`lakedoc.classify.thresholds`) and ``lakedoc evaluate`` (:mod:`lakedoc.evaluate_cli`) build on it.

* :func:`load_jsonl` — labelled JSONL (``doc_id``, ``text``, ``labels``).
* :func:`content_hash`, :func:`split_records`, :func:`three_way_split`, :func:`check_leakage` — seeded
  splits grouped by content hash (a text and its exact duplicates always land in the same split), saved
  to a JSON file, and a leakage check that compares *content hashes* of the splits, not indexes.
* :func:`prepare` — training-data preparation: documents under ``min_words`` words are dropped from
  training, labels with fewer than ``min_label_docs`` training documents are excluded (warning naming
  them), duplicate texts with conflicting labels are reported.
* :func:`multilabel_metrics` — micro/macro/weighted F1, precision, recall, subset accuracy, per-label
  precision/recall/F1/support.
* :func:`tune_thresholds` (validation split only), :func:`apply_thresholds`, :func:`threshold_sweep`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_GRID = tuple(round(x, 3) for x in np.arange(0.02, 0.99, 0.02))


# ---------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------

def load_jsonl(path: str | Path) -> list[dict]:
    """Read labelled JSONL: each line ``{"doc_id": ..., "text": ..., "labels": [...]}``.

    ``doc_id`` defaults to the line number; ``labels`` may be a list or a single string; lines without
    text are skipped with a warning."""
    out: list[dict] = []
    skipped = 0
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{i + 1}: not valid JSON: {exc}") from None
            text = rec.get("text")
            if not isinstance(text, str) or not text.strip():
                skipped += 1
                continue
            labels = rec.get("labels", [])
            if isinstance(labels, str):
                labels = [labels]
            out.append({**rec, "doc_id": str(rec.get("doc_id", i)), "text": text,
                        "labels": sorted({str(x) for x in (labels or [])})})
    if skipped:
        log.warning("%s: %d line(s) without text skipped", path, skipped)
    return out


_WS = re.compile(r"\s+")


def content_hash(text: str) -> str:
    """Hash of a text after whitespace normalisation and lower-casing: equal hash = same content."""
    return hashlib.sha256(_WS.sub(" ", text or "").strip().lower().encode("utf-8")).hexdigest()


def word_count(text: str) -> int:
    return len((text or "").split())


def split_records(records: Sequence[dict], fractions: dict[str, float], seed: int = 13,
                  path: str | Path | None = None) -> dict[str, list[str]]:
    """Seeded split of ``records`` into named parts (``{"train": .8, "validation": .2}``) -> doc ids.

    Records are grouped by :func:`content_hash` first, so exact duplicates never straddle two splits.
    When ``path`` is given the split is written there as JSON (seed, fractions, ids per split) — and if
    that file already exists with the same seed, fractions and documents, it is reused unchanged."""
    names = list(fractions)
    total = float(sum(fractions.values()))
    if total <= 0 or any(v < 0 for v in fractions.values()):
        raise ValueError(f"split fractions must be non-negative and not all zero: {fractions}")
    ids = [str(r["doc_id"]) for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("doc_id values are not unique; cannot split by id")
    if path is not None and Path(path).is_file():
        saved = json.loads(Path(path).read_text())
        if (saved.get("seed") == seed and saved.get("fractions") == fractions
                and sorted(i for part in saved["splits"].values() for i in part) == sorted(ids)):
            log.info("reusing the saved split %s", path)
            return {k: list(v) for k, v in saved["splits"].items()}
    groups: dict[str, list[str]] = {}
    for r in records:
        groups.setdefault(content_hash(r["text"]), []).append(str(r["doc_id"]))
    keys = sorted(groups)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))
    n_docs = len(ids)
    bounds = np.cumsum([fractions[n] / total * n_docs for n in names])
    out: dict[str, list[str]] = {n: [] for n in names}
    placed = 0
    for gi in order:
        members = groups[keys[gi]]
        # the first split whose cumulative quota is not filled yet
        j = int(np.searchsorted(bounds, placed + 0.5, side="right"))
        j = min(j, len(names) - 1)
        out[names[j]].extend(members)
        placed += len(members)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"seed": seed, "fractions": fractions, "splits": out}, indent=0))
    return out


def check_leakage(parts: dict[str, Sequence[str]]) -> dict[str, int]:
    """Count texts shared by two splits, by content hash (not by index). ``parts``: split -> texts.

    Returns ``{"train/test": n, ...}`` for every pair with an overlap (empty when clean)."""
    hashes = {k: {content_hash(t) for t in v} for k, v in parts.items()}
    names = list(parts)
    out: dict[str, int] = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            n = len(hashes[a] & hashes[b])
            if n:
                out[f"{a}/{b}"] = n
    return out


def three_way_split(records: Sequence[dict], st: dict, test: Sequence[dict] | None = None,
                    split_file: str | Path | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """train/validation/test from ``records`` (test from ``test`` when given), seeded and saved."""
    by_id = {r["doc_id"]: r for r in records}
    if test is None:
        fr = {"train": 1 - st["validation_fraction"] - st["test_fraction"],
              "validation": st["validation_fraction"], "test": st["test_fraction"]}
    else:
        fr = {"train": 1 - st["validation_fraction"], "validation": st["validation_fraction"]}
    parts = split_records(records, fr, st["seed"], split_file)
    tr = [by_id[i] for i in parts["train"]]
    va = [by_id[i] for i in parts["validation"]]
    te = [by_id[i] for i in parts["test"]] if test is None else list(test)
    if test is not None:
        # a user's test file may repeat training texts: drop them from train/validation, and say so
        test_h = {content_hash(r["text"]) for r in te}
        n0 = len(tr) + len(va)
        tr = [r for r in tr if content_hash(r["text"]) not in test_h]
        va = [r for r in va if content_hash(r["text"]) not in test_h]
        if len(tr) + len(va) < n0:
            log.warning("%d training text(s) also occur in the test file: removed from train/validation",
                        n0 - len(tr) - len(va))
    return tr, va, te


@dataclass
class Prepared:
    """Training data after :func:`prepare`, and what was excluded and why."""

    train: list[dict]
    label_names: list[str]
    excluded_labels: dict[str, int] = field(default_factory=dict)   # label -> training docs it had
    short_docs: int = 0
    conflicting_duplicates: list[dict] = field(default_factory=list)

    def report(self) -> dict:
        return {"train_docs": len(self.train), "labels": len(self.label_names),
                "excluded_labels": self.excluded_labels, "short_docs_excluded": self.short_docs,
                "conflicting_duplicates": len(self.conflicting_duplicates),
                "conflicting_duplicate_examples": self.conflicting_duplicates[:10]}


def find_conflicting_duplicates(records: Sequence[dict]) -> list[dict]:
    """Exact duplicate texts (by content hash) that carry different label sets."""
    by_hash: dict[str, list[dict]] = {}
    for r in records:
        by_hash.setdefault(content_hash(r["text"]), []).append(r)
    out = []
    for h, rs in by_hash.items():
        sets = {tuple(sorted(r["labels"])) for r in rs}
        if len(rs) > 1 and len(sets) > 1:
            out.append({"content_hash": h, "doc_ids": [r["doc_id"] for r in rs],
                        "label_sets": [list(s) for s in sorted(sets)]})
    return out


def prepare(train: Sequence[dict], min_label_docs: int = 2, min_words: int = 10,
            label_names: Sequence[str] | None = None) -> Prepared:
    """Training-side data preparation (see the module docstring). Evaluation sets are not filtered."""
    conflicts = find_conflicting_duplicates(train)
    if conflicts:
        log.warning("%d duplicate text(s) carry conflicting labels, e.g. doc ids %s", len(conflicts),
                    ", ".join(conflicts[0]["doc_ids"][:5]))
    kept = [r for r in train if word_count(r["text"]) >= min_words]
    short = len(train) - len(kept)
    if short:
        log.info("%d training document(s) under %d words excluded from training", short, min_words)
    counts: dict[str, int] = {}
    for r in kept:
        for lab in r["labels"]:
            counts[lab] = counts.get(lab, 0) + 1
    candidates = sorted(set(label_names) if label_names is not None else set(counts))
    excluded = {lab: counts.get(lab, 0) for lab in candidates if counts.get(lab, 0) < min_label_docs}
    if excluded:
        log.warning("labels with fewer than %d training documents excluded: %s", min_label_docs,
                    ", ".join(f"{k} ({v})" for k, v in sorted(excluded.items())))
    names = [lab for lab in candidates if lab not in excluded]
    keep = set(names)
    kept = [{**r, "labels": [lab for lab in r["labels"] if lab in keep]} for r in kept]
    return Prepared(kept, names, excluded, short, conflicts)


def binarize(labels: Sequence[Iterable[str]], label_names: Sequence[str]) -> np.ndarray:
    """Label lists -> an n_docs x n_labels 0/1 int matrix (unknown labels ignored)."""
    index = {lab: j for j, lab in enumerate(label_names)}
    y = np.zeros((len(labels), len(label_names)), dtype=np.int8)
    for i, labs in enumerate(labels):
        for lab in labs:
            j = index.get(lab)
            if j is not None:
                y[i, j] = 1
    return y


# ---------------------------------------------------------------------------------------------------
# Metrics and thresholds
# ---------------------------------------------------------------------------------------------------

def _div(a, b):
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)


def multilabel_metrics(y_true: np.ndarray, y_pred: np.ndarray, label_names: Sequence[str] | None = None) -> dict:
    """Multi-label metrics of 0/1 matrices (n_docs x n_labels).

    * micro: pooled TP/FP/FN over every (doc, label) cell;
    * macro: unweighted mean over the labels with support > 0 in ``y_true`` (``macro_f1_all`` averages
      over every label, a label without support and without predictions counting as 0);
    * weighted: mean weighted by support; subset accuracy: fraction of documents whose predicted label
      set equals the true one exactly; per_label: precision/recall/F1/support per label.
    """
    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shapes differ: y_true {y_true.shape}, y_pred {y_pred.shape}")
    n_docs, n_labels = y_true.shape
    names = list(label_names) if label_names is not None else [str(j) for j in range(n_labels)]
    tp = (y_true & y_pred).sum(0)
    fp = (~y_true & y_pred).sum(0)
    fn = (y_true & ~y_pred).sum(0)
    support = y_true.sum(0)
    p = _div(tp, tp + fp)
    r = _div(tp, tp + fn)
    f = _div(2 * p * r, p + r)
    TP, FP, FN = tp.sum(), fp.sum(), fn.sum()
    mp = float(_div(TP, TP + FP))
    mr = float(_div(TP, TP + FN))
    mf = float(_div(2 * mp * mr, mp + mr))
    has = support > 0
    w = support / support.sum() if support.sum() else np.zeros(n_labels)
    return {
        "n_docs": int(n_docs), "n_labels": int(n_labels), "n_labels_with_support": int(has.sum()),
        "micro_precision": mp, "micro_recall": mr, "micro_f1": mf,
        "macro_precision": float(p[has].mean()) if has.any() else 0.0,
        "macro_recall": float(r[has].mean()) if has.any() else 0.0,
        "macro_f1": float(f[has].mean()) if has.any() else 0.0,
        "macro_f1_all": float(f.mean()) if n_labels else 0.0,
        "weighted_precision": float((p * w).sum()), "weighted_recall": float((r * w).sum()),
        "weighted_f1": float((f * w).sum()),
        "subset_accuracy": float((y_true == y_pred).all(1).mean()) if n_docs else 0.0,
        "per_label": {names[j]: {"precision": float(p[j]), "recall": float(r[j]), "f1": float(f[j]),
                                 "support": int(support[j]), "predicted": int(tp[j] + fp[j])}
                      for j in range(n_labels)},
    }


def apply_thresholds(scores: np.ndarray, thresholds, at_least_one: bool = False) -> np.ndarray:
    """0/1 predictions: ``score >= threshold`` per label; with ``at_least_one`` a document that gets no
    label receives its highest-scoring one."""
    scores = np.asarray(scores, dtype=float)
    th = np.broadcast_to(np.asarray(thresholds, dtype=float), scores.shape[1:])
    pred = (scores >= th).astype(np.int8)
    if at_least_one and scores.size:
        empty = pred.sum(1) == 0
        if empty.any():
            pred[np.where(empty)[0], scores[empty].argmax(1)] = 1
    return pred


def _grid_for(scores: np.ndarray, grid) -> np.ndarray:
    if grid is not None and len(grid):
        return np.asarray(sorted(set(float(g) for g in grid)))
    s = np.asarray(scores, dtype=float).ravel()
    if s.size == 0:
        return np.asarray(DEFAULT_GRID)
    if s.min() >= 0 and s.max() <= 1:
        return np.asarray(DEFAULT_GRID)
    return np.unique(np.quantile(s, np.linspace(0.01, 0.99, 99)))


def _f1_counts(y: np.ndarray, pred: np.ndarray) -> tuple[int, int, int]:
    y = y.astype(bool)
    pred = pred.astype(bool)
    return int((y & pred).sum()), int((~y & pred).sum()), int((y & ~pred).sum())


def _f1(tp, fp, fn) -> float:
    d = 2 * tp + fp + fn
    return 2 * tp / d if d else 0.0


@dataclass
class Thresholds:
    """Per-label thresholds tuned on validation; stored with the model (:meth:`to_dict`)."""

    label_names: list[str]
    values: list[float]
    at_least_one: bool
    global_threshold: float
    tuned_labels: int = 0
    validation_micro_f1: float = 0.0

    def apply(self, scores: np.ndarray) -> np.ndarray:
        return apply_thresholds(scores, self.values, self.at_least_one)

    def to_dict(self) -> dict:
        return {"label_names": self.label_names, "values": self.values, "at_least_one": self.at_least_one,
                "global_threshold": self.global_threshold, "tuned_labels": self.tuned_labels,
                "validation_micro_f1": self.validation_micro_f1}

    @classmethod
    def from_dict(cls, d: dict) -> Thresholds:
        return cls(**d)


def tune_thresholds(y_true: np.ndarray, scores: np.ndarray, grid: Sequence[float] | None = None,
                    at_least_one: bool | str = "auto", min_positives: int = 10,
                    label_names: Sequence[str] | None = None) -> Thresholds:
    """Tune one threshold per label on a *validation* split.

    1. A global threshold: the grid value with the best micro-F1 over all labels.
    2. Per label with at least ``min_positives`` positives in validation: the grid value with the best
       F1 of that label (ties: the value closest to the global one). Labels with fewer positives keep
       the global threshold (a per-label optimum on one or two examples does not generalise).
    3. ``at_least_one``: True/False, or ``"auto"`` — keep the option that gives the better validation
       micro-F1.

    ``grid`` None: 0.02..0.98 when scores lie in [0, 1], otherwise 99 quantiles of the scores.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape:
        raise ValueError(f"shapes differ: y_true {y.shape}, scores {s.shape}")
    n_labels = y.shape[1]
    names = list(label_names) if label_names is not None else [str(j) for j in range(n_labels)]
    g = _grid_for(s, grid)
    best_global, best_f = float(g[0]), -1.0
    for t in g:
        f = _f1(*_f1_counts(y, s >= t))
        if f > best_f + 1e-12:
            best_global, best_f = float(t), f
    values = np.full(n_labels, best_global)
    tuned = 0
    for j in range(n_labels):
        if y[:, j].sum() < min_positives:
            continue
        col, yj = s[:, j], y[:, j]
        fs = np.array([_f1(*_f1_counts(yj, col >= t)) for t in g])
        top = fs.max()
        cands = g[np.isclose(fs, top)]
        values[j] = float(cands[np.argmin(np.abs(cands - best_global))])
        tuned += 1
    options = [True, False] if at_least_one == "auto" else [bool(at_least_one)]
    best = None
    for opt in options:
        f = _f1(*_f1_counts(y, apply_thresholds(s, values, opt)))
        if best is None or f > best[1] + 1e-12:
            best = (opt, f)
    assert best is not None  # options is never empty
    return Thresholds(names, [float(v) for v in values], best[0], best_global, tuned, float(best[1]))


def threshold_sweep(y_true: np.ndarray, scores: np.ndarray, grid: Sequence[float] | None = None,
                    at_least_one: bool = False) -> list[dict]:
    """Micro/macro F1, precision and recall for one global threshold at each grid value."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=float)
    out = []
    for t in _grid_for(s, grid):
        m = multilabel_metrics(y, apply_thresholds(s, t, at_least_one))
        out.append({"threshold": float(t), "micro_f1": m["micro_f1"], "macro_f1": m["macro_f1"],
                    "micro_precision": m["micro_precision"], "micro_recall": m["micro_recall"]})
    return out
