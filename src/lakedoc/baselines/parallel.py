"""Per-label logistic regressions trained in parallel across the cluster (``tfidf_lr``'s fast path).

Binary relevance fits one model per label on the *same* training matrix. Spark ML fits them one Spark job
per L-BFGS iteration each; when that matrix fits a worker's memory budget (``baselines.parallel_fit_max_mb``)
it is cheaper to ship the matrix to the workers once and fit the labels there, several at a time:

1. the features (the Spark ``HashingTF`` + ``IDF`` + norm pipeline) are packed per partition into one CSR
   row each, in one pass over the documents (:func:`pack_partitions`: ``indptr``, ``indices``, ``values``,
   the documents' label indices and the partition's positives per label, as bytes); the packed rows are
   cached, and their small columns give the document, non-zero and positive counts (:func:`packed_counts`);
2. ``spark.range(G, numPartitions=G)`` — one task per label group — is cross-joined with the broadcast
   packed rows, and ``mapInPandas`` fits the group's labels with scikit-learn's ``LogisticRegression`` on the
   matrix's used columns only (:func:`used_columns`: the same solution, ~9x less work a label)
   (lbfgs, converged: the same objective as Spark ML's binomial LR with ``standardization=False``, i.e.
   ``C = 1 / (regParam * sum of weights)``, intercept unpenalised, the same class weights), returning the
   non-zero coefficients and the intercept of each label;
3. scoring is a ``mapInPandas`` over the featurised documents: ``sigmoid(X W^T + b)`` per batch, the
   positive-class probability per label in label order, exactly what the Spark ML models give.

Spark Connect safe: no ``sparkContext``, no ``df.rdd``. Elastic-net (L1) settings or a matrix over the
budget fall back to Spark ML per label (:class:`lakedoc.baselines.tfidf.TfidfLogReg`).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from lakedoc.config_schema import BaselinesSettings

log = logging.getLogger(__name__)

PACK_SCHEMA = ("part long, n long, nnz long, indptr binary, indices binary, vals binary, "
               "yptr binary, yidx binary, ycount binary")
FIT_SCHEMA = "j int, n_iter int, intercept double, cidx binary, cval binary"
# bytes of working memory per stored matrix entry: the packed bytes, the assembled CSR (int32 + float64)
# and scikit-learn's copies while fitting
_BYTES_PER_NNZ = 36
_BYTES_PER_FEATURE = 8 * 12  # dense coefficient, gradient and L-BFGS history vectors


def estimate_mb(n_docs: int, nnz: int, num_features: int) -> float:
    """Memory (MiB) one worker needs to hold the training matrix and fit one label on it."""
    return (nnz * _BYTES_PER_NNZ + n_docs * 64 + num_features * _BYTES_PER_FEATURE) / 2**20


def fallback_reason(s: BaselinesSettings, n_docs: int, nnz: int, num_features: int) -> str | None:
    """Why the parallel path is not taken (None: take it)."""
    if s.parallel_fit_max_mb <= 0:
        return "baselines.parallel_fit_max_mb is 0 (parallel fitting off)"
    if s.lr_elastic_net > 0:
        return f"baselines.lr_elastic_net = {s.lr_elastic_net} (L1 needs Spark ML's OWL-QN)"
    need = estimate_mb(n_docs, nnz, num_features)
    if need > s.parallel_fit_max_mb:
        return (f"the training matrix needs ~{need:.0f} MiB per worker, over baselines.parallel_fit_max_mb = "
                f"{s.parallel_fit_max_mb:g}")
    return None


def class_weight(n: int, pos: int, cap: float) -> float:
    """The positive class weight of every ``tfidf_lr`` fit: ``min(negatives / positives, cap)``, >= 1."""
    w = min((n - pos) / pos, cap) if pos else 1.0
    return max(w, 1.0)


def fit_binary(X, y: np.ndarray, pos_weight: float, s: BaselinesSettings):
    """One label: scikit-learn lbfgs on Spark ML's objective. Returns ``(coef (F,), intercept, n_iter)``."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]  # no stubs
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    sw = np.where(y == 1, pos_weight, 1.0)
    reg = s.lr_reg_param
    # Spark: (1/sum w) sum w*loss + reg/2 |b|^2   ==   scikit-learn: C sum w*loss + 1/2 |b|^2, C = 1/(reg sum w)
    C = 1.0 / (reg * float(sw.sum())) if reg > 0 else 1e12
    if y.min() == y.max():  # a label on every (or no) document: a constant model
        p = min(max(float(y.mean()), 1e-12), 1 - 1e-12)
        return np.zeros(X.shape[1]), math.log(p / (1 - p)), 0
    m = LogisticRegression(C=C, solver="lbfgs", max_iter=max(s.lr_max_iter, 1) * 10, tol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m.fit(X, y, sample_weight=sw)
    return m.coef_[0], float(m.intercept_[0]), int(np.max(m.n_iter_))


def used_columns(X):
    """``X`` restricted to its non-empty columns, and those columns' indices (ascending).

    The hashed feature space is wide (2^18 by default) but a training set touches a fraction of it
    (Reuters: ~21,000 columns). An L2-regularised logistic regression puts exactly 0 on a column with no
    data (its gradient is ``reg * w``, 0 from the start), so fitting on the used columns gives the same
    coefficients, iteration for iteration, while every L-BFGS vector operation shrinks to the used width
    (~9x faster a label on Reuters, coefficients equal to 1e-10; ``tests/test_baselines.py``).
    """
    cols = np.unique(X.indices).astype(np.int64)
    return X[:, cols].tocsr(), cols


def _vectors_to_csr(vecs, num_features: int):
    """Spark ML vectors as they reach pandas (dicts: type 0 sparse / 1 dense, size, indices, values) -> CSR."""
    import scipy.sparse as sp  # type: ignore[import-untyped]  # no stubs installed (scipy-stubs)

    indptr = np.zeros(len(vecs) + 1, dtype=np.int64)
    idx_parts, val_parts = [], []
    for i, v in enumerate(vecs):
        vals = np.asarray(v["values"], dtype=np.float64)
        if v["type"] == 0:
            idx = np.asarray(v["indices"], dtype=np.int32)
        else:  # dense
            nz = np.flatnonzero(vals)
            idx, vals = nz.astype(np.int32), vals[nz]
        idx_parts.append(idx)
        val_parts.append(vals)
        indptr[i + 1] = indptr[i] + len(idx)
    indices = np.concatenate(idx_parts) if idx_parts else np.zeros(0, np.int32)
    values = np.concatenate(val_parts) if val_parts else np.zeros(0)
    return sp.csr_matrix((values, indices, indptr), shape=(len(vecs), num_features))


def pack_partitions(feats, label_names: Sequence[str], num_features: int):
    """``(features, labels)`` -> one row per non-empty partition: its CSR matrix, the label indices of its
    documents and its positives per label (``ycount``, int64 in ``label_names`` order), as bytes.
    A label listed twice on a document counts once."""
    index = {lab: j for j, lab in enumerate(label_names)}

    def pack(batches: Iterator) -> Iterator:
        import pandas as pd

        frames = [b for b in batches if len(b)]
        if not frames:
            return
        pdf = pd.concat(frames, ignore_index=True)
        X = _vectors_to_csr(list(pdf["features"]), num_features)
        yptr = np.zeros(len(pdf) + 1, dtype=np.int64)
        yidx: list[int] = []
        for i, labs in enumerate(pdf["labels"]):
            js = sorted({index[x] for x in (labs if labs is not None else []) if x in index})
            yidx.extend(js)
            yptr[i + 1] = len(yidx)
        ycount = np.bincount(np.asarray(yidx, dtype=np.int64), minlength=len(index)).astype(np.int64)
        yield pd.DataFrame({
            "part": [int(pdf["_pid"].iloc[0])], "n": [X.shape[0]], "nnz": [X.nnz],
            "indptr": [X.indptr.astype(np.int64).tobytes()], "indices": [X.indices.astype(np.int32).tobytes()],
            "vals": [X.data.astype(np.float64).tobytes()], "yptr": [yptr.tobytes()],
            "yidx": [np.asarray(yidx, dtype=np.int32).tobytes()], "ycount": [ycount.tobytes()]})

    from pyspark.sql import functions as F

    # partition ids only order the parts (the same documents, the same matrix, on every run)
    return (feats.select("features", "labels", F.spark_partition_id().alias("_pid"))
            .mapInPandas(pack, PACK_SCHEMA))


def packed_counts(packed, n_labels: int) -> tuple[int, int, list[int]]:
    """Documents, stored non-zeros and positives per label of packed rows (one small collect)."""
    n, nnz, pos = 0, 0, np.zeros(n_labels, dtype=np.int64)
    for r in packed.select("n", "nnz", "ycount").collect():
        n, nnz = n + int(r["n"]), nnz + int(r["nnz"])
        pos += np.frombuffer(r["ycount"], dtype=np.int64)
    return n, nnz, [int(x) for x in pos]


def _unpack(rows, num_features: int, n_labels: int):
    """Packed rows (a pandas frame, any order) -> ``(X csr, Y csc bool (n, L))`` in ``part`` order."""
    import scipy.sparse as sp

    rows = rows.sort_values("part")
    xs, ys = [], []
    for r in rows.itertuples(index=False):
        indptr = np.frombuffer(r.indptr, dtype=np.int64)
        xs.append(sp.csr_matrix((np.frombuffer(r.vals, dtype=np.float64), np.frombuffer(r.indices, dtype=np.int32),
                                 indptr), shape=(len(indptr) - 1, num_features)))
        yptr = np.frombuffer(r.yptr, dtype=np.int64)
        yidx = np.frombuffer(r.yidx, dtype=np.int32)
        ys.append(sp.csr_matrix((np.ones(len(yidx), dtype=bool), yidx, yptr), shape=(len(yptr) - 1, n_labels)))
    return sp.vstack(xs, format="csr"), sp.vstack(ys, format="csc")


def assign_groups(positives: Sequence[int], groups: int) -> list[list[int]]:
    """Labels into ``groups`` lists of similar total cost (largest first, to the least loaded group)."""
    order = sorted(range(len(positives)), key=lambda j: -positives[j])
    out: list[list[int]] = [[] for _ in range(groups)]
    load = [0.0] * groups
    for j in order:
        g = load.index(min(load))
        out[g].append(j)
        load[g] += 1.0 + positives[j] / max(1, max(positives))
    return [g for g in out if g]


@dataclass
class LinearModels:
    """The fitted labels: coefficient matrix ``W`` (labels x features, sparse) and intercepts ``b``."""

    W: object  # scipy.sparse.csr_matrix
    b: np.ndarray
    n_iter: list[int]

    def scores(self, X) -> np.ndarray:
        z = np.asarray((X @ self.W.T).todense()) + self.b  # type: ignore[attr-defined]
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, file) -> None:
        W = self.W
        np.savez(file, data=W.data, indices=W.indices, indptr=W.indptr, shape=np.asarray(W.shape),  # type: ignore[attr-defined]
                 b=self.b, n_iter=np.asarray(self.n_iter))

    @classmethod
    def load(cls, file) -> LinearModels:
        import scipy.sparse as sp

        z = np.load(file)
        W = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        return cls(W, z["b"], [int(x) for x in z["n_iter"]])


