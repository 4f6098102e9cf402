"""A run lock that holds across processes and machines sharing the warehouse folder.

``lakedoc run`` takes it before its first task and releases it after its last, so two runs never write
the same warehouse at once (GitHub issue #11: two concurrent runs marked every bronze row deleted).
``lakedoc task`` (one task, on the command line) takes it too, around its one task: it writes the same
tables, so it refuses while a run (or another ``lakedoc task``) writes the warehouse, and a run refuses
while it works. ``pipelines/task.py`` does not take it: it is the entry point that ``lakedoc run`` calls
in-process for each task (under the run's lock) and that Databricks runs (below).

Which warehouses (:func:`lock_folder`): the lock is taken when ``tables.warehouse`` is a local folder
path (not ``scheme://...``, ``dbfs:`` or ``/Volumes/...``) and the process is not on Databricks, i.e.
the ``delta_rs`` tables of ``local`` and the ``rehearsal`` target's local Delta-on-Spark tables, which
live under that folder (``<warehouse>/<schema>.db``), as do the LanceDB index and the run reports.
Unity Catalog tables on Databricks are not behind it: there the job's ``max_concurrent_runs: 1``
serialises runs, and the tasks of one job run write concurrently by design.

The lock is the file ``<warehouse>/_lakedoc_run.lock``, created atomically (``O_CREAT | O_EXCL``) and
holding JSON ``{run_id, host, pid, started_at, lease_until, command}``. A daemon thread renews the lease
while the run lasts. A lock whose lease has expired, or whose pid is dead on this same host, is stale:
it is taken over (with a WARNING). Anything else refuses at once with :class:`RunLockHeld`, whose
message is one line naming the holder and how to clear a stale lock.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_NAME = "_lakedoc_run.lock"
DEFAULT_LEASE_S = 600.0


class RunLockHeld(RuntimeError):
    """Another live run holds the warehouse's run lock (the message is one line for the user)."""

    def __init__(self, path: Path, holder: dict[str, Any] | None):
        self.path = path
        self.holder = holder or {}
        h = self.holder
        command = str(h.get("command") or "lakedoc run")
        who = (f"run {h.get('run_id', '?')} on host {h.get('host', '?')}, pid {h.get('pid', '?')}, "
               f"started {h.get('started_at', '?')} (lease until {h.get('lease_until', '?')})"
               if holder else "a run whose lock file is still being written")
        super().__init__(
            f"another {command} holds the warehouse lock {path}: {who}; wait for it to finish, or, if that "
            f"run is gone, delete {path} (a lock whose lease expired or whose pid is dead on the same host "
            f"is taken over automatically)")


def lock_path(warehouse: str | Path) -> Path:
    return Path(warehouse).expanduser().resolve() / LOCK_NAME


def lock_folder(cfg: Any) -> str | None:
    """The warehouse folder whose lock ``lakedoc run`` / ``lakedoc task`` take for ``cfg``, or None when
    no lock applies (``tables.warehouse`` unset or not a local folder path, or on Databricks)."""
    from lakedoc.spark import on_databricks

    value = cfg.tables.warehouse
    if not value or on_databricks():
        return None
    path = cfg.resolve_path(value)
    if "://" in path or path.startswith(("dbfs:", "/Volumes/")):
        return None
    return path


def acquire_for(cfg: Any, run_id: str, *, command: str) -> RunLock | None:
    """Take the lock of ``cfg``'s warehouse (:func:`lock_folder`) for ``run_id``; None when no lock
    applies. Raises :class:`RunLockHeld` at once when another live run holds it."""
    folder = lock_folder(cfg)
    if folder is None:
        return None
    lock = RunLock(folder, run_id, command=command)
    lock.acquire()
    return lock


def _now() -> datetime:
    return datetime.now(timezone.utc)


