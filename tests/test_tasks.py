"""run_task: a failing stage is explained at ERROR with its traceback, recorded short, and fails the process."""
from __future__ import annotations

import logging
import runpy
from pathlib import Path

import pytest

from lakedoc import tasks
from lakedoc.config import load_config
from lakedoc.schema import PIPELINE_RUNS

ROOT = Path(__file__).resolve().parents[1]


class FakeStore:
    """Stands in for the table store: keeps what run_task records in pipeline_runs (upserts on the key,
    like the real MERGE; ``history`` keeps every row written, in order)."""

    def __init__(self):
        self.by_key: dict = {}
        self.history: list = []

    @property
    def rows(self) -> list:
        return list(self.by_key.values())

    def exists(self, table):
        assert str(table) == "pipeline_runs"
        return bool(self.by_key)

    def read_arrow(self, table, columns=None, where=None):
        import pyarrow as pa

        assert str(table) == "pipeline_runs"
        rows = [r for r in self.rows if all(r[k] == v for k, v in (where or {}).items())]
        return pa.Table.from_pylist(rows, schema=PIPELINE_RUNS.schema)

    def merge(self, table, data, **kw):
        assert str(table) == "pipeline_runs"
        for r in data.to_pylist():
            self.by_key[(r["run_id"], r["task"])] = r
            self.history.append(r)


def _inner_helper(path):
    raise ValueError(f"cannot parse {path}")


def failing_stage(ctx):
    _inner_helper("report.docx")


def working_stage(ctx):
    return tasks.TaskResult(rows_in=3, rows_out=2)


@pytest.fixture()
def boom(monkeypatch):
    real = tasks.resolve
    stages = {"boom": failing_stage, "fine": working_stage}
    monkeypatch.setattr(tasks, "resolve", lambda task: stages[task] if task in stages else real(task))


def test_failed_task_logs_the_traceback_at_error_once_and_records_the_short_error(boom, caplog):
    caplog.set_level(logging.DEBUG)
    store = FakeStore()
    run = tasks.run_task("boom", load_config("local", environ={}), run_id="r1", spark=object(), tables=store)

    assert run.status == "failed"
    assert run.error == "ValueError: cannot parse report.docx"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    rec = errors[0]
    assert rec.name == "lakedoc.tasks" and "task boom failed: ValueError: cannot parse report.docx" in rec.getMessage()
    assert rec.exc_info and rec.exc_info[0] is ValueError
    text = caplog.text
    assert "Traceback (most recent call last)" in text and "_inner_helper" in text and "failing_stage" in text
    assert text.count("Traceback (most recent call last)") == 1  # once, not again at DEBUG
    assert not [r for r in caplog.records if r.levelno < logging.ERROR and r.exc_info]

    [row] = store.rows
    assert row["status"] == "failed" and row["task"] == "boom" and row["run_id"] == "r1"
    assert row["error"] == "ValueError: cannot parse report.docx"  # short: no traceback in the table


def _run_task_script(monkeypatch, task: str) -> int:
    """Run pipelines/task.py as ``__main__`` (what a spark_python_task does) and return its exit code."""
    import lakedoc.spark
    import lakedoc.tables

    store = FakeStore()
    monkeypatch.setattr(lakedoc.spark, "get_spark", lambda cfg=None: object())
    monkeypatch.setattr(lakedoc.tables, "open_store", lambda cfg, spark: store)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr("sys.argv", ["task.py", "--task", task, "--target", "local", "--conf-dir",
                                     str(ROOT / "conf"), "--input", str(ROOT)])
    try:
        with pytest.raises(SystemExit) as info:
            runpy.run_path(str(ROOT / "pipelines" / "task.py"), run_name="__main__")
    finally:  # task_main installs a stderr handler on the root logger: put things back
        root.handlers[:] = handlers
        root.setLevel(level)
    assert store.rows and store.rows[0]["task"] == task
    return info.value.code


def test_pipelines_task_exits_non_zero_when_the_task_fails(boom, monkeypatch, caplog):
    assert _run_task_script(monkeypatch, "boom") == 1
    assert "Traceback (most recent call last)" in caplog.text and "cannot parse report.docx" in caplog.text


def test_pipelines_task_exits_zero_when_the_task_succeeds(boom, monkeypatch):
    assert _run_task_script(monkeypatch, "fine") == 0


