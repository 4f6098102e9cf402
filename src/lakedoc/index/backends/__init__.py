"""Index backends: ``lancedb`` (embedded) and ``azure_search`` (Azure AI Search)."""
from lakedoc.index.backends.base import DOC_FIELDS, IndexBackend, PushResult, open_backend

__all__ = ["DOC_FIELDS", "IndexBackend", "PushResult", "open_backend"]
