"""The ingestion tasks (``ingest_<family>``: ``ingest_docx`` ... ``ingest_mail_text``, one per family of
:data:`lakedoc.ingest.formats.INGEST_FAMILIES`): input files -> the bronze ``documents`` table.

Per task (one *family* of formats):

1. List the input (:func:`list_input`). A local folder (a plain path, ``file:``, ``/Volumes/...``) is
   walked with ``os.scandir`` from its real path: every regular file, whatever its name (``:``,
   ``{}``, ``[]``, ``\\``, a leading ``_`` or ``.``, 0 bytes), symbolic links not followed. An
   ``abfss://`` folder is listed the same way (every file) through the DataLake SDK
   (:mod:`lakedoc.ingest.sources`: one interface, local folder or ADLS Gen2). Other URIs
   (``dbfs:``) are listed by Spark's ``binaryFile`` source as before (which skips names
   starting with ``_`` / ``.`` and 0-byte files). Listing does not read file content. The task keeps
   the files its family owns (:func:`lakedoc.ingest.extract.owner_family`: by extension; ``mail_text``
   also takes every file no family lists).
2. Skip files whose (path, modification time, size, extractor version) is already in the table —
   unless lakedoc moved the file away since its row was written (a ``done`` row of ``file_moves``,
   :mod:`lakedoc.lake.archive`) and it is back in landing: it is processed again (one row per file still).
3. Extract in ``mapInPandas`` (Spark Connect safe). The paths travel as data, never as Spark path
   patterns: a local or ``abfss://`` file is read by path in the Python worker (its source's
   ``read``); another remote file's bytes come from one
   ``binaryFile`` scan of the input root, pruned to files modified since the oldest file to extract
   and joined to the paths to extract. Files over ``ingest.max_file_mb`` are never read
   (``too_large``). :func:`lakedoc.ingest.extract.extract_file` gives the file's row and one row per
   attachment (recursively), each with a status: a bad file yields a row, never a failed task.
4. MERGE into ``documents`` on ``doc_id`` within the task's partition (``source_task``), so the five
   ingestion tasks write the one table concurrently without conflicts. Files gone from the input and
   attachments gone from a changed file are soft-deleted (``is_deleted``), never dropped; an input
   with no files at all is logged as a WARNING (and its rows are soft-deleted too). A file that left
   the input because lakedoc archived or quarantined it (a ``done`` move of that path after its row
   was written) keeps its rows live, so silver, predictions and the index keep the document.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from lakedoc.ingest.extractors.base import Limits
from lakedoc.ingest.listing import LISTING_COLUMNS, Listing, is_local_input, list_local  # noqa: F401 - re-exported
from lakedoc.schema import DOCUMENTS
from lakedoc.tasks import TaskContext, TaskResult

# The table's schema, keys, partitioning, scope and compared columns (text follows from content +
# extractor version) are lakedoc.schema.DOCUMENTS's; MERGEs are scoped to the task's family.


def doc_id_for(source_path: str, attachment_path: str = "") -> str:
    """Stable id: derived from the source path and, for attachments, the path inside it."""
    key = source_path if not attachment_path else f"{source_path}\x00{attachment_path}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def clean_path(path: str) -> str:
    """Spark reports local files as ``file:/x``: keep the path as a user gave it (``/x``)."""
    return path[5:] if path.startswith("file:/") and not path.startswith("file://") else path


# ---------------------------------------------------------------------------------------------- listing
# (local listing and the Listing type: lakedoc.ingest.listing)

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


def list_input(spark, input_path: str, log=None, cfg=None) -> Listing:
    """A local folder or an ``abfss://`` folder (``cfg``: ``input.abfss_reader`` and the ``lake``
    settings) through its :mod:`lakedoc.ingest.sources` source; other URIs through Spark's ``binaryFile``."""
    from lakedoc.ingest.sources import open_source

    source = open_source(input_path, cfg)
    return source.list(log) if source is not None else list_remote(spark, input_path)


def family_files(listing: Listing, family: str) -> pd.DataFrame:
    """The listed files ``family`` owns (exactly one family owns each file)."""
    from lakedoc.ingest.extract import owner_family

    files = listing.files
    if not len(files):
        return files.copy()
    names = files["path"].map(lambda p: p.rsplit("/", 1)[-1])
    return files[(names.map(owner_family) == family).to_numpy()].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- extraction


def _extract_partition(family: str, limits: Limits, run_id: str, source: Any):
    """Build the mapInPandas function (a closure over small picklable values only)."""

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from lakedoc.ingest.extract import EXTRACTOR_VERSION, claimed_family, extract_file, file_extension
        from lakedoc.ingest.extractors.base import error_message

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
                    if source is not None:  # the path as data: read by path here, never a path pattern
                        try:
                            data = source.read(source_path, rec.fs_path, size, limits.max_bytes)
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


