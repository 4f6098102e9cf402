"""Classical supervised baselines (task ``baselines``): TF-IDF and embedding heads, LR and XGBoost.

Methods (see :data:`lakedoc.methods.METHODS`): ``tfidf_lr``, ``tfidf_xgb`` (:mod:`.tfidf`),
``embedding_lr``, ``embedding_xgb`` (:mod:`.embedding`); the DAG task is :func:`.stage.run`.

What runs where
---------------
The logistic-regression methods (``tfidf_lr``, ``embedding_lr``) use Spark ML only (RegexTokenizer,
StopWordsRemover, NGram, SQLTransformer, HashingTF, IDF, Normalizer, LogisticRegression, Summarizer),
which runs on classic sessions and — from Spark 4.0, Databricks Runtime 17+ — on Spark Connect. The
XGBoost methods (``tfidf_xgb``, ``embedding_xgb``) use ``xgboost.spark.SparkXGBClassifier``, which trains
through ``sparkContext`` and barrier RDD tasks (``df.rdd.barrier()``): classic sessions only.

=====================================================  ==========  ================================
Compute                                                LR methods  XGBoost methods
=====================================================  ==========  ================================
classic local session (``local[N]``, tests, laptop)    yes         yes
local Spark Connect session                            yes         no: fails at once
Databricks dedicated (single-user) access mode         yes         yes (fixed-size cluster, no
                                                                   autoscaling; ``xgb_num_workers``
                                                                   <= task slots)
Databricks standard access mode (Spark Connect)        yes         no: fails at once
Databricks serverless (Spark Connect)                  yes (no     no: fails at once
                                                       caching:
                                                       recomputed)
=====================================================  ==========  ================================

"Fails at once": when the session is Spark Connect (:func:`lakedoc.spark.is_connect`) and
``baselines.methods`` names an XGBoost method, the task raises
:class:`~lakedoc.baselines.tfidf.NeedsClassicSpark` before it reads or trains anything, with one
sentence naming the access mode it needs (:func:`~lakedoc.baselines.tfidf.check_classic_spark`);
``lakedoc evaluate`` reports the same sentence and skips the method. Caching goes through
:func:`lakedoc.spark.cached` (serverless refuses ``PERSIST``; the plan is recomputed instead).
"""
