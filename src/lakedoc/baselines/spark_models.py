"""Multi-label classification with Spark ML: one binary model per label (binary relevance).

:class:`SparkMultiLabel` implements the :class:`lakedoc.methods.SparkMethod` protocol: the harness's
``fit``/``predict_scores`` on top of two Spark-level operations used by the ``baselines`` task directly:

* :meth:`fit_df` — a DataFrame ``(doc_id, <input column>, labels array<string>)``: featurise (the
  subclass's feature pipeline), cache the features, then fit one binary classifier per label with a
  class weight ``min(negatives / positives, baselines.max_pos_weight)`` on the positives;
* :meth:`score_df` — ``(doc_id, <input column>)`` -> ``(doc_id, scores array<double>)``, the positive
  class probability per label in :attr:`label_names` order.

Why one model per label: Spark ML has no multi-label estimator (``OneVsRest`` is multi-class, one label
per row), and independent binaries let each label get its own class weight and threshold. For
XGBoost a single multi-output model would need a 2-D label, which ``SparkXGBClassifier`` does not take.

Stage code only: no ``sparkContext``, no ``df.rdd`` (Spark Connect safe).
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lakedoc.config_schema import BaselinesSettings
from lakedoc.evaluation import Thresholds

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

log = logging.getLogger(__name__)


class SparkMultiLabel:
    """Base class: a Spark feature stage + one Spark ML binary classifier per label.

    ``spark``: the session to use (None: :func:`lakedoc.spark.get_spark` on first use)."""

    name = "spark_multilabel"
    input_col = "text"  # or "vector" for the embedding heads

    def __init__(self, spark=None) -> None:
        self.label_names: list[str] = []
        self.feature_model: PipelineModel | None = None  # a fitted feature pipeline
        self.models: list[Any] = []        # one fitted binary model per label
        self.thresholds: Thresholds | None = None
        self.settings = BaselinesSettings()  # the ``baselines`` section fit was given
        self.params: dict = {}  # the same as a plain dict (saved in meta.json)
        self.spark = spark
        self.train_stats: dict = {}
        self.encoded = 0  # texts encoded by the method itself (the embedding heads)
        self._cfg: Any = None  # the configuration given to fit

    # -- to be provided by subclasses ---------------------------------------------------------------
    def _feature_pipeline(self, s: BaselinesSettings):
        """An unfitted ``pyspark.ml.Pipeline`` from ``input_col`` to ``features`` (or None)."""
        return None

    def _estimator(self, s: BaselinesSettings, label_col: str, weight_col: str):
        raise NotImplementedError

    def _cache_features(self) -> bool:
        """Cache the features before :meth:`_fit_labels` (it reads them once per label)."""
        return True

    def _check(self, spark, s: BaselinesSettings) -> None:
        """Fail early on impossible settings (XGBoost barrier mode)."""

    def _max_parallel(self, spark, s: BaselinesSettings) -> int:
        """Upper bound of concurrent per-label fits (XGBoost: task slots // workers)."""
        return 1 << 30

    def _positive_prob_cols(self, model, j: int) -> tuple[Any, str]:
        """Return the model configured to write its probability to a unique column, and that column."""
        raise NotImplementedError

    # -- Spark-level API ----------------------------------------------------------------------------
    def _get_spark(self, cfg):
        from lakedoc.config import Config
        from lakedoc.spark import get_spark

        if self.spark is None:
            self.spark = get_spark(cfg if isinstance(cfg, Config) else None)
        return self.spark

    def featurize(self, df):
        if self.feature_model is None:
            return df
        return self.feature_model.transform(df)

    def fit_df(self, df, label_names: Sequence[str], cfg) -> None:
        from lakedoc.spark import cached

        spark = self._get_spark(cfg)
        self.settings = BaselinesSettings.from_config(cfg)
        self.params = self.settings.model_dump(mode="json")
        self._check(spark, self.settings)
        self.label_names = list(label_names)
        pipe = self._feature_pipeline(self.settings)
        t0 = time.perf_counter()
        self.feature_model = pipe.fit(df) if pipe is not None else None
        feats = self.featurize(df).select("features", "labels")
        if self._cache_features():
            feats = cached(feats)
        try:
            self._fit_labels(spark, feats, t0)
        finally:
            uncache(feats)

    def _label_counts(self, feats, t0: float) -> tuple[int, dict]:
        """Documents and positives per label; sets :attr:`train_stats`."""
        from pyspark.sql import functions as F

        n = feats.count()
        counts = {r["label"]: r["n"] for r in
                  feats.select(F.explode("labels").alias("label")).groupBy("label").agg(F.count("*").alias("n"))
                  .collect()}
        self.train_stats = {"docs": n, "positives": {lab: int(counts.get(lab, 0)) for lab in self.label_names},
                            "feature_seconds": time.perf_counter() - t0}
        return n, counts

    def _fit_labels(self, spark, feats, t0: float) -> None:
        from pyspark.sql import functions as F

        n, counts = self._label_counts(feats, t0)
        cap = self.settings.max_pos_weight

        def fit_one(j: int):
            lab = self.label_names[j]
            pos = counts.get(lab, 0)
            w = min((n - pos) / pos, cap) if pos else 1.0
            w = max(w, 1.0)
            data = (feats.withColumn("_y", F.array_contains("labels", F.lit(lab)).cast("double"))
                    .withColumn("_w", F.when(F.col("_y") == 1.0, F.lit(float(w))).otherwise(F.lit(1.0))))
            return self._estimator(self.settings, "_y", "_w").fit(data)

        par = max(1, min(self.settings.parallel_labels, self._max_parallel(spark, self.settings)))
        init = _thread_session(spark)
        if par > 1:
            with ThreadPoolExecutor(par, initializer=init) as ex:
                self.models = list(ex.map(fit_one, range(len(self.label_names))))
        else:
            self.models = [fit_one(j) for j in range(len(self.label_names))]

    def score_df(self, df, id_col: str = "doc_id"):
        """``(id_col, input_col)`` -> ``(id_col, scores array<double>)`` in :attr:`label_names` order."""
        from pyspark.ml.functions import vector_to_array
        from pyspark.sql import functions as F

        if not self.models:
            raise RuntimeError(f"{self.name}: not fitted")
        out = self.featurize(df.select(id_col, self.input_col)).select(id_col, "features")
        cols = []
        for j, model in enumerate(self.models):
            m, col = self._positive_prob_cols(model, j)
            out = m.transform(out)
            cols.append(col)
        # keep the probability of the positive class only (vectors -> doubles)
        return out.select(id_col, F.array(*[vector_to_array(F.col(c))[1] for c in cols]).alias("scores"))

    # -- Method protocol ----------------------------------------------------------------------------
    def _input_frame(self, texts: Sequence[str], labels: Sequence[Sequence[str]] | None = None):
        import pandas as pd

        spark = self._get_spark(self._cfg)
        pdf = pd.DataFrame({"doc_id": [str(i) for i in range(len(texts))], "text": list(texts)})
        if labels is not None:
            pdf["labels"] = [list(x) for x in labels]
            schema = "doc_id string, text string, labels array<string>"
        else:
            schema = "doc_id string, text string"
        return spark.createDataFrame(pdf, schema=schema)

    def fit(self, train_texts, train_labels, label_names, cfg) -> None:
        self._cfg = cfg
        self._get_spark(cfg)
        self.fit_df(self._input_frame(train_texts, train_labels), label_names, cfg)

    def predict_scores(self, texts) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, len(self.label_names)))
        pdf = self.score_df(self._input_frame(texts)).toPandas()
        order = pdf["doc_id"].astype(int).to_numpy()
        scores = np.zeros((len(texts), len(self.label_names)))
        scores[order] = np.vstack(pdf["scores"].to_numpy())
        return scores

    # -- persistence ----------------------------------------------------------------------------------
    def save(self, path: str) -> str:
        """Spark ML persistence: ``features/`` (PipelineModel), ``label_000/``..., ``meta.json``
        (label names, thresholds, parameters). ``path`` may be local, ``/Volumes/...`` or ``dbfs:/``."""
        if self.feature_model is not None:
            self.feature_model.write().overwrite().save(f"{path}/features")
        for j, m in enumerate(self.models):
            m.write().overwrite().save(f"{path}/label_{j:03d}")
        meta = {**self._save_extra(path), "method": self.name,
                "class": f"{type(self).__module__}:{type(self).__name__}",
                "label_names": self.label_names, "params": self.params, "train_stats": self.train_stats,
                "thresholds": self.thresholds.to_dict() if self.thresholds else None}
        _write_text(f"{path}/meta.json", json.dumps(meta, indent=1, default=str))
        return path

    def _save_extra(self, path: str) -> dict:
        """Save what the per-label Spark ML models do not hold; returns entries for ``meta.json``."""
        return {}

    def _load_model_class(self):
        raise NotImplementedError

    @classmethod
    def load(cls, path: str, cfg=None, spark=None) -> SparkMultiLabel:
        """The model :meth:`save` wrote to ``path``; ``spark``: the session to use (None: as ``__init__``)."""
        from pyspark.ml import PipelineModel

        meta = json.loads(_read_text(f"{path}/meta.json"))
        inst = cls(spark)
        inst._get_spark(cfg)
        inst.label_names = meta["label_names"]
        inst.params = meta["params"]
        inst.settings = BaselinesSettings.from_config(meta["params"])
        inst.train_stats = meta.get("train_stats", {})
        inst.thresholds = Thresholds.from_dict(meta["thresholds"]) if meta.get("thresholds") else None
        if _exists(f"{path}/features"):
            inst.feature_model = PipelineModel.load(f"{path}/features")
        inst._load_models(path, meta)
        return inst

    def _load_models(self, path: str, meta: dict) -> None:
        model_cls = self._load_model_class()
        self.models = [model_cls.load(f"{path}/label_{j:03d}") for j in range(len(self.label_names))]


