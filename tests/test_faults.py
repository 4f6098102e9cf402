"""Fault injection: the local DAG killed like ``kill -9`` at several points, re-run, loses nothing.

``LAKEDOC_FAULT`` (:mod:`lakedoc.faults`) makes ``lakedoc run`` die with ``os._exit(137)`` right after
a given table commit or at a named point of a stage: no ``finally`` block, no lock release, no
``pipeline_runs`` end record. The suite runs, on the generated samples:

* one clean, uninterrupted run (the reference, once per session);
* on a second warehouse, a chain of killed runs, each dying one stage further on
  (after the first ``documents`` commit of ingestion; between ``redact_pii``'s two commits; in
  ``classify`` after ``chunks`` and ``embeddings`` but before the state tables; in ``index`` after the
  LanceDB push but before ``index_state`` records it), then one run without the switch. Each run
  first passes through the stage the previous one broke, so every kill is repaired by a re-run.

Then every table must equal the reference: same key set, no duplicate key, same content (volatile
columns such as run ids and timestamps aside, floats to 1e-4), the LanceDB index the same chunk ids;
the killed runs are ``abandoned`` in ``pipeline_runs`` and each re-run took the stale run lock over.

Baselines train one cheap method on a 120-document slice of the synthetic labelled set, so a DAG run
takes about a minute of Spark time.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

KILLED = 137  # os._exit(137): what a shell shows for kill -9
# (fault specification, the task it kills) in DAG order: each run dies one stage further on
CHAIN = [
    ("commit:documents:1", "ingest_"),  # after the first ingestion commit (the other families mid-way)
    ("commit:pii_findings:1", "redact_pii"),  # findings committed, silver not yet
    ("commit:embeddings:1", "classify"),  # chunks and embeddings committed, chunk/classify state not yet
    ("point:index.pushed:1", "index"),  # chunks in LanceDB, index_state does not know them yet
]
# history tables: one row per run by design, compared separately
HISTORY = {"pipeline_runs", "evaluations"}
VOLATILE = {"run_id", "ingested_at", "updated_at", "processed_at", "pushed_at", "created_at", "indexed_at",
            "deleted_at", "started_at", "ended_at", "duration_s"}
KEYS = {
    "documents": ["doc_id"], "documents_redacted": ["doc_id"],
    "pii_findings": ["doc_id", "entity_type", "start", "end"], "chunks": ["chunk_id"],
    "embeddings": ["chunk_id", "model"], "chunk_state": ["doc_id"], "classify_state": ["doc_id"],
    "predictions": ["doc_id", "label", "method"], "classification_skipped": ["doc_id", "method"],
    "index_state": ["state_key"],
}


# The script leaves with os._exit once its work is printed: what is tested is where the fault kills it,
# and the interpreter's teardown of native (Rust/C++) threads once aborted it after "done" in CI
# ("terminate called without an active exception", exit -6) with every commit already on disk.
_COMMITS = """
import os
import sys
import pyarrow as pa
from lakedoc.tables import LocalDeltaStore
store = LocalDeltaStore(sys.argv[1])
for i in range(3):
    store.merge("t", pa.table({"k": [f"k{i}"]}), keys=["k"])
    store.merge("t", pa.table({"k": [f"k{i}"]}), keys=["k"])  # unchanged: no commit, not counted
    print("committed", i, flush=True)
