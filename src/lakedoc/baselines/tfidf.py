"""TF-IDF baselines with Spark ML: ``tfidf_lr`` (logistic regression) and ``tfidf_xgb`` (distributed XGBoost).

Features (:func:`tfidf_pipeline`): ``RegexTokenizer`` (split on non-letters/digits, lower-case, tokens of
2+ characters) -> optional ``StopWordsRemover`` (``baselines.stop_words``) -> optional word n-grams up to
``baselines.ngram_max`` -> ``HashingTF`` (``baselines.num_features``, default 2^18) -> ``IDF``
(``baselines.min_doc_freq``) -> L2 ``Normalizer``. The same sparse features feed both classifiers.

The XGBoost methods need a classic Spark session (:func:`check_classic_spark`); see
:mod:`lakedoc.baselines` for what runs where.
"""
from __future__ import annotations

from lakedoc.baselines.spark_models import SparkMultiLabel
from lakedoc.evaluation import MethodUnavailable

TOKEN_PATTERN = r"[^\p{L}\p{N}]+"


def tfidf_pipeline(params: dict, input_col: str = "text"):
    from pyspark.ml import Estimator, Pipeline, Transformer
    from pyspark.ml.feature import IDF, HashingTF, NGram, Normalizer, RegexTokenizer, SQLTransformer, StopWordsRemover

    stages: list[Estimator | Transformer] = [
        RegexTokenizer(inputCol=input_col, outputCol="_tokens", pattern=TOKEN_PATTERN, gaps=True,
                       toLowercase=True, minTokenLength=2)]
    col = "_tokens"
    if params.get("stop_words", True):
        stages.append(StopWordsRemover(inputCol=col, outputCol="_words"))
        col = "_words"
    n_max = int(params.get("ngram_max", 1))
    if n_max > 1:
        grams = []
        for n in range(2, n_max + 1):
            stages.append(NGram(n=n, inputCol=col, outputCol=f"_g{n}"))
            grams.append(f"_g{n}")
        stages.append(SQLTransformer(statement=f"SELECT *, concat({col}, {', '.join(grams)}) AS _terms FROM __THIS__"))
        col = "_terms"
    stages += [
        HashingTF(inputCol=col, outputCol="_tf", numFeatures=int(params.get("num_features", 2 ** 18))),
        IDF(inputCol="_tf", outputCol="_tfidf", minDocFreq=int(params.get("min_doc_freq", 1))),
        Normalizer(inputCol="_tfidf", outputCol="features", p=2.0),
    ]
    return Pipeline(stages=stages)


class _LogRegMixin:
    def _estimator(self, params, label_col, weight_col):
        from pyspark.ml.classification import LogisticRegression

        return LogisticRegression(featuresCol="features", labelCol=label_col, weightCol=weight_col,
                                  regParam=float(params.get("lr_reg_param", 1e-4)),
                                  elasticNetParam=float(params.get("lr_elastic_net", 0.0)),
                                  maxIter=int(params.get("lr_max_iter", 100)), standardization=False,
                                  family="binomial")

    def _positive_prob_cols(self, model, j):
        col = f"_p{j}"
        model.setProbabilityCol(col).setRawPredictionCol("").setPredictionCol("")
        return model, col

    def _load_model_class(self):
        from pyspark.ml.classification import LogisticRegressionModel

        return LogisticRegressionModel


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
    def _check(self, spark, params):
        check_classic_spark(spark, [self.name])
        check_xgb_workers(spark, int(params.get("xgb_num_workers", 1)))

    def _max_parallel(self, spark, params):
        # concurrent barrier jobs must fit in the slots together
        return max(1, xgb_task_slots(spark) // int(params.get("xgb_num_workers", 1)))

    def _estimator(self, params, label_col, weight_col):
        from xgboost.spark import SparkXGBClassifier

        return SparkXGBClassifier(
            features_col="features", label_col=label_col, weight_col=weight_col,
            num_workers=int(params.get("xgb_num_workers", 1)),
            n_estimators=int(params.get("xgb_n_estimators", 150)),
            max_depth=int(params.get("xgb_max_depth", 6)),
            learning_rate=float(params.get("xgb_learning_rate", 0.2)),
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
    """``tfidf_lr``: TF-IDF + one weighted logistic regression per label."""

    name = "tfidf_lr"
    input_col = "text"

    def _feature_pipeline(self, params):
        return tfidf_pipeline(params, self.input_col)


class TfidfXGB(_XGBMixin, SparkMultiLabel):
    """``tfidf_xgb``: TF-IDF + one ``SparkXGBClassifier`` per label (sparse input, barrier mode)."""

    name = "tfidf_xgb"
    input_col = "text"
    sparse_features = True

    def _feature_pipeline(self, params):
        return tfidf_pipeline(params, self.input_col)
