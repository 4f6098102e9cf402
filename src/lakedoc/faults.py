"""Fault injection for the crash-safety tests: ``LAKEDOC_FAULT`` makes the process die like ``kill -9``.

The variable holds comma-separated ``KIND:NAME:N`` items:

``commit:TABLE:N``
    die right after the N-th committed write to ``TABLE`` in this process (``*``: any table). A
    committed write is a ``merge`` that inserted, updated or deleted rows, or a ``delete_where`` that
    deleted rows: exactly the calls that make a new Delta version. The count is per process and
    per table, over every task the process runs (``lakedoc run`` runs them all in one process).
``point:NAME:N``
    die the N-th time stage code reaches ``faults.point(NAME)`` (e.g. ``index.pushed``: the service
    acknowledged a slice of chunks, ``index_state`` does not record it yet).

Dying is one line on stderr (``LAKEDOC_FAULT: ...``) and ``os._exit(137)``: no ``finally`` block, no
``atexit`` handler, no run-lock release and no ``pipeline_runs`` end record run — what ``kill -9``, an
out-of-memory kill or a lost driver leave behind. Not an exception: cleanup code cannot catch it.

Unset (every real run), :func:`hook_commits` leaves the table classes untouched and :func:`point`
returns after one truth test: zero cost. The variable is read when this module is first imported;
:func:`configure` re-reads it (tests in one process).
"""
from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

ENV = "LAKEDOC_FAULT"
EXIT_CODE = 137  # what a shell reports for a process killed by SIGKILL (128 + 9)
KINDS = ("commit", "point")


class FaultSpecError(ValueError):
    """``LAKEDOC_FAULT`` is malformed (the message says how it should read)."""


def parse(spec: str) -> dict[tuple[str, str], int]:
    """``"commit:documents:1,point:index.pushed:2"`` -> {(kind, name): n}."""
    out: dict[tuple[str, str], int] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        kind, _, rest = item.partition(":")
        name, _, n = rest.rpartition(":")
        if kind not in KINDS or not name or not n.isdigit() or int(n) < 1:
            raise FaultSpecError(f"{ENV}: {item!r} is not KIND:NAME:N with KIND one of {', '.join(KINDS)} "
                                 f"and N >= 1 (e.g. commit:pii_findings:1 or point:index.pushed:1)")
        out[(kind, name)] = int(n)
    return out


_specs: dict[tuple[str, str], int] = {}
_counts: dict[tuple[str, str], int] = {}
_lock = threading.Lock()


def configure(spec: str | None = None) -> dict[tuple[str, str], int]:
    """(Re)read the fault specification (``spec``, else ``$LAKEDOC_FAULT``) and reset the counters."""
    global _specs
    with _lock:
        _specs = parse(os.environ.get(ENV, "") if spec is None else spec)
        _counts.clear()
    return dict(_specs)


def active() -> bool:
    return bool(_specs)


def die(reason: str) -> None:
    """Kill this process at once, like ``kill -9`` (after one line on stderr saying why)."""
    try:
        os.write(2, f"{ENV}: {reason}: killing the process (os._exit({EXIT_CODE}))\n".encode())
    except OSError:  # pragma: no cover - stderr closed: die anyway
        pass
    os._exit(EXIT_CODE)


def _hit(kind: str, name: str) -> None:
    """Count one event; die when a specification's N is reached."""
    with _lock:
        for key in ((kind, name), (kind, "*")):
            if key in _specs:
                _counts[key] = _counts.get(key, 0) + 1
                if _counts[key] >= _specs[key]:
                    die(f"{kind} {name} #{_counts[key]} (spec {key[0]}:{key[1]}:{_specs[key]})")


def point(name: str) -> None:
    """A named place in stage code where a ``point:NAME:N`` fault may kill the process."""
    if _specs:
        _hit("point", name)


def _committed(result: Any) -> bool:
    """Whether a merge / delete_where return value means a new table version was written."""
    if isinstance(result, int):
        return result > 0
    return bool(getattr(result, "written", 0) or getattr(result, "deleted", 0))


def _after_commit(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: Any, table: Any, *args: Any, **kwargs: Any) -> Any:
        result = method(self, table, *args, **kwargs)
        if _specs and _committed(result):
            _hit("commit", str(getattr(table, "name", table)))  # a name or a lakedoc.schema.TableSpec
        return result

    wrapper.__lakedoc_fault_hook__ = True  # type: ignore[attr-defined]  # a marker attribute on a function
    return wrapper


def hook_commits(base: type) -> None:
    """Wrap ``merge`` and ``delete_where`` of ``base``'s subclasses (the table backends) so that a
    ``commit:TABLE:N`` fault fires after the write returns. Nothing is wrapped when no fault is set."""
    if not _specs:
        return
    todo = [base]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        for name in ("merge", "delete_where"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "__lakedoc_fault_hook__", False):
                setattr(cls, name, _after_commit(method))
    print(f"{ENV}={os.environ.get(ENV, '')!r}: fault injection armed: "
          f"{', '.join(f'{k}:{n}:{c}' for (k, n), c in _specs.items())}", file=sys.stderr, flush=True)


configure()
