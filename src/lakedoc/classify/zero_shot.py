"""Zero-shot scoring: cosine(chunk, label description) -> document score -> threshold.

For one document with chunk vectors ``C`` (m x d) and the description vectors of the taxonomy:

1. ``sim[c, l]`` — cosine of chunk ``c`` and label ``l``: the best of the label's descriptions
   (``classify.description_pooling: max``) or the label's mean description vector (``mean``);
2. document similarity per label: ``max`` / ``mean`` / ``topk_mean`` over chunks
   (``classify.aggregation``, ``classify.top_k``);
3. hierarchy: with ``classify.propagate_to_parent`` a parent is at least as similar as its best child;
4. ``score = sigmoid(scale * (similarity - bias))`` (``classify.sigmoid_scale``/``sigmoid_bias``) —
   monotone, so thresholds on the score are thresholds on the cosine, on a readable 0..1 scale.

Labels are embedded as ``query`` inputs and chunks as ``passage`` inputs (the encoder's prefix
scheme decides what that means for the model). Label vectors are computed once per process and cached
by (model, prefix scheme, description hash).

:class:`ZeroShotMethod` is the evaluation harness's method ``zero_shot`` (``lakedoc evaluate``).
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lakedoc.chunking import ChunkSettings, chunk_document
from lakedoc.classify.taxonomy import Taxonomy
from lakedoc.config_schema import ClassifySettings

if TYPE_CHECKING:
    from lakedoc.evaluation import Thresholds

log = logging.getLogger(__name__)

_LABEL_CACHE: dict[tuple[str, str, str], np.ndarray] = {}
_LABEL_LOCK = threading.Lock()


_DEFAULTS = ClassifySettings()


@dataclass(frozen=True)
class ScoringSettings:
    """The scoring part of the ``classify`` section (:class:`~lakedoc.config_schema.ClassifySettings`,
    whose defaults these are)."""

    aggregation: str = _DEFAULTS.aggregation
    top_k: int = _DEFAULTS.top_k
    description_pooling: str = _DEFAULTS.description_pooling
    sigmoid_scale: float = _DEFAULTS.sigmoid_scale
    sigmoid_bias: float = _DEFAULTS.sigmoid_bias
    propagate_to_parent: bool = _DEFAULTS.propagate_to_parent

    @classmethod
    def from_config(cls, cfg: Any) -> ScoringSettings:
        c = ClassifySettings.from_config(cfg)
        return cls(c.aggregation, c.top_k, c.description_pooling, c.sigmoid_scale, c.sigmoid_bias,
                   c.propagate_to_parent)

    def signature(self) -> str:
        return (f"{self.aggregation}|{self.top_k}|{self.description_pooling}|{self.sigmoid_scale}|"
                f"{self.sigmoid_bias}|{int(self.propagate_to_parent)}")


def _desc_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def description_vectors(encoder, descriptions: Sequence[str]) -> np.ndarray:
    """Vectors of label descriptions, encoded as queries; cached per process."""
    keys = [(encoder.model_id, encoder.prefix_scheme, _desc_hash(d)) for d in descriptions]
    with _LABEL_LOCK:
        todo = sorted({i for i, k in enumerate(keys) if k not in _LABEL_CACHE})
        if todo:
            vecs = encoder.encode([descriptions[i] for i in todo], kind="query")
            for i, v in zip(todo, vecs, strict=True):
                _LABEL_CACHE[keys[i]] = v
        return np.stack([_LABEL_CACHE[k] for k in keys]) if keys else np.zeros((0, encoder.dimension), np.float32)


def aggregate(sims: np.ndarray, how: str = "max", top_k: int = 3) -> np.ndarray:
    """Chunk x label similarities -> one row per label (``max``, ``mean`` or ``topk_mean``)."""
    if sims.shape[0] == 0:
        return np.zeros(sims.shape[1], dtype=np.float32)
    if how == "max":
        return sims.max(axis=0)
    if how == "mean":
        return sims.mean(axis=0)
    if how == "topk_mean":
        k = min(top_k, sims.shape[0])
        part = np.sort(sims, axis=0)[-k:]
        return part.mean(axis=0)
    raise ValueError(f"unknown aggregation {how!r}")


def sigmoid_score(sim: np.ndarray, scale: float, bias: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-scale * (np.asarray(sim, dtype=np.float64) - bias)))


class ZeroShotScorer:
    """Scores documents against a taxonomy with one encoder."""

    def __init__(self, encoder, taxonomy: Taxonomy, scoring: ScoringSettings, chunking: ChunkSettings | None = None):
        self.encoder = encoder
        self.taxonomy = taxonomy
        self.scoring = scoring
        self.chunking = (chunking or ChunkSettings()).fitted(encoder)
        self.label_names = taxonomy.names
        descs, owner = [], []
        for j, lab in enumerate(taxonomy.labels):
            for d in lab.descriptions:
                descs.append(d)
                owner.append(j)
        self._owner = np.asarray(owner, dtype=np.int64)
        vecs = description_vectors(encoder, descs)
        n = len(taxonomy.labels)
        if scoring.description_pooling == "mean":
            lv = np.zeros((n, encoder.dimension), dtype=np.float32)
            np.add.at(lv, self._owner, vecs)
            lv /= np.maximum(np.linalg.norm(lv, axis=1, keepdims=True), 1e-12)
            self._vectors, self._owner = lv, np.arange(n)
        else:
            self._vectors = vecs
        idx = {name: j for j, name in enumerate(self.label_names)}
        self._parents = [(j, idx[lab.parent]) for j, lab in enumerate(taxonomy.labels)
                         if lab.parent and lab.parent in idx]
        self._depth_order = self._parent_order()

    def _parent_order(self) -> list[tuple[int, int]]:
        """(child, parent) pairs ordered deepest child first, so grandparents see grandchildren."""
        parent_of = dict(self._parents)

        def depth(j):
            d, seen = 0, set()
            while j in parent_of and j not in seen:
                seen.add(j)
                j = parent_of[j]
                d += 1
            return d

        return sorted(self._parents, key=lambda cp: -depth(cp[0]))

    # -- per chunk -> per document -------------------------------------------------------------------
    def chunk_label_sims(self, chunk_vecs: np.ndarray) -> np.ndarray:
        """chunks x labels cosine (best description per label)."""
        raw = chunk_vecs @ self._vectors.T  # chunks x descriptions
        n = len(self.label_names)
        if raw.shape[1] == n and np.array_equal(self._owner, np.arange(n)):
            return raw
        out = np.full((raw.shape[0], n), -1.0, dtype=np.float32)
        for j in range(n):
            out[:, j] = raw[:, self._owner == j].max(axis=1)
        return out

    def doc_similarity(self, chunk_vecs: np.ndarray) -> np.ndarray:
        sims = aggregate(self.chunk_label_sims(chunk_vecs), self.scoring.aggregation, self.scoring.top_k)
        if self.scoring.propagate_to_parent:
            for child, parent in self._depth_order:
                sims[parent] = max(sims[parent], sims[child])
        return sims

    def doc_scores(self, chunk_vecs: np.ndarray) -> np.ndarray:
        """Scores in (0, 1), one per label; zeros for a document without chunks."""
        if chunk_vecs.shape[0] == 0:
            return np.zeros(len(self.label_names))
        return sigmoid_score(self.doc_similarity(chunk_vecs), self.scoring.sigmoid_scale, self.scoring.sigmoid_bias)

    # -- texts ---------------------------------------------------------------------------------------
    def chunk_texts(self, text: str, units=None):
        return chunk_document(text, units, self.encoder.tokenizer, self.chunking)

    def score_texts(self, texts: Sequence[str]) -> np.ndarray:
        """n_docs x n_labels scores for plain texts (chunked like the stage does)."""
        chunks_per_doc = [self.chunk_texts(t) for t in texts]
        flat = [c for cs in chunks_per_doc for c in cs]
        vecs = self.encoder.encode([c.text for c in flat], kind="passage",
                                   token_counts=[c.token_count for c in flat])
        out = np.zeros((len(texts), len(self.label_names)))
        pos = 0
        for i, cs in enumerate(chunks_per_doc):
            out[i] = self.doc_scores(vecs[pos:pos + len(cs)])
            pos += len(cs)
        return out


class ZeroShotMethod:
    """The harness's ``zero_shot`` method: fit embeds the label descriptions; training texts are unused."""

    name = "zero_shot"

    def __init__(self) -> None:
        self.scorer: ZeroShotScorer | None = None
        self.thresholds: Thresholds | None = None  # set by the evaluation harness

    def fit(self, train_texts, train_labels, label_names, cfg) -> None:
        from lakedoc.classify.taxonomy import taxonomy_for
        from lakedoc.encoder import get_encoder

        taxonomy = taxonomy_for(cfg, label_names).restricted(list(label_names))
        encoder = get_encoder(cfg)
        self.scorer = ZeroShotScorer(encoder, taxonomy, ScoringSettings.from_config(cfg),
                                     ChunkSettings.from_config(cfg))
        log.info("zero_shot: %d labels from taxonomy %s, model %s (%s)", len(taxonomy.labels), taxonomy.name,
                 encoder.model_id, encoder.prefix_scheme)

    def predict_scores(self, texts) -> np.ndarray:
        if self.scorer is None:
            raise RuntimeError("ZeroShotMethod.fit must be called first")
        return self.scorer.score_texts(list(texts))
