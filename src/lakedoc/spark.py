"""SparkSession factory: the cluster's own session on Databricks, a small local one on a laptop.

Stage code never touches ``sparkContext`` or ``df.rdd``: it must run on Spark Connect (Databricks
serverless and shared clusters) as well as on classic clusters and locally.
"""
from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)
_lock = threading.Lock()

# Environment every local Python worker inherits: offline model hubs, quiet tokenizers, one BLAS thread
# per worker (Spark already runs one worker per core).
WORKER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "PYARROW_IGNORE_TIMEZONE": "1",
}


def on_databricks() -> bool:
    """True inside a Databricks job/notebook (classic, shared or serverless compute)."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def get_spark(cfg=None):
    """Return the active SparkSession, creating a local one if needed.

    On Databricks the session already exists (a classic session or a Spark Connect one on serverless);
    it is returned as is. Locally: ``local[N]`` bound to 127.0.0.1, UI off, Arrow on, no Delta jars
    (local Delta tables are written with delta-rs, see :mod:`lakedoc.tables`).
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if on_databricks():
        return SparkSession.builder.getOrCreate()
    with _lock:
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        for k, v in WORKER_ENV.items():
            os.environ.setdefault(k, v)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        spark_cfg = cfg["spark"] if cfg is not None else {}
        master = spark_cfg.get("master", "local[2]")
        builder = (
            SparkSession.builder.master(master)
            .appName("lakedoc")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", str(spark_cfg.get("shuffle_partitions", 4)))
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(spark_cfg.get("arrow_batch_rows", 32)))
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.driver.memory", spark_cfg.get("driver_memory", "4g"))
            .config("spark.python.worker.reuse", "true")
            .config("spark.sql.sources.binaryFile.maxLength", str(2**31 - 1))
            .config("spark.scheduler.mode", "FAIR")
        )
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")  # local classic session only; never in stage code
        log.info("local SparkSession %s started", master)
        return spark


def task_slots(spark) -> int:
    """Number of concurrent task slots, Spark Connect safe (reads configuration, not sparkContext)."""
    conf = spark.conf
    master = conf.get("spark.master", "") or ""
    if master.startswith("local"):
        inner = master[master.find("[") + 1: master.find("]")] if "[" in master else "1"
        inner = inner.split(",")[0]
        return (os.cpu_count() or 1) if inner == "*" else int(inner)
    try:
        return int(conf.get("spark.default.parallelism"))
    except Exception:  # noqa: BLE001 - not set on every cluster
        return int(conf.get("spark.sql.shuffle.partitions", "2"))
