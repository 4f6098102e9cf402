"""The table registry: one :class:`TableSpec` per Delta table the pipeline writes.

A spec holds everything a writer, a reader and a reader of the documentation need to know about a
table: its name, its Arrow schema (every column nullable: delta-rs makes a column NOT NULL when its
Arrow field is not), the MERGE keys, the partition columns, the scope column (the MERGE condition of
concurrent writers), the compared columns (``None``: every non-key column but the volatile ones), the
group replaced within, a one-line doc and one doc per column.

Both table backends take a spec wherever they take a table name: ``store.merge(CHUNKS, data)`` uses
the spec's keys, partitioning and compared columns (a plain name takes nothing from the registry).
Stages build their Arrow and Spark schemas from it (:attr:`TableSpec.schema`, :attr:`TableSpec.ddl`);
the "Table reference" part of ``docs/architecture.md`` is generated from it
(``python -m lakedoc.schema docs`` rewrites it; a test keeps the two equal).
"""
from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

VOLATILE_COLUMNS = ("run_id", "ingested_at", "updated_at", "processed_at", "pushed_at", "created_at")
"""Columns that change on every run without the row's content changing: never compared."""

# --- column types ------------------------------------------------------------------------------------

STRING = pa.string()
INT = pa.int32()
LONG = pa.int64()
DOUBLE = pa.float64()
BOOL = pa.bool_()
TIMESTAMP = pa.timestamp("us", tz="UTC")
VECTOR = pa.list_(pa.float32())
UNIT = pa.struct([("kind", STRING), ("index", INT), ("ref", STRING), ("text", STRING)])
"""A page / slide / sheet / section of a document (``documents.units``)."""
FINDING = pa.struct([("entity_type", STRING), ("start", INT), ("end", INT), ("score", DOUBLE),
                     ("recognizer", STRING)])
"""A PII finding as the redaction workers return it (the rows of ``pii_findings`` without run columns)."""


def _nullable(t: pa.DataType) -> pa.DataType:
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _nullable(f.type), True) for f in t])
    if pa.types.is_list(t):
        return pa.list_(pa.field(t.value_field.name, _nullable(t.value_type), True))
    if pa.types.is_map(t):
        return pa.map_(t.key_type, pa.field(t.item_field.name, _nullable(t.item_type), True))
    return t


