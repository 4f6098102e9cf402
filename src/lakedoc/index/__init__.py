"""The vector index stage (task ``index``) and semantic search (``lakedoc search``).

* :mod:`lakedoc.index.documents` builds the index documents (redacted chunk text, vector, labels,
  file metadata) from the Delta tables, with a content hash per chunk.
* :mod:`lakedoc.index.stage` — the ``index`` task: pushes what changed since the ``index_state``
  table, deletes what disappeared, records every successful push.
* :mod:`lakedoc.index.backends` — ``lancedb`` (embedded, local default) and ``azure_search``.
* :func:`search` — ``search(query, labels=..., format=..., k=..., mode=...) -> list[Hit]``, the same
  function ``lakedoc search`` prints.
"""
from __future__ import annotations

from lakedoc.index.hit import Hit


def search(query: str, *args, **kwargs):
    """Semantic (``mode="vector"``) or hybrid search of the configured index; see
    :func:`lakedoc.index.query.search`."""
    from lakedoc.index.query import search as _search

    return _search(query, *args, **kwargs)


__all__ = ["Hit", "search"]
