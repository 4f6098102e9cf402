"""The ``redact_pii`` task: bronze ``documents`` (status ``ok`` or ``partial``, not deleted) -> silver
``documents_redacted`` and ``pii_findings``. Nothing downstream ever reads unredacted text.

1. Plan on the driver from light columns only: a document is (re)done when it is new, its
   ``content_hash`` or ``extractor_version`` changed, or the redaction configuration hash changed.
   Silver rows whose bronze row is gone, soft-deleted or no longer ``ok`` are deleted (with their
   findings). Nothing to do -> nothing written (no new table version).
2. Redact in ``mapInPandas`` (Spark Connect safe): the Presidio engine is built once per Python worker
   (:func:`lakedoc.pii.engine.get_engine`) and each Arrow batch goes through one batched NLP pass.
   Documents are spread over the partitions by length (longest first) so the workers finish together.
   ``file_name`` and ``source_path`` are redacted there too, with the same engine (:func:`_redact_names`).
3. MERGE both tables on their keys, in rounds of ``pii.docs_per_round`` documents (progress kept if a
   later round fails): ``pii_findings`` first, ``documents_redacted`` last. The two commits are not one
   transaction; silver's row is the completion mark instead. A process killed after the findings commit
   leaves the round's silver rows missing or stale, so the next run's plan redoes those documents and
   their findings are replaced again (``replace_within``); deletes go the same way (findings, then
   silver). The plan also redoes a silver row whose findings carry another configuration hash.
   Each round's ``mapInPandas`` runs once (``TableStore.materialize``: a staging Delta table on Unity
   Catalog) and the silver rows and findings are Spark DataFrames over it, so no document text is
   collected to the driver; only counts and doc ids are. A document whose redaction
   fails gets status ``redaction_error``, an error message and **no text**; the task itself goes on.
"""
from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone

import pandas as pd
import pyarrow as pa

from lakedoc.schema import DOCUMENTS, DOCUMENTS_REDACTED as REDACTED, FINDING, PII_FINDINGS as FINDINGS, ddl_of
from lakedoc.tasks import TaskContext, TaskResult

# the redaction workers' output: the documents_redacted row plus its findings (-> pii_findings)
REDACTED_DDL = ddl_of(pa.schema([*REDACTED.schema][:-2] + [pa.field("findings", pa.list_(FINDING))]
                                 + [*REDACTED.schema][-2:]))  # ..., error, findings, run_id, processed_at
REDACTED_COLUMNS = REDACTED.column_names
FINDINGS_COLUMNS = FINDINGS.column_names
_INPUT_COLUMNS = ["doc_id", "root_doc_id", "source_task", "source_path", "file_name", "format",
                  "content_hash", "extractor_version", "text", "units"]


def _redact_partition(settings: dict, hash_key: str | None, cfg_hash: str, run_id: str, max_chars: int):
    """The mapInPandas function: a closure over small picklable values only (no engine, no model)."""

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from lakedoc.pii.engine import Redaction, get_engine

        engine = get_engine(settings, hash_key)
        for batch in batches:
            docs = []
            for text, units in zip(batch["text"], batch["units"], strict=True):
                docs.append({"text": text if isinstance(text, str) else "",
                             "units": [dict(u) for u in units] if units is not None else []})
            results = engine.redact_documents(docs, max_chars=max_chars)
            names = _redact_names(engine, [v for col in _NAME_COLUMNS for v in batch[col]])
            now = datetime.now(timezone.utc)
            rows = []
            for i, (rec, res) in enumerate(zip(batch.drop(columns=["text", "units"]).to_dict("records"), results,
                                               strict=True)):
                found = res.findings
                counts: dict[str, int] = {}
                for f in found:
                    counts[f.entity_type] = counts.get(f.entity_type, 0) + 1
                name_res = [names[k * len(batch) + i] for k in range(len(_NAME_COLUMNS))]
                failed = [col for col, (_, nf) in zip(_NAME_COLUMNS, name_res, strict=True)
                          if isinstance(nf, Exception)]
                for col, (value, name_found) in zip(_NAME_COLUMNS, name_res, strict=True):
                    rec[col] = _NAME_WITHHELD if failed and rec[col] is not None else value  # never unredacted
                    for f in [] if isinstance(name_found, Exception) else name_found:
                        counts[f.entity_type] = counts.get(f.entity_type, 0) + 1
                if failed:  # no names, no text
                    res = Redaction.failed(f"redaction of {', '.join(failed)} failed")
                    found, counts = (), {}
                rows.append({
                    **rec, "redacted_text": res.redacted_text,
                    "redacted_units": list(res.units) if res.units is not None else None,
                    "entity_counts": counts, "finding_count": len(found), "config_hash": cfg_hash,
                    "status": res.status, "error": res.error,
                    "findings": [{"entity_type": f.entity_type, "start": f.start, "end": f.end,
                                  "score": f.score, "recognizer": f.recognizer} for f in found],
                    "run_id": run_id, "processed_at": now,
                })
            yield pd.DataFrame(rows)

    return fn