def fit_parallel(spark, packed, positives: Sequence[int], n_docs: int, s: BaselinesSettings, slots: int
                 ) -> LinearModels:
    """Fit every label on the packed matrix, ``min(labels, 2 * slots)`` tasks of label groups at once."""
    import scipy.sparse as sp
    from pyspark.sql import functions as F

    L, nf = len(positives), s.num_features
    groups = assign_groups(positives, max(1, min(L, 2 * slots)))
    weights = [class_weight(n_docs, int(p), s.max_pos_weight) for p in positives]
    params = s.model_dump()

    def fit_groups(batches: Iterator) -> Iterator:
        import pandas as pd

        frames = [b for b in batches if len(b)]
        if not frames:
            return
        pdf = pd.concat(frames, ignore_index=True)
        st = BaselinesSettings.model_validate(params)
        try:
            from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs
            limit = threadpool_limits(1)  # one core per task: the other slots run other labels
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            limit = None
        try:
            for g, rows in pdf.groupby("g"):
                X, Y = _unpack(rows, nf, L)
                Xc, cols = used_columns(X)
                out = []
                for j in groups[int(g)]:
                    y = Y[:, j].toarray().ravel().astype(np.int64)
                    coef, b, it = fit_binary(Xc, y, weights[j], st)
                    nz = np.flatnonzero(coef)
                    out.append({"j": j, "n_iter": it, "intercept": b, "cidx": cols[nz].astype(np.int32).tobytes(),
                                "cval": coef[nz].astype(np.float64).tobytes()})
                yield pd.DataFrame(out)
        finally:
            if limit is not None:
                limit.unregister()

    tasks = spark.range(0, len(groups), 1, len(groups)).withColumnRenamed("id", "g")
    rows = tasks.crossJoin(F.broadcast(packed)).mapInPandas(fit_groups, FIT_SCHEMA).collect()
    if sorted(r["j"] for r in rows) != list(range(L)):
        raise RuntimeError(f"parallel fit returned labels {sorted(r['j'] for r in rows)}, expected 0..{L - 1}")
    rows = sorted(rows, key=lambda r: r["j"])
    idx = [np.frombuffer(r["cidx"], dtype=np.int32) for r in rows]
    val = [np.frombuffer(r["cval"], dtype=np.float64) for r in rows]
    indptr = np.concatenate([[0], np.cumsum([len(i) for i in idx])]).astype(np.int64)
    W = sp.csr_matrix((np.concatenate(val) if val else np.zeros(0), np.concatenate(idx) if idx else
                       np.zeros(0, np.int32), indptr), shape=(L, nf))
    return LinearModels(W, np.asarray([r["intercept"] for r in rows], dtype=float), [r["n_iter"] for r in rows])


def score_frame(featurized, models: LinearModels, id_col: str, num_features: int):
    """``(id_col, features)`` -> ``(id_col, scores array<double>)`` with the fitted linear models."""
    id_type = featurized.schema[id_col].dataType.simpleString()

    def score(batches: Iterator) -> Iterator:
        import pandas as pd

        for pdf in batches:
            if not len(pdf):
                continue
            X = _vectors_to_csr(list(pdf["features"]), num_features)
            p = models.scores(X)
            yield pd.DataFrame({id_col: pdf[id_col].to_numpy(), "scores": list(p)})

    return featurized.select(id_col, "features").mapInPandas(score, f"`{id_col}` {id_type}, scores array<double>")
