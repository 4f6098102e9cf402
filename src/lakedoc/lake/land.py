"""``lakedoc land SRC DEST``: upload a local folder into the landing zone of an ADLS Gen2 account.

    lakedoc land ./inbox abfss://raw@myaccount.dfs.core.windows.net/landing/2026-11 [--dry-run]

* Relative paths under SRC are kept under DEST. Every regular file is considered (symbolic links are not
  followed).
* A file already at its destination with the same size and the same Content-MD5 is skipped (unchanged).
* Each file is uploaded with the DataLake SDK (``upload_data``: create, parallel chunked appends of
  ``lake.chunk_mb``, one flush that stores the file's MD5 as its Content-MD5) to a staging name under
  ``lake.staging_dir`` at the root of DEST's file system, then moved to its destination by one atomic
  hierarchical-namespace rename. A reader of the landing zone (the ingestion tasks) therefore never sees
  a half-written file, and an interrupted run leaves only staging files behind: the next run skips every
  file that reached its destination (size + MD5) and uploads the others again, from their start. Files
  are uploaded ``lake.parallel_files`` at a time; a failed request is retried by the SDK
  (``lake.max_retries``, linear back-off), a failed file as a whole up to ``lake.file_retries`` times.
* ``--dry-run`` lists what would be uploaded and skipped without writing anything.
* A progress bar (bytes) by the rule of every lakedoc bar (:mod:`lakedoc.report.progress`): on a terminal,
  none when stderr is not a TTY, when ``CI`` is set (but not to ``0``/``false``) or with
  ``LAKEDOC_PROGRESS=0``; never with ``--no-progress``. A summary at the end.

DEST may also be a local folder (the same staging + rename, with ``os.rename``).
"""
from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from lakedoc.lake.storage import AbfssPath, AdlsFS, LakeFS, LakeSettings, md5_file, open_fs, parse_abfss

log = logging.getLogger(__name__)


@dataclass
class LandSummary:
    files: int = 0
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # unchanged at the destination
    failed: dict[str, str] = field(default_factory=dict)
    bytes_uploaded: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    def format(self) -> str:
        rate = self.bytes_uploaded / 1e6 / self.seconds if self.seconds > 0 else 0.0
        verb = "would upload" if self.dry_run else "uploaded"
        lines = [f"{self.files} file(s): {verb} {len(self.uploaded)} ({self.bytes_uploaded / 1e6:.1f} MB), "
                 f"skipped {len(self.skipped)} unchanged, failed {len(self.failed)}"
                 + ("" if self.dry_run else f" in {self.seconds:.1f}s ({rate:.1f} MB/s)")]
        for rel, err in sorted(self.failed.items())[:20]:
            lines.append(f"  failed: {rel}: {err}")
        return "\n".join(lines)


def local_files(src: str) -> list[tuple[str, str, int]]:
    """(relative posix path, absolute path, size) of every regular file under ``src``, sorted."""
    base = Path(src)
    out = []
    for dirpath, _dirnames, filenames in os.walk(base, followlinks=False):
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file():
                continue
            out.append((full.relative_to(base).as_posix(), str(full), full.stat().st_size))
    return sorted(out)


def staging_root(dest: str, settings: LakeSettings) -> str:
    """Where files are written before their rename: ``<file system root>/<staging_dir>/<dest path>``."""
    p = parse_abfss(dest)
    if p is not None:
        return AbfssPath(p.file_system, p.account, p.suffix,
                         "/".join(x for x in (settings.staging_dir, p.path) if x)).uri
    d = Path(dest).resolve()
    return str(d.parent / settings.staging_dir / d.name)


