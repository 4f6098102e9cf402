"""Task ``baselines``: classical supervised models on the labelled documents, next to the zero-shot ones.

1. Labelled data: ``baselines.labels_table`` (doc_id -> labels) joined to the ``status = 'ok'`` rows of
   ``documents_redacted`` (the redacted text), else the JSONL ``baselines.train_path``; locally, with
   ``baselines.generate_synthetic``, a seeded synthetic file (:mod:`lakedoc.baselines.synthetic`) is
   written to ``<warehouse>/_labels/synthetic_train.jsonl`` when no path is configured or it is missing.
2. A seeded train/validation/test split grouped by content hash (saved as ``split.json`` beside the
   models), leakage checked by content hash; data preparation and threshold tuning by the harness
   :func:`lakedoc.methods.evaluate_method` (the same code as ``lakedoc evaluate``).
3. Per method of ``baselines.methods`` (``tfidf_lr``, ``tfidf_xgb``, ``embedding_lr``, ``embedding_xgb``):
   fit, tune thresholds on validation, measure on test, save the Spark ML models + thresholds under
   ``baselines.model_dir`` (default ``<warehouse>/_models``) as ``<method>/<model_id>`` (``model_id``: the
   method and a fingerprint of its split and settings), log to MLflow,
   score every ``ok`` document of ``documents_redacted`` and MERGE the scores into ``predictions``
   (scope ``method``), and one row into ``evaluations`` (the method's last write).
4. Re-runs: a method whose ``model_id`` already has an ``evaluations`` row and a saved model is not
   refitted: the saved model scores the documents (unchanged rows are not rewritten) and no
   ``evaluations`` row is added, so unchanged input creates no new table version. A run killed before a
   method's ``evaluations`` row leaves that method to be trained again by the next run. Changed labelled
   data or a model setting gives a new ``model_id``: trained, and a new ``evaluations`` row.

The embedding heads use the ``embeddings`` table of the classification stage (chunk vectors averaged
per document); labelled texts without a stored vector are encoded with :mod:`lakedoc.encoder`. When
neither is possible the method is skipped with a reason in the task details.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lakedoc.config_schema import BASELINE_METHODS, BaselinesSettings
from lakedoc.evaluation import content_hash, load_jsonl, three_way_split
from lakedoc.methods import MethodUnavailable, eval_settings, evaluate_method, load_spark_method, method_class
from lakedoc.schema import DOCUMENTS_REDACTED as REDACTED, EMBEDDINGS, EVALUATIONS, PREDICTIONS
from lakedoc.tasks import TaskContext, TaskResult

EMBEDDING_METHODS = ("embedding_lr", "embedding_xgb")
# BASELINE_METHODS (the choices of baselines.methods): every method whose prediction rows this task writes,
# and so removes when their document leaves the ok set


def model_root(cfg) -> str:
    d = cfg.baselines.model_dir
    if d:
        return cfg.resolve_path(d)
    return str(Path(cfg.resolve_path(cfg.tables.warehouse)) / "_models")


def synthetic_path(cfg) -> str:
    return str(Path(cfg.resolve_path(cfg.tables.warehouse)) / "_labels" / "synthetic_train.jsonl")


def _labels_list(v) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return sorted({x.strip() for x in v.split(",") if x.strip()})
    return sorted({str(x) for x in v})


# settings that do not change what a method learns or predicts
_NOT_MODEL_SETTINGS = ("methods", "model_dir", "mlflow_enabled", "mlflow_tracking_uri", "mlflow_experiment",
                       "predict_all", "labels_table", "train_path", "generate_synthetic", "parallel_labels")


def training_fingerprint(name: str, train, val, test, sec: BaselinesSettings | Mapping[str, Any],
                         embedding_model: Any = None) -> str:
    """16 hex chars identifying what a method is trained on: its name, the split (content hash and
    labels of every document), the model-relevant settings (``baselines`` section) and the embedding
    model (for the embedding heads: the ``embeddings`` model read and the encoder that fills gaps)."""
    import hashlib

    def part(rows):
        return [[content_hash(r["text"]), sorted(r["labels"] or [])] for r in rows]

    values = sec.model_dump(mode="json") if isinstance(sec, BaselinesSettings) else dict(sec)
    settings = {k: v for k, v in sorted(values.items()) if k not in _NOT_MODEL_SETTINGS}
    blob = json.dumps([name, part(train), part(val), part(test), settings, embedding_model],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_labelled(ctx: TaskContext) -> tuple[list[dict], str]:
    """The labelled records (doc_id, text, labels) and a description of where they came from."""
    cfg, store, log = ctx.cfg, ctx.tables, ctx.log
    sec = cfg.baselines
    if sec.labels_table:
        table = sec.labels_table
        if not store.exists(table):
            raise FileNotFoundError(f"baselines.labels_table {table!r} does not exist")
        if not store.exists(REDACTED):
            raise FileNotFoundError(f"{REDACTED} does not exist: run redact_pii first")
        labels = {r["doc_id"]: _labels_list(r["labels"])
                  for r in store.read_arrow(table, ["doc_id", "labels"]).to_pylist()}
        docs = store.read_arrow(REDACTED, ["doc_id", "redacted_text", "status"], where={"status": "ok"})
        recs = [{"doc_id": r["doc_id"], "text": r["redacted_text"], "labels": labels[r["doc_id"]]}
                for r in docs.to_pylist() if r["doc_id"] in labels and (r["redacted_text"] or "").strip()]
        missing = len(labels) - len(recs)
        if missing:
            log.warning("%d labelled doc_id(s) have no ok document in %s", missing, REDACTED)
        return recs, f"table:{table}"
    path = cfg.resolve_path(sec.train_path) if sec.train_path else None
    if sec.generate_synthetic and (path is None or not Path(path).exists()):
        from lakedoc.baselines.synthetic import write_synthetic

        path = path or synthetic_path(cfg)
        write_synthetic(path, seed=sec.seed)
        log.info("wrote a synthetic labelled file: %s", path)
    if path is None:
        return [], "none"
    return load_jsonl(path), f"jsonl:{path}"


def _doc_vectors(spark, store, model: str | None):
    """``(doc_id, vector array<float>)``: chunk vectors averaged per document, L2-normalised."""
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.ml.stat import Summarizer
    from pyspark.sql import functions as F

    emb = store.read(EMBEDDINGS, ["doc_id", "vector", "model"])
    if model:
        emb = emb.filter(F.col("model") == model)
    else:  # the model with the most vectors
        top = emb.groupBy("model").count().orderBy(F.desc("count")).limit(1).collect()
        if not top:
            return None, None
        model = top[0]["model"]
        emb = emb.filter(F.col("model") == model)
    mean = (emb.groupBy("doc_id").agg(Summarizer.mean(array_to_vector(F.col("vector"))).alias("v"))
            .select("doc_id", vector_to_array(F.col("v"), "float32").alias("v")))
    norm = F.sqrt(F.aggregate("v", F.lit(0.0).cast("double"), lambda a, x: a + x * x))
    vec = F.transform("v", lambda x: (x / F.greatest(norm, F.lit(1e-12))).cast("float"))
    return mean.select("doc_id", vec.alias("vector")), model


def prediction_rows(scores_df, method: str, label_names, thresholds, model_id: str, run_id: str):
    """``(doc_id, scores)`` -> one row per document and label with the tuned threshold applied."""
    from pyspark.sql import functions as F

    names = F.array(*[F.lit(n) for n in label_names])
    ths = F.array(*[F.lit(float(t)) for t in thresholds.values])
    df = scores_df.select("doc_id", "scores", names.alias("_n"), ths.alias("_t"))
    df = df.withColumn("_any", F.exists(F.arrays_zip("scores", "_t"), lambda z: z["scores"] >= z["_t"]))
    df = df.withColumn("_max", F.array_max("scores"))
    ex = df.select("doc_id", "_any", "_max", F.posexplode("scores").alias("pos", "score"), "_n", "_t")
    ex = ex.select(
        "doc_id", F.element_at("_n", F.col("pos") + 1).alias("label"), F.col("score").cast("double").alias("score"),
        F.element_at("_t", F.col("pos") + 1).alias("threshold"), "_any", "_max")
    predicted = F.col("score") >= F.col("threshold")
    if thresholds.at_least_one:
        predicted = predicted | (~F.col("_any") & (F.col("score") == F.col("_max")))
    return ex.select("doc_id", "label", "score", predicted.alias("predicted"), "threshold",
                     F.lit(method).alias("method"), F.lit(model_id).alias("model"),
                     F.lit(run_id).alias("run_id"))


def forget_documents(ctx: TaskContext) -> int:
    """Delete the baseline ``predictions`` rows (every baseline method) of documents that are no
    longer an ``ok`` row of ``documents_redacted`` (deleted, or changed to a non-ok status).
    Returns the number of documents forgotten."""
    from pyspark.sql import functions as F

    store = ctx.tables
    if not store.exists(PREDICTIONS) or not store.exists(REDACTED):
        return 0
    ok = store.read(REDACTED, ["doc_id", "status"]).filter(F.col("status") == "ok").select("doc_id")
    mine = (store.read(PREDICTIONS, ["doc_id", "method"]).filter(F.col("method").isin(list(BASELINE_METHODS)))
            .select("doc_id").distinct())
    gone = sorted(mine.join(ok, on="doc_id", how="left_anti").toArrow().column("doc_id").to_pylist())
    if not gone:
        return 0
    for name in BASELINE_METHODS:
        store.delete_where(PREDICTIONS, "doc_id", gone, scope=PREDICTIONS.scope_of(name))
    ctx.log.info("%d document(s) left the ok set of %s: their baseline predictions were removed",
                 len(gone), REDACTED)
    return len(gone)


_METRICS = ("micro_f1", "macro_f1", "weighted_f1", "micro_precision", "micro_recall", "macro_precision",
            "macro_recall", "weighted_precision", "weighted_recall", "subset_accuracy")


def saved_evaluation(store, name: str, model_id: str, path: str) -> tuple[dict | None, bool]:
    """``(row, latest)``: the newest ``evaluations`` row of ``name`` for ``model_id`` whose model is saved
    at ``path`` (None: none, the method must be trained), and whether it is the method's newest row.

    The evaluations row is a method's last write, so it marks a finished method: a run killed before it
    (model saved or not, predictions merged or not) leaves no row, and the next run trains that method
    again; the methods it finished are reused."""
    from lakedoc.baselines.spark_models import _exists

    if not store.exists(EVALUATIONS):
        return None, False
    rows = store.read_arrow(EVALUATIONS, where={"method": name}).to_pylist()
    if not rows:
        return None, False
    epoch = datetime.min.replace(tzinfo=timezone.utc)

    def when(r: dict) -> datetime:
        t = r.get("created_at")
        if t is None:
            return epoch
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)

    rows.sort(key=lambda r: (when(r), r["run_id"] or ""))
    mine = [r for r in rows if r["model_id"] == model_id]
    if not mine or not _exists(f"{path}/meta.json"):  # meta.json: the last file a save writes
        return None, False
    return mine[-1], mine[-1] is rows[-1]


def run(ctx: TaskContext) -> TaskResult:
    from pyspark.sql import functions as F

    from lakedoc.baselines.spark_models import uncache
    from lakedoc.baselines.tfidf import check_classic_spark
    from lakedoc.spark import cached

    cfg, store, spark, log = ctx.cfg, ctx.tables, ctx.spark, ctx.log
    sec = cfg.baselines
    # first of all, before reading or training anything: XGBoost cannot train on Spark Connect
    check_classic_spark(spark, sec.methods)
    records, source = load_labelled(ctx)
    details: dict = {"data_source": source, "labelled_docs": len(records), "methods": {},
                     "documents_removed": forget_documents(ctx)}
    if not records:
        log.warning("no labelled data (set baselines.labels_table or baselines.train_path): nothing to train")
        details["skipped"] = "no labelled data"
        return TaskResult(0, 0, details)
    st = eval_settings(cfg)
    root = model_root(cfg)
    split_file = str(Path(root) / "split.json") if "://" not in root else None
    train, val, test = three_way_split(records, st, None, split_file)
    details["split"] = {"train": len(train), "validation": len(val), "test": len(test), "seed": st["seed"],
                        "file": split_file}

    docs = None
    if store.exists(REDACTED):
        docs = (store.read(REDACTED, ["doc_id", "redacted_text", "status"]).filter(F.col("status") == "ok")
                .select("doc_id", F.col("redacted_text").alias("text")).filter(F.col("text").isNotNull()))
    else:
        log.warning("%s does not exist: models are trained and evaluated, no predictions written", REDACTED)

    doc_vecs, lookup = None, {}
    try:
        if any(m in EMBEDDING_METHODS for m in sec.methods) and store.exists(EMBEDDINGS):
            doc_vecs, emb_model = _doc_vectors(spark, store, sec.embedding_model)
            if doc_vecs is not None:
                doc_vecs = cached(doc_vecs)
                details["embedding_model"] = emb_model
                if source.startswith("table:"):
                    ids = {r["doc_id"]: content_hash(r["text"]) for r in records}
                    for r in doc_vecs.filter(F.col("doc_id").isin(list(ids))).toArrow().to_pylist():
                        lookup[ids[r["doc_id"]]] = np.asarray(r["vector"], dtype=np.float32)
        enc = cfg.encoder
        # what an embedding head's vectors come from: the embeddings table's model, and the encoder that
        # encodes the labelled texts without a stored vector
        vectors_from = {"table": details.get("embedding_model"),
                        "encoder": [enc.model, enc.model_uri, enc.prefix_scheme, enc.passage_prefix,
                                    enc.max_seq_length]}

        written = 0
        done = 0
        for name in sec.methods:
            t0 = time.perf_counter()
            # content-addressed: the same training data and settings give the same model id
            fp = training_fingerprint(name, train, val, test, sec, vectors_from if name in EMBEDDING_METHODS else None)
            model_id = f"{name}-{fp}"
            path = f"{root}/{name}/{model_id}"
            row, latest = saved_evaluation(store, name, model_id, path)
            method: Any = None
            if row is not None:
                # unchanged input and settings: the saved model is this run's model, nothing is refitted
                try:
                    saved: Any = method_class(name)  # a SparkMultiLabel subclass: its load() restores save()
                    method = saved.load(path, cfg, spark=spark)
                except MethodUnavailable as exc:
                    log.warning("skipping %s: %s", name, exc)
                    details["methods"][name] = {"skipped": str(exc)}
                    continue
                except Exception as exc:  # noqa: BLE001 - a damaged saved model is trained again
                    log.warning("%s: the saved model %s cannot be loaded (%s): training it again", name, path,
                                str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
                    row = None
            if row is not None:
                thresholds, mlflow_id = method.thresholds, row["mlflow_run_id"]
                if not latest:  # the method's newest row is of another model: this one is current again
                    again = {**row, "run_id": ctx.run_id, "created_at": datetime.now(timezone.utc)}
                    store.merge(EVALUATIONS, pa.Table.from_pylist([again], schema=EVALUATIONS.schema),
                                scope=EVALUATIONS.scope_of(name))
                log.info("%s: reused model %s (unchanged training data and settings; evaluated by run %s): "
                         "not refitted%s", name, model_id, row["run_id"],
                         "" if latest else f", its evaluation recorded again for run {ctx.run_id}")
                metrics, n_labels, n_test = row, row["n_labels"], row["n_test"]
            else:
                deps: dict = {"spark": spark}
                if name in EMBEDDING_METHODS:
                    deps["vector_lookup"] = lookup
                try:
                    method = load_spark_method(name, **deps)
                    res = evaluate_method(method, train, val, test, cfg, st)
                except MethodUnavailable as exc:
                    log.warning("skipping %s: %s", name, exc)
                    details["methods"][name] = {"skipped": str(exc)}
                    continue
                method.save(path)
                thresholds, mlflow_id = res.thresholds, None
                if sec.mlflow_enabled:
                    try:
                        from lakedoc.baselines.tracking import log_evaluation

                        mlflow_id = log_evaluation(cfg, res, source="task", run_id=ctx.run_id, model_path=path,
                                                   extra_params={"data_source": source})
                    except Exception as exc:  # noqa: BLE001 - tracking must not fail the task
                        log.warning("MLflow logging failed for %s: %s", name, exc)
                metrics, n_labels, n_test = res.metrics, res.sizes["labels"], res.sizes["test"]
            n_pred = 0
            if docs is not None:
                if name in EMBEDDING_METHODS:
                    inp = doc_vecs.join(docs.select("doc_id"), "doc_id") if doc_vecs is not None else None
                else:
                    inp = docs
                if inp is not None and sec.predict_all:
                    # the model column is compared too: an unchanged model rewrites no prediction row
                    rows = prediction_rows(method.score_df(inp), name, method.label_names, thresholds, model_id,
                                           ctx.run_id)
                    r = store.merge(PREDICTIONS, rows, scope=PREDICTIONS.scope_of(name),
                                    replace_within=PREDICTIONS.replace_within)
                    n_pred = r.written
                    written += r.written
            if row is None:
                m = res.metrics
                # the method's last write: its evaluations row marks it finished (see saved_evaluation)
                store.merge(EVALUATIONS, pa.Table.from_pylist([{
                    "run_id": ctx.run_id, "method": name, "model_id": model_id, "data_source": source,
                    "n_train": res.sizes["train"], "n_validation": res.sizes["validation"],
                    "n_test": res.sizes["test"], "n_labels": res.sizes["labels"],
                    **{k: float(m[k]) for k in _METRICS},
                    "per_label": json.dumps(m["per_label"], sort_keys=True),
                    "threshold_sweep": json.dumps(res.sweep), "thresholds": json.dumps(res.thresholds.to_dict()),
                    "preparation": json.dumps(res.preparation, default=str), "train_seconds": res.train_seconds,
                    "predict_seconds": res.predict_seconds, "model_path": path, "mlflow_run_id": mlflow_id,
                    "created_at": datetime.now(timezone.utc),
                }], schema=EVALUATIONS.schema), scope=EVALUATIONS.scope_of(name))
            done += 1
            details["methods"][name] = {"micro_f1": round(metrics["micro_f1"], 4),
                                        "macro_f1": round(metrics["macro_f1"], 4), "labels": n_labels,
                                        "predictions_written": n_pred, "model_id": model_id, "model_path": path,
                                        "reused": row is not None, "mlflow_run_id": mlflow_id,
                                        "seconds": round(time.perf_counter() - t0, 1)}
            if name in EMBEDDING_METHODS:
                details["methods"][name]["encoded_texts"] = method.encoded
            log.info("%s: micro-F1 %.3f macro-F1 %.3f on %d test docs; %d prediction rows written", name,
                     metrics["micro_f1"], metrics["macro_f1"], n_test, n_pred)
    finally:
        if doc_vecs is not None:
            uncache(doc_vecs)
    if not done:
        raise RuntimeError(f"no baseline method could run: {details['methods']}")
    return TaskResult(len(records), written, details)
