"""The table layer on both backends: delta-rs (``delta_rs``) and Delta-on-Spark SQL (``unity_catalog``).

Every test runs on both: ``LocalDeltaStore`` under a temporary folder, and ``UnityCatalogStore`` on the
local Spark session with Delta Lake's jars, in ``spark_catalog.<fresh schema>`` — three-level names
as in production. With ``LAKEDOC_TEST_SPARK_MODE=connect`` the same tests run through Spark Connect.
"""
from __future__ import annotations

import threading
import uuid

import pyarrow as pa
import pytest

from lakedoc.tables import LocalDeltaStore, UnityCatalogStore, nullable_schema

BACKENDS = ["delta_rs", "unity_catalog"]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    if request.param == "delta_rs":
        return LocalDeltaStore(tmp_path)
    spark = request.getfixturevalue("spark")
    return UnityCatalogStore(spark, "spark_catalog", f"t_{uuid.uuid4().hex[:10]}")


def rows(ids, text="t", run="r1", task="docx"):
    return pa.table({"doc_id": ids, "source_task": [task] * len(ids), "text": [f"{text}{i}" for i in ids],
                     "run_id": [run] * len(ids)})


def read(store, table, where=None):
    return store.read_arrow(table, where=where).to_pandas()


def run_at_once(write, args) -> list[Exception]:
    """``write(arg)`` for every arg in its own thread, all at once; the exceptions they raised."""
    errors: list[Exception] = []

    def guarded(arg):
        try:
            write(arg)
        except Exception as exc:  # pragma: no cover - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(a,)) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_merge_is_idempotent_and_makes_no_new_version(store):
    s = store
    r = s.merge("documents", rows(["a", "b"]), ["doc_id"], scope={"source_task": "docx"}, partition_by=["source_task"])
    assert (r.inserted, r.updated) == (2, 0)
    v = s.version("documents")
    r = s.merge("documents", rows(["a", "b"], run="r2"), ["doc_id"], scope={"source_task": "docx"})
    assert (r.inserted, r.updated, r.unchanged) == (0, 0, 2), "run_id alone is not a change"
    assert s.version("documents") == v
    r = s.merge("documents", rows(["a", "c"], text="new"), ["doc_id"], scope={"source_task": "docx"})
    assert (r.inserted, r.updated) == (1, 1)
    got = read(s, "documents").set_index("doc_id")
    assert sorted(got.index) == ["a", "b", "c"] and got.loc["a", "text"] == "newa"


def _typed(ids, variant=0):
    """Rows with every column type the stages write: map, array, struct, binary, float, timestamp."""
    n = len(ids)
    schema = pa.schema([
        ("doc_id", pa.string()),
        ("counts", pa.map_(pa.string(), pa.int32())),
        ("labels", pa.list_(pa.string())),
        ("units", pa.list_(pa.struct([("ref", pa.string()), ("chars", pa.int64())]))),
        ("meta", pa.struct([("a", pa.string()), ("b", pa.float64())])),
        ("blob", pa.binary()),
        ("vec", pa.list_(pa.float32())),
        ("score", pa.float64()),
        ("run_id", pa.string()),
    ])
    return pa.table({
        "doc_id": ids,
        # two keys, inserted in a different order by variant 2: the same map
        "counts": [[("PERSON", 2), ("EMAIL", 1)] if variant != 2 else [("EMAIL", 1), ("PERSON", 2)]] * n,
        "labels": [["crude", "ship"]] * n,
        "units": [[{"ref": "page 1", "chars": 10 + variant % 2}]] * n,
        "meta": [{"a": "x", "b": 0.5}] * n,
        "blob": [b"\x00\x01" + bytes([variant % 2])] * n,
        "vec": [[0.25, 0.5]] * n,
        "score": [0.75] * n,
        "run_id": [f"run{variant}"] * n,
    }, schema=schema)


def test_compared_columns_of_every_type(store):
    """map/array/struct/binary columns are compared (Spark's <=> alone rejects maps)."""
    s = store
    r = s.merge("typed", _typed(["a", "b"]), ["doc_id"])
    assert r.inserted == 2
    v = s.version("typed")
    r = s.merge("typed", _typed(["a", "b"], variant=2), ["doc_id"])
    assert (r.inserted, r.updated, r.unchanged) == (0, 0, 2), "same content (map order, run id) is no change"
    assert s.version("typed") == v
    r = s.merge("typed", _typed(["a"], variant=1), ["doc_id"])
    assert (r.inserted, r.updated) == (0, 1), "a changed struct/binary inside a row is a change"
    got = read(s, "typed").set_index("doc_id")
    assert got.loc["a", "blob"] == b"\x00\x01\x01" and got.loc["b", "blob"] == b"\x00\x01\x00"
    assert dict(got.loc["a", "counts"]) == {"PERSON": 2, "EMAIL": 1}