def read_lock(path: str | Path) -> dict[str, Any] | None:
    """The lock's JSON, or None when the file is missing, empty or not (yet) valid JSON."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, ValueError, OverflowError):
        return False
    # A process killed with kill -9 stays a zombie until its parent reaps it (or forever under a
    # container's non-reaping PID 1): it still answers signal 0, yet it is dead.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS) or gone meanwhile
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def stale_reason(holder: dict[str, Any], *, now: datetime | None = None) -> str | None:
    """Why ``holder`` may be taken over (expired lease, dead pid on this host), or None when it is live."""
    now = now or _now()
    try:
        until = datetime.fromisoformat(str(holder["lease_until"]))
        if until.tzinfo is None:
            until = until.replace(tzinfo=timezone.utc)
    except (KeyError, ValueError):
        return "its lease_until is missing or unreadable"
    if until < now:
        return f"its lease expired at {holder['lease_until']}"
    if holder.get("host") == socket.gethostname():
        try:
            pid = int(holder["pid"])
        except (KeyError, TypeError, ValueError):
            return "its pid is missing or unreadable"
        if not _pid_alive(pid):
            return f"its pid {pid} is dead on this host"
    return None


class RunLock:
    """``with RunLock(warehouse, run_id): ...`` — see the module docstring."""

    def __init__(self, warehouse: str | Path, run_id: str, *, lease_s: float = DEFAULT_LEASE_S,
                 renew_s: float | None = None, command: str | None = None):
        self.path = lock_path(warehouse)
        self.run_id = run_id
        self.command = command  # what holds it, e.g. "lakedoc task --task redact_pii" (in the refusal)
        self.lease_s = float(lease_s)
        self.renew_s = float(renew_s) if renew_s is not None else min(60.0, self.lease_s / 3)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started_at = _now().isoformat(timespec="seconds")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False

    # -- content ---------------------------------------------------------------------------------
    def _record(self) -> dict[str, Any]:
        rec = {"run_id": self.run_id, "host": self.host, "pid": self.pid, "started_at": self.started_at,
               "lease_until": (_now() + timedelta(seconds=self.lease_s)).isoformat(timespec="seconds")}
        if self.command:
            rec["command"] = self.command
        return rec

    def _is_ours(self, holder: dict[str, Any] | None) -> bool:
        return holder is not None and bool(holder) and all(holder.get(k) == getattr(self, k)
                                                           for k in ("run_id", "host", "pid"))

    def _create(self) -> bool:
        """Create the lock file atomically with our record; False when it already exists."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            json.dump(self._record(), f)
            f.flush()
            os.fsync(f.fileno())
        return True

    # -- acquire / release -----------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lock or raise :class:`RunLockHeld` at once; start the renewing thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self.held = True
                self._start_renewing()
                return
            holder = read_lock(self.path)
            reason: str | None
            if holder is None:
                # Missing (released meanwhile: retry) or being written (fresh) or left half-written
                # by a crashed run (old): judge by the file's age.
                try:
                    age = time.time() - self.path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if age < self.lease_s:
                    raise RunLockHeld(self.path, None)
                reason = f"it is unreadable and {age:.0f}s old"
            else:
                reason = stale_reason(holder)
                if reason is None:
                    raise RunLockHeld(self.path, holder)
            self._take_over(holder, reason)
        raise RunLockHeld(self.path, read_lock(self.path))

    def _take_over(self, stale: dict[str, Any] | None, reason: str) -> None:
        """Move the stale lock aside (one taker wins the rename), then let acquire() create ours."""
        aside = self.path.with_name(f"{self.path.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # someone else moved it: retry the create
        moved = read_lock(aside)
        if stale is not None and moved != stale:
            # A racing run replaced the stale lock before our rename: put its live lock back.
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            raise RunLockHeld(self.path, moved)
        aside.unlink(missing_ok=True)
        log.warning("taking over the stale run lock %s (%s): it was %s", self.path, reason,
                    json.dumps(stale) if stale else "empty")

    def release(self) -> bool:
        """Stop renewing and remove the lock file if it is still ours (True when removed)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        was_held, self.held = self.held, False
        if not was_held:
            return False
        if not self._is_ours(read_lock(self.path)):
            log.warning("run lock %s is no longer ours (run %s): leaving it in place", self.path, self.run_id)
            return False
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    # -- lease -----------------------------------------------------------------------------------
    def renew(self) -> bool:
        """Push lease_until forward (atomic replace); False when the lock is no longer ours."""
        if not self._is_ours(read_lock(self.path)):
            log.error("run lock %s was taken from run %s (its lease lapsed?): no longer renewing",
                      self.path, self.run_id)
            return False
        tmp = self.path.with_name(f"{self.path.name}.{self.pid}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(self._record()))
        os.replace(tmp, self.path)
        return True

    def _start_renewing(self) -> None:
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.renew_s):
                try:
                    if not self.renew():
                        return
                except OSError as exc:
                    log.warning("could not renew run lock %s: %s", self.path, exc)

        self._thread = threading.Thread(target=loop, name=f"lakedoc-runlock-{self.run_id}", daemon=True)
        self._thread.start()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
