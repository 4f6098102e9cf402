"""TF-IDF baselines with Spark ML: ``tfidf_lr`` (logistic regression) and ``tfidf_xgb`` (distributed XGBoost).

Features (:func:`tfidf_pipeline`): ``RegexTokenizer`` (split on non-letters/digits, lower-case, tokens of
2+ characters) -> optional ``StopWordsRemover`` (``baselines.stop_words``) -> optional word n-grams up to
``baselines.ngram_max`` -> ``HashingTF`` (``baselines.num_features``, default 2^18) -> ``IDF``
(``baselines.min_doc_freq``) -> L2 ``Normalizer``. The same sparse features feed both classifiers.

The XGBoost methods need a classic Spark session (:func:`check_classic_spark`); see
:mod:`lakedoc.baselines` for what runs where.
"""
from __future__ import annotations

import logging
import time

from lakedoc.baselines.parallel import LinearModels
from lakedoc.baselines.spark_models import SparkMultiLabel
from lakedoc.config_schema import BaselinesSettings
from lakedoc.methods import MethodUnavailable

log = logging.getLogger(__name__)

TOKEN_PATTERN = r"[^\p{L}\p{N}]+"


def tfidf_pipeline(s: BaselinesSettings, input_col: str = "text"):
    from pyspark.ml import Estimator, Pipeline, Transformer
    from pyspark.ml.feature import IDF, HashingTF, NGram, Normalizer, RegexTokenizer, SQLTransformer, StopWordsRemover

    stages: list[Estimator | Transformer] = [
        RegexTokenizer(inputCol=input_col, outputCol="_tokens", pattern=TOKEN_PATTERN, gaps=True,
                       toLowercase=True, minTokenLength=2)]
    col = "_tokens"
    if s.stop_words:
        stages.append(StopWordsRemover(inputCol=col, outputCol="_words"))
        col = "_words"
    n_max = s.ngram_max
    if n_max > 1:
        grams = []
        for n in range(2, n_max + 1):
            stages.append(NGram(n=n, inputCol=col, outputCol=f"_g{n}"))
            grams.append(f"_g{n}")
        stages.append(SQLTransformer(statement=f"SELECT *, concat({col}, {', '.join(grams)}) AS _terms FROM __THIS__"))
        col = "_terms"
    stages += [
        HashingTF(inputCol=col, outputCol="_tf", numFeatures=s.num_features),
        IDF(inputCol="_tf", outputCol="_tfidf", minDocFreq=s.min_doc_freq),
        Normalizer(inputCol="_tfidf", outputCol="features", p=2.0),
    ]
    return Pipeline(stages=stages)


class _LogRegMixin:
    def _estimator(self, s: BaselinesSettings, label_col, weight_col):
        from pyspark.ml.classification import LogisticRegression

        return LogisticRegression(featuresCol="features", labelCol=label_col, weightCol=weight_col,
                                  regParam=s.lr_reg_param, elasticNetParam=s.lr_elastic_net,
                                  maxIter=s.lr_max_iter, standardization=False,
                                  family="binomial")

    def _positive_prob_cols(self, model, j):
        col = f"_p{j}"
        model.setProbabilityCol(col).setRawPredictionCol("").setPredictionCol("")
        return model, col

    def _load_model_class(self):
        from pyspark.ml.classification import LogisticRegressionModel

        return LogisticRegressionModel


def parallel_reason(s: BaselinesSettings) -> str | None:
    """Why ``tfidf_lr`` cannot take the parallel path whatever the data (None: it may, if the matrix fits)."""
    from lakedoc.baselines import parallel

    return parallel.fallback_reason(s, 0, 0, s.num_features)


XGB_METHODS = ("tfidf_xgb", "embedding_xgb")


class NeedsClassicSpark(MethodUnavailable):
    """An XGBoost method configured on a Spark Connect session (serverless, standard access mode)."""


def connect_blockers(methods) -> list[str]:
    """The configured methods that cannot run on Spark Connect (XGBoost's barrier-mode training)."""
    return [m for m in methods if m in XGB_METHODS]


