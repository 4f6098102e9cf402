"""run_task: a failing stage is explained at ERROR with its traceback, recorded short, and fails the process."""
from __future__ import annotations

import json
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


# --- the run itself on record: `_run` rows and `skipped` rows (issue #11: a killed run must not look
# like a shorter all-succeeded run) ---------------------------------------------------------------------

ONLY = "ingest_docx,ingest_pdf,redact_pii,classify"


@pytest.mark.parametrize("docx_fails", [True, False])
def test_lakedoc_run_records_the_run_before_its_first_task_and_after_its_last(
        monkeypatch, tmp_path, capsys, no_leftover_log_handlers, docx_fails):
    """``lakedoc run`` (the real runner, entry point and run_task; stages and store stand-ins): a ``_run``
    row ``running`` before any task row, a ``skipped`` row for each task skipped, and ``_run``
    ``failed``/``succeeded`` written last. The tasks ran under the run's lock without taking it."""
    import lakedoc.spark
    import lakedoc.tables
    from lakedoc.cli import main
    from lakedoc.runlock import lock_path, read_lock

    store = FakeStore()
    monkeypatch.setattr(lakedoc.spark, "get_spark", lambda cfg=None: object())
    monkeypatch.setattr(lakedoc.tables, "open_store", lambda cfg, spark=None: store)
    wh = tmp_path / "wh"
    holders = []

    def stage(ctx):
        holders.append(read_lock(lock_path(wh)))
        return working_stage(ctx)

    stages = {"ingest_docx": failing_stage if docx_fails else stage, "ingest_pdf": stage, "redact_pii": stage,
              "classify": stage}
    monkeypatch.setattr(tasks, "resolve", lambda task: stages[task])
    (tmp_path / "in").mkdir()
    rc = main(["run", "--root", str(ROOT), "--input", str(tmp_path / "in"), "--warehouse", str(wh),
               "--only", ONLY, "--parallel", "1"])
    out = capsys.readouterr()
    assert rc == (1 if docx_fails else 0), out.err[-2000:]
    m = [line for line in out.err.splitlines() if line.startswith("lakedoc run ")]
    run_id = m[0].split()[2].rstrip(":")

    hist = store.history
    assert all(r["run_id"] == run_id for r in hist)
    first, last = hist[0], hist[-1]
    assert (first["task"], first["status"], first["ended_at"]) == (tasks.RUN_TASK, "running", None)
    assert json.loads(first["details"])["tasks"] == ONLY.split(",")
    assert last["task"] == tasks.RUN_TASK and last["ended_at"] is not None
    assert last["started_at"] == first["started_at"] and last["duration_s"] >= 0
    assert [r["task"] for r in hist].count(tasks.RUN_TASK) == 2, "written once before, once after"
    rows = {r["task"]: r for r in store.rows}
    if docx_fails:
        assert {t: r["status"] for t, r in rows.items()} == {
            "_run": "failed", "ingest_docx": "failed", "ingest_pdf": "succeeded", "redact_pii": "skipped",
            "classify": "skipped"}
        assert rows["redact_pii"]["error"] == "upstream failed: ingest_docx"
        assert rows["classify"]["error"] == "upstream failed: redact_pii"
        assert rows["redact_pii"]["started_at"] == rows["redact_pii"]["ended_at"]
        assert rows["redact_pii"]["duration_s"] == 0
        assert last["error"] == "failed: ingest_docx; skipped: classify, redact_pii"
        assert json.loads(last["details"])["tasks"] == {
            "failed": ["ingest_docx"], "skipped": ["classify", "redact_pii"], "succeeded": ["ingest_pdf"]}
    else:
        assert {t: r["status"] for t, r in rows.items()} == {t: "succeeded" for t in ["_run", *ONLY.split(",")]}
        assert last["error"] is None
    # every task ran under the run's lock (pipelines/task.py does not take it: no refusal of itself)
    assert holders and all(h is not None and h["run_id"] == run_id and h["command"] == "lakedoc run"
                           for h in holders)
    assert not lock_path(wh).exists()


def test_the_run_is_recorded_failed_when_the_runner_itself_stops(monkeypatch):
    """Ctrl-C (or any error) inside the runner: ``_run`` is written ``failed`` and the exception goes on."""
    from lakedoc import runner

    store = FakeStore()

    def interrupted(*a, **k):
        raise KeyboardInterrupt()

    monkeypatch.setattr(runner, "run_dag", interrupted)
    spec = runner.TaskSpec("ingest_pdf", [], ROOT / "pipelines" / "task.py", [])
    with pytest.raises(KeyboardInterrupt):
        runner.run_recorded([spec], [], load_config("local", environ={}), "r9", job_key="lakedoc", tables=store)
    assert [(r["task"], r["status"]) for r in store.history] == [("_run", "running"), ("_run", "failed")]
    assert store.rows[0]["error"] == "the runner stopped: KeyboardInterrupt"


