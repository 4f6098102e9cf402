"""The target Databricks Runtime (conf/databricks_runtime.yml) against the wheel, the bundle and the pins.

* Installing the lakedoc wheel on the runtime must upgrade none of the runtime's libraries: every
  Requires-Dist of the built wheel (extras aside) admits the runtime's version of that library.
* The bundle's runtime variables are the table's spark_version strings.
* The local pyspark / delta-spark pins have the runtime's Spark major.minor.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from email.parser import Parser
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from conftest import ROOT
from lakedoc.runner import load_bundle

RUNTIME = yaml.safe_load((ROOT / "conf" / "databricks_runtime.yml").read_text())
LIBS = {canonicalize_name(k): str(v) for k, v in RUNTIME["libraries"].items()}


def _pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[canonicalize_name(name.split("[")[0])] = version.strip()
    return out


def _runtime_conflicts(requirements: list[str]) -> list[str]:
    """Requirements (extras aside) that would replace a library the runtime already has."""
    bad = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and "extra" in str(req.marker):
            continue
        have = LIBS.get(canonicalize_name(req.name))
        if have is not None and not req.specifier.contains(have, prereleases=True):
            bad.append(f"{text}: the runtime has {req.name} {have}")
    return bad


def test_the_table_is_complete():
    assert RUNTIME["spark_version"]["cpu"].endswith("-cpu-ml-scala" + RUNTIME["scala"])
    assert RUNTIME["spark_version"]["gpu"].endswith("-gpu-ml-scala" + RUNTIME["scala"])
    assert RUNTIME["spark_version"]["cpu"].split(".")[0] == RUNTIME["spark_version"]["gpu"].split(".")[0]
    assert RUNTIME["lts"] is True and str(RUNTIME["checked"]) == "2026-11-29"
    for lib in ("pandas", "numpy", "pyarrow", "torch", "transformers", "sentence-transformers", "scikit-learn",
                "xgboost", "mlflow-skinny", "spacy", "databricks-sdk"):
        Version(LIBS[lib])  # a real version
    assert RUNTIME["sources"]["release_notes"].startswith("https://")


def test_pyproject_dependencies_admit_the_runtime_libraries():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not _runtime_conflicts(deps), "\n".join(_runtime_conflicts(deps))
    # spaCy models are made per spaCy minor version: the runtime's must be allowed (en_core_web_lg 3.7.x)
    spacy = next(Requirement(d) for d in deps if canonicalize_name(Requirement(d).name) == "spacy")
    assert spacy.specifier.contains(LIBS["spacy"])


def test_pyproject_dependencies_admit_the_local_pins():
    """requirements.txt (local runs, CI) installs the same wheel: its pins must fit the ranges too."""
    pins = _pins()
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    bad = [f"{d}: requirements.txt pins {pins[canonicalize_name(Requirement(d).name)]}" for d in deps
           if canonicalize_name(Requirement(d).name) in pins
           and not Requirement(d).specifier.contains(pins[canonicalize_name(Requirement(d).name)], prereleases=True)]
    assert not bad, "\n".join(bad)


def _build_metadata(out: Path) -> Path:
    """The wheel's METADATA, built from a copy of the project (the shared working tree stays untouched).

    Offline: setuptools' PEP 517 metadata hook in this interpreter (no build isolation). Where that
    setuptools is missing or too old: `pip wheel --no-deps` (fetches the build backend from the index).
    """
    src = out / "project"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    meta_dir = out / "meta"
    meta_dir.mkdir()
    hook = ("import sys; from setuptools import build_meta as b; "
            "print(b.prepare_metadata_for_build_wheel(sys.argv[1]))")
    proc = subprocess.run([sys.executable, "-c", hook, str(meta_dir)], cwd=src, capture_output=True, text=True)
    if proc.returncode == 0:
        return meta_dir / proc.stdout.strip().splitlines()[-1] / "METADATA"
    wheels = out / "wheels"
    proc2 = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
                           capture_output=True, text=True)
    if proc2.returncode != 0:
        pytest.skip("cannot build the wheel's metadata here: setuptools' hook failed "
                    f"({proc.stderr.strip()[-300:]}) and `pip wheel` failed ({proc2.stderr.strip()[-300:]})")
    import zipfile

    whl = next(wheels.glob("lakedoc-*.whl"))
    with zipfile.ZipFile(whl) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        target = out / "METADATA"
        target.write_bytes(z.read(name))
    return target


def test_built_wheel_requires_nothing_the_runtime_would_upgrade(tmp_path):
    meta = Parser().parsestr(_build_metadata(tmp_path).read_text())
    requires = meta.get_all("Requires-Dist") or []
    assert requires, "the built wheel declares no dependencies"
    plain = [r for r in requires if "extra ==" not in r]
    names = {canonicalize_name(Requirement(r).name) for r in plain}
    assert {"pandas", "numpy", "spacy", "transformers"} <= names
    # left to the cluster on purpose (the ML runtime's own builds): never a plain dependency
    assert not names & {"pyspark", "torch", "xgboost", "delta-spark"}
    assert not _runtime_conflicts(plain), "\n".join(_runtime_conflicts(plain))


def test_bundle_runtime_variables_are_the_table_strings():
    bundle = load_bundle(ROOT)
    for target in (None, "dev", "prod"):
        variables = bundle.variables(target)
        assert variables["spark_version"] == RUNTIME["spark_version"]["cpu"]
        assert variables["gpu_spark_version"] == RUNTIME["spark_version"]["gpu"]


def test_local_spark_pins_match_the_runtime_spark():
    pins = _pins()
    minor = ".".join(str(RUNTIME["spark"]).split(".")[:2])
    assert ".".join(pins["pyspark"].split(".")[:2]) == minor, f"pyspark {pins['pyspark']} vs runtime Spark {minor}"
    assert ".".join(pins["delta-spark"].split(".")[:2]) == minor, f"delta_spark {pins['delta-spark']} vs Spark {minor}"


def test_operations_doc_shows_the_table():
    doc = (ROOT / "docs" / "operations.md").read_text()
    for needle in (RUNTIME["spark_version"]["cpu"], RUNTIME["spark_version"]["gpu"], RUNTIME["sources"]["release_notes"],
                   RUNTIME["sources"]["runtime_index"]):
        assert needle in doc, needle
    for lib, version in RUNTIME["libraries"].items():
        assert re.search(rf"\b{re.escape(lib)}\b[^|\n]*\|\s*{re.escape(str(version))}", doc), f"{lib} {version} not in the doc's table"