# Fixed cost of one file in the packing, in bytes of content: opening it, the forked extraction
# child, its rows. It keeps many tiny files from all landing in one work unit. Measured on the shared
# corpus: a tiny file costs ~11 ms, a MB of docx/pdf ~0.4-0.8 s, so ~32 KB. (At 256 KB, ten tiny files
# outweighed one 2 MB e-mail whose attachments need OCR: that slow unit ran last and held the stage.)
PER_FILE_COST_BYTES = 32 * 1024


def pack_files(sizes, n_units: int) -> list[int]:
    """Size-aware work units: the unit (0 .. n_units-1) of each file.

    Greedy longest-processing-time packing by listed bytes (+ :data:`PER_FILE_COST_BYTES` a file):
    the largest file first, each into the unit with the least work so far; then the units are
    numbered heaviest first, so that the heavy ones start first (Spark launches a stage's tasks in
    partition order) and the small ones fill the gaps at the end. A file is never split or skipped.
    """
    import heapq

    costs = [max(int(s), 0) + PER_FILE_COST_BYTES for s in sizes]
    n_units = max(1, min(n_units, len(costs)))
    heap = [(0, u) for u in range(n_units)]
    unit_of = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        load, u = heapq.heappop(heap)
        unit_of[i] = u
        heapq.heappush(heap, (load + costs[i], u))
    order = sorted(heap, key=lambda lu: (-lu[0], lu[1]))  # heaviest unit first
    rank = {u: r for r, (_, u) in enumerate(order)}
    return [rank[u] for u in unit_of]


