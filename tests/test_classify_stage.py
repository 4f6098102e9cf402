"""The classify and embed tasks end to end on a small documents_redacted table (local Spark, delta-rs)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lakedoc.config import load_config
from lakedoc.schema import DOCUMENTS_REDACTED, PREDICTIONS
from lakedoc.tables import LocalDeltaStore
from lakedoc.tasks import run_task

EARN = ["Acme Corp reported first quarter net profit of 12.5 mln dlrs, up from 9.1 mln dlrs a year ago.",
        "Revenues rose 14 pct and the board declared a quarterly dividend of 20 cts per share."]
GRAIN = "Wheat and corn exports fell sharply this season as drought cut the grain harvest in the plains states."


def _doc(doc_id, pages, status="ok"):
    units = [{"kind": "page", "index": i + 1, "ref": f"page {i + 1}", "text": t} for i, t in enumerate(pages)]
    return {"doc_id": doc_id, "root_doc_id": doc_id, "source_path": f"/in/{doc_id}.pdf", "file_name": f"{doc_id}.pdf",
            "format": "pdf", "content_hash": str(hash(tuple(pages))), "redacted_text": "\n\n".join(pages),
            "redacted_units": units, "entity_counts": [("PERSON", 1)], "config_hash": "h",
            "status": status, "error": None if status == "ok" else "boom", "run_id": "r0"}


def _write(store, docs):
    store.merge(DOCUMENTS_REDACTED, pa.Table.from_pylist(docs, schema=DOCUMENTS_REDACTED.schema))


@pytest.fixture()
def env(tmp_path, spark):
    cfg = load_config("local", environ={}, sets=[f"tables.warehouse={tmp_path / 'wh'}",
                                                 "classify.docs_per_partition=2"])
    store = LocalDeltaStore(tmp_path / "wh", spark)
    return cfg, store


def _run(task, cfg, spark, store):
    run = run_task(task, cfg, spark=spark, tables=store)
    assert run.status == "succeeded", run.error
    return run.result


def test_classify_then_embed(env, spark):
    cfg, store = env
    _write(store, [_doc("earn1", EARN), _doc("grain1", [GRAIN]), _doc("short1", ["Too short to tell."]),
                   _doc("bad1", ["Failed redaction text that must not be classified at all here."], "redaction_error")])
    # a baseline's rows in the shared predictions table must survive everything below
    store.merge(PREDICTIONS, [{"doc_id": "earn1", "label": "earn", "score": 0.9, "predicted": True, "threshold": 0.5,
                               "method": "tfidf_lr", "model": "m", "run_id": "x"}],
                scope=PREDICTIONS.scope_of("tfidf_lr"))

    res = _run("classify", cfg, spark, store)
    assert res.details["processed"] == 3 and res.details["classified"] == 2 and res.details["skipped"] == 1

    preds = store.read_arrow("predictions").to_pandas()
    zs = preds[preds["method"] == "zero_shot"]
    assert set(zs["doc_id"]) == {"earn1", "grain1"} and len(zs) == 2 * 90
    assert set(zs["model"]) == {"sentence-transformers/all-MiniLM-L6-v2"}
    top = zs.sort_values("score").groupby("doc_id").tail(1).set_index("doc_id")["label"]
    assert top["earn1"] == "earn" and top["grain1"] in ("grain", "wheat", "corn")
    assert (zs["predicted"] == (zs["score"] >= zs["threshold"])).all()
    assert zs[(zs.doc_id == "earn1") & (zs.label == "earn")]["predicted"].item()

    skipped = store.read_arrow("classification_skipped").to_pylist()
    assert [(s["doc_id"], s["method"]) for s in skipped] == [("short1", "zero_shot")]
    assert skipped[0]["reason"].startswith("too_short: 4 words")

    chunks = store.read_arrow("chunks").to_pandas()
    assert set(chunks["doc_id"]) == {"earn1", "grain1", "short1"}  # short docs are still searchable
    earn_chunk = chunks[chunks.doc_id == "earn1"].iloc[0]
    assert list(earn_chunk["unit_refs"]) == ["page 1", "page 2"] and earn_chunk["unit_ref"] == "page 1 .. page 2"
    emb = store.read_arrow("embeddings").to_pandas()
    assert set(emb["chunk_id"]) == set(chunks["chunk_id"])
    v = np.stack(emb["vector"].to_numpy())
    assert v.shape[1] == 384 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    assert (emb["dimension"] == 384).all() and (emb.merge(chunks, on="chunk_id")["text_hash_x"]
                                                == emb.merge(chunks, on="chunk_id")["text_hash_y"]).all()

    # nothing changed: nothing is encoded again, no table gets a new version
    versions = {t: store.version(t) for t in ("predictions", "chunks", "embeddings")}
    res = _run("classify", cfg, spark, store)
    assert res.details["processed"] == 0
    assert {t: store.version(t) for t in versions} == versions
    # embed after classify: a no-op
    res = _run("embed", cfg, spark, store)
    assert res.details["processed"] == 0 and res.details["embedded_missing"] == 0

    # a lost embedding is re-created by embed, and only that one
    lost = emb["chunk_id"].iloc[0]
    store.delete_where("embeddings", "chunk_id", [lost])
    res = _run("embed", cfg, spark, store)
    assert res.details["embedded_missing"] == 1
    assert lost in set(store.read_arrow("embeddings", ["chunk_id"]).column("chunk_id").to_pylist())

    # earn1 shrinks to one page, short1 grows into a real document, grain1 fails redaction
    _write(store, [_doc("earn1", EARN[:1]), _doc("short1", [GRAIN + " Rice and barley too."]),
                   _doc("grain1", [GRAIN], "redaction_error")])
    res = _run("classify", cfg, spark, store)
    assert res.details["processed"] == 2 and res.details["forgotten"] == 1
    chunks = store.read_arrow("chunks").to_pandas()
    assert set(chunks["doc_id"]) == {"earn1", "short1"}
    assert list(chunks[chunks.doc_id == "earn1"]["unit_refs"].iloc[0]) == ["page 1"]
    assert set(store.read_arrow("embeddings", ["doc_id"]).column("doc_id").to_pylist()) == {"earn1", "short1"}
    preds = store.read_arrow("predictions").to_pandas()
    assert set(preds[preds.method == "zero_shot"]["doc_id"]) == {"earn1", "short1"}
    assert len(preds[preds.method == "tfidf_lr"]) == 1
    assert store.read_arrow("classification_skipped").num_rows == 0


def test_missing_input_table_is_not_an_error(env, spark):
    cfg, store = env
    res = _run("classify", cfg, spark, store)
    assert res.rows_in == 0 and "missing" in res.details["reason"]
