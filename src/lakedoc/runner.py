"""The local runner: executes the job DAG that the bundle deploys, on one local SparkSession.

It reads ``databricks.yml`` and the ``jobs/*.yml`` it includes, substitutes what Databricks would
(``${bundle.target}``, ``${var.*}``, ``${workspace.file_path}``, ``{{job.parameters.*}}``,
``{{job.run_id}}``), and calls each task's ``spark_python_task.python_file`` ``main(parameters)``
— the very entry point and parameters a Databricks task runs — in dependency order. Tasks whose
dependencies are done run concurrently (threads sharing the SparkSession; Spark schedules their jobs
side by side). A task whose dependency failed is skipped.

:func:`run_recorded` (what ``lakedoc run`` calls) puts the run itself on record in ``pipeline_runs``: a
``_run`` row ``running`` before the first task, ``succeeded``/``failed`` after the last, and a
``skipped`` row for each skipped task (:mod:`lakedoc.tasks`).
"""
from __future__ import annotations

import fnmatch
import importlib.util
import logging
import re
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

_VAR = re.compile(r"\$\{([a-zA-Z0-9_.]+)\}")
_JOBVAR = re.compile(r"\{\{\s*([a-zA-Z0-9_.]+)\s*\}\}")


@dataclass
class TaskSpec:
    key: str
    depends_on: list[str]
    python_file: Path
    parameters: list[str]
    job_cluster_key: str | None = None
    raw: dict = field(default_factory=dict)


@dataclass
class Bundle:
    root: Path
    config: dict
    jobs: dict[str, dict]
    job_files: dict[str, Path]

    def variables(self, target: str | None = None) -> dict[str, Any]:
        out = {k: (v or {}).get("default") for k, v in (self.config.get("variables") or {}).items()}
        tgt = ((self.config.get("targets") or {}).get(target) or {}) if target else {}
        out.update(tgt.get("variables") or {})
        return out


def load_bundle(root: str | Path = ".") -> Bundle:
    """Load ``databricks.yml`` and its included job files (glob patterns relative to the root)."""
    root = Path(root).resolve()
    main = root / "databricks.yml"
    if not main.is_file():
        raise FileNotFoundError(f"no databricks.yml in {root}")
    config = yaml.safe_load(main.read_text()) or {}
    jobs: dict[str, dict] = dict((config.get("resources") or {}).get("jobs") or {})
    job_files = {k: main for k in jobs}
    for pattern in config.get("include") or []:
        for path in sorted(root.glob(pattern)):
            doc = yaml.safe_load(path.read_text()) or {}
            for key, job in ((doc.get("resources") or {}).get("jobs") or {}).items():
                if key in jobs:
                    raise ValueError(f"job {key!r} defined twice ({job_files[key]} and {path})")
                jobs[key] = job
                job_files[key] = path
    return Bundle(root, config, jobs, job_files)


def substitution_context(bundle: Bundle, target: str, job_key: str, *, run_id: str,
                         input_path: str | None = None, **parameters: Any) -> dict[str, Any]:
    """What Databricks would put in ``${...}`` / ``{{...}}`` for one run of ``job_key`` — the one place
    that builds it (the runner, the tests and the benchmarks call this).

    ``${var.*}``: the variable defaults, overridden by ``target``'s values when ``target`` is a bundle
    target (``dev``, ``prod``); ``${bundle.target}``: ``target``; ``${workspace.file_path}``: the
    checkout; ``{{job.parameters.*}}``: the job's parameter defaults, then ``input_path`` and
    ``parameters``; ``{{job.run_id}}``: ``run_id``.
    """
    context: dict[str, Any] = {f"var.{k}": v for k, v in bundle.variables(target).items()}
    context.update({
        "bundle.target": target, "bundle.name": (bundle.config.get("bundle") or {}).get("name", ""),
        "workspace.file_path": str(bundle.root), "job.run_id": run_id, "job.id": job_key,
    })
    for p in bundle.jobs[job_key].get("parameters") or []:
        context[f"job.parameters.{p['name']}"] = p.get("default", "")
    if input_path is not None:
        context["job.parameters.input_path"] = input_path
    for k, v in parameters.items():
        context[f"job.parameters.{k}"] = v
    return context


