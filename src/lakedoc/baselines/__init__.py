"""Classical supervised baselines (task ``baselines``): TF-IDF and embedding heads, LR and XGBoost.

Methods (see :data:`lakedoc.evaluation.METHODS`): ``tfidf_lr``, ``tfidf_xgb`` (:mod:`.tfidf`),
``embedding_lr``, ``embedding_xgb`` (:mod:`.embedding`); the DAG task is :func:`.stage.run`.
"""