def land(src: str, dest: str, settings: LakeSettings, *, dry_run: bool = False, progress: bool = True,
         fs: LakeFS | None = None) -> LandSummary:
    """Upload ``src`` under ``dest`` (see the module doc). ``progress=False``: never a bar; otherwise a
    bar as :class:`lakedoc.report.progress.Progress` decides (a terminal, no ``CI``, no ``LAKEDOC_PROGRESS=0``)."""
    if not Path(src).is_dir():
        raise FileNotFoundError(f"source folder {src} does not exist")
    fs = fs or open_fs(dest, settings)
    started = time.perf_counter()
    files = local_files(src)
    summary = LandSummary(files=len(files), dry_run=dry_run)
    remote = {e.rel: e.size for e in fs.list_files(dest)}
    todo: list[tuple[str, str, int, bytes]] = []
    for rel, full, size in files:
        md5 = md5_file(full)
        if remote.get(rel) == size and fs.content_md5(fs.join(dest, rel)) == md5:
            summary.skipped.append(rel)
            continue
        todo.append((rel, full, size, md5))
    if dry_run:
        summary.uploaded = [t[0] for t in todo]
        summary.bytes_uploaded = sum(t[2] for t in todo)
        return summary
    if todo and isinstance(fs, AdlsFS):
        fs.ensure_file_system(dest)
    stage = staging_root(dest, settings)
    from lakedoc.report.progress import Progress

    bar = Progress(sum(t[2] for t in todo), "land", unit="B", unit_scale=True) if progress else None
    lock = threading.Lock()

    def one(rel: str, full: str, size: int, md5: bytes) -> None:
        final = fs.join(dest, rel)
        tmp = fs.join(stage, f"{rel}.{md5.hex()[:16]}.part")
        last: Exception | None = None
        for attempt in range(settings.file_retries + 1):
            try:
                fs.upload(full, tmp, md5, size)
                try:
                    fs.rename(tmp, final)
                except Exception:
                    # the rename may have been applied with its answer lost: the destination then holds it
                    if fs.exists(tmp) or fs.content_md5(final) != md5:
                        raise
                return
            except Exception as exc:  # noqa: BLE001 - retried as a whole file, then reported
                last = exc
                log.warning("land: %s: attempt %d failed: %s", rel, attempt + 1, _short(exc))
                time.sleep(min(settings.backoff_s * (attempt + 1), 30))
        raise RuntimeError(_short(last))

    with ThreadPoolExecutor(max(1, settings.parallel_files), thread_name_prefix="land") as pool:
        futures = {pool.submit(one, *t): t for t in todo}
        for fut in as_completed(futures):
            rel, _, size, _ = futures[fut]
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001 - one file's failure does not stop the others
                summary.failed[rel] = str(exc)
            else:
                with lock:
                    summary.uploaded.append(rel)
                    summary.bytes_uploaded += size
            if bar is not None:
                bar.update(size)
    if bar is not None:
        bar.close()
    if not summary.failed and todo:
        fs.delete_tree(stage)  # staging leftovers of interrupted runs of this destination
    summary.uploaded.sort()
    summary.seconds = time.perf_counter() - started
    return summary


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def cmd_land(args) -> int:
    from lakedoc.config import load_config

    sets = list(args.set)
    if args.endpoint:
        sets.append(f"lake.endpoint={args.endpoint}")
    if args.parallel:
        sets.append(f"lake.parallel_files={args.parallel}")
    cfg = load_config(args.target, user_file=args.config, sets=sets)
    settings = LakeSettings.from_config(cfg)
    summary = land(str(Path(args.src).resolve()), args.dest if "://" in args.dest else str(Path(args.dest).resolve()),
                   settings, dry_run=args.dry_run, progress=not args.no_progress)
    if args.dry_run:
        for rel in summary.uploaded:
            print(f"  would upload {rel}")
    print(summary.format())
    return 1 if summary.failed else 0


def add_parser(sub) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "land", help="upload a local folder into the ADLS Gen2 landing zone (resumable, skips unchanged files)")
    p.add_argument("src", help="local folder")
    p.add_argument("dest", help="abfss://FS@ACCOUNT.dfs.core.windows.net/landing/... (or a local folder)")
    p.add_argument("--dry-run", action="store_true", help="list what would be uploaded, write nothing")
    p.add_argument("--endpoint", help="account URL override, {account} is replaced (lake.endpoint)")
    p.add_argument("--parallel", type=int, help="files uploaded at once (lake.parallel_files)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (none either off a terminal, in CI or with LAKEDOC_PROGRESS=0)")
    p.add_argument("--target", default="local", help="configuration target (default: local)")
    p.add_argument("--config", help="extra YAML merged over conf/")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="configuration override")
    p.set_defaults(func=cmd_land)