def substitute(value: str, context: dict[str, str]) -> str:
    """Replace ``${a.b}`` and ``{{a.b}}`` references; unknown references are an error."""

    def repl(m: re.Match) -> str:
        name = m.group(1)
        if name not in context:
            raise KeyError(f"the local runner cannot resolve {m.group(0)!r}; known: {', '.join(sorted(context))}")
        return str(context[name])

    return _JOBVAR.sub(repl, _VAR.sub(repl, value))


def task_specs(bundle: Bundle, job_key: str, context: dict[str, str]) -> list[TaskSpec]:
    job = bundle.jobs[job_key]
    base = bundle.job_files[job_key].parent
    specs = []
    for t in job.get("tasks") or []:
        spt = t.get("spark_python_task")
        if not spt:
            raise ValueError(f"task {t.get('task_key')!r}: the local runner runs spark_python_task tasks only")
        specs.append(TaskSpec(
            key=t["task_key"],
            depends_on=[d["task_key"] for d in t.get("depends_on") or []],
            python_file=(base / substitute(spt["python_file"], context)).resolve(),
            parameters=[substitute(str(p), context) for p in spt.get("parameters") or []],
            job_cluster_key=t.get("job_cluster_key"),
            raw=t,
        ))
    known = {s.key for s in specs}
    for s in specs:
        missing = [d for d in s.depends_on if d not in known]
        if missing:
            raise ValueError(f"task {s.key!r} depends on unknown task(s) {missing}")
    _check_acyclic(specs)
    return specs


def _check_acyclic(specs: list[TaskSpec]) -> None:
    deps = {s.key: set(s.depends_on) for s in specs}
    done: set[str] = set()
    while deps:
        ready = [k for k, d in deps.items() if d <= done]
        if not ready:
            raise ValueError(f"the job DAG has a cycle among {sorted(deps)}")
        for k in ready:
            done.add(k)
            del deps[k]


def select(specs: list[TaskSpec], only: str | None) -> list[TaskSpec]:
    """``--only ingest_*,redact_pii``: keep matching tasks (dependencies outside are assumed done)."""
    if not only:
        return specs
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    chosen = [s for s in specs if any(fnmatch.fnmatchcase(s.key, p) for p in patterns)]
    if not chosen:
        raise ValueError(f"--only {only!r} matches no task; tasks: {', '.join(s.key for s in specs)}")
    keys = {s.key for s in chosen}
    return [TaskSpec(s.key, [d for d in s.depends_on if d in keys], s.python_file, s.parameters,
                     s.job_cluster_key, s.raw) for s in chosen]


def load_entry_point(path: Path):
    """Import a task's python_file (as Databricks would run it) and return its ``main``."""
    if not path.is_file():
        raise FileNotFoundError(f"entry point {path} does not exist")
    name = "lakedoc_entry_" + re.sub(r"\W", "_", str(path))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "main"):
        raise AttributeError(f"{path} has no main(argv) function")
    return module.main


@dataclass
class Outcome:
    key: str
    status: str  # succeeded | failed | skipped
    rows_in: int = 0
    rows_out: int = 0
    duration_s: float = 0.0
    error: str | None = None


def run_dag(specs: list[TaskSpec], extra_args: list[str], max_parallel: int = 5,
            on_event=None) -> list[Outcome]:
    """Run the tasks in dependency order, independent ones concurrently. Returns one Outcome per task."""
    outcomes: dict[str, Outcome] = {}
    pending = {s.key: s for s in specs}
    running: dict[Future, TaskSpec] = {}
    lock = threading.Lock()
    notify = on_event or (lambda *a: None)

    def execute(spec: TaskSpec) -> Outcome:
        started = datetime.now(timezone.utc)
        try:
            main = load_entry_point(spec.python_file)
            run = main([*spec.parameters, *extra_args])
        except SystemExit as exc:  # argparse errors in the entry point
            return Outcome(spec.key, "failed", error=f"bad task parameters (exit {exc.code})",
                           duration_s=(datetime.now(timezone.utc) - started).total_seconds())
        except Exception as exc:  # noqa: BLE001 - reported in the summary
            return Outcome(spec.key, "failed", error=f"{type(exc).__name__}: {exc}",
                           duration_s=(datetime.now(timezone.utc) - started).total_seconds())
        return Outcome(spec.key, run.status, run.result.rows_in, run.result.rows_out, run.duration_s, run.error)

    with ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="lakedoc-task") as pool:
        while pending or running:
            with lock:
                for key, spec in list(pending.items()):
                    deps = [outcomes.get(d) for d in spec.depends_on]
                    if any(o is not None and o.status != "succeeded" for o in deps):
                        failed = [d for d in spec.depends_on if outcomes.get(d) and outcomes[d].status != "succeeded"]
                        outcomes[key] = Outcome(key, "skipped", error=f"upstream failed: {', '.join(failed)}")
                        notify("skipped", key, outcomes[key])
                        del pending[key]
                    elif all(o is not None for o in deps):
                        notify("started", key, None)
                        running[pool.submit(execute, spec)] = spec
                        del pending[key]
            if not running:
                if pending:  # only possible if dependencies were filtered badly
                    for key in list(pending):
                        outcomes[key] = Outcome(key, "skipped", error="dependencies not runnable")
                        notify("skipped", key, outcomes[key])
                        del pending[key]
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                spec = running.pop(fut)
                outcomes[spec.key] = fut.result()
                notify("finished", spec.key, outcomes[spec.key])
    return [outcomes[s.key] for s in specs if s.key in outcomes]


