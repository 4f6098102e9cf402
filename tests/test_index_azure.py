"""The azure_search backend: the real azure-search-documents SDK against a local fake service
(tests/azure_search_server.py) with injected faults — 429 + Retry-After, 503, partial batch failures."""
from __future__ import annotations

import pytest
from azure_search_server import FakeSearchService, Fault
from index_fixtures import Corpus, VectorEncoder

from lakedoc.config import load_config
from lakedoc.index import search
from lakedoc.index.backends.azure_search import AzureSearchBackend, batches, odata_filter
from lakedoc.index.stage import read_state
from lakedoc.tables import LocalDeltaStore
from lakedoc.tasks import run_task

INDEX = "lakedoc-test"


@pytest.fixture()
def svc():
    with FakeSearchService() as s:
        yield s


@pytest.fixture()
def env(tmp_path, spark, svc, monkeypatch):
    monkeypatch.setenv("LAKEDOC_TEST_SEARCH_KEY", svc.api_key)
    cfg = load_config("local", environ={}, sets={
        "tables": {"warehouse": str(tmp_path / "wh")},
        "index": {"backend": "azure_search", "name": INDEX, "batch_size": 7, "backoff_s": 0.01,
                  "backoff_max_s": 0.05, "max_retries": 3, "item_retries": 2, "parallel_requests": 2,
                  "azure": {"endpoint": svc.endpoint, "api_key": {"env": "LAKEDOC_TEST_SEARCH_KEY"}}}})
    return cfg, LocalDeltaStore(tmp_path / "wh", spark)


def _run(cfg, store, spark):
    return run_task("index", cfg, spark=spark, tables=store)


def test_push_with_throttling_and_partial_failures_loses_nothing(env, spark, svc):
    cfg, store = env
    corpus = Corpus(n_docs=20, chunks_per_doc=3, dim=16, seed=5)  # 60 chunks -> 9 batches of <= 7
    corpus.write(store, cfg)
    svc.inject(Fault(status=429, retry_after="0.05"), Fault(status=503),
               Fault(fail_every=3, item_status=503), Fault(status=429, retry_after_ms=30),
               Fault(fail_every=2, item_status=422))
    run = _run(cfg, store, spark)
    assert run.status == "succeeded", run.error
    d = run.result.details
    assert d["sent"] == 60 and d["failed"] == 0 and d["retries"] == 5

    docs = svc.documents(INDEX)
    assert sorted(docs) == sorted(c["chunk_id"] for c in corpus.chunks)  # nothing lost
    assert all(n == 1 for n in svc.state.actions_applied.values())  # nothing applied twice
    # bounded: 60 actions + the failed items re-sent (<= 60 per faulty batch round), nothing more
    assert sum(svc.state.actions_received.values()) <= 60 + 2 * 7
    assert svc.state.statuses[429] == 2 and svc.state.statuses[503] == 1 and svc.state.statuses[207] == 2

    doc = docs["doc004-1"]
    assert doc["file_name"] == "file4.pdf" and doc["format"] == "pdf" and doc["unit_ref"] == "page 2"
    assert doc["labels"] == ["crude"] and doc["label_scores"][0]["score"] == 0.9
    assert doc["modified_at"].startswith("2026-11-01T00:00:00") and doc["modified_at"].endswith("Z")
    assert len(doc["vector"]) == 16 and doc["text"].startswith("chunk 1 of document 4")

    definition = svc.state.indexes[INDEX]
    fields = {f["name"]: f for f in definition["fields"]}
    assert fields["chunk_id"]["key"] is True
    assert fields["vector"]["dimensions"] == 16 and fields["vector"]["vectorSearchProfile"]
    assert fields["labels"]["filterable"] and fields["labels"]["facetable"] and fields["format"]["facetable"]
    assert fields["text"]["searchable"]
    assert definition["vectorSearch"]["algorithms"][0]["kind"] == "hnsw"
    assert definition["vectorSearch"]["algorithms"][0]["hnswParameters"]["metric"] == "cosine"

    assert len(read_state(store, "azure_search", INDEX)) == 60
    before = svc.state.requests["search.index"]
    again = _run(cfg, store, spark)
    assert again.status == "succeeded" and again.result.details["sent"] == 0
    assert svc.state.requests["search.index"] == before  # a re-run with nothing changed sends nothing


def test_permanent_failures_fail_the_task_and_are_sent_next_run(env, spark, svc):
    cfg, store = env
    corpus = Corpus(n_docs=4, chunks_per_doc=3, dim=16, seed=6)
    corpus.write(store, cfg)
    cfg = cfg.with_overrides({"index": {"parallel_requests": 1, "batch_size": 100}})
    svc.inject(Fault(fail_keys=("doc001-0", "doc002-2"), item_status=400))
    run = _run(cfg, store, spark)
    assert run.status == "failed"
    assert "2 chunk(s) failed permanently" in run.error and "doc001-0" in run.error and "HTTP 400" in run.error
    state = read_state(store, "azure_search", INDEX)
    assert {c for c, (h, _) in state.items() if h} == {c["chunk_id"] for c in corpus.chunks} - {
        "doc001-0", "doc002-2"}
    assert state["doc001-0"][0] is None, "a chunk that failed stays pending: sent again by the next run"
    assert len(svc.documents(INDEX)) == 10
    again = _run(cfg, store, spark)
    assert again.status == "succeeded" and again.result.details["sent"] == 2
    assert len(svc.documents(INDEX)) == 12


