"""The databricks_ai_search backend (a direct-access index) against a local fake of the AI Search REST API
(tests/databricks_search_server.py) with injected faults — 429 + Retry-After, 503, cut connections,
partial failures — through the real index task and `lakedoc search`."""
from __future__ import annotations

import json

import pytest
from databricks_search_server import FakeVectorSearch, Fault
from index_fixtures import Corpus, VectorEncoder

from lakedoc.config import load_config
from lakedoc.index import search
from lakedoc.index.backends.databricks_ai_search import DatabricksAISearchBackend, filters
from lakedoc.index.stage import read_state
from lakedoc.tables import LocalDeltaStore
from lakedoc.tasks import run_task

INDEX = "main.lakedoc.lakedoc_test"


@pytest.fixture()
def svc():
    with FakeVectorSearch() as s:
        yield s


@pytest.fixture()
def env(tmp_path, spark, svc, monkeypatch):
    monkeypatch.setenv("LAKEDOC_TEST_DBX_TOKEN", svc.token)
    cfg = load_config("local", environ={}, sets={
        "tables": {"warehouse": str(tmp_path / "wh")},
        "index": {"backend": "databricks_ai_search", "name": "lakedoc-test", "batch_size": 7, "backoff_s": 0.01,
                  "backoff_max_s": 0.05, "max_retries": 3, "item_retries": 2, "parallel_requests": 2,
                  "databricks": {"host": svc.host, "endpoint_name": "vs-endpoint", "timeout_s": 5,
                                 "token": {"env": "LAKEDOC_TEST_DBX_TOKEN"}}}})
    return cfg, LocalDeltaStore(tmp_path / "wh", spark)


def _run(cfg, store, spark):
    return run_task("index", cfg, spark=spark, tables=store)


def test_push_with_throttling_cuts_and_partial_failures_loses_nothing(env, spark, svc):
    cfg, store = env
    corpus = Corpus(n_docs=20, chunks_per_doc=3, dim=16, seed=5)  # 60 chunks -> 9 batches of <= 7
    corpus.write(store, cfg)
    svc.inject(Fault(status=429, retry_after="0.05"), Fault(status=503), Fault(fail_every=3),
               Fault(cut=True), Fault(fail_every=2))
    run = _run(cfg, store, spark)
    assert run.status == "succeeded", run.error
    d = run.result.details
    assert d["sent"] == 60 and d["failed"] == 0 and d["retries"] == 5

    rows = svc.rows(INDEX)  # the Unity Catalog name: catalog.schema.<index.name with underscores>
    assert sorted(rows) == sorted(c["chunk_id"] for c in corpus.chunks)  # nothing lost
    assert all(n == 1 for n in svc.state.applied.values())  # nothing applied twice
    assert svc.state.statuses[429] == 1 and svc.state.statuses[503] == 1

    row = rows["doc004-1"]
    assert row["file_name"] == "file4.pdf" and row["format"] == "pdf" and row["unit_ref"] == "page 2"
    assert row["labels"] == ["crude"] and json.loads(row["label_scores_json"])[0]["score"] == 0.9
    assert row["modified_at"].startswith("2026-11-01T00:00:00") and len(row["vector"]) == 16

    definition = svc.state.indexes[INDEX]
    assert definition["index_type"] == "DIRECT_ACCESS" and definition["endpoint_name"] == "vs-endpoint"
    assert definition["direct_access_index_spec"]["embedding_vector_columns"] == [
        {"name": "vector", "embedding_dimension": 16}]

    assert len(read_state(store, "databricks_ai_search", "lakedoc-test")) == 60
    before = svc.state.requests["upsert"]
    again = _run(cfg, store, spark)
    assert again.status == "succeeded" and again.result.details["sent"] == 0
    assert svc.state.requests["upsert"] == before  # a re-run with nothing changed sends nothing


