"""LanceDB, the embedded backend (local default): one table under the warehouse folder.

* Upserts are ``merge_insert`` on ``chunk_id`` (idempotent), deletes a ``chunk_id IN (...)`` predicate.
* Below ``index.lancedb.ann_min_rows`` rows queries are exact (a flat scan is fast and has recall 1).
  From there on an ANN index is built (``IVF_HNSW_SQ``, the default, or ``IVF_PQ``; cosine). HNSW
  graphs inside few IVF partitions (about sqrt(rows)/16) reach recall@10 >= 0.95 even on structureless
  random vectors (docs/benchmarks.md), where IVF_PQ needs to probe most partitions. Queries probe
  ``nprobes`` partitions and *refine*: the best ``k * refine_factor`` candidates are re-ranked on the
  stored full-precision vectors, so a chunk queried with its own vector comes back first with
  similarity 1.0 (PQ distances alone are approximate).
* A native full-text index on ``text`` serves hybrid search (vector + BM25, fused with reciprocal
  rank fusion). ``optimize()`` after each push folds new rows into both indices.
"""
from __future__ import annotations

import logging
import math
from datetime import timedelta
from pathlib import Path
from typing import Sequence

import pyarrow as pa

from lakedoc.index.backends.base import IndexBackend, PushResult
from lakedoc.index.hit import Hit

log = logging.getLogger(__name__)

VECTOR_INDEX = "vector_idx"
FTS_INDEX = "text_idx"

LABEL_SCORE = pa.struct([("label", pa.string()), ("score", pa.float64()), ("method", pa.string())])
RESULT_COLUMNS = ["chunk_id", "doc_id", "seq", "source_path", "file_name", "format", "unit_ref", "text", "labels",
                  "label_scores", "modified_at"]


def arrow_schema(dimension: int) -> pa.Schema:
    return pa.schema([
        ("chunk_id", pa.string()), ("doc_id", pa.string()), ("seq", pa.int32()),
        ("source_path", pa.string()), ("file_name", pa.string()), ("format", pa.string()),
        ("unit_ref", pa.string()), ("text", pa.string()),
        ("vector", pa.list_(pa.float32(), dimension)),
        ("labels", pa.list_(pa.string())), ("label_scores", pa.list_(LABEL_SCORE)),
        ("modified_at", pa.timestamp("us", tz="UTC")), ("indexed_at", pa.timestamp("us", tz="UTC")),
        ("model", pa.string()), ("run_id", pa.string()),
    ])


def _quote(v: str) -> str:
    return "'" + str(v).replace("'", "''") + "'"


def where_clause(labels: Sequence[str] | None, format: str | None) -> str | None:
    parts = []
    if labels:
        parts.append(f"array_has_any(labels, [{', '.join(_quote(l) for l in labels)}])")
    if format:
        parts.append(f"format = {_quote(format)}")
    return " AND ".join(parts) or None


