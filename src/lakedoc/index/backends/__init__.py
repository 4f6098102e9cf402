"""Index backends: ``lancedb`` (embedded) and ``azure_search`` (Azure AI Search), found by name in
:mod:`lakedoc.index.backends.registry`."""
from lakedoc.index.backends.base import DOC_FIELDS, IndexBackend, PushResult
from lakedoc.index.backends.registry import BACKENDS, backend_class, open_backend

__all__ = ["BACKENDS", "DOC_FIELDS", "IndexBackend", "PushResult", "backend_class", "open_backend"]
