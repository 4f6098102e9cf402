"""The baselines: synthetic data, the Spark methods on real text, and the task end to end on a tmp warehouse."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from conftest import shared_path

from lakedoc import evaluation as ev, methods as hm
from lakedoc.baselines.synthetic import TOPICS, generate, write_synthetic
from lakedoc.schema import DOCUMENTS_REDACTED, EMBEDDINGS, EVALUATIONS, PREDICTIONS

FAST = ["baselines.num_features=4096", "baselines.lr_max_iter=20", "baselines.xgb_n_estimators=10",
        "baselines.xgb_max_depth=4", "baselines.parallel_labels=2"]


def test_synthetic_is_seeded_multilabel_and_covers_topics(tmp_path):
    a, b, c = generate(200, seed=3), generate(200, seed=3), generate(200, seed=4)
    assert a == b and a != c
    labels = {lab for r in a for lab in r["labels"]}
    assert labels == set(TOPICS)
    assert 0.1 < sum(len(r["labels"]) > 1 for r in a) / len(a) < 0.35
    assert all(len(r["text"].split()) >= 10 for r in a)
    p = write_synthetic(tmp_path / "x" / "s.jsonl", n_docs=50, seed=3)
    assert [r["doc_id"] for r in ev.load_jsonl(p)] == [r["doc_id"] for r in generate(50, seed=3)]


def test_xgb_fails_early_when_workers_exceed_slots(spark):
    from lakedoc.baselines.tfidf import check_xgb_workers, xgb_task_slots
    from lakedoc.spark import is_connect

    if is_connect(spark):
        pytest.skip("XGBoost's barrier mode needs a classic session (see the Connect fail-fast tests)")
    # a classic session: the scheduler's own count of task slots, not a guess from the configuration
    slots = xgb_task_slots(spark)
    assert slots == spark.sparkContext.defaultParallelism >= 1
    check_xgb_workers(spark, slots)
    with pytest.raises(ValueError, match="barrier mode"):
        check_xgb_workers(spark, slots + 1)


class _ConnectStandIn:
    """Stands in for a Spark Connect session (serverless, standard access mode): no server needed."""


@pytest.fixture()
def connect(monkeypatch):
    import lakedoc.spark

    real = lakedoc.spark.is_connect
    monkeypatch.setattr(lakedoc.spark, "is_connect", lambda s: isinstance(s, _ConnectStandIn) or real(s))
    return _ConnectStandIn()


class _RunsOnlyStore:
    """A table store that only takes the pipeline_runs record: any read or write of data fails the test."""

    def __init__(self):
        self.runs = []

    def merge(self, table, data, **kw):
        assert table.name == "pipeline_runs", f"the task touched {table.name} before failing"
        self.runs.extend(data.to_pylist())

    def exists(self, table):
        assert table.name == "pipeline_runs", f"the task touched {table.name} before failing"
        return False  # no earlier run to mark abandoned

    def __getattr__(self, name):
        pytest.fail(f"the task used the table store ({name}) before failing")


def test_xgb_methods_fail_at_once_on_spark_connect(connect, monkeypatch):
    from lakedoc.baselines import stage
    from lakedoc.baselines.tfidf import NeedsClassicSpark
    from lakedoc.config import load_config
    from lakedoc.tasks import TaskContext, run_task

    for name in ("load_labelled", "evaluate_method", "load_spark_method"):
        monkeypatch.setattr(stage, name, lambda *a, _n=name, **k: pytest.fail(f"{_n} ran before the check"))
    store = _RunsOnlyStore()
    cfg = load_config("local", sets=["baselines.methods=[tfidf_lr, tfidf_xgb]"], environ={})
    run = run_task("baselines", cfg, run_id="c1", spark=connect, tables=store)
    assert run.status == "failed"
    msg = run.error.split(": ", 1)[1]
    assert run.error.startswith("NeedsClassicSpark: ")
    assert msg == ("baselines method tfidf_xgb needs a classic Spark session (a dedicated/single-user cluster): "
                   "XGBoost's distributed training uses barrier RDD tasks, which Spark Connect (serverless, "
                   "standard access mode) does not offer; remove it from baselines.methods or run the baselines "
                   "task on a dedicated cluster.")
    assert [r["status"] for r in store.runs] == ["running", "failed"] and store.runs[-1]["error"] == run.error

    both = cfg.with_overrides({"baselines": {"methods": ["embedding_xgb", "tfidf_lr", "tfidf_xgb"]}})
    with pytest.raises(NeedsClassicSpark) as info:
        stage.run(TaskContext(task="baselines", run_id="c2", cfg=both, spark=connect, tables=store))
    assert str(info.value).startswith("baselines methods embedding_xgb, tfidf_xgb need a classic Spark session")
    assert "remove them from baselines.methods" in str(info.value)


def test_lr_methods_are_allowed_on_spark_connect_and_xgb_on_classic(connect, spark):
    from lakedoc.baselines.embedding import EmbeddingXGB
    from lakedoc.baselines.tfidf import NeedsClassicSpark, TfidfXGB, check_classic_spark
    from lakedoc.config_schema import BaselinesSettings
    from lakedoc.methods import MethodUnavailable
    from lakedoc.spark import is_connect

    check_classic_spark(connect, ["tfidf_lr", "embedding_lr", "zero_shot"])  # Spark ML works on Connect
    if is_connect(spark):  # the test session itself is Spark Connect (LAKEDOC_TEST_SPARK_MODE=connect)
        with pytest.raises(NeedsClassicSpark):
            check_classic_spark(spark, ["tfidf_xgb"])
    else:
        check_classic_spark(spark, ["tfidf_xgb", "embedding_xgb"])  # a classic session: fine
    # the method itself refuses too (``lakedoc evaluate`` reports it as unavailable and goes on)
    for cls in (TfidfXGB, EmbeddingXGB):
        with pytest.raises(NeedsClassicSpark, match=f"method {cls.name} needs a classic Spark session") as info:
            cls()._check(connect, BaselinesSettings(xgb_num_workers=1))
        assert isinstance(info.value, MethodUnavailable)


def test_cached_features_are_unpersisted_when_a_fit_fails(spark, monkeypatch):
    from lakedoc.baselines.tfidf import TfidfLogReg
    from lakedoc.config import load_config

    frames = _spy_cached(monkeypatch)

    class Broken(TfidfLogReg):
        def _estimator(self, params, label_col, weight_col):
            raise RuntimeError("estimator exploded")

    df = spark.createDataFrame([("a", "wheat prices rise", ["grain"]), ("b", "oil prices fall", ["crude"])],
                               "doc_id string, text string, labels array<string>")
    with pytest.raises(RuntimeError, match="exploded"):  # the Spark ML path (parallel fitting off)
        Broken().fit_df(df, ["crude", "grain"],
                        load_config("local", sets=[*FAST, "baselines.parallel_fit_max_mb=0"], environ={}))
    assert len(frames) == 1 and frames[0].is_cached is False

    import lakedoc.baselines.parallel as par

    def explode(*a, **k):
        raise RuntimeError("parallel fit exploded")

    monkeypatch.setattr(par, "fit_parallel", explode)
    with pytest.raises(RuntimeError, match="parallel fit exploded"):  # the parallel path caches its packed rows
        TfidfLogReg().fit_df(df, ["crude", "grain"], load_config("local", sets=FAST, environ={}))
    # only the packed training matrix is cached there (the features are read once, by the packing job)
    assert len(frames) == 2 and "ycount" in frames[1].columns and not any(f.is_cached for f in frames)


def _reuters_slice(n: int, labels: set[str]) -> list[dict]:
    path = shared_path("datasets", "reuters21578", "train.jsonl")
    out = []
    with open(path) as fh:
        for line in fh:
            r = json.loads(line)
            labs = [x for x in r["labels"] if x in labels]
            if labs:
                out.append({"doc_id": r["doc_id"], "text": r["text"], "labels": labs})
            if len(out) >= n:
                break
    return out


def test_tfidf_lr_on_a_reuters_slice_beats_a_floor(spark):
    from lakedoc.baselines.tfidf import TfidfLogReg
    from lakedoc.config import load_config

    recs = _reuters_slice(700, {"earn", "acq", "crude", "money-fx", "grain", "trade"})
    cfg = load_config("local", sets=FAST)
    st = {**hm.eval_settings(cfg), "seed": 3}
    tr, va, te = ev.three_way_split(recs, st)
    res = hm.evaluate_method(TfidfLogReg(), tr, va, te, cfg, st)
    # a majority-class guess ("earn" for all) scores about 0.45 micro-F1 here
    assert res.metrics["micro_f1"] >= 0.85, res.summary()
    assert res.metrics["macro_f1"] >= 0.6, res.summary()
    assert res.sizes["labels"] == 6


def _write_redacted(store, recs):
    rows = [{"doc_id": r["doc_id"], "redacted_text": r["text"], "status": "ok", "error": None} for r in recs]
    rows.append({"doc_id": "broken", "redacted_text": None, "status": "error", "error": "CorruptError: x"})
    store.merge(DOCUMENTS_REDACTED, pa.Table.from_pylist(rows, schema=DOCUMENTS_REDACTED.schema))


def _spy_cached(monkeypatch) -> list:
    import lakedoc.spark

    frames = []
    real = lakedoc.spark.cached
    monkeypatch.setattr(lakedoc.spark, "cached", lambda df: frames.append(real(df)) or frames[-1])
    return frames


def test_stage_end_to_end_on_a_tmp_warehouse(spark, tmp_path, monkeypatch):
    from deltalake import DeltaTable

    from lakedoc.baselines.tfidf import TfidfLogReg
    from lakedoc.config import load_config
    from lakedoc.tables import LocalDeltaStore
    from lakedoc.tasks import run_task

    wh = tmp_path / "wh"
    store = LocalDeltaStore(wh, spark)
    docs = generate(120, seed=11)
    _write_redacted(store, docs)
    labelled = docs[:100]
    store.merge("doc_labels", pa.Table.from_pylist([{"doc_id": r["doc_id"], "labels": r["labels"]} for r in labelled]),
                keys=["doc_id"])
    # chunk vectors as the classification stage writes them: 2 chunks per document, topic directions + noise
    rng = np.random.default_rng(0)
    topics = sorted(TOPICS)
    emb = []
    for r in docs:
        for c in range(2):
            v = rng.normal(0, 0.3, 16)
            for lab in r["labels"]:
                v[topics.index(lab)] += 1.0
            emb.append({"chunk_id": f"{r['doc_id']}-{c}", "doc_id": r["doc_id"], "model": "toy",
                        "dimension": 16, "vector": [float(x) for x in v / np.linalg.norm(v)]})
    store.merge(EMBEDDINGS, pa.Table.from_pylist(emb, schema=EMBEDDINGS.schema), scope=EMBEDDINGS.scope_of("toy"))
    from lakedoc.spark import is_connect

    # XGBoost needs a classic session; on a Spark Connect test session the LR methods run alone
    methods = ["tfidf_lr", "embedding_lr"] + ([] if is_connect(spark) else ["tfidf_xgb"])
    cfg = load_config("local", sets=FAST + [f"tables.warehouse={wh}", "baselines.labels_table=doc_labels",
                                            f"baselines.methods=[{', '.join(methods)}]",
                                            "baselines.generate_synthetic=false"])
    frames = _spy_cached(monkeypatch)
    run = run_task("baselines", cfg, run_id="r1", spark=spark, tables=store)
    assert run.status == "succeeded", run.error
    # document vectors (stage) + the features of each Spark ML method (fit) + tfidf_lr's packed training
    # matrix (its parallel fit caches that instead of its features) went through lakedoc.spark.cached, and
    # every one of them is unpersisted by the end
    packed = [f for f in frames if "ycount" in f.columns]
    assert len(packed) == 1 and len(frames) == len(methods) + 1 and not [f for f in frames if f.is_cached]
    det = run.result.details
    assert det["data_source"] == "table:doc_labels" and det["labelled_docs"] == 100
    assert set(det["methods"]) == set(methods)
    assert det["embedding_model"] == "toy"
    # the embedding head learnt from the stored vectors (no encoder involved: every text had a vector)
    assert det["methods"]["embedding_lr"]["micro_f1"] > 0.8
    assert det["methods"]["embedding_lr"]["encoded_texts"] == 0

    preds = store.read_arrow(PREDICTIONS).to_pandas()
    n_labels = len(TOPICS)
    for m in methods:
        p = preds[preds["method"] == m]
        assert len(p) == 120 * n_labels  # every ok document x every label; not the broken one
        assert set(p["doc_id"]) == {r["doc_id"] for r in docs}
        assert p["score"].between(0, 1).all()
        # content-addressed model id: the method and a fingerprint of its split and settings
        model_ids = set(p["model"])
        assert len(model_ids) == 1 and re.fullmatch(rf"{m}-[0-9a-f]{{16}}", model_ids.pop())
        # predicted = score >= threshold, except the top label of a document where none passes
        assert (p["predicted"] | (p["score"] < p["threshold"])).all()
    # predicted labels agree with the truth on most documents (synthetic topics are learnable)
    lr = preds[(preds["method"] == "tfidf_lr") & preds["predicted"]].groupby("doc_id")["label"].apply(set)
    truth = {r["doc_id"]: set(r["labels"]) for r in docs}
    assert np.mean([lr.get(d, set()) == truth[d] for d in truth]) > 0.7

    ev_rows = store.read_arrow(EVALUATIONS).to_pylist()
    assert {r["method"] for r in ev_rows} == set(methods)
    row = next(r for r in ev_rows if r["method"] == "tfidf_lr")
    assert row["micro_f1"] > 0.8 and row["n_labels"] == n_labels
    assert row["n_train"] + row["n_validation"] + row["n_test"] <= 100
    assert set(json.loads(row["per_label"])) == set(TOPICS)
    assert json.loads(row["threshold_sweep"]) and row["mlflow_run_id"]
    assert DeltaTable(str(wh / PREDICTIONS.name)).metadata().partition_columns == ["method"]

    # the saved model reloads and scores like the trained one; thresholds are stored with it
    model = TfidfLogReg.load(row["model_path"], cfg)
    assert model.thresholds is not None and model.label_names == sorted(TOPICS)
    s = model.predict_scores([docs[0]["text"]])
    p0 = preds[(preds["method"] == "tfidf_lr") & (preds["doc_id"] == docs[0]["doc_id"])].set_index("label")
    assert np.allclose(s[0], p0.loc[model.label_names, "score"].to_numpy(), atol=1e-6)

    # MLflow: one run per method in the embedded sqlite store under the warehouse
    import mlflow

    client = mlflow.tracking.MlflowClient(f"sqlite:///{wh / '_mlflow' / 'mlflow.db'}")
    r = client.get_run(row["mlflow_run_id"])
    assert r.data.metrics["micro_f1"] == pytest.approx(row["micro_f1"])
    assert r.data.params["method"] == "tfidf_lr"

    # the split is saved beside the models
    assert Path(wh / "_models" / "split.json").is_file()


def test_stage_generates_synthetic_labels_locally(spark, tmp_path):
    from lakedoc.config import load_config
    from lakedoc.tables import LocalDeltaStore
    from lakedoc.tasks import run_task

    wh = tmp_path / "wh"
    store = LocalDeltaStore(wh, spark)
    cfg = load_config("local", sets=FAST + [f"tables.warehouse={wh}", "baselines.methods=[tfidf_lr]",
                                            "baselines.mlflow_enabled=false"])
    assert cfg.baselines.generate_synthetic is True  # conf/local.yml
    run = run_task("baselines", cfg, run_id="r2", spark=spark, tables=store)
    assert run.status == "succeeded", run.error
    assert (wh / "_labels" / "synthetic_train.jsonl").is_file()
    assert run.result.details["methods"]["tfidf_lr"]["micro_f1"] > 0.8
    assert not store.exists("predictions")  # no documents_redacted here: evaluated, nothing to score


class _Killed(BaseException):
    """Stands in for kill -9 in the middle of the task (no Exception: nothing records or handles it)."""


def test_a_rerun_reuses_unchanged_models_and_retrains_changed_ones(spark, tmp_path, monkeypatch, caplog):
    """Re-runs (issue #11, 12): a method whose content-addressed model is saved and evaluated is not
    refitted and adds no ``evaluations`` row (no new version of it or of ``predictions``); a run killed
    before a method's ``evaluations`` row has it trained again; changed labels train a new model."""
    import logging

    from deltalake import DeltaTable

    from lakedoc.baselines import stage
    from lakedoc.config import load_config
    from lakedoc.tables import LocalDeltaStore
    from lakedoc.tasks import run_task

    wh = tmp_path / "wh"
    store = LocalDeltaStore(wh, spark)
    docs = generate(80, seed=5)
    _write_redacted(store, docs)

    def write_labels(recs):
        store.merge("doc_labels", pa.Table.from_pylist([{"doc_id": r["doc_id"], "labels": r["labels"]}
                                                         for r in recs]), keys=["doc_id"])

    labelled = docs[:60]
    write_labels(labelled)
    cfg = load_config("local", sets=FAST + [f"tables.warehouse={wh}", "baselines.labels_table=doc_labels",
                                            "baselines.methods=[tfidf_lr]", "baselines.generate_synthetic=false",
                                            "baselines.mlflow_enabled=false"])
    fits: list[str] = []
    real_evaluate = stage.evaluate_method
    monkeypatch.setattr(stage, "evaluate_method", lambda m, *a, **k: fits.append(m.name) or real_evaluate(m, *a, **k))

    def version(table) -> int:
        return DeltaTable(str(wh / table.name)).version()

    def models() -> list[str]:
        return sorted(p.name for p in (wh / "_models" / "tfidf_lr").iterdir())

    def evaluations() -> list[dict]:
        return sorted(store.read_arrow(EVALUATIONS, ["run_id", "model_id"]).to_pylist(), key=lambda r: r["run_id"])

    # 1. killed after the model was saved and the predictions merged, before its evaluations row
    real_merge = store.merge

    def dying_merge(table, *a, **k):
        if str(table) == EVALUATIONS.name:
            raise _Killed()
        return real_merge(table, *a, **k)

    monkeypatch.setattr(store, "merge", dying_merge)
    with pytest.raises(_Killed):
        run_task("baselines", cfg, run_id="r1", spark=spark, tables=store)
    monkeypatch.setattr(store, "merge", real_merge)
    assert fits == ["tfidf_lr"] and not store.exists(EVALUATIONS)
    (first_model,) = models()
    assert (wh / "_models" / "tfidf_lr" / first_model / "meta.json").is_file()
    predictions_v = version(PREDICTIONS)

    # 2. the method has no evaluations row: trained again, to the same model and the same predictions
    run2 = run_task("baselines", cfg, run_id="r2", spark=spark, tables=store)
    assert run2.status == "succeeded", run2.error
    assert fits == ["tfidf_lr"] * 2 and run2.result.details["methods"]["tfidf_lr"]["reused"] is False
    assert models() == [first_model] and evaluations() == [{"run_id": "r2", "model_id": first_model}]
    assert version(PREDICTIONS) == predictions_v and run2.result.rows_out == 0
    evaluations_v = version(EVALUATIONS)

    # 3. unchanged input: nothing refitted, no evaluations row, no new version of either table
    caplog.clear()
    with caplog.at_level(logging.INFO):
        run3 = run_task("baselines", cfg, run_id="r3", spark=spark, tables=store)
    assert run3.status == "succeeded", run3.error
    det = run3.result.details["methods"]["tfidf_lr"]
    assert fits == ["tfidf_lr"] * 2 and det["reused"] is True and det["model_id"] == first_model
    assert det["micro_f1"] == run2.result.details["methods"]["tfidf_lr"]["micro_f1"]
    assert det["predictions_written"] == 0 and run3.result.rows_out == 0
    reused = [r.getMessage() for r in caplog.records if "reused model" in r.getMessage()]
    assert len(reused) == 1 and first_model in reused[0] and "run r2" in reused[0], reused
    assert models() == [first_model] and evaluations() == [{"run_id": "r2", "model_id": first_model}]
    assert (version(PREDICTIONS), version(EVALUATIONS)) == (predictions_v, evaluations_v)

    # 4. changed labels: a new model, trained and evaluated, its predictions written
    changed = [{**r, "labels": ["ship"] if r["labels"] != ["ship"] else ["trade"]} if i == 0 else r
               for i, r in enumerate(labelled)]
    write_labels(changed)
    run4 = run_task("baselines", cfg, run_id="r4", spark=spark, tables=store)
    assert run4.status == "succeeded", run4.error
    assert fits == ["tfidf_lr"] * 3 and run4.result.details["methods"]["tfidf_lr"]["reused"] is False
    second_model = run4.result.details["methods"]["tfidf_lr"]["model_id"]
    assert second_model != first_model and models() == sorted([first_model, second_model])
    assert evaluations() == [{"run_id": "r2", "model_id": first_model}, {"run_id": "r4", "model_id": second_model}]
    assert set(store.read_arrow(PREDICTIONS, ["model"]).column("model").to_pylist()) == {second_model}

    # 5. the labels back as they were: the first model is reused (not refitted) and, being current again,
    #    its evaluation is recorded for this run
    write_labels(labelled)
    run5 = run_task("baselines", cfg, run_id="r5", spark=spark, tables=store)
    assert run5.status == "succeeded", run5.error
    assert fits == ["tfidf_lr"] * 3 and run5.result.details["methods"]["tfidf_lr"]["reused"] is True
    assert evaluations()[-1] == {"run_id": "r5", "model_id": first_model} and len(evaluations()) == 3
    assert set(store.read_arrow(PREDICTIONS, ["model"]).column("model").to_pylist()) == {first_model}


def test_training_fingerprint_follows_data_and_model_settings_only():
    """The model id is content-addressed: unchanged input -> same id -> no prediction row rewritten."""
    from lakedoc.baselines.stage import training_fingerprint
    from lakedoc.config_schema import BaselinesSettings

    train = [{"text": "crude oil prices rose", "labels": ["crude"]}, {"text": "wheat harvest", "labels": ["grain"]}]
    val = [{"text": "tanker rates", "labels": ["ship", "crude"]}]
    sec = BaselinesSettings(methods=["tfidf_lr"], lr_max_iter=100, mlflow_enabled=True, seed=13)
    fp = training_fingerprint("tfidf_lr", train, val, [], sec)
    assert len(fp) == 16 and fp == training_fingerprint("tfidf_lr", list(train), val, [], sec.model_copy())
    # the section as a mapping (cfg["baselines"]) gives the same id as the typed section
    assert fp == training_fingerprint("tfidf_lr", train, val, [], sec.model_dump(mode="json"))
    # label order and settings that do not change the model leave it alone
    val_reordered = [{"text": "tanker rates", "labels": ["crude", "ship"]}]
    assert fp == training_fingerprint("tfidf_lr", train, val_reordered, [], sec.model_copy(update={
        "methods": ["tfidf_lr", "embedding_lr"], "mlflow_enabled": False, "model_dir": "/elsewhere"}))
    # data, labels, model settings, method and embedding model change it
    assert fp != training_fingerprint("tfidf_lr", train[:1], val, [], sec)
    assert fp != training_fingerprint("tfidf_lr", train, [{"text": "tanker rates", "labels": ["ship"]}], [], sec)
    assert fp != training_fingerprint("tfidf_lr", train, val, [], sec.model_copy(update={"lr_max_iter": 50}))
    # the fit path (parallel scikit-learn vs Spark ML per label) changes the model: part of the id
    assert fp != training_fingerprint("tfidf_lr", train, val, [], sec.model_copy(update={"parallel_fit_max_mb": 0.0}))
    assert fp != training_fingerprint("embedding_lr", train, val, [], sec)
    assert fp != training_fingerprint("tfidf_lr", train, val, [], sec, embedding_model="e5")


def _store(kind, spark, tmp_path):
    import uuid

    from lakedoc.tables import LocalDeltaStore, UnityCatalogStore

    if kind == "local":
        return LocalDeltaStore(tmp_path / "wh", spark)
    schema = f"lakedoc_bl_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS spark_catalog.{schema}")
    return UnityCatalogStore(spark, "spark_catalog", schema)


