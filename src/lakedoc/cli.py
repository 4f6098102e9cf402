"""``lakedoc`` command line.

    lakedoc run      [--config F] [--input DIR] [--warehouse DIR] [--only PATTERNS] [--target local]
    lakedoc task     --task KEY [--target T] [--input P] [--run-id ID] [--set k=v ...]   (what a Databricks task runs)
    lakedoc samples  DIR
    lakedoc tables   [--warehouse DIR]           (list the local tables with row counts and versions)

Stage-specific commands (pii-eval, evaluate, tune-thresholds, search) register themselves through
:data:`COMMAND_MODULES`: each module has ``add_parser(subparsers)`` that sets ``func``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("lakedoc")

# Modules that add their own sub-commands (``add_parser(subparsers)``).
COMMAND_MODULES: list[str] = [
    "lakedoc.index.query",
    "lakedoc.evaluate_cli",
    "lakedoc.classify.thresholds",
    "lakedoc.pii.eval",
    "lakedoc.report.command",
    "lakedoc.index.evaluate_search",
    "lakedoc.lake.land",
    "lakedoc.lake.archive",
    "lakedoc.finetune.feedback",
    "lakedoc.finetune.cli",
]


def quiet_py4j_retries(record: logging.LogRecord) -> bool:
    """Handler filter: drop py4j's INFO "Exception while sending command." with its traceback. py4j logs
    it through the *root* logger (``logging.info`` in ``java_gateway``, so the ``py4j`` logger's level
    does not apply) each time it re-opens a connection the JVM closed — e.g. after a task thread of
    ``lakedoc run`` ended — and then retries successfully. Its failures (ERROR) still show."""
    return not (record.levelno < logging.WARNING and record.name == "root"
                and Path(record.pathname).parent.name == "py4j")


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    root = logging.getLogger()
    if not any(getattr(h, "_lakedoc", False) for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
        h.addFilter(quiet_py4j_retries)
        h._lakedoc = True  # type: ignore[attr-defined]  # our marker attribute on the handler
        root.addHandler(h)
    root.setLevel(level)
    for noisy in ("py4j", "pyspark", "urllib3", "azure", "httpx", "presidio-analyzer", "presidio-anonymizer",
                  "sentence_transformers", "transformers", "lancedb", "mlflow", "filelock", "numexpr",
                  "XGBoost-PySpark"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _task_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lakedoc task", description="Run one task of the lakedoc job.")
    p.add_argument("--task", required=True, help="task key, e.g. ingest_docx")
    p.add_argument("--target", default=os.environ.get("LAKEDOC_TARGET", "local"),
                   help="configuration target: local, dev or prod (conf/<target>.yml)")
    p.add_argument("--conf-dir", default=None, help="folder holding base.yml and <target>.yml")
    p.add_argument("--config", default=None, help="an extra YAML file merged over conf/")
    p.add_argument("--input", default=None,
                   help="input folder/volume (overrides input.path; a relative path is relative to the current folder)")
    p.add_argument("--run-id", default=None, help="run id shared by the tasks of one job run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration key, e.g. --set ingest.timeout_s=60")
    p.add_argument("--verbose", action="store_true")
    return p


def task_main(argv: list[str], take_lock: bool = False):
    """Entry of ``pipelines/task.py``: parse task parameters, run the task, return its TaskRun.

    ``take_lock`` (``lakedoc task``): hold the warehouse's run lock (lakedoc.runlock) around the task;
    raises RunLockHeld before Spark starts when another run holds it. ``pipelines/task.py`` does not:
    ``lakedoc run`` calls it under its own lock, Databricks under ``max_concurrent_runs: 1``."""
    from lakedoc.config import load_config
    from lakedoc.tasks import new_run_id, run_task

    args = _task_parser().parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_config(args.target, conf_dir=args.conf_dir, user_file=args.config, sets=args.set)
    check_local_paths(cfg)
    input_path = args.input if args.input and not args.input.startswith("{{") else None
    input_path = cli_path(input_path) if input_path else None
    if not take_lock:
        return run_task(args.task, cfg, run_id=args.run_id, input_path=input_path)
    from lakedoc.runlock import acquire_for

    run_id = args.run_id or new_run_id()
    lock = acquire_for(cfg, run_id, command=f"lakedoc task --task {args.task}")
    try:
        return run_task(args.task, cfg, run_id=run_id, input_path=input_path)
    finally:
        if lock is not None:
            lock.release()


def cli_path(value: str) -> str:
    """A path given on the command line: relative to the current folder (URIs and ``dbfs:`` as given)."""
    if "://" in value or value.startswith(("dbfs:", "file:")):
        return value
    return str(Path(value).expanduser().resolve())


def check_local_paths(cfg) -> None:
    """Stop before Spark starts when a local table folder is an existing file (ConfigError)."""
    from lakedoc.config import ConfigError

    for key, value in (("tables.warehouse", cfg.tables.warehouse),
                       ("spark.warehouse_dir", cfg.spark.warehouse_dir)):
        path = cfg.resolve_path(value) if value else None
        if not path or "://" in path or path.startswith(("dbfs:", "/Volumes/")):
            continue
        if os.path.exists(path) and not os.path.isdir(path):
            raise ConfigError(f"{key}: {path} is an existing file, not a folder (the tables need a "
                              f"folder: give another --warehouse or --set {key}=DIR)")


def find_root(start: Path | None = None) -> Path:
    """The checkout that holds databricks.yml: from the CWD upwards, else the package's checkout."""
    for base in [start or Path.cwd(), Path(__file__).resolve().parents[2]]:
        for d in [base, *base.parents]:
            if (d / "databricks.yml").is_file():
                return d
    raise FileNotFoundError("cannot find databricks.yml (run from the lakedoc checkout or pass --root)")


