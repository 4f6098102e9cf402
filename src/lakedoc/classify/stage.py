"""Tasks ``classify`` and ``embed``: silver ``documents_redacted`` -> chunks, embeddings, zero-shot labels.

``classify`` (after ``redact_pii``, GPU cluster):

1. Reads the ``status = 'ok'`` rows of ``documents_redacted`` and keeps those whose *input hash*
   (redacted text + units + model, prefix scheme, chunker, taxonomy, scoring and thresholds) differs
   from the one recorded in ``classify_state`` — an unchanged document is not encoded again.
2. ``mapInArrow`` per partition (model loaded once per Python worker, ``torch.set_num_threads`` per
   worker on CPU): token-aware chunks (:mod:`lakedoc.chunking`), one length-sorted, token-budgeted
   encoding of all chunks of the Arrow batch, per-label scores (:mod:`lakedoc.classify.zero_shot`),
   thresholds (:mod:`lakedoc.classify.thresholds`).
3. MERGEs ``chunks`` (stale chunks of a changed document go: ``replace_within="doc_id"``),
   ``embeddings`` (the vectors, so ``embed``/``index`` do not encode twice), ``predictions``
   (``method = 'zero_shot'`` partition), ``classification_skipped`` (documents with fewer than
   ``classify.min_words`` words: no prediction, a reason), ``chunk_state`` and ``classify_state``.
   Documents that left the ok set lose their chunks, embeddings and zero-shot predictions.
   The state tables are written last and deleted from last: they are the completion mark, so a
   process killed between two commits leaves documents that the next run redoes (or forgets again).

``embed`` (after ``baselines``, GPU cluster): re-chunks documents whose chunks are missing or stale
(``chunk_state``) and encodes exactly the chunks that have no embedding for the configured model and
prefix scheme with the chunk's current text hash. After ``classify`` it is a no-op.

With ``encoder.model_uri`` (a registered fine-tuned encoder, ``models:/lakedoc_encoder@champion``) both
tasks resolve it once on the driver (:func:`lakedoc.finetune.registry.resolve`: a local folder) and the
workers load the merged encoder and the model's label-vector cache from that folder; ``classify`` then
scores ``sigmoid(scale * cos + bias)`` with the model's thresholds and writes method ``finetuned`` with
model ``models:/<name>/<version>`` (the rows of the method it no longer writes are removed). Without it,
nothing changes.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakedoc.chunking import ChunkSettings
from lakedoc.config_schema import ClassifySettings, EncoderSettings
from lakedoc.schema import (
    CHUNK_STATE,
    CHUNKS,
    CLASSIFICATION_SKIPPED as SKIPPED,
    CLASSIFY_STATE,
    DOCUMENTS_REDACTED as REDACTED,
    EMBEDDINGS,
    PREDICTIONS,
    VECTOR,
    TableSpec,
    ddl_of,
)
from lakedoc.tasks import TaskContext, TaskResult

if TYPE_CHECKING:
    from lakedoc.classify.taxonomy import Taxonomy
    from lakedoc.config import Config

log = logging.getLogger(__name__)

METHOD = "zero_shot"

PREDICTION_TYPE = pa.struct([("label", pa.string()), ("score", pa.float64()), ("predicted", pa.bool_()),
                             ("threshold", pa.float64())])
CHUNK_TYPE = pa.struct([(f.name, f.type) for f in CHUNKS.schema if f.name != "run_id"]
                       + [("vector", VECTOR)])
# one row per document out of the workers; the tables are projections of it
OUT_SCHEMA = pa.schema([
    ("doc_id", pa.string()), ("input_hash", pa.string()), ("chunk_hash", pa.string()),
    ("outcome", pa.string()), ("reason", pa.string()), ("word_count", pa.int32()), ("n_chunks", pa.int32()),
    ("chunks", pa.list_(CHUNK_TYPE)), ("predictions", pa.list_(PREDICTION_TYPE)),
])


def _hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


class Plan:
    """Everything a worker needs, as small picklable values (no model, no Spark objects)."""

    def __init__(self, cfg: Config, run_id: str, classify: bool = True):
        from lakedoc.classify.taxonomy import load_taxonomy
        from lakedoc.classify.thresholds import fingerprint, load_threshold_set
        from lakedoc.classify.zero_shot import ScoringSettings
        from lakedoc.encoder import resolve_model

        self.run_id = run_id
        self.encoder = EncoderSettings.from_config(cfg)
        c = ClassifySettings.from_config(cfg)
        # encoder.model_uri: a registered fine-tuned model, resolved (and downloaded) here on the driver;
        # the workers get only the local folder (lakedoc.finetune.registry)
        self.method = METHOD
        self.registered: str | None = None
        if self.encoder.model_uri:
            from lakedoc.finetune.registry import METHOD as FINETUNED, resolve

            res = resolve(cfg, self.encoder.model_uri)
            self.encoder = self.encoder.model_copy(update={"model": str(res.merged), "model_uri": None})
            self.registered, self.method = str(res.folder), FINETUNED
        _, self.model_id = resolve_model(self.encoder.model)
        s = self.encoder
        self.prefix_scheme = f"{s.prefix_scheme}|q={s.query_prefix}|p={s.passage_prefix}"
        self.chunking = ChunkSettings.from_config(cfg)
        self.chunk_signature = (f"{self.model_id}|{s.max_seq_length}|{self.prefix_scheme}|"
                                f"{self.chunking.max_tokens}|{self.chunking.overlap_tokens}|"
                                f"{int(self.chunking.merge_units)}")
        self.classify = classify
        self.taxonomy: Taxonomy | None = None
        self.write_embeddings = c.write_embeddings or not classify
        self.min_words = c.min_words
        if classify and self.registered:
            from lakedoc.finetune.registry import scorer

            self.scoring = ScoringSettings.from_config(cfg)
            # the registered model's labels, label-vector cache, scale, bias and tuned thresholds
            self.thresholds = scorer(self.registered, self.scoring.aggregation, self.scoring.top_k).thresholds
            self.classify_signature = _hash(
                self.chunk_signature, self.model_id, self.scoring.aggregation, str(self.scoring.top_k),
                str(self.min_words), json.dumps([self.thresholds.global_threshold,
                                                 sorted(self.thresholds.per_label.items()),
                                                 self.thresholds.at_least_one]))
        elif classify:
            self.taxonomy = load_taxonomy(cfg.resolve_path(c.taxonomy))
            self.scoring = ScoringSettings.from_config(cfg)
            path = cfg.resolve_path(c.thresholds_file) if c.thresholds_file else None
            # the chunker as tuned is checked on the worker side only through the signature of settings
            expected = fingerprint(self.model_id, self.prefix_scheme, self.taxonomy.hash(), self.scoring.signature(),
                                   "")
            self.thresholds = load_threshold_set(path, expected, c.default_threshold, c.at_least_one)
            self.classify_signature = _hash(
                self.chunk_signature, self.taxonomy.hash(), self.scoring.signature(), str(self.min_words),
                json.dumps([self.thresholds.global_threshold, sorted(self.thresholds.per_label.items()),
                            self.thresholds.at_least_one]))
        else:
            self.classify_signature = ""


_SCORERS: dict[tuple, Any] = {}


def _scorer(plan: Plan, encoder):
    from lakedoc.classify.zero_shot import ZeroShotScorer

    if plan.registered:  # per Python worker: the label cache of the resolved folder
        from lakedoc.finetune.registry import scorer

        return scorer(plan.registered, plan.scoring.aggregation, plan.scoring.top_k)
    assert plan.taxonomy is not None, "a scorer is only built for a classifying plan"
    key = (plan.encoder, plan.taxonomy.hash(), plan.scoring, plan.chunking)
    if key not in _SCORERS:
        _SCORERS[key] = ZeroShotScorer(encoder, plan.taxonomy, plan.scoring, plan.chunking)
    return _SCORERS[key]


def process_documents(rows: list[dict], plan: Plan) -> list[dict]:
    """Chunk, encode and (with ``plan.classify``) score a batch of documents -> OUT_SCHEMA rows.

    Pure Python (no Spark): the workers call it per Arrow batch and tests call it directly."""
    from lakedoc.chunking import chunk_document, word_count
    from lakedoc.encoder import configure_worker_threads, get_encoder, text_hash

    configure_worker_threads(plan.encoder)
    enc = get_encoder(plan.encoder)
    settings = plan.chunking.fitted(enc)
    per_doc = [chunk_document(r.get("redacted_text"), r.get("redacted_units"), enc.tokenizer, settings)
               for r in rows]
    flat = [c for cs in per_doc for c in cs]
    vecs = enc.encode([c.text for c in flat], kind="passage", token_counts=[c.token_count for c in flat])
    scorer = _scorer(plan, enc) if plan.classify else None
    out, pos = [], 0
    for r, cs in zip(rows, per_doc, strict=True):
        v = vecs[pos:pos + len(cs)]
        pos += len(cs)
        wc = word_count(r.get("redacted_text"))
        chunks = [{"chunk_id": f"{r['doc_id']}-{c.seq:05d}", "doc_id": r["doc_id"], "seq": c.seq,
                   "unit_kind": c.unit_kind, "unit_ref": c.unit_ref, "unit_refs": [x for x in c.unit_refs if x],
                   "text": c.text, "token_count": c.token_count, "text_hash": text_hash(c.text),
                   "chunker": plan.chunk_signature,
                   "vector": v[i].tolist() if plan.write_embeddings else None}
                  for i, c in enumerate(cs)]
        outcome, reason, preds = None, None, None
        if plan.classify:
            if not cs:
                outcome, reason = "skipped", "no_text: the redacted text is empty"
            elif wc < plan.min_words:
                outcome, reason = "skipped", f"too_short: {wc} words < classify.min_words {plan.min_words}"
            else:
                assert scorer is not None  # plan.classify
                scores = scorer.doc_scores(v)[None, :]
                predicted, th = plan.thresholds.apply(scores, scorer.label_names)
                outcome = "classified"
                preds = [{"label": n, "score": float(s), "predicted": bool(p), "threshold": float(t)}
                         for n, s, p, t in zip(scorer.label_names, scores[0], predicted[0], th, strict=True)]
        out.append({"doc_id": r["doc_id"], "input_hash": r.get("input_hash"), "chunk_hash": r.get("chunk_hash"),
                    "outcome": outcome, "reason": reason, "word_count": wc, "n_chunks": len(cs),
                    "chunks": chunks, "predictions": preds})
    return out


def _map_fn(plan: Plan):
    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            rows = process_documents(batch.to_pylist(), plan)
            yield pa.RecordBatch.from_pylist(rows, schema=OUT_SCHEMA)

    return fn


# ---------------------------------------------------------------------------------------------------
# Reading the input and the state
# ---------------------------------------------------------------------------------------------------

def _ok_documents(ctx: TaskContext, plan: Plan):
    from pyspark.sql import functions as F

    docs = (ctx.tables.read(REDACTED, ["doc_id", "redacted_text", "redacted_units", "status"])
            .filter(F.col("status") == "ok").drop("status"))
    units_json = F.coalesce(F.to_json(F.col("redacted_units")), F.lit("[]"))
    body = F.concat_ws("\x1f", F.coalesce(F.col("redacted_text"), F.lit("")), units_json)
    docs = docs.withColumn("chunk_hash", F.sha2(F.concat_ws("\x1f", body, F.lit(plan.chunk_signature)), 256))
    if plan.classify:
        docs = docs.withColumn("input_hash", F.sha2(F.concat_ws("\x1f", body, F.lit(plan.chunk_signature),
                                                                F.lit(plan.classify_signature)), 256))
    else:
        docs = docs.withColumn("input_hash", F.lit(None).cast("string"))
    return docs


def _pending(ctx: TaskContext, docs, state_table: TableSpec, hash_col: str):
    if not ctx.tables.exists(state_table):
        return docs
    state = ctx.tables.read(state_table, ["doc_id", hash_col])
    return docs.join(state, on=["doc_id", hash_col], how="left_anti")


def _ok_ids(docs) -> set[str]:
    return set(docs.select("doc_id").toArrow().column("doc_id").to_pylist())


def _forget_documents(ctx: TaskContext, ok_ids: set[str], plan: Plan) -> int:
    """Chunks, embeddings, state and zero-shot predictions of documents no longer in the ok set."""
    store = ctx.tables
    gone: set[str] = set()
    for table in (CHUNK_STATE, CLASSIFY_STATE):
        if store.exists(table):
            gone |= set(store.read_arrow(table, ["doc_id"]).column("doc_id").to_pylist()) - ok_ids
    if not gone:
        return 0
    ids = sorted(gone)
    for table in (CHUNKS, EMBEDDINGS, SKIPPED):
        store.delete_where(table, "doc_id", ids)
    store.delete_where(PREDICTIONS, "doc_id", ids, scope=PREDICTIONS.scope_of(plan.method))
    for table in (CHUNK_STATE, CLASSIFY_STATE):  # last: the state names what a killed run left to delete
        store.delete_where(table, "doc_id", ids)
    ctx.log.info("%d document(s) left the ok set of %s: their chunks, embeddings and zero-shot "
                 "predictions were removed", len(ids), REDACTED)
    return len(ids)


def _drop_other_method(ctx: TaskContext, plan: Plan) -> int:
    """The classify task writes one method: ``zero_shot`` (the configured encoder) or ``finetuned``
    (``encoder.model_uri``). After a switch the other one's predictions and skip rows would go stale
    (nothing updates them any more): they are removed."""
    from lakedoc.finetune.registry import METHOD as FINETUNED

    other = FINETUNED if plan.method == METHOD else METHOD
    store, removed = ctx.tables, 0
    for table in (PREDICTIONS, SKIPPED):
        if not store.exists(table):
            continue
        ids = sorted(set(store.read_arrow(table, ["doc_id"], where={"method": other}).column("doc_id").to_pylist()))
        if ids:
            removed += store.delete_where(table, "doc_id", ids, scope=table.scope_of(other))
    if removed:
        ctx.log.info("classify now writes method %s: removed %d row(s) of method %s", plan.method, removed, other)
    return removed


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------

def _write_outputs(ctx: TaskContext, out, plan: Plan, dimension_hint: int | None = None) -> dict:
    """MERGE the per-document worker output ``out`` (a Spark DataFrame of OUT_SCHEMA) into the tables."""
    from pyspark.sql import functions as F

    store, run_id = ctx.tables, ctx.run_id
    details: dict[str, Any] = {}
    lit = F.lit
    chunk_rows = out.select(F.explode("chunks").alias("c")).select("c.*")
    chunks = chunk_rows.select(*[c for c in CHUNKS.column_names if c != "run_id"]).withColumn("run_id", lit(run_id))
    r = store.merge(CHUNKS, chunks, replace_within=CHUNKS.replace_within)
    details["chunks"] = {"written": r.written, "deleted": r.deleted, "unchanged": r.unchanged}
    # documents that now have no chunk at all: replace_within cannot see them
    empty = [row["doc_id"] for row in out.filter(F.col("n_chunks") == 0).select("doc_id").toArrow().to_pylist()]
    if empty:
        store.delete_where(CHUNKS, "doc_id", empty)
    if plan.write_embeddings:
        emb = (chunk_rows.filter(F.col("vector").isNotNull())
               .select("chunk_id", "doc_id", "vector", lit(plan.model_id).alias("model"),
                       F.size("vector").cast("int").alias("dimension"),
                       lit(plan.prefix_scheme).alias("prefix_scheme"), "text_hash", lit(run_id).alias("run_id")))
        r = store.merge(EMBEDDINGS, emb, scope=EMBEDDINGS.scope_of(plan.model_id),
                        replace_within=EMBEDDINGS.replace_within)
        details["embeddings"] = {"written": r.written, "deleted": r.deleted, "unchanged": r.unchanged}
        if empty:
            store.delete_where(EMBEDDINGS, "doc_id", empty, scope=EMBEDDINGS.scope_of(plan.model_id))
    cstate = out.select("doc_id", "chunk_hash", "n_chunks", lit(plan.chunk_signature).alias("chunker"),
                        lit(run_id).alias("run_id"))
    store.merge(CHUNK_STATE, cstate)
    if plan.classify:
        preds = (out.filter(F.col("outcome") == "classified")
                 .select("doc_id", F.explode("predictions").alias("p"))
                 .select("doc_id", "p.label", "p.score", "p.predicted", "p.threshold",
                         lit(plan.method).alias("method"), lit(plan.model_id).alias("model"),
                         lit(run_id).alias("run_id")))
        r = store.merge(PREDICTIONS, preds, scope=PREDICTIONS.scope_of(plan.method),
                        replace_within=PREDICTIONS.replace_within)
        details["predictions"] = {"written": r.written, "deleted": r.deleted, "unchanged": r.unchanged}
        skipped = out.filter(F.col("outcome") == "skipped")
        skipped_ids = [x["doc_id"] for x in skipped.select("doc_id").toArrow().to_pylist()]
        classified_ids = [x["doc_id"] for x in out.filter(F.col("outcome") == "classified")
                          .select("doc_id").toArrow().to_pylist()]
        if skipped_ids:
            store.merge(SKIPPED, skipped.select("doc_id", lit(plan.method).alias("method"), "reason", "word_count",
                                                lit(plan.model_id).alias("model"), lit(run_id).alias("run_id")),
                        scope=SKIPPED.scope_of(plan.method))
            store.delete_where(PREDICTIONS, "doc_id", skipped_ids, scope=PREDICTIONS.scope_of(plan.method))
        if classified_ids:
            store.delete_where(SKIPPED, "doc_id", classified_ids, scope=SKIPPED.scope_of(plan.method))
        state = out.select("doc_id", "input_hash", "outcome", "n_chunks", lit(plan.model_id).alias("model"),
                           lit(run_id).alias("run_id"))
        store.merge(CLASSIFY_STATE, state)
        details["classified"] = len(classified_ids)
        details["skipped"] = len(skipped_ids)
    return details


def _run(ctx: TaskContext, classify: bool) -> TaskResult:
    store = ctx.tables
    plan = Plan(ctx.cfg, ctx.run_id, classify=classify)
    if not store.exists(REDACTED):
        ctx.log.warning("table %s does not exist yet: nothing to do", REDACTED)
        return TaskResult(0, 0, {"reason": f"{REDACTED} missing"})
    docs = _ok_documents(ctx, plan)
    ok_ids = _ok_ids(docs)
    forgotten = _forget_documents(ctx, ok_ids, plan)
    if classify:
        _drop_other_method(ctx, plan)
        todo = _pending(ctx, docs, CLASSIFY_STATE, "input_hash")
    else:
        todo = _pending(ctx, docs, CHUNK_STATE, "chunk_hash")
    n_todo = todo.count()
    ctx.log.info("%d ok document(s), %d to %s (model %s, %s)", len(ok_ids), n_todo,
                 "classify" if classify else "chunk", plan.model_id, plan.prefix_scheme)
    details: dict[str, Any] = {"ok_documents": len(ok_ids), "processed": n_todo, "forgotten": forgotten,
                               "model": plan.model_id, "prefix_scheme": plan.prefix_scheme}
    if classify:
        details["method"] = plan.method
        details["thresholds"] = plan.thresholds.source or f"default {plan.thresholds.global_threshold}"
    rows_out = 0
    if n_todo:
        per_part = ctx.cfg.classify.docs_per_partition
        n_parts = max(1, -(-n_todo // per_part))
        out = todo.repartition(n_parts).mapInArrow(_map_fn(plan), ddl_of(OUT_SCHEMA))
        out = _cache(out)
        try:
            details.update(_write_outputs(ctx, out, plan))
        finally:
            _uncache(out)
        rows_out = sum(v.get("written", 0) for v in details.values() if isinstance(v, dict))
    if not classify:
        e = _embed_missing(ctx, plan)
        details["embedded_missing"] = e
        rows_out += e
    return TaskResult(rows_in=len(ok_ids), rows_out=rows_out, details=details)


def _cache(df):
    from lakedoc.spark import cached  # serverless compute has no cache; recomputation is still correct

    return cached(df)


def _uncache(df) -> None:
    try:
        df.unpersist()
    except Exception:  # noqa: BLE001 - best effort: nothing cached (e.g. serverless) means nothing to free
        pass


# ---------------------------------------------------------------------------------------------------
# embed: chunks that lack a current embedding
# ---------------------------------------------------------------------------------------------------

def _encode_chunks_fn(plan: Plan):
    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from lakedoc.encoder import configure_worker_threads, get_encoder

        configure_worker_threads(plan.encoder)
        enc = get_encoder(plan.encoder)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            d = batch.to_pydict()
            vecs = enc.encode(d["text"], kind="passage", token_counts=d["token_count"])
            n = batch.num_rows
            yield pa.RecordBatch.from_pydict({
                "chunk_id": d["chunk_id"], "doc_id": d["doc_id"],
                "vector": pa.array([v.tolist() for v in vecs], VECTOR),
                "model": [enc.model_id] * n, "dimension": pa.array([enc.dimension] * n, pa.int32()),
                "prefix_scheme": [enc.prefix_scheme] * n, "text_hash": d["text_hash"], "run_id": [plan.run_id] * n,
            }, schema=EMBEDDINGS.schema)

    return fn


def _embed_missing(ctx: TaskContext, plan: Plan) -> int:
    from pyspark.sql import functions as F

    store = ctx.tables
    if not store.exists(CHUNKS):
        return 0
    chunks = store.read(CHUNKS, ["chunk_id", "doc_id", "text", "token_count", "text_hash"])
    if store.exists(EMBEDDINGS):
        have = (store.read(EMBEDDINGS, ["chunk_id", "model", "prefix_scheme", "text_hash"])
                .filter((F.col("model") == plan.model_id) & (F.col("prefix_scheme") == plan.prefix_scheme))
                .select("chunk_id", "text_hash"))
        chunks = chunks.join(have, on=["chunk_id", "text_hash"], how="left_anti")
    n = chunks.count()
    ctx.log.info("%d chunk(s) without a current embedding for %s", n, plan.model_id)
    if not n:
        return 0
    per_part = 8 * ctx.cfg.classify.docs_per_partition
    emb = (chunks.repartition(max(1, -(-n // per_part)))
           .mapInArrow(_encode_chunks_fn(plan), EMBEDDINGS.ddl))
    r = store.merge(EMBEDDINGS, emb, scope=EMBEDDINGS.scope_of(plan.model_id))
    return r.written


def run_classify(ctx: TaskContext) -> TaskResult:
    return _run(ctx, classify=True)


def run_embed(ctx: TaskContext) -> TaskResult:
    return _run(ctx, classify=False)