def test_a_run_without_an_end_is_abandoned_by_the_next_and_noted_by_the_report(tmp_path):
    """The ``_run`` row of a killed run stays ``running``; the next run's start marks it ``abandoned``;
    the report of that run says it has no end (the real delta-rs tables, no Spark)."""
    from datetime import datetime, timezone

    from lakedoc.report.data import gather
    from lakedoc.tables import LocalDeltaStore

    store = LocalDeltaStore(tmp_path / "wh")
    cfg = load_config("local", environ={})
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    tasks.record_run_start(store, cfg, "killed", t0, {"job": "lakedoc"})
    tasks.record_run(store, cfg, tasks.TaskRun("ingest_pdf", "killed", "succeeded", t0, t0, tasks.TaskResult()))
    # killed here, between two tasks: the run is visibly not finished
    rows = {r["task"]: r for r in store.read_arrow("pipeline_runs", where={"run_id": "killed"}).to_pylist()}
    assert rows["_run"]["status"] == "running" and rows["_run"]["ended_at"] is None
    assert any("killed has no end recorded (running)" in n for n in gather(store, "killed").notes)

    tasks.record_run_start(store, cfg, "next", datetime.now(timezone.utc), {"job": "lakedoc"})
    rows = {(r["run_id"], r["task"]): r for r in store.read_arrow("pipeline_runs").to_pylist()}
    assert rows[("killed", "_run")]["status"] == "abandoned"
    assert rows[("killed", "_run")]["error"] == tasks.ABANDONED_ERROR
    assert rows[("killed", "ingest_pdf")]["status"] == "succeeded"
    assert rows[("next", "_run")]["status"] == "running"
    report = gather(store, "killed")
    assert [(t.task, t.status) for t in report.tasks] == [("ingest_pdf", "succeeded")]  # _run is not a task
    assert any("killed has no end recorded (abandoned)" in n for n in report.notes)


@pytest.mark.spark  # a real lakedoc run in a subprocess (killed), then one in this process
def test_a_run_killed_between_two_tasks_is_visibly_unfinished(tmp_path, spark, capsys, caplog,
                                                              no_leftover_log_handlers):
    """``LAKEDOC_FAULT=commit:pipeline_runs:3`` kills ``lakedoc run --only ingest_mail_text,redact_pii``
    right after ``ingest_mail_text``'s end record (commits: ``_run`` start, the task's start, its end),
    before ``redact_pii`` starts. Its tasks alone would read as a shorter all-succeeded run; the ``_run``
    row says it did not finish, and the next run marks it ``abandoned``."""
    import os
    import re
    import subprocess
    import sys

    from deltalake import DeltaTable

    from lakedoc.cli import main

    inp, wh = tmp_path / "in", tmp_path / "wh"
    inp.mkdir()
    (inp / "volumes.csv").write_text("port,tonnes\nRotterdam,1200\nSingapore,900\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LAKEDOC_TEST_SPARK_MODE", "LAKEDOC_FAULT")}
    env.update(HF_HUB_OFFLINE="1", LAKEDOC_FAULT="commit:pipeline_runs:3")
    proc = subprocess.run([sys.executable, "-m", "lakedoc.cli", "run", "--root", str(ROOT), "--input", str(inp),
                           "--warehouse", str(wh), "--only", "ingest_mail_text,redact_pii"],
                          capture_output=True, text=True, timeout=900, env=env, cwd=str(ROOT))
    assert proc.returncode == 137, proc.stderr[-4000:]
    assert "LAKEDOC_FAULT: commit pipeline_runs #3" in proc.stderr
    killed = re.search(r"lakedoc run (\S+):", proc.stderr).group(1)  # type: ignore[union-attr]

    def rows(run_id: str) -> dict[str, dict]:
        t = DeltaTable(str(wh / "pipeline_runs")).to_pyarrow_table().to_pylist()
        return {r["task"]: r for r in t if r["run_id"] == run_id}

    mine = rows(killed)
    assert set(mine) == {"_run", "ingest_mail_text"}, mine  # redact_pii never started
    assert mine["ingest_mail_text"]["status"] == "succeeded"
    assert mine["_run"]["status"] == "running" and mine["_run"]["ended_at"] is None

    rc = main(["run", "--root", str(ROOT), "--input", str(inp), "--warehouse", str(wh), "--only", "ingest_mail_text"])
    err = capsys.readouterr().err
    assert rc == 0, err[-4000:]
    # the record, not stderr: an earlier test of the session may have left lakedoc's console handler on
    # another stream (setup_logging adds one handler per process)
    assert any("taking over the stale run lock" in r.getMessage() for r in caplog.records), err[-2000:]
    after = rows(killed)
    assert after["_run"]["status"] == "abandoned" and after["_run"]["ended_at"] is None
    assert after["_run"]["error"] == tasks.ABANDONED_ERROR
    nxt = re.search(r"lakedoc run (\S+):", err).group(1)  # type: ignore[union-attr]
    assert {t: r["status"] for t, r in rows(nxt).items()} == {"_run": "succeeded", "ingest_mail_text": "succeeded"}


def test_console_log_drops_py4j_reconnect_noise_but_not_its_errors():
    import io
    import logging

    from lakedoc.cli import setup_logging

    setup_logging()
    handler = next(h for h in logging.getLogger().handlers if getattr(h, "_lakedoc", False))
    old = handler.setStream(io.StringIO())
    try:
        # what py4j's java_gateway does on a connection the JVM closed: logging.info(..., exc_info=True)
        # through the root logger, then a retry; the same code compiled under py4j's file name
        py4j_file = str(Path(logging.__file__).parents[1] / "site-packages" / "py4j" / "java_gateway.py")
        code = compile("import logging\ntry:\n    raise ConnectionResetError(104, 'reset by peer')\n"
                       "except OSError:\n    logging.info('Exception while sending command.', exc_info=True)\n"
                       "    logging.error('py4j gave up')\n", py4j_file, "exec")
        exec(code, {})
        logging.getLogger("lakedoc.test").info("a lakedoc line")
        logging.info("a root line from elsewhere")
        out = handler.stream.getvalue()
    finally:
        handler.setStream(old)
    assert "Exception while sending command" not in out and "ConnectionResetError" not in out
    assert "py4j gave up" in out and "a lakedoc line" in out and "a root line from elsewhere" in out