def run_recorded(specs: list[TaskSpec], extra_args: list[str], cfg, run_id: str, *, job_key: str,
                 max_parallel: int = 5, on_event=None, tables=None) -> list[Outcome]:
    """:func:`run_dag` with the run on record in ``pipeline_runs`` (task key ``_run``): ``running``
    before the first task starts, ``succeeded`` or ``failed`` after the last one ended (``failed`` also
    when the runner itself raised, e.g. Ctrl-C: then the exception is re-raised), and a ``skipped`` row
    for every task skipped because an upstream task failed. ``tables``: the table store (default: the
    configured one on the process's SparkSession).

    A process killed between two tasks leaves its ``_run`` row ``running``, no end; the next task run
    or run marks it ``abandoned``. Like :func:`lakedoc.tasks.run_task`, a record that cannot be written
    is logged (WARNING) and the run goes on.
    """
    from lakedoc import tasks as T

    if tables is None:
        from lakedoc.spark import get_spark
        from lakedoc.tables import open_store

        tables = open_store(cfg, get_spark(cfg))
    notify = on_event or (lambda *a: None)
    started = datetime.now(timezone.utc)
    details = {"job": job_key, "tasks": [s.key for s in specs]}
    try:
        T.record_run_start(tables, cfg, run_id, started, details)
    except Exception as exc:  # noqa: BLE001 - recording must not stop the run
        log.warning("could not record the start of run %s in pipeline_runs: %s", run_id, exc)

    def on_dag_event(kind: str, key: str, outcome: Outcome | None) -> None:
        if kind == "skipped" and outcome is not None:
            try:
                T.record_skipped(tables, cfg, run_id, key, datetime.now(timezone.utc), outcome.error or "skipped")
            except Exception as exc:  # noqa: BLE001
                log.warning("could not record skipped task %s in pipeline_runs: %s", key, exc)
        notify(kind, key, outcome)

    outcomes: list[Outcome] = []
    error: str | None = None
    try:
        outcomes = run_dag(specs, extra_args, max_parallel=max_parallel, on_event=on_dag_event)
    except BaseException as exc:
        error = f"the runner stopped: {type(exc).__name__}" + (f": {exc}" if str(exc) else "")
        raise
    finally:
        statuses = {s.key: "not run" for s in specs} | {o.key: o.status for o in outcomes}
        try:
            status = T.record_run_end(tables, cfg, run_id, started, statuses, {"job": job_key}, error)
            log.info("run %s %s (%d task(s))", run_id, status, len(statuses))
        except Exception as exc:  # noqa: BLE001
            log.warning("could not record the end of run %s in pipeline_runs: %s", run_id, exc)
    return outcomes


def format_summary(outcomes: list[Outcome]) -> str:
    w = max([len(o.key) for o in outcomes] + [4])
    lines = [f"{'task':<{w}}  {'status':<9}  {'rows in':>8}  {'rows out':>8}  {'seconds':>8}  error"]
    for o in outcomes:
        lines.append(f"{o.key:<{w}}  {o.status:<9}  {o.rows_in:>8}  {o.rows_out:>8}  {o.duration_s:>8.1f}  "
                     f"{(o.error or '')[:120]}")
    return "\n".join(lines)