def test_request_retries_are_bounded(env, spark, svc):
    cfg, store = env
    corpus = Corpus(n_docs=2, chunks_per_doc=2, dim=16, seed=7)
    corpus.write(store, cfg)
    cfg = cfg.with_overrides({"index": {"parallel_requests": 1, "batch_size": 100, "max_retries": 2}})
    svc.inject(*[Fault(status=503) for _ in range(10)])
    run = _run(cfg, store, spark)
    assert run.status == "failed" and "HTTP 503" in run.error
    assert svc.state.requests["search.index"] == 3  # one try + max_retries
    assert svc.state.statuses[503] == 3 and not svc.documents(INDEX)
    svc.state.faults.clear()
    assert _run(cfg, store, spark).result.details["sent"] == 4


def test_deletions_and_search_through_the_sdk(env, spark, svc):
    cfg, store = env
    corpus = Corpus(n_docs=6, chunks_per_doc=2, dim=16, seed=8)
    corpus.write(store, cfg)
    assert _run(cfg, store, spark).status == "succeeded"
    corpus.deleted.add("doc000")
    corpus.chunks = [c for c in corpus.chunks if c["chunk_id"] != "doc003-1"]
    corpus.write(store, cfg, run_id="r2")
    res = _run(cfg, store, spark)
    assert res.result.details["deleted"] == 3 and res.result.details["sent"] == 0
    assert sorted(svc.documents(INDEX)) == sorted(c["chunk_id"] for c in corpus.chunks if c["doc_id"] != "doc000")

    enc = VectorEncoder({"q": corpus.vector("doc004-1"), "token4x1 crude": corpus.vector("doc004-1")}, 16)
    hits = search("q", cfg=cfg, encoder=enc, k=3)
    assert hits[0].chunk_id == "doc004-1" and hits[0].file_name == "file4.pdf" and hits[0].labels == ["crude"]
    assert hits[0].score == pytest.approx(1.0)
    assert all(h.labels == ["grain"] for h in search("q", cfg=cfg, encoder=enc, labels=["grain"], k=20))
    assert {h.format for h in search("q", cfg=cfg, encoder=enc, format="pptx", k=20)} == {"pptx"}
    assert search("token4x1 crude", cfg=cfg, encoder=enc, mode="hybrid", k=1)[0].chunk_id == "doc004-1"


def test_batches_respect_both_service_limits():
    docs = [{"chunk_id": str(i), "text": "x" * 1000} for i in range(2500)]
    groups = list(batches(docs, 1000, 16_000_000))
    assert [len(g) for g in groups] == [1000, 1000, 500]
    groups = list(batches(docs, 1000, 100_000))
    assert all(len(g) <= 1000 and sum(len(d["text"]) + 60 for d in g) <= 100_000 for g in groups)
    assert sum(len(g) for g in groups) == 2500 and len(groups) > 20


def test_odata_filter_quotes_values():
    assert odata_filter(["a", "o'b"], "pdf") == "labels/any(l: l eq 'a' or l eq 'o''b') and format eq 'pdf'"
    assert odata_filter(None, None) is None


def test_entra_tokens_are_refused_over_http_but_api_keys_work(svc):
    """The SDK's bearer-token policy insists on https; the API-key policy does not (why the fake is http)."""
    from azure.core.credentials import AccessToken
    from azure.core.exceptions import ServiceRequestError

    class Token:
        def get_token(self, *scopes, **kw):
            return AccessToken("t", 2_000_000_000)

    with pytest.raises(ServiceRequestError, match="non-TLS"):
        AzureSearchBackend(svc.endpoint, "x", Token(), max_retries=0).ensure_index(4)
    from azure.core.credentials import AzureKeyCredential

    assert AzureSearchBackend(svc.endpoint, "x", AzureKeyCredential(svc.api_key)).ensure_index(4) is True


def test_secret_references_resolve_from_the_environment_first(monkeypatch):
    from lakedoc.secrets import SecretNotFound, resolve_secret

    assert resolve_secret({"env": "X_KEY", "scope": "s", "key": "k"}, environ={"X_KEY": "v"}) == "v"
    monkeypatch.setattr("lakedoc.secrets._databricks_secret", lambda scope, key: f"{scope}/{key}")
    assert resolve_secret({"env": "X_KEY", "scope": "s", "key": "k"}, environ={}) == "s/k"
    monkeypatch.setattr("lakedoc.secrets._databricks_secret", lambda scope, key: None)
    with pytest.raises(SecretNotFound, match="environment variable X_KEY or secret scope 's' key 'k'"):
        resolve_secret({"env": "X_KEY", "scope": "s", "key": "k"}, environ={})
    assert resolve_secret({"env": "X_KEY"}, required=False, environ={}) is None