_NAME_COLUMNS = ("file_name", "source_path")
_NAME_SEPARATORS = str.maketrans("_-./", "    ")
_SEGMENT = re.compile(r"[^/\\]+")
_URI_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/]*")
_NAME_WITHHELD = "<REDACTION_ERROR>"  # never the original, never null (a null name means "none")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")


def _name_pieces(value: str) -> list[tuple[int, str]]:
    """(offset, text) of the parts of a file name or path to analyse: each folder / file name on its own
    (a finding never spans a ``/``); the last one without its extension; a URI's scheme and authority
    are not analysed."""
    authority = _URI_AUTHORITY.match(value)  # abfss://container@account...: storage, not a person
    segs = [(m.start(), m.group(0)) for m in _SEGMENT.finditer(value, authority.end() if authority else 0)]
    if segs:
        off, last = segs[-1]
        ext = _EXTENSION.search(last)
        if ext and ext.start() > 0:
            segs[-1] = (off, last[:ext.start()])
    return segs


def _cover(found: list) -> list:
    """Overlapping findings merged into one span (type and score of the best one, the first on a tie):
    every character any finding covers is replaced once."""
    out: list = []
    for f in sorted(found, key=lambda f: (f.start, -f.end)):
        if out and f.start < out[-1].end:
            last = out[-1]
            top = f if f.score > last.score else last
            out[-1] = replace(top, start=last.start, end=max(last.end, f.end))
        else:
            out.append(f)
    return out


def _redact_names(engine, values: list) -> list[tuple[str | None, list | Exception]]:
    """File names / source paths redacted with the text's engine, settings and operators: per value
    ``(redacted value, findings in it)`` (or the exception). Each folder / file name is analysed as is
    and with ``_ - . /`` as spaces (words for NER and the name gazetteer); the as-is form only adds
    validated formats (``SPECIFIC_TYPES``: e-mail addresses, IBANs... which the word form breaks apart;
    NER reads ``Offer_letter Jane`` as one name). The findings (same offsets) are replaced in the
    original string. No finding -> the value unchanged."""
    from lakedoc.pii.engine import SPECIFIC_TYPES

    pieces = {v: _name_pieces(v) for v in set(values) if isinstance(v, str) and v}
    texts = sorted({t for ps in pieces.values() for _, p in ps for t in (p.translate(_NAME_SEPARATORS), p)})
    analysed = dict(zip(texts, engine.analyze_many(texts), strict=True)) if texts else {}
    done: dict[str, tuple[str | None, list | Exception]] = {}
    for v, ps in pieces.items():
        found: list = []
        try:
            for off, p in ps:
                for as_is, t in ((False, p.translate(_NAME_SEPARATORS)), (True, p)):  # word form first: wins a tie
                    res = analysed[t]
                    if isinstance(res, Exception):
                        raise res
                    found += [replace(f, start=f.start + off, end=f.end + off) for f in res
                              if not as_is or f.entity_type in SPECIFIC_TYPES]
            found = _cover(found)
            done[v] = (engine.anonymize(v, found) if found else v, found)
        except Exception as exc:  # noqa: BLE001 - the document fails alone, its names are not written
            done[v] = (_NAME_WITHHELD, exc)
    return [done[v] if isinstance(v, str) and v else (v if isinstance(v, str) else None, []) for v in values]


def _balanced_buckets(lengths: dict[str, int], n: int) -> dict[str, int]:
    """Longest-processing-time-first: each document (longest first) goes to the lightest bucket."""
    heap = [(0, b) for b in range(n)]
    out = {}
    for doc_id, length in sorted(lengths.items(), key=lambda kv: -kv[1]):
        load, b = heapq.heappop(heap)
        out[doc_id] = b
        heapq.heappush(heap, (load + max(int(length), 1) + 200, b))  # +200: per-document overhead
    return out


