"""``lakedoc archive`` and the task ``archive_inputs``: move processed input files out of the landing zone.

For every file under the input folder (``abfss://`` through the DataLake SDK, or a local folder):

* its bronze ``documents`` row (top-level, not soft-deleted) must be **committed** — read from the Delta
  table, so only what a finished MERGE wrote counts — and describe **this version** of the file (same
  size and modification time). A file without such a row (not ingested yet, being ingested, replaced
  since) stays where it is;
* status in ``lake.archive.archive_statuses`` (ok, empty, partial) -> ``<archive_dir>/YYYY/MM/DD/<relative
  path>``; status in ``lake.archive.quarantine_statuses`` (corrupt, encrypted, unsupported, too_large,
  timeout, error, image_only) -> ``<quarantine_dir>/YYYY/MM/DD/<relative path>`` with a JSON sidecar
  ``<file>.lakedoc.json`` (status, error, run ids, doc id, original path; never document text); any
  other status stays in landing;
* a file that comes back into landing after it was moved is moved again only once a bronze row newer
  than its last move exists (it is processed again first).

The move is one atomic rename (a hierarchical-namespace rename on ADLS Gen2 — the missing folders of the
destination, e.g. the day's, are created first — ``os.rename`` locally). Each
move is recorded in the ``file_moves`` table (lakedoc.schema.FILE_MOVES: original and new location, status,
error, run ids), ``pending`` *before* the rename and ``done`` after it, so an interrupted run is repaired by
the next one (a pending move whose file is at its destination becomes ``done``; one whose file is still in
landing is planned again, and the old row becomes ``failed``). Re-running moves nothing twice: a moved
file is no longer in landing.
Dates are the archive run's (UTC). An existing destination is never overwritten (a ``~<id>`` suffix).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import posixpath
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from lakedoc.lake.storage import LakeFS, LakeSettings, is_remote, open_fs, parse_abfss

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".lakedoc.json"
MAX_ERROR_CHARS = 500


@dataclass
class Move:
    move_id: str
    doc_id: str
    source_path: str
    destination: str
    kind: str
    status: str
    error: str | None
    ingest_run_id: str | None
    size_bytes: int
    modified_at: datetime
    state: str = "pending"


@dataclass
class ArchiveSummary:
    listed: int = 0
    archived: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    left: dict[str, int] = field(default_factory=dict)   # reason -> files left in landing
    failed: dict[str, str] = field(default_factory=dict)
    repaired: int = 0   # pending moves of an interrupted run found done
    dry_run: bool = False

    def format(self) -> str:
        verb = "would move" if self.dry_run else "moved"
        left = ", ".join(f"{n} {k}" for k, n in sorted(self.left.items())) or "none"
        return (f"{self.listed} file(s) in landing: {verb} {len(self.archived)} to archive, "
                f"{len(self.quarantined)} to quarantine; left in landing: {left}; failed {len(self.failed)}"
                + (f"; {self.repaired} interrupted move(s) completed" if self.repaired else ""))

    def details(self) -> dict[str, Any]:
        return {"listed": self.listed, "archived": len(self.archived), "quarantined": len(self.quarantined),
                "left": self.left, "failed": len(self.failed), "repaired": self.repaired}


def _sibling(root: str, name: str) -> str:
    p = parse_abfss(root)
    if p is not None:
        parent = posixpath.dirname(p.path)
        return type(p)(p.file_system, p.account, p.suffix, "/".join(x for x in (parent, name) if x)).uri
    return os.path.join(os.path.dirname(os.path.abspath(root.rstrip("/"))), name)


def _move_id(source_path: str, modified_at: datetime, size: int, run_id: str) -> str:
    key = f"{source_path}\x00{modified_at.astimezone(timezone.utc).isoformat()}\x00{size}\x00{run_id}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _utc(ts: Any) -> datetime | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
    return None


def _same_version(row: dict, size: int, mtime: datetime, remote: bool) -> bool:
    modified = _utc(row.get("modified_at"))
    if modified is None or row.get("size_bytes") is None or int(row["size_bytes"]) != size:
        return False
    tolerance = 1.0 if remote else 0.002  # ADLS listings have whole seconds; local rows milliseconds
    return abs((modified - mtime).total_seconds()) < tolerance


def _bronze(tables) -> dict[str, dict]:
    from lakedoc.schema import DOCUMENTS

    if not tables.exists(DOCUMENTS):
        return {}
    cols = ["doc_id", "depth", "source_path", "size_bytes", "modified_at", "status", "error", "run_id",
            "is_deleted", "ingested_at"]
    out: dict[str, dict] = {}
    for r in tables.read_arrow(DOCUMENTS, cols).to_pylist():
        if (r.get("depth") or 0) != 0 or r.get("is_deleted"):
            continue
        out[r["source_path"]] = r
    return out


def _moves(tables) -> list[dict]:
    from lakedoc.schema import FILE_MOVES

    return tables.read_arrow(FILE_MOVES).to_pylist() if tables.exists(FILE_MOVES) else []


def _record(tables, moves: list[Move], run_id: str, now: datetime) -> None:
    from lakedoc.schema import FILE_MOVES

    if not moves:
        return
    rows = [{**vars(m), "moved_at": now, "run_id": run_id} for m in moves]
    tables.merge(FILE_MOVES, pa.Table.from_pylist(rows, schema=FILE_MOVES.schema))


def _sidecar(m: Move, run_id: str) -> bytes:
    return json.dumps({"status": m.status, "error": (m.error or "")[:MAX_ERROR_CHARS] or None,
                       "doc_id": m.doc_id, "ingest_run_id": m.ingest_run_id, "archive_run_id": run_id,
                       "original_path": m.source_path, "size_bytes": m.size_bytes,
                       "modified_at": m.modified_at.isoformat()}, indent=2).encode("utf-8")


def archive(settings: LakeSettings, tables, input_root: str, run_id: str, *, dry_run: bool = False,
            now: datetime | None = None, fs: LakeFS | None = None) -> ArchiveSummary:
    """Move the committed, processed files of ``input_root``; see the module doc."""
    now = now or datetime.now(timezone.utc)
    remote = is_remote(input_root)
    root = input_root.rstrip("/") if remote else os.path.realpath(input_root)
    fs = fs or open_fs(root, settings)
    a = settings.archive
    roots = {"archive": a.archive_dir or _sibling(root, "archive"),
             "quarantine": a.quarantine_dir or _sibling(root, "quarantine")}
    summary = ArchiveSummary(dry_run=dry_run)

    # 1. moves an interrupted run left pending
    history = _moves(tables)
    repaired: list[Move] = []
    for r in history:
        if r["state"] != "pending":
            continue
        m = Move(**{k: r[k] for k in Move.__dataclass_fields__})
        if fs.exists(m.destination) and not fs.exists(m.source_path):
            m.state = "done"
            repaired.append(m)
        elif not fs.exists(m.source_path):
            m.state = "missing"
            repaired.append(m)
        else:  # still in landing: planned again below, under this run's move id
            m.state = "failed"
            repaired.append(m)
    summary.repaired = sum(1 for m in repaired if m.state == "done")
    last_move: dict[str, datetime] = {}
    for r in history:
        when = _utc(r.get("moved_at"))
        if r["state"] in ("done",) and when and (r["doc_id"] not in last_move or when > last_move[r["doc_id"]]):
            last_move[r["doc_id"]] = when
    for m in repaired:
        if m.state == "done":
            last_move[m.doc_id] = now

    # 2. plan
    bronze = _bronze(tables)
    day = now.strftime("%Y/%m/%d")
    plan: list[Move] = []

    def leave(reason: str) -> None:
        summary.left[reason] = summary.left.get(reason, 0) + 1

    for e in fs.list_files(root):
        summary.listed += 1
        path = fs.join(root, e.rel)
        row = bronze.get(path)
        if row is None:
            leave("not_ingested")
            continue
        if not _same_version(row, e.size, e.mtime, remote):
            leave("changed_since_ingestion")
            continue
        ingested = _utc(row.get("ingested_at"))
        moved = last_move.get(row["doc_id"])
        if moved is not None and (ingested is None or ingested <= moved):
            leave("awaiting_reprocessing")  # came back after a move: processed again first
            continue
        status = row.get("status") or ""
        kind = "archive" if status in a.archive_statuses else "quarantine" if status in a.quarantine_statuses \
            else None
        if kind is None:
            leave(f"status_{status or 'unknown'}")
            continue
        mtime = _utc(row["modified_at"]) or e.mtime
        move_id = _move_id(path, mtime, e.size, run_id)
        dest = fs.join(roots[kind], f"{day}/{e.rel}")
        if fs.exists(dest):
            stem, ext = posixpath.splitext(dest)
            dest = f"{stem}~{move_id[:8]}{ext}"
        error = (row.get("error") or None) if kind == "quarantine" else None
        plan.append(Move(move_id, row["doc_id"], path, dest, kind, status,
                         error[:MAX_ERROR_CHARS] if error else None, row.get("run_id"), e.size, mtime))

    for m in plan:
        (summary.archived if m.kind == "archive" else summary.quarantined).append(m.source_path)
    if dry_run:
        return summary
    _record(tables, repaired, run_id, now)

    # 3. pending rows first, then the renames, then their outcome
    _record(tables, plan, run_id, now)
    outcome: list[Move] = []
    for m in plan:
        try:
            if m.kind == "quarantine":
                fs.write_bytes(m.destination + SIDECAR_SUFFIX, _sidecar(m, run_id))
            fs.rename(m.source_path, m.destination)
            m.state = "done"
        except Exception as exc:  # noqa: BLE001 - recorded; the file stays in landing for the next run
            if fs.exists(m.destination) and not fs.exists(m.source_path):
                m.state = "done"  # the rename was applied, its answer lost
            else:
                m.state = "failed"
                summary.failed[m.source_path] = f"{type(exc).__name__}: {str(exc)[:300]}"
                (summary.archived if m.kind == "archive" else summary.quarantined).remove(m.source_path)
        outcome.append(m)
    _record(tables, outcome, run_id, now)
    return summary


def run(ctx) -> Any:
    """Task ``archive_inputs`` (after ``index``, before ``report``); does nothing unless
    ``lake.archive.enabled`` (false in every target)."""
    from lakedoc.tasks import TaskResult

    settings = LakeSettings.from_config(ctx.cfg)
    if not settings.archive.enabled:
        ctx.log.info("archive_inputs: lake.archive.enabled is false: nothing moved")
        return TaskResult(details={"enabled": False})
    summary = archive(settings, ctx.tables, ctx.input_path, ctx.run_id)
    ctx.log.info("archive_inputs: %s", summary.format())
    if summary.failed:
        raise RuntimeError(f"{len(summary.failed)} file(s) could not be moved, e.g. "
                           f"{next(iter(summary.failed.items()))}")
    return TaskResult(rows_in=summary.listed, rows_out=len(summary.archived) + len(summary.quarantined),
                      details={"enabled": True, **summary.details()})


def cmd_archive(args) -> int:
    from pathlib import Path

    from lakedoc.cli import cli_path
    from lakedoc.config import load_config
    from lakedoc.tables import open_store
    from lakedoc.tasks import new_run_id

    sets = list(args.set)
    if args.warehouse:
        sets.append(f"tables.warehouse={Path(args.warehouse).resolve()}")
    cfg = load_config(args.target, user_file=args.config, sets=sets)
    tables = open_store(cfg)
    input_path = cli_path(args.input) if args.input else cfg.resolve_path(cfg.input.path)
    summary = archive(LakeSettings.from_config(cfg), tables, input_path, new_run_id(), dry_run=args.dry_run)
    print(summary.format())
    for path, err in sorted(summary.failed.items())[:20]:
        print(f"  failed: {path}: {err}")
    return 1 if summary.failed else 0


def add_parser(sub) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "archive", help="move processed input files to archive/ (or quarantine/ with the reason)")
    p.add_argument("--input", help="landing folder or abfss:// URI (default: input.path)")
    p.add_argument("--warehouse", help="folder of the local Delta tables (default: tables.warehouse)")
    p.add_argument("--dry-run", action="store_true", help="say what would move, move nothing")
    p.add_argument("--target", default="local", help="configuration target (default: local)")
    p.add_argument("--config", help="extra YAML merged over conf/")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configuration override")
    p.set_defaults(func=cmd_archive)
