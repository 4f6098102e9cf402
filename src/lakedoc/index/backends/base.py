"""The interface every index backend implements, and the shared index document shape.

This module imports no backend: they are found by name through :mod:`lakedoc.index.backends.registry`."""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from typing_extensions import Self  # typing.Self is Python 3.11+; requires-python is >=3.10

from lakedoc.index.hit import Hit


def iso_utc(v: Any) -> Any:
    """A datetime (naive = UTC) or date as the ISO-8601 UTC text search services take; other values as
    they are."""
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return v.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(v, date):
        return v.isoformat() + "T00:00:00Z"
    return v


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a service asks a client to wait: ``retry-after-ms`` / ``x-ms-retry-after-ms``
    (milliseconds), else ``Retry-After`` (seconds, or an HTTP date); None when absent or unreadable."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("Retry-After", 1.0)):
        v = headers.get(name)
        if not v:
            continue
        try:
            return max(0.0, float(v) * scale)
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                return max(0.0, (parsedate_to_datetime(v) - datetime.now(timezone.utc)).total_seconds())
            except (TypeError, ValueError):
                return None
    return None


def backoff_s(attempt: int, base_s: float, max_s: float, retry_after: float | None = None) -> float:
    """How long to wait before retry ``attempt + 1``: what the service asked for (``retry_after``), else
    an exponential back-off from ``base_s`` with jitter (50-100 %), capped at ``max_s``."""
    if retry_after is not None:  # the service knows best how long to wait
        return retry_after
    return min(max_s, base_s * (2 ** attempt) * (0.5 + random.random() / 2))


# Fields of one index document (the key is chunk_id). Vectors are float32, normalised.
DOC_FIELDS = ("chunk_id", "doc_id", "seq", "source_path", "file_name", "format", "unit_ref", "text", "vector",
              "labels", "label_scores", "modified_at", "indexed_at", "model", "run_id")


@dataclass
class PushResult:
    """Outcome of one upsert/delete call: which keys the service accepted, which failed for good."""

    succeeded: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # chunk_id -> error
    requests: int = 0
    retries: int = 0

    def extend(self, other: PushResult) -> None:
        self.succeeded.extend(other.succeeded)
        self.failed.update(other.failed)
        self.requests += other.requests
        self.retries += other.retries


class IndexBackend:
    """``ensure_index`` -> ``upsert``/``delete`` (repeatedly) -> ``finalize``; ``search`` any time.

    A backend is registered by name in :mod:`lakedoc.index.backends.registry` and built by ``from_config``."""

    name = "base"

    @classmethod
    def from_config(cls, cfg: Any) -> Self:  # pragma: no cover - interface
        """The backend the configuration describes (``cfg["index"]``)."""
        raise NotImplementedError

    def ensure_index(self, dimension: int) -> bool:  # pragma: no cover - interface
        """Create or open the index for vectors of ``dimension``; True when it is new (send everything)."""
        raise NotImplementedError

    def upsert(self, docs: list[dict]) -> PushResult:  # pragma: no cover - interface
        raise NotImplementedError

    def delete(self, chunk_ids: Sequence[str]) -> PushResult:  # pragma: no cover - interface
        raise NotImplementedError

    def finalize(self) -> dict:
        """Post-push maintenance (ANN / full-text index upkeep); returns details for the task result."""
        return {}

    def count(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def search(self, vector, text: str | None, *, labels: Sequence[str] | None = None,
               format: str | None = None, k: int = 10, mode: str = "vector") -> list[Hit]:
        raise NotImplementedError  # pragma: no cover

    def close(self) -> None:
        pass