def _n_units(spark, n_files: int, files_per_partition: int) -> int:
    from lakedoc.spark import task_slots

    # at least one unit per task slot (while there are files), so that every core has work
    return max(1, min(n_files, max(-(-n_files // files_per_partition), task_slots(spark))))


def _source_frame(spark, listing: Listing, todo: pd.DataFrame, max_bytes: int, files_per_partition: int):
    """The files to extract as a Spark DataFrame (path, fs_path, mtime_us, length[, content]), one
    partition per size-aware work unit (:func:`pack_files`)."""
    from pyspark.sql import functions as F

    from lakedoc.spark import placement_keys

    readable = todo[todo["length"] <= max_bytes] if listing.source is None else todo
    n_parts = _n_units(spark, len(readable), files_per_partition)
    keys = placement_keys(n_parts)
    # a file over max_bytes is not read (too_large): it costs what an empty file costs
    sizes = readable["length"].where(readable["length"] <= max_bytes, 0)
    unit_key = pd.Series([keys[u] for u in pack_files(sizes, n_parts)], index=readable.index, dtype="int32")
    if listing.source is not None:
        pdf = todo[LISTING_COLUMNS].copy()
        pdf["fs_path"] = pdf["fs_path"].map(bytes)
        pdf["unit"] = unit_key
        return spark.createDataFrame(pdf, "path string, fs_path binary, mtime_us long, length long, unit int") \
            .repartition(n_parts, "unit").drop("unit")
    schema = "path string, fs_path binary, mtime_us long, length long, content binary"
    small = readable
    large = todo[todo["length"] > max_bytes]
    frames = []
    if len(small):
        # one scan of the root (no file path is ever parsed as a pattern); binaryFile applies the
        # modificationTime / length filters to each file's status before reading its content
        wanted = spark.createDataFrame(small[["path", "mtime_us", "length"]].assign(unit=unit_key),
                                       "path string, mtime_us long, length long, unit int")
        scan = (spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(listing.root)
                .filter(F.col("modificationTime") >= F.timestamp_micros(F.lit(int(small["mtime_us"].min()))))
                .filter(F.col("length") <= F.lit(max_bytes))
                .select(F.col("path").alias("spark_path"), "content"))
        clean = F.when(F.col("spark_path").startswith("file:/") & ~F.col("spark_path").startswith("file://"),
                       F.expr("substring(spark_path, 6)")).otherwise(F.col("spark_path"))
        frames.append(
            scan.withColumn("path", clean).join(F.broadcast(wanted), "path")
            .repartition(n_parts, "unit")
            .select("path", F.lit(None).cast("binary").alias("fs_path"), "mtime_us", "length", "content"))
    if len(large):
        frames.append(spark.createDataFrame(
            large[["path", "mtime_us", "length"]].assign(fs_path=None, content=None)
            [["path", "fs_path", "mtime_us", "length", "content"]], schema))
    return frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])


def ingest_family(ctx: TaskContext, family: str) -> TaskResult:
    from lakedoc.ingest.extract import EXTRACTOR_VERSION
    from lakedoc.ingest.formats import CATCH_ALL_FAMILY, FAMILIES, INGEST_FAMILIES

    if family not in INGEST_FAMILIES:
        raise ValueError(f"unknown ingestion family {family!r}; families: {', '.join(INGEST_FAMILIES)}")
    spark, settings, log = ctx.spark, ctx.cfg.ingest, ctx.log
    limits = Limits.from_settings(settings)
    input_path = ctx.input_path or ctx.cfg.resolve_path(ctx.cfg.input.path)
    listing = list_input(spark, input_path, log if family == CATCH_ALL_FAMILY else None, ctx.cfg)
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
    _adopt_renamed_rows(store, family, log)
    existing = None
    if store.exists(DOCUMENTS):
        existing = store.read_arrow(
            DOCUMENTS, ["doc_id", "root_doc_id", "depth", "source_path", "modified_at", "size_bytes",
                        "extractor_version", "is_deleted", "ingested_at"], where={"source_task": family}).to_pandas()
    moves = last_moves(store)
    if not len(listing.files):
        live_rows = existing[~existing["is_deleted"].fillna(False).astype(bool)] if existing is not None else None
        live = 0 if live_rows is None else int((~moved_away(live_rows, moves)).sum())
        if live or live_rows is None or not len(live_rows):
            log.warning("the input %s holds no files at all: nothing to ingest%s. Check --input / input.path "
                        "(job parameter input_path).", listing.root,
                        f"; the {live} row(s) of this task still live are marked deleted" if live else "")
        else:
            log.info("the input %s holds no files: every file of this task was archived or quarantined; "
                     "its %d row(s) stay live", listing.root, len(live_rows))
    todo = listed
    returned: set[str] = set()
    if existing is not None and len(existing) and len(listed):
        live_roots = existing[(existing["depth"] == 0) & (~existing["is_deleted"].fillna(False).astype(bool))]
        # back in landing after lakedoc moved it away (its row predates the move): processed again
        returned = set(live_roots.loc[moved_away(live_roots, moves), "source_path"]) & set(listed["path"])
        roots = live_roots[(live_roots["extractor_version"] == EXTRACTOR_VERSION)
                           & ~live_roots["source_path"].isin(returned)]
        seen = {(p, int(s) if pd.notna(s) else -1, m)
                for p, s, m in zip(roots["source_path"], roots["size_bytes"], _epoch_us(roots["modified_at"]),
                                   strict=True)}
        keep = [(p, int(s), int(m)) not in seen
                for p, s, m in zip(listed["path"], listed["length"], listed["mtime_us"], strict=True)]
        todo = listed[pd.Series(keep, index=listed.index, dtype=bool)]
    log.info("%d new or changed file(s) to extract, %d unchanged%s", len(todo), len(listed) - len(todo),
             f" ({len(returned)} back in the input after lakedoc moved them away)" if returned else "")

    written, status_counts = 0, {}
    if len(todo):
        source = _source_frame(spark, listing, todo, limits.max_bytes, settings.files_per_partition)
        extracted = source.mapInPandas(_extract_partition(family, limits, ctx.run_id, listing.source),
                                       DOCUMENTS.ddl)
        # every row extracted is written, run_id and ingested_at included, even where its compared
        # columns are unchanged (a file back in landing: archive_inputs waits for a row newer than its move)
        result = store.merge(DOCUMENTS, extracted, scope=DOCUMENTS.scope_of(family),
                             compare=(*(DOCUMENTS.compare or ()), "run_id"))
        written = result.written
        status_counts = _status_counts(store, family, ctx.run_id)
        log.info("documents: %d inserted, %d updated, %d unchanged; statuses this run: %s",
                 result.inserted, result.updated, result.unchanged, status_counts)

    deleted = _soft_delete(ctx, family, set(listed["path"]), set(todo["path"]), listing.unlisted_dirs, moves)
    return TaskResult(rows_in=len(listed), rows_out=written + deleted,
                      details={"files_listed": len(listed), "files_in_input": len(listing.files),
                               "files_extracted": int(len(todo)), "rows_written": written,
                               "soft_deleted": deleted, "statuses": status_counts,
                               "files_back_after_move": len(returned),
                               "symlinks_not_followed": len(listing.symlinks),
                               "unlisted_folders": len(listing.unlisted_dirs)})


def _status_counts(store, family: str, run_id: str) -> dict:
    t = store.read_arrow(DOCUMENTS, ["status", "run_id"], where={"source_task": family, "run_id": run_id})
    return t.to_pandas()["status"].value_counts().to_dict() if t.num_rows else {}


def last_moves(store) -> dict[str, int]:
    """The latest ``done`` move of each source path in ``file_moves`` (epoch microseconds): files
    lakedoc itself moved out of the input (``archive_inputs``: archive or quarantine)."""
    from lakedoc.schema import FILE_MOVES

    if not store.exists(FILE_MOVES):
        return {}
    t = store.read_arrow(FILE_MOVES, ["source_path", "moved_at"], where={"state": "done"}).to_pandas()
    out: dict[str, int] = {}
    for path, when in zip(t["source_path"], _epoch_us(t["moved_at"]), strict=True):
        out[path] = max(out.get(path, -1), when)
    return out


def moved_away(rows: pd.DataFrame, moves: dict[str, int]) -> pd.Series:
    """Per row (``source_path``, ``ingested_at``): lakedoc moved its file away after the row was written."""
    if not moves or not len(rows):
        return pd.Series(False, index=rows.index, dtype=bool)
    flags = [path in moves and written <= moves[path]
             for path, written in zip(rows["source_path"], _epoch_us(rows["ingested_at"]), strict=True)]
    return pd.Series(flags, index=rows.index, dtype=bool)


def _soft_delete(ctx: TaskContext, family: str, present: set[str], reextracted: set[str],
                 unlisted_dirs=(), moves: dict[str, int] | None = None) -> int:
    """Mark rows deleted: files no longer in the input, and attachments a re-extracted file no longer
    has. Rows under a folder that could not be listed this run are left alone, and so are the rows of
    a file lakedoc moved away (archived or quarantined) after they were written."""
    import pyarrow as pa
    import pyarrow.compute as pc

    store = ctx.tables
    if not store.exists(DOCUMENTS):
        return 0
    from lakedoc.ingest.extract import EXTRACTOR_VERSION

    cur = store.read_arrow(DOCUMENTS, ["doc_id", "source_path", "depth", "extractor_version", "is_deleted",
                                       "run_id", "ingested_at"], where={"source_task": family}).to_pandas()
    live = cur[~cur["is_deleted"].fillna(False).astype(bool)]
    gone = ~live["source_path"].isin(present) & ~moved_away(live, moves or {})
    for folder in unlisted_dirs:
        gone &= ~live["source_path"].str.startswith(folder.rstrip("/") + "/")
    stale = live["source_path"].isin(reextracted) & (live["run_id"] != ctx.run_id)
    # An extraction writes a file's row and all its attachments' rows in one MERGE, with one run_id: a
    # live attachment whose run_id is not its file's was left by an earlier extraction. Normally the
    # rule above catches it in the same run; this catches it after a run killed between its MERGE and
    # this soft delete (the file, unchanged since, is not re-extracted). Only files of the current
    # extractor version: every row of those was written by one extraction.
    roots = live[(live["depth"] == 0) & (live["extractor_version"] == EXTRACTOR_VERSION)]
    root_run = live["source_path"].map(dict(zip(roots["source_path"], roots["run_id"], strict=True)))
    stale |= (live["depth"] > 0) & root_run.notna() & (live["run_id"] != root_run)
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
    store.merge(DOCUMENTS, victims, scope=DOCUMENTS.scope_of(family))
    ctx.log.info("soft-deleted %d row(s) (%d file(s) gone from the input)", n, int(gone.sum()))
    return n


def _adopt_renamed_rows(store, family: str, log) -> int:
    """Rows a renamed family wrote under its old name (``source_task`` ``msg`` -> ``mail_text``) move to
    the new partition, then leave the old one: one row per file stays. Idempotent: a run killed between
    the two steps finishes the move on the next run."""
    import pyarrow as pa

    from lakedoc.ingest.formats import RENAMED_FAMILIES

    old_names = [old for old, new in RENAMED_FAMILIES.items() if new == family]
    if not old_names or not store.exists(DOCUMENTS):
        return 0
    moved = 0
    for old in old_names:
        rows = store.read_arrow(DOCUMENTS, where={"source_task": old})
        if not rows.num_rows:
            continue
        i = rows.schema.get_field_index("source_task")
        rows = rows.set_column(i, "source_task", pa.array([family] * rows.num_rows, rows.schema.field(i).type))
        store.merge(DOCUMENTS, rows, scope=DOCUMENTS.scope_of(family))
        store.delete_where(DOCUMENTS, "source_task", [old])
        log.info("moved %d row(s) of the family formerly called %r to %r", rows.num_rows, old, family)
        moved += rows.num_rows
    return moved


def run(ctx: TaskContext) -> TaskResult:
    """Every ingestion task: the family is the one the task key names (``ingest_<family>``)."""
    from lakedoc.ingest.formats import INGEST_TASKS

    if ctx.task not in INGEST_TASKS:
        raise ValueError(f"{ctx.task!r} is not an ingestion task; those are: {', '.join(INGEST_TASKS)}")
    return ingest_family(ctx, INGEST_TASKS[ctx.task])