@pytest.mark.parametrize("kind", ["local", "unity"])
def test_predictions_of_documents_that_left_the_ok_set_are_removed(spark, tmp_path, kind):
    """Issue #11 (a): baseline predictions of deleted / no-longer-ok documents go; zero-shot rows stay
    (``classify`` owns them)."""
    from lakedoc.config import load_config
    from lakedoc.tasks import run_task

    store = _store(kind, spark, tmp_path)
    store.merge(DOCUMENTS_REDACTED, pa.Table.from_pylist([
        {"doc_id": "keep", "redacted_text": "some text", "status": "ok", "error": None},
        {"doc_id": "broken", "redacted_text": None, "status": "error", "error": "CorruptError: x"},
    ], schema=DOCUMENTS_REDACTED.schema))
    rows = [{"doc_id": d, "label": "a", "score": 0.9, "predicted": True, "threshold": 0.5, "method": m,
             "model": f"{m}-x", "run_id": "r0"}
            for d in ("keep", "deleted", "broken") for m in ("tfidf_lr", "embedding_xgb", "zero_shot")]
    for m in ("tfidf_lr", "embedding_xgb", "zero_shot"):
        store.merge(PREDICTIONS, pa.Table.from_pylist([r for r in rows if r["method"] == m], schema=PREDICTIONS.schema),
                    scope=PREDICTIONS.scope_of(m))
    cfg = load_config("local", sets=FAST + [f"tables.warehouse={tmp_path / 'wh'}", "baselines.methods=[tfidf_lr]",
                                            "baselines.generate_synthetic=false", "baselines.mlflow_enabled=false"])
    run = run_task("baselines", cfg, run_id="r1", spark=spark, tables=store)
    assert run.status == "succeeded", run.error
    assert run.result.details["documents_removed"] == 2
    left = {(r["doc_id"], r["method"]) for r in store.read_arrow(PREDICTIONS, ["doc_id", "method"]).to_pylist()}
    assert left == {("keep", "tfidf_lr"), ("keep", "embedding_xgb"), ("keep", "zero_shot"),
                    ("deleted", "zero_shot"), ("broken", "zero_shot")}
    # nothing left to remove: a second run deletes nothing
    again = run_task("baselines", cfg, run_id="r2", spark=spark, tables=store)
    assert again.status == "succeeded" and again.result.details["documents_removed"] == 0


