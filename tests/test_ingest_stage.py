"""The ingestion tasks through the local runner: files in a folder become rows of the Delta table."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from conftest import ROOT, shared_path

from lakedoc.runner import load_bundle, run_dag, select, substitution_context, task_specs
from lakedoc.tables import LocalDeltaStore

INGEST = "ingest_*"


def _docx(path: Path, body: str, header: str) -> None:
    import docx

    d = docx.Document()
    d.sections[0].header.paragraphs[0].text = header
    d.add_paragraph(body)
    t = d.add_table(rows=1, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text = "cell one", "cell two"
    d.save(path)


def _pdf(path: Path, pages: list[str]) -> None:
    import pymupdf

    doc = pymupdf.open()
    for text in pages:
        doc.new_page().insert_text((72, 72), text)
    doc.save(path)


def _eml(path: Path) -> None:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "ann@example.com", "bob@example.com", "Quarterly grain report"
    m.set_content("Wheat shipments rose this quarter.")
    m.add_attachment(b"Attached note about barley exports.", maintype="text", subtype="plain", filename="note.txt")
    path.write_bytes(bytes(m))


def make_inputs(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    files = {
        "docx": d / "memo.docx", "pdf": d / "report.pdf", "eml": d / "mail.eml",
        "csv": d / "table.csv", "bad": d / "broken.docx", "fake": d / "notreally.pdf",
    }
    _docx(files["docx"], "The merger was approved by the board.", "Confidential header")
    _pdf(files["pdf"], ["Crude oil prices fell on page one.", "Refinery output on page two."])
    _eml(files["eml"])
    buf = io.StringIO()
    csv.writer(buf).writerows([["name", "city"], ["Alpha", "Oslo"], ["Beta", "Lima"]])
    files["csv"].write_text(buf.getvalue())
    files["bad"].write_bytes(b"PK\x03\x04 truncated zip")
    files["fake"].write_text("this is plain text pretending to be a pdf")
    return files


def run_ingest(input_dir: Path, warehouse: Path, only: str = INGEST, sets=()):
    bundle = load_bundle(ROOT)
    ctx = substitution_context(bundle, "local", "lakedoc", run_id=f"t{time.time_ns()}", input_path=str(input_dir))
    specs = select(task_specs(bundle, "lakedoc", ctx), only)
    extra = ["--set", f"tables.warehouse={warehouse}"]
    for s in sets:
        extra += ["--set", s]
    return {o.key: o for o in run_dag(specs, extra)}


def docs(warehouse: Path):
    return LocalDeltaStore(warehouse).read_arrow("documents").to_pandas()


@pytest.mark.spark
def test_ingest_end_to_end_idempotent_and_incremental(spark, tmp_path):
    inp, wh = tmp_path / "in", tmp_path / "wh"
    files = make_inputs(inp)
    out = run_ingest(inp, wh)
    assert {o.status for o in out.values()} == {"succeeded"}, out
    df = docs(wh)
    roots = df[df.depth == 0]
    assert sorted(roots.file_name) == sorted(p.name for p in files.values())
    by_name = roots.set_index("file_name")
    assert by_name.loc["memo.docx", "status"] == "ok"
    assert "Confidential header" in by_name.loc["memo.docx", "text"]
    assert "cell one" in by_name.loc["memo.docx", "text"]
    assert by_name.loc["report.pdf", "unit_count"] == 2
    assert [u["ref"] for u in by_name.loc["report.pdf", "units"]][:2] == ["page 1", "page 2"]
    assert by_name.loc["broken.docx", "status"] == "corrupt" and by_name.loc["broken.docx", "error"]
    assert by_name.loc["notreally.pdf", "status"] == "unsupported"
    assert "Quarterly grain report" in by_name.loc["mail.eml", "text"]
    att = df[df.parent_doc_id == by_name.loc["mail.eml", "doc_id"]]
    assert list(att.file_name) == ["note.txt"] and "barley" in att.iloc[0]["text"]
    assert df.doc_id.is_unique

    # pipeline_runs recorded every task
    runs = LocalDeltaStore(wh).read_arrow("pipeline_runs").to_pandas()
    assert set(runs.task) == {"ingest_docx", "ingest_xlsx", "ingest_pptx", "ingest_pdf", "ingest_mail_text"}
    assert set(runs.status) == {"succeeded"}

    # re-run: nothing written, no new table version
    version = LocalDeltaStore(wh).version("documents")
    out = run_ingest(inp, wh)
    assert all(o.rows_out == 0 for o in out.values())
    assert LocalDeltaStore(wh).version("documents") == version

    # change one file, delete another: re-extracted and soft-deleted, nothing dropped
    _pdf(files["pdf"], ["Crude oil prices rose sharply."])
    os.utime(files["pdf"], (time.time() + 5, time.time() + 5))
    files["csv"].unlink()
    out = run_ingest(inp, wh, only="ingest_pdf,ingest_mail_text")
    df = docs(wh)
    roots = df[df.depth == 0].set_index("file_name")
    assert "rose sharply" in roots.loc["report.pdf", "text"] and not roots.loc["report.pdf", "is_deleted"]
    assert roots.loc["table.csv", "is_deleted"] and roots.loc["table.csv", "deleted_at"] is not None
    assert len(roots) == len(files)


@pytest.mark.spark
def test_rows_of_the_family_formerly_called_msg_move_to_mail_text(spark, tmp_path):
    """A warehouse written before the catch-all family was renamed (source_task ``msg``): the first run
    of ingest_mail_text moves those rows; every file keeps exactly one row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from lakedoc.schema import DOCUMENTS

    inp, wh = tmp_path / "in", tmp_path / "wh"
    make_inputs(inp)
    assert {o.status for o in run_ingest(inp, wh, only="ingest_mail_text").values()} == {"succeeded"}
    store = LocalDeltaStore(wh)
    rows = store.read_arrow("documents", where={"source_task": "mail_text"})
    n = rows.num_rows
    assert n >= 3
    legacy = rows.set_column(rows.schema.get_field_index("source_task"), "source_task",
                             pa.array(["msg"] * n, pa.string()))
    store.delete_where("documents", "source_task", ["mail_text"])
    store.merge(DOCUMENTS, legacy, scope=DOCUMENTS.scope_of("msg"))
    assert store.read_arrow("documents", where={"source_task": "mail_text"}).num_rows == 0

    out = run_ingest(inp, wh, only="ingest_mail_text")
    assert out["ingest_mail_text"].status == "succeeded", out
    df = docs(wh)
    assert set(df.source_task) == {"mail_text"} and df.doc_id.is_unique and len(df) == n
    assert not df.is_deleted.astype(bool).any()
    assert pc.sum(pc.equal(store.read_arrow("documents", ["source_task"]).column(0), "msg")).as_py() in (None, 0)


