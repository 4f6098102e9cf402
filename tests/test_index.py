"""The index task and search on the embedded LanceDB backend (real LanceDB in a temporary folder)."""
from __future__ import annotations

import numpy as np
import pytest
from index_fixtures import Corpus, VectorEncoder

from lakedoc.config import load_config
from lakedoc.index import Hit, search
from lakedoc.index.backends import open_backend
from lakedoc.index.stage import INDEX_STATE, read_state
from lakedoc.tables import LocalDeltaStore
from lakedoc.tasks import run_task


@pytest.fixture()
def env(tmp_path, spark):
    cfg = load_config("local", sets=[f"tables.warehouse={tmp_path / 'wh'}"], environ={})
    store = LocalDeltaStore(tmp_path / "wh", spark)
    return cfg, store


def _index(cfg, store, spark):
    run = run_task("index", cfg, spark=spark, tables=store)
    assert run.status == "succeeded", run.error
    return run.result


def test_push_search_filter_and_rerun_sends_nothing(env, spark):
    cfg, store = env
    corpus = Corpus(n_docs=6, chunks_per_doc=3)
    corpus.write(store, cfg)

    first = _index(cfg, store, spark)
    assert first.details["sent"] == 18 and first.details["failed"] == 0
    backend = open_backend(cfg)
    assert backend.count() == 18
    state = read_state(store, "lancedb", cfg["index"]["name"])
    assert len(state) == 18

    target = "doc004-1"  # doc 4: label crude, format pdf
    enc = VectorEncoder({"q": corpus.vector(target)}, corpus.dim)
    hits = search("q", cfg=cfg, encoder=enc, k=5)
    assert isinstance(hits[0], Hit) and hits[0].chunk_id == target
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].file_name == "file4.pdf" and hits[0].unit_ref == "page 2" and hits[0].format == "pdf"
    assert hits[0].labels == ["crude"]
    assert hits[0].label_scores == [{"label": "crude", "score": 0.9, "method": "zero_shot"}]
    assert "document 4" in hits[0].text
    assert enc.calls == [(["q"], "query")]  # the query convention, not the passage one

    by_label = search("q", cfg=cfg, encoder=enc, labels=["grain"], k=20)
    assert by_label and all(h.labels == ["grain"] for h in by_label) and len(by_label) == 6
    by_two = search("q", cfg=cfg, encoder=enc, labels=["grain", "earn"], k=20)
    assert len(by_two) == 12 and {lab for h in by_two for lab in h.labels} == {"grain", "earn"}
    by_format = search("q", cfg=cfg, encoder=enc, format="pdf", k=20)
    assert len(by_format) == 6 and all(h.format == "pdf" for h in by_format)
    both = search("q", cfg=cfg, encoder=enc, labels=["crude"], format="pdf", k=20)
    assert {h.doc_id for h in both} == {"doc001", "doc004"}

    hybrid = search("token4x1 crude", cfg=cfg,
                    encoder=VectorEncoder({"token4x1 crude": corpus.vector(target)}, corpus.dim), mode="hybrid", k=3)
    assert hybrid[0].chunk_id == target

    # nothing changed: nothing is sent, the state table gets no new version
    version = store.version(INDEX_STATE)
    again = _index(cfg, store, spark)
    assert again.details["sent"] == 0 and again.details["deleted"] == 0 and again.details["requests"] == 0
    assert again.details["unchanged"] == 18
    assert store.version(INDEX_STATE) == version
    assert open_backend(cfg).count() == 18


