"""Classifiers of lakedoc: the :class:`Method` protocol, the method registry, and the evaluation harness.

Every classifier — the classical baselines (:mod:`lakedoc.baselines`) and the zero-shot embedding
classifier (:mod:`lakedoc.classify.zero_shot`) — is a :class:`Method`; the ones the ``baselines`` task
trains, scores in Spark and saves are also a :class:`SparkMethod`. Dependencies (the Spark session, the
document vectors of the ``embeddings`` table) go through the constructor, the configuration through
``fit``; :func:`evaluate_method` stores the tuned thresholds in ``thresholds``. mypy checks that every
registered class conforms (:mod:`lakedoc.evaluate_cli`).

Methods are registered in :data:`METHODS` by import path and imported lazily, so that a method whose
dependencies are absent does not break the others (``lakedoc evaluate --method all`` skips it with a
message), and so that this module imports none of them. The arithmetic (splits, metrics, thresholds)
is :mod:`lakedoc.evaluation`.

* :func:`load_method` / :func:`load_spark_method` — instantiate a registered method with its dependencies.
* :func:`eval_settings` — the harness settings of the ``baselines`` configuration section.
* :func:`evaluate_method` — fit on train, tune thresholds on validation, measure on test; ``lakedoc
  evaluate`` and the ``baselines`` task both call it.
"""
from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lakedoc.config_schema import BaselinesSettings
from lakedoc.evaluation import (
    Thresholds,
    binarize,
    check_leakage,
    multilabel_metrics,
    prepare,
    threshold_sweep,
    tune_thresholds,
)

log = logging.getLogger(__name__)

# name -> "module:Class"; imported lazily (see the module docstring).
METHODS: dict[str, str] = {
    "tfidf_lr": "lakedoc.baselines.tfidf:TfidfLogReg",
    "tfidf_xgb": "lakedoc.baselines.tfidf:TfidfXGB",
    "embedding_lr": "lakedoc.baselines.embedding:EmbeddingLogReg",
    "embedding_xgb": "lakedoc.baselines.embedding:EmbeddingXGB",
    "zero_shot": "lakedoc.classify.zero_shot:ZeroShotMethod",
    "finetuned": "lakedoc.finetune.method:FinetunedMethod",
}


@runtime_checkable
class Method(Protocol):
    """A classifier the harness can evaluate (``lakedoc evaluate``, :func:`evaluate_method`)."""

    name: str
    thresholds: Thresholds | None = None  # tuned on validation by evaluate_method, stored with the model

    def fit(self, train_texts: list[str], train_labels: list[list[str]], label_names: list[str],
            cfg: Any) -> None:
        """Train on ``train_texts`` (labels: lists of names out of ``label_names``)."""
        ...

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        """``len(texts) x len(label_names)`` scores, higher = more likely, in ``label_names`` order."""
        ...


@runtime_checkable
class SparkMethod(Method, Protocol):
    """A :class:`Method` the ``baselines`` task trains: it also scores a DataFrame and saves itself."""

    label_names: list[str]  # the labels it was fitted on, the order of its scores
    input_col: str  # the column score_df reads: "text", or "vector" (array<float>) for the embedding heads
    encoded: int  # texts it had to encode itself (no vector given to its constructor); 0 for TF-IDF

    def score_df(self, df: Any, id_col: str = "doc_id") -> Any:
        """``(id_col, input_col)`` -> ``(id_col, scores array<double>)`` in :attr:`label_names` order."""
        ...

    def save(self, path: str) -> str:
        """Persist the fitted model and its thresholds under ``path``; returns ``path``."""
        ...


class MethodUnavailable(RuntimeError):
    """The method's module (or one of its dependencies) cannot be imported or run here."""