@pytest.mark.spark
def test_too_large_and_timeout_are_statuses_not_failures(spark, tmp_path):
    inp, wh = tmp_path / "in", tmp_path / "wh"
    make_inputs(inp)
    out = run_ingest(inp, wh, only="ingest_pdf,ingest_docx", sets=["ingest.max_file_mb=0.001"])
    assert {o.status for o in out.values()} == {"succeeded"}, out
    df = docs(wh)
    big = df[df.file_name == "memo.docx"].iloc[0]
    assert big.status == "too_large" and "ingest.max_file_mb" in big.error

    # a per-file time budget inside the Spark Python worker: a 2000-page PDF against 0.1 s
    slow = tmp_path / "slow"
    slow.mkdir()
    _pdf(slow / "long.pdf", [f"page {i} of a very long report" for i in range(2000)])
    out = run_ingest(slow, tmp_path / "wh2", only="ingest_pdf", sets=["ingest.timeout_s=0.1"])
    assert out["ingest_pdf"].status == "succeeded", out
    row = docs(tmp_path / "wh2").iloc[0]
    assert row.status == "timeout" and row.error, (row.status, row.error)


@pytest.mark.spark
def test_a_bad_configuration_fails_the_task_with_a_clear_error(spark, tmp_path):
    inp, wh = tmp_path / "in", tmp_path / "wh"
    make_inputs(inp)
    out = run_ingest(inp, wh, only="ingest_pdf", sets=["ingest.timeout_s=fast"])
    assert out["ingest_pdf"].status == "failed"
    assert "ingest.timeout_s" in out["ingest_pdf"].error


