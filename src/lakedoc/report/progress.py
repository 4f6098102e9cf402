"""Progress bars for long local work (``lakedoc run``'s tasks, ``lakedoc evaluate``), on stderr.

Quiet — no bar at all, the plain lines only — when stderr is not a terminal, when the environment
variable ``CI`` is set (to anything but ``""``, ``0`` or ``false``), or with ``LAKEDOC_PROGRESS=0``. Messages
go through :meth:`Progress.write`, so a bar is redrawn below them instead of being torn; with ``logs=True``
the console log lines (the root logger's stderr handler) go above the bar too while it is drawn.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any, TypeVar

T = TypeVar("T")


def enabled(stream: IO[str] | None = None) -> bool:
    """Whether bars are drawn: a terminal on ``stream`` (stderr), no ``CI``, no ``LAKEDOC_PROGRESS=0``."""
    stream = stream or sys.stderr
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false"):
        return False
    if os.environ.get("LAKEDOC_PROGRESS", "").strip().lower() in ("0", "false", "no", "off"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    """A counter with a bar when :func:`enabled`; otherwise it only counts. Use as a context manager."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", stream: IO[str] | None = None,
                 logs: bool = False, unit_scale: bool = False):
        self.stream = stream or sys.stderr
        self.count = 0
        self.total = total
        self._bar: Any = None
        self._logs: Any = None
        if enabled(self.stream):
            from tqdm import tqdm  # type: ignore[import-untyped]  # no stubs installed (types-tqdm)

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=True,
                             dynamic_ncols=True,  # unit_scale: 1.2MB, not 1234567B (bytes, by 1024)
                             unit_scale=unit_scale, unit_divisor=1024 if unit_scale else 1000)
            if logs:
                from tqdm.contrib.logging import logging_redirect_tqdm  # type: ignore[import-untyped]  # tqdm ships no types

                self._logs = logging_redirect_tqdm()
                self._logs.__enter__()

    @property
    def active(self) -> bool:
        return self._bar is not None

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.count += n
        if self._bar is not None:
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(n)

    def write(self, message: str) -> None:
        """A line for the user: above the bar when there is one, plain on the stream otherwise."""
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def iterate(self, items: Iterable[T], label: Callable[[T], str] = str) -> Iterator[T]:
        """Yield ``items``, counting each one done when the next is asked for; closes the bar at the end."""
        try:
            for item in items:
                if self._bar is not None:
                    self._bar.set_postfix_str(label(item), refresh=True)
                yield item
                self.update()
        finally:
            self.close()

    def close(self) -> None:
        if self._logs is not None:
            self._logs.__exit__(None, None, None)
            self._logs = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