def test_tfidf_lr_parallel_fit_matches_spark_ml_and_falls_back_over_budget(spark, tmp_path):
    """The workers' scikit-learn fits (``baselines.parallel_fit_max_mb``) give the Spark ML per-label
    models' predictions on real text; a budget too small for the matrix takes the Spark ML path; the
    parallel model saves and loads."""
    from lakedoc.baselines.tfidf import TfidfLogReg
    from lakedoc.config import load_config

    recs = _reuters_slice(240, {"earn", "acq", "crude", "grain"})
    train, test = recs[:180], recs[180:]
    names = sorted({lab for r in train for lab in r["labels"]})
    # a strongly regularised, small problem that Spark's L-BFGS also drives to convergence
    common = ["baselines.num_features=2048", "baselines.lr_reg_param=0.001", "baselines.lr_max_iter=300"]
    fast = TfidfLogReg(spark)
    fast.fit([r["text"] for r in train], [r["labels"] for r in train], names,
             load_config("local", sets=common, environ={}))
    slow = TfidfLogReg(spark)
    slow.fit([r["text"] for r in train], [r["labels"] for r in train], names,
             load_config("local", sets=[*common, "baselines.parallel_fit_max_mb=0.01"], environ={}))
    assert fast.train_stats["fit_mode"] == "parallel" and fast.linear is not None and not fast.models
    assert slow.train_stats["fit_mode"] == "spark_ml" and slow.linear is None and len(slow.models) == len(names)
    assert "over baselines.parallel_fit_max_mb = 0.01" in slow.train_stats["fallback_reason"]
    # the packed rows count the documents and each label's positives (one pass, no cached features)
    want = {lab: sum(lab in r["labels"] for r in train) for lab in names}
    assert fast.train_stats["docs"] == len(train) and fast.train_stats["positives"] == want
    assert slow.train_stats["positives"] == want
    # a budget the settings allow but the packed matrix exceeds: the Spark ML path after packing
    mid = TfidfLogReg(spark)
    mid.fit([r["text"] for r in train], [r["labels"] for r in train], names,
            load_config("local", sets=[*common, "baselines.parallel_fit_max_mb=0.3"], environ={}))
    assert mid.train_stats["fit_mode"] == "spark_ml" and len(mid.models) == len(names)
    assert "the training matrix needs ~" in mid.train_stats["fallback_reason"]
    assert mid.train_stats["positives"] == want
    texts = [r["text"] for r in test]
    a, b = fast.predict_scores(texts), slow.predict_scores(texts)
    assert a.shape == b.shape == (len(texts), len(names))
    assert np.abs(a - b).max() < 0.02, np.abs(a - b).max()
    y = ev.binarize([r["labels"] for r in test], names).astype(bool)
    assert ((a > 0.5) == y).mean() > 0.9  # and the models are good, not merely equal
    # the parallel model round-trips through save/load (meta.json + linear.npz)
    path = fast.save(str(tmp_path / "m"))
    assert json.loads((tmp_path / "m" / "meta.json").read_text())["fit_mode"] == "parallel"
    back = TfidfLogReg.load(path)
    assert back.linear is not None and back.label_names == names
    assert np.allclose(back.predict_scores(texts), a)


