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
* **Folders without hard links** (a Unity Catalog volume's ``/Volumes/...`` FUSE mount, ``/dbfs``, some
  network mounts): Lance commits a new version with an atomic "rename if not exists" built on hard
  links, which such mounts lack, so the dataset cannot be written in place. There the backend *stages*:
  reads (``search``, ``count``) open the dataset on the configured path directly (or, if that fails, a
  local copy); the first write copies the table's dataset down to a local scratch folder
  (:func:`tempfile.mkdtemp`), every write (``ensure_index``, ``upsert``, ``delete``, ``finalize``) runs
  there and is then published: new and changed files are copied up (data, indices and transactions
  first, the version manifests last, so a reader never sees a manifest whose files are missing) and
  files the write removed are deleted. Publishing after each write keeps ``index_state`` honest: what
  it records as pushed is on the configured path. ``close()`` drops the scratch copy. Staging is chosen
  for ``/Volumes/`` and ``/dbfs/`` paths and for any folder where an ``os.link`` probe fails
  (:func:`supports_hard_links`); a plain local folder (the local default) is written in place as before.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

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
        parts.append(f"array_has_any(labels, [{', '.join(_quote(lab) for lab in labels)}])")
    if format:
        parts.append(f"format = {_quote(format)}")
    return " AND ".join(parts) or None


