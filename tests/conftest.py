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


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from lakedoc.config import load_config
    from lakedoc.spark import get_spark

    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    return get_spark(load_config("local", sets=[f"spark.warehouse_dir={warehouse}", f"spark.mode={SPARK_MODE}"]))


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    from lakedoc.samples import generate_samples

    d = tmp_path_factory.mktemp("samples")
    generate_samples(d)
    return d