def test_changes_deletions_and_labels_are_followed(env, spark):
    cfg, store = env
    corpus = Corpus(n_docs=4, chunks_per_doc=3, seed=1)
    corpus.write(store, cfg)
    _index(cfg, store, spark)

    # doc000 changes: its chunk 2 disappears and chunk 0's text (and vector) changes
    corpus.chunks = [c for c in corpus.chunks if c["chunk_id"] != "doc000-2"]
    c0 = next(c for c in corpus.chunks if c["chunk_id"] == "doc000-0")
    c0["text"], c0["text_hash"] = "rewritten text about wheat", "h-new"
    c0["vector"] = corpus.vector("doc003-0")
    # doc001 is deleted at the source
    corpus.deleted.add("doc001")
    # doc002 gets another label
    corpus.docs[2]["label"] = "grain"
    corpus.write(store, cfg, run_id="r2")
    res = _index(cfg, store, spark)
    # sent: doc000-0 (new text) + doc002's 3 chunks (labels); deleted: doc000-2 + doc001's 3 chunks
    assert res.details["sent"] == 4 and res.details["deleted"] == 4
    backend = open_backend(cfg)
    assert backend.count() == 12 - 4
    state = read_state(store, "lancedb", cfg["index"]["name"])
    assert set(state) == {c["chunk_id"] for c in corpus.chunks if c["doc_id"] != "doc001"}
    hits = backend.search(corpus.vector("doc003-0"), None, k=2)
    assert {h.chunk_id for h in hits} == {"doc000-0", "doc003-0"}
    assert next(h for h in hits if h.chunk_id == "doc000-0").text == "rewritten text about wheat"
    assert {h.labels[0] for h in backend.search(corpus.vector("doc002-0"), None, k=30) if h.doc_id == "doc002"} \
        == {"grain"}
    assert _index(cfg, store, spark).details["sent"] == 0