def test_fitting_on_the_used_columns_gives_the_full_width_solution():
    """``tfidf_lr``'s workers fit each label on the training matrix's non-empty columns only: the
    coefficients (mapped back to the hashed width), intercept and iterations equal the full-width fit's."""
    from sklearn.feature_extraction.text import HashingVectorizer

    from lakedoc.baselines.parallel import class_weight, fit_binary, used_columns
    from lakedoc.config_schema import BaselinesSettings

    recs = _reuters_slice(400, {"earn", "acq", "crude", "grain"})
    X = HashingVectorizer(n_features=2**18, alternate_sign=False).transform([r["text"] for r in recs]).tocsr()
    Xc, cols = used_columns(X)
    assert Xc.shape == (X.shape[0], len(cols)) and Xc.nnz == X.nnz and len(cols) < X.shape[1] // 10
    s = BaselinesSettings()
    for lab in ("earn", "crude"):
        y = np.array([lab in r["labels"] for r in recs], dtype=np.int64)
        w = class_weight(len(y), int(y.sum()), s.max_pos_weight)
        full, b_full, it_full = fit_binary(X, y, w, s)
        part, b_part, it_part = fit_binary(Xc, y, w, s)
        back = np.zeros(X.shape[1])
        back[cols] = part
        assert np.count_nonzero(np.delete(full, cols)) == 0  # no weight where there is no data
        assert np.abs(back - full).max() < 1e-8 and abs(b_full - b_part) < 1e-8 and it_full == it_part
        assert np.count_nonzero(full) > 100  # a real model, not an all-zero one
