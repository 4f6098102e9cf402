"""The ingestion tasks (``ingest_docx`` ... ``ingest_msg``): input files -> the bronze ``documents`` table.

Per task (one *family* of formats):

1. List the input with Spark's ``binaryFile`` source (recursive; local paths, ``/Volumes/...`` and
   ``abfss://`` alike), keeping the family's extensions. Listing does not read file content.
2. Skip files whose (path, modification time, size, extractor version) is already in the table;
   read the content of the others (files over ``ingest.max_file_mb`` are never read: ``too_large``).
3. Extract in ``mapInPandas`` (Spark Connect safe): :func:`lakedoc.ingest.extract.extract_file` gives
   the file's row and one row per attachment (recursively), each with a status — a bad file yields a
   row with status and error, never a failed task.
4. MERGE into ``documents`` on ``doc_id`` within the task's partition (``source_task``), so the five
   ingestion tasks write the one table concurrently without conflicts. Files gone from the input and
   attachments gone from a changed file are soft-deleted (``is_deleted``), never dropped.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Iterator

import pandas as pd

from lakedoc.tasks import TaskContext, TaskResult

DOCUMENTS = "documents"

DOCUMENTS_DDL = """
doc_id string, root_doc_id string, parent_doc_id string, attachment_path string, depth int,
source_task string, source_path string, file_name string, extension string, format string,
size_bytes long, modified_at timestamp, content_hash string,
status string, error string, text string, char_count long,
units array<struct<kind:string,index:int,ref:string,text:string>>, unit_count int,
metadata map<string,string>, extractor_version string,
is_deleted boolean, deleted_at timestamp, run_id string, ingested_at timestamp
"""

# Columns that decide whether a stored row changed (text follows from content + extractor version).
COMPARE = ["content_hash", "status", "error", "extractor_version", "is_deleted", "modified_at", "size_bytes"]


def doc_id_for(source_path: str, attachment_path: str = "") -> str:
    """Stable id: derived from the source path and, for attachments, the path inside it."""
    key = source_path if not attachment_path else f"{source_path}\x00{attachment_path}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def clean_path(path: str) -> str:
    """Spark reports local files as ``file:/x``: keep the path as a user gave it (``/x``)."""
    return path[5:] if path.startswith("file:/") and not path.startswith("file://") else path


def _extension_regex(extensions) -> str:
    return r"(?i)\.(" + "|".join(extensions) + r")$"


def _extract_partition(family: str, limits_kw: dict, run_id: str):
    """Build the mapInPandas function (a closure over small picklable values only)."""

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from lakedoc.ingest.extract import EXTRACTOR_VERSION, Limits, extract_file

        limits = Limits(**limits_kw)
        for batch in batches:
            rows = []
            now = datetime.now(timezone.utc)
            for rec in batch.itertuples(index=False):
                source_path = clean_path(rec.path)
                file_name = source_path.rsplit("/", 1)[-1]
                root_id = doc_id_for(source_path)
                base = {
                    "root_doc_id": root_id, "source_task": family, "source_path": source_path,
                    "extractor_version": EXTRACTOR_VERSION, "is_deleted": False, "deleted_at": None,
                    "run_id": run_id, "ingested_at": now,
                }
                ext = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
                if rec.content is None:  # not read: over the size limit
                    rows.append({**base, "doc_id": root_id, "parent_doc_id": None, "attachment_path": "",
                                 "depth": 0, "file_name": file_name, "extension": ext, "format": None,
                                 "size_bytes": int(rec.length), "modified_at": rec.modificationTime,
                                 "content_hash": None, "status": "too_large",
                                 "error": f"file is {rec.length / 2**20:.1f} MB, over ingest.max_file_mb "
                                          f"({limits.max_bytes / 2**20:.0f} MB)",
                                 "text": None, "char_count": 0, "units": [], "unit_count": 0, "metadata": {}})
                    continue
                data = bytes(rec.content)
                content_hash = hashlib.sha256(data).hexdigest()
                parts = extract_file(data, file_name, family, limits)
                ids = {"": root_id}
                for part in parts:
                    ap = part.attachment_path
                    did = ids.setdefault(ap, doc_id_for(source_path, ap))
                    parent_ap = ap.rsplit("/", 1)[0] if "/" in ap else ""
                    units = [{"kind": u.kind, "index": int(u.index), "ref": u.ref, "text": u.text}
                             for u in part.units]
                    rows.append({
                        **base, "doc_id": did,
                        "parent_doc_id": None if not ap else ids.get(parent_ap, doc_id_for(source_path, parent_ap)),
                        "attachment_path": ap, "depth": int(part.depth), "file_name": part.file_name,
                        "extension": (part.file_name.rsplit(".", 1)[-1].lower() if "." in part.file_name else ""),
                        "format": part.format,
                        "size_bytes": int(rec.length) if not ap else None,
                        "modified_at": rec.modificationTime,
                        "content_hash": content_hash if not ap else hashlib.sha256(
                            f"{content_hash}/{ap}".encode()).hexdigest(),
                        "status": part.status, "error": part.error,
                        "text": part.text or "", "char_count": len(part.text or ""),
                        "units": units, "unit_count": len(units),
                        "metadata": {str(k): str(v) for k, v in (part.metadata or {}).items() if v is not None},
                    })
            if rows:
                yield pd.DataFrame(rows)

    return fn


def ingest_family(ctx: TaskContext, family: str) -> TaskResult:
    from pyspark.sql import functions as F

    from lakedoc.config_schema import INGEST_FAMILIES
    from lakedoc.ingest.extract import EXTRACTOR_VERSION, FAMILIES

    assert family in INGEST_FAMILIES
    spark, cfg, log = ctx.spark, ctx.cfg["ingest"], ctx.log
    max_bytes = int(cfg["max_file_mb"] * 2**20)
    limits_kw = dict(
        max_bytes=max_bytes, timeout_s=float(cfg["timeout_s"]),
        max_uncompressed_bytes=int(cfg["max_uncompressed_mb"] * 2**20),
        max_compression_ratio=float(cfg["max_compression_ratio"]),
        max_attachment_depth=int(cfg["max_attachment_depth"]),
    )
    listing = (
        spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(ctx.input_path)
        .select("path", "modificationTime", "length")
        .filter(F.col("path").rlike(_extension_regex(FAMILIES[family])))
    )
    listed = listing.toPandas()
    listed["source_path"] = listed["path"].map(clean_path)
    log.info("%d %s file(s) under %s", len(listed), "/".join(FAMILIES[family]), ctx.input_path)

    store = ctx.tables
    existing = None
    if store.exists(DOCUMENTS):
        existing = store.read_arrow(
            DOCUMENTS, ["doc_id", "root_doc_id", "depth", "source_path", "modified_at", "size_bytes",
                        "extractor_version", "is_deleted"], where={"source_task": family}).to_pandas()
    todo = listed
    if existing is not None and len(existing):
        roots = existing[(existing["depth"] == 0) & (~existing["is_deleted"].fillna(False))
                         & (existing["extractor_version"] == EXTRACTOR_VERSION)]
        seen = {(p, int(s) if pd.notna(s) else -1, pd.Timestamp(m).value // 1000 if pd.notna(m) else -1)
                for p, s, m in zip(roots["source_path"], roots["size_bytes"], roots["modified_at"])}
        keep = [(p, int(s), pd.Timestamp(m).value // 1000) not in seen
                for p, s, m in zip(listed["source_path"], listed["length"], listed["modificationTime"])]
        todo = listed[keep]
    log.info("%d new or changed file(s) to extract, %d unchanged", len(todo), len(listed) - len(todo))

    written, status_counts = 0, {}
    if len(todo):
        paths = todo["path"].tolist()
        small = [p for p, n in zip(paths, todo["length"]) if n <= max_bytes]
        large = todo[todo["length"] > max_bytes]
        frames = []
        if small:
            n_parts = max(1, -(-len(small) // ctx.cfg["ingest"]["files_per_partition"]))
            frames.append(
                spark.read.format("binaryFile").load(small)
                .select("path", "modificationTime", "length", "content")
                .repartition(n_parts)
            )
        if len(large):
            frames.append(spark.createDataFrame(
                large[["path", "modificationTime", "length"]].assign(content=None),
                "path string, modificationTime timestamp, length long, content binary"))
        source = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
        extracted = source.mapInPandas(_extract_partition(family, limits_kw, ctx.run_id), DOCUMENTS_DDL)
        result = store.merge(DOCUMENTS, extracted, keys=["doc_id"], scope={"source_task": family},
                             partition_by=["source_task"], compare=COMPARE)
        written = result.written
        status_counts = _status_counts(store, family, ctx.run_id)
        log.info("documents: %d inserted, %d updated, %d unchanged; statuses this run: %s",
                 result.inserted, result.updated, result.unchanged, status_counts)

    deleted = _soft_delete(ctx, family, set(listed["source_path"]), set(todo["source_path"]))
    return TaskResult(rows_in=len(listed), rows_out=written + deleted,
                      details={"files_listed": len(listed), "files_extracted": int(len(todo)),
                               "rows_written": written, "soft_deleted": deleted, "statuses": status_counts})


def _status_counts(store, family: str, run_id: str) -> dict:
    t = store.read_arrow(DOCUMENTS, ["status", "run_id"], where={"source_task": family, "run_id": run_id})
    return t.to_pandas()["status"].value_counts().to_dict() if t.num_rows else {}


def _soft_delete(ctx: TaskContext, family: str, present: set[str], reextracted: set[str]) -> int:
    """Mark rows deleted: files no longer in the input, and attachments a re-extracted file no longer has."""
    import pyarrow as pa
    import pyarrow.compute as pc

    store = ctx.tables
    if not store.exists(DOCUMENTS):
        return 0
    cur = store.read_arrow(DOCUMENTS, ["doc_id", "source_path", "is_deleted", "run_id"],
                           where={"source_task": family}).to_pandas()
    live = cur[~cur["is_deleted"].fillna(False).astype(bool)]
    gone = ~live["source_path"].isin(present)
    stale = live["source_path"].isin(reextracted) & (live["run_id"] != ctx.run_id)
    victim_ids = live.loc[gone | stale, "doc_id"].tolist()
    if not victim_ids:
        return 0
    full = store.read_arrow(DOCUMENTS, where={"source_task": family})
    victims = full.filter(pc.is_in(full.column("doc_id"), value_set=pa.array(victim_ids)))
    n = victims.num_rows
    victims = victims.set_column(victims.schema.get_field_index("is_deleted"), "is_deleted",
                                 pa.array([True] * n, pa.bool_()))
    now = datetime.now(timezone.utc)
    for col, value in (("deleted_at", now), ("run_id", ctx.run_id)):
        i = victims.schema.get_field_index(col)
        victims = victims.set_column(i, col, pa.array([value] * n, victims.schema.field(col).type))
    store.merge(DOCUMENTS, victims, keys=["doc_id"], scope={"source_task": family},
                partition_by=["source_task"], compare=COMPARE)
    ctx.log.info("soft-deleted %d row(s) (%d file(s) gone from the input)", n, int(gone.sum()))
    return n


def run_docx(ctx: TaskContext) -> TaskResult:
    return ingest_family(ctx, "docx")


def run_xlsx(ctx: TaskContext) -> TaskResult:
    return ingest_family(ctx, "xlsx")


def run_pptx(ctx: TaskContext) -> TaskResult:
    return ingest_family(ctx, "pptx")


def run_pdf(ctx: TaskContext) -> TaskResult:
    return ingest_family(ctx, "pdf")


def run_msg(ctx: TaskContext) -> TaskResult:
    return ingest_family(ctx, "msg")
