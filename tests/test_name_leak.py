"""Issue #11 item 7: a person's name or an e-mail address in a file or folder name never reaches the
chunks, the vector index or ``lakedoc search``. Bronze keeps the original names; everything the index
shows comes from silver (``documents_redacted``), never from bronze — not even as a fallback."""
from __future__ import annotations

import json

import pytest
from conftest import ROOT, all_strings
from index_fixtures import Corpus

FOLDER = "HR/Maria Gonzalez"
NAME = "Offer_letter Jane-Doe (jane.doe@example.com).docx"
RAW = ["Maria", "Gonzalez", "Jane", "Doe", "jane.doe", "example.com", "@"]
BODY = ["Grain exports rose sharply this quarter as wheat shipments to Asian ports doubled.",
        "Freight rates for bulk carriers eased while maize and soybean volumes held steady."]


def _leaks(values: list[str]) -> list[tuple[str, str]]:
    return [(raw, v) for v in values for raw in RAW if raw in v]


@pytest.mark.spark
def test_the_real_pipeline_puts_no_raw_file_or_folder_name_in_chunks_index_or_search(tmp_path, spark):
    """ingest_docx -> redact_pii -> classify -> embed -> index, the real tasks, on one docx whose file and
    folder names carry two person names and an e-mail address (its text carries none)."""
    import docx

    from lakedoc.config import load_config
    from lakedoc.index.backends import open_backend
    from lakedoc.index.query import format_hits, search
    from lakedoc.tables import LocalDeltaStore
    from lakedoc.tasks import run_task

    inp, wh = tmp_path / "in", tmp_path / "wh"
    (inp / FOLDER).mkdir(parents=True)
    d = docx.Document()
    for p in BODY:
        d.add_paragraph(p)
    d.save(str(inp / FOLDER / NAME))

    cfg = load_config("local", conf_dir=ROOT / "conf", sets=[f"tables.warehouse={wh}"], environ={})
    store = LocalDeltaStore(wh, spark)
    for task in ("ingest_docx", "redact_pii", "classify", "embed", "index"):
        run = run_task(task, cfg, run_id="leak-run", input_path=str(inp), spark=spark, tables=store)
        assert run.status == "succeeded", f"{task}: {run.error}"

    # the raw names are in bronze (the test means something) and only there
    bronze = store.read_arrow("documents", ["doc_id", "source_path", "file_name", "status"]).to_pylist()
    assert len(bronze) == 1 and bronze[0]["status"] == "ok"
    assert bronze[0]["file_name"] == NAME and f"{FOLDER}/{NAME}" in bronze[0]["source_path"]
    silver = store.read_arrow("documents_redacted", ["source_path", "file_name"]).to_pylist()
    assert silver and not _leaks(all_strings(silver)), silver

    chunks = store.read_arrow("chunks").to_pylist()
    assert chunks, "no chunk made: nothing was checked"
    assert not _leaks(all_strings(chunks))

    backend = open_backend(cfg)
    try:
        rows = backend.table.to_arrow().drop_columns(["vector"]).to_pylist()
    finally:
        backend.close()
    assert len(rows) == len(chunks)
    assert not _leaks(all_strings(rows)), [(r["file_name"], r["source_path"]) for r in rows]
    assert all(r["file_name"] == silver[0]["file_name"] and r["source_path"] == silver[0]["source_path"]
               for r in rows)
    assert all(r["file_name"].startswith("Offer_letter <") for r in rows)  # the redacted name, not null

    for mode in ("vector", "hybrid"):
        hits = search("grain exports wheat shipments", cfg=cfg, k=5, mode=mode)
        assert hits, mode
        out = json.dumps([h.as_dict() for h in hits], default=str) + "\n" + format_hits(hits, "grain exports")
        assert not _leaks([out]), out
        assert silver[0]["file_name"] in format_hits(hits)


@pytest.mark.spark
def test_the_index_never_falls_back_to_bronze_names(tmp_path, spark):
    """A document without a silver row is not indexed; a name silver holds as null stays null; a
    redacted name is indexed as silver has it. Bronze's names are never read."""
    import pyarrow as pa

    from lakedoc.config import load_config
    from lakedoc.index.backends import open_backend
    from lakedoc.schema import DOCUMENTS, DOCUMENTS_REDACTED
    from lakedoc.tables import LocalDeltaStore
    from lakedoc.tasks import run_task

    cfg = load_config("local", sets=[f"tables.warehouse={tmp_path / 'wh'}"], environ={})
    store = LocalDeltaStore(tmp_path / "wh", spark)
    corpus = Corpus(n_docs=4, chunks_per_doc=2)
    raw = {d["doc_id"]: (f"/in/{FOLDER}/{i}_{NAME}", f"{i}_{NAME}") for i, d in enumerate(corpus.docs)}
    for d in corpus.docs:
        d["source_path"], d["file_name"] = raw[d["doc_id"]]
    corpus.write(store, cfg)  # bronze and silver both with the raw names: silver is fixed below
    silver = store.read_arrow(DOCUMENTS_REDACTED).to_pylist()
    for r in silver:
        r["source_path"] = f"/in/HR/<PERSON>/{r['doc_id']}_redacted.docx"
        r["file_name"] = f"{r['doc_id']}_redacted.docx"
    silver[1]["file_name"] = None  # a null name in silver
    silver[1]["source_path"] = None
    store.merge(DOCUMENTS_REDACTED, pa.Table.from_pylist(silver, schema=DOCUMENTS_REDACTED.schema))
    store.delete_where(DOCUMENTS_REDACTED, "doc_id", ["doc002"])  # no silver row at all
    assert len(store.read_arrow(DOCUMENTS).to_pylist()) == 4

    run = run_task("index", cfg, spark=spark, tables=store)
    assert run.status == "succeeded", run.error
    backend = open_backend(cfg)
    try:
        rows = backend.table.to_arrow().drop_columns(["vector"]).to_pylist()
    finally:
        backend.close()
    by_doc: dict[str, list[dict]] = {}
    for r in rows:
        by_doc.setdefault(r["doc_id"], []).append(r)
    assert sorted(by_doc) == ["doc000", "doc001", "doc003"], "the document without a silver row is not indexed"
    assert not _leaks(all_strings(rows)), rows
    assert all(r["file_name"] is None and r["source_path"] is None for r in by_doc["doc001"])
    assert all(r["file_name"] == "doc000_redacted.docx" for r in by_doc["doc000"])
    assert all(r["format"] == "docx" for r in by_doc["doc000"])
