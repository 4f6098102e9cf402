"""The task registry and the one function every DAG task goes through: :func:`run_task`.

A Databricks task (``spark_python_task`` on ``pipelines/task.py``) and the local runner both end up
here with the same arguments. ``run_task`` builds the configuration, the SparkSession and the table
store, runs the stage function, and records the run in the ``pipeline_runs`` table (run id, task,
start, end, status, rows in/out, error): ``running`` before the stage is called, then ``succeeded`` or
``failed``; a row an earlier run left ``running`` (its process was killed) is marked ``abandoned``.

A whole run of the job (``lakedoc run``, :func:`lakedoc.runner.run_recorded`) is on record too, under
the task key :data:`RUN_TASK` (``_run``): ``running`` before its first task (:func:`record_run_start`),
``succeeded`` or ``failed`` after its last (:func:`record_run_end`); a task the runner skips because an
upstream task failed gets a ``skipped`` row (:func:`record_skipped`). A run killed between two tasks
thus keeps its ``_run`` row ``running`` (``abandoned`` once the next run starts), where its finished
tasks alone would look like a shorter, all-succeeded run.
"""
from __future__ import annotations

import importlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from lakedoc.config import Config
from lakedoc.ingest.formats import INGEST_TASKS
from lakedoc.schema import PIPELINE_RUNS

log = logging.getLogger(__name__)

# task key -> "module:function". Functions take a TaskContext and return a TaskResult. The ingestion
# tasks (one per family of lakedoc.ingest.formats, ``ingest_<family>``) share one function, which reads
# its family from the task key.
REGISTRY: dict[str, str] = {
    **{task: "lakedoc.ingest.stage:run" for task in INGEST_TASKS},
    "redact_pii": "lakedoc.pii.stage:run",
    "classify": "lakedoc.classify.stage:run_classify",
    "embed": "lakedoc.classify.stage:run_embed",
    "baselines": "lakedoc.baselines.stage:run",
    "index": "lakedoc.index.stage:run",
    "report": "lakedoc.report.stage:run",
    "archive_inputs": "lakedoc.lake.archive:run",
    "provision_models": "lakedoc.provision:run",
    # job lakedoc_train (jobs/train.job.yml): fine-tune -> evaluate -> register -> promote if better
    "finetune": "lakedoc.finetune.tasks:run_finetune_task",
    "evaluate": "lakedoc.finetune.tasks:run_evaluate_task",
    "register": "lakedoc.finetune.tasks:run_register_task",
    "promote_if_better": "lakedoc.finetune.tasks:run_promote_task",
}


@dataclass
class TaskResult:
    rows_in: int = 0
    rows_out: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskContext:
    task: str
    run_id: str
    cfg: Config
    spark: Any
    tables: Any  # lakedoc.tables.TableStore
    input_path: str | None = None

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger(f"lakedoc.{self.task}")


