"""The redact_pii task on a hand-made bronze table: output tables, incrementality, deletes, errors."""
from __future__ import annotations

import uuid

import pyarrow as pa
import pytest
from conftest import ROOT

from lakedoc.config import load_config
from lakedoc.tables import LocalDeltaStore, UnityCatalogStore
from lakedoc.tasks import run_task

UNIT = pa.struct([("kind", pa.string()), ("index", pa.int32()), ("ref", pa.string()), ("text", pa.string())])
BRONZE = pa.schema([
    ("doc_id", pa.string()), ("root_doc_id", pa.string()), ("source_task", pa.string()),
    ("source_path", pa.string()), ("file_name", pa.string()), ("format", pa.string()),
    ("content_hash", pa.string()), ("extractor_version", pa.string()), ("status", pa.string()),
    ("error", pa.string()), ("text", pa.string()), ("char_count", pa.int64()), ("units", pa.list_(UNIT)),
    ("is_deleted", pa.bool_()), ("deleted_at", pa.timestamp("us", tz="UTC")), ("run_id", pa.string()),
])

P1 = "Dear Maria Gonzalez, please call me at (212) 555-0198 about the order."
P2 = "Wire the money to IBAN DE89370400440532013000 and email finance.team@example.com today."
LONG_PARA = ("The quarterly review covered shipping volumes, grain prices and the outlook for crude oil. " * 3
             + "Contact Robert Miller at robert.miller@example.org for details.")


def bronze_row(doc_id, text, units=None, status="ok", content_hash=None, deleted=False):
    units = units if units is not None else [{"kind": "page", "index": 0, "ref": "p1", "text": text}]
    return {"doc_id": doc_id, "root_doc_id": doc_id, "source_task": "docx", "source_path": f"/in/{doc_id}.docx",
            "file_name": f"{doc_id}.docx", "format": "docx", "content_hash": content_hash or f"h-{doc_id}",
            "extractor_version": "1", "status": status, "error": None, "text": text, "char_count": len(text),
            "units": units, "is_deleted": deleted, "deleted_at": None, "run_id": "r0"}


def write_bronze(store, rows):
    store.merge("documents", pa.Table.from_pylist(rows, schema=BRONZE), keys=["doc_id"],
                scope={"source_task": "docx"}, partition_by=["source_task"])


@pytest.fixture()
def env(tmp_path, spark):
    cfg = load_config("local", conf_dir=ROOT / "conf", environ={},
                      sets=[f"tables.warehouse={tmp_path / 'wh'}", "pii.chunk_chars=1000",
                            "pii.max_doc_chars=200000"])
    return cfg, LocalDeltaStore(cfg["tables"]["warehouse"], spark), spark


