"""Shared fixtures: the ../shared data folder and one local SparkSession for the whole run."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LAKEDOC_SHARED", ROOT.parent / "shared"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with a reason that says what is missing."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not found: the shared data folder (../shared, or $LAKEDOC_SHARED) is absent")
    return p


def all_strings(value) -> list[str]:
    """Every string inside nested lists, tuples, dicts (e.g. rows of a table read with to_pylist)."""
    out: list[str] = []

    def walk(v):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(value)
    return out


# LAKEDOC_TEST_SPARK_MODE=connect runs the Spark tests through a local Spark Connect server (what
# `make test` does for the table-layer and Connect tests in a second pytest run): a process speaks
# either classic Spark or Spark Connect, never both.
SPARK_MODE = os.environ.get("LAKEDOC_TEST_SPARK_MODE", "classic")


# The driver JVM's own output (its stderr: an OutOfMemoryError, a crash) goes to this file instead of
# whichever test's captured output was open when it started; the terminal summary shows its end when
# the JVM had to be restarted or wrote an error.
JVM_LOG = Path(os.environ.get("LAKEDOC_TEST_JVM_LOG", f"/tmp/lakedoc-tests-jvm-{os.getpid()}.log"))
JVM_RESTARTS: list[str] = []  # the tests before which a lost driver JVM was started again


@pytest.fixture(scope="session")
def _spark_config(tmp_path_factory):
    from lakedoc.config import load_config

    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    return load_config("local", sets=[f"spark.warehouse_dir={warehouse}", f"spark.mode={SPARK_MODE}"])


def live_spark(cfg):
    """The test session's SparkSession (lakedoc.spark.get_spark: one per process, started again if its
    JVM is gone), its JVM started with stderr to :data:`JVM_LOG`."""
    import sys

    from lakedoc import spark as lakedoc_spark

    current = lakedoc_spark._SESSION
    if current is not None:
        if lakedoc_spark._alive(current):
            return lakedoc_spark.get_spark(cfg)
        JVM_RESTARTS.append(os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" ", 1)[0])
    sys.stderr.flush()
    saved = os.dup(2)
    log_fd = os.open(JVM_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.dup2(log_fd, 2)  # inherited by the JVM the builder launches now
        return lakedoc_spark.get_spark(cfg)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(log_fd)


@pytest.fixture()
def spark(_spark_config):
    """The shared local SparkSession (per test, so that a test after a lost JVM gets a live one)."""
    return live_spark(_spark_config)


def pytest_terminal_summary(terminalreporter):
    if JVM_RESTARTS:
        terminalreporter.section("Spark driver JVM lost")
        terminalreporter.write_line(f"the driver JVM was gone and started again before: {', '.join(JVM_RESTARTS)}")
    if not JVM_LOG.is_file():
        return
    text = JVM_LOG.read_text(errors="replace")
    markers = ("OutOfMemoryError", "A fatal error has been detected", "Exception in thread", "SIGSEGV")
    if JVM_RESTARTS or any(m in text for m in markers):
        terminalreporter.section("Spark driver JVM output (errors seen)")
        terminalreporter.write_line(f"{JVM_LOG}, last 80 lines:")
        for line in text.splitlines()[-80:]:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    from lakedoc.samples import generate_samples

    d = tmp_path_factory.mktemp("samples")
    generate_samples(d)
    return d


@pytest.fixture()
def no_leftover_log_handlers():
    """``lakedoc.cli.main`` adds a stderr handler to the root logger (bound to pytest's captured stream
    of that test): take it away again, so later tests do not log into a closed stream."""
    import logging

    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for h in [h for h in root.handlers if h not in before]:
        root.removeHandler(h)
