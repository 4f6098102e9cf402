"""SparkSession factory: the cluster's own session on Databricks, a small local one on a laptop.

Stage code never touches ``sparkContext`` or ``df.rdd``: it must run on Spark Connect (Databricks
serverless and standard access mode) as well as on classic clusters and locally.

Local sessions come in two kinds (``spark.mode``):

* ``classic`` — a py4j session (``make run``, the test suite).
* ``connect`` — a local Spark Connect server (the ``spark-connect`` plugin in a local JVM, bound to
  127.0.0.1 on a free port) and a Spark Connect client session in front of it: stage code then meets
  exactly the API that Databricks serverless and standard access mode give it (the ``rehearsal``
  target).

Both load Delta Lake's own jars (``spark.delta``; the version is the installed ``delta-spark``
package's, pinned next to pyspark in requirements.txt) so that the ``unity_catalog`` table backend runs
locally on real Delta-on-Spark. The jars are fetched once with Maven into ``$LAKEDOC_JARS_DIR``
(default ``~/.cache/lakedoc/jars``; ``make`` does it) — or, without Maven, resolved by Spark itself
(``spark.jars.packages``). ``spark.metastore: derby`` keeps the catalog (schemas, table names) in an
embedded Hive metastore under the warehouse folder, so that tables outlive the session, as Unity
Catalog's do.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

from lakedoc.config_schema import SparkSettings

log = logging.getLogger(__name__)
_lock = threading.Lock()
_SESSION = None  # the local session this process made (a Connect client is not "active" in new threads)

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

SCALA_BINARY = "2.13"
DELTA_FALLBACK_VERSION = "4.1.0"  # used only when the delta-spark package is not installed
DELTA_ARTIFACTS = ("delta-spark_" + SCALA_BINARY, "delta-storage")


def on_databricks() -> bool:
    """True inside a Databricks job/notebook (classic, shared or serverless compute)."""
    return "DATABRICKS_RUNTIME_VERSION" in os.environ


def delta_version() -> str:
    """The Delta Lake version matching local pyspark: the installed ``delta-spark`` package's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("delta-spark")
    except PackageNotFoundError:
        return DELTA_FALLBACK_VERSION


def jars_dir() -> Path:
    return Path(os.environ.get("LAKEDOC_JARS_DIR") or Path.home() / ".cache" / "lakedoc" / "jars")


def delta_jars(fetch: bool = True) -> list[Path] | None:
    """Local paths of Delta Lake's jars, fetched with Maven (``mvn dependency:copy``) when missing.

    Returns None when they are not there and cannot be fetched with Maven; the session then asks
    Spark to resolve them (``spark.jars.packages``), which needs the same Maven repository.
    """
    v = delta_version()
    d = jars_dir()
    files = [d / f"{a}-{v}.jar" for a in DELTA_ARTIFACTS]
    if all(f.is_file() for f in files):
        return files
    mvn = shutil.which("mvn")
    if not fetch or mvn is None:
        return None
    d.mkdir(parents=True, exist_ok=True)
    for a, f in zip(DELTA_ARTIFACTS, files, strict=True):
        if f.is_file():
            continue
        log.info("fetching io.delta:%s:%s with Maven into %s", a, v, d)
        proc = subprocess.run([mvn, "-q", "-B", "dependency:copy", f"-Dartifact=io.delta:{a}:{v}",
                               f"-DoutputDirectory={d}"], capture_output=True, text=True, timeout=900)
        if proc.returncode != 0 or not f.is_file():
            log.warning("Maven could not fetch io.delta:%s:%s: %s", a, v,
                        (proc.stdout + proc.stderr).strip().splitlines()[-1:] or "no output")
            return None
    return files


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _local_builder(sc: SparkSettings, warehouse_dir: str | None):
    from pyspark.sql import SparkSession

    master = sc.master
    builder = (
        SparkSession.builder.master(master)
        .appName("lakedoc")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(sc.shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(sc.arrow_batch_rows))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", sc.driver_memory)
        .config("spark.python.worker.reuse", "true")
        .config("spark.sql.sources.binaryFile.maxLength", str(2**31 - 1))
        .config("spark.scheduler.mode", "FAIR")
    )
    if sys.version_info < (3, 12):  # each Python task re-read Spark's jars on 3.10/3.11 (lakedoc.pyspark_daemon)
        builder = builder.config("spark.python.daemon.module", "lakedoc.pyspark_daemon")
    if sc.delta:
        jars = delta_jars()
        if jars:
            builder = builder.config("spark.jars", ",".join(str(j) for j in jars))
        else:
            builder = builder.config("spark.jars.packages", f"io.delta:{DELTA_ARTIFACTS[0]}:{delta_version()}")
        builder = (builder.config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
                   .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
                   # a laptop's tables are small: Delta's 50 partitions to rebuild a snapshot cost more
                   # than they save (every MERGE reads the log)
                   .config("spark.databricks.delta.snapshotPartitions", "2"))
    if warehouse_dir:
        wh = Path(warehouse_dir).expanduser().resolve()
        wh.mkdir(parents=True, exist_ok=True)
        builder = builder.config("spark.sql.warehouse.dir", str(wh))
        if sc.metastore == "derby":
            builder = (
                builder.config("spark.sql.catalogImplementation", "hive")
                .config("spark.hadoop.javax.jdo.option.ConnectionURL",
                        f"jdbc:derby:;databaseName={wh / '_metastore_db'};create=true")
                .config("spark.hadoop.datanucleus.schema.autoCreateAll", "true")
                .config("spark.hadoop.hive.metastore.schema.verification", "false")
                .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={wh}")
            )
    return builder, master


