"""The table layer every stage writes through: idempotent MERGEs on stable keys into Delta tables.

Two backends behind one interface (:class:`TableStore`):

* :class:`LocalDeltaStore` (``tables.backend: delta_rs``) — Delta tables under the warehouse folder,
  written and merged with delta-rs (``deltalake``) and read back into Spark through Arrow. Spark's
  Delta jars come from Maven, which a laptop behind a proxy (and this project's CI) cannot reach.
* :class:`UnityCatalogStore` (``tables.backend: unity_catalog``) — ``catalog.schema.table`` Delta
  tables written with Spark SQL ``MERGE INTO`` (works on classic clusters and on Spark Connect).

Both guarantee:

* **Idempotence** — rows whose key exists with identical compared columns are dropped before the
  MERGE; when nothing is left, nothing is written, so an unchanged input makes no new table version.
* **No conflicts between parallel tasks** — a ``scope`` (e.g. ``{"source_task": "docx"}``) is added to
  the MERGE condition and the table is partitioned by it, so concurrent MERGEs of different scopes
  touch disjoint files (Delta's conflict checker accepts them); locally writers also serialise on a
  per-table lock and retry a failed commit.
* **Replace within a group** — ``replace_within="doc_id"`` deletes target rows of the same group that
  the new data no longer has (stale chunks of a changed document, findings of a re-redacted one).

A Delta table is never read as plain Parquet: the transaction log decides which files are live.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from lakedoc.schema import VOLATILE_COLUMNS, TableSpec, merge_options, table_name

if TYPE_CHECKING:
    from lakedoc.config import Config

log = logging.getLogger(__name__)
Table = str | TableSpec  # a table: its name or its spec (lakedoc.schema)
T = TypeVar("T")



@dataclass
class MergeResult:
    table: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    version: int | None = None

    @property
    def written(self) -> int:
        return self.inserted + self.updated


def _nullable_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _nullable_type(f.type), True) for f in t])
    if pa.types.is_large_list(t):
        return pa.large_list(pa.field(t.value_field.name, _nullable_type(t.value_type), True))
    if pa.types.is_list(t):
        return pa.list_(pa.field(t.value_field.name, _nullable_type(t.value_type), True))
    if pa.types.is_fixed_size_list(t):
        return pa.list_(pa.field(t.value_field.name, _nullable_type(t.value_type), True), t.list_size)
    if pa.types.is_map(t):
        return pa.map_(t.key_type, pa.field(t.item_field.name, _nullable_type(t.item_type), True))
    return t


def _fresh_buffers(table: pa.Table) -> pa.Table:
    """``table`` with freshly built buffers.

    Spark's Arrow output can give a batch whose nested string arrays have an empty offsets buffer
    (no row of the batch has an element there: e.g. every file of an ingestion task corrupt, so no
    units and no metadata); delta-rs (arrow-rs) reads past it and panics ("range start index ... out
    of range"). ``take`` writes valid buffers, for every stage that merges Spark output locally.
    """
    return table.take(pa.array(range(table.num_rows), pa.int64())) if table.num_rows else table


def nullable_schema(schema: pa.Schema) -> pa.Schema:
    """delta-rs makes a column NOT NULL when the Arrow field is non-nullable: loosen every level."""
    return pa.schema([pa.field(f.name, _nullable_type(f.type), True) for f in schema])


def _plain_type(t: pa.DataType) -> pa.DataType:
    if pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain_type(f.type), f.nullable) for f in t])
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(pa.field(t.value_field.name, _plain_type(t.value_type), True))
    if pa.types.is_map(t):
        return pa.map_(_plain_type(t.key_type), pa.field(t.item_field.name, _plain_type(t.item_type), True))
    return t


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """Arrow view types (``string_view``) turned into the plain types Spark's Arrow reader takes."""
    return pa.schema([pa.field(f.name, _plain_type(f.type), f.nullable) for f in schema])


def _fingerprints(table: pa.Table, columns: Sequence[str]) -> list[str]:
    """One hash per row of ``columns``; a map's entries are sorted (key order is not content)."""
    maps = {c for c in columns if pa.types.is_map(table.schema.field(c).type)}
    rows = table.select(list(columns)).to_pylist()

    def norm(c, v):
        return sorted(v, key=lambda kv: json.dumps(kv, default=str)) if c in maps and v is not None else v

    return [
        hashlib.sha1(json.dumps([norm(c, r[c]) for c in columns], default=str, sort_keys=True).encode()).hexdigest()
        for r in rows
    ]


def _key_tuples(table: pa.Table, keys: Sequence[str]) -> list[tuple]:
    cols = [table.column(k).to_pylist() for k in keys]
    return list(zip(*cols, strict=True))


def _sql_literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


class TableStore:
    """Interface shared by both backends (see the module docstring).

    Every method takes a table as its name or its :class:`lakedoc.schema.TableSpec`; a MERGE takes the
    keys, partition columns and compared columns the caller gives, else the table's spec's.
    """

    def location(self, table: Table) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def exists(self, table: Table) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def version(self, table: Table) -> int | None:  # pragma: no cover - interface
        """The table's current Delta version, None when it does not exist."""
        raise NotImplementedError

    def read(self, table: Table, columns: Sequence[str] | None = None):  # -> pyspark DataFrame
        raise NotImplementedError  # pragma: no cover

    def read_arrow(self, table: Table, columns: Sequence[str] | None = None,
                   where: Mapping[str, Any] | None = None) -> pa.Table:  # pragma: no cover
        raise NotImplementedError

    def merge(self, table: Table, data, keys: Sequence[str] | None = None, *,
              scope: Mapping[str, Any] | None = None, partition_by: Sequence[str] | None = None,
              compare: Sequence[str] | None = None, replace_within: str | None = None) -> MergeResult:
        raise NotImplementedError  # pragma: no cover

    def delete_where(self, table: Table, column: str, values: Iterable[Any],
                     scope: Mapping[str, Any] | None = None) -> int:  # pragma: no cover
        """Delete rows whose ``column`` is in ``values`` (and, with ``scope``, only within it)."""
        raise NotImplementedError

    @contextmanager
    def materialize(self, df) -> Iterator[Any]:
        """Compute a Spark DataFrame once and yield a DataFrame over the result (``with`` block).

        Stages use it for an expensive plan (a ``mapInPandas`` over documents) that several writes and
        counts read: the plan runs once, and no document text has to pass through the driver where
        the backend can avoid it. Unity Catalog: a staging Delta table, dropped at the end. delta-rs
        writes from the driver anyway: the rows are collected once as Arrow.
        """
        spark = df.sparkSession
        yield spark.createDataFrame(df.toArrow())

    # -- shared helpers --------------------------------------------------------------------------
    @staticmethod
    def to_arrow(data) -> pa.Table:
        """Accept a Spark DataFrame, a pandas DataFrame, a list of dicts or an Arrow table."""
        if isinstance(data, pa.Table):
            return data
        if hasattr(data, "toArrow"):  # pyspark >= 4 (classic and Connect)
            return data.toArrow()
        if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas
            return pa.Table.from_pandas(data, preserve_index=False)
        if isinstance(data, list):
            return pa.Table.from_pylist(data)
        raise TypeError(f"cannot turn {type(data).__name__} into an Arrow table")


def _compare_columns(schema: pa.Schema, keys: Sequence[str], compare: Sequence[str] | None) -> list[str]:
    if compare is not None:
        return list(compare)
    return [n for n in schema.names if n not in keys and n not in VOLATILE_COLUMNS]


class LocalDeltaStore(TableStore):
    """Delta tables under ``warehouse/<table>`` written with delta-rs."""

    _locks: dict[str, threading.Lock] = {}
    _locks_guard = threading.Lock()

    def __init__(self, warehouse: str | Path, spark=None):
        self.root = Path(warehouse).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._spark = spark

    def _lock(self, table: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(str(self.root / table), threading.Lock())

    def location(self, table: Table) -> str:
        return str(self.root / table_name(table))

    def exists(self, table: Table) -> bool:
        return (self.root / table_name(table) / "_delta_log").is_dir()

    def version(self, table: Table) -> int | None:
        from deltalake import DeltaTable

        return DeltaTable(self.location(table)).version() if self.exists(table) else None

    def read_arrow(self, table, columns=None, where=None) -> pa.Table:
        import pyarrow.compute as pc
        from deltalake import DeltaTable

        table = table_name(table)
        if not self.exists(table):
            raise FileNotFoundError(f"table {table!r} does not exist yet under {self.root}")
        ds = DeltaTable(self.location(table)).to_pyarrow_dataset()  # live files per the Delta log
        expr = None
        for k, v in (where or {}).items():
            ftype = ds.schema.field(k).type
            if pa.types.is_string(ftype) or pa.types.is_large_string(ftype) or pa.types.is_string_view(ftype):
                # files written from Spark may store string_view; string == string_view has no
                # kernel, so compare both sides as plain strings
                e = pc.field(k).cast(pa.string()) == pa.scalar(v, pa.string())
            else:
                e = pc.field(k) == pa.scalar(v, ftype)
            expr = e if expr is None else expr & e
        return ds.to_table(columns=list(columns) if columns else None, filter=expr)

    def read(self, table, columns=None):
        if self._spark is None:
            raise RuntimeError("LocalDeltaStore.read needs a SparkSession")
        return self._spark.createDataFrame(self.read_arrow(table, columns))

    def merge(self, table, data, keys=None, *, scope=None, partition_by=None, compare=None,
              replace_within=None) -> MergeResult:
        from deltalake import DeltaTable, write_deltalake

        table, keys, partition_by, compare = merge_options(table, keys, partition_by, compare)
        src = self.to_arrow(data)
        src = _fresh_buffers(src.cast(_plain_schema(nullable_schema(src.schema))))
        result = MergeResult(table)
        path = self.location(table)
        with self._lock(table):
            if not self.exists(table):
                if src.num_rows == 0:
                    return result
                try:
                    write_deltalake(path, src, partition_by=list(partition_by) if partition_by else None,
                                    mode="error")
                    result.inserted = src.num_rows
                    result.version = self.version(table)
                    return result
                except Exception:  # noqa: BLE001 - another process created it first: merge below
                    if not self.exists(table):
                        raise
            dt = DeltaTable(path)
            tgt_cols = set(dt.schema().to_arrow().names if hasattr(dt.schema(), "to_arrow") else
                           [f.name for f in dt.schema().fields])
            # a column the target lacks yet (schema evolution) compares as null there
            cmp_cols = [c for c in _compare_columns(src.schema, keys, compare)
                        if c in tgt_cols or c in src.schema.names]
            where = dict(scope or {})
            existing = self.read_arrow(table, list(dict.fromkeys([*keys, *[c for c in cmp_cols if c in tgt_cols]]
                                                                 + ([replace_within] if replace_within else []))),
                                       where)
            for c in cmp_cols:
                if c not in tgt_cols:
                    existing = existing.append_column(c, pa.nulls(existing.num_rows, src.schema.field(c).type))
            existing_fp = dict(zip(_key_tuples(existing, keys), _fingerprints(existing, cmp_cols), strict=True))
            src_keys = _key_tuples(src, keys)
            src_fp = _fingerprints(src, cmp_cols)
            keep = [existing_fp.get(k) != fp for k, fp in zip(src_keys, src_fp, strict=True)]
            result.unchanged = keep.count(False)
            result.updated = sum(1 for k, kp in zip(src_keys, keep, strict=True) if kp and k in existing_fp)
            result.inserted = sum(1 for k, kp in zip(src_keys, keep, strict=True) if kp and k not in existing_fp)
            changed = src.filter(pa.array(keep, type=pa.bool_())) if src.num_rows else src

            stale: list[tuple] = []
            if replace_within and src.num_rows:
                groups = set(src.column(replace_within).to_pylist())
                src_key_set = set(src_keys)
                ex_groups = existing.column(replace_within).to_pylist()
                stale = [k for k, g in zip(_key_tuples(existing, keys), ex_groups, strict=True)
                         if g in groups and k not in src_key_set]

            if changed.num_rows == 0 and not stale:
                result.version = dt.version()
                return result
            scope_pred = "".join(f' AND t."{k}" = {_sql_literal(v)}' for k, v in where.items())
            if stale:
                self._delete_keys(dt, keys, stale, scope_pred)
                result.deleted = len(stale)
            if changed.num_rows:
                pred = " AND ".join(f't."{k}" = s."{k}"' for k in keys) + scope_pred
                for attempt in range(5):
                    try:
                        (
                            DeltaTable(path)
                            .merge(source=changed, predicate=pred, source_alias="s", target_alias="t",
                                   merge_schema=True)
                            .when_matched_update_all()
                            .when_not_matched_insert_all()
                            .execute()
                        )
                        break
                    except Exception as exc:  # noqa: BLE001 - retry commit conflicts only
                        if "commit" not in str(exc).lower() or attempt == 4:
                            raise
                        time.sleep(0.2 * (attempt + 1))
            result.version = DeltaTable(path).version()
        return result

    @staticmethod
    def _delete_keys(dt, keys: Sequence[str], key_values: list[tuple], scope_pred: str) -> None:
        # chunked OR of key conjunctions; keys are few per group so this stays small
        for i in range(0, len(key_values), 500):
            part = key_values[i:i + 500]
            if len(keys) == 1:
                pred = f'"{keys[0]}" IN ({", ".join(_sql_literal(k[0]) for k in part)})'
            else:
                pred = " OR ".join(
                    "(" + " AND ".join(f'"{c}" = {_sql_literal(v)}' for c, v in zip(keys, k, strict=True)) + ")"
                    for k in part
                )
            if scope_pred:
                pred = f"({pred}){scope_pred.replace('t.', '')}"
            dt.delete(pred)

    def delete_where(self, table, column, values, scope=None) -> int:
        from deltalake import DeltaTable

        table = table_name(table)
        values = list(values)
        if not values or not self.exists(table):
            return 0
        scope_sql = "".join(f' AND "{k}" = {_sql_literal(v)}' for k, v in (scope or {}).items())
        with self._lock(table):
            dt = DeltaTable(self.location(table))
            n = 0
            for i in range(0, len(values), 500):
                part = values[i:i + 500]
                metrics = dt.delete(f'"{column}" IN ({", ".join(_sql_literal(v) for v in part)}){scope_sql}')
                n += int((metrics or {}).get("num_deleted_rows", 0))
            return n


class UnityCatalogStore(TableStore):
    """``catalog.schema.table`` Delta tables through Spark SQL (classic or Spark Connect).

    On Databricks the catalog is Unity Catalog; locally (the ``rehearsal`` target and the tests) it is
    ``spark_catalog`` on Delta-on-Spark, the same SQL. Rows are compared through a fingerprint of the
    compared columns (``sha2`` of their JSON, map entries sorted), because Spark's ``<=>`` rejects
    map columns; writes retry Delta's optimistic-concurrency conflicts, so two writers of the same
    scope racing lose nothing.
    """

    CONFLICT_RETRIES = 6

    def __init__(self, spark, catalog: str, schema: str):
        self.spark = spark
        self.catalog = catalog
        self.schema = schema
        # The bundle creates the schema (resources.schemas); creating it here too would need the
        # CREATE SCHEMA privilege on the catalog, which the job's principal should not need.
        if not spark.catalog.databaseExists(f"{catalog}.{schema}"):
            spark.sql(f"CREATE SCHEMA IF NOT EXISTS `{catalog}`.`{schema}`")

    def location(self, table: Table) -> str:
        return f"`{self.catalog}`.`{self.schema}`.`{table_name(table)}`"

    def exists(self, table: Table) -> bool:
        return self.spark.catalog.tableExists(f"{self.catalog}.{self.schema}.{table_name(table)}")

    def version(self, table: Table) -> int | None:
        if not self.exists(table):
            return None
        row = self.spark.sql(f"DESCRIBE HISTORY {self.location(table)} LIMIT 1").select("version").first()
        return int(row[0]) if row else None

    def read(self, table, columns=None):
        df = self.spark.table(self.location(table))
        return df.select(*columns) if columns else df

    def read_arrow(self, table, columns=None, where=None) -> pa.Table:
        if not self.exists(table):
            raise FileNotFoundError(f"table {self.location(table)} does not exist yet")
        df = self.read(table, columns)
        for k, v in (where or {}).items():
            df = df.filter(f"`{k}` <=> {_sql_literal(v)}")
        return df.toArrow()

    def merge(self, table, data, keys=None, *, scope=None, partition_by=None, compare=None,
              replace_within=None) -> MergeResult:
        table, keys, partition_by, compare = merge_options(table, keys, partition_by, compare)
        is_spark = hasattr(data, "sparkSession")
        if not is_spark:
            src = self.to_arrow(data)
            src = src.cast(_plain_schema(nullable_schema(src.schema)))
            df = self.spark.createDataFrame(src)
            return self._with_conflict_retries(
                table, lambda: self._merge(table, df, keys, scope, partition_by, compare, replace_within))
        # A Spark source (e.g. the extraction's mapInPandas) would be recomputed by every action
        # below (anti-join count, stale rows, MERGE): materialise it once in a staging table
        # (works on Spark Connect, unlike cache/checkpoint on serverless) and drop it afterwards.
        with self.materialize(data) as staged:
            return self._with_conflict_retries(
                table, lambda: self._merge(table, staged, keys, scope, partition_by, compare, replace_within))

    @contextmanager
    def materialize(self, df) -> Iterator[Any]:
        staging = f"`{self.catalog}`.`{self.schema}`.`_lakedoc_staging_{uuid.uuid4().hex[:16]}`"
        df.write.format("delta").mode("overwrite").saveAsTable(staging)
        try:
            yield self.spark.table(staging)
        finally:
            self.spark.sql(f"DROP TABLE IF EXISTS {staging}")

    def _with_conflict_retries(self, table: str, write: Callable[[], T]) -> T:
        """``write()``, again after Delta's optimistic-concurrency conflicts (each retry re-reads the table)."""
        for attempt in range(self.CONFLICT_RETRIES):
            try:
                return write()
            except Exception as exc:  # noqa: BLE001 - only Delta's concurrency conflicts are retried
                if not _is_conflict(exc) or attempt == self.CONFLICT_RETRIES - 1:
                    raise
                log.info("%s: concurrent write conflict (%s), retrying", table, type(exc).__name__)
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    _create_locks: dict[str, threading.Lock] = {}
    _create_guard = threading.Lock()
    CREATE_WAIT_S = 120.0

    def _create_if_missing(self, table, df, partition_by) -> None:
        if self.exists(table):
            return
        # Parallel tasks race to create the table. In one process (the local runner's task threads)
        # creation is serialised; across processes (Databricks tasks on one cluster) the losers see
        # "already exists" or, while the winner has written the Delta log but not yet registered the
        # table, a non-empty location: they wait until the catalog shows the table. Every writer
        # then goes through the same MERGE.
        with self._create_guard:
            lock = self._create_locks.setdefault(self.location(table), threading.Lock())
        with lock:
            if self.exists(table):
                return
            writer = df.limit(0).write.format("delta").mode("ignore")
            if partition_by:
                writer = writer.partitionBy(*partition_by)
            try:
                writer.saveAsTable(f"{self.catalog}.{self.schema}.{table}")
                return
            except Exception as exc:  # noqa: BLE001 - another process may be creating it right now
                text = str(exc).upper()
                if "ALREADY_EXISTS" not in text and "NON_EMPTY_LOCATION" not in text and not self.exists(table):
                    raise
                error = exc
            deadline = time.monotonic() + self.CREATE_WAIT_S
            while not self.exists(table):
                if time.monotonic() > deadline:
                    raise error
                time.sleep(0.5)

    def _merge(self, table, df, keys, scope, partition_by, compare, replace_within) -> MergeResult:
        from pyspark.sql import functions as F

        full = self.location(table)
        result = MergeResult(table)
        self._create_if_missing(table, df, partition_by)
        tgt = self.spark.table(full)
        for k, v in (scope or {}).items():
            tgt = tgt.filter(F.col(k) == F.lit(v))
        tgt_types = {f.name: f.dataType for f in tgt.schema.fields}
        src_types = {f.name: f.dataType for f in df.schema.fields}
        # a column the target lacks yet (schema evolution) compares as null there
        cmp_cols = [c for c in _compare_columns_spark(df, keys, compare) if c in tgt_types or c in src_types]
        fp = "_lakedoc_fp"
        src_fp = df.select(*keys, _fingerprint_col(cmp_cols, src_types).alias(fp))
        tgt_fp = tgt.select(*keys, _fingerprint_col(cmp_cols, tgt_types, src_types).alias(fp))
        # rows whose key is new or whose compared columns differ (null-safe on the keys)
        changed_keys = src_fp.join(tgt_fp, on=[src_fp[c].eqNullSafe(tgt_fp[c]) for c in [*keys, fp]],
                                   how="left_anti")
        changed = df.join(changed_keys.select(*keys), on=keys, how="left_semi")
        n_changed = changed.count()
        stale_count = 0
        view = f"lakedoc_src_{table}_{uuid.uuid4().hex[:12]}"
        scope_pred = "".join(f" AND t.`{k}` = {_sql_literal(v)}" for k, v in (scope or {}).items())
        on = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
        try:
            if replace_within:
                groups = df.select(replace_within).distinct()
                stale = (tgt.join(groups, on=replace_within, how="left_semi")
                         .join(df.select(*keys), on=keys, how="left_anti"))
                stale_count = stale.count()
                if stale_count:
                    stale.select(*keys).createOrReplaceTempView(view + "_stale")
                    self.spark.sql(f"MERGE INTO {full} t USING {view}_stale s ON {on}{scope_pred} "
                                   f"WHEN MATCHED THEN DELETE")
            if n_changed:
                missing = [f for f in df.schema.fields if f.name not in tgt_types]
                if missing:  # schema evolution, spelled out (portable across OSS Delta and Databricks)
                    new_cols = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
                    self.spark.sql(f"ALTER TABLE {full} ADD COLUMNS ({new_cols})")
                existing = tgt.select(*keys).join(changed_keys.select(*keys), on=keys, how="left_semi").count()
                changed.createOrReplaceTempView(view)
                # explicit column lists: columns of the target that this writer does not know are left
                # as they are (updates) or null (inserts), on OSS Delta and Databricks alike
                cols = [f"`{c}`" for c in df.columns]
                sets = ", ".join(f"t.{c} = s.{c}" for c in cols)
                self.spark.sql(
                    f"MERGE INTO {full} t USING {view} s ON {on}{scope_pred} "
                    f"WHEN MATCHED THEN UPDATE SET {sets} "
                    f"WHEN NOT MATCHED THEN INSERT ({', '.join(cols)}) VALUES ({', '.join('s.' + c for c in cols)})"
                )
                result.updated = existing
                result.inserted = n_changed - existing
        finally:
            for v in (view, view + "_stale"):
                self.spark.catalog.dropTempView(v)
        result.deleted = stale_count
        result.unchanged = df.count() - n_changed
        return result

    def delete_where(self, table, column, values, scope=None) -> int:
        table = table_name(table)
        values = list(values)
        if not values or not self.exists(table):
            return 0
        from pyspark.sql import functions as F

        full = self.location(table)
        target = self.spark.table(full)
        for k, v in (scope or {}).items():
            target = target.filter(F.col(k) == F.lit(v))
        n = target.filter(F.col(column).isin(values)).count()
        if not n:
            return 0
        view = f"lakedoc_del_{table}_{uuid.uuid4().hex[:12]}"
        self.spark.createDataFrame([(v,) for v in values], [column]).createOrReplaceTempView(view)
        cond = "".join(f" AND t.`{k}` = {_sql_literal(v)}" for k, v in (scope or {}).items())
        try:
            self._with_conflict_retries(table, lambda: self.spark.sql(
                f"MERGE INTO {full} t USING {view} s ON t.`{column}` = s.`{column}`{cond} WHEN MATCHED THEN DELETE"))
        finally:
            self.spark.catalog.dropTempView(view)
        return n


_CONFLICT_MARKERS = ("CONCURRENT", "ConcurrentAppend", "ConcurrentDelete", "ConcurrentTransaction",
                     "MetadataChanged", "ProtocolChanged", "DELTA_CONCURRENT")


def _is_conflict(exc: BaseException) -> bool:
    """Delta's optimistic-concurrency conflicts (classic exceptions or Connect error classes)."""
    text = f"{type(exc).__name__}: {exc}"
    return any(m in text for m in _CONFLICT_MARKERS)


def _fingerprint_col(columns, types, fallback_types=None):
    """One string column fingerprinting ``columns``: ``sha2`` of their JSON, map entries sorted.

    ``<=>`` and hash functions reject map columns; JSON takes every type the stages write (map,
    array, struct, binary as base64, timestamps).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import MapType

    if not columns:
        return F.lit("")
    parts = []
    for c in columns:
        if c not in types:  # missing on this side: null of the other side's type
            parts.append(F.lit(None).cast(fallback_types[c]).alias(c))
            continue
        col = F.col(c)
        if isinstance(types[c], MapType):
            col = F.array_sort(F.map_entries(col))
        parts.append(col.alias(c))
    return F.sha2(F.to_json(F.struct(*parts)), 256)


def _compare_columns_spark(df, keys, compare):
    if compare is not None:
        return list(compare)
    return [c for c in df.columns if c not in keys and c not in VOLATILE_COLUMNS]


def open_store(cfg: Config, spark=None) -> TableStore:
    """The configured backend (``tables.backend``). The ``unity_catalog`` backend writes with Spark SQL:
    without ``spark`` it takes the process's session (:func:`lakedoc.spark.get_spark`)."""
    t = cfg.tables
    if t.backend == "unity_catalog":
        if spark is None:
            from lakedoc.spark import get_spark

            spark = get_spark(cfg)
        return UnityCatalogStore(spark, t.catalog, t.schema_)
    return LocalDeltaStore(cfg.resolve_path(t.warehouse), spark)


from lakedoc.faults import hook_commits  # noqa: E402 - LAKEDOC_FAULT: kill -9 after N commits; no-op unset

hook_commits(TableStore)