def test_redact_incremental_and_deletes(env):
    cfg, store, spark = env
    long_text = "\n\n".join([LONG_PARA] * 40)  # ~14k characters: 15+ chunks of <= 1000
    rows = [
        bronze_row("a", P1 + "\n\n" + P2, units=[{"kind": "paragraph", "index": 0, "ref": "1", "text": P1},
                                                 {"kind": "paragraph", "index": 1, "ref": "2", "text": P2},
                                                 {"kind": "comment", "index": 2, "ref": "c1",
                                                  "text": "Reviewed by Maria Gonzalez"}]),
        bronze_row("b", "Nothing personal in this sentence about grain exports."),
        bronze_row("c", "corrupt", status="corrupt"),
        bronze_row("d", long_text),
        bronze_row("e", "x" * 250_000),  # over pii.max_doc_chars -> redaction_error
    ]
    write_bronze(store, rows)
    run = run_task("redact_pii", cfg, run_id="run-1", spark=spark, tables=store)
    assert run.status == "succeeded", run.error
    red = {r["doc_id"]: r for r in store.read_arrow("documents_redacted").to_pylist()}
    assert set(red) == {"a", "b", "d", "e"}  # not-ok bronze rows never reach silver
    a = red["a"]
    assert a["status"] == "ok" and a["config_hash"]
    for value in ("Maria Gonzalez", "(212) 555-0198", "DE89370400440532013000", "finance.team@example.com"):
        assert value not in a["redacted_text"]
        assert all(value not in (u["text"] or "") for u in a["redacted_units"])
    assert "<IBAN_CODE>" in a["redacted_text"] and "<EMAIL_ADDRESS>" in a["redacted_text"]
    assert [u["ref"] for u in a["redacted_units"]] == ["1", "2", "c1"]
    assert "Maria Gonzalez" not in a["redacted_units"][2]["text"]  # a unit that is not part of the text
    assert dict(a["entity_counts"])["IBAN_CODE"] == 1
    # the long document: redacted through every chunk
    d = red["d"]
    assert d["status"] == "ok" and "robert.miller@example.org" not in d["redacted_text"]
    assert d["redacted_text"].count("<EMAIL_ADDRESS>") == 40
    assert len(d["redacted_text"]) < len(long_text)
    # the failure: no text at all, an error that does not quote the document
    e = red["e"]
    assert e["status"] == "redaction_error" and e["redacted_text"] is None and e["redacted_units"] is None
    assert "max_doc_chars" in e["error"]
    # findings: positions, never values
    f = store.read_arrow("pii_findings").to_pylist()
    assert set(store.read_arrow("pii_findings").column_names) >= {"doc_id", "entity_type", "start", "end",
                                                                  "score", "recognizer"}
    fa = [x for x in f if x["doc_id"] == "a"]
    text_a = rows[0]["text"]
    assert {text_a[x["start"]:x["end"]] for x in fa if x["entity_type"] == "IBAN_CODE"} == {"DE89370400440532013000"}
    assert sum(1 for x in f if x["doc_id"] == "d" and x["entity_type"] == "EMAIL_ADDRESS") == 40

    # re-run on unchanged input: nothing written, no new table version
    v_red, v_f = store.version("documents_redacted"), store.version("pii_findings")
    run2 = run_task("redact_pii", cfg, run_id="run-2", spark=spark, tables=store)
    assert run2.status == "succeeded" and run2.result.details["documents_todo"] == 0
    assert (store.version("documents_redacted"), store.version("pii_findings")) == (v_red, v_f)

    # one document changes, one is soft-deleted: only those are touched
    write_bronze(store, [bronze_row("b", "Now it names Helen Carter, phone 212-555-0143.", content_hash="h-b2"),
                         bronze_row("a", rows[0]["text"], units=rows[0]["units"], deleted=True)])
    run3 = run_task("redact_pii", cfg, run_id="run-3", spark=spark, tables=store)
    assert run3.status == "succeeded", run3.error
    assert run3.result.details["documents_todo"] == 1 and run3.result.details["removed"] == 1
    red = {r["doc_id"]: r for r in store.read_arrow("documents_redacted").to_pylist()}
    assert set(red) == {"b", "d", "e"}
    assert red["b"]["run_id"] == "run-3" and red["d"]["run_id"] == "run-1"
    assert "Helen Carter" not in red["b"]["redacted_text"]
    f = store.read_arrow("pii_findings").to_pylist()
    assert not [x for x in f if x["doc_id"] == "a"]
    assert [x for x in f if x["doc_id"] == "b"]

    # a configuration change re-redacts everything live
    cfg2 = cfg.with_overrides({"pii": {"operators": {"DEFAULT": "replace", "EMAIL_ADDRESS": "mask"}}})
    run4 = run_task("redact_pii", cfg2, run_id="run-4", spark=spark, tables=store)
    assert run4.result.details["documents_todo"] == 3
    d = {r["doc_id"]: r for r in store.read_arrow("documents_redacted").to_pylist()}["d"]
    assert "<EMAIL_ADDRESS>" not in d["redacted_text"] and "*" * 25 in d["redacted_text"]