def cmd_run(args) -> int:
    from lakedoc.config import load_config
    from lakedoc.runner import format_summary, load_bundle, run_recorded, select, substitution_context, task_specs
    from lakedoc.tasks import new_run_id

    root = Path(args.root).resolve() if args.root else find_root()
    sets = list(args.set)
    if args.warehouse:
        sets.append(f"tables.warehouse={Path(args.warehouse).resolve()}")
    cfg = load_config(args.target, conf_dir=root / "conf", user_file=args.config, sets=sets)
    check_local_paths(cfg)
    input_path = cli_path(args.input) if args.input else cfg.resolve_path(cfg.input.path)
    # The run lock (lakedoc.runlock): one run at a time per local warehouse folder, across processes and
    # machines sharing it; taken before anything is written or Spark starts, released after the last task.
    from lakedoc.runlock import RunLockHeld, acquire_for

    run_id = new_run_id()
    try:
        lock = acquire_for(cfg, run_id, command="lakedoc run")
    except RunLockHeld as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.target == "local" and "://" not in input_path and not Path(input_path).exists():
            if args.input:
                print(f"error: input folder {input_path} does not exist (generate samples there with "
                      f"`lakedoc samples {args.input}`)", file=sys.stderr)
                return 2
            from lakedoc.samples import generate_samples

            print(f"input folder {input_path} is missing: generating the sample files there", file=sys.stderr)
            generate_samples(input_path)
        bundle = load_bundle(root)
        job_key = args.job or next(iter(bundle.jobs))
        if job_key not in bundle.jobs:
            print(f"error: no job {job_key!r} in the bundle; jobs: {', '.join(bundle.jobs)}", file=sys.stderr)
            return 2
        context = substitution_context(bundle, args.target, job_key, run_id=run_id, input_path=input_path)
        try:
            specs = select(task_specs(bundle, job_key, context), args.only)
        except (KeyError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        extra: list[str] = []  # appended after the YAML's parameters, so they win
        if args.config:
            extra += ["--config", str(Path(args.config).resolve())]
        for s in sets:
            extra += ["--set", s]
        print(f"lakedoc run {run_id}: {len(specs)} task(s) of job {job_key!r} from {bundle.job_files[job_key]}",
              file=sys.stderr)
        print(f"  input: {input_path}", file=sys.stderr)

        from lakedoc.report.progress import Progress

        progress = Progress(len(specs), "tasks", unit="task")  # a bar on a terminal only (not in CI)

        def on_event(kind, key, outcome):
            if kind == "started":
                progress.write(f"  [{key}] started")
            else:
                extra_txt = f" ({outcome.error})" if outcome.error else ""
                progress.write(f"  [{key}] {outcome.status} in {outcome.duration_s:.1f}s, rows in {outcome.rows_in}, "
                               f"out {outcome.rows_out}{extra_txt}")
                progress.update(postfix=key)

        from lakedoc.spark import get_spark

        get_spark(cfg)  # one session for every task (tasks find it as the active session)
        with progress:
            # the run on record in pipeline_runs (task key _run: running, then succeeded/failed; skipped tasks)
            outcomes = run_recorded(specs, extra, cfg, run_id, job_key=job_key, max_parallel=args.parallel,
                                    on_event=on_event)
        print()
        print(format_summary(outcomes))
        if cfg.tables.backend == "delta_rs":
            print(f"\nDelta tables: {cfg.resolve_path(cfg.tables.warehouse)}  (list them: lakedoc tables)")
        from lakedoc.report import write_after_run

        report = write_after_run(cfg, run_id, get_spark(cfg))
        if report is not None:
            print(f"Run report: {report}")
        failed = [o for o in outcomes if o.status != "succeeded"]
        return 1 if failed else 0
    finally:
        if lock is not None:
            lock.release()


def cmd_task(args, rest) -> int:
    from lakedoc.runlock import RunLockHeld

    try:
        run = task_main(rest, take_lock=True)
    except RunLockHeld as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{run.task}: {run.status} (rows in {run.result.rows_in}, out {run.result.rows_out}"
          f"{', ' + run.error if run.error else ''})")
    return 0 if run.status == "succeeded" else 1


def cmd_samples(args) -> int:
    from lakedoc.samples import generate_samples

    files = generate_samples(args.dir, overwrite=args.overwrite)
    print(f"{len(files)} sample files in {Path(args.dir).resolve()}")
    return 0


def cmd_tables(args) -> int:
    from deltalake import DeltaTable

    from lakedoc.config import load_config

    cfg = load_config("local", sets=[f"tables.warehouse={Path(args.warehouse).resolve()}"] if args.warehouse else None)
    root = Path(cfg.resolve_path(cfg.tables.warehouse))
    if not root.is_dir():
        print(f"no warehouse at {root}")
        return 1
    print(f"{'table':<22} {'rows':>8} {'version':>8}  location")
    for d in sorted(p for p in root.iterdir() if (p / "_delta_log").is_dir()):
        dt = DeltaTable(str(d))
        rows = dt.to_pyarrow_dataset().count_rows()
        print(f"{d.name:<22} {rows:>8} {dt.version():>8}  {d}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lakedoc", description="Office files to governed Delta tables.")
    p.add_argument("--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the job DAG locally (the same YAML the bundle deploys)")
    r.add_argument("--config", help="extra YAML merged over conf/")
    r.add_argument("--input", help="input folder, relative to the current folder (default: input.path, relative "
                                   "to the checkout; samples are generated if it is missing), or an ADLS Gen2 "
                                   "folder abfss://FS@ACCOUNT.dfs.core.windows.net/PATH (credentials: lake.*)")
    r.add_argument("--warehouse", help="folder of the local Delta tables (default: tables.warehouse)")
    r.add_argument("--only", help="comma-separated task keys or patterns, e.g. 'ingest_*,redact_pii'")
    r.add_argument("--target", default="local", help="configuration target (default: local)")
    r.add_argument("--job", help="job key in the bundle (default: the first)")
    r.add_argument("--root", help="checkout holding databricks.yml (default: found from the CWD)")
    r.add_argument("--parallel", type=int, default=5, help="tasks run at once (default 5)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configuration override")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("task", help="run one task (what a Databricks task calls)", add_help=False)
    t.set_defaults(func=cmd_task, passthrough=True)

    s = sub.add_parser("samples", help="generate the sample office files")
    s.add_argument("dir")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_samples)

    tb = sub.add_parser("tables", help="list the local Delta tables")
    tb.add_argument("--warehouse")
    tb.set_defaults(func=cmd_tables)

    for mod in COMMAND_MODULES:
        importlib.import_module(mod).add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    setup_logging(getattr(args, "verbose", False))
    if rest and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from lakedoc.config import ConfigError

    try:
        return args.func(args, rest) if getattr(args, "passthrough", False) else args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
