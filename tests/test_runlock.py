"""The cross-process run lock (lakedoc.runlock) and `lakedoc run` refusing a held warehouse (issue #11)."""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lakedoc.runlock import LOCK_NAME, RunLock, RunLockHeld, lock_path, read_lock

ROOT = Path(__file__).resolve().parents[1]

# A second process trying to take the lock: prints OK or the refusal, exits 0 / 2.
_SCRIPT = """
import sys
from lakedoc.runlock import RunLock, RunLockHeld
try:
    lock = RunLock(sys.argv[1], "other-run")
    lock.acquire()
except RunLockHeld as exc:
    print(exc)
    sys.exit(2)
lock.release()
print("OK")
"""


def _other_process(warehouse: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _SCRIPT, str(warehouse)], capture_output=True, text=True,
                          timeout=60)


def _write_lock(warehouse: Path, **fields) -> Path:
    warehouse.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    rec = {"run_id": "old-run", "host": socket.gethostname(), "pid": os.getpid(),
           "started_at": now.isoformat(timespec="seconds"),
           "lease_until": (now + timedelta(minutes=10)).isoformat(timespec="seconds")}
    rec.update(fields)
    path = warehouse / LOCK_NAME
    path.write_text(json.dumps(rec))
    return path


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_acquire_writes_record_and_release_removes_it(tmp_path):
    wh = tmp_path / "wh"
    lock = RunLock(wh, "run-1")
    with lock:
        rec = read_lock(lock_path(wh))
        assert rec is not None
        assert rec["run_id"] == "run-1" and rec["pid"] == os.getpid() and rec["host"] == socket.gethostname()
        assert set(rec) == {"run_id", "host", "pid", "started_at", "lease_until"}
        until = datetime.fromisoformat(rec["lease_until"])
        assert until > datetime.now(timezone.utc) + timedelta(minutes=9)
    assert not lock_path(wh).exists()
    with RunLock(wh, "run-2"):  # free again
        assert read_lock(lock_path(wh))["run_id"] == "run-2"


def test_second_process_refuses_at_once_naming_the_holder(tmp_path):
    wh = tmp_path / "wh"
    with RunLock(wh, "holder-run"):
        t0 = time.monotonic()
        r = _other_process(wh)
        assert time.monotonic() - t0 < 30
        assert r.returncode == 2, r.stderr
        msg = r.stdout.strip()
        assert "\n" not in msg
        for part in ("holder-run", socket.gethostname(), f"pid {os.getpid()}", "started", str(lock_path(wh)),
                     "delete"):
            assert part in msg, (part, msg)
    r = _other_process(wh)  # released: the other process gets it
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stdout + r.stderr


def test_live_lock_of_same_process_other_run_refuses(tmp_path):
    path = _write_lock(tmp_path / "wh")
    with pytest.raises(RunLockHeld, match="old-run"):
        RunLock(tmp_path / "wh", "new-run").acquire()
    assert read_lock(path)["run_id"] == "old-run"


