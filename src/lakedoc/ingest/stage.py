"""The ingestion tasks (``ingest_docx`` ... ``ingest_msg``): input files -> the bronze ``documents`` table.

Per task (one *family* of formats):

1. List the input (:func:`list_input`). A local folder (a plain path, ``file:``, ``/Volumes/...``) is
   walked with ``os.scandir`` from its real path: every regular file, whatever its name (``:``,
   ``{}``, ``[]``, ``\\``, a leading ``_`` or ``.``, 0 bytes), symbolic links not followed. Other URIs
   (``abfss://``, ``dbfs:``) are listed by Spark's ``binaryFile`` source as before (which skips names
   starting with ``_`` / ``.`` and 0-byte files). Listing does not read file content. The task keeps
   the files its family owns (:func:`lakedoc.ingest.extract.owner_family`: by extension; ``msg`` also
   takes every file no family lists).
2. Skip files whose (path, modification time, size, extractor version) is already in the table.
3. Extract in ``mapInPandas`` (Spark Connect safe). The paths travel as data, never as Spark path
   patterns: a local file is read by path in the Python worker; a remote file's bytes come from one
   ``binaryFile`` scan of the input root, pruned to files modified since the oldest file to extract
   and joined to the paths to extract. Files over ``ingest.max_file_mb`` are never read
   (``too_large``). :func:`lakedoc.ingest.extract.extract_file` gives the file's row and one row per
   attachment (recursively), each with a status: a bad file yields a row, never a failed task.
4. MERGE into ``documents`` on ``doc_id`` within the task's partition (``source_task``), so the five
   ingestion tasks write the one table concurrently without conflicts. Files gone from the input and
   attachments gone from a changed file are soft-deleted (``is_deleted``), never dropped; an input
   with no files at all is logged as a WARNING (and its rows are soft-deleted too).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

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


# ---------------------------------------------------------------------------------------------- listing

LISTING_COLUMNS = ["path", "fs_path", "mtime_us", "length"]


@dataclass
class Listing:
    """Every file under the input: ``files`` has one row per regular file with ``path`` (the row's
    ``source_path``: the real path for local input), ``fs_path`` (its bytes for ``open``; None for
    remote input), ``mtime_us`` (modification time, epoch microseconds, millisecond precision) and
    ``length`` (bytes)."""

    root: str
    local: bool
    files: pd.DataFrame
    symlinks: list[str] = field(default_factory=list)  # not followed
    special: list[str] = field(default_factory=list)  # sockets, FIFOs, devices: not regular files
    unlisted_dirs: list[str] = field(default_factory=list)  # could not be read: rows below are kept


def is_local_input(path: str) -> bool:
    """A plain path (``/Volumes/...`` included) or a ``file:`` URI; not ``abfss://``, ``dbfs:`` ..."""
    if path.startswith("file:"):
        return True
    return "://" not in path and not path.startswith("dbfs:")


def _local_path(path: str) -> str:
    if path.startswith("file://"):
        path = path[7:]
    elif path.startswith("file:"):
        path = path[5:]
    return os.path.realpath(path)


def _display(raw: bytes) -> str:
    """A file system path as text: UTF-8, undecodable bytes written as ``\\xNN``."""
    return raw.decode("utf-8", errors="backslashreplace")


