"""Entry point of every task of the lakedoc job.

On Databricks each task of ``jobs/lakedoc.job.yml`` is a ``spark_python_task`` on this file with its
own ``parameters`` (``--task ingest_docx --target prod ...``). The local runner (``lakedoc run``)
reads the same YAML, imports this very file and calls :func:`main` with the same parameters.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None):
    """Run one task; return its :class:`lakedoc.tasks.TaskRun` (the runner reads it)."""
    from lakedoc.cli import task_main

    return task_main(sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":
    run = main()
    sys.exit(0 if run.status == "succeeded" else 1)
