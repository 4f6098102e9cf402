"""``lakedoc report``: write the run report page of a local warehouse or of Unity Catalog tables.

    lakedoc report --warehouse DIR [--run-id ID] [--out report.html] [--search-metrics M.json]
    lakedoc report --target dev [--run-id ID] --out report.html      (Unity Catalog, through Spark)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="write the HTML report of a run (tasks, files, PII, labels, metrics)",
                       description="Write one self-contained HTML page (inline SVG charts) of a job run, "
                                   "read from the tables through the configured table store.")
    p.add_argument("--warehouse", help="folder of the local Delta tables (default: tables.warehouse)")
    p.add_argument("--target", default="local",
                   help="configuration target (default local; dev/prod/rehearsal read Unity Catalog tables "
                        "through Spark)")
    p.add_argument("--conf-dir", default=None, help="folder holding base.yml and <target>.yml")
    p.add_argument("--config", default=None, help="an extra YAML file merged over conf/")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configuration override")
    p.add_argument("--run-id", default=None, help="the run to report (default: the latest in pipeline_runs)")
    p.add_argument("--out", default=None,
                   help="output HTML file (default: <warehouse>/_reports/report-<run id>.html)")
    p.add_argument("--search-metrics", default=None, metavar="JSON",
                   help="retrieval metrics to include (the --out JSON of lakedoc evaluate-search; default: "
                        "the latest that evaluate-search left beside the reports, if any)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from lakedoc.config import load_config
    from lakedoc.report import latest_search_metrics, report_dir, report_file_name, store_source, write_report
    from lakedoc.report.data import latest_run_id
    from lakedoc.schema import PIPELINE_RUNS
    from lakedoc.tables import LocalDeltaStore, TableStore, open_store

    sets = list(args.set)
    if args.warehouse:
        sets.append(f"tables.warehouse={Path(args.warehouse).resolve()}")
    cfg = load_config(args.target, conf_dir=args.conf_dir, user_file=args.config, sets=sets)
    store: TableStore
    if cfg.tables.backend == "delta_rs":
        wh = Path(cfg.resolve_path(cfg.tables.warehouse))
        if not (wh / PIPELINE_RUNS.name / "_delta_log").is_dir():
            print(f"error: no {PIPELINE_RUNS.name} table under {wh} (run the job first, or give --warehouse)",
                  file=sys.stderr)
            return 2
        store = LocalDeltaStore(wh)  # read through delta-rs: no Spark needed
    else:
        store = open_store(cfg)
    retrieval = (json.loads(Path(args.search_metrics).read_text()) if args.search_metrics
                 else latest_search_metrics(cfg))
    try:
        run_id = args.run_id or latest_run_id(store)
        out = Path(args.out) if args.out else Path(report_dir(cfg)) / report_file_name(run_id)
        path = write_report(store, out, run_id, store_source(cfg), retrieval)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"run report: {path.resolve()}")
    return 0