def test_schema_evolution_adds_columns(store):
    s = store
    s.merge("evolve", pa.table({"doc_id": ["a"], "text": ["x"]}), ["doc_id"])
    r = s.merge("evolve", pa.table({"doc_id": ["a", "b"], "text": ["x", "y"], "lang": ["en", "de"]}), ["doc_id"])
    assert r.written == 2, "the new column is a change for the existing row"
    got = read(s, "evolve").set_index("doc_id")
    assert list(got.sort_index()["lang"]) == ["en", "de"]
    # an older writer without the column leaves it as it is and does not fail
    s.merge("evolve", pa.table({"doc_id": ["c"], "text": ["z"]}), ["doc_id"])
    got = read(s, "evolve").set_index("doc_id")
    assert got.loc["a", "lang"] == "en" and got.loc["c", "text"] == "z"


def test_scopes_do_not_touch_each_other_and_parallel_writers_are_safe(store):
    """Five writers with different scopes at once: no conflict exception, no lost row."""
    s = store

    def write(task):
        for i in range(3):
            s.merge("documents", rows([f"{task}{j}" for j in range(i + 1)], task=task), ["doc_id"],
                    scope={"source_task": task}, partition_by=["source_task"])

    errors = run_at_once(write, ("docx", "pdf", "msg", "xlsx", "pptx"))
    assert not errors, errors
    df = read(s, "documents")
    assert len(df) == 15 and df.doc_id.is_unique
    assert s.read_arrow("documents", where={"source_task": "pdf"}).num_rows == 3


def test_two_writers_of_the_same_scope_racing_lose_nothing(store):
    """Same scope, overlapping and distinct keys, at once: a conflict is retried, every row lands once."""
    s = store
    s.merge("race", rows(["seed"]), ["doc_id"], scope={"source_task": "docx"}, partition_by=["source_task"])
    barrier = threading.Barrier(2)

    def write(prefix):
        barrier.wait()
        for i in range(3):
            s.merge("race", rows([f"{prefix}{i}", "shared"], text=prefix), ["doc_id"], scope={"source_task": "docx"})

    errors = run_at_once(write, ("x", "y"))
    assert not errors, errors
    df = read(s, "race")
    assert df.doc_id.is_unique
    assert sorted(df.doc_id) == ["seed", "shared", "x0", "x1", "x2", "y0", "y1", "y2"]


def test_replace_within_removes_stale_rows_of_the_group_only(store):
    s = store
    chunks = pa.table({"chunk_id": ["a1", "a2", "b1"], "doc_id": ["a", "a", "b"], "text": ["x", "y", "z"]})
    s.merge("chunks", chunks, ["chunk_id"], replace_within="doc_id")
    r = s.merge("chunks", pa.table({"chunk_id": ["a1"], "doc_id": ["a"], "text": ["x"]}), ["chunk_id"],
                replace_within="doc_id")
    assert (r.deleted, r.unchanged) == (1, 1)
    assert sorted(s.read_arrow("chunks").column("chunk_id").to_pylist()) == ["a1", "b1"]
    assert s.delete_where("chunks", "doc_id", ["b"], scope={"text": "other"}) == 0, "scope limits the delete"
    assert s.delete_where("chunks", "doc_id", ["b"]) == 1
    assert s.read_arrow("chunks").column("chunk_id").to_pylist() == ["a1"]


def test_nested_columns_are_written_nullable(store):
    schema = pa.schema([pa.field("doc_id", pa.string(), False),
                        pa.field("units", pa.list_(pa.field("item", pa.struct([pa.field("ref", pa.string(), False)]), False)), False)])
    assert all(f.nullable for f in nullable_schema(schema))
    t = pa.table({"doc_id": ["a"], "units": [[{"ref": "page 1"}]]}, schema=schema)
    s = store
    s.merge("t", t, ["doc_id"])
    # a later row with nulls inside must be accepted
    s.merge("t", pa.table({"doc_id": ["b"], "units": [[{"ref": None}]]}), ["doc_id"])
    assert s.read_arrow("t").num_rows == 2


def test_reading_a_missing_table_says_so(store):
    with pytest.raises(FileNotFoundError, match="does not exist yet"):
        store.read_arrow("nope")