def method_class(name: str) -> type:
    """The class registered as ``name`` (imported now)."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    module, cls = METHODS[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise MethodUnavailable(f"method {name!r} ({METHODS[name]}) cannot be imported: {exc}") from exc


def load_method(name: str, **deps: Any) -> Method:
    """Instantiate the method registered as ``name``; ``deps`` go to its constructor."""
    inst = method_class(name)(**deps)
    if not isinstance(inst, Method):
        raise TypeError(f"method {name!r} ({METHODS[name]}) does not implement lakedoc.methods.Method")
    return inst


def load_spark_method(name: str, **deps: Any) -> SparkMethod:
    """Like :func:`load_method`, for a method the ``baselines`` task can train, score and save."""
    inst = method_class(name)(**deps)
    if not isinstance(inst, SparkMethod):
        raise TypeError(f"method {name!r} ({METHODS[name]}) is not a SparkMethod: the baselines task cannot "
                        "score it in Spark or save it")
    return inst


# ---------------------------------------------------------------------------------------------------
# The harness
# ---------------------------------------------------------------------------------------------------

@dataclass
class EvalResult:
    method: str
    metrics: dict
    thresholds: Thresholds
    sweep: list[dict]
    train_seconds: float
    predict_seconds: float
    sizes: dict
    preparation: dict
    model: Method | None = None
    test_scores: np.ndarray | None = None

    def summary(self) -> dict:
        keys = ("micro_f1", "macro_f1", "weighted_f1", "micro_precision", "micro_recall", "subset_accuracy")
        return {"method": self.method, **{k: round(self.metrics[k], 4) for k in keys},
                "train_s": round(self.train_seconds, 1), "predict_s": round(self.predict_seconds, 1)}

    def to_dict(self) -> dict:
        return {"method": self.method, "metrics": self.metrics, "thresholds": self.thresholds.to_dict(),
                "threshold_sweep": self.sweep, "train_seconds": self.train_seconds,
                "predict_seconds": self.predict_seconds, "sizes": self.sizes, "preparation": self.preparation}


def eval_settings(cfg: Any) -> dict:
    """The harness settings of the ``baselines`` section (:class:`~lakedoc.config_schema.BaselinesSettings`;
    ``cfg`` None: its defaults)."""
    s = BaselinesSettings.from_config(cfg)
    return {
        "min_label_docs": s.min_label_docs,
        "min_words": s.min_words,
        "grid": s.threshold_grid,
        "at_least_one": s.at_least_one,
        "min_positives": s.threshold_min_positives,
        "seed": s.seed,
        "validation_fraction": s.validation_fraction,
        "test_fraction": s.test_fraction,
    }


def evaluate_method(method: Method, train: Sequence[dict], validation: Sequence[dict], test: Sequence[dict],
                    cfg: Any, settings: dict | None = None) -> EvalResult:
    """Prepare the training data, fit ``method``, tune thresholds on ``validation``, measure on ``test``.

    The tuned thresholds are stored in ``method.thresholds``. Raises when train/validation/test share a
    text (content-hash leakage)."""
    st = settings or eval_settings(cfg)
    leaks = check_leakage({"train": [r["text"] for r in train], "validation": [r["text"] for r in validation],
                           "test": [r["text"] for r in test]})
    if leaks:
        raise ValueError(f"leakage between splits (texts shared by content hash): {leaks}")
    prep = prepare(train, st["min_label_docs"], st["min_words"])
    if not prep.label_names:
        raise ValueError("no label has enough training documents "
                         f"(baselines.min_label_docs = {st['min_label_docs']})")
    names = prep.label_names
    log.info("%s: fitting on %d documents, %d labels", method.name, len(prep.train), len(names))
    t0 = time.perf_counter()
    method.fit([r["text"] for r in prep.train], [r["labels"] for r in prep.train], names, cfg)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    val_scores = np.asarray(method.predict_scores([r["text"] for r in validation]), dtype=float)
    test_scores = np.asarray(method.predict_scores([r["text"] for r in test]), dtype=float)
    predict_s = time.perf_counter() - t0
    y_val = binarize([r["labels"] for r in validation], names)
    y_test = binarize([r["labels"] for r in test], names)
    th = tune_thresholds(y_val, val_scores, st["grid"], st["at_least_one"], st["min_positives"], names)
    method.thresholds = th  # stored with the model
    metrics = multilabel_metrics(y_test, th.apply(test_scores), names)
    sweep = threshold_sweep(y_test, test_scores, st["grid"], th.at_least_one)
    sizes = {"train": len(prep.train), "validation": len(validation), "test": len(test), "labels": len(names)}
    return EvalResult(method.name, metrics, th, sweep, train_s, predict_s, sizes, prep.report(), method, test_scores)
