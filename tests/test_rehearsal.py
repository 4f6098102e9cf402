"""The production dress rehearsal: the whole job DAG as Databricks runs it, twice.

``lakedoc run --target rehearsal`` executes the bundle's DAG with the ``unity_catalog`` backend (Spark
SQL MERGE INTO catalog.schema.table) on local Delta-on-Spark, through a local Spark Connect session,
in a child process (a process speaks either classic Spark or Spark Connect). The tables are then read
as Delta tables — through their transaction log with delta-rs, never as plain Parquet — and a second
run over the same input must succeed and write nothing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.spark

TABLES = ["documents", "documents_redacted", "pii_findings", "chunks", "embeddings", "predictions",
          "evaluations", "index_state", "pipeline_runs"]


def _run(samples: Path, warehouse: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LAKEDOC_TEST_SPARK_MODE"}
    return subprocess.run(
        [sys.executable, "-m", "lakedoc.cli", "run", "--target", "rehearsal", "--root", str(ROOT),
         "--input", str(samples), "--warehouse", str(warehouse), "--config", str(ROOT / "conf" / "samples.yml")],
        capture_output=True, text=True, timeout=1800, env=env, cwd=str(ROOT))


def _versions(schema_dir: Path) -> dict[str, int]:
    from deltalake import DeltaTable

    return {t: DeltaTable(str(schema_dir / t)).version() for t in TABLES}


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory, sample_dir):
    wh = tmp_path_factory.mktemp("rehearsal") / "warehouse"
    first = _run(sample_dir, wh)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-6000:]
    return sample_dir, wh, first


def test_every_task_succeeds_through_spark_connect(rehearsal):
    _, _, first = rehearsal
    summary = first.stdout
    for task in ("ingest_docx", "ingest_xlsx", "ingest_pptx", "ingest_pdf", "ingest_mail_text", "redact_pii",
                 "classify", "baselines", "embed", "index"):
        line = next((ln for ln in summary.splitlines() if ln.startswith(task + " ")), "")
        assert " succeeded " in line, f"{task}: {line!r}\n{summary}"
    assert "Spark Connect server" in first.stderr, "the rehearsal must run through Spark Connect"


def test_tables_are_delta_tables_under_the_warehouse(rehearsal):
    from deltalake import DeltaTable

    samples, wh, _ = rehearsal
    schema_dir = wh / "lakedoc.db"
    for t in TABLES:
        assert (schema_dir / t / "_delta_log").is_dir(), f"{t} is not a Delta table under {schema_dir}"
    docs = DeltaTable(str(schema_dir / "documents")).to_pyarrow_table().to_pylist()
    manifest = json.loads((samples / "samples_manifest.json").read_text())
    top = {Path(r["source_path"]).resolve() for r in docs if r["root_doc_id"] in (None, r["doc_id"])}
    expected = {p.resolve() for p in samples.rglob("*") if p.is_file()}  # the manifest too: it is a file
    assert {(samples / e["path"]).resolve() for e in manifest["files"]} < expected
    assert top == expected, "every file under the input folder has exactly one bronze row"
    assert len({r["doc_id"] for r in docs}) == len(docs)
    silver = DeltaTable(str(schema_dir / "documents_redacted")).to_pyarrow_table().to_pylist()
    ok = {r["doc_id"] for r in docs if r["status"] == "ok" and not r["is_deleted"]}
    assert {r["doc_id"] for r in silver} == ok
    planted = {p["value"] for e in manifest["files"] for p in e.get("pii", []) if p["type"] == "EMAIL_ADDRESS"}
    text = " ".join(r["redacted_text"] or "" for r in silver)
    assert planted and not [v for v in planted if v in text], "planted e-mail addresses are redacted in silver"
    runs = DeltaTable(str(schema_dir / "pipeline_runs")).to_pyarrow_table().to_pylist()
    assert {r["task"] for r in runs if r["status"] == "succeeded"} >= {"redact_pii", "classify", "index"}
    methods = {r["method"] for r in DeltaTable(str(schema_dir / "predictions")).to_pyarrow_table().to_pylist()}
    assert {"zero_shot", "tfidf_lr", "embedding_lr"} <= methods


def test_a_second_run_succeeds_and_writes_nothing(rehearsal):
    samples, wh, _ = rehearsal
    before = _versions(wh / "lakedoc.db")
    second = _run(samples, wh)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-6000:]
    after = _versions(wh / "lakedoc.db")
    changed = {t: (before[t], after[t]) for t in TABLES if before[t] != after[t] and t != "pipeline_runs"}
    assert not changed, f"an unchanged input made new table versions: {changed}"