def test_permanent_failures_and_bounded_retries(env, spark, svc):
    cfg, store = env
    corpus = Corpus(n_docs=4, chunks_per_doc=3, dim=16, seed=6)
    corpus.write(store, cfg)
    cfg = cfg.with_overrides({"index": {"parallel_requests": 1, "batch_size": 100, "item_retries": 1,
                                        "max_retries": 2}})
    svc.inject(Fault(fail_keys=("doc001-0",)), Fault(fail_keys=("doc001-0",)))
    run = _run(cfg, store, spark)
    assert run.status == "failed" and "doc001-0" in run.error
    assert len(svc.rows(INDEX)) == 11
    assert read_state(store, "databricks_ai_search", "lakedoc-test")["doc001-0"][0] is None  # pending, not pushed
    svc.inject(*[Fault(status=503) for _ in range(10)])
    before = svc.state.requests["upsert"]
    run = _run(cfg, store, spark)
    assert run.status == "failed" and "HTTP 503" in run.error
    assert svc.state.requests["upsert"] - before == 3  # one try + max_retries
    svc.state.faults.clear()
    again = _run(cfg, store, spark)
    assert again.status == "succeeded" and again.result.details["sent"] == 1 and len(svc.rows(INDEX)) == 12


def test_deletions_and_search(env, spark, svc):
    cfg, store = env
    corpus = Corpus(n_docs=6, chunks_per_doc=2, dim=16, seed=8)
    corpus.write(store, cfg)
    assert _run(cfg, store, spark).status == "succeeded"
    corpus.deleted.add("doc000")
    corpus.chunks = [c for c in corpus.chunks if c["chunk_id"] != "doc003-1"]
    corpus.write(store, cfg, run_id="r2")
    svc.inject(Fault(op="delete", status=503))
    res = _run(cfg, store, spark)
    assert res.status == "succeeded" and res.result.details["deleted"] == 3
    assert sorted(svc.rows(INDEX)) == sorted(c["chunk_id"] for c in corpus.chunks if c["doc_id"] != "doc000")

    enc = VectorEncoder({"q": corpus.vector("doc004-1"), "token4x1 crude": corpus.vector("doc004-1")}, 16)
    svc.inject(Fault(op="query", status=429, retry_after="0"))
    hits = search("q", cfg=cfg, encoder=enc, k=3)
    assert hits[0].chunk_id == "doc004-1" and hits[0].file_name == "file4.pdf" and hits[0].labels == ["crude"]
    assert hits[0].score == pytest.approx(1.0) and hits[0].label_scores[0]["score"] == 0.9
    assert all(h.labels == ["grain"] for h in search("q", cfg=cfg, encoder=enc, labels=["grain"], k=20))
    assert {h.format for h in search("q", cfg=cfg, encoder=enc, format="pptx", k=20)} == {"pptx"}
    top = search("token4x1 crude", cfg=cfg, encoder=enc, mode="hybrid", k=1)
    assert top[0].chunk_id == "doc004-1"
    last = svc.state.queries[-1]
    assert last["query_type"] == "HYBRID" and last["query_text"] == "token4x1 crude"


def test_index_of_another_dimension_is_recreated_and_auth_is_required(svc):
    b = DatabricksAISearchBackend(svc.host, INDEX, "ep", token=svc.token, backoff_s=0.0)
    assert b.ensure_index(8) is True and b.ensure_index(8) is False
    assert b.ensure_index(16) is True
    assert svc.state.indexes[INDEX]["direct_access_index_spec"]["embedding_vector_columns"][0][
        "embedding_dimension"] == 16
    bad = DatabricksAISearchBackend(svc.host, INDEX, "ep", token="wrong", max_retries=3, backoff_s=0.0)
    with pytest.raises(RuntimeError, match="HTTP 401"):
        bad.count()
    assert filters(["a", "b"], "pdf") == {"labels": ["a", "b"], "format": "pdf"}
    assert filters(None, None) is None