def get_spark(cfg=None):
    """Return the session, creating a local one if needed.

    On Databricks the session already exists (a classic session, or a Spark Connect one on
    serverless and standard access mode); it is returned as is. Locally: ``local[N]`` bound to
    127.0.0.1, UI off, Arrow on, Delta Lake's jars (``spark.delta``), and with ``spark.mode:
    connect`` a local Spark Connect server with a Connect client session (see the module docstring).
    """
    global _SESSION
    from pyspark.sql import SparkSession

    if _SESSION is not None:
        if _alive(_SESSION):
            return activate(_SESSION)
        with _lock:
            if _SESSION is not None and not _alive(_SESSION):
                log.warning("the local Spark session of this process is gone (its driver JVM exited or its "
                            "context was stopped): starting a new one")
                _forget_classic_session()
                _SESSION = None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if on_databricks():
        return SparkSession.builder.getOrCreate()
    with _lock:
        if _SESSION is not None:
            return _SESSION
        active = SparkSession.getActiveSession()
        if active is not None:
            return active
        for k, v in WORKER_ENV.items():
            os.environ.setdefault(k, v)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        sc = SparkSettings.from_config(cfg)
        warehouse_dir = sc.warehouse_dir
        if not warehouse_dir and cfg is not None:
            warehouse_dir = cfg.resolve_path(cfg.tables.warehouse)
        builder, master = _local_builder(sc, warehouse_dir)
        mode = sc.mode
        port = None
        if mode == "connect":
            port = _free_port()
            builder = (builder.config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
                       .config("spark.connect.grpc.binding.address", "127.0.0.1")
                       .config("spark.connect.grpc.binding.port", str(port)))
        classic = builder.getOrCreate()
        classic.sparkContext.setLogLevel("ERROR")  # the local JVM only; never in stage code
        if mode == "connect":
            _quiet_connect_server(classic)
        if mode != "connect":
            log.info("local SparkSession %s started", master)
            _SESSION = classic
            return classic
        # From here on this process speaks Spark Connect only, as on serverless: pyspark's functions
        # and DataFrames resolve to their Connect implementations.
        os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        _SESSION = ConnectSession.builder.remote(f"sc://127.0.0.1:{port}").getOrCreate()
        log.info("local Spark Connect server %s on 127.0.0.1:%d; client session connected", master, port)
        return _SESSION


def _alive(session) -> bool:
    """Whether a classic session's driver JVM still answers and its context is not stopped (a Spark
    Connect client is taken as alive: it reports a lost server on its next call)."""
    if is_connect(session):
        return True
    try:
        return not session.sparkContext._jsc.sc().isStopped()
    except Exception:  # noqa: BLE001 - py4j cannot reach the JVM: it is gone
        return False