def test_pipeline_runs_details_carry_no_text(env):
    cfg, store, spark = env
    write_bronze(store, [bronze_row("a", P1)])
    run_task("redact_pii", cfg, run_id="run-x", spark=spark, tables=store)
    runs = store.read_arrow("pipeline_runs").to_pylist()
    details = " ".join(str(r["details"]) + str(r["error"]) for r in runs)
    assert "Maria" not in details and "555-0198" not in details
    assert '"PERSON": 1' in details


@pytest.mark.spark
def test_redact_on_unity_catalog_backend(tmp_path, spark):
    """The unity_catalog backend (Delta-on-Spark here): each round is materialised in a staging table
    and written with Spark MERGEs (no document text through the driver); same rows as delta-rs."""
    cfg = load_config("local", conf_dir=ROOT / "conf", environ={},
                      sets=[f"tables.warehouse={tmp_path / 'wh'}", "pii.chunk_chars=1000",
                            "pii.max_doc_chars=5000", "pii.docs_per_round=2"])
    schema = f"pii_{uuid.uuid4().hex[:10]}"
    store = UnityCatalogStore(spark, "spark_catalog", schema)
    rows = [bronze_row("a", P1), bronze_row("b", "Nothing personal in this sentence about grain exports."),
            bronze_row("c", "corrupt", status="corrupt"), bronze_row("e", "x" * 6000)]
    write_bronze(store, rows)
    run = run_task("redact_pii", cfg, run_id="run-1", spark=spark, tables=store)
    assert run.status == "succeeded", run.error
    det = run.result.details
    assert (det["documents_todo"], det["documents_redacted"], det["redaction_errors"]) == (3, 2, 1)
    red = {r["doc_id"]: r for r in store.read_arrow("documents_redacted").to_pylist()}
    assert set(red) == {"a", "b", "e"}
    assert red["a"]["status"] == "ok" and "Maria Gonzalez" not in red["a"]["redacted_text"]
    assert "(212) 555-0198" not in red["a"]["redacted_text"] and red["a"]["finding_count"] >= 2
    assert red["b"]["finding_count"] == 0 and red["b"]["redacted_text"] == rows[1]["text"]
    assert red["e"]["status"] == "redaction_error" and red["e"]["redacted_text"] is None
    assert all(r["run_id"] == "run-1" and r["config_hash"] == det["config_hash"] for r in red.values())
    ftab = store.read_arrow("pii_findings")
    assert ftab.column_names == ["doc_id", "entity_type", "start", "end", "score", "recognizer",
                                 "config_hash", "run_id"]
    assert [ftab.schema.field(c).type for c in ("start", "end", "score")] == [pa.int32(), pa.int32(), pa.float64()]
    f = ftab.to_pylist()
    assert {x["doc_id"] for x in f} == {"a"} and len(f) == red["a"]["finding_count"] == det["findings"]
    assert {P1[x["start"]:x["end"]] for x in f if x["entity_type"] == "PERSON"} == {"Maria Gonzalez"}
    assert sum(det["entity_counts"].values()) == len(f) and det["entity_counts"]["PERSON"] == 1
    assert all(x["config_hash"] == det["config_hash"] and x["run_id"] == "run-1" for x in f)
    # the staging tables of the rounds are gone
    assert not [t for t in spark.catalog.listTables(f"spark_catalog.{schema}") if "staging" in t.name]

    # unchanged input: nothing written, no new table version
    versions = (store.version("documents_redacted"), store.version("pii_findings"))
    run2 = run_task("redact_pii", cfg, run_id="run-2", spark=spark, tables=store)
    assert run2.status == "succeeded" and run2.result.details["documents_todo"] == 0
    assert (store.version("documents_redacted"), store.version("pii_findings")) == versions

    # a loses its PII (its findings go), b gains some (its findings come)
    write_bronze(store, [bronze_row("a", "Only grain prices now.", content_hash="h-a2"),
                         bronze_row("b", "Now it names Helen Carter, phone 212-555-0143.", content_hash="h-b2")])
    run3 = run_task("redact_pii", cfg, run_id="run-3", spark=spark, tables=store)
    assert run3.status == "succeeded", run3.error
    assert run3.result.details["documents_todo"] == 2
    f = store.read_arrow("pii_findings").to_pylist()
    assert {x["doc_id"] for x in f} == {"b"} and all(x["run_id"] == "run-3" for x in f)
    red = {r["doc_id"]: r for r in store.read_arrow("documents_redacted").to_pylist()}
    assert "Helen Carter" not in red["b"]["redacted_text"] and red["e"]["run_id"] == "run-1"
    spark.sql(f"DROP SCHEMA IF EXISTS spark_catalog.{schema} CASCADE")


