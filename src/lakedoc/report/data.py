"""The figures of a run report, gathered from the tables through the table store.

Every figure is read through :class:`lakedoc.tables.TableStore` (delta-rs locally, Spark SQL on Unity
Catalog), so a Delta table is read through its transaction log, never as plain Parquet. Only the
columns a figure needs are read: never document text. On Spark the counts are aggregated by Spark
(``groupBy().count()``), so a large table never travels to the driver row by row.

What a report must not show, and how it is avoided:

* **document text** — no text column is read at all;
* **raw file names** (names can carry personal data) — file names come from the silver
  ``documents_redacted`` table only; a file that never reached silver (a failed extraction) is named
  by its document id and extension; a bronze ``error`` message has the raw name and path replaced.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any

from lakedoc import schema

log = logging.getLogger(__name__)

# The tables a report reads (the table registry's names).
DOCUMENTS = schema.DOCUMENTS.name
REDACTED = schema.DOCUMENTS_REDACTED.name
FINDINGS = schema.PII_FINDINGS.name
PREDICTIONS = schema.PREDICTIONS.name
EVALUATIONS = schema.EVALUATIONS.name
PIPELINE_RUNS = schema.PIPELINE_RUNS.name
CHUNKS = schema.CHUNKS.name

MAX_FAILED_LISTED = 200
MAX_ERROR_CHARS = 240


@dataclass
class TaskRow:
    task: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    rows_in: int
    rows_out: int
    error: str | None

    @property
    def rows_out_per_s(self) -> float | None:
        if not self.duration_s or self.duration_s <= 0:
            return None
        return self.rows_out / self.duration_s

    @property
    def rows_in_per_s(self) -> float | None:
        if not self.duration_s or self.duration_s <= 0:
            return None
        return self.rows_in / self.duration_s


@dataclass
class FailedFile:
    name: str  # redacted name (silver) or "doc <id>.<ext>"; never the raw file name
    format: str
    stage: str  # "ingest" (bronze status) or "redact_pii" (silver status)
    status: str
    error: str


@dataclass
class MethodScores:
    method: str
    micro_f1: float | None
    macro_f1: float | None
    n_test: int | None
    per_label_f1: dict[str, float] = field(default_factory=dict)


@dataclass
class RetrievalInfo:
    """Where the retrieval metrics come from (the fields ``lakedoc evaluate-search`` records)."""
    evaluated_at: datetime | None
    queries: int | None
    queries_file: str | None
    index_backend: str | None


@dataclass
class ReportData:
    source: str
    run_id: str | None
    generated_at: datetime
    runs: list[tuple[str, datetime | None]]  # every run id known, newest first, with its start
    tasks: list[TaskRow]
    files_by_format_status: dict[tuple[str, str], int]
    failed_files: list[FailedFile]
    failed_total: int
    pii_by_entity: dict[str, int]
    pii_documents: int
    labels_by_method: dict[str, dict[str, int]]
    documents_by_method: dict[str, int]
    evaluations: list[MethodScores]
    retrieval: dict[str, dict[str, float]] = field(default_factory=dict)
    retrieval_info: RetrievalInfo | None = None
    table_versions: dict[str, int | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def total_files(self) -> int:
        return sum(self.files_by_format_status.values())


# -- reading helpers --------------------------------------------------------------------------------

def _is_spark_store(store) -> bool:
    from lakedoc.tables import UnityCatalogStore

    return isinstance(store, UnityCatalogStore)


def _exists(store, table: str) -> bool:
    try:
        return bool(store.exists(table))
    except Exception as exc:  # noqa: BLE001 - a table that cannot be checked is reported as absent
        log.warning("report: cannot check table %s: %s", table, exc)
        return False


def _columns(store, table: str) -> set[str]:
    if _is_spark_store(store):
        return set(store.read(table).columns)
    from deltalake import DeltaTable

    schema = DeltaTable(store.location(table)).schema()
    return set(schema.to_arrow().names) if hasattr(schema, "to_arrow") else {f.name for f in schema.fields}


def _counts(store, table: str, by: list[str], filters: dict[str, Any] | None = None) -> list[dict]:
    """``SELECT by..., count(*) AS n FROM table [WHERE col = value ...] GROUP BY by...`` through the store.

    A filter value of ``None`` means "IS NOT TRUE" (null or false), for ``is_deleted``.
    """
    filters = filters or {}
    if _is_spark_store(store):
        from pyspark.sql import functions as F

        df = store.read(table, [*by, *[c for c in filters if c not in by]])
        for col, value in filters.items():
            df = df.filter(~F.coalesce(F.col(col), F.lit(False))) if value is None else df.filter(F.col(col) == value)
        return df.groupBy(*by).count().withColumnRenamed("count", "n").toArrow().to_pylist()
    import pyarrow.compute as pc

    t = store.read_arrow(table, [*by, *[c for c in filters if c not in by]])
    for col, value in filters.items():
        c = t.column(col)
        mask = pc.invert(pc.fill_null(c, False)) if value is None else pc.equal(c, value)
        t = t.filter(pc.fill_null(mask, False))
    if t.num_rows == 0:
        return []
    g = t.select(by).group_by(by).aggregate([([], "count_all")])
    return [{**{k: r[k] for k in by}, "n": r["count_all"]} for r in g.to_pylist()]


def _read(store, table: str, columns: list[str], where: dict[str, Any] | None = None) -> list[dict]:
    return store.read_arrow(table, columns, where=where).to_pylist()


# -- the figures ------------------------------------------------------------------------------------

def _runs(store) -> list[tuple[str, datetime | None]]:
    starts: dict[str, datetime | None] = {}
    for r in _read(store, PIPELINE_RUNS, ["run_id", "started_at"]):
        s = r["started_at"]
        cur = starts.get(r["run_id"])
        starts[r["run_id"]] = s if cur is None or (s is not None and s < cur) else cur
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(starts.items(), key=lambda kv: (_utc(kv[1]) or epoch, kv[0]), reverse=True)


def _utc(d: datetime | None) -> datetime | None:
    if d is None:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def _tasks(store, run_id: str) -> list[TaskRow]:
    cols = ["task", "status", "started_at", "ended_at", "duration_s", "rows_in", "rows_out", "error"]
    rows = _read(store, PIPELINE_RUNS, cols, where={"run_id": run_id})
    out = [TaskRow(r["task"], r["status"], _utc(r["started_at"]), _utc(r["ended_at"]),
                   r["duration_s"], int(r["rows_in"] or 0), int(r["rows_out"] or 0), r["error"]) for r in rows]
    epoch = datetime.max.replace(tzinfo=timezone.utc)
    return sorted(out, key=lambda t: (t.started_at or epoch, t.task))


def _files(store) -> dict[tuple[str, str], int]:
    rows = _counts(store, DOCUMENTS, ["format", "status"], {"is_deleted": None})
    return {(r["format"] or "unknown", r["status"] or "unknown"): int(r["n"]) for r in rows}


def _scrub(text: str | None, raw: list[str], replacement: str) -> str:
    """``text`` with each raw name/path replaced (longest first), cut to MAX_ERROR_CHARS."""
    out = text or ""
    for r in sorted({x for x in raw if x and len(x) >= 3}, key=len, reverse=True):
        out = out.replace(r, replacement)
    return out if len(out) <= MAX_ERROR_CHARS else out[:MAX_ERROR_CHARS - 1] + "…"


def _not_ok(store, table: str, columns: list[str], live_only: bool) -> tuple[list[dict], int]:
    """Rows of ``table`` whose ``status`` is not ``ok`` (not deleted, with ``live_only``): the first
    MAX_FAILED_LISTED by (status, format, doc_id), and how many there are. Filtered where the data is."""
    if _is_spark_store(store):
        from pyspark.sql import functions as F

        df = store.read(table, columns).filter(F.coalesce(F.col("status"), F.lit("")) != "ok")
        if live_only:
            df = df.filter(~F.coalesce(F.col("is_deleted"), F.lit(False)))
        total = df.count()
        rows = df.orderBy("status", "format", "doc_id").limit(MAX_FAILED_LISTED).toArrow().to_pylist()
        return rows, total
    rows = [r for r in _read(store, table, columns)
            if r["status"] != "ok" and not (live_only and r.get("is_deleted"))]
    rows.sort(key=lambda r: (r["status"] or "", r["format"] or "", r["doc_id"]))
    return rows[:MAX_FAILED_LISTED], len(rows)


def _redacted_names(store, doc_ids: list[str]) -> dict[str, str]:
    if not doc_ids or not _exists(store, REDACTED):
        return {}
    if _is_spark_store(store):
        from pyspark.sql import functions as F

        rows = (store.read(REDACTED, ["doc_id", "file_name"]).filter(F.col("doc_id").isin(doc_ids))
                .toArrow().to_pylist())
    else:
        wanted = set(doc_ids)
        rows = [r for r in _read(store, REDACTED, ["doc_id", "file_name"]) if r["doc_id"] in wanted]
    return {r["doc_id"]: r["file_name"] for r in rows if r["file_name"]}


def _failed(store) -> tuple[list[FailedFile], int]:
    """Files whose extraction (bronze ``documents``) or redaction (silver) did not give ``ok``."""
    from pathlib import PurePosixPath

    cols = ["doc_id", "file_name", "source_path", "extension", "format", "status", "error", "is_deleted"]
    bronze, n_bronze = _not_ok(store, DOCUMENTS, cols, live_only=True)
    names = _redacted_names(store, [r["doc_id"] for r in bronze])
    failed = []
    for r in bronze:
        ext = (r["extension"] or "").lstrip(".")
        name = names.get(r["doc_id"]) or f"doc {r['doc_id'][:12]}" + (f".{ext}" if ext else "")
        raw = [r["file_name"] or "", r["source_path"] or "", PurePosixPath(r["file_name"] or "").stem]
        failed.append(FailedFile(name, r["format"] or "unknown", "ingest", r["status"] or "unknown",
                                 _scrub(r["error"], raw, "<file>")))
    n_silver = 0
    if _exists(store, REDACTED):
        silver, n_silver = _not_ok(store, REDACTED, ["doc_id", "file_name", "format", "status", "error"],
                                   live_only=False)
        for r in silver:  # silver names and errors are redacted already
            failed.append(FailedFile(r["file_name"] or f"doc {r['doc_id'][:12]}", r["format"] or "unknown",
                                     "redact_pii", r["status"] or "unknown", _scrub(r["error"], [], "")))
    return failed[:MAX_FAILED_LISTED], n_bronze + n_silver


def _pii(store) -> tuple[dict[str, int], int]:
    rows = _counts(store, FINDINGS, ["entity_type"])
    by_type = {r["entity_type"] or "unknown": int(r["n"]) for r in rows}
    docs = len(_counts(store, FINDINGS, ["doc_id"]))
    return dict(sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0]))), docs


def _labels(store) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Predicted labels per method (documents per label) and documents scored per method.

    The stages delete the predictions of documents that are deleted or no longer ``ok``, so the
    table's current rows are the live documents' labels.
    """
    out: dict[str, dict[str, int]] = {}
    for r in _counts(store, PREDICTIONS, ["method", "label"], {"predicted": True}):
        out.setdefault(r["method"], {})[r["label"]] = int(r["n"])
    docs: dict[str, int] = {}
    for r in _counts(store, PREDICTIONS, ["method", "doc_id"]):
        docs[r["method"]] = docs.get(r["method"], 0) + 1
    return ({m: dict(sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))) for m, v in sorted(out.items())},
            dict(sorted(docs.items())))