store.delete_where("u", "k", ["x"])  # no such table: nothing written
print("done", flush=True)
os._exit(0)
"""


def _script(tmp_path: Path, fault: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LAKEDOC_FAULT"}
    if fault is not None:
        env["LAKEDOC_FAULT"] = fault
    return subprocess.run([sys.executable, "-c", _COMMITS, str(tmp_path / "wh")], capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.mark.parametrize(("fault", "printed"), [("commit:t:2", ["committed 0"]), ("commit:*:1", []),
                                                ("commit:other:1,point:x:1", ["committed 0", "committed 1",
                                                                              "committed 2", "done"])])
def test_commit_fault_kills_right_after_the_nth_commit(tmp_path, fault, printed):
    proc = _script(tmp_path, fault)
    assert proc.stdout.split("\n")[:-1] == printed, proc.stderr
    if printed and printed[-1] == "done":
        assert proc.returncode == 0, proc.stderr
        return
    assert proc.returncode == KILLED, proc.stderr
    assert "LAKEDOC_FAULT: commit t #" in proc.stderr
    from deltalake import DeltaTable

    n = int(fault.rsplit(":", 1)[1])
    assert DeltaTable(str(tmp_path / "wh" / "t")).version() == n - 1, "the N-th commit is on disk"


def test_no_fault_set_leaves_the_table_layer_untouched(tmp_path):
    proc = _script(tmp_path, None)
    assert proc.returncode == 0 and proc.stdout.endswith("done\n") and "LAKEDOC_FAULT" not in proc.stderr
    probe = subprocess.run([sys.executable, "-c", "import lakedoc.tables as t; "
                            "print(hasattr(t.LocalDeltaStore.merge, '__lakedoc_fault_hook__'))"],
                           capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in os.environ.items() if k != "LAKEDOC_FAULT"})
    assert probe.stdout.strip() == "False", probe.stderr


def test_a_malformed_specification_is_refused():
    from lakedoc.faults import FaultSpecError, parse

    assert parse("commit:documents:1, point:index.pushed:2") == {("commit", "documents"): 1,
                                                                 ("point", "index.pushed"): 2}
    for bad in ("documents:1", "commit:documents", "commit:documents:0", "kill:x:1", "commit::1"):
        with pytest.raises(FaultSpecError, match="KIND:NAME:N"):
            parse(bad)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """The first 120 documents of the seeded synthetic labelled set (baselines train on it)."""
    from lakedoc.baselines.synthetic import write_synthetic

    d = tmp_path_factory.mktemp("labels")
    full = write_synthetic(d / "full.jsonl", seed=13)
    small = d / "train.jsonl"
    small.write_text("".join(full.read_text().splitlines(keepends=True)[:120]))
    return small


def _run(samples: Path, warehouse: Path, labelled: Path, fault: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LAKEDOC_TEST_SPARK_MODE", "LAKEDOC_FAULT")}
    env["HF_HUB_OFFLINE"] = "1"
    if fault:
        env["LAKEDOC_FAULT"] = fault
    sets = ["baselines.methods=[tfidf_lr]", "baselines.lr_max_iter=10", "baselines.mlflow_enabled=false",
            "baselines.generate_synthetic=false", f"baselines.train_path={labelled}"]
    cmd = [sys.executable, "-m", "lakedoc.cli", "run", "--root", str(ROOT), "--input", str(samples),
           "--warehouse", str(warehouse), "--config", str(ROOT / "conf" / "samples.yml")]
    for s in sets:
        cmd += ["--set", s]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env, cwd=str(ROOT))


def _run_id(proc: subprocess.CompletedProcess) -> str:
    m = re.search(r"lakedoc run (\S+):", proc.stderr)
    assert m, proc.stderr[-3000:]
    return m.group(1)


def _explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"


@pytest.fixture(scope="module")
def clean(tmp_path_factory, sample_dir, labelled) -> Path:
    wh = tmp_path_factory.mktemp("clean") / "warehouse"
    proc = _run(sample_dir, wh, labelled, None)
    assert proc.returncode == 0, _explain(proc)
    return wh


@pytest.fixture(scope="module")
def chain(tmp_path_factory, sample_dir, labelled) -> tuple[Path, list, subprocess.CompletedProcess]:
    wh = tmp_path_factory.mktemp("killed") / "warehouse"
    killed = []
    for fault, task in CHAIN:
        proc = _run(sample_dir, wh, labelled, fault)
        lock = wh / "_lakedoc_run.lock"
        killed.append((fault, task, proc, lock.is_file()))
        assert proc.returncode == KILLED, f"{fault}: the fault did not fire\n{_explain(proc)}"
    final = _run(sample_dir, wh, labelled, None)
    assert final.returncode == 0, _explain(final)
    return wh, killed, final


@pytest.mark.spark  # the local DAG in subprocesses
def test_each_fault_killed_the_run_where_asked(chain):
    _, killed, _ = chain
    for fault, task, proc, lock_left in killed:
        assert f"LAKEDOC_FAULT: {fault.split(':')[0]} " in proc.stderr, f"{fault}\n{_explain(proc)}"
        assert re.search(rf"\[{task}\w*\] started", proc.stderr), f"{fault}: {task} never started"
        assert lock_left, f"{fault}: a killed run cannot release its lock (kill -9), yet the lock file is gone"
        assert not re.search(r"^task +status", proc.stdout, re.M), "died inside the DAG: no summary printed"


@pytest.mark.spark  # the local DAG in subprocesses
def test_every_rerun_takes_the_stale_lock_over(chain):
    _, killed, final = chain
    for _fault, _task, proc, _ in killed[1:]:
        assert "taking over the stale run lock" in proc.stderr, proc.stderr[-3000:]
    assert "taking over the stale run lock" in final.stderr, final.stderr[-3000:]
    wh, _, _ = chain
    assert not (wh / "_lakedoc_run.lock").exists(), "the final run released its lock"


@pytest.mark.spark  # the local DAG in subprocesses
def test_killed_runs_are_abandoned_in_pipeline_runs(chain):
    from deltalake import DeltaTable

    wh, killed, final = chain
    rows = DeltaTable(str(wh / "pipeline_runs")).to_pyarrow_table().to_pylist()
    for fault, task, proc, _ in killed:
        run_id = _run_id(proc)
        mine = [r for r in rows if r["run_id"] == run_id]
        dead = [r for r in mine if r["task"].startswith(task)]
        assert dead, f"{fault}: no pipeline_runs row of task {task} for the killed run {run_id}: {mine}"
        assert any(r["status"] == "abandoned" and r["ended_at"] is None for r in dead), (fault, dead)
        assert not [r for r in mine if r["status"] == "running"], f"{fault}: rows left running: {mine}"
    final_rows = [r for r in rows if r["run_id"] == _run_id(final)]
    assert final_rows and all(r["status"] == "succeeded" for r in final_rows), final_rows


def _tables(wh: Path) -> dict[str, list[dict]]:
    from deltalake import DeltaTable

    out = {}
    for d in sorted(wh.iterdir()):
        if (d / "_delta_log").is_dir() and d.name not in HISTORY:
            t = DeltaTable(str(d)).to_pyarrow_table()
            maps = {f.name for f in t.schema if str(f.type).startswith("map<")}
            out[d.name] = [{k: (sorted(v, key=str) if k in maps and v is not None else v)
                            for k, v in r.items() if k not in VOLATILE} for r in t.to_pylist()]
    return out


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _keyed(table: str, rows: list[dict]) -> dict[tuple, dict]:
    keys = KEYS.get(table) or sorted(rows[0]) if rows else []
    by_key: dict[tuple, dict] = {}
    for r in rows:
        k = tuple(json.dumps(r[c], default=str) for c in keys)
        assert k not in by_key, f"{table}: duplicate key {dict(zip(keys, k, strict=True))}"
        by_key[k] = r
    return by_key


@pytest.mark.spark  # the local DAG in subprocesses
def test_tables_equal_a_clean_run_no_row_lost_duplicated_or_stale(chain, clean):
    wh, _, _ = chain
    got, want = _tables(wh), _tables(clean)
    assert sorted(got) == sorted(want), "the same tables exist"
    assert {"documents", "documents_redacted", "pii_findings", "chunks", "embeddings", "predictions",
            "index_state"} <= set(want)
    for table in sorted(want):
        g, w = _keyed(table, got[table]), _keyed(table, want[table])
        assert set(g) == set(w), (f"{table}: {len(set(w) - set(g))} row(s) lost, {len(set(g) - set(w))} "
                                  f"extra, e.g. {sorted(set(w) ^ set(g))[:3]}")
        differ = [k for k in w if not _same(g[k], w[k])]
        if differ:
            first_g, first_w = g[differ[0]], w[differ[0]]
            cols = [(c, first_g[c], first_w[c]) for c in first_w if not _same(first_g[c], first_w[c])]
            pytest.fail(f"{table}: {len(differ)} row(s) differ from the clean run, e.g. {differ[0]}: {cols}")
    # the findings describe the silver rows they sit behind (the redact_pii kill)
    silver = {r["doc_id"]: r for r in got["documents_redacted"]}
    for f in got["pii_findings"]:
        assert f["config_hash"] == silver[f["doc_id"]]["config_hash"]
    counts: dict[str, int] = {}
    for f in got["pii_findings"]:
        counts[f["doc_id"]] = counts.get(f["doc_id"], 0) + 1
    assert {d: r["finding_count"] for d, r in silver.items() if r["finding_count"]} == counts


def _lance(wh: Path) -> dict[str, dict]:
    import lancedb

    from lakedoc.config import load_config

    name = load_config("local", conf_dir=ROOT / "conf", environ={})["index"]["name"]
    rows = lancedb.connect(str(wh / "_lancedb")).open_table(name).to_arrow().to_pylist()
    ids = [r["chunk_id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicated chunk ids in the index"
    return {r["chunk_id"]: {k: v for k, v in r.items() if k not in VOLATILE and k != "vector"} for r in rows}


@pytest.mark.spark  # the local DAG in subprocesses
def test_index_holds_the_same_chunks_as_a_clean_run(chain, clean):
    wh, _, _ = chain
    got, want = _lance(wh), _lance(clean)
    assert sorted(got) == sorted(want)
    assert [c for c in want if not _same(got[c], want[c])] == []
    state = {r["chunk_id"] for r in _tables(wh)["index_state"]}
    assert state == set(got), "index_state records exactly what the index holds"