@dataclass
class TaskRun:
    task: str
    run_id: str
    status: str  # "succeeded" | "failed" (pipeline_runs also holds "running", "abandoned", "skipped" rows)
    started_at: datetime
    ended_at: datetime
    result: TaskResult
    error: str | None = None

    @property
    def duration_s(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()


def resolve(task: str) -> Callable[[TaskContext], TaskResult]:
    if task not in REGISTRY:
        raise KeyError(f"unknown task {task!r}; known tasks: {', '.join(sorted(REGISTRY))}")
    module, func = REGISTRY[task].split(":")
    return getattr(importlib.import_module(module), func)


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


RUNNING, ABANDONED, SKIPPED = "running", "abandoned", "skipped"
ABANDONED_ERROR = "no end recorded: the process was killed or lost"
RUN_TASK = "_run"
"""The ``pipeline_runs`` task key of a whole run's own row (no real task key starts with ``_``)."""


def _run_row(cfg: Config, run_id: str, task: str, started: datetime, ended: datetime | None, status: str,
             result: TaskResult, error: str | None) -> dict:
    import json

    return {
        "run_id": run_id, "task": task, "target": cfg.target, "started_at": started, "ended_at": ended,
        "duration_s": (ended - started).total_seconds() if ended is not None else None,
        "status": status, "rows_in": result.rows_in, "rows_out": result.rows_out,
        "details": json.dumps(result.details, default=str, sort_keys=True), "error": error,
    }


def _merge_runs(tables, task: str, rows: list[dict]) -> None:
    tables.merge(PIPELINE_RUNS, pa.Table.from_pylist(rows, schema=PIPELINE_RUNS.schema),
                 scope=PIPELINE_RUNS.scope_of(task))


def record_run(tables, cfg: Config, run: TaskRun) -> None:
    _merge_runs(tables, run.task, [_run_row(cfg, run.run_id, run.task, run.started_at, run.ended_at, run.status,
                                            run.result, run.error)])


def record_start(tables, cfg: Config, task: str, run_id: str, started: datetime) -> None:
    """The ``running`` row (no ``ended_at``) written before the stage runs; its final row replaces it."""
    _merge_runs(tables, task, [_run_row(cfg, run_id, task, started, None, RUNNING, TaskResult(), None)])


def mark_abandoned(tables, run_id: str) -> int:
    """Rows of other runs still ``running`` -> ``abandoned``: their process ended without recording an
    end (killed, lost driver). One read of the ``running`` rows. If such a run was in fact still alive,
    its own final record later overwrites the mark."""
    if not tables.exists(PIPELINE_RUNS):
        return 0
    rows = [r for r in tables.read_arrow(PIPELINE_RUNS, where={"status": RUNNING}).to_pylist()
            if r["run_id"] != run_id]
    by_task: dict[str, list[dict]] = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append({**r, "status": ABANDONED, "error": ABANDONED_ERROR})
    for task, marked in by_task.items():
        _merge_runs(tables, task, marked)
        log.warning("pipeline_runs: %d earlier run(s) of task %s had no end recorded: marked %s (run ids %s)",
                    len(marked), task, ABANDONED, ", ".join(sorted(r["run_id"] for r in marked)))
    return len(rows)


def record_skipped(tables, cfg: Config, run_id: str, task: str, at: datetime, error: str) -> None:
    """A task the runner did not start (an upstream task failed): ``skipped``, started and ended at
    ``at`` (when the skip was decided, duration 0), ``error`` saying why."""
    _merge_runs(tables, task, [_run_row(cfg, run_id, task, at, at, SKIPPED, TaskResult(), error)])


def record_run_start(tables, cfg: Config, run_id: str, started: datetime, details: dict[str, Any]) -> None:
    """The run's own ``_run`` row, ``running``, written before its first task (after marking what
    earlier runs left ``running`` as ``abandoned``)."""
    mark_abandoned(tables, run_id)
    _merge_runs(tables, RUN_TASK, [_run_row(cfg, run_id, RUN_TASK, started, None, RUNNING,
                                            TaskResult(details=details), None)])


def record_run_end(tables, cfg: Config, run_id: str, started: datetime, statuses: dict[str, str],
                   details: dict[str, Any], error: str | None = None) -> str:
    """The run's ``_run`` row after its last task: ``succeeded`` when every task did (and ``error`` is
    None: the runner itself did not fail), else ``failed`` with the tasks that did not. ``statuses``:
    task key -> its outcome. Returns the status written. rows_in/rows_out stay 0 (the tasks' rows hold
    them); ``details`` gets the task keys by outcome."""
    by_status: dict[str, list[str]] = {}
    for task, status in statuses.items():
        by_status.setdefault(status, []).append(task)
    not_ok = {k: sorted(v) for k, v in sorted(by_status.items()) if k != "succeeded"}
    status = "failed" if error or not_ok else "succeeded"
    if not error and not_ok:
        error = "; ".join(f"{k}: {', '.join(v)}" for k, v in not_ok.items())
    details = {**details, "tasks": {k: sorted(v) for k, v in sorted(by_status.items())}}
    _merge_runs(tables, RUN_TASK, [_run_row(cfg, run_id, RUN_TASK, started, datetime.now(timezone.utc), status,
                                            TaskResult(details=details), error)])
    return status


def run_task(task: str, cfg: Config, run_id: str | None = None, input_path: str | None = None,
             spark=None, tables=None) -> TaskRun:
    """Run one DAG task and record it. Never raises for a stage failure: the returned TaskRun says.

    A failed stage is logged once, at ERROR, with its traceback; ``pipelines/task.py`` then exits 1 so
    the Databricks task fails too.
    """
    from lakedoc.spark import get_spark
    from lakedoc.tables import open_store

    run_id = run_id or new_run_id()
    func = resolve(task)
    spark = spark or get_spark(cfg)
    tables = tables or open_store(cfg, spark)
    ctx = TaskContext(task=task, run_id=run_id, cfg=cfg, spark=spark, tables=tables,
                      input_path=input_path or cfg.resolve_path(cfg.input.path))
    started = datetime.now(timezone.utc)
    try:  # the start is on record before the stage runs: a killed task leaves a ``running`` row
        mark_abandoned(tables, run_id)
        record_start(tables, cfg, task, run_id, started)
    except Exception as exc:  # noqa: BLE001 - recording must not stop the task
        log.warning("could not record the start of task %s in pipeline_runs: %s", task, exc)
    t0 = time.perf_counter()
    status, error, result = "succeeded", None, TaskResult()
    try:
        result = func(ctx) or TaskResult()
    except Exception as exc:  # noqa: BLE001 - a failed task is recorded, then reported by the caller
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        # the one place a task's failure is explained: at ERROR with the full traceback (a Databricks
        # job shows the driver's stderr); pipeline_runs keeps the short ``error`` string only
        log.error("task %s failed: %s", task, error, exc_info=True)
    ended = datetime.now(timezone.utc)
    run = TaskRun(task, run_id, status, started, ended, result, error)
    try:
        record_run(tables, cfg, run)
    except Exception as exc:  # noqa: BLE001 - recording must not hide the task's own outcome
        log.warning("could not record task %s in pipeline_runs: %s", task, exc)
    log.info("task %s %s in %.1fs (rows in %d, out %d)", task, status, time.perf_counter() - t0,
             result.rows_in, result.rows_out)
    return run
