"""The index documents, built with Spark from the Delta tables (Spark Connect safe).

One document per chunk of a live document (bronze ``documents.is_deleted`` false) whose embedding
was made by the configured model and prefix scheme *from the chunk's current text*
(``embeddings.text_hash = chunks.text_hash``): redacted chunk text, vector, the document's redacted
``source_path`` / ``file_name`` and its ``format`` from silver ``documents_redacted``, ``modified_at``
from bronze, the document's predicted labels with scores from ``predictions`` (all methods, or
``index.label_method``), dates and run id.

File and folder names come from silver only, never from bronze (which keeps the original, unredacted
names): a chunk whose document has no silver row is not indexed, and a name silver holds as null
stays null (silver nulls a name only where bronze has none; a name whose redaction failed is the
placeholder ``<REDACTION_ERROR>`` there). So the index and ``lakedoc search`` only see redacted names.

``content_hash`` is a SHA-256 of everything the index holds for the chunk except volatile values
(run id, push time): the ``index_state`` table stores it, and a chunk is sent again only when it
changes. Scores are rounded to 6 decimals, so a retrain that moves a probability by float noise
re-pushes nothing.
"""
from __future__ import annotations

from typing import Any

from lakedoc.config_schema import EncoderSettings
from lakedoc.schema import CHUNKS, DOCUMENTS, DOCUMENTS_REDACTED as REDACTED, EMBEDDINGS, PREDICTIONS

HASHED_COLUMNS = ["chunk_id", "doc_id", "seq", "source_path", "file_name", "format", "unit_ref", "text",
                  "vector", "labels", "label_scores", "modified_at", "model"]


def model_identity(cfg: Any) -> tuple[str, str]:
    """(model id, prefix scheme) the ``embed`` task stamps on its rows, without loading the model."""
    from lakedoc.encoder import resolve_model

    s = EncoderSettings.from_config(cfg)
    if s.model_uri:  # a registered fine-tuned encoder: its models:/NAME/VERSION id, nothing downloaded
        from lakedoc.finetune.registry import resolve

        model_id = resolve(cfg, s.model_uri, download=False).model_id
    else:
        _, model_id = resolve_model(s.model)
    return model_id, f"{s.prefix_scheme}|q={s.query_prefix}|p={s.passage_prefix}"


def missing_inputs(store) -> list[str]:
    """The input tables the index needs that do not exist yet (silver supplies the redacted names)."""
    return [t.name for t in (CHUNKS, EMBEDDINGS, REDACTED) if not store.exists(t)]


def index_documents(spark, store, model_id: str, prefix_scheme: str | None, label_method: str | None):
    """A Spark DataFrame of index documents plus ``content_hash`` (see the module docstring)."""
    from pyspark.sql import functions as F

    chunks = store.read(CHUNKS, ["chunk_id", "doc_id", "seq", "unit_ref", "text", "text_hash"])
    emb = store.read(EMBEDDINGS, ["chunk_id", "vector", "model", "prefix_scheme", "text_hash"])
    emb = emb.filter(F.col("model") == F.lit(model_id))
    if prefix_scheme is not None:
        emb = emb.filter(F.col("prefix_scheme") == F.lit(prefix_scheme))
    emb = emb.select("chunk_id", "text_hash", F.col("vector").cast("array<float>").alias("vector"), "model")
    x = chunks.join(emb, on=["chunk_id", "text_hash"], how="inner")

    if not store.exists(REDACTED):
        raise LookupError(f"{REDACTED} does not exist (the caller checks missing_inputs)")
    # names from silver only: bronze's are the unredacted originals and never reach the index
    meta = store.read(REDACTED, ["doc_id", "source_path", "file_name", "format"])
    if store.exists(DOCUMENTS):  # live documents only; bronze gives modified_at (and a missing format)
        bronze = store.read(DOCUMENTS, ["doc_id", "format", "modified_at", "is_deleted"])
        bronze = (bronze.filter(~F.coalesce(F.col("is_deleted"), F.lit(False)))
                  .select("doc_id", F.col("format").alias("b_format"), "modified_at"))
        meta = (meta.join(bronze, on="doc_id", how="inner")
                .withColumn("format", F.coalesce(F.col("format"), F.col("b_format"))))
    else:  # no bronze table: every redacted document counts as live
        meta = meta.withColumn("modified_at", F.lit(None).cast("timestamp"))
    meta = meta.select("doc_id", "source_path", "file_name", "format", "modified_at")
    x = x.join(meta, on="doc_id", how="inner")  # chunks of deleted or not (yet) redacted documents drop out

    empty_labels = F.array().cast("array<string>")
    empty_scores = F.array().cast("array<struct<label:string,score:double,method:string>>")
    if store.exists(PREDICTIONS):
        p = store.read(PREDICTIONS, ["doc_id", "label", "score", "predicted", "method"])
        p = p.filter(F.coalesce(F.col("predicted"), F.lit(False)))
        if label_method:
            p = p.filter(F.col("method") == F.lit(label_method))
        lab = p.groupBy("doc_id").agg(
            F.array_sort(F.collect_set("label")).alias("labels"),
            F.array_sort(F.collect_list(F.struct(F.col("label").cast("string").alias("label"),
                                                 F.round(F.col("score").cast("double"), 6).alias("score"),
                                                 F.col("method").cast("string").alias("method")))).alias("label_scores"))
        x = x.join(lab, on="doc_id", how="left")
        x = (x.withColumn("labels", F.coalesce(F.col("labels"), empty_labels))
             .withColumn("label_scores", F.coalesce(F.col("label_scores"), empty_scores)))
    else:
        x = x.withColumn("labels", empty_labels).withColumn("label_scores", empty_scores)

    x = x.select("chunk_id", "doc_id", F.col("seq").cast("int").alias("seq"), "source_path", "file_name", "format",
                 "unit_ref", "text", "vector", "labels", "label_scores", "modified_at", "model")
    return x.withColumn("content_hash", F.sha2(F.to_json(F.struct(*[F.col(c) for c in HASHED_COLUMNS])), 256))
