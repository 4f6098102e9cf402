"""Stage code on a Spark Connect session (the second pytest pass of ``make test``).

These tests run only when the session fixture is a Spark Connect client (LAKEDOC_TEST_SPARK_MODE=connect):
what Databricks serverless and standard access mode offer. In the classic pass they skip.
"""
from __future__ import annotations

import pyarrow as pa
import pytest

from conftest import SPARK_MODE

pytestmark = [pytest.mark.spark,
              pytest.mark.skipif(SPARK_MODE != "connect",
                                 reason="runs in the Spark Connect pass of make test (LAKEDOC_TEST_SPARK_MODE=connect)")]


def test_the_session_is_a_connect_client(spark):
    from lakedoc.spark import is_connect, task_slots

    assert is_connect(spark)
    assert task_slots(spark) == 2, "local[2] read through the Connect conf API"


def test_arrow_tables_become_dataframes_and_come_back(spark):
    t = pa.table({"doc_id": ["a", "b"], "counts": pa.array([[("x", 1)], []], pa.map_(pa.string(), pa.int32()))})
    df = spark.createDataFrame(t)
    back = df.orderBy("doc_id").toArrow()
    assert back.column("doc_id").to_pylist() == ["a", "b"]
    assert [dict(v) for v in back.column("counts").to_pylist()] == [{"x": 1}, {}]


def test_cached_does_not_fail_and_keeps_rows(spark):
    from lakedoc.spark import cached

    df = cached(spark.range(10))
    assert df.count() == 10


def test_map_in_arrow_runs_python_workers(spark):
    def double(batches):
        import pyarrow.compute as pc

        for b in batches:
            yield pa.record_batch([pc.multiply(b.column(0), 2)], names=["id"])

    got = sorted(r[0] for r in spark.range(4).mapInArrow(double, "id long").collect())
    assert got == [0, 2, 4, 6]


def test_xgboost_baselines_refuse_at_once_with_one_sentence(spark):
    from lakedoc.baselines.tfidf import check_classic_spark

    with pytest.raises(Exception) as info:
        check_classic_spark(spark, ["tfidf_lr", "tfidf_xgb"])
    msg = str(info.value)
    assert "tfidf_xgb" in msg and "dedicated" in msg and msg.count(". ") <= 1
    check_classic_spark(spark, ["tfidf_lr", "embedding_lr"])  # Spark ML methods are fine on Connect