def spark_type(t: pa.DataType) -> str:
    """The Spark SQL DDL type of an Arrow type (``array<struct<kind:string,...>>``)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_int32(t):
        return "int"
    if pa.types.is_int64(t):
        return "long"
    if pa.types.is_float64(t):
        return "double"
    if pa.types.is_float32(t):
        return "float"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"array<{spark_type(t.value_type)}>"
    if pa.types.is_map(t):
        return f"map<{spark_type(t.key_type)},{spark_type(t.item_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{spark_type(f.type)}" for f in t) + ">"
    raise TypeError(f"no Spark type for Arrow type {t}")


def ddl_of(schema: pa.Schema) -> str:
    """A Spark DDL schema string (``a string, b int``) for ``mapInPandas`` / ``mapInArrow`` outputs."""
    return ", ".join(f"{f.name} {spark_type(f.type)}" for f in schema)


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str


@dataclass(frozen=True)
class TableSpec:
    """One table: name, columns (Arrow type + doc each), keys, partitioning, scope, compared columns."""

    name: str
    doc: str
    columns: tuple[Column, ...]
    keys: tuple[str, ...]
    partition_by: tuple[str, ...] = ()
    scope: str | None = None
    """The column that scopes concurrent MERGEs (each writer's rows carry one value of it)."""
    compare: tuple[str, ...] | None = None
    """Columns that decide whether a stored row changed; None: all but keys and volatile columns."""
    replace_within: str | None = None
    """Writers that send every row of a group replace the group's stale rows (``replace_within=``)."""
    layer: str = ""
    notes: str = ""
    schema: pa.Schema = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate column")
        for c in (*self.keys, *self.partition_by, *([self.scope] if self.scope else []), *(self.compare or ()),
                  *([self.replace_within] if self.replace_within else [])):
            if c not in names:
                raise ValueError(f"{self.name}: {c!r} is not a column")
        object.__setattr__(self, "schema", pa.schema([pa.field(c.name, _nullable(c.type), True)
                                                      for c in self.columns]))

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def ddl(self) -> str:
        """The Spark DDL of the table's columns."""
        return ddl_of(self.schema)

    def scope_of(self, value: Any) -> dict[str, Any]:
        """The ``scope=`` mapping of a MERGE / delete by one writer (``{"method": "zero_shot"}``)."""
        if self.scope is None:
            raise ValueError(f"table {self.name} has no scope column")
        return {self.scope: value}

    def empty(self) -> pa.Table:
        return self.schema.empty_table()

    def __str__(self) -> str:
        return self.name


def _cols(*items: tuple[str, pa.DataType, str]) -> tuple[Column, ...]:
    return tuple(Column(n, t, d) for n, t, d in items)


RUN_ID = ("run_id", STRING, "the job run that last wrote the row")

DOCUMENTS = TableSpec(
    "documents", "one row per input file, plus one per attachment found inside it (recursively)",
    _cols(
        ("doc_id", STRING, "stable id: sha256 of the source path (and, for attachments, the path inside it), "
                           "32 hex chars"),
        ("root_doc_id", STRING, "`doc_id` of the input file the row comes from"),
        ("parent_doc_id", STRING, "the containing document for attachments, null for input files"),
        ("attachment_path", STRING, "`\"\"` for the file itself, `report.pdf`, `inner.msg/report.pdf` for "
                                    "nested attachments"),
        ("depth", INT, "0 for input files, 1 for their attachments, ..."),
        ("source_task", STRING, "ingestion task family that owns the file (see Owners above)"),
        ("source_path", STRING, "the input file: its real path for local and `/Volumes/...` input (symbolic "
                                "links resolved once, at the input root), the URI Spark lists for "
                                "`abfss://...`; bytes of a name that are not UTF-8 are written `\\xNN`"),
        ("file_name", STRING, "file name (attachment name for attachments)"),
        ("extension", STRING, "lower-case extension"),
        ("format", STRING, "the format detected from content (`docx`, `pdf`, `eml`, `txt`, `png`, `doc`, "
                           "`zip`, ..., `unknown`)"),
        ("size_bytes", LONG, "file size (null for attachments)"),
        ("modified_at", TIMESTAMP, "file modification time"),
        ("content_hash", STRING, "sha256 of the file bytes (attachments: derived from the parent's hash and "
                                 "path)"),
        ("status", STRING, "`ok`, `partial` (text kept, may be incomplete: `error` says why), `empty`, "
                           "`encrypted`, `corrupt`, `image_only`, `unsupported`, `too_large`, `timeout`, `error`"),
        ("error", STRING, "why, for every status but `ok` (e.g. `EncryptedError: password required`)"),
        ("text", STRING, "full extracted text (units joined by blank lines)"),
        ("char_count", LONG, "length of `text`"),
        ("units", pa.list_(UNIT), "pages / slides / sheets / sections, so chunks can cite where text came from"),
        ("unit_count", INT, "number of units"),
        ("metadata", pa.map_(STRING, STRING), "title, author, subject, sender, recipients, cc, sent date, page "
                                              "count, sheet names, `encoding` of text files, ..."),
        ("extractor_version", STRING, "bumped when extraction changes; a new version re-extracts every file"),
        ("is_deleted", BOOL, "soft delete: the file disappeared from the input (or the attachment from a "
                             "changed file)"),
        ("deleted_at", TIMESTAMP, "when it was soft-deleted"),
        RUN_ID,
        ("ingested_at", TIMESTAMP, "when the row was written"),
    ),
    keys=("doc_id",), partition_by=("source_task",), scope="source_task",
    compare=("content_hash", "status", "error", "extractor_version", "is_deleted", "modified_at", "size_bytes"),
    layer="bronze",
    notes="The ingestion tasks write it concurrently, each MERGE scoped to its `source_task`.",
)

DOCUMENTS_REDACTED = TableSpec(
    "documents_redacted", "the redacted text of every `ok` (or `partial`) live bronze document",
    _cols(
        ("doc_id", STRING, "as in `documents`"),
        ("root_doc_id", STRING, "as in `documents`"),
        ("source_task", STRING, "as in `documents`"),
        ("source_path", STRING, "as in `documents`, redacted"),
        ("file_name", STRING, "as in `documents`, redacted"),
        ("format", STRING, "as in `documents`"),
        ("content_hash", STRING, "of the bronze row redacted (decides re-redaction)"),
        ("extractor_version", STRING, "of the bronze row redacted (decides re-redaction)"),
        ("redacted_text", STRING, "the text with every finding replaced by its operator's output; null on "
                                  "`redaction_error`"),
        ("redacted_units", pa.list_(UNIT), "`documents.units`, each `text` redacted; null on `redaction_error`"),
        ("entity_counts", pa.map_(STRING, INT), "findings per entity type, of the text and of `file_name` / "
                                                "`source_path`"),
        ("finding_count", INT, "number of findings in the text (rows in `pii_findings`)"),
        ("config_hash", STRING, "fingerprint of the redaction configuration"),
        ("status", STRING, "`ok` or `redaction_error`"),
        ("error", STRING, "why, for `redaction_error`"),
        RUN_ID,
        ("processed_at", TIMESTAMP, "when the row was written"),
    ),
    keys=("doc_id",), layer="silver",
)

PII_FINDINGS = TableSpec(
    "pii_findings", "one row per PII finding, never the original value",
    _cols(
        ("doc_id", STRING, "the document"),
        ("entity_type", STRING, "`PERSON`, `EMAIL_ADDRESS`, ..."),
        ("start", INT, "first character offset in the bronze `documents.text`"),
        ("end", INT, "character offset after the finding"),
        ("score", DOUBLE, "the recognizer's score"),
        ("recognizer", STRING, "the recognizer that found it"),
        ("config_hash", STRING, "fingerprint of the redaction configuration"),
        RUN_ID,
    ),
    keys=("doc_id", "entity_type", "start", "end"), replace_within="doc_id", layer="silver",
    notes="A re-redacted document's findings replace its old ones.",
)

CHUNKS = TableSpec(
    "chunks", "token-aware chunks of the redacted text, reused by embed and index",
    _cols(
        ("chunk_id", STRING, "`<doc_id>-<seq:05d>`"),
        ("doc_id", STRING, "the redacted document"),
        ("seq", INT, "position in the document, from 0"),
        ("unit_kind", STRING, "page / slide / sheet / body ...; `mixed` when units of several kinds were packed"),
        ("unit_ref", STRING, "the unit reference (`page 3`), `first .. last` for packed units, null without units"),
        ("unit_refs", pa.list_(STRING), "every unit reference the chunk covers"),
        ("text", STRING, "the chunk text (exact characters of the redacted unit)"),
        ("token_count", INT, "tokens of the text with the encoder's tokenizer (no special tokens)"),
        ("text_hash", STRING, "sha256 of the text (32 hex)"),
        ("chunker", STRING, "model, max_seq_length, prefix scheme and chunking settings that produced it"),
        RUN_ID,
    ),
    keys=("chunk_id",), replace_within="doc_id", layer="gold",
)

EMBEDDINGS = TableSpec(
    "embeddings", "one vector per chunk and encoder model",
    _cols(
        ("chunk_id", STRING, "the chunk"),
        ("doc_id", STRING, "its document"),
        ("vector", VECTOR, "L2-normalised"),
        ("model", STRING, "model id, e.g. `sentence-transformers/all-MiniLM-L6-v2`"),
        ("dimension", INT, "vector length"),
        ("prefix_scheme", STRING, "how the text was prefixed: compare before mixing vectors"),
        ("text_hash", STRING, "of the chunk text encoded"),
        RUN_ID,
    ),
    keys=("chunk_id", "model"), scope="model", compare=("text_hash", "prefix_scheme", "dimension"),
    replace_within="doc_id", layer="gold",
)

PREDICTIONS = TableSpec(
    "predictions", "one row per document, label and method (zero-shot and the baselines)",
    _cols(
        ("doc_id", STRING, "the document"),
        ("label", STRING, "taxonomy label"),
        ("score", DOUBLE, "0..1 (baselines: positive-class probability)"),
        ("predicted", BOOL, "score passed the threshold (or the best label with at_least_one)"),
        ("threshold", DOUBLE, "the label's threshold"),
        ("method", STRING, "`zero_shot`, `tfidf_lr`, `tfidf_xgb`, `embedding_lr`, `embedding_xgb`"),
        ("model", STRING, "encoder model id (zero-shot) or `<method>-<fingerprint>` (baselines)"),
        RUN_ID,
    ),
    keys=("doc_id", "label", "method"), partition_by=("method",), scope="method", replace_within="doc_id",
    layer="gold",
)

CLASSIFICATION_SKIPPED = TableSpec(
    "classification_skipped", "documents a method did not classify, and why",
    _cols(
        ("doc_id", STRING, "the document"),
        ("method", STRING, "`zero_shot`"),
        ("reason", STRING, "`too_short: 4 words < classify.min_words 10` or `no_text: ...`"),
        ("word_count", INT, "words of the redacted text"),
        ("model", STRING, "encoder model id"),
        RUN_ID,
    ),
    keys=("doc_id", "method"), scope="method", layer="gold",
    notes="Chosen over null-label prediction rows so that `predictions` keeps a non-null key.",
)

CLASSIFY_STATE = TableSpec(
    "classify_state", "bookkeeping: the input each document was classified from",
    _cols(
        ("doc_id", STRING, "the document"),
        ("input_hash", STRING, "hash of the text and every setting the outcome depends on"),
        ("outcome", STRING, "`classified` or `skipped`"),
        ("n_chunks", INT, "chunks of the document"),
        ("model", STRING, "encoder model id"),
        RUN_ID,
    ),
    keys=("doc_id",), layer="gold",
    notes="Delete a row (or the table) to force a document (or everything) to be processed again.",
)

CHUNK_STATE = TableSpec(
    "chunk_state", "bookkeeping: the input each document was chunked from",
    _cols(
        ("doc_id", STRING, "the document"),
        ("chunk_hash", STRING, "hash of the text and the chunker"),
        ("n_chunks", INT, "chunks of the document"),
        ("chunker", STRING, "the chunker signature"),
        RUN_ID,
    ),
    keys=("doc_id",), layer="gold",
    notes="Delete a row (or the table) to force a document (or everything) to be chunked again.",
)

EVALUATIONS = TableSpec(
    "evaluations", "one row per baselines run and method it trained (a re-run that reuses an unchanged "
    "model adds none): metrics on the held-out test split",
    _cols(
        ("run_id", STRING, "the run"),
        ("method", STRING, "the method"),
        ("model_id", STRING, "the saved model's id"),
        ("data_source", STRING, "`table:<labels_table>` or `jsonl:<path>`"),
        ("n_train", LONG, "training documents after preparation"),
        ("n_validation", LONG, "validation documents"),
        ("n_test", LONG, "test documents"),
        ("n_labels", LONG, "labels kept"),
        ("micro_f1", DOUBLE, "on the test split"),
        ("macro_f1", DOUBLE, "on the test split"),
        ("weighted_f1", DOUBLE, "on the test split"),
        ("micro_precision", DOUBLE, "on the test split"),
        ("micro_recall", DOUBLE, "on the test split"),
        ("macro_precision", DOUBLE, "on the test split"),
        ("macro_recall", DOUBLE, "on the test split"),
        ("weighted_precision", DOUBLE, "on the test split"),
        ("weighted_recall", DOUBLE, "on the test split"),
        ("subset_accuracy", DOUBLE, "on the test split"),
        ("per_label", STRING, "JSON: label → precision, recall, f1, support, predicted"),
        ("threshold_sweep", STRING, "JSON list: threshold → micro/macro F1, micro precision/recall"),
        ("thresholds", STRING, "JSON: tuned per-label thresholds, global threshold, at_least_one"),
        ("preparation", STRING, "JSON: excluded labels, short documents, conflicting duplicates"),
        ("train_seconds", DOUBLE, "fit time"),
        ("predict_seconds", DOUBLE, "validation + test scoring time"),
        ("model_path", STRING, "where the model is"),
        ("mlflow_run_id", STRING, "its MLflow run"),
        ("created_at", TIMESTAMP, "UTC"),
    ),
    keys=("run_id", "method"), partition_by=("method",), scope="method", layer="gold",
)

INDEX_STATE = TableSpec(
    "index_state", "what the vector index holds: one row per chunk pushed or being pushed",
    _cols(
        ("state_key", STRING, "`backend/index_name/chunk_id`"),
        ("chunk_id", STRING, "the chunk pushed"),
        ("doc_id", STRING, "its document"),
        ("backend", STRING, "`lancedb` / `azure_search`"),
        ("index_name", STRING, "`index.name`"),
        ("content_hash", STRING, "SHA-256 of the index document as pushed; null while pending (written "
                                 "ahead of the push, not yet acknowledged)"),
        ("pushed_at", TIMESTAMP, "when the service acknowledged it (null while pending)"),
        ("run_id", STRING, "the run that pushed it"),
    ),
    keys=("state_key",), partition_by=("backend",), scope="backend", compare=("content_hash", "doc_id"),
    layer="gold",
)

PIPELINE_RUNS = TableSpec(
    "pipeline_runs", "one row per task run, and one per run of `lakedoc run` (task `_run`)",
    _cols(
        ("run_id", STRING, "job run id (`{{job.run_id}}` on Databricks, generated locally)"),
        ("task", STRING, "task key; `_run`: the run itself (`lakedoc run`: `running` before its first task, "
                         "`succeeded`/`failed` after its last)"),
        ("target", STRING, "`local`, `rehearsal`, `dev` or `prod`"),
        ("started_at", TIMESTAMP, "UTC (`skipped`: when the skip was decided)"),
        ("ended_at", TIMESTAMP, "UTC; null while `running` and for `abandoned`"),
        ("duration_s", DOUBLE, "seconds (null without `ended_at`)"),
        ("status", STRING, "`running`, `succeeded`, `failed`, `abandoned` or `skipped` (an upstream task "
                           "failed)"),
        ("rows_in", LONG, "rows read by the task"),
        ("rows_out", LONG, "rows written by the task"),
        ("details", STRING, "JSON: per-task counters (e.g. statuses of the files extracted)"),
        ("error", STRING, "`ExceptionClass: message` for a failed task; for an abandoned one `no end recorded: "
                          "the process was killed or lost`; for a skipped one `upstream failed: TASKS`; for "
                          "a failed `_run` the tasks that did not succeed, by status"),
    ),
    keys=("run_id", "task"), partition_by=("task",), scope="task", layer="operations",
)

FILE_MOVES = TableSpec(
    "file_moves", "input files moved out of the landing zone by `lakedoc archive` / task `archive_inputs` "
                  "(lakedoc.lake.archive): the original and the new location of each bronze document's file",
    _cols(
        ("move_id", STRING, "SHA-256 (32 hex) of source path, modification time, size and archive run"),
        ("doc_id", STRING, "the bronze `documents` row whose committed status decided the move"),
        ("source_path", STRING, "where the file was (landing)"),
        ("destination", STRING, "where it is now (`archive/YYYY/MM/DD/...` or `quarantine/YYYY/MM/DD/...`)"),
        ("kind", STRING, "`archive` or `quarantine`"),
        ("status", STRING, "the bronze row's status"),
        ("error", STRING, "the bronze row's error (quarantine; also in the JSON sidecar)"),
        ("ingest_run_id", STRING, "the run that wrote the bronze row"),
        ("size_bytes", LONG, "file size"),
        ("modified_at", TIMESTAMP, "file modification time (UTC)"),
        ("state", STRING, "`pending` (recorded before the rename), `done`, `missing` (neither place) or `failed`"),
        ("moved_at", TIMESTAMP, "UTC"),
        ("run_id", STRING, "the archive run"),
    ),
    keys=("move_id",), layer="operations",
)

FEEDBACK = TableSpec(
    "feedback", "reviewer feedback on predicted labels (`lakedoc feedback add|import`, lakedoc.finetune.feedback), "
                "the rewards of `lakedoc finetune --from-feedback`",
    _cols(
        ("feedback_id", STRING, "SHA-256 (32 hex) of `doc_id`, `label`, `reviewer_hash` and `model_version`: "
                                "a re-import adds no duplicate"),
        ("doc_id", STRING, "the document reviewed (`documents_redacted.doc_id`)"),
        ("label", STRING, "a label of the taxonomy (`classify.taxonomy`)"),
        ("score", INT, "1 (wrong) .. 5 (right); null when `verdict` is given"),
        ("verdict", STRING, "`accept` or `reject`; null when `score` is given"),
        ("reviewer_hash", STRING, "HMAC-SHA256 of the reviewer id keyed with "
                                  "`finetune.feedback.reviewer_hash_secret`; the id itself is never stored"),
        ("model_version", STRING, "the model whose prediction was reviewed (`\"\"` when not given)"),
        ("source", STRING, "`cli` (`lakedoc feedback add`) or `import` (`lakedoc feedback import`)"),
        ("created_at", TIMESTAMP, "when the feedback was recorded (UTC)"),
        RUN_ID,
    ),
    keys=("feedback_id",), compare=("score", "verdict"), layer="gold",
    notes="A reviewer's new score for the same document, label and model version updates the row.",
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (
    DOCUMENTS, DOCUMENTS_REDACTED, PII_FINDINGS, CHUNKS, EMBEDDINGS, PREDICTIONS, CLASSIFICATION_SKIPPED,
    CLASSIFY_STATE, CHUNK_STATE, EVALUATIONS, INDEX_STATE, PIPELINE_RUNS, FILE_MOVES, FEEDBACK,
)}
"""Every table, by name."""


def spec(table: str | TableSpec) -> TableSpec | None:
    """The spec of a table given by spec or name (None for a table outside the registry)."""
    return table if isinstance(table, TableSpec) else TABLES.get(table)


def table_name(table: str | TableSpec) -> str:
    return table.name if isinstance(table, TableSpec) else table


def merge_options(table: str | TableSpec, keys: Sequence[str] | None, partition_by: Sequence[str] | None,
                  compare: Sequence[str] | None) -> tuple[str, list[str], list[str] | None, list[str] | None]:
    """``(name, keys, partition_by, compare)`` of a MERGE: what the caller gave, else (for a table given
    by its spec) the spec's. A table given by name takes nothing from the registry: its keys are needed."""
    s = table if isinstance(table, TableSpec) else None
    name = table_name(table)
    if keys is None:
        if s is None:
            raise ValueError(f"merge into {name!r}: give the keys, or the table's spec (lakedoc.schema)")
        keys = s.keys
    if partition_by is None and s is not None and s.partition_by:
        partition_by = s.partition_by
    if compare is None and s is not None and s.compare is not None:
        compare = s.compare
    return (name, list(keys), list(partition_by) if partition_by else None,
            list(compare) if compare is not None else None)


# --- generated documentation ---------------------------------------------------------------------------

DOC_BEGIN = "<!-- BEGIN generated table reference: python -m lakedoc.schema docs -->"
DOC_END = "<!-- END generated table reference -->"
ARCHITECTURE_MD = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def table_doc(t: TableSpec) -> str:
    """The Markdown section of one table."""
    parts = [f"key ({', '.join(f'`{k}`' for k in t.keys)})"]
    if t.partition_by:
        parts.append(f"partitioned by {', '.join(f'`{c}`' for c in t.partition_by)}")
    if t.scope:
        parts.append(f"MERGE scoped to `{t.scope}`")
    if t.replace_within:
        parts.append(f"replaced within `{t.replace_within}`")
    layer = f" ({t.layer})" if t.layer else ""
    lines = [f"#### `{t.name}`{layer} — {'; '.join(parts)}", "", t.doc[:1].upper() + t.doc[1:] + "."]
    volatile = ", ".join(f"`{c}`" for c in VOLATILE_COLUMNS if c in t.column_names)
    compared = ", ".join(f"`{c}`" for c in t.compare) if t.compare is not None else \
        f"every column but the keys and {volatile}"
    lines.append(f"A row counts as changed when these differ: {compared}.")
    if t.notes:
        lines.append(t.notes)
    lines += ["", "| column | type | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{c.name}` | {_md(spark_type(c.type))} | {_md(c.doc)} |" for c in t.columns]
    return "\n".join(lines)


def tables_doc() -> str:
    """The generated table reference (between :data:`DOC_BEGIN` and :data:`DOC_END`)."""
    body = "\n\n".join(table_doc(t) for t in TABLES.values())
    return f"{DOC_BEGIN}\n\n{body}\n\n{DOC_END}"


_DOC_BLOCK = re.compile(re.escape(DOC_BEGIN) + r".*?" + re.escape(DOC_END), re.S)


def documented_tables(markdown: str) -> str | None:
    """The generated block as it stands in ``markdown`` (None when it has none)."""
    m = _DOC_BLOCK.search(markdown)
    return m.group(0) if m else None


def write_docs(path: Path = ARCHITECTURE_MD) -> bool:
    """Rewrite the generated block of ``path``; True when it changed."""
    text = path.read_text(encoding="utf-8")
    if documented_tables(text) is None:
        raise ValueError(f"{path} has no generated table block ({DOC_BEGIN})")
    new = _DOC_BLOCK.sub(lambda _m: tables_doc(), text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["docs"]:
        path = Path(args[1]) if len(args) > 1 else ARCHITECTURE_MD
        print(f"{path}: {'updated' if write_docs(path) else 'up to date'}")
        return 0
    if args[:1] == ["check"]:
        ok = documented_tables(ARCHITECTURE_MD.read_text(encoding="utf-8")) == tables_doc()
        print("docs/architecture.md matches lakedoc.schema" if ok else
              "docs/architecture.md differs from lakedoc.schema: run python -m lakedoc.schema docs")
        return 0 if ok else 1
    print("usage: python -m lakedoc.schema docs [PATH] | check", file=sys.stderr)
    return 2


__all__ = ["VOLATILE_COLUMNS", "TableSpec", "Column", "TABLES", "DOCUMENTS", "DOCUMENTS_REDACTED", "PII_FINDINGS",
           "CHUNKS",
           "EMBEDDINGS", "PREDICTIONS", "CLASSIFICATION_SKIPPED", "CLASSIFY_STATE", "CHUNK_STATE", "EVALUATIONS",
           "INDEX_STATE", "PIPELINE_RUNS", "FEEDBACK", "UNIT", "FINDING", "VECTOR", "spec", "table_name",
           "merge_options", "spark_type", "ddl_of", "tables_doc", "write_docs"]


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