def _thread_session(spark):
    """The initializer that lets a pool thread fit Spark ML models (``None`` on a classic session).

    A Spark Connect client keeps its active session per thread, and Spark ML's Connect client looks it up
    (``SparkSession.getActiveSession()``, e.g. for a model's training summary): in a fresh pool thread
    there is none and the fit fails. The initializer makes ``spark`` active there.
    """
    from lakedoc.spark import activate, is_connect

    if not is_connect(spark):
        return None
    return lambda: activate(spark)


def uncache(df) -> None:
    """``df.unpersist()``, tolerating compute that never cached it (serverless rejects the call too)."""
    try:
        df.unpersist()
    except Exception as exc:  # noqa: BLE001 - nothing cached: nothing to free
        log.debug("unpersist not available here: %s", str(exc).splitlines()[0][:160] if str(exc) else exc)


def _local(path: str) -> Path | None:
    if path.startswith("file:"):
        return Path(path[5:])
    if "://" in path or path.startswith("dbfs:"):
        return None
    return Path(path)


def _write_text(path: str, text: str) -> None:
    p = _local(path)
    if p is None:
        raise ValueError(f"cannot write {path}: use a local, /Volumes/... or /dbfs/... path for baselines.model_dir")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def _read_text(path: str) -> str:
    p = _local(path)
    if p is None:
        raise ValueError(f"cannot read {path}")
    return p.read_text()


def _exists(path: str) -> bool:
    p = _local(path)
    return bool(p and p.exists())
