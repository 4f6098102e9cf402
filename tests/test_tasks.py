"""run_task: a failing stage is explained at ERROR with its traceback, recorded short, and fails the process."""
from __future__ import annotations

import logging
import runpy
from pathlib import Path

import pytest

from lakedoc import tasks
from lakedoc.config import load_config

ROOT = Path(__file__).resolve().parents[1]


class FakeStore:
    """Stands in for the table store: keeps what run_task records in pipeline_runs."""

    def __init__(self):
        self.rows = []

    def merge(self, table, data, **kw):
        assert table == "pipeline_runs"
        self.rows.extend(data.to_pylist())


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
