"""The listing of a local input folder: every regular file under it, whatever its name, from its real
path, without following symbolic links (:func:`list_local`), and the :class:`Listing` every input
source returns (:mod:`lakedoc.ingest.sources`). Used by the ingestion stage; imports nothing of it."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

LISTING_COLUMNS = ["path", "fs_path", "mtime_us", "length"]


@dataclass
class Listing:
    """Every file under the input: ``files`` has one row per regular file with ``path`` (the row's
    ``source_path``: the real path for local input), ``fs_path`` (its bytes for ``open``; None for
    remote input), ``mtime_us`` (modification time, epoch microseconds, millisecond precision) and
    ``length`` (bytes)."""

    root: str
    local: bool
    files: pd.DataFrame
    symlinks: list[str] = field(default_factory=list)  # not followed
    special: list[str] = field(default_factory=list)  # sockets, FIFOs, devices: not regular files
    unlisted_dirs: list[str] = field(default_factory=list)  # could not be read: rows below are kept
    source: Any = None  # lakedoc.ingest.sources.InputSource: reads the files by path (None: binaryFile)


def is_local_input(path: str) -> bool:
    """A plain path (``/Volumes/...`` included) or a ``file:`` URI; not ``abfss://``, ``dbfs:`` ..."""
    if path.startswith("file:"):
        return True
    return "://" not in path and not path.startswith("dbfs:")


def _local_path(path: str) -> str:
    if path.startswith("file://"):
        path = path[7:]
    elif path.startswith("file:"):
        path = path[5:]
    return os.path.realpath(path)


def _display(raw: bytes) -> str:
    """A file system path as text: UTF-8, undecodable bytes written as ``\\xNN``."""
    return raw.decode("utf-8", errors="backslashreplace")


def list_local(root: str, log=None) -> Listing:
    """Walk a local folder from its real path without following symbolic links (bytes paths, so a
    name that is not UTF-8 is still listed; ``source_path`` is then written with ``\\xNN``)."""
    real = _local_path(root)
    listing = Listing(real, True, pd.DataFrame(columns=LISTING_COLUMNS))
    rows: list[tuple] = []
    seen: set[str] = set()

    def add(raw: bytes, st) -> None:
        shown = _display(raw)
        if shown in seen:  # only possible for two names that differ in undecodable bytes vs "\\xNN"
            if log:
                log.warning("skipped %s: its name is written like another file's", shown)
            return
        seen.add(shown)
        rows.append((shown, raw, st.st_mtime_ns // 1_000_000 * 1000, int(st.st_size)))

    if not os.path.exists(real):
        raise FileNotFoundError(f"input folder {root} does not exist")
    if not os.path.isdir(real):
        add(os.fsencode(real), os.stat(real))
    stack = [os.fsencode(real)] if os.path.isdir(real) else []
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            listing.unlisted_dirs.append(_display(folder))
            if log:
                log.warning("cannot list %s (%s): its files are not ingested this run and their rows "
                            "are kept as they are", _display(folder), exc)
            continue
        for entry in entries:
            try:
                if entry.is_symlink():
                    listing.symlinks.append(_display(entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    add(entry.path, entry.stat(follow_symlinks=False))
                else:
                    listing.special.append(_display(entry.path))
            except OSError as exc:  # vanished while listing, or no permission to stat it
                if log:
                    log.warning("cannot stat %s: %s", _display(entry.path), exc)
    if rows:
        listing.files = pd.DataFrame(rows, columns=LISTING_COLUMNS)
    return listing
