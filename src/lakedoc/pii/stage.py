"""The ``redact_pii`` task: bronze ``documents`` (status ``ok``, not deleted) -> silver
``documents_redacted`` and ``pii_findings``. Nothing downstream ever reads unredacted text.

1. Plan on the driver from light columns only: a document is (re)done when it is new, its
   ``content_hash`` or ``extractor_version`` changed, or the redaction configuration hash changed.
   Silver rows whose bronze row is gone, soft-deleted or no longer ``ok`` are deleted (with their
   findings). Nothing to do -> nothing written (no new table version).
2. Redact in ``mapInPandas`` (Spark Connect safe): the Presidio engine is built once per Python worker
   (:func:`lakedoc.pii.engine.get_engine`) and each Arrow batch goes through one batched NLP pass.
   Documents are spread over the partitions by length (longest first) so the workers finish together.
3. MERGE both tables on their keys, in rounds of ``pii.docs_per_round`` documents (bounded driver
   memory, progress kept if a later round fails). A document whose redaction fails gets status
   ``redaction_error``, an error message and **no text**; the task itself goes on.
"""
from __future__ import annotations

import heapq
from datetime import datetime, timezone
from typing import Iterator

import pandas as pd

from lakedoc.tasks import TaskContext, TaskResult

DOCUMENTS = "documents"
REDACTED = "documents_redacted"
FINDINGS = "pii_findings"

REDACTED_DDL = """
doc_id string, root_doc_id string, source_task string, source_path string, file_name string, format string,
content_hash string, extractor_version string, redacted_text string,
redacted_units array<struct<kind:string,index:int,ref:string,text:string>>,
entity_counts map<string,int>, finding_count int, config_hash string, status string, error string,
findings array<struct<entity_type:string,start:int,end:int,score:double,recognizer:string>>,
run_id string, processed_at timestamp
"""
REDACTED_COLUMNS = ["doc_id", "root_doc_id", "source_task", "source_path", "file_name", "format",
                    "content_hash", "extractor_version", "redacted_text", "redacted_units", "entity_counts",
                    "finding_count", "config_hash", "status", "error", "run_id", "processed_at"]
FINDINGS_COLUMNS = ["doc_id", "entity_type", "start", "end", "score", "recognizer", "config_hash", "run_id"]
_INPUT_COLUMNS = ["doc_id", "root_doc_id", "source_task", "source_path", "file_name", "format",
                  "content_hash", "extractor_version", "text", "units"]


def _redact_partition(settings: dict, hash_key: str | None, cfg_hash: str, run_id: str, max_chars: int):
    """The mapInPandas function: a closure over small picklable values only (no engine, no model)."""

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from lakedoc.pii.engine import get_engine

        engine = get_engine(settings, hash_key)
        for batch in batches:
            docs = []
            for text, units in zip(batch["text"], batch["units"]):
                docs.append({"text": text if isinstance(text, str) else "",
                             "units": [dict(u) for u in units] if units is not None else []})
            results = engine.redact_documents(docs, max_chars=max_chars)
            now = datetime.now(timezone.utc)
            rows = []
            for rec, res in zip(batch.drop(columns=["text", "units"]).to_dict("records"), results):
                found = res.get("findings") or []
                counts: dict[str, int] = {}
                for f in found:
                    counts[f.entity_type] = counts.get(f.entity_type, 0) + 1
                rows.append({
                    **rec, "redacted_text": res.get("redacted_text"), "redacted_units": res.get("units"),
                    "entity_counts": counts, "finding_count": len(found), "config_hash": cfg_hash,
                    "status": res["status"], "error": res.get("error"),
                    "findings": [{"entity_type": f.entity_type, "start": f.start, "end": f.end,
                                  "score": f.score, "recognizer": f.recognizer} for f in found],
                    "run_id": run_id, "processed_at": now,
                })
            yield pd.DataFrame(rows)

    return fn


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
    """(bronze rows to redact [doc_id, char_count], silver doc_ids to delete, live bronze count)."""
    store = ctx.tables
    if not store.exists(DOCUMENTS):
        return pd.DataFrame(columns=["doc_id", "char_count"]), [], 0
    bronze = store.read_arrow(DOCUMENTS, ["doc_id", "content_hash", "extractor_version", "status",
                                          "is_deleted", "char_count"]).to_pandas()
    live = bronze[(bronze["status"] == "ok") & (~bronze["is_deleted"].fillna(False).astype(bool))]
    if store.exists(REDACTED):
        silver = store.read_arrow(REDACTED, ["doc_id", "content_hash", "extractor_version",
                                             "config_hash"]).to_pandas()
    else:
        silver = pd.DataFrame(columns=["doc_id", "content_hash", "extractor_version", "config_hash"])
    done = {(d, c, e, h) for d, c, e, h in zip(silver["doc_id"], silver["content_hash"],
                                                silver["extractor_version"], silver["config_hash"])}
    todo = live[[(d, c, e, cfg_hash) not in done for d, c, e in
                 zip(live["doc_id"], live["content_hash"], live["extractor_version"])]]
    gone = sorted(set(silver["doc_id"]) - set(live["doc_id"]))
    return todo[["doc_id", "char_count"]].reset_index(drop=True), gone, len(live)