def test_a_task_is_on_record_as_running_while_its_stage_runs(monkeypatch):
    """Issue #11 (c): the start is recorded before the stage is called; the final row replaces it."""
    store = FakeStore()
    seen = []

    def stage(ctx):
        seen.extend(store.rows)
        return tasks.TaskResult(rows_in=1, rows_out=1)

    real = tasks.resolve
    monkeypatch.setattr(tasks, "resolve", lambda task: stage if task == "probe" else real(task))
    run = tasks.run_task("probe", load_config("local", environ={}), run_id="r1", spark=object(), tables=store)
    assert run.status == "succeeded"
    [running] = seen
    assert running["status"] == "running" and running["run_id"] == "r1" and running["task"] == "probe"
    assert running["started_at"] is not None and running["ended_at"] is None and running["duration_s"] is None
    [final] = store.rows
    assert final["status"] == "succeeded" and final["ended_at"] is not None
    assert final["started_at"] == running["started_at"]


@pytest.mark.parametrize("kind", ["local", "unity"])
def test_runs_left_running_by_a_killed_process_are_marked_abandoned(spark, tmp_path, kind, boom):
    """Issue #11 (c): a row another run left ``running`` is marked ``abandoned`` by the next task run;
    rows of the current run are left alone."""
    import uuid
    from datetime import datetime, timezone

    from lakedoc.tables import LocalDeltaStore, UnityCatalogStore

    if kind == "local":
        store = LocalDeltaStore(tmp_path / "wh", spark)
    else:
        schema = f"lakedoc_runs_{uuid.uuid4().hex[:8]}"
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS spark_catalog.{schema}")
        store = UnityCatalogStore(spark, "spark_catalog", schema)
    cfg = load_config("local", environ={})
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    tasks.record_start(store, cfg, "ingest_docx", "killed-run", t0)  # its process died: no end recorded
    tasks.record_start(store, cfg, "ingest_pdf", "now", t0)  # the current run's own task, still going
    run = tasks.run_task("fine", cfg, run_id="now", spark=spark, tables=store)
    assert run.status == "succeeded"
    rows = {(r["run_id"], r["task"]): r for r in store.read_arrow("pipeline_runs").to_pylist()}
    killed = rows[("killed-run", "ingest_docx")]
    assert killed["status"] == "abandoned" and killed["ended_at"] is None
    assert killed["error"] == "no end recorded: the process was killed or lost"
    assert killed["started_at"] == t0
    assert rows[("now", "ingest_pdf")]["status"] == "running"
    assert rows[("now", "fine")]["status"] == "succeeded"
    # an abandoned row is not marked again
    assert tasks.mark_abandoned(store, "later") == 1  # only now/ingest_pdf is still running


def test_the_ingestion_tasks_of_the_job_registry_and_config_follow_the_format_table():
    """One format table (lakedoc.ingest.formats): the job YAML's ingestion tasks, the task registry and
    the configuration's family list are all derived from it (or checked against it here)."""
    import yaml

    from lakedoc import config_schema
    from lakedoc.ingest import formats

    job = yaml.safe_load((ROOT / "jobs" / "lakedoc.job.yml").read_text())["resources"]["jobs"]["lakedoc"]
    ingest = [t for t in job["tasks"] if t["task_key"].startswith("ingest_")]
    expected = [formats.ingest_task(fam) for fam in formats.INGEST_FAMILIES]
    assert [t["task_key"] for t in ingest] == expected
    for t in ingest:  # each task runs itself (--task is its own key)
        params = t["spark_python_task"]["parameters"]
        assert params[params.index("--task") + 1] == t["task_key"]
    redact = next(t for t in job["tasks"] if t["task_key"] == "redact_pii")
    assert {d["task_key"] for d in redact["depends_on"]} == set(expected)
    assert config_schema.INGEST_FAMILIES == formats.INGEST_FAMILIES
    assert {k for k in tasks.REGISTRY if k.startswith("ingest_")} == set(expected)
    assert all(tasks.resolve(k).__name__ == "run" for k in expected)
    # every family claims extensions and has its formats' extractors; every extension has one owner
    assert set(formats.FAMILIES) == set(formats.INGEST_FAMILIES)
    assert all(formats.FAMILIES[fam] for fam in formats.INGEST_FAMILIES)
    owners = [ext for exts in formats.FAMILIES.values() for ext in exts]
    assert len(owners) == len(set(owners))
    assert formats.CATCH_ALL_FAMILY == "mail_text" and formats.FAMILIES["mail_text"] == ("msg", "eml", "csv", "tsv")
    for f in formats.FORMATS:
        if f.module:
            assert (ROOT / "src" / "lakedoc" / "ingest" / "extractors" / f"{f.module}.py").is_file(), f


def test_an_ingestion_task_reads_its_family_from_its_key():
    from lakedoc.ingest import stage

    class Ctx:
        task = "ingest_nothing"

    with pytest.raises(ValueError, match="not an ingestion task"):
        stage.run(Ctx())  # type: ignore[arg-type]