def _float(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _evaluations(store, run_id: str | None) -> list[MethodScores]:
    cols = ["run_id", "method", "micro_f1", "macro_f1", "n_test", "per_label", "created_at"]
    have = _columns(store, EVALUATIONS)
    rows = _read(store, EVALUATIONS, [c for c in cols if c in have])
    # the run's own evaluations; for a method it did not evaluate, its latest one
    latest: dict[str, dict] = {}
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    for r in rows:
        m = r["method"]
        cur = latest.get(m)
        mine, cur_mine = r.get("run_id") == run_id, cur is not None and cur.get("run_id") == run_id
        newer = cur is None or (_utc(r.get("created_at")) or epoch) > (_utc(cur.get("created_at")) or epoch)
        if cur is None or (mine and not cur_mine) or (mine == cur_mine and newer):
            latest[m] = r
    out = []
    for m, r in sorted(latest.items()):
        per_label: dict[str, float] = {}
        try:
            for label, v in (json.loads(r.get("per_label") or "{}") or {}).items():
                f1 = _float((v or {}).get("f1")) if isinstance(v, dict) else _float(v)
                if f1 is not None:
                    per_label[label] = f1
        except (TypeError, ValueError):
            pass
        n_test = r.get("n_test")
        out.append(MethodScores(m, _float(r.get("micro_f1")), _float(r.get("macro_f1")),
                                int(n_test) if n_test is not None else None, dict(sorted(per_label.items()))))
    return out


def latest_run_id(store) -> str:
    """The run of ``pipeline_runs`` that started last."""
    if not _exists(store, PIPELINE_RUNS):
        raise FileNotFoundError("no pipeline_runs table: run the job first")
    runs = _runs(store)
    if not runs:
        raise ValueError("pipeline_runs holds no run")
    return runs[0][0]


def gather(store, run_id: str | None = None, source: str = "", retrieval: dict | None = None) -> ReportData:
    """Every figure of the report for ``run_id`` (default: the latest run in ``pipeline_runs``).

    Tables that do not exist yet give empty figures and a note; ``pipeline_runs`` must exist.
    """
    notes: list[str] = []
    if not _exists(store, PIPELINE_RUNS):
        raise FileNotFoundError(f"no pipeline_runs table in {source or 'the table store'}: run the job first")
    runs = _runs(store)
    if run_id is None:
        if not runs:
            raise ValueError("pipeline_runs holds no run")
        run_id = runs[0][0]
    elif run_id not in {r for r, _ in runs}:
        known = ", ".join(r for r, _ in runs[:10])
        raise ValueError(f"run {run_id!r} is not in pipeline_runs (latest runs: {known})")
    tasks = _tasks(store, run_id)
    whole = next((t for t in tasks if t.task == "_run"), None)  # lakedoc run's own row (lakedoc.tasks.RUN_TASK)
    tasks = [t for t in tasks if t.task != "_run"]  # the page's task figures count the DAG's tasks only
    if whole is not None and whole.status in ("running", "abandoned"):
        notes.append(f"run {run_id} has no end recorded ({whole.status}): it is still running, or it was killed "
                     f"before its last task")

    files: dict[tuple[str, str], int] = {}
    failed: list[FailedFile] = []
    failed_total = 0
    if _exists(store, DOCUMENTS):
        files = _files(store)
        failed, failed_total = _failed(store)
    else:
        notes.append("table documents does not exist yet: no file figures")
    pii: dict[str, int] = {}
    pii_docs = 0
    if _exists(store, FINDINGS):
        pii, pii_docs = _pii(store)
    else:
        notes.append("table pii_findings does not exist yet: no PII figures")
    labels: dict[str, dict[str, int]] = {}
    docs_by_method: dict[str, int] = {}
    if _exists(store, PREDICTIONS):
        labels, docs_by_method = _labels(store)
    else:
        notes.append("table predictions does not exist yet: no label figures")
    evaluations = _evaluations(store, run_id) if _exists(store, EVALUATIONS) else []
    if not evaluations:
        notes.append("no evaluations recorded (the baselines task writes them)")
    versions = {t: (store.version(t) if _exists(store, t) else None)
                for t in (DOCUMENTS, REDACTED, FINDINGS, CHUNKS, PREDICTIONS, EVALUATIONS, PIPELINE_RUNS)}
    return ReportData(
        source=source, run_id=run_id, generated_at=datetime.now(timezone.utc), runs=runs, tasks=tasks,
        files_by_format_status=dict(sorted(files.items())), failed_files=failed, failed_total=failed_total,
        pii_by_entity=pii, pii_documents=pii_docs, labels_by_method=labels, documents_by_method=docs_by_method,
        evaluations=evaluations, retrieval=_retrieval(retrieval), retrieval_info=_retrieval_info(retrieval),
        table_versions=versions, notes=notes)


def _retrieval(metrics: dict | None) -> dict[str, dict[str, float]]:
    """``{"modes": {mode: {metric: value}}}`` (the JSON of ``lakedoc evaluate-search --out``) -> mode -> metrics."""
    if not metrics:
        return {}
    modes = metrics.get("modes", metrics)
    out: dict[str, dict[str, float]] = {}
    for mode, vals in modes.items():
        if isinstance(vals, dict):
            nums = {k: float(v) for k, v in vals.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if nums:
                out[str(mode)] = nums
    return out



def _retrieval_info(metrics: dict | None) -> RetrievalInfo | None:
    if not metrics or not isinstance(metrics.get("modes"), dict):
        return None
    at = None
    if metrics.get("evaluated_at"):
        try:
            at = _utc(datetime.fromisoformat(str(metrics["evaluated_at"])))
        except ValueError:
            at = None
    queries = metrics.get("queries")
    return RetrievalInfo(at, int(queries) if isinstance(queries, (int, float)) else None,
                         PurePath(str(metrics["queries_file"])).name if metrics.get("queries_file") else None,
                         str(metrics["index_backend"]) if metrics.get("index_backend") else None)