def plan(ctx: TaskContext, cfg_hash: str) -> tuple[pd.DataFrame, list[str], int]:
    """(bronze rows to redact [doc_id, char_count], doc_ids to delete from silver and findings, live
    bronze count).

    Silver's row is the completion mark (see :func:`run`): a document is done when its silver row has
    the bronze row's content hash, extractor version and the current configuration hash **and** its
    findings agree with that row (every finding carries the row's configuration hash; a row that counts
    findings has some). The second check repairs a warehouse written before silver was committed last
    (findings of an old configuration behind a current silver row). Documents to delete: silver rows
    and findings whose document is not live any more (findings can outlive their silver row when a run
    died between the two deletes or before a new document's silver row was written).
    """
    store = ctx.tables
    if not store.exists(DOCUMENTS):
        return pd.DataFrame(columns=["doc_id", "char_count"]), [], 0
    bronze = store.read_arrow(DOCUMENTS, ["doc_id", "content_hash", "extractor_version", "status",
                                          "is_deleted", "char_count"]).to_pandas()
    from lakedoc.ingest.extract import OK_STATUSES  # ok, and partial (text kept from a damaged file)

    live = bronze[bronze["status"].isin(OK_STATUSES) & (~bronze["is_deleted"].fillna(False).astype(bool))]
    if store.exists(REDACTED):
        silver = store.read_arrow(REDACTED, ["doc_id", "content_hash", "extractor_version",
                                             "config_hash", "finding_count"]).to_pandas()
    else:
        silver = pd.DataFrame(columns=["doc_id", "content_hash", "extractor_version", "config_hash",
                                       "finding_count"])
    found = _finding_hashes(store)
    done = {(d, c, e, h) for d, c, e, h, n in zip(silver["doc_id"], silver["content_hash"],
                                                   silver["extractor_version"], silver["config_hash"],
                                                   silver["finding_count"], strict=True)
            if found.get(d, set()) <= {h} and (d in found or not (n or 0) > 0)}
    # a boolean Series, not a list: ``live[[]]`` (no live document) would select zero columns
    mask = pd.Series([(d, c, e, cfg_hash) not in done for d, c, e in
                      zip(live["doc_id"], live["content_hash"], live["extractor_version"], strict=True)],
                     index=live.index, dtype=bool)
    todo = live[mask]
    gone = sorted((set(silver["doc_id"]) | set(found)) - set(live["doc_id"]))
    return todo[["doc_id", "char_count"]].reset_index(drop=True), gone, len(live)


def _finding_hashes(store) -> dict[str, set[str]]:
    """doc_id -> the configuration hashes its findings carry (one Spark aggregation; a few per doc)."""
    if not store.exists(FINDINGS):
        return {}
    rows = store.read(FINDINGS, ["doc_id", "config_hash"]).distinct().toArrow().to_pylist()
    out: dict[str, set[str]] = {}
    for r in rows:
        out.setdefault(r["doc_id"], set()).add(r["config_hash"])
    return out