def test_where_filters_work_on_columns_stored_as_string_view(store):
    """Arrow from Spark can carry string_view columns; equality filters must still work."""
    s = store
    t = pa.table({"doc_id": pa.array(["a", "b"], pa.string_view()), "m": pa.array(["x", "y"], pa.string_view())})
    s.merge("t", t, ["doc_id"])
    assert s.read_arrow("t", where={"m": "x"}).column("doc_id").to_pylist() == ["a"]
    assert s.read_arrow("t", where={"m": "zzz"}).num_rows == 0


def test_a_spark_source_is_merged_and_delta_log_exists(store, tmp_path):
    """A Spark DataFrame source (what ingestion writes) merges like an Arrow one; tables are Delta."""
    spark = store.spark if isinstance(store, UnityCatalogStore) else None
    if spark is None:
        pytest.skip("the delta_rs backend takes Arrow data from the stages")
    df = spark.createDataFrame(rows(["a", "b"]))
    r = store.merge("docs", df, ["doc_id"])
    assert r.inserted == 2
    assert store.merge("docs", spark.createDataFrame(rows(["a", "b"], run="r9")), ["doc_id"]).written == 0
    detail = spark.sql(f"DESCRIBE DETAIL {store.location('docs')}").select("format", "location").first()
    assert detail[0] == "delta"
    tables = spark.sql(f"SHOW TABLES IN spark_catalog.{store.schema}").select("tableName", "isTemporary").collect()
    assert [r[0] for r in tables if not r[1]] == ["docs"], "the staging table is dropped"
    assert not [r[0] for r in tables if r[1] and "_docs_" in r[0]], "temporary views are dropped"


# --- the table registry (lakedoc.schema) ------------------------------------------------------------------

def test_the_generated_table_reference_equals_the_specs():
    from conftest import ROOT
    from lakedoc.schema import documented_tables, tables_doc

    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert documented_tables(doc) == tables_doc(), \
        "docs/architecture.md's table reference is stale: run python -m lakedoc.schema docs"


def test_every_spec_is_nullable_and_its_ddl_is_its_schema():
    from lakedoc.schema import TABLES, ddl_of

    assert set(TABLES) >= {"documents", "documents_redacted", "pii_findings", "chunks", "embeddings", "predictions",
                           "classification_skipped", "classify_state", "chunk_state", "evaluations", "index_state",
                           "pipeline_runs"}
    for spec in TABLES.values():
        assert spec.schema == nullable_schema(spec.schema), spec.name
        assert spec.ddl == ddl_of(spec.schema)
        assert set(spec.keys) <= set(spec.column_names) and set(spec.partition_by) <= set(spec.column_names)


def test_a_spec_brings_keys_partitioning_and_compared_columns(store):
    from lakedoc.schema import Column, TableSpec

    spec = TableSpec("specced", "a test table", (Column("doc_id", pa.string(), "key"),
                                                 Column("source_task", pa.string(), "scope"),
                                                 Column("text", pa.string(), "compared"),
                                                 Column("note", pa.string(), "not compared"),
                                                 Column("run_id", pa.string(), "volatile")),
                     keys=("doc_id",), partition_by=("source_task",), scope="source_task", compare=("text",))
    data = pa.Table.from_pylist([{"doc_id": "a", "source_task": "docx", "text": "x", "note": "n1", "run_id": "r1"}],
                                schema=spec.schema)
    assert store.merge(spec, data, scope=spec.scope_of("docx")).inserted == 1
    version = store.version(spec)
    # only ``text`` is compared: a changed note alone writes nothing
    again = data.set_column(3, "note", pa.array(["n2"]))
    assert store.merge(spec, again, scope=spec.scope_of("docx")).unchanged == 1
    assert store.version(spec) == version
    changed = data.set_column(2, "text", pa.array(["y"]))
    assert store.merge(spec, changed, scope=spec.scope_of("docx")).updated == 1
    assert store.read_arrow(spec, ["text"]).column("text").to_pylist() == ["y"]
    with pytest.raises(ValueError, match="give the keys"):
        store.merge("specced", data)  # a plain name takes nothing from the registry


@pytest.mark.spark
def test_open_store_takes_the_process_session_for_unity_catalog(spark):
    """Commands that open the configured store (feedback, archive, report, finetune --from-feedback) pass no
    session: the unity_catalog backend takes the process's one."""
    from lakedoc.config import load_config
    from lakedoc.tables import UnityCatalogStore, open_store

    cfg = load_config("local", environ={}, sets=["tables.backend=unity_catalog", "tables.catalog=spark_catalog",
                                                 "tables.schema=lakedoc_open_store"])
    store = open_store(cfg)
    assert isinstance(store, UnityCatalogStore) and store.spark is spark