def test_no_ok_bronze_document_writes_nothing_and_clears_silver(env):
    """Issue #11 (b): every bronze document corrupt -> the task succeeds; silver rows and findings of
    documents no longer ok go."""
    cfg, store, spark = env
    write_bronze(store, [bronze_row("a", "corrupt", status="corrupt"), bronze_row("b", "x", status="corrupt")])
    run = run_task("redact_pii", cfg, run_id="run-1", spark=spark, tables=store)
    assert run.status == "succeeded", run.error
    assert run.result.rows_out == 0 and run.result.details["documents_live"] == 0
    assert not store.exists("documents_redacted") and not store.exists("pii_findings")

    write_bronze(store, [bronze_row("a", P1), bronze_row("b", "x", status="corrupt")])
    run = run_task("redact_pii", cfg, run_id="run-2", spark=spark, tables=store)
    assert run.status == "succeeded", run.error
    assert store.read_arrow("documents_redacted", ["doc_id"]).column("doc_id").to_pylist() == ["a"]
    assert store.read_arrow("pii_findings").num_rows > 0

    write_bronze(store, [bronze_row("a", "corrupt", status="corrupt"), bronze_row("b", "x", status="corrupt")])
    run = run_task("redact_pii", cfg, run_id="run-3", spark=spark, tables=store)
    assert run.status == "succeeded", run.error
    assert run.result.details["removed"] == 1 and run.result.details["documents_todo"] == 0
    assert store.read_arrow("documents_redacted").num_rows == 0
    assert store.read_arrow("pii_findings").num_rows == 0


def test_file_and_folder_names_redacted(env):
    """Issue #11 item 7: a person's name or an e-mail address in a file or folder name never reaches
    silver (``file_name``, ``source_path``); the rest of the path is intact; bronze keeps the original;
    a name without PII is byte-identical; name findings are counted, not written to pii_findings."""
    cfg, store, spark = env
    folder, name = "/in/HR/Maria Gonzalez", "Offer_letter Jane-Doe (jane.doe@example.com).docx"
    clean_path, clean_name = "/in/Finance/2024/Q3_grain-exports.report.xlsx", "Q3_grain-exports.report.xlsx"
    a = {**bronze_row("a", "Nothing personal in this sentence about grain exports."),
         "source_path": f"{folder}/{name}", "file_name": name}
    b = {**bronze_row("b", "Another sentence about shipping volumes."),
         "source_path": clean_path, "file_name": clean_name}
    write_bronze(store, [a, b])
    run = run_task("redact_pii", cfg, run_id="run-1", spark=spark, tables=store)
    assert run.status == "succeeded", run.error
    red = {r["doc_id"]: r for r in store.read_arrow("documents_redacted").to_pylist()}
    ra = red["a"]
    assert ra["status"] == "ok"
    for col in ("file_name", "source_path"):
        for value in ("Maria", "Gonzalez", "Jane", "Doe", "jane.doe", "example.com", "@"):
            assert value not in ra[col], (col, ra[col])
    assert ra["file_name"] == "Offer_letter <PERSON> (<EMAIL_ADDRESS>).docx"
    assert ra["source_path"] == "/in/HR/<PERSON>/" + ra["file_name"]
    counts = dict(ra["entity_counts"])
    assert counts["PERSON"] == 3 and counts["EMAIL_ADDRESS"] == 2  # names counted...
    assert ra["finding_count"] == 0  # ...but not findings of the text
    assert not store.exists("pii_findings") or store.read_arrow("pii_findings").num_rows == 0
    # no PII in the name: unchanged
    assert (red["b"]["file_name"], red["b"]["source_path"]) == (clean_name, clean_path)
    assert dict(red["b"]["entity_counts"]) == {}
    # bronze keeps the original
    bronze = {r["doc_id"]: r for r in store.read_arrow("documents", ["doc_id", "source_path"]).to_pylist()}
    assert bronze["a"]["source_path"] == f"{folder}/{name}"
    # unchanged input: nothing written
    version = store.version("documents_redacted")
    run2 = run_task("redact_pii", cfg, run_id="run-2", spark=spark, tables=store)
    assert run2.status == "succeeded" and run2.result.details["documents_todo"] == 0
    assert store.version("documents_redacted") == version


