"""The delta-rs table layer: idempotent MERGEs, scopes, replacement within a group."""
from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from lakedoc.tables import LocalDeltaStore, nullable_schema


def rows(ids, text="t", run="r1", task="docx"):
    return pa.table({"doc_id": ids, "source_task": [task] * len(ids), "text": [f"{text}{i}" for i in ids],
                     "run_id": [run] * len(ids)})


def test_merge_is_idempotent_and_makes_no_new_version(tmp_path):
    s = LocalDeltaStore(tmp_path)
    r = s.merge("documents", rows(["a", "b"]), ["doc_id"], scope={"source_task": "docx"}, partition_by=["source_task"])
    assert (r.inserted, r.updated) == (2, 0)
    v = s.version("documents")
    r = s.merge("documents", rows(["a", "b"], run="r2"), ["doc_id"], scope={"source_task": "docx"})
    assert (r.inserted, r.updated, r.unchanged) == (0, 0, 2), "run_id alone is not a change"
    assert s.version("documents") == v
    r = s.merge("documents", rows(["a", "c"], text="new"), ["doc_id"], scope={"source_task": "docx"})
    assert (r.inserted, r.updated) == (1, 1)
    got = s.read_arrow("documents").to_pandas().set_index("doc_id")
    assert sorted(got.index) == ["a", "b", "c"] and got.loc["a", "text"] == "newa"


def test_scopes_do_not_touch_each_other_and_parallel_writers_are_safe(tmp_path):
    s = LocalDeltaStore(tmp_path)
    errors = []

    def write(task):
        try:
            for i in range(3):
                s.merge("documents", rows([f"{task}{j}" for j in range(i + 1)], task=task), ["doc_id"],
                        scope={"source_task": task}, partition_by=["source_task"])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in ("docx", "pdf", "msg", "xlsx", "pptx")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    df = s.read_arrow("documents").to_pandas()
    assert len(df) == 15 and df.doc_id.is_unique
    assert s.read_arrow("documents", where={"source_task": "pdf"}).num_rows == 3


def test_replace_within_removes_stale_rows_of_the_group_only(tmp_path):
    s = LocalDeltaStore(tmp_path)
    chunks = pa.table({"chunk_id": ["a1", "a2", "b1"], "doc_id": ["a", "a", "b"], "text": ["x", "y", "z"]})
    s.merge("chunks", chunks, ["chunk_id"], replace_within="doc_id")
    r = s.merge("chunks", pa.table({"chunk_id": ["a1"], "doc_id": ["a"], "text": ["x"]}), ["chunk_id"],
                replace_within="doc_id")
    assert (r.deleted, r.unchanged) == (1, 1)
    assert sorted(s.read_arrow("chunks").column("chunk_id").to_pylist()) == ["a1", "b1"]
    assert s.delete_where("chunks", "doc_id", ["b"], scope={"text": "other"}) == 0, "scope limits the delete"
    assert s.delete_where("chunks", "doc_id", ["b"]) == 1
    assert s.read_arrow("chunks").column("chunk_id").to_pylist() == ["a1"]


def test_nested_columns_are_written_nullable(tmp_path):
    schema = pa.schema([pa.field("doc_id", pa.string(), False),
                        pa.field("units", pa.list_(pa.field("item", pa.struct([pa.field("ref", pa.string(), False)]), False)), False)])
    assert all(f.nullable for f in nullable_schema(schema))
    t = pa.table({"doc_id": ["a"], "units": [[{"ref": "page 1"}]]}, schema=schema)
    s = LocalDeltaStore(tmp_path)
    s.merge("t", t, ["doc_id"])
    # a later row with nulls inside must be accepted
    s.merge("t", pa.table({"doc_id": ["b"], "units": [[{"ref": None}]]}), ["doc_id"])
    assert s.read_arrow("t").num_rows == 2


def test_reading_a_missing_table_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist yet"):
        LocalDeltaStore(tmp_path).read_arrow("nope")


def test_where_filters_work_on_columns_stored_as_string_view(tmp_path):
    """Arrow from Spark can carry string_view columns; equality filters must still work."""
    s = LocalDeltaStore(tmp_path)
    t = pa.table({"doc_id": pa.array(["a", "b"], pa.string_view()), "m": pa.array(["x", "y"], pa.string_view())})
    s.merge("t", t, ["doc_id"])
    assert s.read_arrow("t", where={"m": "x"}).column("doc_id").to_pylist() == ["a"]
    assert s.read_arrow("t", where={"m": "zzz"}).num_rows == 0