def run(ctx: TaskContext) -> TaskResult:
    import pyarrow.compute as pc
    from pyspark.sql import functions as F

    from lakedoc.pii.engine import config_hash, load_settings, resolve_hash_key
    from lakedoc.spark import task_slots

    log, store, spark = ctx.log, ctx.tables, ctx.spark
    settings = load_settings(ctx.cfg["pii"])
    hash_key = resolve_hash_key(settings)
    cfg_hash = config_hash(settings, hash_key)
    todo, gone, n_live = plan(ctx, cfg_hash)
    log.info("redaction config %s: %d live document(s), %d to redact, %d to remove from silver",
             cfg_hash, n_live, len(todo), len(gone))

    removed = 0
    if gone:
        removed = store.delete_where(REDACTED, "doc_id", gone)
        store.delete_where(FINDINGS, "doc_id", gone)
        log.info("removed %d silver document(s) deleted or no longer ok in bronze", len(gone))

    slots = task_slots(spark)
    per_round = int(settings["docs_per_round"])
    totals = {"redacted": 0, "errors": 0, "findings": 0, "rows_written": 0}
    entity_totals: dict[str, int] = {}
    for r0 in range(0, len(todo), per_round):
        part = todo.iloc[r0:r0 + per_round]
        n_parts = max(1, min(len(part), slots * int(settings["partitions_per_slot"])))
        buckets = _balanced_buckets(dict(zip(part["doc_id"], part["char_count"].fillna(0))), n_parts)
        ids = list(buckets)
        src = (store.read(DOCUMENTS, _INPUT_COLUMNS).filter(F.col("doc_id").isin(ids))
               .join(spark.createDataFrame(pd.DataFrame({"doc_id": ids, "_bucket": [buckets[i] for i in ids]})),
                     on="doc_id"))
        if n_parts > 1:
            src = src.repartitionByRange(n_parts, "_bucket")
        src = src.drop("_bucket")
        out = src.mapInPandas(
            _redact_partition(settings, hash_key, cfg_hash, ctx.run_id, int(settings["max_doc_chars"])),
            REDACTED_DDL).toArrow()
        docs = out.select(REDACTED_COLUMNS)
        findings = _findings_table(out, cfg_hash, ctx.run_id)
        res = store.merge(REDACTED, docs, keys=["doc_id"])
        totals["rows_written"] += res.written
        # findings of the re-redacted documents replace their old ones (also when there are none now)
        fres = store.merge(FINDINGS, findings, keys=["doc_id", "entity_type", "start", "end"],
                           replace_within="doc_id") if findings.num_rows else None
        no_findings = pc.filter(out.column("doc_id"), pc.equal(out.column("finding_count"), 0)).to_pylist()
        if no_findings:
            store.delete_where(FINDINGS, "doc_id", no_findings)
        n_err = int(pc.sum(pc.equal(out.column("status"), "redaction_error")).as_py() or 0)
        totals["redacted"] += out.num_rows - n_err
        totals["errors"] += n_err
        totals["findings"] += findings.num_rows
        for counts in out.column("entity_counts").to_pylist():
            for k, v in (counts or []):
                entity_totals[k] = entity_totals.get(k, 0) + int(v)
        log.info("round %d: %d document(s) redacted, %d redaction error(s), %d finding(s)%s",
                 r0 // per_round + 1, out.num_rows - n_err, n_err, findings.num_rows,
                 f"; findings merged: {fres.written} written, {fres.deleted} replaced" if fres else "")
    return TaskResult(
        rows_in=n_live, rows_out=totals["rows_written"] + removed,
        details={"config_hash": cfg_hash, "documents_live": n_live, "documents_todo": int(len(todo)),
                 "documents_redacted": totals["redacted"], "redaction_errors": totals["errors"],
                 "findings": totals["findings"], "entity_counts": entity_totals, "removed": len(gone)})


def _findings_table(out, cfg_hash: str, run_id: str):
    import pyarrow as pa

    rows = []
    for doc_id, found in zip(out.column("doc_id").to_pylist(), out.column("findings").to_pylist()):
        for f in found or []:
            rows.append({"doc_id": doc_id, **f, "config_hash": cfg_hash, "run_id": run_id})
    schema = pa.schema([("doc_id", pa.string()), ("entity_type", pa.string()), ("start", pa.int32()),
                        ("end", pa.int32()), ("score", pa.float64()), ("recognizer", pa.string()),
                        ("config_hash", pa.string()), ("run_id", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)