def test_only_patterns_and_dependency_skips():
    from lakedoc.runner import TaskSpec

    bundle = load_bundle(ROOT)
    ctx = substitution_context(bundle, "local", "lakedoc", run_id="x", input_path="/x")
    specs = task_specs(bundle, "lakedoc", ctx)
    assert [s.key for s in select(specs, "ingest_*")] == [s.key for s in specs if s.key.startswith("ingest_")]
    with pytest.raises(ValueError, match="matches no task"):
        select(specs, "nothing_like_this")

    # a failed task skips its dependants: use a tiny DAG whose entry point raises
    bad = ROOT / "pipelines" / "task.py"
    a = TaskSpec("a", [], bad, ["--task", "no_such_task"])
    b = TaskSpec("b", ["a"], bad, ["--task", "no_such_task"])
    out = {o.key: o for o in run_dag([a, b], [])}
    assert out["a"].status == "failed" and "no_such_task" in out["a"].error
    assert out["b"].status == "skipped" and "upstream failed: a" in out["b"].error


@pytest.mark.spark
def test_corpus_through_spark_matches_the_oracle(spark, tmp_path):
    """The whole shared corpus through the five ingestion tasks: one row per file, statuses and phrases."""
    import importlib.util

    corpus = shared_path("corpus")
    wh = tmp_path / "wh"
    out = run_ingest(corpus, wh)
    assert {o.status for o in out.values()} == {"succeeded"}, out
    df = docs(wh)
    expected = list(csv.DictReader(open(corpus / "EXPECTED.tsv", encoding="utf-8"), delimiter="\t",
                                   quoting=csv.QUOTE_NONE))
    roots = df[df.depth == 0].copy()
    roots["rel"] = roots.source_path.map(lambda p: str(Path(p).relative_to(corpus.resolve())))  # real paths
    # one row per input file (the oracle's own EXPECTED.tsv / MANIFEST.tsv are input files too: .tsv;
    # so is check_phrases.py, which no family lists: the catch-all ingest_mail_text reads it as text)
    assert sorted(roots.rel) == sorted([e["relative_path"] for e in expected]
                                       + ["EXPECTED.tsv", "MANIFEST.tsv", "check_phrases.py"])
    status_of = dict(zip(roots.rel, roots.status, strict=True))
    want = {"text": "ok"}
    agree = sum(status_of[e["relative_path"]] == want.get(e["expected_outcome"], e["expected_outcome"])
                for e in expected)
    assert agree / len(expected) >= 0.96, f"status agreement {agree}/{len(expected)}"

    # phrase recall with the oracle's own checker, on file text plus its attachments
    spec = importlib.util.spec_from_file_location("check_phrases", corpus / "check_phrases.py")
    cp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cp)
    texts = {}
    for rel, root_id in zip(roots.rel, roots.doc_id, strict=True):
        parts = df[df.root_doc_id == root_id].sort_values("depth")
        texts[rel] = "\n".join(t for t in parts.text if t)
    found = total = 0
    per_format: dict[str, list[int]] = {}
    for e in expected:
        phrases = cp.split_phrases(e["must_contain"])
        if not phrases:
            continue
        norm = cp.normalize(texts.get(e["relative_path"], ""))
        hits = sum(cp.contains(norm, cp.normalize(p)) for p in phrases)
        fmt = e["relative_path"].split("/")[0]
        per_format.setdefault(fmt, [0, 0])
        per_format[fmt][0] += hits
        per_format[fmt][1] += len(phrases)
        found += hits
        total += len(phrases)
    assert found / total >= 0.97, f"overall strict phrase recall {found}/{total}"
    for fmt, (h, n) in per_format.items():
        assert h / n >= 0.90, f"{fmt}: phrase recall {h}/{n}"


def _eml_with(path: Path, attachments: dict[str, bytes], when: float) -> None:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "ann@example.com", "bob@example.com", "Shipping notes"
    m.set_content("Notes on this week's shipments are attached.")
    for name, data in attachments.items():
        m.add_attachment(data, maintype="text", subtype="plain", filename=name)
    path.write_bytes(bytes(m))
    os.utime(path, (when, when))


