"""PySpark's Python worker daemon, for local sessions on Python < 3.12, without a per-task zip re-read.

PySpark's worker calls ``importlib.invalidate_caches()`` at the start of every task
(``pyspark.worker_util.setup_spark_files``). On Python 3.10 and 3.11 that makes every ``zipimporter``
on ``sys.path`` re-read its archive's whole directory at once (CPython gh-103200, fixed in 3.12): a
local worker's path holds ``pyspark.zip`` and Spark's 15 MB ``spark-core`` jar (5,000+ entries), so
each task — however small — paid ~130 ms of CPU before it started (measured: 80 trivial
``mapInPandas`` tasks took 10.2 s of worker CPU). Here a zip importer re-reads its archive only when
the file changed (size or modification time), which is what the invalidation is for; any other cache
is invalidated as before.

The local Spark builder (:mod:`lakedoc.spark`) sets ``spark.python.daemon.module`` to this module on
Python < 3.12 only; Databricks runtimes run Python 3.12+ with their own daemon.
"""
from __future__ import annotations

import os
import sys
import zipimport

_STAMP = "_lakedoc_archive_stamp"


def _stamp(archive: str) -> tuple[int, int] | None:
    try:
        st = os.stat(archive)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def patch_zipimport() -> bool:
    """Make ``zipimporter.invalidate_caches`` re-read an archive only when it changed. Idempotent;
    returns False (and does nothing) where it is not needed (Python 3.12+: invalidation is lazy)."""
    if sys.version_info >= (3, 12) or getattr(zipimport.zipimporter.invalidate_caches, "_lakedoc", False):
        return False
    original = zipimport.zipimporter.invalidate_caches

    def invalidate_caches(self) -> None:
        stamp = _stamp(self.archive)
        if stamp is not None and getattr(self, _STAMP, None) == stamp:
            return  # same archive file as when it was read: its directory is still right
        original(self)
        setattr(self, _STAMP, stamp)

    invalidate_caches._lakedoc = True  # type: ignore[attr-defined]  # the idempotence marker
    zipimport.zipimporter.invalidate_caches = invalidate_caches  # type: ignore[method-assign]
    return True


if __name__ == "__main__":  # started by the JVM as ``python -m lakedoc.pyspark_daemon <worker module>``
    patch_zipimport()
    from pyspark.daemon import manager

    manager()