def run(ctx: TaskContext) -> TaskResult:
    from pyspark.sql import functions as F

    from lakedoc.pii.engine import config_hash, load_settings, resolve_hash_key
    from lakedoc.spark import placement_keys, task_slots

    log, store, spark = ctx.log, ctx.tables, ctx.spark
    settings = load_settings(ctx.cfg.pii)
    hash_key = resolve_hash_key(settings)
    cfg_hash = config_hash(settings, hash_key)
    todo, gone, n_live = plan(ctx, cfg_hash)
    log.info("redaction config %s: %d live document(s), %d to redact, %d to remove from silver",
             cfg_hash, n_live, len(todo), len(gone))

    removed = 0
    if gone:  # findings first, silver last (see the commit order below)
        store.delete_where(FINDINGS, "doc_id", gone)
        removed = store.delete_where(REDACTED, "doc_id", gone)
        log.info("removed %d silver document(s) deleted or no longer ok in bronze", len(gone))

    slots = task_slots(spark)
    per_round = int(settings["docs_per_round"])
    totals = {"redacted": 0, "errors": 0, "findings": 0, "rows_written": 0}
    entity_totals: dict[str, int] = {}
    for r0 in range(0, len(todo), per_round):
        part = todo.iloc[r0:r0 + per_round]
        n_parts = max(1, min(len(part), slots * int(settings["partitions_per_slot"])))
        buckets = _balanced_buckets(dict(zip(part["doc_id"], part["char_count"].fillna(0), strict=True)), n_parts)
        ids = list(buckets)
        # each bucket is one partition: its placement key hashes to it (no range sampling job); the
        # broadcast join selects the round's documents (dynamic file pruning on Databricks)
        keys = placement_keys(n_parts)
        wanted = spark.createDataFrame(pd.DataFrame({"doc_id": ids, "_bucket": [keys[buckets[i]] for i in ids]}),
                                       "doc_id string, _bucket int")
        src = store.read(DOCUMENTS, _INPUT_COLUMNS).join(F.broadcast(wanted), on="doc_id")
        if n_parts > 1:
            src = src.repartition(n_parts, "_bucket")
        src = src.drop("_bucket")
        redacted = src.mapInPandas(
            _redact_partition(settings, hash_key, cfg_hash, ctx.run_id, int(settings["max_doc_chars"])),
            REDACTED_DDL)
        # computed once (a staging table on Unity Catalog); everything below is Spark on ``out``,
        # only counts and doc ids come back to the driver
        with store.materialize(redacted) as out:
            stats = _round_stats(out)
            docs = out.select(*REDACTED_COLUMNS)
            findings = _findings_frame(out, cfg_hash, ctx.run_id)
            # Commit order: findings first, silver last. Silver's row is the completion mark that
            # plan() reads, so a process killed between the commits leaves documents whose silver row
            # is missing or stale: the next run redoes them and their findings are replaced again.
            # findings of the re-redacted documents replace their old ones (also when there are none now)
            fres = store.merge(FINDINGS, findings,
                               replace_within=FINDINGS.replace_within) if stats["findings"] else None
            if stats["no_findings"]:
                store.delete_where(FINDINGS, "doc_id", stats["no_findings"])
            res = store.merge(REDACTED, docs)
            totals["rows_written"] += res.written
            for k, v in stats["entity_counts"].items():
                entity_totals[k] = entity_totals.get(k, 0) + v
        n_err, n_ok = stats["errors"], stats["rows"] - stats["errors"]
        totals["redacted"] += n_ok
        totals["errors"] += n_err
        totals["findings"] += stats["findings"]
        log.info("round %d: %d document(s) redacted, %d redaction error(s), %d finding(s)%s",
                 r0 // per_round + 1, n_ok, n_err, stats["findings"],
                 f"; findings merged: {fres.written} written, {fres.deleted} replaced" if fres else "")
    return TaskResult(
        rows_in=n_live, rows_out=totals["rows_written"] + removed,
        details={"config_hash": cfg_hash, "documents_live": n_live, "documents_todo": int(len(todo)),
                 "documents_redacted": totals["redacted"], "redaction_errors": totals["errors"],
                 "findings": totals["findings"], "entity_counts": entity_totals, "removed": len(gone)})


def _findings_frame(out, cfg_hash: str, run_id: str):
    """One row per finding of the redacted rows ``out`` (a Spark DataFrame): FINDINGS_COLUMNS, with
    start/end int and score double, config hash and run id as literals."""
    from pyspark.sql import functions as F

    f = F.col("_f")
    return (out.select("doc_id", F.explode("findings").alias("_f"))
            .select(F.col("doc_id").cast("string").alias("doc_id"),
                    f["entity_type"].cast("string").alias("entity_type"),
                    f["start"].cast("int").alias("start"), f["end"].cast("int").alias("end"),
                    f["score"].cast("double").alias("score"), f["recognizer"].cast("string").alias("recognizer"),
                    F.lit(cfg_hash).cast("string").alias("config_hash"),
                    F.lit(run_id).cast("string").alias("run_id")))


def _round_stats(out) -> dict:
    """Rows, redaction errors, findings, the doc ids without findings and the findings per entity type
    (the sum of the rows' ``entity_counts`` maps) of one round: one aggregation, one job."""
    from pyspark.sql import functions as F

    row = out.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(F.col("status") == "redaction_error", 1).otherwise(0)).alias("errors"),
        F.sum(F.when(F.col("findings").isNull(), 0).otherwise(F.size("findings"))).alias("findings"),
        F.collect_list(F.when(F.col("finding_count") == 0, F.col("doc_id"))).alias("no_findings"),
        F.collect_list(F.when(F.size("entity_counts") > 0, F.col("entity_counts"))).alias("entity_counts"),
    ).first()
    totals: dict[str, int] = {}
    for counts in row["entity_counts"] or []:
        for k, v in (counts or {}).items():
            totals[k] = totals.get(k, 0) + int(v or 0)
    return {"rows": int(row["rows"] or 0), "errors": int(row["errors"] or 0),
            "findings": int(row["findings"] or 0), "no_findings": sorted(row["no_findings"] or []),
            "entity_counts": dict(sorted(totals.items()))}
