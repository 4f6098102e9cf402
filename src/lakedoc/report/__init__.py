"""The run report: one self-contained HTML page (inline SVG charts) of what a job run did.

``lakedoc report`` (:mod:`lakedoc.report.command`), the ``report`` task of the job
(:mod:`lakedoc.report.stage`) and the end of ``lakedoc run`` all call :func:`write_report`.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

REPORT_VOLUME = "reports"
LOCAL_REPORT_DIR = "_reports"
SEARCH_METRICS_FILE = "search-metrics.json"


def report_dir(cfg) -> str:
    """Where a run's report goes by default.

    On Databricks (Unity Catalog tables and a ``/Volumes`` mount): the schema's ``reports`` volume,
    ``/Volumes/<catalog>/<schema>/reports``. Elsewhere: ``<tables.warehouse>/_reports``.
    """
    t = cfg.tables
    if t.backend == "unity_catalog" and os.path.isdir("/Volumes"):
        return f"/Volumes/{t.catalog}/{t.schema_}/{REPORT_VOLUME}"
    return str(Path(cfg.resolve_path(t.warehouse)) / LOCAL_REPORT_DIR)


def report_file_name(run_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    return f"report-{safe}.html"


def search_metrics_path(cfg) -> Path:
    """Where ``lakedoc evaluate-search`` leaves its latest metrics and the report looks for them:
    ``search-metrics.json`` in :func:`report_dir`."""
    return Path(report_dir(cfg)) / SEARCH_METRICS_FILE


def latest_search_metrics(cfg) -> dict | None:
    """The latest retrieval metrics of ``lakedoc evaluate-search`` (:func:`search_metrics_path`), or None
    when there are none (or they cannot be read: logged, the report is written without them)."""
    path = search_metrics_path(cfg)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("cannot read the retrieval metrics %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def write_report(store, out: str | os.PathLike, run_id: str | None = None, source: str = "",
                 retrieval: dict | None = None) -> Path:
    """Gather the figures of ``run_id`` (default: the latest run) through ``store`` and write the page.

    ``retrieval``: the metrics of ``lakedoc evaluate-search`` to show (callers pass
    :func:`latest_search_metrics` unless told otherwise)."""
    from lakedoc.report.data import gather
    from lakedoc.report.html import render

    data = gather(store, run_id, source=source, retrieval=retrieval)
    page = render(data)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")  # one write: volumes (FUSE) may not rename
    log.info("run report of %s: %s (%d bytes)", data.run_id, path, len(page.encode()))
    return path


def store_source(cfg) -> str:
    t = cfg.tables
    if t.backend == "unity_catalog":
        return f"{t.catalog}.{t.schema_}"
    return str(cfg.resolve_path(t.warehouse))


def write_after_run(cfg, run_id: str, spark=None) -> Path | None:
    """The report of a local run that just ended (``lakedoc run``); None when it has no pipeline_runs.

    Never raises: a report that cannot be written is logged, the run's outcome stands.
    """
    from lakedoc.schema import PIPELINE_RUNS
    from lakedoc.tables import LocalDeltaStore, TableStore, open_store

    try:
        store: TableStore
        if cfg.tables.backend == "delta_rs":
            store = LocalDeltaStore(cfg.resolve_path(cfg.tables.warehouse))
        else:
            store = open_store(cfg, spark)
        if not store.exists(PIPELINE_RUNS):
            return None
        return write_report(store, Path(report_dir(cfg)) / report_file_name(run_id), run_id, store_source(cfg),
                            latest_search_metrics(cfg))
    except Exception as exc:  # noqa: BLE001 - the report must not change the run's outcome
        log.warning("could not write the run report: %s: %s", type(exc).__name__, exc)
        return None