def test_name_redaction_failure_withholds_names():
    """A name whose analysis fails is withheld (a placeholder, never the original, never null)."""
    from lakedoc.pii.stage import _NAME_WITHHELD, _redact_names

    class Failing:
        def analyze_many(self, texts):
            return [RuntimeError("boom") for _ in texts]

    out = _redact_names(Failing(), ["/in/Jane Doe/x.docx", None, ""])
    assert out[0][0] == _NAME_WITHHELD and isinstance(out[0][1], RuntimeError)
    assert out[1] == (None, []) and out[2] == ("", [])


class _Killed(RuntimeError):
    """Stands in for a process killed at a commit (the Delta tables are left exactly as by kill -9)."""


def _dies_at(monkeypatch, store, table: str) -> None:
    """Every write to ``table`` fails before it commits (the writes before it have committed)."""
    from lakedoc.schema import table_name

    cls = type(store)
    real_merge, real_delete = cls.merge, cls.delete_where

    def merge(self, t, *a, **kw):
        if table_name(t) == table:
            raise _Killed(f"killed before the commit to {table}")
        return real_merge(self, t, *a, **kw)

    def delete_where(self, t, *a, **kw):
        if table_name(t) == table:
            raise _Killed(f"killed before the commit to {table}")
        return real_delete(self, t, *a, **kw)

    monkeypatch.setattr(cls, "merge", merge)
    monkeypatch.setattr(cls, "delete_where", delete_where)


def _consistent(store) -> tuple[dict, dict]:
    """(silver rows by doc_id, findings per doc_id), asserting each finding sits behind a silver row
    with its configuration hash and each silver row counts its findings."""
    silver = {r["doc_id"]: r for r in store.read_arrow("documents_redacted").to_pylist()}
    per_doc: dict[str, list] = {}
    for f in store.read_arrow("pii_findings").to_pylist():
        assert f["doc_id"] in silver, f"finding of a document without a silver row: {f}"
        assert f["config_hash"] == silver[f["doc_id"]]["config_hash"], f"stale finding: {f}"
        per_doc.setdefault(f["doc_id"], []).append(f)
    assert {d: len(v) for d, v in per_doc.items()} == {d: r["finding_count"] for d, r in silver.items()
                                                       if r["finding_count"]}
    return silver, per_doc


