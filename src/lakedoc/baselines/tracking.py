"""MLflow tracking of evaluation runs (``baselines.mlflow_enabled``).

Tracking URI: ``baselines.mlflow_tracking_uri`` when set; on Databricks ``databricks`` (the workspace
tracking server); locally an embedded SQLite store ``<warehouse>/_mlflow/mlflow.db`` with artifacts in
``<warehouse>/_mlflow/artifacts`` (mlflow-skinny needs SQLAlchemy + alembic for it, pinned in
requirements.txt; no server, works offline). Each evaluation is one MLflow run: parameters (method,
configuration of the ``baselines`` section, data sizes), metrics (micro/macro/weighted F1, precision,
recall, subset accuracy, training time), and artifacts ``per_label.json``, ``threshold_sweep.json``,
``thresholds.json``, ``preparation.json``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def tracking_uri(cfg) -> tuple[str, str | None]:
    """(tracking URI, artifact location for a new experiment or None)."""
    from lakedoc.spark import on_databricks

    sec = cfg.baselines
    if sec.mlflow_tracking_uri:
        return sec.mlflow_tracking_uri, None
    if on_databricks():
        return "databricks", None
    root = Path(cfg.resolve_path(cfg.tables.warehouse)) / "_mlflow"
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()


def log_evaluation(cfg, result, source: str = "task", run_id: str | None = None, model_path: str | None = None,
                   extra_params: dict | None = None) -> str | None:
    """Log one :class:`lakedoc.methods.EvalResult`; returns the MLflow run id."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.tracking import MlflowClient

    uri, artifacts = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    name = cfg.baselines.mlflow_experiment
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp else client.create_experiment(name, artifact_location=artifacts)
    m = result.metrics
    params = {"method": result.method, "source": source, "lakedoc_run_id": run_id or "",
              **{f"n_{k}": v for k, v in result.sizes.items()},
              "at_least_one": result.thresholds.at_least_one,
              "global_threshold": round(result.thresholds.global_threshold, 4)}
    for k, v in cfg.baselines.model_dump(mode="json").items():
        if k.startswith(("num_", "ngram", "stop_", "min_", "lr_", "xgb_", "max_pos", "seed", "validation_",
                         "test_")):
            params[f"cfg.{k}"] = v
    params.update(extra_params or {})
    metrics = {k: float(m[k]) for k in ("micro_f1", "macro_f1", "weighted_f1", "micro_precision",
                                        "micro_recall", "macro_precision", "macro_recall", "weighted_precision",
                                        "weighted_recall", "subset_accuracy")}
    metrics.update(train_seconds=float(result.train_seconds), predict_seconds=float(result.predict_seconds),
                   validation_micro_f1=float(result.thresholds.validation_micro_f1))
    with mlflow.start_run(experiment_id=exp_id, run_name=f"{result.method}-{run_id or source}") as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics(metrics)
        mlflow.log_dict(m["per_label"], "per_label.json")
        mlflow.log_dict({"sweep": result.sweep}, "threshold_sweep.json")
        mlflow.log_dict(result.thresholds.to_dict(), "thresholds.json")
        mlflow.log_dict(result.preparation, "preparation.json")
        if model_path:
            mlflow.set_tag("model_path", model_path)
        return run.info.run_id