@pytest.mark.spark
def test_attachments_a_killed_run_left_live_are_deleted_by_the_next_run(spark, tmp_path):
    """A run killed right after its MERGE into documents (before the soft delete of attachments the
    file no longer has) leaves those attachments live; the file is unchanged from then on, so the
    next run does not re-extract it, and must still delete them."""
    inp, wh = tmp_path / "in", tmp_path / "wh"
    inp.mkdir()
    mail = inp / "notes.eml"
    _eml_with(mail, {"keep.txt": b"Barley exports rose.", "drop.txt": b"Maize imports fell."}, time.time() - 60)
    assert run_ingest(inp, wh, only="ingest_mail_text")["ingest_mail_text"].status == "succeeded"

    def live_attachments() -> set[str]:
        df = docs(wh)
        return set(df[(df.depth > 0) & ~df.is_deleted.astype(bool)].file_name)

    assert live_attachments() == {"keep.txt", "drop.txt"}
    _eml_with(mail, {"keep.txt": b"Barley exports rose."}, time.time())
    env = {k: v for k, v in os.environ.items() if k != "LAKEDOC_TEST_SPARK_MODE"}
    env.update(LAKEDOC_FAULT="commit:documents:1", HF_HUB_OFFLINE="1")
    killed = subprocess.run(
        [sys.executable, "-m", "lakedoc.cli", "run", "--root", str(ROOT), "--input", str(inp), "--warehouse",
         str(wh), "--only", "ingest_mail_text"], capture_output=True, text=True, timeout=900, env=env, cwd=str(ROOT))
    assert killed.returncode == 137, killed.stderr[-4000:]
    assert live_attachments() == {"keep.txt", "drop.txt"}, "the kill came before the soft delete"

    out = run_ingest(inp, wh, only="ingest_mail_text")["ingest_mail_text"]
    assert out.status == "succeeded" and out.rows_out == 1, out  # no re-extraction: one soft delete
    assert live_attachments() == {"keep.txt"}
    df = docs(wh)
    dropped = df[df.file_name == "drop.txt"].iloc[0]
    assert dropped.is_deleted and dropped.deleted_at is not None and "Maize" in dropped.text  # kept, marked


def test_files_are_packed_into_size_aware_units_heaviest_first():
    from lakedoc.ingest.stage import PER_FILE_COST_BYTES, pack_files

    mb = 2**20
    sizes = [600 * mb, 5 * mb, 4 * mb, 3 * mb, 2 * mb, 1 * mb, 0, 0]
    units = pack_files(sizes, 3)
    assert len(units) == len(sizes) and set(units) == {0, 1, 2}
    assert units[0] == 0  # the big file is alone in the heaviest unit, which runs first
    assert units.count(0) == 1
    load = [sum(s + PER_FILE_COST_BYTES for s, u in zip(sizes, units) if u == k) for k in range(3)]
    assert load == sorted(load, reverse=True)
    assert max(load[1:]) - min(load[1:]) <= 2 * mb + PER_FILE_COST_BYTES  # the rest spread evenly
    assert pack_files([7, 7], 5) == [0, 1]  # never more units than files
    assert pack_files([], 4) == []


def test_each_work_unit_is_one_partition_of_the_extraction(spark, tmp_path):
    """The source frame has one partition per unit, holding exactly its files: files read by path in
    the workers (a local input) and files whose bytes come from a binaryFile scan (other URIs)."""
    import dataclasses

    import pandas as pd
    from pyspark.sql import functions as F

    from lakedoc.ingest.stage import _source_frame, list_input, pack_files

    sizes = [9000, 10, 20, 30, 40, 50, 60, 70, 8000, 0]
    for i, n in enumerate(sizes):
        (tmp_path / f"f{i}.bin").write_bytes(b"x" * n)
    listing = list_input(spark, str(tmp_path))
    assert listing.source is not None
    todo = listing.files.sort_values("path").reset_index(drop=True)
    expected = pd.Series(pack_files(todo["length"], 4), index=todo["path"]).to_dict()  # 10 files / 3 a unit
    empty = set(todo.loc[todo["length"] == 0, "path"])
    for shown in (listing, dataclasses.replace(listing, source=None)):
        frame = _source_frame(spark, shown, todo, max_bytes=2**30, files_per_partition=3)
        got = frame.select("path", F.spark_partition_id().alias("part")).toPandas()
        # Spark's binaryFile source does not return 0-byte files (documented for dbfs: inputs)
        want = expected if shown.source is not None else {p: u for p, u in expected.items() if p not in empty}
        assert dict(zip(got["path"], got["part"], strict=True)) == want
