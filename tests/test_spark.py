"""The local session: task slots read from configuration (Spark Connect safe: no sparkContext), and a
session whose driver JVM died is started again."""
from __future__ import annotations

import logging
import os

import pytest
from conftest import SPARK_MODE

from lakedoc.spark import task_slots


class _Conf:
    def __init__(self, master):
        self.master = master

    def get(self, key, default=None):
        return self.master if key == "spark.master" else default


class _Session:
    def __init__(self, master):
        self.conf = _Conf(master)


def test_task_slots_follow_the_local_master():
    assert task_slots(_Session("local[3]")) == 3
    assert task_slots(_Session("local[1]")) == 1
    assert task_slots(_Session("local")) == 1
    assert task_slots(_Session("local[*]")) == (os.cpu_count() or 1)


@pytest.mark.spark
@pytest.mark.skipif(SPARK_MODE != "classic", reason="kills the classic driver JVM of this process")
def test_a_session_whose_driver_jvm_died_is_started_again(spark, _spark_config, caplog):
    """An OutOfMemoryError (Spark exits the driver on one) or a kill ends the JVM; the process's next
    get_spark starts a new session instead of handing out one whose every call is refused."""
    from pyspark import SparkContext

    from lakedoc.spark import get_spark

    assert spark.range(5).count() == 5
    gateway = SparkContext._gateway
    assert gateway is not None
    gateway.proc.kill()
    gateway.proc.wait(timeout=60)
    with pytest.raises(Exception):  # noqa: B017 - whatever py4j raises for a refused connection
        spark.range(5).count()
    with caplog.at_level(logging.WARNING, "lakedoc.spark"):
        fresh = get_spark(_spark_config)
    assert fresh is not spark
    assert fresh.range(7).count() == 7
    assert "driver JVM exited" in caplog.text
    assert get_spark(_spark_config) is fresh


def test_spark_hash_int_and_placement_keys_match_spark(spark):
    """placement_keys(n)[p] is a key that Spark's hash partitioning sends to partition p: the exact
    placement the ingestion stage relies on for its size-aware work units."""
    from pyspark.sql import functions as F

    from lakedoc.spark import placement_keys, spark_hash_int

    values = [-2**31, -7, -1, 0, 1, 2, 42, 123456789, 2**31 - 1]
    got = spark.createDataFrame([(v,) for v in values], "v int").select("v", F.hash("v").alias("h")).collect()
    assert {r.v: r.h for r in got} == {v: spark_hash_int(v) for v in values}
    for n in (1, 2, 5, 19):
        keys = placement_keys(n)
        assert len(set(keys)) == n
        df = spark.createDataFrame([(p, keys[p]) for p in range(n)], "unit int, k int").repartition(n, "k")
        rows = df.select("unit", F.spark_partition_id().alias("part")).collect()
        assert sorted((r.unit, r.part) for r in rows) == [(p, p) for p in range(n)]


_ZIP_PROBE = r"""
import importlib, sys, zipfile, zipimport
from lakedoc.pyspark_daemon import patch_zipimport

path = sys.argv[1]
with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("zmod_a.py", "A = 1\n")
sys.path.insert(0, path)
import zmod_a
reads = []
orig = zipimport._read_directory
zipimport._read_directory = lambda archive: reads.append(archive) or orig(archive)
patched = patch_zipimport()
importlib.invalidate_caches()  # what PySpark's worker does at every task
importlib.invalidate_caches()
unchanged_reads = len(reads)
with zipfile.ZipFile(path, "w") as zf:  # the archive changes (size): its directory is read again
    zf.writestr("zmod_a.py", "A = 1\n")
    zf.writestr("zmod_b.py", "B = 2\n")
importlib.invalidate_caches()
import zmod_b
print(patched, unchanged_reads, len(reads), zmod_b.B)
"""


def test_zip_importers_reread_an_archive_only_when_it_changed(tmp_path):
    # a fresh interpreter: the patch is process-wide. Python 3.10/3.11 re-read every zip on sys.path
    # at each invalidation (CPython gh-103200): PySpark's worker invalidates at every task
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _ZIP_PROBE, str(tmp_path / "mods.zip")], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    patched, unchanged, total, b = out.stdout.split()
    if sys.version_info >= (3, 12):
        assert patched == "False"  # lazy invalidation in CPython itself: nothing to patch
        return
    assert patched == "True"
    assert (unchanged, total, b) == ("1", "2", "2")  # first invalidation reads (no stamp yet), then only on change


@pytest.mark.skipif(SPARK_MODE == "connect", reason="the classic local session's Python workers")
def test_local_python_workers_run_under_lakedoc_daemon(spark):
    import sys

    def probe(batches):
        import zipimport

        import pandas as pd

        for _ in batches:
            yield pd.DataFrame({"patched": [bool(getattr(zipimport.zipimporter.invalidate_caches, "_lakedoc", False))]})

    got = spark.range(1, numPartitions=1).mapInPandas(probe, "patched boolean").toPandas()["patched"].tolist()
    assert got == [sys.version_info < (3, 12)]