def test_crashed_push_resumes_without_duplicates(env, spark, monkeypatch):
    """A push that dies after the first slice: the state holds that slice; the re-run sends the rest."""
    from lakedoc.index.backends import lancedb_backend

    cfg, store = env
    cfg = cfg.with_overrides({"index": {"batch_size": 5}})  # slices of 100 chunks
    corpus = Corpus(n_docs=50, chunks_per_doc=3, seed=2)  # 150 chunks -> 2 slices
    corpus.write(store, cfg)
    real = lancedb_backend.LanceDBBackend.upsert
    calls = {"n": 0}

    def dying(self, docs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("killed mid-push")
        return real(self, docs)

    monkeypatch.setattr(lancedb_backend.LanceDBBackend, "upsert", dying)
    run = run_task("index", cfg, spark=spark, tables=store)
    assert run.status == "failed" and "killed" in run.error
    state = read_state(store, "lancedb", cfg["index"]["name"])
    done = {c for c, (h, _) in state.items() if h is not None}
    assert 0 < len(done) < 150
    assert len(state) == 150, "the slice being pushed was written ahead as pending"
    monkeypatch.setattr(lancedb_backend.LanceDBBackend, "upsert", real)
    res = _index(cfg, store, spark)
    assert res.details["sent"] == 150 - len(done)
    b = open_backend(cfg)
    ids = b.table.to_arrow().column("chunk_id").to_pylist()
    assert len(ids) == len(set(ids)) == 150


def test_ann_index_with_refine_returns_exact_self_matches(tmp_path):
    from lakedoc.index.backends.lancedb_backend import LanceDBBackend

    rng = np.random.default_rng(3)
    n, dim = 600, 32
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    b = LanceDBBackend(tmp_path / "lance", "t", ann_min_rows=500, nprobes=4, refine_factor=10)
    assert b.ensure_index(dim) is True
    b.upsert([{"chunk_id": f"c{i}", "doc_id": f"d{i // 10}", "text": f"text {i}", "vector": vecs[i].tolist(),
               "labels": [], "label_scores": []} for i in range(n)])
    info = b.finalize()
    assert info["ann"] is True and "vector_idx" in info["indices_built"]
    for i in (0, 17, 599):
        hit = b.search(vecs[i], None, k=3)[0]
        assert hit.chunk_id == f"c{i}" and hit.score == pytest.approx(1.0, abs=1e-5)
    assert b.ensure_index(dim) is False  # reopened, not recreated
    assert b.ensure_index(dim * 2) is True  # a new model's dimension: a new table


def test_search_cli_prints_hits(env, spark, capsys, monkeypatch):
    from lakedoc import cli
    from lakedoc.index import query

    cfg, store = env
    corpus = Corpus(n_docs=3, chunks_per_doc=2, seed=4)
    corpus.write(store, cfg)
    _index(cfg, store, spark)
    enc = VectorEncoder({"wheat prices": corpus.vector("doc002-1")}, corpus.dim)
    monkeypatch.setattr(query, "embed_query", lambda q, c, e=None: enc.encode([q], kind="query")[0])
    rc = cli.main(["search", "wheat prices", "--k", "2", "--warehouse", str(store.root), "--label", "earn"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.splitlines()[0].startswith(" 1. 1.0000  file2.pptx [page 2]  (pptx)  labels: earn 0.90")
    assert "chunk 1 of document 2" in out


class _NoInPlaceWrites:
    """A LanceDB connection on a mount without hard links: Lance's commits fail there, reads work."""

    WRITES = {"merge_insert", "add", "delete", "update", "create_index", "create_fts_index", "create_scalar_index",
              "optimize", "compact_files", "cleanup_old_versions", "create_table", "drop_table"}

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        if name in self.WRITES:
            raise OSError(95, f"{name}: hard link not supported on this mount (simulated volume)")
        attr = getattr(self._inner, name)
        if name == "open_table":
            return lambda *a, **kw: _NoInPlaceWrites(attr(*a, **kw))
        return attr


@pytest.fixture()
def volume(tmp_path, monkeypatch):
    """A tmp folder standing in for /Volumes/<catalog>/<schema>/index: no hard links, no in-place Lance writes."""
    import errno
    import os

    import lancedb

    root = tmp_path / "volume"
    real_link, real_connect = os.link, lancedb.connect
    connected = []

    def link(src, dst, *a, **kw):
        if str(root) in str(src) or str(root) in str(dst):
            raise OSError(errno.EPERM, "Operation not permitted", str(dst))
        return real_link(src, dst, *a, **kw)

    def connect(uri, *a, **kw):
        connected.append(str(uri))
        db = real_connect(uri, *a, **kw)
        return _NoInPlaceWrites(db) if str(root) in str(uri) else db

    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(lancedb, "connect", connect)
    return root, connected


def test_index_on_a_folder_without_hard_links_is_staged_locally_and_copied(env, spark, volume):
    from lakedoc.index.backends.lancedb_backend import LanceDBBackend, supports_hard_links

    root, connected = volume
    cfg, store = env
    path = root / "index" / "lancedb"
    cfg = cfg.with_overrides({"index": {"lancedb": {"path": str(path)}}})
    assert not supports_hard_links(path) and supports_hard_links(path.parents[2] / "elsewhere")
    assert list(path.iterdir()) == []  # the probe leaves nothing behind
    # the simulation bites: writing the dataset in place fails, as on a volume
    with pytest.raises(OSError, match="hard link"):
        LanceDBBackend(path, "probe", staging=False).ensure_index(4)

    corpus = Corpus(n_docs=6, chunks_per_doc=3)
    corpus.write(store, cfg)
    first = _index(cfg, store, spark)
    assert first.details["sent"] == 18 and first.details["failed"] == 0
    dataset = path / f"{cfg['index']['name']}.lance"
    assert list((dataset / "_versions").glob("*.manifest")) and list((dataset / "data").glob("*.lance"))
    scratch = [p for p in connected if str(root) not in p]
    assert scratch, "writes went to a local scratch folder"
    assert not any(__import__("os").path.exists(p) for p in scratch), "the scratch copy is removed at close"

    # a fresh reader opens the copy on the "volume": exact search, filters and the full-text index work
    reader = open_backend(cfg)
    assert reader.staged and reader.count() == 18
    target = "doc004-1"
    hit = reader.search(corpus.vector(target), None, k=3)[0]
    assert hit.chunk_id == target and hit.score == pytest.approx(1.0, abs=1e-5) and hit.labels == ["crude"]
    hybrid = reader.search(corpus.vector(target), "token4x1 crude", mode="hybrid", k=3)
    assert hybrid[0].chunk_id == target
    assert reader.work is None  # reading did not copy anything down

    # second run: changes, deletions and label updates land on the volume without duplicates
    corpus.chunks = [c for c in corpus.chunks if c["chunk_id"] != "doc000-2"]
    c0 = next(c for c in corpus.chunks if c["chunk_id"] == "doc000-0")
    c0["text"], c0["text_hash"], c0["vector"] = "rewritten text about wheat", "h-new", corpus.vector("doc003-0")
    corpus.deleted.add("doc001")
    corpus.write(store, cfg, run_id="r2")
    res = _index(cfg, store, spark)
    assert res.details["sent"] == 1 and res.details["deleted"] == 4
    after = open_backend(cfg)
    ids = after.table.to_arrow().column("chunk_id").to_pylist()
    assert len(ids) == len(set(ids)) == 18 - 4
    assert set(ids) == {c["chunk_id"] for c in corpus.chunks if c["doc_id"] != "doc001"}
    hits = after.search(corpus.vector("doc003-0"), None, k=2)
    assert {h.chunk_id for h in hits} == {"doc000-0", "doc003-0"}
    assert next(h for h in hits if h.chunk_id == "doc000-0").text == "rewritten text about wheat"
    # every file a manifest on the volume names is there: a full read of every column succeeds
    assert after.table.to_arrow().num_rows == 14
    assert _index(cfg, store, spark).details["sent"] == 0


def test_plain_local_folder_is_written_in_place(tmp_path, monkeypatch):
    from lakedoc.index.backends import lancedb_backend as lb

    monkeypatch.setattr(lb.shutil, "copytree", lambda *a, **kw: pytest.fail("no staging copy for a local folder"))
    b = lb.LanceDBBackend(tmp_path / "lance", "t")
    assert b.staged is False
    assert b.ensure_index(4) is True
    b.upsert([{"chunk_id": "c1", "doc_id": "d1", "text": "x", "vector": [1.0, 0, 0, 0], "labels": [],
               "label_scores": []}])
    assert b.work is None and b.count() == 1
    assert (tmp_path / "lance" / "t.lance" / "_versions").is_dir()
    assert lb.needs_staging("/Volumes/main/lakedoc_dev/index/lancedb") is True


def test_chunks_a_killed_push_may_have_sent_go_with_their_document(env, spark, monkeypatch):
    """A run killed after the service took a slice and before index_state recorded it: the slice was
    written ahead as pending, so when a document of it is deleted before the next run, that run
    deletes its chunks from the index (before, nothing named them: they stayed searchable)."""
    from lakedoc import faults

    cfg, store = env
    corpus = Corpus(n_docs=3, chunks_per_doc=2, seed=3)
    corpus.write(store, cfg)

    def killed(name: str) -> None:
        if name == "index.pushed":
            raise SystemError("killed after the push, before index_state")

    with monkeypatch.context() as m:
        m.setattr(faults, "point", killed)
        run = run_task("index", cfg, spark=spark, tables=store)
    assert run.status == "failed" and "killed after the push" in run.error
    assert open_backend(cfg).count() == 6, "the service holds the slice"
    state = read_state(store, "lancedb", cfg["index"]["name"])
    assert len(state) == 6 and all(h is None for h, _ in state.values()), state

    corpus.deleted.add("doc001")
    corpus.write(store, cfg, run_id="r2")
    res = _index(cfg, store, spark)
    assert res.details["sent"] == 4 and res.details["deleted"] == 2
    ids = open_backend(cfg).table.to_arrow().column("chunk_id").to_pylist()
    assert sorted(ids) == ["doc000-0", "doc000-1", "doc002-0", "doc002-1"]
    state = read_state(store, "lancedb", cfg["index"]["name"])
    assert set(state) == set(ids) and all(h for h, _ in state.values())