def _sub_vectors(dimension: int, wanted: int | None) -> int:
    n = wanted or max(1, dimension // 8)
    while dimension % n:  # PQ needs a divisor of the dimension
        n -= 1
    return n


def supports_hard_links(folder: str | Path) -> bool:
    """Whether ``folder`` (created if missing) supports hard links: probed with ``os.link`` on a temp file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, src = tempfile.mkstemp(prefix=".lakedoc-link-probe-", dir=folder)
    os.close(fd)
    dst = src + ".link"
    try:
        os.link(src, dst)
        return True
    except OSError:
        return False
    finally:
        for f in (dst, src):
            try:
                os.unlink(f)
            except OSError:
                pass


def needs_staging(path: str) -> bool:
    """True where a Lance dataset cannot be written in place: volumes, /dbfs, folders without hard links."""
    if "://" in path:  # object stores: Lance has native commit handlers for those
        return False
    p = os.path.abspath(path)
    if p.startswith(("/Volumes/", "/dbfs/")):
        return True
    return not supports_hard_links(p)


_MANIFEST_HINT = "latest_version_hint.json"


def _file_sigs(root: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime_ns) of every file under ``root``."""
    out = {}
    if root.is_dir():
        for p in root.rglob("*"):
            if p.is_file():
                st = p.stat()
                out[p.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def _publish_order(rel: str) -> tuple[int, str]:
    # data, deletion files, indices and transactions first; then the version manifests; the hint last
    if rel.endswith(_MANIFEST_HINT):
        return 2, rel
    return (1 if rel.startswith("_versions/") else 0), rel


def mirror_dataset(src: Path, dst: Path, known: dict[str, tuple[int, int]]) -> int:
    """Make ``dst`` hold what ``src`` holds; ``known`` is ``src``'s state at the last mirror (updated).

    Copies the files new or changed since then (manifests last), then deletes the ones that went away.
    A ``src`` that no longer exists (a dropped table) removes ``dst``. Returns the number of files copied.
    """
    if not src.is_dir():
        if dst.exists():
            shutil.rmtree(dst)
        known.clear()
        return 0
    current = _file_sigs(src)
    changed = sorted((r for r, sig in current.items() if known.get(r) != sig), key=_publish_order)
    for rel in changed:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target)  # plain sequential write: what a FUSE mount supports
    for rel in sorted(set(known) - set(current)):
        target = dst / rel
        try:
            target.unlink()
        except FileNotFoundError:
            pass
        parent = target.parent
        while parent != dst and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    known.clear()
    known.update(current)
    return len(changed)


class LanceDBBackend(IndexBackend):
    name = "lancedb"

    def __init__(self, path: str | Path, table: str, *, index_type: str = "IVF_HNSW_SQ", ann_min_rows: int = 10000,
                 num_partitions: int | None = None, num_sub_vectors: int | None = None, nprobes: int = 20,
                 refine_factor: int = 10, fts: bool = True, ef: int | None = 300, staging: bool | None = None,
                 scratch_dir: str | None = None):
        self.path = str(path)
        if self.path.startswith("dbfs:"):
            from lakedoc.encoder import local_path

            self.path = local_path(self.path)
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
        # staged: writes go to a local scratch copy, published to self.path after each write
        self.staged = needs_staging(self.path) if staging is None else bool(staging)
        self.scratch_dir = scratch_dir
        self.work: str | None = None  # the local scratch folder while one is in use
        self._writing = False
        self._known: dict[str, tuple[int, int]] = {}
        self._cleanup: weakref.finalize | None = None
        self.db = self._connect(self.path)
        self._table = None
        self.dimension: int | None = None
        if self.staged:
            log.info("LanceDB path %s cannot hold in-place Lance writes (no hard links): writes are staged in a "
                     "local scratch copy and published there", self.path)

    @staticmethod
    def _connect(path: str):
        import lancedb

        return lancedb.connect(path)

    # -- staging (folders without hard links) ------------------------------------------------------
    def _dataset_dir(self, root: str) -> Path:
        return Path(root) / f"{self.table_name}.lance"

    def _copy_down(self) -> None:
        """Copy the table's dataset from ``self.path`` into a fresh scratch folder and connect there."""
        work = tempfile.mkdtemp(prefix="lakedoc-lancedb-", dir=self.scratch_dir)
        self._cleanup = weakref.finalize(self, shutil.rmtree, work, True)
        home = self._dataset_dir(self.path)
        if home.is_dir():
            shutil.copytree(home, self._dataset_dir(work))
        self._known = _file_sigs(self._dataset_dir(work))
        log.info("LanceDB table %s copied to the local scratch folder %s (%d files)", self.table_name, work,
                 len(self._known))
        self.work = work
        self.db = self._connect(work)
        self._table = None

    def _writable(self) -> None:
        """Before a write: in staged mode, make sure the table is a local scratch copy (taken once)."""
        if self.staged and not self._writing:
            if self.work is None:  # (a copy made by _read_locally is as good a start)
                self._copy_down()
            self._writing = True

    def _publish(self) -> None:
        """After a write: in staged mode, bring the configured path up to date with the scratch copy."""
        if self.staged and self._writing:
            assert self.work is not None  # _writable() made the scratch copy
            n = mirror_dataset(self._dataset_dir(self.work), self._dataset_dir(self.path), self._known)
            log.debug("LanceDB table %s published to %s (%d files copied)", self.table_name, self.path, n)

    def _read_locally(self, exc: Exception) -> None:
        log.warning("reading LanceDB table %s on %s failed (%s: %s): reading a local copy instead",
                    self.table_name, self.path, type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
        self._copy_down()

    def close(self) -> None:
        """Drop the scratch copy (every write was already published)."""
        if self.work is None:
            return
        self._table = None
        self.work, self._writing, self._known = None, False, {}
        self.db = self._connect(self.path)
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None

    @classmethod
    def from_config(cls, cfg) -> LanceDBBackend:
        c = cfg.index.lancedb
        path = c.path
        if path:
            path = cfg.resolve_path(path)
        else:
            if cfg.tables.backend != "delta_rs":
                raise ValueError("index.lancedb.path must be set when the tables are not local "
                                 "(e.g. a /Volumes/... folder or a local disk path)")
            path = str(Path(cfg.resolve_path(cfg.tables.warehouse)) / "_lancedb")
        return cls(path, cfg.index.name, index_type=c.index_type, ann_min_rows=c.ann_min_rows,
                   num_partitions=c.num_partitions, num_sub_vectors=c.num_sub_vectors, nprobes=c.nprobes,
                   refine_factor=c.refine_factor, fts=c.fts, ef=c.ef)

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
            try:
                self._table = self.db.open_table(self.table_name)
            except Exception as exc:  # noqa: BLE001 - e.g. a mount that cannot serve Lance's reads
                if not self.staged or self.work is not None:
                    raise
                self._read_locally(exc)
                self._table = self.db.open_table(self.table_name)
            vf = self._table.schema.field("vector").type
            self.dimension = getattr(vf, "list_size", None)
        return self._table

    def ensure_index(self, dimension: int) -> bool:
        """Open (or create) the table; a table of another dimension (a new model) is recreated.
        Returns True when the table is new (empty): every chunk must be sent again."""
        self._writable()
        if self.table_name in self._names():
            t = self.db.open_table(self.table_name)
            existing = getattr(t.schema.field("vector").type, "list_size", None)
            if existing == dimension:
                self._table, self.dimension = t, dimension
                return t.count_rows() == 0
            log.warning("LanceDB table %s has dimension %s, the model gives %s: recreating it",
                        self.table_name, existing, dimension)
            self.db.drop_table(self.table_name)
            self._publish()  # the old dataset goes from the configured path before the new one arrives
        self._table = self.db.create_table(self.table_name, schema=arrow_schema(dimension))
        self.dimension = dimension
        self._publish()
        return True

    def _to_arrow(self, docs: list[dict]) -> pa.Table:
        if self.dimension is None:
            raise RuntimeError("LanceDBBackend.ensure_index must be called before upsert")
        schema = arrow_schema(self.dimension)
        cols = {f.name: [d.get(f.name) for d in docs] for f in schema}
        return pa.Table.from_pydict(cols, schema=schema)

    def upsert(self, docs: list[dict]) -> PushResult:
        if not docs:
            return PushResult()
        self._writable()
        data = self._to_arrow(docs)
        self.table.merge_insert("chunk_id").when_matched_update_all().when_not_matched_insert_all().execute(data)
        self._publish()  # before the caller records these chunks as pushed
        return PushResult(succeeded=[d["chunk_id"] for d in docs], requests=1)

    def delete(self, chunk_ids: Sequence[str]) -> PushResult:
        ids = list(chunk_ids)
        if not ids or self.table_name not in self._names():
            return PushResult(succeeded=ids)
        self._writable()
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            self.table.delete(f"chunk_id IN ({', '.join(_quote(c) for c in part)})")
        self._publish()
        return PushResult(succeeded=ids, requests=-(-len(ids) // 500))

    def _indices(self) -> dict[str, object]:
        return {ix.name: ix for ix in self.table.list_indices()}

    def finalize(self) -> dict:
        """Build the ANN index once the table is large enough, the FTS index once it has rows, and
        fold new rows into existing indices."""
        from lancedb.index import FTS, HnswSq, IvfPq

        if self._table is None and self.table_name not in self._names():
            return {"rows": 0, "indices_built": [], "ann": False}
        self._writable()
        t = self.table
        n = t.count_rows()
        built: list[str] = []
        indices = self._indices()
        if n >= self.ann_min_rows and VECTOR_INDEX not in indices:
            parts = self.num_partitions or max(1, int(round(math.sqrt(n))))
            config: HnswSq | IvfPq
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
        self._publish()
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