def list_local(root: str, log=None) -> Listing:
    """Walk a local folder from its real path without following symbolic links (bytes paths, so a
    name that is not UTF-8 is still listed; ``source_path`` is then written with ``\\xNN``)."""
    real = _local_path(root)
    listing = Listing(real, True, pd.DataFrame(columns=LISTING_COLUMNS))
    rows: list[tuple] = []
    seen: set[str] = set()

    def add(raw: bytes, st) -> None:
        shown = _display(raw)
        if shown in seen:  # only possible for two names that differ in undecodable bytes vs "\\xNN"
            if log:
                log.warning("skipped %s: its name is written like another file's", shown)
            return
        seen.add(shown)
        rows.append((shown, raw, st.st_mtime_ns // 1_000_000 * 1000, int(st.st_size)))

    if not os.path.exists(real):
        raise FileNotFoundError(f"input folder {root} does not exist")
    if not os.path.isdir(real):
        add(os.fsencode(real), os.stat(real))
    stack = [os.fsencode(real)] if os.path.isdir(real) else []
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            listing.unlisted_dirs.append(_display(folder))
            if log:
                log.warning("cannot list %s (%s): its files are not ingested this run and their rows "
                            "are kept as they are", _display(folder), exc)
            continue
        for entry in entries:
            try:
                if entry.is_symlink():
                    listing.symlinks.append(_display(entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    add(entry.path, entry.stat(follow_symlinks=False))
                else:
                    listing.special.append(_display(entry.path))
            except OSError as exc:  # vanished while listing, or no permission to stat it
                if log:
                    log.warning("cannot stat %s: %s", _display(entry.path), exc)
    if rows:
        listing.files = pd.DataFrame(rows, columns=LISTING_COLUMNS)
    return listing


def list_remote(spark, root: str) -> Listing:
    """A non-local URI (``abfss://``, ``dbfs:``): Spark's ``binaryFile`` listing, as it always was.

    Spark's file index skips names starting with ``_`` or ``.`` and yields no row for 0-byte files;
    ``root`` is a Hadoop path pattern (glob characters in it are interpreted)."""
    from pyspark.sql import functions as F

    df = (spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(root)
          .select("path", F.unix_micros("modificationTime").alias("mtime_us"), "length"))
    files = df.toPandas()
    files["path"] = files["path"].map(clean_path)
    files["fs_path"] = None
    return Listing(root, False, files[LISTING_COLUMNS])


def list_input(spark, input_path: str, log=None) -> Listing:
    return list_local(input_path, log) if is_local_input(input_path) else list_remote(spark, input_path)


def family_files(listing: Listing, family: str) -> pd.DataFrame:
    """The listed files ``family`` owns (exactly one family owns each file)."""
    from lakedoc.ingest.extract import owner_family

    files = listing.files
    if not len(files):
        return files.copy()
    names = files["path"].map(lambda p: p.rsplit("/", 1)[-1])
    return files[(names.map(owner_family) == family).to_numpy()].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- extraction


def _extract_partition(family: str, limits_kw: dict, run_id: str, read_local: bool):
    """Build the mapInPandas function (a closure over small picklable values only)."""

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from lakedoc.ingest.extract import EXTRACTOR_VERSION, Limits, claimed_family, extract_file, file_extension
        from lakedoc.ingest.extractors import error_message

        limits = Limits(**limits_kw)
        for batch in batches:
            rows = []
            now = datetime.now(timezone.utc)
            for rec in batch.itertuples(index=False):
                source_path = rec.path
                file_name = source_path.rsplit("/", 1)[-1]
                root_id = doc_id_for(source_path)
                modified = pd.Timestamp(int(rec.mtime_us), unit="us", tz="UTC") if pd.notna(rec.mtime_us) else None
                size = int(rec.length)
                base = {
                    "root_doc_id": root_id, "source_task": family, "source_path": source_path,
                    "extractor_version": EXTRACTOR_VERSION, "is_deleted": False, "deleted_at": None,
                    "run_id": run_id, "ingested_at": now,
                }
                ext = file_extension(file_name)
                own = {**base, "doc_id": root_id, "parent_doc_id": None, "attachment_path": "", "depth": 0,
                       "file_name": file_name, "extension": ext, "format": None, "size_bytes": size,
                       "modified_at": modified, "content_hash": None, "text": None, "char_count": 0,
                       "units": [], "unit_count": 0, "metadata": {}}
                data = None
                if size <= limits.max_bytes:
                    if read_local:  # the path as data: read by path here, never a Spark path pattern
                        try:
                            with open(bytes(rec.fs_path), "rb") as fh:
                                data = fh.read(limits.max_bytes + 1)
                        except OSError as exc:  # vanished, unreadable: a row with the reason
                            rows.append({**own, "status": "error", "error": error_message(exc)})
                            continue
                    else:
                        data = None if rec.content is None else bytes(rec.content)
                if data is None or len(data) > limits.max_bytes:  # not read: over the size limit
                    rows.append({**own, "status": "too_large",
                                 "error": f"file is {max(size, len(data or b'')) / 2**20:.1f} MB, over "
                                          f"ingest.max_file_mb ({limits.max_bytes / 2**20:.0f} MB)"})
                    continue
                content_hash = hashlib.sha256(data).hexdigest()
                # a file no family lists (the catch-all's leftovers): its content alone decides
                expected = family if claimed_family(file_name) == family else None
                parts = extract_file(data, file_name, expected, limits)
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
                        "extension": file_extension(part.file_name) if ap else ext,
                        "format": part.format,
                        "size_bytes": size if not ap else None,
                        "modified_at": modified,
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


def _epoch_us(values) -> list[int]:
    """Timestamps (tz-aware, or naive meaning UTC) -> epoch microseconds (-1 for null)."""
    out = []
    for v in values:
        if v is None or pd.isna(v):
            out.append(-1)
            continue
        t = pd.Timestamp(v)
        t = t.tz_localize("UTC") if t.tzinfo is None else t
        out.append(t.value // 1000)
    return out


def _source_frame(spark, listing: Listing, todo: pd.DataFrame, max_bytes: int, files_per_partition: int):
    """The files to extract as a Spark DataFrame (path, fs_path, mtime_us, length[, content])."""
    from pyspark.sql import functions as F

    n_parts = max(1, -(-len(todo) // files_per_partition))
    if listing.local:
        pdf = todo[LISTING_COLUMNS].copy()
        pdf["fs_path"] = pdf["fs_path"].map(bytes)
        return spark.createDataFrame(pdf, "path string, fs_path binary, mtime_us long, length long") \
            .repartition(n_parts)
    schema = "path string, fs_path binary, mtime_us long, length long, content binary"
    small = todo[todo["length"] <= max_bytes]
    large = todo[todo["length"] > max_bytes]
    frames = []
    if len(small):
        # one scan of the root (no file path is ever parsed as a pattern); binaryFile applies the
        # modificationTime / length filters to each file's status before reading its content
        wanted = spark.createDataFrame(small[["path", "mtime_us", "length"]],
                                       "path string, mtime_us long, length long")
        scan = (spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(listing.root)
                .filter(F.col("modificationTime") >= F.timestamp_micros(F.lit(int(small["mtime_us"].min()))))
                .filter(F.col("length") <= F.lit(max_bytes))
                .select(F.col("path").alias("spark_path"), "content"))
        clean = F.when(F.col("spark_path").startswith("file:/") & ~F.col("spark_path").startswith("file://"),
                       F.expr("substring(spark_path, 6)")).otherwise(F.col("spark_path"))
        frames.append(
            scan.withColumn("path", clean).join(F.broadcast(wanted), "path")
            .select("path", F.lit(None).cast("binary").alias("fs_path"), "mtime_us", "length", "content")
            .repartition(n_parts))
    if len(large):
        frames.append(spark.createDataFrame(
            large[["path", "mtime_us", "length"]].assign(fs_path=None, content=None)
            [["path", "fs_path", "mtime_us", "length", "content"]], schema))
    return frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])


def ingest_family(ctx: TaskContext, family: str) -> TaskResult:
    from lakedoc.config_schema import INGEST_FAMILIES
    from lakedoc.ingest.extract import CATCH_ALL_FAMILY, EXTRACTOR_VERSION, FAMILIES

    assert family in INGEST_FAMILIES
    spark, cfg, log = ctx.spark, ctx.cfg["ingest"], ctx.log
    max_bytes = int(cfg["max_file_mb"] * 2**20)
    limits_kw = dict(
        max_bytes=max_bytes, timeout_s=float(cfg["timeout_s"]),
        max_uncompressed_bytes=int(cfg["max_uncompressed_mb"] * 2**20),
        max_compression_ratio=float(cfg["max_compression_ratio"]),
        max_attachment_depth=int(cfg["max_attachment_depth"]),
    )
    input_path = ctx.input_path or ctx.cfg.resolve_path(ctx.cfg["input"]["path"])
    listing = list_input(spark, input_path, log if family == CATCH_ALL_FAMILY else None)
    listed = family_files(listing, family)
    owns = "/".join(FAMILIES[family]) + (" and every file no other family lists" if family == CATCH_ALL_FAMILY else "")
    log.info("%d file(s) for this task (%s) of %d under %s", len(listed), owns, len(listing.files), listing.root)
    if listing.symlinks and family == CATCH_ALL_FAMILY:
        log.info("%d symbolic link(s) not followed (a link gets no row; its target has one only where it "
                 "is itself a file under the input), e.g. %s", len(listing.symlinks), listing.symlinks[0])
    if listing.special and family == CATCH_ALL_FAMILY:
        log.warning("%d entr(y/ies) that are not regular files skipped, e.g. %s", len(listing.special),
                    listing.special[0])

    store = ctx.tables
    existing = None
    if store.exists(DOCUMENTS):
        existing = store.read_arrow(
            DOCUMENTS, ["doc_id", "root_doc_id", "depth", "source_path", "modified_at", "size_bytes",
                        "extractor_version", "is_deleted"], where={"source_task": family}).to_pandas()
    if not len(listing.files):
        live = 0 if existing is None else int((~existing["is_deleted"].fillna(False).astype(bool)).sum())
        log.warning("the input %s holds no files at all: nothing to ingest%s. Check --input / input.path "
                    "(job parameter input_path).", listing.root,
                    f"; the {live} row(s) of this task still live are marked deleted" if live else "")
    todo = listed
    if existing is not None and len(existing) and len(listed):
        roots = existing[(existing["depth"] == 0) & (~existing["is_deleted"].fillna(False).astype(bool))
                         & (existing["extractor_version"] == EXTRACTOR_VERSION)]
        seen = {(p, int(s) if pd.notna(s) else -1, m)
                for p, s, m in zip(roots["source_path"], roots["size_bytes"], _epoch_us(roots["modified_at"]),
                                   strict=True)}
        keep = [(p, int(s), int(m)) not in seen
                for p, s, m in zip(listed["path"], listed["length"], listed["mtime_us"], strict=True)]
        todo = listed[pd.Series(keep, index=listed.index, dtype=bool)]
    log.info("%d new or changed file(s) to extract, %d unchanged", len(todo), len(listed) - len(todo))

    written, status_counts = 0, {}
    if len(todo):
        source = _source_frame(spark, listing, todo, max_bytes, int(cfg["files_per_partition"]))
        extracted = source.mapInPandas(_extract_partition(family, limits_kw, ctx.run_id, listing.local),
                                       DOCUMENTS_DDL)
        result = store.merge(DOCUMENTS, extracted, keys=["doc_id"], scope={"source_task": family},
                             partition_by=["source_task"], compare=COMPARE)
        written = result.written
        status_counts = _status_counts(store, family, ctx.run_id)
        log.info("documents: %d inserted, %d updated, %d unchanged; statuses this run: %s",
                 result.inserted, result.updated, result.unchanged, status_counts)

    deleted = _soft_delete(ctx, family, set(listed["path"]), set(todo["path"]), listing.unlisted_dirs)
    return TaskResult(rows_in=len(listed), rows_out=written + deleted,
                      details={"files_listed": len(listed), "files_in_input": len(listing.files),
                               "files_extracted": int(len(todo)), "rows_written": written,
                               "soft_deleted": deleted, "statuses": status_counts,
                               "symlinks_not_followed": len(listing.symlinks),
                               "unlisted_folders": len(listing.unlisted_dirs)})


def _status_counts(store, family: str, run_id: str) -> dict:
    t = store.read_arrow(DOCUMENTS, ["status", "run_id"], where={"source_task": family, "run_id": run_id})
    return t.to_pandas()["status"].value_counts().to_dict() if t.num_rows else {}


def _soft_delete(ctx: TaskContext, family: str, present: set[str], reextracted: set[str],
                 unlisted_dirs=()) -> int:
    """Mark rows deleted: files no longer in the input, and attachments a re-extracted file no longer
    has. Rows under a folder that could not be listed this run are left alone."""
    import pyarrow as pa
    import pyarrow.compute as pc

    store = ctx.tables
    if not store.exists(DOCUMENTS):
        return 0
    cur = store.read_arrow(DOCUMENTS, ["doc_id", "source_path", "is_deleted", "run_id"],
                           where={"source_task": family}).to_pandas()
    live = cur[~cur["is_deleted"].fillna(False).astype(bool)]
    gone = ~live["source_path"].isin(present)
    for folder in unlisted_dirs:
        gone &= ~live["source_path"].str.startswith(folder.rstrip("/") + "/")
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
