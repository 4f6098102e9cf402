"""Supervised heads on sentence embeddings: ``embedding_lr`` (linear probe) and ``embedding_xgb``.

Input vectors come from, in this order:

1. :attr:`EmbeddingHead.vector_lookup` — ``{content_hash(text): vector}``, given to the constructor by the
   ``baselines`` task from the ``embeddings`` table written by the classification stage (chunk vectors averaged per
   document, then L2-normalised), so the DAG reuses the GPU's work;
2. otherwise the project encoder, ``lakedoc.encoder.get_encoder(cfg).encode(texts, kind="passage")``
   (what ``lakedoc evaluate`` on JSONL uses).

In Spark the vectors are ``array<float>`` (column ``vector``), turned into ML vectors with
``array_to_vector``; the classifiers are the same per-label Spark ML LR / SparkXGBClassifier as the
TF-IDF baselines (:mod:`lakedoc.baselines.tfidf`).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from lakedoc.baselines.spark_models import SparkMultiLabel
from lakedoc.baselines.tfidf import _LogRegMixin, _XGBMixin
from lakedoc.evaluation import content_hash
from lakedoc.methods import MethodUnavailable

log = logging.getLogger(__name__)


# (encoder model id, content hash) -> vector: embedding_lr and embedding_xgb evaluated in one process
# (``lakedoc evaluate --method all``) encode each text once.
_CACHE: dict[tuple[str, str], np.ndarray] = {}


def encode_texts(texts: Sequence[str], cfg) -> np.ndarray:
    try:
        from lakedoc.encoder import get_encoder
    except ImportError as exc:  # the classification engineer's module
        raise MethodUnavailable(f"lakedoc.encoder is not available: {exc}") from exc
    enc = get_encoder(cfg)
    model = str(getattr(enc, "model_id", ""))
    keys = [(model, content_hash(t)) for t in texts]
    todo = [i for i, k in enumerate(keys) if k not in _CACHE]
    if todo:
        vecs = np.asarray(enc.encode([texts[i] for i in todo], kind="passage"), dtype=np.float32)
        for i, v in zip(todo, vecs, strict=True):
            _CACHE[keys[i]] = v
    return np.stack([_CACHE[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)


class EmbeddingHead(SparkMultiLabel):
    input_col = "vector"

    def __init__(self, spark=None, vector_lookup: dict[str, np.ndarray] | None = None) -> None:
        super().__init__(spark)
        self.vector_lookup: dict[str, np.ndarray] = dict(vector_lookup or {})

    def featurize(self, df):
        from pyspark.ml.functions import array_to_vector
        from pyspark.sql import functions as F

        return df.withColumn("features", array_to_vector(F.col(self.input_col)))

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts``: from :attr:`vector_lookup` when known, else encoded."""
        cfg = self._cfg
        hashes = [content_hash(t) for t in texts]
        missing = [i for i, h in enumerate(hashes) if h not in self.vector_lookup]
        enc = encode_texts([texts[i] for i in missing], cfg) if missing else None
        self.encoded += len(missing)
        dim = (enc.shape[1] if enc is not None else
               len(next(iter(self.vector_lookup.values()))) if self.vector_lookup else 0)
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i, h in enumerate(hashes):
            if h in self.vector_lookup:
                out[i] = self.vector_lookup[h]
        if enc is not None:
            out[missing] = enc
        return out

    def _input_frame(self, texts, labels=None):
        import pandas as pd

        spark = self._get_spark(self._cfg)
        vecs = self.vectors(texts)
        pdf = pd.DataFrame({"doc_id": [str(i) for i in range(len(texts))],
                            "vector": [v.astype(float).tolist() for v in vecs]})
        schema = "doc_id string, vector array<float>"
        if labels is not None:
            pdf["labels"] = [list(x) for x in labels]
            schema += ", labels array<string>"
        return spark.createDataFrame(pdf, schema=schema)


class EmbeddingLogReg(_LogRegMixin, EmbeddingHead):
    """``embedding_lr``: a logistic-regression probe per label on the document embedding."""

    name = "embedding_lr"

    def _estimator(self, s, label_col, weight_col):
        est = super()._estimator(s, label_col, weight_col)
        return est.setStandardization(True)


class EmbeddingXGB(_XGBMixin, EmbeddingHead):
    """``embedding_xgb``: ``SparkXGBClassifier`` per label on the (dense) document embedding."""

    name = "embedding_xgb"
    sparse_features = False
