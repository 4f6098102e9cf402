"""The ``index`` task: keep the vector index in step with the tables, incrementally and idempotently.

1. Build the index documents (:func:`lakedoc.index.documents.index_documents`) with a content hash.
2. Read ``index_state`` for this backend and index: what was pushed, with which hash.
3. Send the chunks that are new or whose hash changed (``mergeOrUpload`` keyed by ``chunk_id``), in
   slices of ``index.batch_size * 20`` chunks collected to the driver. Each slice is written ahead to
   ``index_state`` as *pending* (``content_hash`` null: in the index or not), then sent; the chunks the
   service acknowledged get their hash. A crashed push therefore resumes where it stopped (pending
   chunks are sent again, and a slice re-sent overwrites the same keys — nothing is duplicated), and
   a chunk it may have pushed is still named by the state when its document goes before the next run.
4. Delete from the index the chunks that are in the state but no longer wanted (documents deleted in
   bronze, stale chunks of changed documents), then drop them from the state.
5. Chunks that failed permanently are not recorded (the next run sends them again) and fail the task
   with their ids and the service's messages; nothing is lost silently.

A re-run with nothing changed sends nothing. ``index.full_refresh`` (or an index found missing/empty,
or recreated for a new vector dimension) ignores the state and sends everything.

``index_state``: state_key (``backend/index/chunk_id``), chunk_id, doc_id, backend, index_name,
content_hash (null while pending), pushed_at, run_id — key ``state_key``, partitioned by ``backend``.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

import pyarrow as pa

from lakedoc import faults
from lakedoc.schema import CHUNKS, INDEX_STATE
from lakedoc.tasks import TaskContext, TaskResult

SLICE_BATCHES = 20  # upload batches per driver slice


class IndexPushError(RuntimeError):
    """Some chunks could not be pushed (or deleted) after the bounded retries."""


def state_key(backend: str, index_name: str, chunk_id: str) -> str:
    return f"{backend}/{index_name}/{chunk_id}"


def read_state(store, backend: str, index_name: str) -> dict[str, tuple[str | None, str]]:
    """chunk_id -> (content_hash, doc_id) of what this backend/index may hold according to the state
    (content_hash None: pending, sent by a run that died before the service's answer was recorded)."""
    if not store.exists(INDEX_STATE):
        return {}
    t = store.read_arrow(INDEX_STATE, ["chunk_id", "doc_id", "content_hash"],
                         where={"backend": backend, "index_name": index_name})
    d = t.to_pydict()
    return {c: (h, doc) for c, h, doc in zip(d["chunk_id"], d["content_hash"], d["doc_id"], strict=True)}


def record_pushed(store, backend: str, index_name: str, rows: list[tuple[str, str, str | None]],
                  run_id: str) -> None:
    """rows: (chunk_id, doc_id, content_hash) the service acknowledged; content_hash None records them
    as pending, before they are sent (write-ahead)."""
    if not rows:
        return
    now = datetime.now(timezone.utc)
    data = pa.Table.from_pylist([
        {"state_key": state_key(backend, index_name, c), "chunk_id": c, "doc_id": d, "backend": backend,
         "index_name": index_name, "content_hash": h, "pushed_at": now if h is not None else None,
         "run_id": run_id} for c, d, h in rows
    ], schema=INDEX_STATE.schema)
    store.merge(INDEX_STATE, data, scope=INDEX_STATE.scope_of(backend))


def _to_docs(table: pa.Table, run_id: str) -> list[dict]:
    now = datetime.now(timezone.utc)
    docs = table.to_pylist()
    for d in docs:
        d["indexed_at"] = now
        d["run_id"] = run_id
    return docs


def run(ctx: TaskContext) -> TaskResult:
    from pyspark.sql import functions as F

    from lakedoc.index.backends import open_backend
    from lakedoc.index.documents import index_documents, missing_inputs, model_identity
    from lakedoc.spark import cached

    cfg, store, log = ctx.cfg, ctx.tables, ctx.log
    ic = cfg.index
    missing = missing_inputs(store)
    if missing:
        log.warning("nothing to index yet: table(s) %s missing", ", ".join(missing))
        return TaskResult(details={"skipped": f"missing tables: {', '.join(missing)}"})

    model_id, scheme = model_identity(cfg)
    desired = cached(index_documents(ctx.spark, store, model_id, scheme, ic.label_method))
    try:
        keys = desired.select("chunk_id", "doc_id", "content_hash").toArrow().to_pydict()
        wanted = {c: (h, d) for c, h, d in zip(keys["chunk_id"], keys["content_hash"], keys["doc_id"], strict=True)}
        n_chunks = store.read_arrow(CHUNKS, ["chunk_id"]).num_rows
        details: dict = {"backend": ic.backend, "index": ic.name, "model": model_id,
                         "chunks": n_chunks, "indexable": len(wanted),
                         "chunks_without_embedding_or_live_document": n_chunks - len(wanted)}
        backend = open_backend(cfg)
        try:
            dimension = _dimension(desired) if wanted else None
            fresh = backend.ensure_index(dimension) if dimension else False
            state = {} if (fresh or ic.full_refresh) else read_state(store, backend.name, ic.name)
            to_push = [c for c, (h, _) in wanted.items() if state.get(c, (None,))[0] != h]
            to_delete = [c for c in state if c not in wanted]
            if fresh and store.exists(INDEX_STATE):
                # the old entries describe an index that is gone: forget them (they are re-pushed below)
                old = read_state(store, backend.name, ic.name)
                store.delete_where(INDEX_STATE, "state_key", [state_key(backend.name, ic.name, c) for c in old])
            log.info("%d indexable chunk(s): %d to send, %d to delete, %d unchanged (fresh index: %s)",
                     len(wanted), len(to_push), len(to_delete), len(wanted) - len(to_push), fresh)
            failed: dict[str, str] = {}
            pushed = requests = retries = 0
            if to_push:
                slice_rows = ic.batch_size * SLICE_BATCHES
                n_slices = max(1, math.ceil(len(to_push) / slice_rows))
                order = sorted(to_push)
                ids = ctx.spark.createDataFrame(pa.table({
                    "chunk_id": pa.array(order, pa.string()),
                    "slice": pa.array([i % n_slices for i in range(len(order))], pa.int32())}).to_pandas())
                todo = desired.join(F.broadcast(ids), on="chunk_id", how="inner")
                for s in range(n_slices):
                    part = todo.filter(F.col("slice") == s).drop("slice", "content_hash").toArrow()
                    hashes = {c: wanted[c][0] for c in part.column("chunk_id").to_pylist()}
                    record_pushed(store, backend.name, ic.name, [(c, wanted[c][1], None) for c in hashes],
                                  ctx.run_id)  # write-ahead: pending until acknowledged
                    res = backend.upsert(_to_docs(part, ctx.run_id))
                    faults.point("index.pushed")  # crash tests: pushed, not yet in index_state
                    record_pushed(store, backend.name, ic.name,
                                  [(c, wanted[c][1], hashes[c]) for c in res.succeeded], ctx.run_id)
                    failed.update(res.failed)
                    pushed += len(res.succeeded)
                    requests += res.requests
                    retries += res.retries
                    log.info("slice %d/%d: %d sent, %d failed", s + 1, n_slices, len(res.succeeded), len(res.failed))
            deleted = 0
            if to_delete:
                res = backend.delete(to_delete)
                store.delete_where(INDEX_STATE, "state_key",
                                   [state_key(backend.name, ic.name, c) for c in res.succeeded])
                failed.update({c: f"delete: {e}" for c, e in res.failed.items()})
                deleted = len(res.succeeded)
                requests += res.requests
                retries += res.retries
            if to_push or to_delete or fresh:
                details["maintenance"] = backend.finalize()
            details.update({"sent": pushed, "deleted": deleted, "unchanged": len(wanted) - len(to_push),
                            "failed": len(failed), "requests": requests, "retries": retries})
        finally:
            backend.close()
    finally:
        try:
            desired.unpersist()
        except Exception:  # noqa: BLE001 - not cached (serverless)
            pass
    if failed:
        sample = "; ".join(f"{c}: {e}" for c, e in sorted(failed.items())[:10])
        for c, e in sorted(failed.items())[:200]:
            log.error("chunk %s not indexed: %s", c, e)
        raise IndexPushError(f"{len(failed)} chunk(s) failed permanently and were not recorded as pushed "
                             f"(the next run sends them again); {pushed} sent, {deleted} deleted. First: {sample}")
    return TaskResult(rows_in=len(wanted), rows_out=pushed + deleted, details=details)


def _dimension(desired) -> int:
    from pyspark.sql import functions as F

    row = desired.select(F.size("vector").alias("n")).limit(1).collect()
    return int(row[0]["n"])