def _forget_classic_session() -> None:
    """Drop pyspark's references to a dead driver JVM so that the next builder starts a new one."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    SparkContext._gateway = None
    SparkContext._jvm = None
    SparkContext._active_spark_context = None
    SparkSession._instantiatedSession = None
    SparkSession._activeSession = None


def _quiet_connect_server(classic) -> None:
    """The local Connect server logs a client that stops reading a result early (``first()``,
    ``limit``) as an ERROR with a stack trace (INVALID_CURSOR.DISCONNECTED): harmless, and noise."""
    try:
        jvm = classic.sparkContext._jvm
        level = jvm.org.apache.logging.log4j.Level.OFF
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
            "org.apache.spark.sql.connect.utils.ErrorUtils", level)
    except Exception as exc:  # noqa: BLE001 - only logging
        log.debug("could not quiet the Connect server's ErrorUtils logger: %s", exc)


def activate(spark):
    """Make ``spark`` the active session of the calling thread and return it.

    A Spark Connect client keeps its active session per thread, and library code looks it up
    (``SparkSession.getActiveSession()``: Spark ML's Connect client does for every fit). The local
    runner runs tasks on worker threads and the baselines fit labels on a thread pool: each calls
    this first. A classic session is active process-wide; nothing to do.
    """
    if is_connect(spark):
        setter = getattr(type(spark), "_set_default_and_active_session", None)
        local = getattr(type(spark), "_active_session", None)
        if local is not None and getattr(local, "session", None) is not spark:
            local.session = spark
        elif setter is not None and local is None:  # pragma: no cover - other client releases
            setter(spark)
    return spark


def is_connect(spark) -> bool:
    """True for a Spark Connect session (Databricks serverless/standard access mode, the rehearsal target)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def cached(df):
    """``df.cache()`` where the compute allows it, else ``df`` unchanged.

    Classic sessions and Spark Connect on a cluster cache; serverless compute rejects ``PERSIST``
    (the plan is then recomputed, which costs time but gives the same rows). Stage code calls this
    instead of ``.cache()`` so that no stage fails on compute that cannot cache.
    """
    try:
        return df.cache()
    except Exception as exc:  # noqa: BLE001 - e.g. NOT_SUPPORTED_WITH_SERVERLESS
        log.info("caching is not available on this compute (%s): the plan is recomputed instead",
                 str(exc).splitlines()[0][:160])
        return df


def task_slots(spark) -> int:
    """Number of concurrent task slots, Spark Connect safe (reads configuration, not sparkContext).

    ``local[N]`` gives N; on a cluster ``spark.default.parallelism`` (the executors' total cores,
    set by Databricks on classic clusters). Where neither is readable (Spark Connect on serverless)
    the answer is ``spark.lakedoc.taskSlots`` if set, else 8 — never ``spark.sql.shuffle.partitions``,
    which says nothing about the cluster (200, or "auto" on Databricks).
    """
    conf = spark.conf
    master = _conf(conf, "spark.master") or ""
    if master.startswith("local"):
        inner = master[master.find("[") + 1: master.find("]")] if "[" in master else "1"
        inner = inner.split(",")[0]
        return (os.cpu_count() or 1) if inner == "*" else int(inner)
    for key in ("spark.lakedoc.taskSlots", "spark.default.parallelism"):
        value = _conf(conf, key)
        if value and str(value).isdigit() and int(value) > 0:
            return int(value)
    log.warning("cannot read the cluster's task slots (no spark.default.parallelism); assuming %d — set "
                "spark.lakedoc.taskSlots in the cluster's Spark config to the executors' total cores",
                DEFAULT_TASK_SLOTS)
    return DEFAULT_TASK_SLOTS


DEFAULT_TASK_SLOTS = 8

_M32 = 0xFFFFFFFF


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def spark_hash_int(value: int, seed: int = 42) -> int:
    """Spark's ``hash()`` of an IntegerType value: Murmur3 x86_32 (``Murmur3_x86_32.hashInt``), seed 42."""
    k1 = _rotl32(((value & _M32) * 0xCC9E2D51) & _M32, 15) * 0x1B873593 & _M32
    h1 = (_rotl32((seed & _M32) ^ k1, 13) * 5 + 0xE6546B64) & _M32
    h1 ^= 4  # fmix(h1, length in bytes)
    h1 ^= h1 >> 16
    h1 = (h1 * 0x85EBCA6B) & _M32
    h1 ^= h1 >> 13
    h1 = (h1 * 0xC2B2AE35) & _M32
    h1 ^= h1 >> 16
    return h1 - (1 << 32) if h1 & 0x80000000 else h1


def placement_keys(n: int) -> list[int]:
    """For each partition ``p < n``, an int key that ``df.repartition(n, key_col)`` sends to partition ``p``.

    Spark's hash partitioning puts a row in ``pmod(hash(key), n)`` (``HashPartitioning``); choosing the
    key per partition turns it into an exact placement, Spark Connect safe (no ``rdd.partitionBy``).
    Stages use it to decide which rows share a task (e.g. files packed by size, heaviest first: Spark
    launches a stage's tasks in partition order). ``tests/test_spark.py`` checks it against Spark.
    """
    keys = [-1] * n
    found, k = 0, 0
    while found < n:
        p = spark_hash_int(k) % n  # Python's % of a negative hash is Spark's pmod
        if keys[p] < 0:
            keys[p] = k
            found += 1
        k += 1
    return keys


def _conf(conf, key: str):
    try:
        return conf.get(key, None)
    except Exception:  # noqa: BLE001 - Connect raises for keys the server hides
        return None


def main(argv: list[str] | None = None) -> int:
    """``python -m lakedoc.spark fetch-jars``: place Delta Lake's jars in the cache (``make`` runs it)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m lakedoc.spark")
    p.add_argument("command", choices=["fetch-jars"])
    p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    jars = delta_jars()
    if jars is None:
        print(f"Delta Lake {delta_version()} jars are not in {jars_dir()} and Maven (mvn) is not available: "
              "local sessions will ask Spark to resolve io.delta:" + DELTA_ARTIFACTS[0] + " at start-up",
              file=sys.stderr)
        return 0
    for j in jars:
        print(j)
    return 0


if __name__ == "__main__":
    sys.exit(main())