@pytest.mark.parametrize("stale", ["expired", "dead_pid"])
def test_stale_lock_is_taken_over(tmp_path, caplog, stale):
    wh = tmp_path / "wh"
    if stale == "expired":
        past = datetime.now(timezone.utc) - timedelta(minutes=1)
        _write_lock(wh, host="some-other-host", lease_until=past.isoformat(timespec="seconds"))
    else:
        _write_lock(wh, pid=_dead_pid())
    with caplog.at_level(logging.WARNING, logger="lakedoc.runlock"):
        with RunLock(wh, "new-run"):
            assert read_lock(lock_path(wh))["run_id"] == "new-run"
    assert any("taking over the stale run lock" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    assert not lock_path(wh).exists()
    assert sorted(p.name for p in wh.iterdir()) == []  # nothing left aside


def test_live_lock_on_other_host_is_not_taken_over(tmp_path):
    _write_lock(tmp_path / "wh", host="some-other-host", pid=_dead_pid())  # pid means nothing elsewhere
    with pytest.raises(RunLockHeld, match="some-other-host"):
        RunLock(tmp_path / "wh", "new-run").acquire()


def test_release_only_removes_our_own_lock(tmp_path):
    wh = tmp_path / "wh"
    lock = RunLock(wh, "mine")
    lock.acquire()
    path = _write_lock(wh, run_id="theirs")  # our lease lapsed and another run took over
    assert lock.release() is False
    assert read_lock(path)["run_id"] == "theirs"
    assert RunLock(wh, "never-acquired").release() is False
    assert read_lock(path)["run_id"] == "theirs"


def test_lease_is_renewed_while_held(tmp_path):
    wh = tmp_path / "wh"
    with RunLock(wh, "r", lease_s=5, renew_s=0.1):
        first = read_lock(lock_path(wh))["lease_until"]
        deadline = time.monotonic() + 5
        while read_lock(lock_path(wh)) and read_lock(lock_path(wh))["lease_until"] == first:
            assert time.monotonic() < deadline, "lease never renewed"
            time.sleep(0.1)
    assert not lock_path(wh).exists()


def test_lakedoc_run_refuses_with_exit_2_before_spark(tmp_path, capsys, monkeypatch):
    import lakedoc.spark
    from lakedoc.cli import main

    def no_spark(*a, **k):
        raise AssertionError("Spark must not start while the warehouse is locked")

    monkeypatch.setattr(lakedoc.spark, "get_spark", no_spark)
    wh, inp = tmp_path / "wh", tmp_path / "in"
    inp.mkdir()
    with RunLock(wh, "holder-run"):
        rc = main(["run", "--root", str(ROOT), "--input", str(inp), "--warehouse", str(wh)])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2
        assert len(err) == 1 and err[0].startswith("error: another lakedoc run holds the warehouse lock")
        assert "holder-run" in err[0] and socket.gethostname() in err[0] and f"pid {os.getpid()}" in err[0]
        assert read_lock(lock_path(wh))["run_id"] == "holder-run"  # the refused run left it alone


def test_lakedoc_run_releases_the_lock_when_it_ends(tmp_path, capsys):
    from lakedoc.cli import main

    wh, inp = tmp_path / "wh", tmp_path / "in"
    inp.mkdir()
    rc = main(["run", "--root", str(ROOT), "--input", str(inp), "--warehouse", str(wh), "--job", "no_such_job"])
    assert rc == 2 and "no job 'no_such_job'" in capsys.readouterr().err
    assert not lock_path(wh).exists()


_HOLDER = """
import sys, time
from lakedoc.runlock import RunLock
lock = RunLock(sys.argv[1], "killed-run", renew_s=0.2)
lock.acquire()
print("HELD", flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux) to see the zombie")
def test_a_run_killed_with_sigkill_leaves_a_lock_the_next_run_takes_over_at_once(tmp_path, caplog):
    """kill -9 runs no cleanup: the lock file stays, its lease still valid for minutes. Its pid is dead
    (a zombie until reaped counts as dead too), so the next run takes it over without waiting."""
    import signal

    wh = tmp_path / "wh"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(wh)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HELD"
        with pytest.raises(RunLockHeld, match="killed-run"):
            RunLock(wh, "blocked-run").acquire()
        os.kill(holder.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not open(f"/proc/{holder.pid}/stat").read().rpartition(")")[2].split()[0] == "Z":
            assert time.monotonic() < deadline, "the killed holder never became a zombie"
            time.sleep(0.05)
        left = read_lock(lock_path(wh))
        assert left is not None and left["run_id"] == "killed-run", "kill -9 released nothing"
        with caplog.at_level(logging.WARNING, logger="lakedoc.runlock"):
            with RunLock(wh, "next-run"):  # before the parent reaps the zombie
                assert read_lock(lock_path(wh))["run_id"] == "next-run"
        assert any(f"its pid {holder.pid} is dead on this host" in r.getMessage() for r in caplog.records)
    finally:
        holder.kill()
        holder.wait()
    assert not lock_path(wh).exists()


def _task_args(wh: Path, inp: Path, task: str, *extra: str) -> list[str]:
    return ["task", "--task", task, "--target", "local", "--conf-dir", str(ROOT / "conf"), "--input", str(inp),
            "--set", f"tables.warehouse={wh}", *extra]


def test_lakedoc_task_refuses_with_exit_2_before_spark_while_a_run_holds_the_lock(tmp_path, capsys, monkeypatch,
                                                                                  no_leftover_log_handlers):
    """``lakedoc task`` writes the same tables as a run: it takes the same lock, with the same refusal."""
    import lakedoc.spark
    from lakedoc.cli import main

    def no_spark(*a, **k):
        raise AssertionError("Spark must not start while the warehouse is locked")

    monkeypatch.setattr(lakedoc.spark, "get_spark", no_spark)
    wh, inp = tmp_path / "wh", tmp_path / "in"
    inp.mkdir()
    with RunLock(wh, "holder-run", command="lakedoc run"):
        rc = main(_task_args(wh, inp, "ingest_docx"))
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2
        assert len(err) == 1 and err[0].startswith("error: another lakedoc run holds the warehouse lock")
        assert "holder-run" in err[0] and f"pid {os.getpid()}" in err[0]
        assert read_lock(lock_path(wh))["run_id"] == "holder-run"


def test_lakedoc_task_holds_the_lock_while_its_task_runs_and_releases_it(tmp_path, capsys, monkeypatch,
                                                                          no_leftover_log_handlers):
    """While ``lakedoc task`` runs its task the lock names it; another run (another process) is refused
    with one line naming the task; afterwards the lock is gone."""
    import lakedoc.spark
    import lakedoc.tables
    from lakedoc import tasks
    from lakedoc.cli import main

    class Store:  # pipeline_runs stand-in: nothing on record yet, writes accepted
        def exists(self, table):
            return False

        def merge(self, table, data, **kw):
            pass

    wh, inp = tmp_path / "wh", tmp_path / "in"
    inp.mkdir()
    seen: dict = {}

    def stage(ctx):
        seen["lock"] = read_lock(lock_path(wh))
        seen["other"] = _other_process(wh)
        return tasks.TaskResult(rows_in=1, rows_out=1)

    monkeypatch.setattr(lakedoc.spark, "get_spark", lambda cfg=None: object())
    monkeypatch.setattr(lakedoc.tables, "open_store", lambda cfg, spark=None: Store())
    monkeypatch.setattr(tasks, "resolve", lambda task: stage)
    rc = main(_task_args(wh, inp, "redact_pii", "--run-id", "task-run-1"))
    assert rc == 0, capsys.readouterr().err[-2000:]
    assert "redact_pii: succeeded" in capsys.readouterr().out
    lock = seen["lock"]
    assert lock["run_id"] == "task-run-1" and lock["command"] == "lakedoc task --task redact_pii"
    assert lock["pid"] == os.getpid()
    other = seen["other"]
    assert other.returncode == 2
    assert other.stdout.startswith("another lakedoc task --task redact_pii holds the warehouse lock")
    assert "task-run-1" in other.stdout and len(other.stdout.strip().splitlines()) == 1
    assert not lock_path(wh).exists()


def test_the_lock_applies_to_local_warehouse_folders_off_databricks_only(tmp_path, monkeypatch):
    from lakedoc.config import load_config
    from lakedoc.runlock import acquire_for, lock_folder

    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)

    def cfg(target: str, warehouse: str | None):
        return load_config(target, conf_dir=ROOT / "conf", sets=[f"tables.warehouse={warehouse}"], environ={})

    wh = tmp_path / "wh"
    assert lock_folder(cfg("local", str(wh))) == str(wh)  # delta_rs tables
    assert lock_folder(cfg("rehearsal", str(wh))) == str(wh)  # local Delta-on-Spark (unity_catalog backend)
    for remote in ("abfss://fs@acct.dfs.core.windows.net/wh", "dbfs:/wh", "/Volumes/main/lakedoc/wh"):
        assert lock_folder(cfg("local", remote)) is None, remote
        assert acquire_for(cfg("local", remote), "r", command="lakedoc run") is None
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "18.0")
    assert lock_folder(cfg("local", str(wh))) is None  # Unity Catalog tables; max_concurrent_runs: 1
    assert acquire_for(cfg("dev", str(wh)), "r", command="lakedoc run") is None and not wh.exists()