def _sub_vectors(dimension: int, wanted: int | None) -> int:
    n = wanted or max(1, dimension // 8)
    while dimension % n:  # PQ needs a divisor of the dimension
        n -= 1
    return n


class LanceDBBackend(IndexBackend):
    name = "lancedb"

    def __init__(self, path: str | Path, table: str, *, index_type: str = "IVF_HNSW_SQ", ann_min_rows: int = 10000,
                 num_partitions: int | None = None, num_sub_vectors: int | None = None, nprobes: int = 20,
                 refine_factor: int = 10, fts: bool = True, ef: int | None = 300):
        import lancedb

        self.path = str(path)
        self.table_name = table
        self.index_type = index_type
        self.ann_min_rows = ann_min_rows
        self.num_partitions = num_partitions
        self.num_sub_vectors = num_sub_vectors
        self.nprobes = nprobes
        self.refine_factor = refine_factor
        self.fts = fts
        self.ef = ef
        Path(self.path).mkdir(parents=True, exist_ok=True) if "://" not in self.path else None
        self.db = lancedb.connect(self.path)
        self._table = None
        self.dimension: int | None = None

    @classmethod
    def from_config(cls, cfg) -> "LanceDBBackend":
        c = cfg["index"]["lancedb"]
        path = c["path"]
        if path:
            path = cfg.resolve_path(path)
        else:
            if cfg["tables"]["backend"] != "delta_rs":
                raise ValueError("index.lancedb.path must be set when the tables are not local "
                                 "(e.g. a /Volumes/... folder or a local disk path)")
            path = str(Path(cfg.resolve_path(cfg["tables"]["warehouse"])) / "_lancedb")
        return cls(path, cfg["index"]["name"], index_type=c["index_type"], ann_min_rows=c["ann_min_rows"],
                   num_partitions=c["num_partitions"], num_sub_vectors=c["num_sub_vectors"], nprobes=c["nprobes"],
                   refine_factor=c["refine_factor"], fts=c["fts"], ef=c["ef"])

    # -- table ------------------------------------------------------------------------------------
    def _names(self) -> list[str]:
        res = self.db.list_tables()
        names = getattr(res, "tables", res)
        return list(names)

    @property
    def table(self):
        if self._table is None:
            if self.table_name not in self._names():
                raise LookupError(f"no LanceDB table {self.table_name!r} under {self.path}: run the index task first")
            self._table = self.db.open_table(self.table_name)
            vf = self._table.schema.field("vector").type
            self.dimension = getattr(vf, "list_size", None)
        return self._table

    def ensure_index(self, dimension: int) -> bool:
        """Open (or create) the table; a table of another dimension (a new model) is recreated.
        Returns True when the table is new (empty): every chunk must be sent again."""
        if self.table_name in self._names():
            t = self.db.open_table(self.table_name)
            existing = getattr(t.schema.field("vector").type, "list_size", None)
            if existing == dimension:
                self._table, self.dimension = t, dimension
                return t.count_rows() == 0
            log.warning("LanceDB table %s has dimension %s, the model gives %s: recreating it",
                        self.table_name, existing, dimension)
            self.db.drop_table(self.table_name)
        self._table = self.db.create_table(self.table_name, schema=arrow_schema(dimension))
        self.dimension = dimension
        return True

    def _to_arrow(self, docs: list[dict]) -> pa.Table:
        schema = arrow_schema(self.dimension)
        cols = {f.name: [d.get(f.name) for d in docs] for f in schema}
        return pa.Table.from_pydict(cols, schema=schema)

    def upsert(self, docs: list[dict]) -> PushResult:
        if not docs:
            return PushResult()
        data = self._to_arrow(docs)
        self.table.merge_insert("chunk_id").when_matched_update_all().when_not_matched_insert_all().execute(data)
        return PushResult(succeeded=[d["chunk_id"] for d in docs], requests=1)

    def delete(self, chunk_ids: Sequence[str]) -> PushResult:
        ids = list(chunk_ids)
        if not ids or self.table_name not in self._names():
            return PushResult(succeeded=ids)
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            self.table.delete(f"chunk_id IN ({', '.join(_quote(c) for c in part)})")
        return PushResult(succeeded=ids, requests=-(-len(ids) // 500))

    def _indices(self) -> dict[str, object]:
        return {ix.name: ix for ix in self.table.list_indices()}

    def finalize(self) -> dict:
        """Build the ANN index once the table is large enough, the FTS index once it has rows, and
        fold new rows into existing indices."""
        from lancedb.index import FTS, HnswSq, IvfPq

        if self._table is None and self.table_name not in self._names():
            return {"rows": 0, "indices_built": [], "ann": False}
        t = self.table
        n = t.count_rows()
        built: list[str] = []
        indices = self._indices()
        if n >= self.ann_min_rows and VECTOR_INDEX not in indices:
            parts = self.num_partitions or max(1, int(round(math.sqrt(n))))
            if self.index_type == "IVF_HNSW_SQ":
                config = HnswSq(distance_type="cosine", num_partitions=max(1, parts // 16))
            else:
                config = IvfPq(distance_type="cosine", num_partitions=parts,
                               num_sub_vectors=_sub_vectors(self.dimension or t.schema.field("vector").type.list_size,
                                                            self.num_sub_vectors))
            t.create_index("vector", config=config, name=VECTOR_INDEX)
            built.append(VECTOR_INDEX)
        if self.fts and n and FTS_INDEX not in indices:
            t.create_index("text", config=FTS(), name=FTS_INDEX)
            built.append(FTS_INDEX)
        if indices and n:
            t.optimize(cleanup_older_than=timedelta(days=1))  # adds new rows to existing indices
        return {"rows": n, "indices_built": built, "ann": VECTOR_INDEX in self._indices()}

    def count(self) -> int:
        return self.table.count_rows() if self.table_name in self._names() else 0

    def _ann_type(self) -> str:
        stats = self.table.index_stats(VECTOR_INDEX)
        return str(getattr(stats, "index_type", "") or "").upper()

    def has_ann(self) -> bool:
        return VECTOR_INDEX in self._indices()

    # -- search -----------------------------------------------------------------------------------
    def search(self, vector, text=None, *, labels=None, format=None, k=10, mode="vector", exact=False) -> list[Hit]:
        t = self.table
        where = where_clause(labels, format)
        ann = (not exact) and self.has_ann()
        if mode == "hybrid":
            if not text:
                raise ValueError("hybrid search needs the query text")
            if FTS_INDEX not in self._indices():
                raise RuntimeError("hybrid search needs the full-text index (index.lancedb.fts: true, re-run index)")
            q = t.search(query_type="hybrid", vector_column_name="vector").vector(vector).text(text)
        elif mode == "vector":
            q = t.search(vector, vector_column_name="vector")
        else:
            raise ValueError(f"unknown search mode {mode!r}; use vector or hybrid")
        q = q.distance_type("cosine")
        if ann:
            q = q.nprobes(self.nprobes).refine_factor(self.refine_factor)
            if self.ef and self._ann_type().startswith("IVF_HNSW"):
                q = q.ef(max(int(self.ef), k))
        elif hasattr(q, "bypass_vector_index"):
            q = q.bypass_vector_index()
        if where:
            q = q.where(where, prefilter=True) if mode == "vector" else q.where(where)
        cols = RESULT_COLUMNS + (["_distance"] if mode == "vector" else [])
        rows = q.select(cols).limit(k).to_arrow().to_pylist()
        hits = []
        for r in rows:
            score = r.get("_relevance_score")
            if score is None:
                score = 1.0 - float(r.get("_distance", 1.0))
            hits.append(Hit(chunk_id=r["chunk_id"], doc_id=r["doc_id"], score=float(score), text=r.get("text") or "",
                            file_name=r.get("file_name"), source_path=r.get("source_path"), format=r.get("format"),
                            unit_ref=r.get("unit_ref"), labels=list(r.get("labels") or []),
                            label_scores=list(r.get("label_scores") or []), modified_at=r.get("modified_at")))
        return hits