def check_classic_spark(spark, methods) -> None:
    """Raise :class:`NeedsClassicSpark` at once when ``methods`` hold an XGBoost method and ``spark`` is
    a Spark Connect session: ``SparkXGBClassifier`` trains through ``sparkContext`` and barrier RDD tasks.
    """
    from lakedoc import spark as lakedoc_spark

    bad = connect_blockers(methods)
    if not bad or not lakedoc_spark.is_connect(spark):
        return
    names, verb, it = (bad[0], "needs", "it") if len(bad) == 1 else (", ".join(bad), "need", "them")
    raise NeedsClassicSpark(
        f"baselines method{'s' if len(bad) > 1 else ''} {names} {verb} a classic Spark session (a dedicated/"
        f"single-user cluster): XGBoost's distributed training uses barrier RDD tasks, which Spark Connect "
        f"(serverless, standard access mode) does not offer; remove {it} from baselines.methods or run the "
        f"baselines task on a dedicated cluster."
    )


def xgb_task_slots(spark) -> int:
    """Task slots for barrier-mode sizing. XGBoost runs on classic sessions only (see
    :func:`check_classic_spark`), where ``sparkContext.defaultParallelism`` is the executors' real core
    count (``spark.default.parallelism`` is often absent from the conf of a Databricks cluster, and
    :func:`lakedoc.spark.task_slots` would then guess); divided by ``spark.task.cpus``. Anything else:
    :func:`lakedoc.spark.task_slots`.
    """
    from lakedoc import spark as lakedoc_spark

    if not lakedoc_spark.is_connect(spark):
        try:
            sc = spark.sparkContext  # classic only: XGBoost itself needs it
            cores = int(sc.defaultParallelism)
            per_task = int(sc.getConf().get("spark.task.cpus", "1") or 1)
            if cores > 0:
                return max(1, cores // max(1, per_task))
        except Exception:  # noqa: BLE001 - a stand-in session: fall back to the configuration
            pass
    return lakedoc_spark.task_slots(spark)


def check_xgb_workers(spark, num_workers: int) -> None:
    """Barrier mode needs every XGBoost worker running at once: fail early when slots are short."""
    slots = xgb_task_slots(spark)
    if num_workers > slots:
        raise ValueError(
            f"baselines.xgb_num_workers = {num_workers} but the cluster has only {slots} task slot(s): "
            "SparkXGBClassifier runs in barrier mode and needs num_workers <= task slots (all workers at "
            "once). Lower baselines.xgb_num_workers or use a bigger fixed-size cluster (no autoscaling)."
        )


class _XGBMixin:
    name: str  # of the method class it is mixed into
    sparse_features: bool  # TF-IDF (sparse) or embeddings (dense)

    def _check(self, spark, s: BaselinesSettings):
        check_classic_spark(spark, [self.name])
        check_xgb_workers(spark, s.xgb_num_workers)

    def _max_parallel(self, spark, s: BaselinesSettings):
        # concurrent barrier jobs must fit in the slots together
        return max(1, xgb_task_slots(spark) // s.xgb_num_workers)

    def _estimator(self, s: BaselinesSettings, label_col, weight_col):
        from xgboost.spark import SparkXGBClassifier

        return SparkXGBClassifier(
            features_col="features", label_col=label_col, weight_col=weight_col,
            num_workers=s.xgb_num_workers, n_estimators=s.xgb_n_estimators, max_depth=s.xgb_max_depth,
            learning_rate=s.xgb_learning_rate,
            tree_method="hist", eval_metric="logloss", verbose=False, verbosity=0,
            enable_sparse_data_optim=self.sparse_features, missing=0.0 if self.sparse_features else float("nan"),
        )

    def _positive_prob_cols(self, model, j):
        col = f"_p{j}"
        model.set(model.probabilityCol, col)
        model.set(model.rawPredictionCol, "")
        model.set(model.predictionCol, "")
        return model, col

    def _load_model_class(self):
        from xgboost.spark import SparkXGBClassifierModel

        return SparkXGBClassifierModel


class TfidfLogReg(_LogRegMixin, SparkMultiLabel):
    """``tfidf_lr``: TF-IDF + one weighted logistic regression per label.

    When the training matrix fits ``baselines.parallel_fit_max_mb`` the labels are fitted in parallel on
    the workers with scikit-learn (:mod:`lakedoc.baselines.parallel`, same objective as Spark ML's, run to
    convergence) and scored by a ``mapInPandas``; otherwise one Spark ML ``LogisticRegression`` per label.
    ``train_stats["fit_mode"]`` says which (``parallel`` or ``spark_ml``, with ``fallback_reason``).
    """

    name = "tfidf_lr"
    input_col = "text"

    def __init__(self, spark=None) -> None:
        super().__init__(spark)
        self.linear: LinearModels | None = None

    def _feature_pipeline(self, s: BaselinesSettings):
        return tfidf_pipeline(s, self.input_col)

    def _cache_features(self) -> bool:
        # the parallel path reads the features once (to pack them); caching them would cost a pass
        s = self.settings
        return parallel_reason(s) is not None

    def _fit_labels(self, spark, feats, t0: float) -> None:
        from lakedoc.baselines import parallel
        from lakedoc.baselines.spark_models import uncache
        from lakedoc.spark import cached, task_slots

        s = self.settings
        self.linear = None
        reason = parallel_reason(s)
        if reason is None:
            # one pass: features packed per partition with their label counts, then one small collect
            packed = cached(parallel.pack_partitions(feats, self.label_names, s.num_features))
            try:
                n, nnz, positives = parallel.packed_counts(packed, len(self.label_names))
                self.train_stats = {"docs": n, "positives": dict(zip(self.label_names, positives, strict=True)),
                                    "feature_seconds": time.perf_counter() - t0}
                reason = parallel.fallback_reason(s, n, nnz, s.num_features)
                if reason is None:
                    t1 = time.perf_counter()
                    self.linear = parallel.fit_parallel(spark, packed, positives, n, s, task_slots(spark))
                    self.models = []
                    self.train_stats.update(
                        fit_mode="parallel", nnz=nnz, matrix_mb=round(parallel.estimate_mb(n, nnz, s.num_features), 1),
                        fit_seconds=time.perf_counter() - t1, max_iter_used=max(self.linear.n_iter, default=0))
                    log.info("%s: %d labels fitted in parallel on the workers (%d docs, %d non-zeros)",
                             self.name, len(self.label_names), n, nnz)
                    return
            finally:
                uncache(packed)
            feats = cached(feats)  # the per-label Spark ML fits read the features once per label
            try:
                self._fit_spark_ml(spark, feats, t0, reason)
            finally:
                uncache(feats)
            return
        self._fit_spark_ml(spark, feats, t0, reason)

    def _fit_spark_ml(self, spark, feats, t0: float, reason: str) -> None:
        log.info("%s: one Spark ML fit per label: %s", self.name, reason)
        super()._fit_labels(spark, feats, t0)
        self.train_stats.update(fit_mode="spark_ml", fallback_reason=reason)

    def score_df(self, df, id_col: str = "doc_id"):
        from lakedoc.baselines.parallel import score_frame

        if self.linear is None:
            return super().score_df(df, id_col)
        out = self.featurize(df.select(id_col, self.input_col))
        return score_frame(out, self.linear, id_col, self.settings.num_features)

    def _save_extra(self, path: str) -> dict:
        from lakedoc.baselines.spark_models import _local

        if self.linear is None:
            return {"fit_mode": "spark_ml"}
        p = _local(f"{path}/linear.npz")
        if p is None:
            raise ValueError(f"cannot write {path}: use a local, /Volumes/... or /dbfs/... path for "
                             "baselines.model_dir")
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as fh:
            self.linear.save(fh)
        return {"fit_mode": "parallel"}

    def _load_models(self, path: str, meta: dict) -> None:
        from lakedoc.baselines.parallel import LinearModels
        from lakedoc.baselines.spark_models import _local

        if meta.get("fit_mode") != "parallel":
            self.linear = None
            super()._load_models(path, meta)
            return
        p = _local(f"{path}/linear.npz")
        if p is None:
            raise ValueError(f"cannot read {path}/linear.npz")
        with open(p, "rb") as fh:
            self.linear = LinearModels.load(fh)
        self.models = []


class TfidfXGB(_XGBMixin, SparkMultiLabel):
    """``tfidf_xgb``: TF-IDF + one ``SparkXGBClassifier`` per label (sparse input, barrier mode)."""

    name = "tfidf_xgb"
    input_col = "text"
    sparse_features = True

    def _feature_pipeline(self, s: BaselinesSettings):
        return tfidf_pipeline(s, self.input_col)