def test_a_run_killed_between_the_two_commits_is_repaired_by_the_next_run(env, monkeypatch):
    """Issue #11 item 10: pii_findings is committed first and documents_redacted last, so a run that dies
    between the two commits leaves silver stale and the next run redoes those documents (before, silver
    was first: the findings stayed those of the old configuration for good, "0 to redact")."""
    cfg, store, spark = env
    write_bronze(store, [bronze_row("a", P1), bronze_row("b", P2), bronze_row("c", "Grain exports rose.")])
    first = run_task("redact_pii", cfg, run_id="run-1", spark=spark, tables=store)
    assert first.status == "succeeded", first.error
    cfg2 = cfg.with_overrides({"pii": {"operators": {"DEFAULT": "replace", "EMAIL_ADDRESS": "mask"}}})

    with monkeypatch.context() as m:
        _dies_at(m, store, "documents_redacted")
        killed = run_task("redact_pii", cfg2, run_id="run-2", spark=spark, tables=store)
    assert killed.status == "failed" and "killed before the commit to documents_redacted" in killed.error
    [new_hash] = {r["config_hash"] for r in store.read_arrow("pii_findings").to_pylist()}  # committed first
    assert new_hash != first.result.details["config_hash"]
    assert {r["config_hash"] for r in store.read_arrow("documents_redacted").to_pylist()} == {
        first.result.details["config_hash"]}, "silver is still the old configuration's"

    rerun = run_task("redact_pii", cfg2, run_id="run-3", spark=spark, tables=store)
    assert rerun.status == "succeeded", rerun.error
    assert rerun.result.details["documents_todo"] == 3, "every document the killed run left is redone"
    silver, findings = _consistent(store)
    assert {r["config_hash"] for r in silver.values()} == {new_hash}
    assert "<EMAIL_ADDRESS>" not in silver["b"]["redacted_text"]  # the new operator (mask) was applied
    assert set(findings) == {"a", "b"}
    again = run_task("redact_pii", cfg2, run_id="run-4", spark=spark, tables=store)
    assert again.result.details["documents_todo"] == 0


def test_findings_of_another_configuration_behind_a_current_silver_row_are_redone(env):
    """A warehouse damaged by the old commit order (silver current, findings of the old configuration)
    is repaired: the plan redoes the document."""
    from lakedoc.pii.stage import plan
    from lakedoc.tasks import TaskContext

    cfg, store, spark = env
    write_bronze(store, [bronze_row("a", P1), bronze_row("b", "Grain exports rose.")])
    run = run_task("redact_pii", cfg, run_id="run-1", spark=spark, tables=store)
    cfg_hash = run.result.details["config_hash"]
    old = [{**f, "config_hash": "an-old-config"} for f in store.read_arrow("pii_findings").to_pylist()]
    store.merge("pii_findings", pa.Table.from_pylist(old), keys=["doc_id", "entity_type", "start", "end"])
    ctx = TaskContext(task="redact_pii", run_id="probe", cfg=cfg, spark=spark, tables=store)
    todo, gone, _ = plan(ctx, cfg_hash)
    assert list(todo["doc_id"]) == ["a"] and gone == []
    rerun = run_task("redact_pii", cfg, run_id="run-2", spark=spark, tables=store)
    assert rerun.result.details["documents_todo"] == 1
    _consistent(store)


def test_findings_left_without_a_silver_row_are_deleted_with_their_document(env, monkeypatch):
    """A new document whose run died after its findings commit, then deleted in bronze: its findings go."""
    cfg, store, spark = env
    write_bronze(store, [bronze_row("a", P1), bronze_row("b", "Grain exports rose.")])
    with monkeypatch.context() as m:
        _dies_at(m, store, "documents_redacted")
        assert run_task("redact_pii", cfg, run_id="run-1", spark=spark, tables=store).status == "failed"
    assert {f["doc_id"] for f in store.read_arrow("pii_findings").to_pylist()} == {"a"}
    write_bronze(store, [bronze_row("a", P1, deleted=True)])
    rerun = run_task("redact_pii", cfg, run_id="run-2", spark=spark, tables=store)
    assert rerun.status == "succeeded", rerun.error
    silver, findings = _consistent(store)
    assert set(silver) == {"b"} and findings == {}
