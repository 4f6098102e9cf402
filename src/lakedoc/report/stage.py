"""The ``report`` task: the run's report page, written where :func:`lakedoc.report.report_dir` says
(on Databricks the schema's ``reports`` volume), as ``report-<run id>.html`` and ``latest.html``, with the
latest retrieval metrics of ``lakedoc evaluate-search`` found in that folder.

The job runs it last with ``run_if: ALL_DONE``, so a run whose tasks failed gets its report too. The
job's result must still say that the run failed (Databricks judges a run by its leaf tasks): after
writing the page, the task fails itself when another task of the run failed.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from lakedoc.report import latest_search_metrics, report_dir, report_file_name, store_source, write_report
from lakedoc.schema import PIPELINE_RUNS
from lakedoc.tasks import TaskContext, TaskResult

NOT_SUCCEEDED = ("failed", "abandoned")


def run(ctx: TaskContext) -> TaskResult:
    folder = Path(report_dir(ctx.cfg))
    path = write_report(ctx.tables, folder / report_file_name(ctx.run_id), ctx.run_id, store_source(ctx.cfg),
                        latest_search_metrics(ctx.cfg))
    latest = folder / "latest.html"
    shutil.copyfile(path, latest)
    ctx.log.info("run report: %s (also %s)", path, latest)
    runs = ctx.tables.read_arrow(PIPELINE_RUNS, ["task", "status"], where={"run_id": ctx.run_id}).to_pylist()
    failed = sorted(r["task"] for r in runs if r["task"] != ctx.task and r["status"] in NOT_SUCCEEDED)
    if failed:
        raise RuntimeError(f"the run's report is written ({path}), but task(s) {', '.join(failed)} of run "
                           f"{ctx.run_id} did not succeed")
    return TaskResult(rows_in=len(runs), rows_out=1, details={"report": str(path), "latest": str(latest)})
